"""Gateway fan-out: many authenticated WebSocket clients on the alert feed and grid deltas.

Run::

    python bench/bench_fanout.py [--clients 1000] [--grid-workers 0] [--gateway-procs 1]
                                 [--procs 2] [--alerts 5] [--tasks 1] [--grid-deltas 1000]
                                 [--seconds 20] [--runs 3] [--profile] [--slot N] [--keep-stack]

A district's field force: ``--clients 10000 --grid-workers 9000 --gateway-procs 2``.

On the benchmark's own stack (``--slot N``: Kafka 19292+10N, Redis 16579+N), from an
empty Redis:

1. the real gateway on a free port: one process (``python -m gridwatch.ws.gateway``) or
   ``--gateway-procs N`` sharing the port (``gridwatch gateway --procs N``); its memory
   (VmRSS of the serving processes) is read before and after the clients connect;
2. ``--clients`` users (duty officers by default: they receive everything, the worst
   case; ``--grid-workers K`` makes K of them grid workers of one to three grids each,
   every grid having some), each with a session made the way the login path makes one
   (``ws.auth.issue`` with the session cost, stored under ``gw:session:{id}``); every
   client connects to ``/ws`` with its session as a bearer token, says ``hello`` and
   reads until the end. The clients run in ``--procs`` processes of their own (asyncio,
   uvloop), so the gateway's CPU is its own;
3. a feed writer appends to the channel streams exactly what the worker appends:
   ``--alerts`` alert records a second to ``gw:chan:alerts``, ``--tasks`` task records
   (offered to every worker of the task's grid) to ``gw:chan:tasks`` and ``--grid-deltas`` grid
   deltas a second (random grids of the bundled district) to ``gw:chan:grids``, each
   stamped with the wall-clock time of its ``XADD`` in a field ``t`` the cockpit ignores;
4. each client takes the first ``t`` out of every frame it receives: delivery latency =
   receive time - ``XADD`` time (one machine, one clock). Grid deltas are coalesced (the
   latest per grid, one batch frame every 100 ms), so their latency includes that wait;
   a batch's first delta is its oldest, so the figure per frame is the frame's worst.

Measured in ``--runs`` consecutive windows of ``--seconds`` each, after a warm-up:
p50/p95/p99/max delivery latency of alerts, tasks and grid deltas (over every client),
messages delivered vs. owed (each record to every user allowed to see it), the gateway's own delivery time
(``gridwatch_ws_delivery_seconds``: from the entry's ``XADD``, the time in its stream id,
to the frame written to every recipient's socket), the gateway's CPU (``/proc/PID/stat``
of every serving process; 100 % = one core) and per frame read by a client, the clients' and Redis's CPU, and the gateway's own ``/metrics`` sampled every
second (``gridwatch_ws_clients``, ``gridwatch_ws_send_queue_depth``). The summary is the
median over the windows. ``--profile`` records the gateway with ``py-spy`` during the
first window and prints the functions with the most samples.
"""

from __future__ import annotations

import argparse
import base64
import multiprocessing as mp
import os
import platform
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _stack
from _machine import cpu_model, py_spy, py_spy_top
from _machine import versions as package_versions

from gridwatch import keys
from gridwatch import settings as settings_mod
from gridwatch.city import load_grids

HIST_MS = 20_000  # latency histogram: 1 ms buckets up to 20 s, then one overflow bucket
STAMP = re.compile(rb'"t":([0-9.]+)')
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---- stack, gateway, users ------------------------------------------------------------


