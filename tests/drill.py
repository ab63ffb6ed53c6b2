"""What the fault drills share: workloads, a paced feed, workers and a gateway as real
processes, a monitor that samples progress and lag, faults on the stack, and verdicts.

Used by ``tests/integration/test_drills.py`` (the drills, small, on the tests' stack),
for ``dump_diff``/``progress`` and the broker's restart by
``tests/integration/test_exactly_once.py``, and by ``bench/drills.py`` (the same drills
as commands, bigger, on a stack of their own, which it starts).

Every verdict is computed from data: the state dump of a run with the fault against the
dump of a clean run of the same messages (``store.dump``), the dead letters read back
from Kafka against the offsets the producer was given, the stream ids each WebSocket
client received against the channel stream in Redis.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import redis

from gridwatch import keys, stack, store
from gridwatch import settings as settings_mod
from tests import aio

ROOT = Path(__file__).resolve().parents[1]

Message = tuple[str, bytes, bytes | None]  # topic, value, key
SUMMARY_KINDS = ("checkpoint_scans", "loiter_reports", "station_tickets")


def run_async(main: Callable[[], Any]) -> None:
    """``main()`` run to completion through :func:`tests.aio.run` (a loop in a thread of
    its own: the browser tests' Playwright keeps one on the caller's thread)."""
    aio.run(main())


def note(text: str) -> None:
    """A progress line on stderr."""
    print(f"[drill {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# ---- stacks --------------------------------------------------------------------------


def reset(s: settings_mod.Settings) -> settings_mod.Settings:
    """Empty topics, an empty Redis database and a consumer group of its own."""
    from gridwatch.streams.admin import recreate_topics

    recreate_topics(s)
    wait_for_leaders(s)
    r = redis.Redis.from_url(s.redis)
    try:
        r.flushdb()
    finally:
        r.close()
    return s.with_(group=f"gridwatch-drill-{uuid.uuid4().hex[:8]}")


def wait_for_leaders(s: settings_mod.Settings, timeout: float = 90.0) -> None:
    """Wait until every partition of every gridwatch topic has a leader."""
    from gridwatch.streams.topics import all_topics
    from kafka import KafkaAdminClient

    wanted = all_topics(s.partitions)
    last: Exception | None = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            admin = KafkaAdminClient(bootstrap_servers=s.kafka, client_id="gridwatch-drill",
                                     request_timeout_ms=5000)
            try:
                metas = admin.describe_topics(list(wanted))
            finally:
                admin.close()
            ready = sum(1 for meta in metas for p in meta.get("partitions", [])
                        if p.get("leader_id", p.get("leader", -1)) >= 0)
            if ready == sum(wanted.values()):
                return
        except Exception as exc:  # noqa: BLE001 - the broker may still be starting
            last = exc
        time.sleep(0.3)
    raise RuntimeError(f"partitions on {s.kafka} still without a leader after {timeout:.0f} s"
                       f" (last error: {last!r})")


def _stop_service(s: settings_mod.Settings, name: str, hard: bool) -> int:
    paths = stack.Paths(s.home)
    pid = stack._read_pid(paths.pidfile(name))
    if pid is None:
        raise RuntimeError(f"no {name} of this stack is running ({paths.pidfile(name)})")
    if hard:
        os.kill(pid, signal.SIGKILL)
        _wait_gone(pid)
    else:
        stack._stop(pid, timeout=60)
    paths.pidfile(name).unlink(missing_ok=True)
    return pid


def stop_kafka(s: settings_mod.Settings, *, hard: bool = False) -> int:
    """Stop the stack's broker (SIGTERM: a clean shutdown; ``hard``: SIGKILL)."""
    return _stop_service(s, "kafka", hard)


def stop_redis(s: settings_mod.Settings, *, hard: bool = False) -> int:
    """Stop the stack's redis-server (SIGTERM: it fsyncs its AOF and exits; ``hard``:
    SIGKILL, what the kernel has of the AOF stays, nothing more is written)."""
    return _stop_service(s, "redis", hard)


