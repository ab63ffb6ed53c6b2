"""Benchmark of the live state: publish-to-readable latency, and Redis memory per grid.

(a) Latency. One worker on the bench stack takes a steady background load of simulated
    city traffic (default 2,000 events/s, re-timed to the wall clock, late ones kept
    late). Every ~100 ms a probe red-code scan with a unique ``event_id`` and a fresh
    ``person_ref`` is sent at a fixed point of a grid that no checkpoint or camera of
    the city lies in, so that grid's risk moves only with the probes. All probes go to
    one partition (explicitly), so they are applied in the order sent and the grid's
    ``red_scans`` raw value equals the number of probes applied. A separate process
    blocks on ``XREAD`` of ``gw:chan:alerts`` and ``gw:chan:grids``; it records when
    each probe's alert appears, and, on each delta of the probe grid, reads
    the grid's risk key and records when ``red_scans`` first reached each probe's number.
    Reported: event -> alert readable and event -> score readable, p50 and p99, per run
    and the median over runs.

(b) Memory. A simulated city day (the default ``CityDay``: ~400,000 scans, 6,000
    loiter reports, one station's tickets) is pre-loaded and applied by one worker
    (timers off) into an empty Redis. ``INFO memory`` before and after, and
    ``MEMORY USAGE`` of every key, grouped by key family: bytes per grid (hour
    buckets, totals, risk, alert index), per person's trace, per alert, and per
    million events; with the steady state the TTLs imply.

Run: ``python bench/bench_state.py`` (``--help`` for options). Uses the bench stack of
``bench/_stack.py`` (Kafka 19292, Redis 16579), or with ``--slot N`` a stack of its own
on ports 19292+10N and 16579+N; starts it if needed and stops it afterwards unless it
was already running or ``--keep-stack`` is given.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _stack
from _machine import cpu_model
from gridwatch.schemas.events import format_time, parse_time
from gridwatch.streams.simulate import CST, CityDay, Simulator
from gridwatch.streams.topics import CHECKPOINT_SCANS, INPUT_BY_NAME

from gridwatch import keys, store
from gridwatch import settings as settings_mod
from gridwatch.city import load_city, load_grids
from gridwatch.grid_index import GridIndex

Message = tuple[str, dict[str, Any], float]  # topic, event, how late it is sent (s)


# ---- the machine ------------------------------------------------------------------------


def machine(s: settings_mod.Settings) -> list[str]:
    cpu = cpu_model()
    try:
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kb = 0
    r = redis.Redis.from_url(s.redis, decode_responses=True)
    info = r.info("server")
    aof = r.config_get("appendonly").get("appendonly")
    r.close()
    from gridwatch import stack

    jars = sorted(p.name for p in stack.Paths(s.home).jars.glob("kafka_2.13-*.jar"))
    kafka = jars[0].removeprefix("kafka_2.13-").removesuffix(".jar") if jars else "?"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"CPU: {cpu}, {os.cpu_count()} cores, {mem_kb / 1024 / 1024:.1f} GiB RAM",
        f"OS: {platform.platform()}; Python {platform.python_version()}",
        (f"Kafka {kafka} (one KRaft node), Redis {info.get('redis_version')} "
         f"(appendonly {aof}); {s.partitions} partitions per topic"),
        f"load average at start: {load} (1, 5, 15 min)",
    ]


# ---- traffic ---------------------------------------------------------------------------


def simulated(n: int, seed: int, city: dict[str, Any]) -> list[Message]:
    """``n`` events of a simulated district (the default ``CityDay``), in send order,
    with how many seconds after its time each is sent (0 unless it is a late one)."""
    sim = Simulator(city, seed=seed, start=datetime(2024, 3, 4, tzinfo=CST))
    out: list[Message] = []
    days = 1.0
    while len(out) < n:
        out.clear()
        for send_at, topic, event in sim.stream(days=days):
            lag = send_at - parse_time(event["ts"])
            out.append((topic.name, event, lag if lag > 1.0 else 0.0))
            if len(out) >= n:
                break
        days += 1.0
    return out


class Retimer:
    """Re-times simulated events to the wall clock, cheaply enough to run at send time:
    each event's time fields are kept as offsets from its ``ts``, and formatted times
    are cached per second."""

    def __init__(self, traffic: list[Message]) -> None:
        self.rows: list[tuple[str, dict[str, Any], bytes, float, list[tuple[str, float]]]] = []
        for topic, event, lag in traffic:
            ts = parse_time(event["ts"])
            offsets = [(name, parse_time(event[name]) - ts)
                       for name in ("last_negative_test_at", "arrival_at") if event.get(name)]
            key = str(event[INPUT_BY_NAME[topic].key_field]).encode()
            self.rows.append((topic, event, key, lag, offsets))
        self._formatted: dict[int, str] = {}

    def _fmt(self, t: float) -> str:
        sec = int(t)
        out = self._formatted.get(sec)
        if out is None:
            out = self._formatted[sec] = format_time(sec)
        return out

    def __len__(self) -> int:
        return len(self.rows)

    def message(self, i: int, now: float) -> tuple[str, bytes, bytes]:
        """(topic, key, value) of event ``i`` as if it happened ``lag`` s before ``now``."""
        topic, event, key, lag, offsets = self.rows[i]
        ts = now - lag
        ev = dict(event)
        ev["ts"] = self._fmt(ts)
        for name, off in offsets:
            ev[name] = self._fmt(ts + off)
        return topic, key, orjson.dumps(ev)


def quiet_grid(s: settings_mod.Settings) -> tuple[str, float, float]:
    """A grid with no checkpoint and no camera of the city in it, and a point inside it."""
    city = load_city(s.city)
    grids = load_grids(s.grids)
    index = GridIndex(grids)
    points = [(p["lon"], p["lat"]) for p in city["checkpoints"] + city["cameras"]]
    busy = set(index.assign([x for x, _ in points], [y for _, y in points]))
    for grid in grids:
        if grid.id in busy:
            continue
        pt = grid.polygon.representative_point()
        if index.assign([pt.x], [pt.y]) == [grid.id]:
            return grid.id, pt.x, pt.y
    raise RuntimeError("every grid has a checkpoint or a camera: no quiet grid for probes")


# ---- (a) latency -----------------------------------------------------------------------


def watch(url: str, grid: str, stop: Any, out: Any, ready: Any) -> None:
    """Block on the alert and grid channels; put {"alert": {event_id: t}, "score":
    {n: t}} on ``out`` when ``stop`` is set. ``t`` is wall-clock time.time()."""
    r = redis.Redis.from_url(url)
    risk_key = keys.risk(grid)
    last = {keys.CHAN_ALERTS: "$", keys.CHAN_GRIDS: "$"}
    alerts: dict[str, float] = {}
    scores: dict[int, float] = {}
    reached = 0
    ready.set()
    while not stop.is_set():
        replies = r.xread(dict(last), block=200, count=1000)
        for stream, entries in replies or []:
            name = stream.decode()
            for entry_id, fields in entries:
                last[name] = entry_id
                data = fields[b"d"]
                if name == keys.CHAN_ALERTS:
                    if b'"probe-' not in data:
                        continue
                    seen = time.time()
                    msg = orjson.loads(data)
                    event_id = (msg.get("alert") or {}).get("source_ids", {}).get("event_id", "")
                    if event_id.startswith("probe-"):
                        alerts.setdefault(event_id, seen)
                elif grid.encode() in data and orjson.loads(data).get("grid_id") == grid:
                    raw = r.get(risk_key)
                    seen = time.time()
                    if raw is None:
                        continue
                    n = int(orjson.loads(raw)["contributions"]["red_scans"]["raw"])
                    for k in range(reached + 1, n + 1):
                        scores[k] = seen
                    reached = max(reached, n)
    out.put({"alert": alerts, "score": scores})
    r.close()


@dataclass
class LatencyRun:
    probes: int
    sent_rate: float
    alert_ms: list[float]
    score_ms: list[float]
    lost_alerts: int
    lost_scores: int


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def latency_run(s: settings_mod.Settings, traffic: list[Message], *, rate: float,
                seconds: float, probe_every: float, logdir: Path, run: int) -> LatencyRun:
    from kafka import KafkaProducer

    grid, lon, lat = quiet_grid(s)
    retimer = Retimer(traffic)
    s = s.with_(group=f"gridwatch-bench-{uuid.uuid4().hex[:8]}")
    _stack.clean(s)
    proc = _stack.start_worker(s, logdir / f"bench-state-latency-{run}.log")
    producer = KafkaProducer(bootstrap_servers=s.kafka, acks="all", linger_ms=2)
    ctx = mp.get_context("spawn")
    stop, ready, results = ctx.Event(), ctx.Event(), ctx.Queue()
    watcher = ctx.Process(target=watch, args=(s.redis, grid, stop, results, ready), daemon=True)
    watcher.start()
    ready.wait(30)
    probe_no = 0
    sent: dict[int, tuple[str, float]] = {}

    def probe() -> None:
        nonlocal probe_no
        probe_no += 1
        event_id = f"probe-{run}-{probe_no:06d}"
        now = time.time()
        event = {"event_id": event_id, "ts": format_time(now), "checkpoint_id": "cp-probe",
                 "lon": lon, "lat": lat, "person_ref": f"probe-person-{uuid.uuid4().hex}",
                 "code_color": "red", "direction": "in",
                 "last_negative_test_at": format_time(now - 6 * 3600)}
        value = orjson.dumps(event)
        sent[probe_no] = (event_id, time.time())
        producer.send(CHECKPOINT_SCANS, value=value, key=event["person_ref"].encode(), partition=0)

    try:
        # Warm up: the worker is up, has refreshed every grid once and applies probes.
        r = store.connect(s.redis)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            probe()
            producer.flush()
            time.sleep(1.0)
            raw = r.get(keys.risk(grid))
            if raw and orjson.loads(raw)["contributions"]["red_scans"]["raw"] >= 1:
                break
        else:
            raise RuntimeError("the worker did not apply a probe within 180 s")
        warm = probe_no
        # Steady load: background at ``rate`` events/s in 10 ms ticks, a probe every
        # ``probe_every`` seconds.
        tick = 0.005
        start = time.monotonic()
        t0 = time.time()
        i = 0
        next_probe = start
        while time.monotonic() - start < seconds:
            if time.monotonic() >= next_probe:
                probe()
                next_probe += probe_every
            due = min(len(retimer), int((time.monotonic() - start) * rate))
            burst = 0
            now = time.time()
            while i < due and burst < 50:  # short bursts: a probe is never held up long
                topic, key, value = retimer.message(i, now)
                producer.send(topic, value=value, key=key)
                i += 1
                burst += 1
            if i >= due:
                time.sleep(max(0.0, min(tick, next_probe - time.monotonic())))
        sent_rate = i / (time.time() - t0)
        producer.flush()
        # Let the last probes through, then collect.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            raw = r.get(keys.risk(grid))
            if raw and orjson.loads(raw)["contributions"]["red_scans"]["raw"] >= probe_no:
                break
            time.sleep(0.2)
        time.sleep(1.0)
        r.close()
    finally:
        stop.set()
        got = results.get(timeout=30) if watcher.is_alive() or not results.empty() else {"alert": {}, "score": {}}
        watcher.join(10)
        producer.close()
        _stack.stop_worker(proc)
    alert_ms, score_ms = [], []
    lost_a = lost_s = 0
    for n in range(warm + 1, probe_no + 1):
        event_id, t_sent = sent[n]
        if event_id in got["alert"]:
            alert_ms.append((got["alert"][event_id] - t_sent) * 1000)
        else:
            lost_a += 1
        if n in got["score"]:
            score_ms.append((got["score"][n] - t_sent) * 1000)
        else:
            lost_s += 1
    return LatencyRun(probe_no - warm, sent_rate, alert_ms, score_ms, lost_a, lost_s)


# ---- (b) memory ------------------------------------------------------------------------


FAMILIES = [
    ("gw:grid:*:h:*", lambda k: k.startswith("gw:grid:") and ":h:" in k),
    ("gw:grid:*:total", lambda k: k.startswith("gw:grid:") and k.endswith(":total")),
    ("risk:{grid}", lambda k: k.startswith(keys.RISK_PREFIX)),
    ("gw:alerts:by_grid:*", lambda k: k.startswith("gw:alerts:by_grid:")),
    ("gw:trace:*", lambda k: k.startswith("gw:t:")),  # gw:{tag}:t:{person}
    ("gw:redvisits:*", lambda k: k.startswith("gw:redvisits:")),
    ("gw:alert:*", lambda k: k.startswith("gw:alert:")),
    ("gw:deadline:*", lambda k: k.startswith("gw:deadline:")),
    ("gw:incident:*", lambda k: k.startswith("gw:incident:")),
    ("gw:station:*", lambda k: k.startswith("gw:station:")),
    ("gw:chan:* (streams)", lambda k: k.startswith("gw:chan:")),
]


def untagged(key: str) -> str:
    """The key without its hash tag (``gw:{s7.11}:grid:G1:total`` -> ``gw:grid:G1:total``),
    so families are named as before the tags."""
    if key.startswith("gw:{"):
        return "gw:" + key.split("}:", 1)[-1]
    return key


def family_of(key: str) -> str:
    key = untagged(key)
    if key.startswith("gw:seen:"):
        return "gw:seen:* (sets)"
    for name, test in FAMILIES:
        if test(key):
            return name
    return "other (single keys)"


def grid_of_key(key: str) -> str | None:
    key = untagged(key)
    if key.startswith("gw:grid:"):
        return key.split(":")[2]
    if key.startswith(keys.RISK_PREFIX):
        return key[len(keys.RISK_PREFIX):]
    if key.startswith("gw:alerts:by_grid:"):
        return key[len("gw:alerts:by_grid:"):]
    if key.startswith("gw:tasks:open:"):
        return key[len("gw:tasks:open:"):]
    return None


@dataclass
class Family:
    keys: int = 0
    bytes: int = 0
    members: int = 0


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def memory_run(s: settings_mod.Settings, seed: int, logdir: Path, profile: CityDay) -> None:
    from kafka import KafkaProducer

    city = load_city(s.city)
    sim = Simulator(city, seed=seed, start=datetime(2024, 3, 4, tzinfo=CST), profile=profile)
    started = time.perf_counter()
    messages = [(topic.name, orjson.dumps(event), str(event[topic.key_field]).encode())
                for _, topic, event in sim.stream(days=1.0)]
    print(f"(b) memory: one simulated day, {len(messages):,} events (seed {seed}, "
          f"{profile}); generated in {time.perf_counter() - started:.1f} s", flush=True)
    s = s.with_(group=f"gridwatch-bench-{uuid.uuid4().hex[:8]}")
    _stack.clean(s)
    r = store.connect(s.redis)
    before = int(r.info("memory")["used_memory"])
    producer = KafkaProducer(bootstrap_servers=s.kafka, acks="all", linger_ms=5,
                             batch_size=256 * 1024)
    for topic, value, key in messages:
        producer.send(topic, value=value, key=key)
    producer.flush()
    producer.close()
    old = os.environ.get("GRIDWATCH_TIMERS")
    os.environ["GRIDWATCH_TIMERS"] = "0"
    try:
        proc = _stack.start_worker(s, logdir / "bench-state-memory.log")
    finally:
        if old is None:
            os.environ.pop("GRIDWATCH_TIMERS", None)
        else:
            os.environ["GRIDWATCH_TIMERS"] = old
    applied_at = time.perf_counter()
    rss: list[tuple[float, int, int]] = []  # (seconds, events applied, worker RSS bytes)
    try:
        deadline = time.monotonic() + 1800
        while True:
            sm = store.summary(r)
            done = sm["checkpoint_scans"] + sm["loiter_reports"] + sm["station_tickets"] + sm["deadletter"]
            rss.append((time.perf_counter() - applied_at, done, _rss(proc.pid)))
            if done >= len(messages):
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"the worker applied only {done:,} of {len(messages):,} events")
            time.sleep(0.5)
        time.sleep(2.0)  # the last risk refresh
        seconds = time.perf_counter() - applied_at
    finally:
        _stack.stop_worker(proc)
    info = r.info("memory")
    after = int(info["used_memory"])
    fams: dict[str, Family] = defaultdict(Family)
    per_grid: dict[str, int] = defaultdict(int)
    grid_hours: dict[str, int] = defaultdict(int)
    all_keys = list(r.scan_iter(match="gw:*", count=2000))
    for start in range(0, len(all_keys), 1000):
        chunk = all_keys[start:start + 1000]
        pipe = r.pipeline(transaction=False)
        for k in chunk:
            pipe.memory_usage(k, samples=0)
            pipe.type(k)
        replies = pipe.execute()
        pipe = r.pipeline(transaction=False)
        kinds = replies[1::2]
        for k, kind in zip(chunk, kinds):
            if kind == "zset":
                pipe.zcard(k)
            elif kind == "hash":
                pipe.hlen(k)
            elif kind == "stream":
                pipe.xlen(k)
            else:
                pipe.exists(k)
        counts = pipe.execute()
        for k, used, n in zip(chunk, replies[0::2], counts):
            used = int(used or 0)
            fam = fams[family_of(k)]
            fam.keys += 1
            fam.bytes += used
            fam.members += int(n)
            g = grid_of_key(k)
            if g is not None and g != keys.UNASSIGNED:
                per_grid[g] += used
                if ":h:" in k:
                    grid_hours[g] += used
    n_events = len(messages)
    grids = len(per_grid)
    sm = store.summary(r)
    r.close()
    print(f"    applied in {seconds:.1f} s ({n_events / seconds:,.0f} events/s); "
          f"{sm['grids_seen']} grids with events, {grids} grids with keys; "
          f"{sum(f.keys for f in fams.values()):,} keys")
    print(f"    INFO used_memory: before {before / 1e6:.2f} MB, after {after / 1e6:.2f} MB, "
          f"grew {(after - before) / 1e6:.2f} MB = {(after - before) / n_events * 1e6 / 1e6:.1f} MB "
          f"per million events ({(after - before) / n_events:.0f} B per event); "
          f"used_memory_dataset {int(info['used_memory_dataset']) / 1e6:.2f} MB")
    if rss:
        marks = [rss[min(len(rss) - 1, int(len(rss) * q))] for q in (0.0, 0.25, 0.5, 0.75, 1.0)]
        print("    worker RSS while the day was applied: " + ", ".join(
            f"{m[2] / 1e6:.0f} MB at {m[1]:,} events" for m in marks)
            + f"; peak {max(x[2] for x in rss) / 1e6:.0f} MB")
    total_usage = sum(f.bytes for f in fams.values())
    print(f"    MEMORY USAGE over all gw:* keys: {total_usage / 1e6:.2f} MB "
          f"({total_usage / n_events * 1e6 / 1e6:.1f} MB per million events)")
    print(f"    {'key family':<22}{'keys':>9}{'MB':>9}{'share':>7}{'B/key':>9}{'members':>10}{'B/member':>10}")
    for name, fam in sorted(fams.items(), key=lambda kv: -kv[1].bytes):
        print(f"    {name:<22}{fam.keys:>9,}{fam.bytes / 1e6:>9.2f}{fam.bytes / total_usage:>7.1%}"
              f"{fam.bytes / max(1, fam.keys):>9,.0f}{fam.members:>10,}"
              f"{fam.bytes / max(1, fam.members):>10,.0f}")
    active = sorted(grid_hours)  # grids that received events (they have hour buckets)
    if active:
        totals = sorted(per_grid[g] for g in active)
        hours = statistics.mean(grid_hours[g] for g in active)
        rest = statistics.mean(totals) - hours
        hour_days = keys.HOUR_TTL_S / 86400
        steady = rest + hours * hour_days
        quiet = [per_grid[g] for g in per_grid if g not in grid_hours]
        print(f"    per grid with events ({len(active)} grids), after one day: mean "
              f"{statistics.mean(totals):,.0f} B, median {statistics.median(totals):,.0f} B, "
              f"max {totals[-1]:,.0f} B (hour buckets {hours:,.0f} B; totals, risk and alert "
              f"index {rest:,.0f} B)" + (f"; a grid without events (risk only) "
                                         f"{statistics.mean(quiet):,.0f} B" if quiet else ""))
        print(f"    per grid, steady state ({hour_days:.0f} days of hour buckets kept): "
              f"~{steady / 1e3:,.1f} kB; all {len(per_grid)} grids ~"
              f"{(steady * len(active) + sum(quiet)) / 1e6:,.1f} MB")
    trace = fams.get("gw:trace:*")
    if trace and trace.keys:
        days = settings_mod.Settings().trace_days
        print(f"    per person's trace: {trace.bytes / trace.keys:,.0f} B for "
              f"{trace.members / trace.keys:.2f} scans after one day "
              f"({trace.bytes / max(1, trace.members):,.0f} B per scan; kept {days} days)")
    alert = fams.get("gw:alert:*")
    if alert and alert.keys:
        print(f"    per alert: {alert.bytes / alert.keys:,.0f} B; {alert.keys:,} alerts a day "
              f"-> ~{alert.bytes * keys.ALERT_TTL_S / 86400 / 1e6:,.0f} MB at the "
              f"{keys.ALERT_TTL_S // 86400}-day TTL (before indexes)")


# ---- main ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="latency runs (median reported)")
    parser.add_argument("--seconds", type=float, default=40.0, help="length of a latency run")
    parser.add_argument("--rate", type=float, default=2000.0, help="background events per second")
    parser.add_argument("--probe-every", type=float, default=0.1, help="seconds between probes")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--day-scans", type=int, default=CityDay().scans,
                        help="scans in the simulated day of the memory run")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--keep-stack", action="store_true",
                        help="leave the bench stack running afterwards")
    parser.add_argument("--slot", type=int, default=int(os.environ.get("GRIDWATCH_BENCH_SLOT", "0")),
                        help="N > 0: a bench stack of this run's own (Kafka 19292+10N, Redis "
                             "16579+N, data in .local/bench-stack-N), so that another benchmark "
                             "running at the same time is not disturbed")
    args = parser.parse_args(argv)

    s = _stack.slot_settings(args.slot)
    from gridwatch import stack

    was_running = stack.status(s)["kafka_pid"] is not None
    _stack.up(s)
    logdir = s.home / "logs"
    print("gridwatch state benchmark", flush=True)
    for line in machine(s):
        print("  " + line)
    try:
        if not args.skip_latency:
            need = int(args.rate * args.seconds * 1.1) + 1000
            started = time.perf_counter()
            traffic = simulated(need * args.runs, args.seed, load_city(s.city))
            print(f"(a) latency: background {args.rate:,.0f} events/s of simulated traffic "
                  f"({len(traffic):,} events generated in {time.perf_counter() - started:.1f} s), "
                  f"a probe red scan every {args.probe_every * 1000:.0f} ms, "
                  f"{args.seconds:.0f} s per run", flush=True)
            runs = []
            for run in range(1, args.runs + 1):
                part = traffic[(run - 1) * need: run * need]
                res = latency_run(s, part, rate=args.rate, seconds=args.seconds,
                                  probe_every=args.probe_every, logdir=logdir, run=run)
                runs.append(res)
                print(f"    run {run}: {res.probes} probes, background sent at "
                      f"{res.sent_rate:,.0f} events/s; event->alert readable p50 "
                      f"{pct(res.alert_ms, 0.5):.0f} ms p99 {pct(res.alert_ms, 0.99):.0f} ms; "
                      f"event->score readable p50 {pct(res.score_ms, 0.5):.0f} ms p99 "
                      f"{pct(res.score_ms, 0.99):.0f} ms; not seen: {res.lost_alerts} alerts, "
                      f"{res.lost_scores} scores", flush=True)
                if res.sent_rate < 0.95 * args.rate:
                    print(f"    WARNING: the producer kept only {res.sent_rate:,.0f} of "
                          f"{args.rate:,.0f} events/s: the machine is overloaded, so this run "
                          "measures the queue, not the pipeline", flush=True)
            print(f"    median of {len(runs)} runs: event->alert readable p50 "
                  f"{statistics.median(pct(x.alert_ms, 0.5) for x in runs):.0f} ms, p99 "
                  f"{statistics.median(pct(x.alert_ms, 0.99) for x in runs):.0f} ms; "
                  f"event->score readable p50 "
                  f"{statistics.median(pct(x.score_ms, 0.5) for x in runs):.0f} ms, p99 "
                  f"{statistics.median(pct(x.score_ms, 0.99) for x in runs):.0f} ms", flush=True)
        if not args.skip_memory:
            memory_run(s, args.seed, logdir, CityDay(scans=args.day_scans))
    finally:
        if not was_running and not args.keep_stack:
            stack.down(s, log=lambda msg: print(f"[bench stack] {msg}", file=sys.stderr))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