slot_settings = _stack.slot_settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Gateway:
    """The gateway on a free port: one ``python -m gridwatch.ws.gateway`` process, or
    ``python -m gridwatch.cli gateway --procs N`` (N processes sharing the port)."""

    def __init__(self, s: settings_mod.Settings, log_path: Path, procs: int = 1) -> None:
        self.port = free_port()
        self.procs = procs
        self.origin = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "GRIDWATCH_KAFKA": s.kafka, "GRIDWATCH_REDIS": s.redis,
                    "GRIDWATCH_HOME": str(s.home), "GRIDWATCH_GATEWAY": f"127.0.0.1:{self.port}",
                    "GRIDWATCH_WEB_ORIGIN": self.origin}
        cmd = ([sys.executable, "-m", "gridwatch.ws.gateway"] if procs == 1 else
               [sys.executable, "-m", "gridwatch.cli", "gateway", "--procs", str(procs)])
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                if len(self.pids()) >= procs and (
                        procs == 1 or len(self._scrapes(tries=20 * procs)) == procs):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"the gateway did not start; see {log_path}") from None
            time.sleep(0.2)

    def pids(self) -> list[int]:
        """The processes that serve clients: the gateway itself, or the children of
        ``--procs N`` (the parent only supervises)."""
        if self.procs == 1:
            return [self.proc.pid]
        out = []
        try:
            kids = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return []
        for pid in (int(x) for x in kids.split()):
            try:
                if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    out.append(pid)
            except OSError:
                continue
        return out

    def _scrapes(self, tries: int) -> dict[int, dict[str, float]]:
        """One scrape per process seen in ``tries`` requests (each a new connection,
        which the kernel hands to any process), by ``gridwatch_ws_process``."""
        seen: dict[int, dict[str, float]] = {}
        for _ in range(tries):
            text = urllib.request.urlopen(f"{self.origin}/metrics", timeout=5).read().decode()
            out: dict[str, float] = {}
            for line in text.splitlines():
                if line.startswith("gridwatch_ws_") and ("{" not in line or "_bucket{" in line):
                    name, _, value = line.rpartition(" ")
                    out[name] = float(value)
            seen[int(out.get("gridwatch_ws_process", -1))] = out
            if len(seen) == self.procs:
                break
        return seen

    def metrics(self, tries: int | None = None) -> dict[str, float]:
        """The gateway's own Prometheus samples (name, with ``{le=...}`` for histogram
        buckets -> value), summed over its processes."""
        total: Counter[str] = Counter()
        for scrape in self._scrapes(tries or 8 * self.procs).values():
            total.update(scrape)
        total.pop("gridwatch_ws_process", None)
        return dict(total)

    def health(self) -> dict[str, Any]:
        return orjson.loads(urllib.request.urlopen(f"{self.origin}/healthz", timeout=5).read())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def delivery_pct(before: dict[str, float], after: dict[str, float], q: float) -> float:
    """The q-th percentile (ms, bucket upper bound) of ``gridwatch_ws_delivery_seconds``
    between two scrapes."""
    prefix = "gridwatch_ws_delivery_seconds_bucket{le=\""
    rows = []
    for name, value in after.items():
        if name.startswith(prefix):
            le = name[len(prefix):].split("\"", 1)[0]
            rows.append((float("inf") if le == "+Inf" else float(le),
                         value - before.get(name, 0.0)))
    rows.sort()
    total = rows[-1][1] if rows else 0.0
    if total <= 0:
        return float("nan")
    for le, n in rows:
        if n >= q / 100 * total:
            return le * 1000
    return float("inf")


def make_sessions(redis_url: str, n: int, *, grid_workers: int, grids: list[str],
                  prefix: str) -> tuple[list[str], dict[str, list[str]]]:
    """``n`` users with one open session each: the first ``grid_workers`` grid workers of
    one to three grids each (random, seeded), the others duty officers. Returns the
    session tokens and each grid's workers.

    The session is what ``users.aredeem_login`` stores after a login link is used (the
    same ``issue`` and cost); the link step itself is skipped, its scrypt cost per
    user being what a person pays once a shift.
    """
    import redis
    from gridwatch.ws.auth import SESSION_N, User, issue

    r = redis.Redis.from_url(redis_url)
    rng = random.Random(7)
    tokens: list[str] = []
    owners: dict[str, list[str]] = {g: [] for g in grids}
    pipe = r.pipeline(transaction=False)
    now = time.time()
    for i in range(n):
        if i < grid_workers:
            # Every grid has workers (round robin first), then one or two more at random.
            mine = {grids[i % len(grids)], *rng.sample(grids, rng.randint(0, 2))}
            user = User(f"{prefix}w{i:05d}", "grid_worker", grids=tuple(sorted(mine)))
            for g in mine:
                owners[g].append(user.name)
        else:
            user = User(f"{prefix}o{i:05d}", "duty_officer")
        cred = issue(user.name, now=now, ttl_s=keys.SESSION_TTL_S, n=SESSION_N)
        pipe.set(keys.user(user.name), orjson.dumps(user.to_dict()))
        pipe.sadd(keys.USERS, user.name)
        pipe.set(keys.session(cred.record_id), orjson.dumps(cred.record), ex=keys.SESSION_TTL_S)
        tokens.append(cred.token)
        if len(pipe) >= 300:
            pipe.execute()
    pipe.execute()
    r.close()
    return tokens, owners