def _wait_gone(pid: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return
        time.sleep(0.05)


def aof_dir(s: settings_mod.Settings) -> Path:
    return stack.Paths(s.home).redis_data / "appendonlydir"


def start_stack_part(s: settings_mod.Settings) -> None:
    """Start whatever of the stack is down (``stack.up`` is idempotent)."""
    stack.up(s, log=lambda msg: note(f"stack: {msg}"))


# ---- workloads -----------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    name: str
    messages: list[Message]
    valid: int
    invalid: int


def city_events(events: int, seed: int, *, late_share: float = 0.01) -> list[tuple[str, dict[str, Any]]]:
    """The first ``events`` events of a seeded simulated city day (a fixed Monday), about
    1 % of them sent late."""
    from datetime import datetime

    from gridwatch.streams.simulate import CST, CityDay, Simulator

    from gridwatch.city import load_city

    profile = CityDay(scans=int(events * 1.1), loiter_reports=max(200, events // 40),
                      late_share=late_share)
    sim = Simulator(load_city(settings_mod.Settings().city), seed=seed,
                    start=datetime(2024, 3, 4, tzinfo=CST), profile=profile)
    out: list[tuple[str, dict[str, Any]]] = []
    for _, topic, event in sim.stream(days=1.0):
        out.append((topic.name, event))
        if len(out) >= events:
            break
    return out


def keyed(topic: str, event: dict[str, Any]) -> Message:
    from gridwatch.streams.topics import INPUT_BY_NAME

    return (topic, orjson.dumps(event), str(event[INPUT_BY_NAME[topic].key_field]).encode())


def city_workload(events: int, seed: int, *, invalid: int = 0) -> Workload:
    """Valid simulated events plus ``invalid`` broken messages (keyed, so each lands on
    the same partition in every run), interleaved at seeded places."""
    valid = city_events(events, seed)
    messages = [keyed(t, e) for t, e in valid]
    rng = random.Random(seed)
    for bad in bad_messages(rng, valid, invalid, kinds=INVALID_KINDS):
        # Always keyed: a key-less message would go to a random partition and make the
        # stored offsets differ between runs.
        key = bad.key or f"invalid-{len(messages)}".encode()
        messages.insert(rng.randrange(len(messages) + 1), (bad.topic, bad.raw, key))
    return Workload(f"city-{events}-{seed}-{invalid}", messages, len(valid), invalid)


@dataclass(frozen=True)
class Bad:
    kind: str
    topic: str
    raw: bytes
    key: bytes | None


INVALID_KINDS = ("random_bytes", "truncated_json", "wrong_type", "huge_field",
                 "oversize", "unknown_version", "not_an_object")
BAD_KINDS = INVALID_KINDS + ("duplicate",)

_WRONG = {"lon": "east", "lat": [31.2], "ts": 1700000000, "code_color": 7, "direction": None,
          "people": "many", "dwell_s": {"s": 1}, "seats": "2", "action": True,
          "event_id": 12345, "station_id": 3.5, "arrival_at": "tomorrow"}


def bad_messages(rng: random.Random, valid: list[tuple[str, dict[str, Any]]], n: int,
                 *, kinds: tuple[str, ...] = BAD_KINDS) -> list[Bad]:
    """``n`` bad messages, kinds in turn: random bytes, truncated JSON, a field of the
    wrong type, a huge field (a string of 201 to 12,000 characters), a message over the
    16 KiB limit (up to 40 KB), an unknown schema version, a JSON value that is not an
    object, and exact copies of valid events sent again (new records, same bytes)."""
    from gridwatch.streams.topics import INPUT_BY_NAME

    out: list[Bad] = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        topic, event = valid[rng.randrange(len(valid))]
        key: bytes | None = str(event[INPUT_BY_NAME[topic].key_field]).encode()
        broken = dict(event)
        if kind == "random_bytes":
            raw = rng.randbytes(rng.randint(1, 200))
            if raw[:1] in (b"{", b"[", b'"') or raw.strip() == b"":
                raw = b"\xff" + raw
            key = None if i % 2 else key
        elif kind == "truncated_json":
            whole = orjson.dumps(event)
            raw = whole[: rng.randint(1, len(whole) - 1)]
        elif kind == "wrong_type":
            name = rng.choice([f for f in broken if f in _WRONG])
            broken[name] = _WRONG[name]
            raw = orjson.dumps(broken)
        elif kind == "huge_field":
            name = rng.choice([f for f in ("event_id", "zone", "checkpoint_id", "camera_id",
                                           "station_id", "train_no", "origin") if f in broken])
            broken[name] = "x" * rng.randint(201, 12_000)
            raw = orjson.dumps(broken)
        elif kind == "oversize":
            broken["event_id"] = "y" * rng.randint(16_400, 40_000)
            raw = orjson.dumps(broken)
        elif kind == "unknown_version":
            broken["v"] = rng.choice([2, 0, 99, "1", 1.5, -1])
            raw = orjson.dumps(broken)
        elif kind == "not_an_object":
            raw = rng.choice([b"[1, 2, 3]", b'"scan"', b"42", b"null", b"true",
                              orjson.dumps([event])])
        elif kind == "duplicate":
            raw = orjson.dumps(event)
        else:
            raise ValueError(kind)
        out.append(Bad(kind, topic, raw, key))
    return out


# ---- producing -----------------------------------------------------------------------


def _resend_after_originals(mixed: list[tuple[Message, str | None]], copies: list[Bad],
                            rng: random.Random) -> list[tuple[Message, str | None]]:
    """Each copy placed somewhere after its original, up to ~2,000 messages later, as a
    producer's retry or a re-sent file would be: a copy sent before its original would
    be the original."""
    import heapq

    want: dict[tuple[str, bytes], list[Bad]] = {}
    for b in copies:
        want.setdefault((b.topic, b.raw), []).append(b)
    out: list[tuple[Message, str | None]] = []
    due: list[tuple[int, int, tuple[Message, str | None]]] = []
    seq = 0
    for i, item in enumerate(mixed):
        while due and due[0][0] <= i:
            out.append(heapq.heappop(due)[2])
        out.append(item)
        (topic, raw, _), kind = item
        if kind is None:
            for b in want.pop((topic, raw), []):
                seq += 1
                heapq.heappush(due, (i + rng.randint(1, 2000), seq,
                                     ((b.topic, b.raw, b.key), b.kind)))
    out.extend(item for _, _, item in sorted(due))
    out.extend(((b.topic, b.raw, b.key), b.kind) for bs in want.values() for b in bs)
    return out


def producer(s: settings_mod.Settings) -> Any:
    """An idempotent, acks=all kafka-python producer: each partition gets the messages in
    the order sent, once, also across a broker restart."""
    from kafka import KafkaProducer

    return KafkaProducer(bootstrap_servers=s.kafka, acks="all", enable_idempotence=True,
                         linger_ms=5, batch_size=256 * 1024, max_request_size=1_048_576,
                         max_block_ms=180_000, request_timeout_ms=30_000,
                         delivery_timeout_ms=600_000, retry_backoff_ms=200,
                         reconnect_backoff_max_ms=1000)


def send_all(s: settings_mod.Settings, messages: list[Message], *,
             positions: bool = False) -> list[tuple[str, int, int]]:
    """Send and flush; with ``positions``, return (topic, partition, offset) of each."""
    prod = producer(s)
    futures = [prod.send(t, value=v, key=k) for t, v, k in messages]
    prod.flush()
    out = []
    if positions:
        for f in futures:
            md = f.get(timeout=60)
            out.append((md.topic, md.partition, md.offset))
    prod.close()
    return out


class Feed(threading.Thread):
    """Sends the messages at ``rate`` a second (as a live feed would), counting them."""

    def __init__(self, s: settings_mod.Settings, messages: list[Message], rate: float,
                 *, already: int = 0) -> None:
        super().__init__(daemon=True)
        self.s, self.messages, self.rate = s, messages, rate
        self.already = already  # the first ones, sent before (the warm-up)
        self.sent = already
        self.error: BaseException | None = None
        self.finished_at: float | None = None

    def run(self) -> None:
        try:
            prod = producer(self.s)
            started = time.monotonic()
            step = max(1, int(self.rate / 20))
            for i in range(self.already, len(self.messages), step):
                for t, v, k in self.messages[i:i + step]:
                    prod.send(t, value=v, key=k)
                self.sent = min(len(self.messages), i + step)
                ahead = started + (self.sent - self.already) / self.rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            prod.flush()
            prod.close()
        except BaseException as exc:  # noqa: BLE001 - reported by the drill
            self.error = exc
        finally:
            self.finished_at = time.monotonic()


# ---- processes -----------------------------------------------------------------------


class Workers:
    """Real ``gridwatch worker`` processes in one consumer group, timers off (they follow
    the wall clock; the state under test follows the feed's clock), metrics port off."""

    def __init__(self, s: settings_mod.Settings, logdir: Path, **env: str) -> None:
        self.s, self.logdir, self.extra = s, logdir, env
        self.procs: list[subprocess.Popen[bytes]] = []
        self.killed: set[int] = set()
        logdir.mkdir(parents=True, exist_ok=True)

    def env(self) -> dict[str, str]:
        s = self.s
        return {**os.environ, "GRIDWATCH_KAFKA": s.kafka, "GRIDWATCH_REDIS": s.redis,
                "GRIDWATCH_HOME": str(s.home), "GRIDWATCH_PARTITIONS": str(s.partitions),
                "GRIDWATCH_GROUP": s.group, "GRIDWATCH_TIMERS": "0",
                "GRIDWATCH_WORKER_HTTP": "0", **self.extra}

    def start(self) -> subprocess.Popen[bytes]:
        n = len(self.procs)
        with open(self.logdir / f"worker-{n}.log", "ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "gridwatch.cli", "worker"],
                                    env=self.env(), stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True, cwd=ROOT)
        self.procs.append(proc)
        return proc

    def kill9(self, proc: subprocess.Popen[bytes]) -> None:
        self.killed.add(proc.pid)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)

    def pause(self, proc: subprocess.Popen[bytes]) -> None:
        os.killpg(proc.pid, signal.SIGSTOP)

    def resume(self, proc: subprocess.Popen[bytes]) -> None:
        os.killpg(proc.pid, signal.SIGCONT)

    def unexpected_exits(self) -> list[str]:
        """Workers that ended without being killed by the drill."""
        return [f"worker pid {p.pid} exited with {p.returncode} (log {self.logdir}/worker-{i}.log)"
                for i, p in enumerate(self.procs)
                if p.poll() is not None and p.pid not in self.killed]

    def stop_all(self) -> None:
        for proc in self.procs:
            self.killed.add(proc.pid)  # ended by the drill, not by itself
            if proc.poll() is None:
                with _suppress():
                    os.killpg(proc.pid, signal.SIGCONT)
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                with _suppress():
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


class _suppress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return exc[0] is not None and issubclass(exc[0], (OSError, ProcessLookupError))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Gateway:
    """``gridwatch gateway`` on a port of its own, as a process."""

    def __init__(self, s: settings_mod.Settings, logdir: Path) -> None:
        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "GRIDWATCH_KAFKA": s.kafka, "GRIDWATCH_REDIS": s.redis,
                    "GRIDWATCH_HOME": str(s.home), "GRIDWATCH_PARTITIONS": str(s.partitions),
                    "GRIDWATCH_GATEWAY": f"127.0.0.1:{self.port}",
                    "GRIDWATCH_WEB_ORIGIN": self.origin}
        logdir.mkdir(parents=True, exist_ok=True)
        self.log = logdir / "gateway.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "gridwatch.cli", "gateway"],
                                         env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True, cwd=ROOT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.origin}/healthz", timeout=1).read()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)
        self.stop(hard=True)  # one that never answered is not left running
        raise RuntimeError(f"gateway did not start: {self.log.read_text()[-2000:]}")

    def stop(self, *, hard: bool = False) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL if hard else signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)

    def login(self, r: redis.Redis, user: Any) -> str:
        """A session token for ``user`` through its one-time login link."""
        from gridwatch.ws import users

        token = users.add_user(r, user)
        form = urllib.request.Request(f"{self.origin}/login", method="POST",
                                      data=f"token={token}".encode())  # the link's button
        with urllib.request.urlopen(form, timeout=30) as reply:
            cookie = reply.headers["Set-Cookie"]
        return cookie.split(";", 1)[0].split("=", 1)[1]


