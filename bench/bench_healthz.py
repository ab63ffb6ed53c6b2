"""Benchmark of the gateway's door under a bad-secret flood: ``/healthz`` latency, idle and
while ~300 requests a second arrive with a wrong session secret.

A real gateway process on the bench stack's Redis (Kafka is not needed: the gateway
retries it in the background). One user is made and logged in through its link; the
flood then asks ``/api/me`` with that session's id and a wrong secret (the worst case
for the door: the id exists, so the secret must be checked). Modes:

* **idle**: ``/healthz`` alone;
* **flood**: the flood with the default per-address failure budget (most of it is
  answered 429 before any check);
* **flood, no address budget** (``GRIDWATCH_AUTH_FAIL_BURST`` huge): every request
  reaches the session check, which answers the repeated bad token from its cache;
* **flood, distinct tokens, no address budget**: a new bad token every request, so
  nothing is cached: every request is a Redis read and a keyed hash.

Reported per mode: ``/healthz`` latency (median, p95, of requests 50 ms apart), the
flood's achieved rate and its status codes, and the real session checks the gateway
counted (``gridwatch_ws_session_checks_total``). Before the keyed hash each failed
check ran scrypt on the event loop, uncached: ``/healthz`` went from ~1 ms to ~350 ms.

Run: ``python bench/bench_healthz.py`` (``--help`` for options). Uses the bench stack of
``bench/_stack.py`` (started if needed, stopped afterwards unless it was running or
``--keep-stack``), or ``--redis URL`` for a Redis already running (no stack started).
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import _stack
import redis
from _machine import cpu_model, versions
from gridwatch.ws import users
from gridwatch.ws.auth import User


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str, headers: dict[str, str] | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}),
                                    timeout=10) as reply:
            reply.read()
            return reply.status
    except urllib.error.HTTPError as exc:
        return exc.code


@contextmanager
def gateway(redis_url: str, logdir: Path, **env: str) -> Iterator[str]:
    """A gateway process on a free port; yields its origin."""
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    full = {**os.environ, "GRIDWATCH_REDIS": redis_url, "GRIDWATCH_KAFKA": "127.0.0.1:1",
            "GRIDWATCH_GATEWAY": f"127.0.0.1:{port}", **env}
    with open(logdir / f"gateway-{port}.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "gridwatch.ws.gateway"], env=full,
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if get(f"{origin}/healthz") == 200:
                    break
            except OSError:  # not listening yet
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("gateway did not start")
            time.sleep(0.1)
        yield origin
    finally:
        proc.terminate()
        proc.wait(15)


def login(origin: str, r: redis.Redis) -> str:
    token = users.add_user(r, User("bench-officer", "duty_officer"))
    form = urllib.request.Request(f"{origin}/login", method="POST",
                                  data=urllib.parse.urlencode({"token": token}).encode())
    with urllib.request.urlopen(form, timeout=10) as reply:
        return reply.headers["Set-Cookie"].split(";", 1)[0].split("=", 1)[1]


def checks(origin: str) -> float:
    with urllib.request.urlopen(f"{origin}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return sum(float(v) for v in re.findall(
        r"^gridwatch_ws_session_checks_total\{[^}]*\} (\S+)$", text, re.MULTILINE))


def flood(origin: str, session_id: str, rate: float, stop: threading.Event, *,
          distinct: bool, threads: int, statuses: Counter[int]) -> None:
    """``rate`` bad-secret requests a second, spread over ``threads`` paced threads."""
    lock = threading.Lock()

    def one(k: int) -> None:
        period = threads / rate
        due = time.monotonic() + k * period / threads
        n = 0
        while not stop.is_set():
            n += 1
            sid = f"bench{k}x{n}" if distinct else session_id
            try:
                status = get(f"{origin}/api/me", {"Authorization": f"Bearer {sid}.wrong-secret"})
            except OSError:  # refused or reset: counted as 0
                status = 0
            with lock:
                statuses[status] += 1
            due += period
            time.sleep(max(0.0, due - time.monotonic()))

    workers = [threading.Thread(target=one, args=(k,), daemon=True) for k in range(threads)]
    for w in workers:
        w.start()
    stop.wait()
    for w in workers:
        w.join(15)


def healthz(origin: str, seconds: float) -> list[float]:
    """Latencies (ms) of ``/healthz`` requests 50 ms apart for ``seconds``."""
    out: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.perf_counter()
        get(f"{origin}/healthz")
        out.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.05)
    return out


def run_mode(redis_url: str, logdir: Path, *, seconds: float, rate: float, threads: int,
             attack: bool, distinct: bool = False, **env: str) -> dict[str, object]:
    r = redis.Redis.from_url(redis_url)
    r.flushdb()
    with gateway(redis_url, logdir, **env) as origin:
        session_id = login(origin, r).split(".")[0]
        before = checks(origin)
        statuses: Counter[int] = Counter()
        stop = threading.Event()
        hammer = threading.Thread(target=flood, args=(origin, session_id, rate, stop),
                                  kwargs={"distinct": distinct, "threads": threads,
                                          "statuses": statuses}) if attack else None
        if hammer:
            hammer.start()
            time.sleep(0.5)
        t0 = time.monotonic()
        lat = healthz(origin, seconds)
        elapsed = time.monotonic() - t0
        stop.set()
        if hammer:
            hammer.join()
        used = checks(origin) - before
    r.close()
    lat.sort()
    return {"median": statistics.median(lat), "p95": lat[int(0.95 * (len(lat) - 1))],
            "n": len(lat), "rate": sum(statuses.values()) / (elapsed + 0.5),
            "statuses": dict(sorted(statuses.items())), "checks": used}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=5.0, help="per mode (default 5)")
    p.add_argument("--rate", type=float, default=300.0, help="bad requests a second (300)")
    p.add_argument("--threads", type=int, default=12, help="flooding threads (12)")
    p.add_argument("--redis", help="a running Redis to use (its database is emptied)")
    p.add_argument("--slot", type=int, default=0, help="bench stack slot (see _stack.py)")
    p.add_argument("--keep-stack", action="store_true")
    args = p.parse_args()
    s = _stack.slot_settings(args.slot)
    redis_url = args.redis or s.redis
    print(f"# /healthz under a bad-secret flood - {cpu_model()}, "
          f"{', '.join(versions(['websockets', 'redis']))}")
    modes = [
        ("idle", {"attack": False}),
        ("flood", {"attack": True}),
        ("flood, no address budget", {"attack": True, "GRIDWATCH_AUTH_FAIL_BURST": "1e9"}),
        ("flood, distinct tokens, no address budget",
         {"attack": True, "distinct": True, "GRIDWATCH_AUTH_FAIL_BURST": "1e9"}),
    ]
    with (nullcontext() if args.redis else _stack.running(s, keep=args.keep_stack)), \
            tempfile.TemporaryDirectory() as tmp:
        if not args.redis:
            _stack.hold(s)
        rows = []
        for name, opts in modes:
            res = run_mode(redis_url, Path(tmp), seconds=args.seconds, rate=args.rate,
                           threads=args.threads, **opts)  # type: ignore[arg-type]
            rows.append((name, res))
            print(f"{name:<44} healthz median {res['median']:6.2f} ms  p95 {res['p95']:6.2f} ms"
                  f"  (n={res['n']})  flood {res['rate']:5.0f}/s {res['statuses']}"
                  f"  session checks {res['checks']:.0f}", flush=True)
        idle = float(rows[0][1]["median"])  # type: ignore[arg-type]
        worst = max(float(res["median"]) for _, res in rows[1:])  # type: ignore[arg-type]
        print(f"worst flood median / idle median: {worst / idle:.2f}x (goal: within 2x)")


if __name__ == "__main__":
    main()