# ---- /proc ----------------------------------------------------------------------------


def rss_bytes(pids: list[int]) -> int:
    """Resident memory of some processes together (VmRSS)."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine."""
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + parts[4]
    return sum(parts) - idle, sum(parts)


def load_text() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


# ---- clients (in processes of their own) --------------------------------------------------


def client_proc(port: int, origin: str, tokens: list[str], windows: Any, connected: Any,
                done: Any, out: Any, concurrency: int = 25) -> None:
    """Hold one WebSocket per token; histogram every stamped message by window.

    ``windows`` = (t0, seconds, count) in a shared array: a message stamped at ``t``
    belongs to window ``int((t - t0) / seconds)`` when that is in range.
    """
    import asyncio

    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    # per window: {"alerts"/"grids": histogram}, frames, messages
    hist: dict[tuple[int, str], list[int]] = {}
    frames: Counter[int] = Counter()
    msgs: Counter[tuple[int, str]] = Counter()
    closes: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    failed = 0

    def record(raw: bytes | str) -> None:
        data = raw.encode() if isinstance(raw, str) else raw
        now = time.time()
        t0, secs, count = windows[0], windows[1], int(windows[2])
        if not t0:
            return
        kind = ("alerts" if data.startswith(b'{"ch":"alerts"') else
                "tasks" if data.startswith(b'{"ch":"tasks"') else "grids")
        # The first stamp is the oldest message of the frame (a batch of grid deltas is
        # in stream order): its latency is the frame's worst, and the one recorded.
        m = STAMP.search(data)
        if m is None:
            return
        t = float(m.group(1))
        w = int((t - t0) // secs)
        if 0 <= w < count:
            key = (w, kind)
            h = hist.get(key)
            if h is None:
                h = hist[key] = [0] * (HIST_MS + 1)
            h[min(HIST_MS, int((now - t) * 1000))] += 1
            msgs[key] += data.count(b'"t":')
            frames[w] += 1

    loop_holder: list[Any] = []

    class Raw(asyncio.Protocol):
        """A minimal WebSocket client: the upgrade by hand, then server frames parsed
        with a few slices each (websockets' own client costs ~30 us a frame, which
        1,000 clients on the gateway's machine cannot afford); pings answered."""

        def __init__(self, token: str) -> None:
            self.token = token
            self.buf = bytearray()
            self.open = False
            self.opened = loop_holder[0].create_future()
            self.closed = loop_holder[0].create_future()
            self.transport: Any = None
            self.close_code = "none"

        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            key = base64.b64encode(os.urandom(16)).decode()
            transport.write((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                             "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                             f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                             f"Authorization: Bearer {self.token}\r\nOrigin: {origin}\r\n"
                             "\r\n").encode())

        def send(self, opcode: int, payload: bytes) -> None:
            # Client frames are masked; a zero mask leaves the payload as it is.
            assert len(payload) < 126
            self.transport.write(bytes((0x80 | opcode, 0x80 | len(payload))) + b"\0\0\0\0"
                                 + payload)

        def data_received(self, data: bytes) -> None:
            buf = self.buf
            buf += data
            if not self.open:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                status = bytes(buf[:end]).split(b"\r\n", 1)[0]
                del buf[:end + 4]
                if b" 101 " not in status:
                    self.opened.set_exception(ConnectionError(status.decode(errors="replace")))
                    self.transport.close()
                    return
                self.open = True
                self.send(0x1, b'{"op":"hello","last":{}}')
                self.opened.set_result(None)
            at, size = 0, len(buf)
            while size - at >= 2:
                n = buf[at + 1] & 0x7F
                head = 2
                if n == 126:
                    if size - at < 4:
                        break
                    n, head = int.from_bytes(buf[at + 2:at + 4], "big"), 4
                elif n == 127:
                    if size - at < 10:
                        break
                    n, head = int.from_bytes(buf[at + 2:at + 10], "big"), 10
                if size - at < head + n:
                    break
                opcode = buf[at] & 0x0F
                payload = bytes(buf[at + head:at + head + n])
                at += head + n
                if opcode == 0x1:
                    record(payload)
                elif opcode == 0x9:
                    self.send(0xA, payload)
                elif opcode == 0x8:
                    self.close_code = str(int.from_bytes(payload[:2], "big")) if payload else "1005"
                    self.transport.close()
            if at:
                del buf[:at]

        def connection_lost(self, exc: Exception | None) -> None:
            if not self.opened.done():
                self.opened.set_exception(exc or ConnectionError("closed before the upgrade"))
            if not self.closed.done():
                self.closed.set_result(None)

    async def one(token: str, gate: asyncio.Semaphore) -> None:
        nonlocal failed
        loop = loop_holder[0]
        try:
            for attempt in range(3):
                try:
                    async with gate:
                        _, proto = await loop.create_connection(lambda: Raw(token),
                                                                "127.0.0.1", port)
                        await asyncio.wait_for(proto.opened, 60)
                    break
                except Exception as exc:  # retried, then counted
                    reasons[f"{type(exc).__name__}: {exc}"[:120]] += 1
                    if attempt == 2:
                        raise
                    await asyncio.sleep(1.0)
            with connected.get_lock():
                connected.value += 1
            try:
                await proto.closed
            finally:
                closes[proto.close_code] += 1
                proto.transport.close()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - counted, the run goes on
            failed += 1
            with connected.get_lock():
                connected.value += 1_000_000  # "settled": the main process stops waiting

    async def main() -> None:
        loop_holder.append(asyncio.get_running_loop())
        gate = asyncio.Semaphore(concurrency)
        tasks = [asyncio.create_task(one(t, gate)) for t in tokens]
        while not done.is_set():
            await asyncio.sleep(0.2)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())
    out.put({"hist": hist, "frames": dict(frames), "msgs": dict(msgs), "closes": dict(closes),
             "failed": failed, "reasons": dict(reasons), "pid": os.getpid()})


