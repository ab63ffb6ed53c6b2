"""Alert latency: from a crowd-loiter report published to its alert readable in Redis.

Run::

    python bench/bench_alert_latency.py [--probes 200] [--rate 1000] [--seed 1] [--keep-stack]
                                        [--slot N]

On the benchmark's own stack (Kafka 127.0.0.1:19292, Redis 127.0.0.1:16579, data under
``.local/bench-stack``), from empty topics and an empty Redis:

1. one real ``gridwatch worker`` (timers on, as in operation) joins a fresh group;
2. a separate process sends background traffic at ``--rate`` events/s: the simulator's
   city day (checkpoint scans, loiter reports and station tickets in its proportions),
   each event restamped with the wall clock as it is sent, so the feed is "live";
3. one probe at a time: a loiter report over the pharmacy threshold from a camera and
   zone of its own (so it raises a new alert, never folds) is sent; the clock starts
   just before ``send()`` and stops when ``gw:alert:{id}`` exists (polled every 0.5 ms;
   the id is ``loiter_alert_id(camera, zone, event_id)``). Probes are spaced 50-150 ms
   apart (seeded), so they sample the worker's batch cycle at random phases.

Printed: p50, p90, p99 and max over the probes, the broker-ack part of it, the background
rate achieved, the machine and the command line.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import random
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _stack
from _machine import cpu_model, kafka_version
from _machine import versions as package_versions
from gridwatch.agents.loiter import loiter_alert_id
from gridwatch.schemas.events import format_time
from gridwatch.streams.producer import make_producer
from gridwatch.streams.simulate import CityDay, Simulator
from gridwatch.streams.topics import CROWD_LOITER

from gridwatch import keys, store
from gridwatch.city import load_city
from gridwatch.settings import Settings

PROBE_TIMEOUT_S = 30.0
POLL_S = 0.0005


# ---- background traffic (its own process, so it never holds this one's GIL) -------------


def _restamped(event: dict[str, Any], now: float) -> dict[str, Any]:
    """The event as if it happened ``now`` (times inside it move by the same amount)."""
    from gridwatch.schemas.events import parse_time

    shift = now - parse_time(event["ts"])
    out = dict(event, ts=format_time(round(now, 3)))
    for name in ("last_negative_test_at", "arrival_at"):
        if isinstance(out.get(name), str):
            out[name] = format_time(round(parse_time(out[name]) + shift, 3))
    return out


def background(settings: Settings, rate: float, seed: int, ready: Any, stop: Any,
               sent: Any) -> None:
    """Send simulated city traffic at ``rate`` events/s until ``stop`` is set (the day
    is generated first, then ``ready`` is set; the day repeats if it runs out)."""
    sim = Simulator(load_city(settings.city), seed=seed, profile=CityDay())
    day = [(topic.name, topic.key_field, event) for _, topic, event in sim.stream(days=1.0)]
    producer = make_producer(settings)
    ready.set()
    started = time.monotonic()
    n = 0
    while not stop.is_set():
        for name, key_field, event in day:
            if stop.is_set():
                break
            event = _restamped(event, time.time())
            producer.send(name, key=str(event[key_field]).encode(), value=orjson.dumps(event))
            n += 1
            if n % 100 == 0:
                sent.value = n
            ahead = n / rate - (time.monotonic() - started)
            if ahead > 0.002:
                time.sleep(ahead)
    producer.flush()
    producer.close()
    sent.value = n


# ---- probes ---------------------------------------------------------------------------------


def probe(producer: Any, r: Any, camera: dict[str, Any], n: int, run: str) -> tuple[float, float] | None:
    """Send one over-threshold report; returns (seconds to readable, seconds to broker ack),
    or ``None`` when the alert did not appear within ``PROBE_TIMEOUT_S``."""
    camera_id, zone = f"cam-probe-{run}-{n:04d}", f"pharmacy:probe-{run}-{n:04d}"
    event_id = f"probe-{run}-{n:04d}"
    key = keys.alert(loiter_alert_id(camera_id, zone, event_id))
    now = time.time()
    value = orjson.dumps({
        "event_id": event_id, "ts": format_time(round(now, 3)), "camera_id": camera_id,
        "lon": camera["lon"], "lat": camera["lat"], "zone": zone, "people": 6, "dwell_s": 400,
    })
    t0 = time.perf_counter()
    future = producer.send(CROWD_LOITER, key=camera_id.encode(), value=value)
    producer.flush()
    future.get(timeout=15)
    acked = time.perf_counter() - t0
    while not r.exists(key):
        if time.perf_counter() - t0 > PROBE_TIMEOUT_S:
            return None
        time.sleep(POLL_S)
    return time.perf_counter() - t0, acked


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def machine(s: Settings) -> list[str]:
    cpu = cpu_model()
    versions = package_versions(("faust-streaming", "aiokafka", "kafka-python", "redis", "orjson"))
    kafka = kafka_version(s.home)
    r = store.connect(s.redis)
    try:
        redis_version = r.info("server")["redis_version"]
    finally:
        r.close()
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return [
        f"CPU: {cpu}, {os.cpu_count()} cores, {mem_gb:.1f} GiB RAM",
        f"OS: {platform.platform()}",
        f"Python {platform.python_version()} ({platform.python_implementation()})",
        f"Kafka {kafka} (KRaft, one node), Redis {redis_version}",
        "packages: " + ", ".join(versions),
        "load average at start: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=200)
    parser.add_argument("--rate", type=float, default=1000.0,
                        help="background events per second (0: none)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep-stack", action="store_true",
                        help="leave the bench stack running afterwards")
    parser.add_argument("--slot", type=int, default=int(os.environ.get("GRIDWATCH_BENCH_SLOT", "0")),
                        help="N > 0: a bench stack of this run's own (Kafka 19292+10N, Redis "
                             "16579+N, data in .local/bench-stack-N), so that another benchmark "
                             "running at the same time is not disturbed")
    args = parser.parse_args(argv)

    from gridwatch import stack

    if args.slot:
        s = _stack.bench_settings(
            GRIDWATCH_KAFKA=f"127.0.0.1:{19292 + 10 * args.slot}",
            GRIDWATCH_REDIS=f"redis://127.0.0.1:{16579 + args.slot}/0",
            GRIDWATCH_HOME=str(_stack.ROOT / ".local" / f"bench-stack-{args.slot}"))
    else:
        s = _stack.bench_settings()
    s = s.with_(group=f"gridwatch-bench-{uuid.uuid4().hex[:8]}")
    was_running = stack.status(s)["kafka_pid"] is not None
    _stack.up(s)
    command = " ".join(["python", *sys.argv])
    print("gridwatch alert latency: loiter report published -> gw:alert:{id} readable")
    print(f"  command: {command}")
    for line in machine(s):
        print("  " + line)
    rng = random.Random(args.seed)
    cameras: list[dict[str, Any]] = list(load_city(s.city)["cameras"])
    run = uuid.uuid4().hex[:6]
    latencies: list[float] = []
    acks: list[float] = []
    missed = 0
    stop, ready = mp.Event(), mp.Event()
    sent = mp.Value("q", 0)
    proc = None
    sender: mp.Process | None = None
    try:
        _stack.clean(s)
        proc = _stack.start_worker(s, s.home / "logs" / "bench-alert-latency-worker.log")
        producer = make_producer(s, linger_ms=0)
        r = store.connect(s.redis)
        # Warm up: the worker has joined and applies (the first probe waits for the group).
        warm = None
        for i in range(20):
            warm = probe(producer, r, rng.choice(cameras), 9000 + i, run)
            if warm is not None:
                break
        if warm is None:
            raise SystemExit("the worker never raised a warm-up alert; see its log under "
                             f"{s.home / 'logs'}")
        if args.rate > 0:
            sender = mp.Process(target=background,
                                args=(s, args.rate, args.seed, ready, stop, sent), daemon=True)
            sender.start()
            if not ready.wait(600):
                raise SystemExit("the background traffic was not generated within 600 s")
            time.sleep(5.0)  # let the background reach its rate
            if sent.value == 0:
                raise SystemExit("the background traffic does not flow")
        bg0, t_bg0 = sent.value, time.monotonic()
        for n in range(args.probes):
            result = probe(producer, r, rng.choice(cameras), n, run)
            if result is None:
                missed += 1
            else:
                latencies.append(result[0])
                acks.append(result[1])
            time.sleep(rng.uniform(0.05, 0.15))
        bg_rate = (sent.value - bg0) / (time.monotonic() - t_bg0)
        lag = store.summary(r)
        producer.close()
        r.close()
    finally:
        stop.set()
        if sender is not None:
            sender.join(30)
        if proc is not None:
            _stack.stop_worker(proc)
        if not was_running and not args.keep_stack:
            stack.down(s, log=lambda msg: print(f"[bench stack] {msg}", file=sys.stderr))

    if not latencies:
        print("no probe raised an alert")
        return 1
    ms = [x * 1000 for x in latencies]
    ack_ms = [x * 1000 for x in acks]
    print(f"background: {bg_rate:,.0f} events/s of simulated city traffic "
          f"({lag['checkpoint_scans'] + lag['loiter_reports'] + lag['station_tickets']:,} "
          "events applied in all)")
    print(f"probes: {len(ms)} measured, {missed} missed (> {PROBE_TIMEOUT_S:.0f} s)")
    print(f"report published -> alert readable:  p50 {pct(ms, 50):7.1f} ms   "
          f"p90 {pct(ms, 90):7.1f} ms   p99 {pct(ms, 99):7.1f} ms   max {max(ms):7.1f} ms   "
          f"mean {statistics.mean(ms):7.1f} ms")
    print(f"  of which send -> broker ack:       p50 {pct(ack_ms, 50):7.1f} ms   "
          f"p90 {pct(ack_ms, 90):7.1f} ms   p99 {pct(ack_ms, 99):7.1f} ms")
    return 0 if missed == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
