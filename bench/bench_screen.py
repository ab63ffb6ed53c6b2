"""Event to screen: from a producer's send to the alert and the grid delta on a WebSocket.

Run::

    python bench/bench_screen.py [--rates 1000 5000] [--seconds 20] [--runs 3]
                                 [--probe-every 0.25] [--producers 2] [--drain 120] [--slot N] [--keep-stack]

On the benchmark's own stack (``--slot N``: Kafka 19292+10N, Redis 16579+N), from empty
topics and an empty Redis: one real ``gridwatch worker``, one real gateway process
(``python -m gridwatch.ws.gateway``), and one duty officer's WebSocket client in a
process of its own, logged in with a session made as the login path makes one. For each
background rate in ``--rates``:

1. ``--producers`` separate processes send simulated city traffic (the simulator's mix,
   re-timed to the wall clock) at that many events a second between them;
2. every ``--probe-every`` seconds a probe red-code scan with a unique ``event_id`` and a
   fresh ``person_ref`` is sent at a point of a *quiet* grid (no checkpoint or camera of
   the city lies in it, so only probes move it); each probe takes a quiet grid not
   probed in the last 60 s. The clock starts just before ``send()``;
3. the client notes when the probe's alert arrives (a frame on ``alerts`` whose alert
   has the probe's ``event_id``) and when the probe grid's delta arrives (the first
   delta of that grid after the send with a higher score than the grid had).

Reported per window of ``--seconds`` (``--runs`` windows per rate, after a 5 s warm-up):
p50/p95/p99/max of event -> alert on screen and event -> grid delta on screen, probes not
seen within the run, the background rate achieved, the worker's apply rate and backlog
(events sent and not yet applied: the consumer lag in events, sampled every second), and
the load average; then the median over the windows. If the worker cannot keep up, the
backlog grows and the latency measures the queue: the bench says so.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _stack
from bench_fanout import Gateway, load_text, machine, make_sessions, slot_settings
from bench_state import Retimer, simulated
from gridwatch.schemas.events import format_time
from gridwatch.streams.topics import CHECKPOINT_SCANS

from gridwatch import store
from gridwatch.city import load_city, load_grids
from gridwatch.grid_index import GridIndex
from gridwatch.settings import Settings

WARMUP_S = 5.0
REUSE_AFTER_S = 60.0


def quiet_grids(s: Settings) -> list[tuple[str, float, float]]:
    """Every grid with no checkpoint and no camera in it, with a point inside it."""
    city = load_city(s.city)
    grids = load_grids(s.grids)
    index = GridIndex(grids)
    points = [(p["lon"], p["lat"]) for p in city["checkpoints"] + city["cameras"]]
    busy = set(index.assign([x for x, _ in points], [y for _, y in points]))
    out = []
    for grid in grids:
        if grid.id in busy:
            continue
        pt = grid.polygon.representative_point()
        if index.assign([pt.x], [pt.y]) == [grid.id]:
            out.append((grid.id, pt.x, pt.y))
    return out


# ---- processes ------------------------------------------------------------------------


def background(s: Settings, rate: float, count: int, seed: int, ready: Any, stop: Any,
               sent: Any, part: int = 0, parts: int = 1) -> None:
    """Send ``count`` simulated events at ``rate`` a second (until ``stop``); with
    ``parts`` > 1, this process sends every ``parts``-th event from ``part`` on."""
    from kafka import KafkaProducer

    retimer = Retimer(simulated(count, seed, load_city(s.city))[part::parts])
    producer = KafkaProducer(bootstrap_servers=s.kafka, acks="all", linger_ms=5,
                             batch_size=256 * 1024)
    ready.set()
    start = time.monotonic()
    i = 0
    while not stop.is_set() and i < len(retimer):
        due = min(len(retimer), int((time.monotonic() - start) * rate))
        now = time.time()
        while i < due:
            topic, key, value = retimer.message(i, now)
            producer.send(topic, value=value, key=key)
            i += 1
            if i % 200 == 0:
                sent.value = i
        sent.value = i
        time.sleep(0.005)
    producer.flush()
    producer.close()
    sent.value = i


def client(port: int, origin: str, token: str, grids: list[str], ready: Any, stop: Any,
           out: Any) -> None:
    """One officer's socket: when each probe alert and each quiet grid's delta arrived."""
    import asyncio

    from websockets.asyncio.client import connect

    watched = set(grids)
    alerts: dict[str, tuple[float, float]] = {}  # event id -> (received, XADD time)
    deltas: list[tuple[str, float, float]] = []  # grid, score, time received

    def take(raw: bytes) -> None:
        now = time.time()
        if raw.startswith(b'{"ch":"alerts"'):
            if b'"probe-' not in raw:
                return
            f = orjson.loads(raw)
            body = f.get("m") or {}
            event_id = ((body.get("alert") or {}).get("source_ids") or {}).get("event_id", "")
            if event_id.startswith("probe-") and event_id not in alerts:
                # The stream id's first part is Redis's clock at the worker's XADD.
                alerts[event_id] = (now, int(str(f.get("id", "0-0")).split("-")[0]) / 1000)
        elif raw.startswith(b'{"ch":"grids"'):
            f = orjson.loads(raw)
            if f.get("snapshot"):
                return
            for d in f.get("ms") or [f.get("m") or {}]:
                if d.get("grid_id") in watched:
                    deltas.append((d["grid_id"], float(d.get("score") or 0.0), now))

    async def main() -> None:
        async with connect(f"ws://127.0.0.1:{port}/ws", max_size=None,
                           additional_headers={"Authorization": f"Bearer {token}",
                                               "Origin": origin}) as ws:
            await ws.send(b'{"op":"hello","last":{}}', text=True)
            ready.set()
            while not stop.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(decode=False), timeout=0.2)
                except asyncio.TimeoutError:
                    continue
                take(raw)

    asyncio.run(main())
    out.put({"alerts": alerts, "deltas": deltas})


# ---- figures --------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def fmt(values: list[float]) -> str:
    if not values:
        return "none seen"
    return (f"p50 {pct(values, 50):6.0f}  p95 {pct(values, 95):6.0f}  p99 {pct(values, 99):6.0f}"
            f"  max {max(values):6.0f} ms")


# ---- main -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[1000.0, 5000.0],
                        help="background events per second, one part of the run each")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of one window")
    parser.add_argument("--runs", type=int, default=3, help="windows per rate")
    parser.add_argument("--probe-every", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=11,
                        help="simulator seed of the first rate (the next rates: +1, +2, ...)")
    parser.add_argument("--producers", type=int, default=2,
                        help="background producer processes (one Python producer tops out "
                             "near 3,500 events/s here)")
    parser.add_argument("--drain", type=float, default=120.0,
                        help="seconds to let a backlog drain before the next rate")
    parser.add_argument("--keep-stack", action="store_true")
    parser.add_argument("--slot", type=int, default=int(os.environ.get("GRIDWATCH_BENCH_SLOT", "0")),
                        help="N > 0: a bench stack of this run's own (Kafka 19292+10N, Redis "
                             "16579+N, data in .local/bench-stack-N)")
    args = parser.parse_args(argv)

    from kafka import KafkaProducer

    from gridwatch import stack

    s = slot_settings(args.slot)
    s = s.with_(group=f"gridwatch-bench-{uuid.uuid4().hex[:8]}")
    was_running = stack.status(s)["kafka_pid"] is not None
    _stack.up(s)
    print("gridwatch event to screen: producer send -> alert / grid delta read by a WebSocket "
          "client", flush=True)
    print(f"  command: {' '.join(['python', *sys.argv])}")
    for line in machine(s):
        print("  " + line)
    pool = quiet_grids(s)
    logdir = s.home / "logs"
    ctx = mp.get_context("spawn")
    worker = gw = None
    cl = None
    stop_client, client_ready, results = ctx.Event(), ctx.Event(), ctx.Queue()
    probes: list[dict[str, Any]] = []  # event_id, grid, sent, rate, window
    windows: list[dict[str, Any]] = []
    try:
        _stack.clean(s)
        worker = _stack.start_worker(s, logdir / "bench-screen-worker.log")
        gw = Gateway(s, logdir / "bench-screen-gateway.log")
        token = make_sessions(s.redis, 1, grid_workers=0, grids=[], prefix="screen-")[0]
        cl = ctx.Process(target=client, daemon=True,
                         args=(gw.port, gw.origin, token, [g for g, _, _ in pool],
                               client_ready, stop_client, results))
        cl.start()
        if not client_ready.wait(60):
            raise RuntimeError("the client did not connect")
        producer = KafkaProducer(bootstrap_servers=s.kafka, acks="all", linger_ms=0)
        r = store.connect(s.redis)
        last_used: dict[str, float] = {}
        sent_probes = 0

        def probe(rate: float, window: int) -> None:
            nonlocal sent_probes
            now_m = time.monotonic()
            grid, lon, lat = next(((g, x, y) for g, x, y in pool
                                   if now_m - last_used.get(g, -1e9) > REUSE_AFTER_S),
                                  min(pool, key=lambda p: last_used.get(p[0], -1e9)))
            last_used[grid] = now_m
            sent_probes += 1
            event_id = f"probe-{sent_probes:06d}"
            now = time.time()
            value = orjson.dumps({
                "event_id": event_id, "ts": format_time(now), "checkpoint_id": "cp-probe",
                "lon": lon, "lat": lat, "person_ref": f"probe-{uuid.uuid4().hex}",
                "code_color": "red", "direction": "in",
                "last_negative_test_at": format_time(now - 6 * 3600)})
            t = time.time()
            producer.send(CHECKPOINT_SCANS, value=value, key=event_id.encode())
            producer.flush()
            probes.append({"event_id": event_id, "grid": grid, "sent": t, "rate": rate,
                           "window": window})

        def applied() -> int:
            sm = store.summary(r)
            return (sm["checkpoint_scans"] + sm["loiter_reports"] + sm["station_tickets"]
                    + sm["deadletter"] + sm["duplicates"])

        # Warm up: the worker has joined its group and applies (the first probe waits).
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            probe(0.0, -1)
            time.sleep(1.0)
            if applied() >= 1:
                break
        else:
            raise RuntimeError("the worker applied nothing within 180 s")
        time.sleep(2.0)
        for n_rate, rate in enumerate(args.rates):
            count = int(rate * (WARMUP_S + args.runs * args.seconds + 10)) + 1000
            stop_bg = ctx.Event()
            readies = [ctx.Event() for _ in range(args.producers)]
            sents = [ctx.Value("q", 0) for _ in range(args.producers)]
            started = time.perf_counter()
            bgs = [ctx.Process(target=background, daemon=True,
                               args=(s, rate / args.producers, count, args.seed + n_rate,
                                     readies[k], stop_bg, sents[k], k, args.producers))
                   for k in range(args.producers)]
            for bg in bgs:
                bg.start()
            if not all(ev.wait(900) for ev in readies):
                raise RuntimeError("the background traffic was not generated in time")

            class Total:  # the events sent by all the producer processes
                def __init__(self, counters: list[Any]) -> None:
                    self.counters = counters

                @property
                def value(self) -> int:
                    return sum(v.value for v in self.counters)

            sent = Total(sents)
            print(f"background {rate:,.0f} events/s ({count:,} events generated in "
                  f"{time.perf_counter() - started:.0f} s)", flush=True)
            base_applied = applied() - sent_probes  # events applied before this rate
            t_start = time.monotonic()
            next_probe = t_start
            for w in range(-1, args.runs):  # -1: warm-up
                end = t_start + WARMUP_S + (w + 1) * args.seconds
                sent0, applied0, t0 = sent.value, applied(), time.monotonic()
                lags: list[int] = []
                next_sample = t0
                while time.monotonic() < end:
                    now_m = time.monotonic()
                    if now_m >= next_probe:
                        probe(rate, w)
                        next_probe += args.probe_every
                    if now_m >= next_sample:
                        lags.append(sent.value + sent_probes - (applied() - base_applied))
                        next_sample += 1.0
                    time.sleep(max(0.0, min(next_probe, next_sample, end) - time.monotonic()))
                if w >= 0:
                    dt = time.monotonic() - t0
                    windows.append({"rate": rate, "window": w,
                                    "sent_rate": (sent.value - sent0) / dt,
                                    "applied_rate": (applied() - applied0) / dt,
                                    "lag_start": lags[0] if lags else 0,
                                    "lag_end": lags[-1] if lags else 0,
                                    "lag_max": max(lags) if lags else 0,
                                    "load": load_text()})
                    print(f"  window {w + 1}: background sent {windows[-1]['sent_rate']:,.0f}/s, "
                          f"worker applied {windows[-1]['applied_rate']:,.0f}/s, backlog "
                          f"{windows[-1]['lag_start']:,} -> {windows[-1]['lag_end']:,} events "
                          f"(load {load_text()})", flush=True)
            stop_bg.set()
            for bg in bgs:
                bg.join(60)
            # Let the backlog drain (so the next rate starts from an idle worker).
            waited = time.monotonic()
            while (sent.value + sent_probes - (applied() - base_applied) > 0
                   and time.monotonic() - waited < args.drain):
                time.sleep(0.5)
            left = sent.value + sent_probes - (applied() - base_applied)
            print(f"  backlog after the background stopped: {left:,} events left after "
                  f"{time.monotonic() - waited:.0f} s", flush=True)
        time.sleep(2.0)
        stop_client.set()
        got = results.get(timeout=60)
        producer.close()
        r.close()
    finally:
        stop_client.set()
        if cl is not None:
            cl.join(10)
        if gw is not None:
            gw.stop()
        if worker is not None:
            _stack.stop_worker(worker)
        if not was_running and not args.keep_stack:
            stack.down(s, log=lambda msg: print(f"[bench stack] {msg}", file=sys.stderr))

    # Grid deltas: the first delta of the probe's grid after the send with a higher score.
    by_grid: dict[str, list[tuple[float, float]]] = {}
    for grid, score, t in got["deltas"]:
        by_grid.setdefault(grid, []).append((t, score))
    score_before: dict[str, float] = {}
    alert_ms: dict[tuple[float, int], list[float]] = {}
    gw_ms: dict[tuple[float, int], list[float]] = {}  # the alert's XADD -> on screen
    grid_ms: dict[tuple[float, int], list[float]] = {}
    lost: dict[tuple[float, int], list[int]] = {}
    for p in probes:
        key = (p["rate"], p["window"])
        miss = lost.setdefault(key, [0, 0])
        seen = got["alerts"].get(p["event_id"])
        if seen is not None:
            alert_ms.setdefault(key, []).append((seen[0] - p["sent"]) * 1000)
            gw_ms.setdefault(key, []).append((seen[0] - seen[1]) * 1000)
        else:
            miss[0] += 1
        before = score_before.get(p["grid"], 0.0)
        hit = next(((t, sc) for t, sc in by_grid.get(p["grid"], ())
                    if t > p["sent"] and sc > before), None)
        if hit is not None:
            grid_ms.setdefault(key, []).append((hit[0] - p["sent"]) * 1000)
            score_before[p["grid"]] = hit[1]
        else:
            miss[1] += 1
    print()
    print("event -> on screen (one officer's WebSocket client), per window:")
    for row in windows:
        key = (row["rate"], row["window"])
        a, g = alert_ms.get(key, []), grid_ms.get(key, [])
        miss = lost.get(key, [0, 0])
        print(f"  {row['rate']:>6,.0f}/s  window {row['window'] + 1}: alert {fmt(a)} (of "
              f"which XADD -> screen p50 {pct(gw_ms.get(key, []), 50):.0f}, p99 "
              f"{pct(gw_ms.get(key, []), 99):.0f} ms); "
              f"grid delta {fmt(g)}; not seen {miss[0]} alerts, {miss[1]} deltas of "
              f"{len(a) + miss[0]} probes; sent {row['sent_rate']:,.0f}/s, applied "
              f"{row['applied_rate']:,.0f}/s, backlog {row['lag_start']:,} -> {row['lag_end']:,} "
              f"(max {row['lag_max']:,}); load {row['load']}")
    print()
    print("median over the windows:")
    for rate in args.rates:
        rows = [w for w in windows if w["rate"] == rate]
        keys_ = [(rate, w["window"]) for w in rows]

        def med(d: dict[tuple[float, int], list[float]], q: float,
                keys_: list[tuple[float, int]] = keys_) -> float:
            vals = [pct(d.get(k, []), q) for k in keys_ if d.get(k)]
            return statistics.median(vals) if vals else float("nan")

        behind = [w for w in rows if w["lag_end"] > max(2 * rate, 2000)]
        ends = ", ".join(f"{w['lag_end']:,}" for w in rows)
        print(f"  background {rate:,.0f} events/s: event -> alert on screen p50 "
              f"{med(alert_ms, 50):.0f} ms, p95 {med(alert_ms, 95):.0f} ms, p99 "
              f"{med(alert_ms, 99):.0f} ms (the gateway's part, the alert's XADD -> screen: "
              f"p50 {med(gw_ms, 50):.0f} ms, p99 {med(gw_ms, 99):.0f} ms); "
              f"event -> grid delta on screen p50 "
              f"{med(grid_ms, 50):.0f} ms, p95 {med(grid_ms, 95):.0f} ms, p99 "
              f"{med(grid_ms, 99):.0f} ms; worker applied "
              f"{statistics.median(w['applied_rate'] for w in rows):,.0f} events/s; backlog at "
              f"the end of each window: {ends} events")
        short = [w for w in rows if w["sent_rate"] < 0.95 * rate]
        if short:
            print(f"    the producer kept only {min(w['sent_rate'] for w in short):,.0f}-"
                  f"{max(w['sent_rate'] for w in short):,.0f} of {rate:,.0f} events/s in "
                  f"{len(short)} window(s): the machine was overloaded")
        if behind:
            print(f"    the worker did NOT keep up at {rate:,.0f} events/s (backlog above two "
                  "seconds of traffic): these latencies measure its queue, not the path")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