# ---- observing -----------------------------------------------------------------------


def progress(r: redis.Redis) -> int:
    """Messages consumed so far: valid ones per kind, dead letters, and duplicates (a
    message whose event id was applied before moves the offset and counts only there)."""
    sm = store.summary(r)
    return sum(sm[k] for k in SUMMARY_KINDS) + sm["deadletter"] + sm.get("duplicates", 0)


class Monitor(threading.Thread):
    """Samples, every 0.25 s: messages applied (from Redis) and messages sent (from the
    feed); the lag is their difference. Samples while Redis is away are skipped."""

    def __init__(self, s: settings_mod.Settings, sent: Callable[[], int]) -> None:
        super().__init__(daemon=True)
        self.s, self.sent = s, sent
        self.samples: list[tuple[float, int, int]] = []  # t, applied, sent
        self.marks: dict[str, float] = {}
        self.stopping = threading.Event()
        self.t0 = time.monotonic()

    def mark(self, name: str) -> float:
        t = time.monotonic()
        self.marks[name] = t
        note(f"{name} (t = {t - self.t0:.1f} s)")
        return t

    def run(self) -> None:
        r = redis.Redis.from_url(self.s.redis, decode_responses=True, socket_timeout=2,
                                 socket_connect_timeout=1)
        while not self.stopping.is_set():
            sent = self.sent()
            try:
                applied = progress(r)
                self.samples.append((time.monotonic(), applied, sent))
            except redis.RedisError:
                pass
            self.stopping.wait(0.25)
        r.close()

    def stop(self) -> None:
        self.stopping.set()
        self.join(5)

    def figures(self, fault: str, restored: str) -> dict[str, Any]:
        """Max lag, lag before the fault, how long after the fault processing resumed and
        when the lag was back to what it was before."""
        t_fault, t_back = self.marks[fault], self.marks.get(restored, self.marks[fault])
        lags = [(t, sent - applied) for t, applied, sent in self.samples]
        before = [lag for t, lag in lags if t_fault - 10 <= t < t_fault]
        baseline = max(before) if before else 0
        # Applied as first seen once the fault is over (what the faulty part left), and
        # the first sample beyond that: processing has resumed.
        after = [(t, a) for t, a, _ in self.samples if t > t_back]
        resumed = next((t for t, a in after if a > after[0][1]), None) if after else None
        # Back to the lag before the fault, after the highest lag the fault caused.
        after_fault = [(t, lag) for t, lag in lags if t >= t_fault]
        peak_t = max(after_fault, key=lambda x: x[1])[0] if after_fault else t_back
        recovered = next((t for t, lag in lags if t > max(t_back, peak_t) and lag <= max(baseline, 50)),
                         None)
        stall, since, prev = 0.0, None, None
        for t, applied, sent in self.samples:
            if prev is None or applied > prev or sent <= applied:
                since, prev = t, applied
            elif since is not None:
                stall = max(stall, t - since)
        return {
            "max_lag": max((lag for _, lag in lags), default=0),
            "lag_before_fault": baseline,
            "fault_s": round(t_back - t_fault, 1),
            "resumed_after_s": None if resumed is None else round(resumed - t_fault, 1),
            "recovered_after_s": None if recovered is None else round(recovered - t_fault, 1),
            "longest_stall_s": round(stall, 1),
        }