# ---- the feed -------------------------------------------------------------------------


def feed(redis_url: str, grids: list[str], rates: dict[str, float], owners: dict[str, list[str]],
         officers: int, stop: threading.Event, counts: Counter[str], tick: float = 0.01) -> None:
    """Append stamped alerts, tasks and grid deltas to the channel streams at ``rates``
    (per second, by kind). ``counts[kind]`` is what was appended, ``counts[kind + "_due"]``
    the deliveries it owes: every officer, and the workers of the record's grid (a task
    is offered to them all, as the worker's dispatch does)."""
    import redis

    r = redis.Redis.from_url(redis_url)
    rng = random.Random(3)
    start = time.monotonic()
    n = Counter[str]()
    bands = ("low", "medium", "high")
    while not stop.is_set():
        elapsed = time.monotonic() - start
        want = {kind: int(elapsed * rate) for kind, rate in rates.items()}
        if any(want[k] > n[k] for k in want):
            pipe = r.pipeline(transaction=False)
            t = time.time()
            due = Counter[str]()
            for _ in range(want["alerts"] - n["alerts"]):
                n["alerts"] += 1
                i, grid = n["alerts"], rng.choice(grids)
                alert = {"id": f"bench-{i:08d}", "kind": "loiter", "severity": "high",
                         "status": "new", "grid_id": grid, "station_id": None,
                         "ts_raised": t, "ts_updated": t, "title": f"Crowd at pharmacy {i}",
                         "title_zh": f"药店聚集 {i}", "task_id": None, "v": 1}
                pipe.xadd(keys.CHAN_ALERTS, {"d": orjson.dumps({"type": "alert", "t": t,
                                                               "alert": alert})},
                          maxlen=keys.CHAN_MAXLEN, approximate=True)
                due["alerts"] += officers + len(owners.get(grid, ()))
            for _ in range(want["tasks"] - n["tasks"]):
                n["tasks"] += 1
                i, grid = n["tasks"], rng.choice(grids)
                task = {"id": f"tk-bench-{i:08d}-1", "alert_id": f"bench-t{i:08d}",
                        "grid_id": grid, "workers": owners.get(grid, []), "status": "offered",
                        "assignee": None, "ts_created": t, "ts_updated": t, "due_at": t + 1800,
                        "note": "请到现场核实", "audit": []}
                pipe.xadd(keys.CHAN_TASKS, {"d": orjson.dumps({"type": "task", "t": t,
                                                              "task": task})},
                          maxlen=keys.CHAN_MAXLEN, approximate=True)
                due["tasks"] += officers + len(owners.get(grid, ()))
            for _ in range(want["grids"] - n["grids"]):
                n["grids"] += 1
                score = round(rng.uniform(0, 100), 1)
                pipe.xadd(keys.CHAN_GRIDS, {"d": orjson.dumps({
                    "type": "grid", "grid_id": rng.choice(grids), "score": score,
                    "band": bands[min(2, int(score // 34))], "hour": int(t // 3600), "t": t})},
                    maxlen=keys.CHAN_MAXLEN, approximate=True)
            pipe.execute()
            for kind in rates:
                counts[kind] = n[kind]
                counts[kind + "_due"] += due[kind]
        time.sleep(tick)
    r.close()


# ---- figures --------------------------------------------------------------------------


def pct_hist(h: list[int], q: float) -> float:
    """The q-th percentile (ms) of a 1 ms histogram, nearest rank."""
    total = sum(h)
    if not total:
        return float("nan")
    rank = max(1, -(-q * total // 100))
    acc = 0
    for ms, n in enumerate(h):
        acc += n
        if acc >= rank:
            return float(ms)
    return float(HIST_MS)


def hist_max(h: list[int]) -> float:
    for ms in range(len(h) - 1, -1, -1):
        if h[ms]:
            return float(ms)
    return float("nan")


def machine(s: settings_mod.Settings) -> list[str]:
    import redis

    r = redis.Redis.from_url(s.redis)
    try:
        redis_version = r.info("server")["redis_version"]
    finally:
        r.close()
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return [
        f"CPU: {cpu_model()}, {os.cpu_count()} cores, {mem_gb:.1f} GiB RAM",
        f"OS: {platform.platform()}; Python {platform.python_version()}",
        f"Redis {redis_version}; "
        + ", ".join(package_versions(("websockets", "redis", "orjson", "uvloop"))),
        f"load average at start: {load_text()} (1, 5, 15 min)",
    ]


# ---- main -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--grid-workers", type=int, default=0,
                        help="how many of the clients are grid workers (one to three grids "
                             "each); the others are duty officers")
    parser.add_argument("--procs", type=int, default=2, help="client processes")
    parser.add_argument("--gateway-procs", type=int, default=1,
                        help="gateway processes sharing the port (gridwatch gateway --procs N)")
    parser.add_argument("--tasks", type=float, default=1.0,
                        help="task records per second (each offered to its grid's workers)")
    parser.add_argument("--alerts", type=float, default=5.0,
                        help="alert records per second (5/s is ~430,000 a day: a burst)")
    parser.add_argument("--grid-deltas", type=float, default=1000.0,
                        help="grid deltas per second (the worker writes ~1,000/s at 1,000 "
                             "events/s: every grid a 100 ms batch touched)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of one window")
    parser.add_argument("--runs", type=int, default=3, help="measurement windows")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of feed before measuring")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy the gateway during the first window")
    parser.add_argument("--keep-stack", action="store_true")
    parser.add_argument("--slot", type=int, default=int(os.environ.get("GRIDWATCH_BENCH_SLOT", "0")),
                        help="N > 0: a bench stack of this run's own (Kafka 19292+10N, Redis "
                             "16579+N, data in .local/bench-stack-N)")
    args = parser.parse_args(argv)

    import redis

    from gridwatch import stack

    s = slot_settings(args.slot)
    was_running = stack.status(s)["kafka_pid"] is not None
    _stack.up(s)
    print("gridwatch gateway fan-out: channel stream XADD -> frame read by every client", flush=True)
    print(f"  command: {' '.join(['python', *sys.argv])}")
    for line in machine(s):
        print("  " + line)
    grids = [g.id for g in load_grids(s.grids)]
    logdir = s.home / "logs"
    gw: Gateway | None = None
    procs: list[mp.Process] = []
    stop_feed = threading.Event()
    ctx = mp.get_context("spawn")
    done = ctx.Event()
    results: Any = ctx.Queue()
    counts: Counter[str] = Counter()
    feeder: threading.Thread | None = None
    redis_pid = stack._read_pid(stack.Paths(s.home).pidfile("redis"))
    rows: list[dict[str, Any]] = []
    try:
        _stack.hold(s)
        r = redis.Redis.from_url(s.redis)
        r.flushdb()
        started = time.perf_counter()
        tokens, owners = make_sessions(s.redis, args.clients, grid_workers=args.grid_workers,
                                       grids=grids, prefix="bench-")
        print(f"{args.clients:,} users and sessions made in {time.perf_counter() - started:.1f} s "
              f"({args.grid_workers} grid workers, {args.clients - args.grid_workers} duty "
              "officers)", flush=True)
        gw = Gateway(s, logdir / "bench-fanout-gateway.log", procs=args.gateway_procs)
        time.sleep(1.0)
        rss_idle = rss_bytes(gw.pids())
        windows = ctx.Array("d", [0.0, args.seconds, float(args.runs)], lock=False)
        connected = ctx.Value("i", 0)
        per = -(-len(tokens) // args.procs)
        for i in range(args.procs):
            p = ctx.Process(target=client_proc, daemon=True,
                            args=(gw.port, gw.origin, tokens[i * per:(i + 1) * per], windows,
                                  connected, done, results))
            p.start()
            procs.append(p)
        started = time.perf_counter()
        deadline = time.monotonic() + 300
        while (connected.value % 1_000_000 + connected.value // 1_000_000 < len(tokens)
               and time.monotonic() < deadline):
            if not all(p.is_alive() for p in procs):
                raise RuntimeError("a client process died")
            time.sleep(0.2)
        took = time.perf_counter() - started
        print(f"{connected.value % 1_000_000:,} of {len(tokens):,} clients connected in "
              f"{took:.1f} s ({connected.value // 1_000_000} gave up after 3 tries); "
              f"gateway /healthz: {gw.health()}", flush=True)
        time.sleep(2.0)
        rss_held = rss_bytes(gw.pids())
        held = connected.value % 1_000_000
        print(f"gateway memory (VmRSS, {len(gw.pids())} process(es)): {rss_idle / 2**20:,.1f} MiB "
              f"before the clients, {rss_held / 2**20:,.1f} MiB with {held:,} connected: "
              f"{(rss_held - rss_idle) / max(1, held) / 1024:,.1f} KiB per connection",
              flush=True)
        rates = {"alerts": args.alerts, "tasks": args.tasks, "grids": args.grid_deltas}
        feeder = threading.Thread(target=feed, args=(s.redis, grids, rates, owners,
                                                     args.clients - args.grid_workers,
                                                     stop_feed, counts), daemon=True)
        feeder.start()
        time.sleep(args.warmup)
        t0 = time.time() + 0.5
        windows[0] = t0
        time.sleep(max(0.0, t0 - time.time()))
        spy = None
        if args.profile and py_spy():
            spy_out = logdir / "bench-fanout-gateway.pyspy.txt"
            spy = subprocess.Popen([py_spy() or "py-spy", "record", "-p", str(gw.pids()[0]), "-d",
                                    str(int(args.seconds)), "-r", "100", "-f", "raw",
                                    "-o", str(spy_out), "--nonblocking"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for w in range(args.runs):
            end = t0 + (w + 1) * args.seconds
            gw_pids = gw.pids()
            gw_cpu0 = sum(cpu_seconds(pid) for pid in gw_pids)
            cl_cpu0 = sum(cpu_seconds(p.pid) for p in procs if p.pid)
            rd_cpu0 = cpu_seconds(redis_pid) if redis_pid else 0.0
            busy0, total0 = machine_busy()
            sent0 = dict(counts)
            wall0 = time.monotonic()
            depth: list[float] = []
            clients_gauge: list[float] = []
            scrapes: list[dict[str, float]] = []
            while time.time() < end:
                try:
                    m = gw.metrics()
                    scrapes.append(m)
                    depth.append(m.get("gridwatch_ws_send_queue_depth", float("nan")))
                    clients_gauge.append(m.get("gridwatch_ws_clients", float("nan")))
                except OSError:
                    pass
                time.sleep(min(1.0, max(0.0, end - time.time())))
            wall = time.monotonic() - wall0
            busy1, total1 = machine_busy()
            gw_cpu = sum(cpu_seconds(pid) for pid in gw_pids) - gw_cpu0
            rows.append({
                "gw50": delivery_pct(scrapes[0], scrapes[-1], 50) if scrapes else float("nan"),
                "gw99": delivery_pct(scrapes[0], scrapes[-1], 99) if scrapes else float("nan"),
                "gw_cpu": gw_cpu / wall,
                "client_cpu": (sum(cpu_seconds(p.pid) for p in procs if p.pid) - cl_cpu0) / wall,
                "redis_cpu": ((cpu_seconds(redis_pid) - rd_cpu0) / wall) if redis_pid else float("nan"),
                "machine": (busy1 - busy0) / max(1, total1 - total0) * (os.cpu_count() or 1),
                "alerts_sent": counts["alerts"] - sent0.get("alerts", 0),
                "alerts_due": counts["alerts_due"] - sent0.get("alerts_due", 0),
                "tasks_due": counts["tasks_due"] - sent0.get("tasks_due", 0),
                "grids_sent": counts["grids"] - sent0.get("grids", 0),
                "depth_max": max(depth) if depth else float("nan"),
                "depth_median": statistics.median(depth) if depth else float("nan"),
                "clients_gauge": min(clients_gauge) if clients_gauge else float("nan"),
                "load": load_text(),
            })
            print(f"  window {w + 1} done (load {load_text()})", flush=True)
        if spy is not None:
            spy.wait(60)
        time.sleep(3.0)  # the last window's frames arrive
        final_metrics = gw.metrics()
        stop_feed.set()
        done.set()
        got = [results.get(timeout=120) for _ in procs]
    finally:
        stop_feed.set()
        done.set()
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
        if gw is not None:
            gw.stop()
        if not was_running and not args.keep_stack:
            stack.down(s, log=lambda msg: print(f"[bench stack] {msg}", file=sys.stderr))

    failed = sum(g["failed"] for g in got)
    closes: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for g in got:
        closes.update(g["closes"])
        reasons.update(g["reasons"])
    if reasons:
        print(f"connection attempts that failed (then retried): {dict(reasons)}")
    print(f"clients: {args.clients:,} in {args.procs} processes; {failed} failed to connect; "
          f"closed during the run: {dict(closes) or 'none'}; gateway closed "
          f"{final_metrics.get('gridwatch_ws_closed_slow_total', 0):.0f} as too slow")
    print(f"feed: {args.alerts:g} alerts/s and {args.grid_deltas:g} grid deltas/s over "
          f"{len(grids)} grids")
    header = (f"  {'window':<7}{'alerts p50/p95/p99/max':>24}{'tasks p50/p95/p99/max':>23}"
              f"{'grids p50/p95/p99/max':>23}{'alerts got':>11}{'tasks got':>10}"
              f"{'frames/s':>10}{'gw CPU':>8}{'clients':>9}{'redis':>7}{'machine':>9}"
              f"{'queue max':>10}{'us/frame':>9}{'written p50/p99':>16}  load")
    print("latencies in ms; 'got': messages received / deliveries owed (officers see "
          "everything, a grid worker their grids' records)")
    print(header)
    summary: dict[str, list[float]] = {k: [] for k in (
        "a50", "a95", "a99", "t50", "t95", "t99", "g50", "g95", "g99", "gw", "fps", "us",
        "w50", "w99", "a_got", "t_got")}
    for w, row in enumerate(rows):
        h: dict[str, list[int]] = {}
        msgs: Counter[str] = Counter()
        frames = 0
        for g in got:
            for (win, kind), hh in g["hist"].items():
                if win != w:
                    continue
                acc = h.setdefault(kind, [0] * (HIST_MS + 1))
                for i, n in enumerate(hh):
                    if n:
                        acc[i] += n
            for (win, kind), n in g["msgs"].items():
                if win == w:
                    msgs[kind] += n
            frames += g["frames"].get(w, 0)
        q: dict[str, list[float]] = {}
        for kind in ("alerts", "tasks", "grids"):
            hk = h.get(kind, [0])
            q[kind] = [pct_hist(hk, x) for x in (50, 95, 99)] + [hist_max(hk)]
        a_got = msgs["alerts"] / row["alerts_due"] if row["alerts_due"] else float("nan")
        t_got = msgs["tasks"] / row["tasks_due"] if row["tasks_due"] else float("nan")
        fps = frames / args.seconds
        # per frame: the gateway's CPU over the frames its clients read in the window
        us = row["gw_cpu"] * args.seconds / frames * 1e6 if frames else float("nan")
        print(f"  {w + 1:<7}" + "".join(f"{'/'.join(f'{x:.0f}' for x in q[k]):>{n}}"
                                         for k, n in (("alerts", 24), ("tasks", 23), ("grids", 23)))
              + f"{a_got:>11.1%}{t_got:>10.1%}{fps:>10,.0f}"
              f"{row['gw_cpu']:>8.0%}{row['client_cpu']:>9.0%}{row['redis_cpu']:>7.0%}"
              f"{row['machine']:>9.0%}{row['depth_max']:>10,.0f}{us:>9.1f}"
              f"{row['gw50']:>6.0f}/{row['gw99']:<5.0f}  {row['load']}")
        for prefix, kind in (("a", "alerts"), ("t", "tasks"), ("g", "grids")):
            for pct, v in zip((50, 95, 99), q[kind]):
                summary[f"{prefix}{pct}"].append(v)
        summary["gw"].append(row["gw_cpu"])
        summary["us"].append(us)
        summary["w50"].append(row["gw50"])
        summary["w99"].append(row["gw99"])
        summary["fps"].append(fps)
        summary["a_got"].append(a_got)
        summary["t_got"].append(t_got)
    med = {k: statistics.median(v) for k, v in summary.items() if v}
    print(f"median of {len(rows)} windows: alerts p50 {med['a50']:.0f} ms, p95 {med['a95']:.0f} ms, "
          f"p99 {med['a99']:.0f} ms; tasks p50 {med['t50']:.0f} ms, p95 {med['t95']:.0f} ms, "
          f"p99 {med['t99']:.0f} ms; grid deltas p50 {med['g50']:.0f} ms, p95 {med['g95']:.0f} ms, "
          f"p99 {med['g99']:.0f} ms")
    print(f"  delivered: alerts {med['a_got']:.1%}, tasks {med['t_got']:.1%} of what was owed; "
          f"gateway CPU {med['gw']:.0%} of a core over {args.gateway_procs} process(es), "
          f"{med['us']:.1f} us per frame read by a client; {med['fps']:,.0f} frames/s")
    print(f"/metrics during the windows (summed over the processes): gridwatch_ws_clients min "
          f"{min(r['clients_gauge'] for r in rows):.0f}; gridwatch_ws_send_queue_depth median "
          f"{statistics.median(r['depth_median'] for r in rows):,.0f}, max "
          f"{max(r['depth_max'] for r in rows):,.0f}; at the end: "
          f"{ {k: v for k, v in final_metrics.items() if 'created' not in k and 'bucket' not in k} }")
    print(f"gateway's own view (gridwatch_ws_delivery_seconds: XADD -> written to every "
          f"recipient's socket, bucket bounds): p50 <= {med['w50']:.0f} ms, p99 <= "
          f"{med['w99']:.0f} ms")
    worst = max(med["a99"], med["t99"] if args.tasks else 0.0)
    print(f"target p99 <= 250 ms for alerts and tasks with {args.clients:,} clients "
          f"({args.grid_workers:,} grid workers): "
          f"{'met' if worst <= 250 and failed == 0 else 'MISSED'} (worst p99 {worst:.0f} ms; "
          f"grid deltas p99 {med['g99']:.0f} ms, coalesced every 100 ms)")
    if args.profile:
        spy_out = logdir / "bench-fanout-gateway.pyspy.txt"
        if spy_out.exists():
            print("gateway profile (py-spy, first window):")
            for line in py_spy_top(spy_out):
                print("  " + line)
        else:
            print("gateway profile: py-spy wrote nothing")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