def wait_applied_and_quiet(r: redis.Redis, total: int, *, timeout: float,
                           quiet_timeout: float = 120.0, stall_s: float = 90.0) -> bool:
    """Wait until ``total`` messages are applied and the risk refresher has gone quiet
    (its channel stream and the stored offsets unchanged over three looks). False on
    ``timeout``, or when nothing more was applied for ``stall_s`` seconds."""
    deadline = time.monotonic() + timeout
    last, moved = -1, time.monotonic()
    while True:
        try:
            now = progress(r)
        except redis.ConnectionError:
            now = last
        if now >= total:
            break
        if now != last:
            last, moved = now, time.monotonic()
        if time.monotonic() > deadline or time.monotonic() - moved > stall_s:
            return False
        time.sleep(0.25)
    looks: list[tuple[Any, ...]] = []
    deadline = time.monotonic() + quiet_timeout
    while time.monotonic() < deadline:
        last = r.xinfo_stream(keys.CHAN_GRIDS)["last-generated-id"] if r.exists(keys.CHAN_GRIDS) else None
        looks.append((last, tuple(sorted(r.hgetall(keys.OFFSETS).items())), progress(r)))
        # ... and no grid waits for its score (a dead worker's marks are picked up by
        # the survivors within a second).
        if (len(looks) >= 3 and looks[-1] == looks[-2] == looks[-3]
                and not r.scard(keys.RISK_DIRTY)):
            return True
        time.sleep(0.75)
    return False


def _short(value: Any, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def dump_diff(expected: dict[str, Any], actual: dict[str, Any], *, limit: int = 10) -> str:
    """A readable account of how two dumps differ ("" when they are equal)."""
    lines: list[str] = []
    missing = sorted(expected.keys() - actual.keys())
    extra = sorted(actual.keys() - expected.keys())
    if missing:
        lines.append(f"{len(missing)} keys missing, first: {missing[:limit]}")
    if extra:
        lines.append(f"{len(extra)} keys not in the reference, first: {extra[:limit]}")
    differing = [k for k in sorted(expected.keys() & actual.keys()) if expected[k] != actual[k]]
    if differing:
        lines.append(f"{len(differing)} keys with other values; the first {min(limit, len(differing))}:")
    for k in differing[:limit]:
        want, got = expected[k], actual[k]
        if isinstance(want, dict) and isinstance(got, dict):
            fields = sorted(set(want) | set(got))
            changed = {f: (want.get(f), got.get(f)) for f in fields if want.get(f) != got.get(f)}
            lines.append(f"  {k}: fields (reference, run): {_short(changed)}")
        elif isinstance(want, str) and isinstance(got, str):
            at = next((i for i, (x, y) in enumerate(zip(want, got)) if x != y), min(len(want), len(got)))
            lo = max(0, at - 60)
            lines.append(f"  {k}: first difference at character {at}:\n"
                         f"    reference ...{want[lo:at + 60]!r}\n    run       ...{got[lo:at + 60]!r}")
        else:
            lines.append(f"  {k}:\n    reference {_short(want)}\n    run       {_short(got)}")
    return "\n".join(lines)


def diff_families(expected: dict[str, Any], actual: dict[str, Any]) -> dict[str, int]:
    """How many keys differ (missing, extra or other value) per key family."""
    out: dict[str, int] = {}
    for k in (expected.keys() | actual.keys()):
        if expected.get(k) != actual.get(k):
            fam = ":".join(p for p in k.split(":")[:2])
            out[fam] = out.get(fam, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def offsets_behind(expected: dict[str, Any], actual: dict[str, Any]) -> str:
    """Per partition: applied offset of the reference and of the run, where they differ."""
    want, got = expected.get(keys.OFFSETS, {}), actual.get(keys.OFFSETS, {})
    rows = [f"{p}: {want.get(p)} vs {got.get(p)}" for p in sorted(set(want) | set(got))
            if want.get(p) != got.get(p)]
    return "; ".join(rows) if rows else "every partition's offset as in the reference"


# ---- verdicts ------------------------------------------------------------------------


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class Result:
    drill: str
    checks: list[Check] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    diagnosis: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append(Check(name, bool(ok), detail))
        return bool(ok)

    def render(self) -> str:
        lines = [f"== {self.drill}: {'PASS' if self.ok else 'FAIL'} ({self.seconds:.0f} s)"]
        for k, v in self.figures.items():
            lines.append(f"   {k:<22} {v}")
        for c in self.checks:
            lines.append(f"   [{'ok' if c.ok else 'FAIL'}] {c.name}" + (f": {c.detail}" if c.detail and not c.ok else ""))
        if self.diagnosis:
            lines.append("   diagnosis: " + self.diagnosis.replace("\n", "\n   "))
        return "\n".join(lines)

    def explain(self) -> str:
        return "\n".join(f"{c.name}: {c.detail}" for c in self.checks if not c.ok) + (
            f"\n{self.diagnosis}" if self.diagnosis else "")


# ---- the state drills ----------------------------------------------------------------


_REFERENCES: dict[tuple[str, str], dict[str, Any]] = {}


def reference(s: settings_mod.Settings, w: Workload, logdir: Path, *,
              timeout: float = 900.0) -> dict[str, Any]:
    """The dump of one clean pass of one worker over ``w`` (pre-loaded), made once per
    process and stack."""
    cache = (w.name, s.redis)
    if cache in _REFERENCES:
        return _REFERENCES[cache]
    s = reset(s)
    note(f"reference: a clean pass over {len(w.messages):,} messages")
    send_all(s, w.messages)
    workers = Workers(s, logdir / "reference")
    r = store.connect(s.redis)
    try:
        workers.start()
        if not wait_applied_and_quiet(r, len(w.messages), timeout=timeout):
            raise RuntimeError(f"the clean pass applied {progress(r):,} of {len(w.messages):,} "
                               f"messages in {timeout:.0f} s; see {workers.logdir}")
        sm = store.summary(r)
        dump = store.dump(r)
    finally:
        workers.stop_all()
        r.close()
    if sm["deadletter"] != w.invalid or sum(sm[k] for k in SUMMARY_KINDS) != w.valid:
        raise RuntimeError(f"the clean pass does not hold the workload: {sm}")
    _REFERENCES[cache] = dump
    return dump


@dataclass
class Fault:
    """What a drill does to the running system: ``inject`` at the fault point (marks
    "fault" and "restored" on the monitor)."""

    name: str
    inject: Callable[[Run], None]
    workers: int = 1


@dataclass
class Run:
    s: settings_mod.Settings
    workers: Workers
    monitor: Monitor
    feed: Feed
    live: list[subprocess.Popen[bytes]]
    rng: random.Random
    notes: dict[str, Any] = field(default_factory=dict)


def state_drill(s: settings_mod.Settings, w: Workload, fault: Fault, logdir: Path, *,
                rate: float, fault_at: float = 0.35, seed: int = 1,
                timeout: float = 900.0) -> Result:
    """Run the drill: the clean reference, then the same messages fed at ``rate`` a
    second with the fault injected once ``fault_at`` of them have been sent; then the
    verdict: every message applied, the state identical to the reference, no worker
    ended by itself."""
    began = time.monotonic()
    result = Result(fault.name)
    ref = reference(s, w, logdir)
    s = reset(s)
    total = len(w.messages)
    # A warm-up: the first messages are there before the workers start, and the feed
    # begins once they are applied (so the lag measures the fault, not a worker's start).
    warm = min(total // 10, int(rate * 2))
    send_all(s, w.messages[:warm])
    feed = Feed(s, w.messages, rate, already=warm)
    monitor = Monitor(s, lambda: feed.sent)
    workers = Workers(s, logdir / fault.name)
    r = store.connect(s.redis)
    run = Run(s, workers, monitor, feed, [], random.Random(seed))
    done = False
    try:
        run.live = [workers.start() for _ in range(fault.workers)]
        deadline = time.monotonic() + 180
        while progress(r) < warm and time.monotonic() < deadline:
            time.sleep(0.1)
        monitor.start()
        feed.start()
        while feed.sent < fault_at * total and feed.is_alive():
            time.sleep(0.1)
        fault.inject(run)
        feed.join()
        monitor.mark("fed")
        done = wait_applied_and_quiet(r, total, timeout=timeout)
        monitor.mark("applied")
        exits = workers.unexpected_exits()
        actual = store.dump(r) if done else {}
        applied = progress(r)
        sm = store.summary(r)
    finally:
        monitor.stop()
        workers.stop_all()
        r.close()
    result.figures = {
        "messages": f"{total:,} ({w.valid:,} valid, {w.invalid:,} invalid), fed at {rate:,.0f}/s",
        "applied": f"{applied:,}",
        **monitor.figures("fault", "restored"),
        "catch_up_after_feed_s": round(monitor.marks["applied"] - monitor.marks["fed"], 1),
        **run.notes,
    }
    result.check("the feed sent everything", feed.error is None, repr(feed.error))
    result.check("no worker ended by itself", not exits, "; ".join(exits))
    result.check("every message applied, none twice", done and applied == total,
                 f"{applied:,} of {total:,} applied (summary {sm})")
    if done:
        same = actual == ref
        detail = "" if same else (f"differing key families {diff_families(ref, actual)}; "
                                  f"offsets (reference vs run): {offsets_behind(ref, actual)}\n"
                                  + dump_diff(ref, actual))
        result.check("state identical to the clean run", same, detail)
        if not same:
            want = {k: v for k, v in ref.get(keys.SUMMARY, {}).items()}
            got = {k: v for k, v in actual.get(keys.SUMMARY, {}).items()}
            result.diagnosis = f"summary reference {want} vs run {got}"
    else:
        result.check("state identical to the clean run", False, "not compared: the run never finished")
    result.seconds = time.monotonic() - began
    return result


# ---- the faults ----------------------------------------------------------------------


def kill_worker_fault(kills: int = 2, spacing_s: float = 6.0) -> Fault:
    """SIGKILL the worker ``kills`` times, ``spacing_s`` apart, a new one started at once
    each time (a supervisor's restart)."""

    def inject(run: Run) -> None:
        for i in range(kills):
            time.sleep(run.rng.uniform(0.0, 0.5))  # land anywhere inside a batch's cycle
            victim = run.live.pop(run.rng.randrange(len(run.live)))
            run.workers.kill9(victim)
            run.monitor.mark("fault" if i == 0 else f"kill {i + 1}")
            run.live.append(run.workers.start())
            run.monitor.mark("restored" if i == 0 else f"restarted {i + 1}")
            if i + 1 < kills:
                time.sleep(spacing_s)
        run.notes["kills"] = kills

    return Fault("kill-worker", inject)


def redis_fault(mode: str, down_s: float = 3.0, lose_s: float = 3.0) -> Fault:
    """Redis stopped and started again under a running worker.

    ``restart``: SIGTERM (clean shutdown, AOF fsynced), started ``down_s`` later.
    ``kill``: SIGKILL, started ``down_s`` later.
    ``loss``: as a machine crash with ``appendfsync everysec`` would leave it: the AOF is
    copied, the worker applies ``lose_s`` seconds more, then redis-server is SIGKILLed
    and started from the copy, so Redis comes back with the state (and the offsets) of
    ``lose_s`` seconds earlier.
    """

    def inject(run: Run) -> None:
        s = run.s
        if mode == "loss":
            snap = s.home / "aof-drill-copy"
            shutil.rmtree(snap, ignore_errors=True)
            r = store.connect(s.redis)
            at_copy = progress(r)
            r.close()
            shutil.copytree(aof_dir(s), snap)
            time.sleep(lose_s)
            r = store.connect(s.redis)
            at_kill = progress(r)
            r.close()
            run.monitor.mark("fault")
            stop_redis(s, hard=True)
            shutil.rmtree(aof_dir(s))
            shutil.copytree(snap, aof_dir(s))
            shutil.rmtree(snap)
            run.notes["rolled_back_messages"] = f"about {at_kill - at_copy:,} (Redis went back {lose_s:.0f} s)"
        else:
            run.monitor.mark("fault")
            stop_redis(s, hard=(mode == "kill"))
        time.sleep(down_s)
        start_stack_part(s)
        run.monitor.mark("restored")
        if mode == "loss":
            r = store.connect(s.redis)
            run.notes["applied_after_rollback"] = f"{progress(r):,}"
            r.close()

    return Fault(f"redis-{mode}", inject)


def kafka_fault(down_s: float = 5.0, hard: bool = False) -> Fault:
    """The broker stopped (SIGTERM, or SIGKILL with ``hard``) and started again
    ``down_s`` later from its data in the stack home."""

    def inject(run: Run) -> None:
        t0 = run.monitor.mark("fault")
        pid = stop_kafka(run.s, hard=hard)
        t1 = time.monotonic()
        time.sleep(down_s)
        t2 = time.monotonic()
        start_stack_part(run.s)
        wait_for_leaders(run.s)
        t3 = run.monitor.mark("restored")
        run.notes["broker"] = (f"pid {pid} {'SIGKILLed' if hard else 'stopped (SIGTERM)'} in "
                               f"{t1 - t0:.1f} s, down {down_s:.0f} s, up with leaders in {t3 - t2:.1f} s")

    return Fault("kafka-restart", inject)


def pause_fault(pause_s: float = 120.0) -> Fault:
    """Two workers in one group; one is SIGSTOPped for ``pause_s`` seconds (its session
    times out, the group rebalances, the other takes its partitions) and then SIGCONTed
    (it wakes holding a batch and partitions it no longer owns)."""

    def inject(run: Run) -> None:
        victim = run.live[0]
        run.workers.pause(victim)
        run.monitor.mark("fault")
        time.sleep(pause_s)
        run.workers.resume(victim)
        run.monitor.mark("restored")
        run.notes["paused"] = f"worker pid {victim.pid} for {pause_s:.0f} s, 2 workers in the group"

    return Fault("worker-pause", inject, workers=2)


# ---- bad input -----------------------------------------------------------------------


def read_deadletters(s: settings_mod.Settings, timeout_s: float = 10.0) -> list[dict[str, Any]]:
    from gridwatch.streams.topics import DEADLETTER
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=s.kafka, enable_auto_commit=False,
                             consumer_timeout_ms=int(timeout_s * 1000), max_partition_fetch_bytes=4 << 20)
    parts = [TopicPartition(DEADLETTER, p) for p in range(s.partitions)]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    ends = consumer.end_offsets(parts)
    out = []
    for msg in consumer:
        out.append(orjson.loads(msg.value))
        if all(consumer.position(tp) >= ends[tp] for tp in parts):
            break
    consumer.close()
    return out


def bad_input_drill(s: settings_mod.Settings, logdir: Path, *, valid: int, bad: int,
                    seed: int = 7, rate: float = 0.0, timeout: float = 1800.0) -> Result:
    """Valid simulated traffic with ``bad`` bad messages mixed in (every kind of
    :data:`BAD_KINDS` in turn). The verdict: the worker stayed up; every invalid one is
    in the dead-letter topic, once per source offset, with a reason; the duplicates
    changed nothing and every valid event was applied: the state equals that of a clean
    run of the valid events alone, but for the offsets (there are more records) and the
    dead-letter count."""
    began = time.monotonic()
    result = Result("bad-input")
    events = city_events(valid, seed)
    clean = Workload(f"valid-{valid}-{seed}", [keyed(t, e) for t, e in events], len(events), 0)
    ref = reference(s, clean, logdir)
    rng = random.Random(seed)
    bads = bad_messages(rng, events, bad)
    mixed: list[tuple[Message, str | None]] = [(m, None) for m in clean.messages]
    for b in bads:
        if b.kind != "duplicate":
            mixed.insert(rng.randrange(len(mixed) + 1), ((b.topic, b.raw, b.key), b.kind))
    mixed = _resend_after_originals(mixed, [b for b in bads if b.kind == "duplicate"], rng)
    s = reset(s)
    total = len(mixed)
    note(f"bad input: {len(events):,} valid events and {len(bads):,} bad messages "
         f"({', '.join(BAD_KINDS)}), {total:,} in all")
    t_send = time.monotonic()
    positions = send_all(s, [m for m, _ in mixed], positions=True)
    send_s = time.monotonic() - t_send
    expected_dl = {pos: kind for pos, (_, kind) in zip(positions, mixed)
                   if kind is not None and kind != "duplicate"}
    duplicates = sum(1 for _, kind in mixed if kind == "duplicate")
    workers = Workers(s, logdir / "bad-input")
    r = store.connect(s.redis)
    monitor = Monitor(s, lambda: total)
    try:
        t0 = time.monotonic()
        proc = workers.start()
        monitor.start()
        done = wait_applied_and_quiet(r, total, timeout=timeout)
        took = time.monotonic() - t0
        alive = proc.poll() is None
        exits = workers.unexpected_exits()
        applied = progress(r)
        sm = store.summary(r)
        actual = store.dump(r) if done else {}
    finally:
        monitor.stop()
        workers.stop_all()
        r.close()
    letters = read_deadletters(s)
    by_source: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
    for d in letters:
        src = d["source"]
        by_source.setdefault((src["topic"], src["partition"], src["offset"]), []).append(d)
    missing = [pos for pos in expected_dl if pos not in by_source]
    unexpected = [pos for pos in by_source if pos not in expected_dl]
    no_reason = [pos for pos, ds in by_source.items() if not all(d.get("reason") for d in ds)]
    reasons: dict[str, dict[str, int]] = {}
    for pos, kind in expected_dl.items():
        for d in by_source.get(pos, [])[:1]:
            reason = str(d.get("reason"))
            short = reason.split(":")[0][:40] if kind != "wrong_type" else (d.get("field") or "?")
            reasons.setdefault(kind, {}).setdefault(short, 0)
            reasons[kind][short] += 1
    result.figures = {
        "messages": f"{total:,}: {len(events):,} valid, {len(expected_dl):,} invalid, "
                    f"{duplicates:,} duplicates of valid events",
        "sent_in_s": round(send_s, 1),
        "applied": f"{applied:,} in {took:.1f} s ({applied / took:,.0f} messages/s)",
        "max_lag": max((sent - a for _, a, sent in monitor.samples), default=0),
        "dead_letters_read": f"{len(letters):,} ({len(by_source):,} distinct sources)",
        "reasons_per_kind": "; ".join(f"{k}: " + ", ".join(f"{n} x {why!r}" for why, n in v.items())
                                      for k, v in reasons.items()),
    }
    result.check("the worker stayed up", alive and not exits,
                 "; ".join(exits) or "worker not running")
    result.check("every message consumed", done and applied == total,
                 f"{applied:,} of {total:,} (summary {sm})")
    result.check("every invalid message dead-lettered, once per source offset",
                 not missing and not unexpected,
                 f"{len(missing)} missing (first {missing[:5]}), {len(unexpected)} not invalid (first {unexpected[:5]})")
    result.check("every dead letter has its reason", not no_reason, f"{len(no_reason)} without a reason")
    result.check("the dead-letter count is the invalid count", sm["deadletter"] == len(expected_dl),
                 f"{sm['deadletter']:,} counted, {len(expected_dl):,} invalid")
    result.check("every duplicate of a valid event recognised as one",
                 sm.get("duplicates", 0) == duplicates,
                 f"{sm.get('duplicates', 0):,} counted, {duplicates:,} sent")
    if done:
        def strip(d: dict[str, Any]) -> dict[str, Any]:
            out = {k: v for k, v in d.items() if k != keys.OFFSETS}
            out[keys.SUMMARY] = {k: v for k, v in d.get(keys.SUMMARY, {}).items()
                                 if k not in ("deadletter", "duplicates")}
            return out

        want, got = strip(ref), strip(actual)
        counted = {k: int(got[keys.SUMMARY].get(k, 0)) - int(want[keys.SUMMARY].get(k, 0))
                   for k in SUMMARY_KINDS}
        result.check("the valid events are all applied (summary per kind as in the clean run)",
                     all(v >= 0 for v in counted.values()), f"run minus clean run: {counted}")
        result.check("duplicates changed nothing: state identical to the clean run of the "
                     "valid events (offsets and dead-letter count aside)", want == got,
                     f"run minus clean run per kind: {counted}; differing key families "
                     f"{diff_families(want, got)}\n" + dump_diff(want, got, limit=5))
    result.seconds = time.monotonic() - began
    return result


# ---- gateway restart -----------------------------------------------------------------


class WsClient:
    """A cockpit client that records every alert-channel delta and resumes with the last
    stream id it saw."""

    def __init__(self, gw: Gateway, session: str, user: Any) -> None:
        self.gw, self.session, self.user = gw, session, user
        self.last: dict[str, str] = {}
        self.alerts: list[str] = []
        self.snapshots: dict[str, list[str]] = {}
        self.connects: list[float] = []
        self.closes: list[Any] = []
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidHandshake

        while True:
            try:
                async with connect(f"ws://127.0.0.1:{self.gw.port}/ws", open_timeout=90,
                                   additional_headers={"Authorization": f"Bearer {self.session}",
                                                       "Origin": self.gw.origin}) as ws:
                    self.connects.append(time.monotonic())
                    await ws.send(orjson.dumps({"op": "hello", "last": self.last}).decode())
                    async for raw in ws:
                        self.take(orjson.loads(raw))
                    self.closes.append(ws.close_code)
            # InvalidHandshake covers a refused upgrade and a connection the stopping
            # gateway dropped mid-handshake (EOF): a client tries again in both cases.
            except (OSError, EOFError, ConnectionClosed, InvalidHandshake, asyncio.TimeoutError) as exc:
                self.closes.append(type(exc).__name__)
                await asyncio.sleep(0.3 + random.random() * 1.2)  # jitter: no reconnect storm

    def take(self, f: dict[str, Any]) -> None:
        ch = f.get("ch")
        if f.get("snapshot"):
            self.snapshots.setdefault(ch, []).append(f["id"])
            self.last[ch] = f["id"]
        elif "id" in f and ch:
            if ch == "alerts":
                self.alerts.append(f["id"])
            self.last[ch] = f["id"]

    def expected(self, entries: list[tuple[str, dict[str, Any]]]) -> list[str]:
        from gridwatch.ws.channels import parse_id

        head = self.snapshots.get("alerts", ["0-0"])[0]
        start = parse_id(head)
        out = []
        for sid, msg in entries:
            if parse_id(sid) <= start:
                continue
            body = msg.get("alert") or msg.get("incident") or msg
            if self.user.role == "duty_officer" or body.get("grid_id") in self.user.grids:
                out.append(sid)
        return out


def _red_scans(events: list[tuple[str, dict[str, Any]]], every: int) -> list[Message]:
    """The scans of ``events``, every ``every``-th one with a red code (each raises an
    alert), keyed by person."""
    out = []
    n = 0
    for topic, e in events:
        if topic != "gridwatch.checkpoint-scans":
            continue
        n += 1
        if n % every == 0:
            e = {**e, "code_color": "red"}
        out.append(keyed(topic, e))
    return out


def gateway_drill(s: settings_mod.Settings, logdir: Path, *, clients: int = 100,
                  seconds: float = 40.0, rate: float = 300.0, red_every: int = 10,
                  down_s: float = 2.0, hard: bool = False, seed: int = 5,
                  timeout: float = 300.0) -> Result:
    """A worker, the gateway and ``clients`` logged-in WebSocket clients (90 % duty
    officers, the rest grid workers of a few grids each); scans with red codes flow in
    (alerts at ``rate / red_every`` a second); halfway the gateway is restarted
    (SIGTERM, or SIGKILL with ``hard``). The verdict: every client got every alert
    stream entry it may see after its snapshot, in order, exactly once, with no second
    snapshot (it resumed from its last id)."""
    from gridwatch.ws.auth import User

    began = time.monotonic()
    result = Result("gateway-restart")
    s = reset(s)
    grids = [f"G{n:04d}" for n in range(1, 801)]
    messages = _red_scans(city_events(int(rate * seconds * 1.05) + 200, seed), red_every)
    messages = messages[: int(rate * seconds)]
    workers = Workers(s, logdir / "gateway-restart")
    gw = Gateway(s, logdir / "gateway-restart")
    r = store.connect(s.redis)
    rb = redis.Redis.from_url(s.redis)
    workers.start()
    gw.start()
    rng = random.Random(seed)
    people = []
    for i in range(clients):
        if i % 10 == 9:
            people.append(User(f"w{i:04d}", "grid_worker", grids=tuple(rng.sample(grids, 40))))
        else:
            people.append(User(f"officer{i:03d}", "duty_officer"))
    sessions = [gw.login(rb, u) for u in people]
    feed = Feed(s, messages, rate)
    ws_clients = [WsClient(gw, sess, u) for sess, u in zip(sessions, people)]
    figures: dict[str, Any] = {}
    outcome: dict[str, Any] = {}

    async def main() -> None:
        t_connect = time.monotonic()
        for i, c in enumerate(ws_clients):
            c.task = asyncio.create_task(c.run())
            if i % 10 == 9:
                await asyncio.sleep(0.2)
        deadline = time.monotonic() + 180
        while not all(c.snapshots.get("alerts") for c in ws_clients):
            if time.monotonic() > deadline:
                have = sum(1 for c in ws_clients if c.snapshots.get("alerts"))
                raise RuntimeError(f"{have} of {clients} clients got their snapshot within 180 s")
            await asyncio.sleep(0.1)
        figures["all_connected_s"] = round(time.monotonic() - t_connect, 1)
        note(f"{clients} clients connected with their snapshots")
        feed.start()
        while feed.sent < len(messages) / 2 and feed.is_alive():
            await asyncio.sleep(0.1)
        t_fault = time.monotonic()
        await asyncio.to_thread(gw.stop, hard=hard)
        await asyncio.sleep(down_s)
        await asyncio.to_thread(gw.start)
        t_up = time.monotonic()
        note(f"gateway restarted ({'SIGKILL' if hard else 'SIGTERM'}), down {t_up - t_fault:.1f} s")
        deadline = time.monotonic() + 180
        while not all(any(t > t_fault for t in c.connects) for c in ws_clients):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        # From the moment the new gateway answered /healthz to each client's reconnect.
        back = [max(0.0, min(t for t in c.connects if t > t_fault) - t_up)
                for c in ws_clients if any(t > t_fault for t in c.connects)]
        figures["clients_back"] = f"{len(back)} of {clients}"
        figures["reconnected_after_restart_s"] = (f"median {sorted(back)[len(back) // 2]:.2f}, "
                                                  f"max {max(back):.2f}") if back else "none"
        figures["gateway_down_s"] = round(t_up - t_fault, 1)
        await asyncio.to_thread(feed.join)
        total = len(messages)
        if not await asyncio.to_thread(wait_applied_and_quiet, r, total, timeout=timeout):
            outcome["applied"] = False
            return
        outcome["applied"] = True
        entries = [(sid.decode(), orjson.loads(fields[b"d"])) for sid, fields in rb.xrange(keys.CHAN_ALERTS)]
        outcome["entries"] = entries
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if all(len(c.alerts) >= len(c.expected(entries)) for c in ws_clients):
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # anything more arriving now would be a duplicate
        for c in ws_clients:
            assert c.task
            c.task.cancel()
        await asyncio.gather(*(c.task for c in ws_clients if c.task), return_exceptions=True)

    try:
        run_async(main)
    finally:
        exits = workers.unexpected_exits()
        gw.stop()
        workers.stop_all()
        r.close()
        rb.close()
    entries = outcome.get("entries", [])
    result.check("the worker applied every scan", bool(outcome.get("applied")))
    result.check("no worker ended by itself", not exits, "; ".join(exits))
    wrong = []
    dupes = gaps = extra = 0
    for c in ws_clients:
        want = c.expected(entries)
        if c.alerts != want:
            got = set(c.alerts)
            gaps += sum(1 for x in want if x not in got)
            extra += sum(1 for x in c.alerts if x not in set(want))
            dupes += len(c.alerts) - len(got)
            wrong.append(f"{c.user.name}: {len(c.alerts)} got, {len(want)} expected")
    resnap = [c.user.name for c in ws_clients if len(c.snapshots.get("alerts", [])) != 1]
    reconnected = [c for c in ws_clients if len(c.connects) >= 2]
    per_client = [len(c.alerts) for c in ws_clients]
    result.figures = {
        "clients": f"{clients} ({sum(1 for u in people if u.role == 'duty_officer')} duty officers, "
                   f"{sum(1 for u in people if u.role == 'grid_worker')} grid workers)",
        "scans": f"{len(messages):,} at {rate:,.0f}/s, every {red_every}th red",
        "alert_entries": f"{len(entries):,} in the channel stream",
        "deliveries": f"{sum(per_client):,} (per client {min(per_client)}-{max(per_client)})",
        **figures,
    }
    result.check("every client reconnected after the restart", len(reconnected) == clients,
                 f"{len(reconnected)} of {clients}")
    result.check("every client resumed from its last id (no second snapshot)", not resnap,
                 f"{len(resnap)} clients took a new snapshot: {resnap[:5]}")
    result.check("every client got every alert it may see, in order, exactly once",
                 bool(entries) and not wrong,
                 f"{len(wrong)} clients differ ({gaps} missing, {dupes} duplicated, "
                 f"{extra} not expected); first: {wrong[:5]}")
    result.seconds = time.monotonic() - began
    return result
