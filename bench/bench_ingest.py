"""Sustained end-to-end ingest through one ``gridwatch worker`` (Kafka -> worker -> Redis),
beside a bare aiokafka consumer reading the same topics, on this machine.

Run::

    python bench/bench_ingest.py [--events 200000] [--runs 3] [--seed 1] [--keep-stack]
                                 [--workers N] [--redis-cluster 3] [--profile]

Each run, on the benchmark's own stack (Kafka 127.0.0.1:19292, Redis 127.0.0.1:16579,
data under ``.local/bench-stack``):

1. empty the topics and the Redis database;
2. pre-load the same simulated mix of the three input streams (checkpoint scans, crowd
   loiter reports, station tickets, in the simulator's proportions and order, keyed as
   ``gridwatch publish`` keys them) with a fast aiokafka producer;
3. read all of it back with a bare aiokafka consumer (``getmany``, no decoding, no
   group): the rate at which this machine merely reads the topics;
4. start one ``gridwatch worker`` and time from the first applied event to the last,
   polling ``gridwatch.store.summary``; the applied lag (end offsets minus the offsets
   the worker has applied in Redis) and the consumer group's committed lag are sampled
   throughout, and must never grow.

The figures printed are the median over ``--runs`` runs; the worker's rate over the bare
read rate is the ratio (what decoding, grid mapping, folding and the Redis apply cost).

With ``--redis-cluster N`` the state goes to a local Redis Cluster of N masters (ports
17301+10*slot on, data under ``.local/bench-stack-redis-cluster``) instead of the single
Redis: the batch is split by slot (``gridwatch.store``); redis-server CPU is summed over
the masters, and so are the Redis calls.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import _stack  # bench/_stack.py: the script's own folder is first on sys.path
import orjson
from _machine import cpu_model, kafka_version, py_spy, py_spy_top
from _machine import versions as package_versions
from gridwatch.agents.consume import ingest_group
from gridwatch.streams.simulate import CST, CityDay, Simulator
from gridwatch.streams.topics import INPUTS

from gridwatch import keys, store
from gridwatch.city import load_city
from gridwatch.settings import Settings

Message = tuple[str, bytes, bytes]  # topic, key, value
START = datetime(2026, 11, 23, tzinfo=CST)  # a Monday; fixed so a seed gives the same events
APPLIED_FIELDS = ("checkpoint_scans", "loiter_reports", "station_tickets", "deadletter")


# ---- the workload ------------------------------------------------------------------------


def simulated_messages(n: int, seed: int, city_path: Path) -> tuple[list[Message], dict[str, int]]:
    """``n`` events of a simulated city day, scaled so that a whole day is about ``n``
    events (so the mix of the three streams and their daily rhythm are the simulator's)."""
    base = CityDay()
    per_day = base.scans + base.loiter_reports + 3_300  # ~3,300 station tickets a day
    scale = n / per_day
    profile = CityDay(scans=max(1, int(base.scans * scale)),
                      loiter_reports=max(1, int(base.loiter_reports * scale)),
                      arrivals=max(50, int(base.arrivals * scale)),
                      people=max(1_000, int(base.people * min(scale, 1.0))))
    sim = Simulator(load_city(city_path), seed=seed, start=START, profile=profile)
    out: list[Message] = []
    mix: dict[str, int] = {}
    for _, topic, event in sim.stream(days=2.0):
        out.append((topic.name, str(event[topic.key_field]).encode(), orjson.dumps(event)))
        mix[topic.name] = mix.get(topic.name, 0) + 1
        if len(out) >= n:
            break
    return out, mix


async def preload(s: Settings, messages: list[Message]) -> float:
    """Send every message (acks=all) in ready-made batches, one partition at a time in
    offset order; partitions are chosen from the key with Kafka's default partitioner
    (murmur2), as any client keying the same way would. Returns messages/s."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.partitioner import DefaultPartitioner

    partitioner = DefaultPartitioner()
    all_partitions = list(range(s.partitions))
    by_partition: dict[tuple[str, int], list[tuple[bytes, bytes]]] = {}
    for topic, key, value in messages:
        p = partitioner(key, all_partitions, all_partitions)
        by_partition.setdefault((topic, p), []).append((key, value))
    producer = AIOKafkaProducer(bootstrap_servers=s.kafka, acks="all",
                                max_batch_size=1024 * 1024, max_request_size=8 * 1024 * 1024,
                                client_id="gridwatch-bench-preload")
    await producer.start()
    started = time.perf_counter()
    try:
        async def send_partition(topic: str, partition: int,
                                 items: list[tuple[bytes, bytes]]) -> None:
            batch = producer.create_batch()
            for key, value in items:
                if batch.append(key=key, value=value, timestamp=None) is None:
                    await (await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)
            if batch.record_count():
                await (await producer.send_batch(batch, topic, partition=partition))

        await asyncio.gather(*(send_partition(t, p, items)
                               for (t, p), items in by_partition.items()))
    finally:
        await producer.stop()
    return len(messages) / (time.perf_counter() - started)


@dataclass
class BareRead:
    rate: float
    ends: dict[str, int]  # "topic:partition" -> end offset (next offset to be written)


async def bare_read(s: Settings, expected: int) -> BareRead:
    """Read the input topics from the beginning with a bare aiokafka consumer."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=s.kafka, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                max_partition_fetch_bytes=4 * 1024 * 1024,
                                fetch_max_bytes=64 * 1024 * 1024,
                                client_id="gridwatch-bench-bare")
    await consumer.start()
    try:
        tps = [TopicPartition(t.name, p) for t in INPUTS for p in range(s.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        total = sum(ends.values())
        if total != expected:
            raise RuntimeError(f"topics hold {total} messages, {expected} were sent")
        got = 0
        deadline = time.monotonic() + 600
        # Timed from the first fetch request to the last record: every record counts.
        started = time.perf_counter()
        while got < expected:
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            got += sum(len(records) for records in batch.values())
            if time.monotonic() > deadline:
                raise RuntimeError(f"bare consumer read {got} of {expected} in 600 s")
        rate = got / (time.perf_counter() - started)
        return BareRead(rate, {keys.partition_field(tp.topic, tp.partition): off
                               for tp, off in ends.items()})
    finally:
        await consumer.stop()


# ---- the worker --------------------------------------------------------------------------


@dataclass
class WorkerRun:
    rate: float
    seconds: float
    applied: int
    worker_cpu: float  # CPU seconds of the worker process over the timed window / window
    worker_us: float = 0.0  # worker CPU microseconds per applied event
    redis_us: float = 0.0  # redis-server CPU microseconds per applied event
    calls: dict[str, float] = field(default_factory=dict)  # Redis command -> calls per event
    applied_lag: list[tuple[float, int]] = field(default_factory=list)
    committed_lag: list[tuple[float, int]] = field(default_factory=list)
    per_worker: list[int] = field(default_factory=list)  # events each worker applied


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _per_node(r: object, section: str) -> list[dict[str, object]]:
    """``INFO section`` of one server, or of every master of a cluster."""
    if getattr(r, "get_primaries", None) is None:
        return [r.info(section)]  # type: ignore[attr-defined]
    got = r.info(section, target_nodes="primaries")  # type: ignore[attr-defined]
    return list(got.values()) if isinstance(got, dict) and all(
        isinstance(v, dict) for v in got.values()) and "redis_version" not in got else [got]


def _commandstats(r: object) -> dict[str, int]:
    """Calls so far per Redis command (``INFO commandstats``; a script's own calls count
    under the command they make), summed over a cluster's masters."""
    out: dict[str, int] = {}
    for stats in _per_node(r, "commandstats"):
        for name, v in stats.items():
            key = name.removeprefix("cmdstat_")
            out[key] = out.get(key, 0) + int(v["calls"])  # type: ignore[index]
    return out


def _redis_cpu(pids: list[int]) -> float:
    return sum(_cpu_seconds(pid) for pid in pids)


def _applied(r: object) -> int:
    summary = store.summary(r)  # type: ignore[arg-type]
    return sum(summary[name] for name in APPLIED_FIELDS)


def _applied_lag(r: object, ends: dict[str, int]) -> int:
    raw = r.hgetall(keys.OFFSETS)  # type: ignore[attr-defined]
    applied = {k: int(v) for k, v in raw.items()}
    return sum(end - (applied.get(pf, -1) + 1) for pf, end in ends.items())


def _committed_lag(admin: object, group: str, ends: dict[str, int]) -> int | None:
    try:
        if hasattr(admin, "list_group_offsets"):  # kafka-python 3.x
            offsets = admin.list_group_offsets(group).get(group, {})
        else:  # kafka-python 2.x
            offsets = admin.list_consumer_group_offsets(group)  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - the group may have no coordinator yet
        return None
    if not offsets:
        return None
    committed = {keys.partition_field(tp.topic, tp.partition): meta.offset
                 for tp, meta in offsets.items() if meta.offset >= 0}
    return sum(end - committed.get(pf, 0) for pf, end in ends.items())


METRICS_PORT = 19464  # + worker index: each worker of a run says what it applied


def _worker_applied(port: int) -> int:
    """Events a worker applied or dead-lettered, from its own /metrics."""
    import urllib.request

    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return -1
    total = 0.0
    for line in text.splitlines():
        if line.startswith(("gridwatch_events_applied_total", "gridwatch_events_deadlettered_total")):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def state_digest(s: Settings) -> str:
    """A digest of the whole materialised state (``gridwatch state dump``)."""
    import hashlib

    r = store.connect(s)
    try:
        return hashlib.sha256(orjson.dumps(store.dump(r), option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]
    finally:
        r.close()


def run_worker(s: Settings, expected: int, ends: dict[str, int], log_path: Path,
               n_workers: int = 1, profile: Path | None = None) -> WorkerRun:
    """Start ``n_workers`` workers and time them from the first applied event to the last;
    ``profile``: record the first worker with py-spy over that span into this file."""
    from kafka import KafkaAdminClient

    r = store.connect(s)  # the cluster's client with --redis-cluster
    admin = KafkaAdminClient(bootstrap_servers=s.kafka, client_id="gridwatch-bench-lag")
    procs = [_stack.start_worker(s, log_path.with_suffix(f".{i}.log") if n_workers > 1 else log_path,
                                 {"GRIDWATCH_WORKER_HTTP": f"127.0.0.1:{METRICS_PORT + i}",
                                  "GRIDWATCH_TIMERS": "0",
                                  "GRIDWATCH_REDIS_CLUSTER": ",".join(s.redis_cluster)})
             for i in range(n_workers)]
    proc = procs[0]
    redis_pids = [int(info["process_id"]) for info in _per_node(r, "server")]  # type: ignore[call-overload]
    spy: subprocess.Popen[bytes] | None = None
    try:
        deadline = time.monotonic() + 120  # start-up: joining the group, first fetch
        first_at = 0.0
        first_n = 0
        cpu0 = 0.0
        applied_lag: list[tuple[float, int]] = []
        committed_lag: list[tuple[float, int]] = []
        next_sample = 0.0
        n = last_n = 0
        while True:
            now = time.perf_counter()
            n = _applied(r)
            if n and not first_at:
                first_at, first_n, cpu0 = now, n, sum(_cpu_seconds(p.pid) for p in procs)
                redis0, calls0 = _redis_cpu(redis_pids), _commandstats(r)
                next_sample = now
                if profile is not None:
                    spy = subprocess.Popen([py_spy() or "py-spy", "record", "-p", str(proc.pid), "-r", "200",
                                            "-f", "raw", "-o", str(profile), "--nonblocking"],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if n > last_n:
                # Slow is measured, not failed: give up only after 120 s without progress.
                last_n, deadline = n, time.monotonic() + 120
            if first_at and now >= next_sample:
                applied_lag.append((now - first_at, _applied_lag(r, ends)))
                lag = _committed_lag(admin, ingest_group(s), ends)
                if lag is not None:
                    committed_lag.append((now - first_at, lag))
                next_sample = now + 0.5
            if n >= expected:
                end_at = time.perf_counter()
                cpu1 = sum(_cpu_seconds(p.pid) for p in procs)
                redis1, calls1 = _redis_cpu(redis_pids), _commandstats(r)
                if spy is not None:
                    spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
                    spy.wait(60)
                per_worker = [_worker_applied(METRICS_PORT + i) for i in range(n_workers)]
                time.sleep(2.0)  # the risk refresher's last round, before the state is compared
                break
            if any(p.poll() is not None for p in procs):
                raise RuntimeError(f"the worker exited with {proc.returncode}; see {log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the worker stalled at {n} of {expected} applied "
                                   f"(no progress for 120 s); see {log_path}")
            time.sleep(0.02)
        applied_lag.append((end_at - first_at, _applied_lag(r, ends)))
        # The group commits about once a second: give it a moment to catch up.
        settle = time.monotonic() + 5
        while time.monotonic() < settle:
            lag = _committed_lag(admin, ingest_group(s), ends)
            if lag is not None:
                committed_lag.append((time.perf_counter() - first_at, lag))
                if lag == 0:
                    break
            time.sleep(0.5)
        seconds = end_at - first_at
        events = max(1, n - first_n)
        calls = {name: (count - calls0.get(name, 0)) / events for name, count in calls1.items()
                 if count > calls0.get(name, 0)}
        return WorkerRun(rate=(n - first_n) / seconds, seconds=seconds, applied=n,
                         worker_cpu=(cpu1 - cpu0) / seconds,
                         worker_us=(cpu1 - cpu0) / events * 1e6,
                         redis_us=(redis1 - redis0) / events * 1e6, calls=calls,
                         applied_lag=applied_lag,
                         committed_lag=committed_lag, per_worker=per_worker)
    finally:
        if spy is not None and spy.poll() is None:
            spy.kill()
        for p in procs:
            _stack.stop_worker(p)
        admin.close()
        r.close()


def max_rise(series: list[tuple[float, int]]) -> int:
    """The largest increase between two consecutive samples (0: never grew)."""
    return max([0] + [b[1] - a[1] for a, b in itertools.pairwise(series)])


# ---- the machine ---------------------------------------------------------------------------


def machine(s: Settings) -> list[str]:
    cpu = cpu_model()
    versions = package_versions(("faust-streaming", "mode-streaming", "aiokafka", "kafka-python", "redis",
                 "orjson", "shapely", "numpy"))
    kafka = kafka_version(s.home)
    try:
        r = store.connect(s)
        redis_version = _per_node(r, "server")[0]["redis_version"]
        r.close()
    except Exception:  # noqa: BLE001
        redis_version = "?"
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"CPU: {cpu}, {os.cpu_count()} cores, {mem_gb:.1f} GiB RAM",
        f"OS: {platform.platform()}",
        f"Python {platform.python_version()} ({platform.python_implementation()})",
        f"Kafka {kafka} (KRaft, one node), Redis {redis_version} (AOF everysec"
        + (f"; a cluster of {len(s.redis_cluster)} masters)" if s.redis_cluster else ")"),
        "packages: " + ", ".join(versions),
        f"load average before the runs: {load}",
    ]


# ---- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    # aiokafka logs each retry while fresh partitions elect their leader; the retries
    # are harmless and the preload waits for every send.
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep-stack", action="store_true",
                        help="leave the bench stack running afterwards")
    parser.add_argument("--workers", type=int, default=1,
                        help="workers in one group; with 2 or more, each run is also done with "
                             "one worker and the two final states are compared")
    parser.add_argument("--slot", type=int, default=int(os.environ.get("GRIDWATCH_BENCH_SLOT", "0")),
                        help="use the bench stack of this slot")
    parser.add_argument("--redis-cluster", type=int, default=0, metavar="N",
                        help="keep the state on a local Redis Cluster of N (>= 3) masters")
    parser.add_argument("--profile", action="store_true",
                        help="record the worker of the first run with py-spy (200 Hz, from the "
                             "first applied event to the last) and print where its time goes")
    args = parser.parse_args(argv)

    s = _stack.slot_settings(args.slot)
    from gridwatch import stack

    was_running = stack.status(s)["kafka_pid"] is not None
    _stack.up(s)
    if args.redis_cluster:
        s = _stack.with_redis_cluster(s, args.redis_cluster, args.slot)
    print("gridwatch ingest benchmark: Kafka -> one worker -> Redis", flush=True)
    for line in machine(s):
        print("  " + line)
    started = time.perf_counter()
    messages, mix = simulated_messages(args.events, args.seed, s.city)
    sizes = [len(v) for _, _, v in messages]
    print(f"workload: {len(messages):,} simulated events (seed {args.seed}), "
          + ", ".join(f"{t.split('.')[-1]} {n / len(messages):.1%}" for t, n in sorted(mix.items()))
          + f"; mean {statistics.mean(sizes):.0f} B per message; "
          f"{s.partitions} partitions per topic; generated in "
          f"{time.perf_counter() - started:.1f} s", flush=True)
    logdir = s.home / "logs"
    results = []
    scale_out: list[tuple[WorkerRun, WorkerRun, bool]] = []
    failures: list[str] = []
    try:
        for run in range(1, args.runs + 1):
            s_run = s.with_(group=f"gridwatch-bench-{uuid.uuid4().hex[:8]}")
            _stack.clean(s_run)
            produced = asyncio.run(preload(s_run, messages))
            bare = asyncio.run(bare_read(s_run, len(messages)))
            try:
                spy_file = (logdir / "bench-worker.pyspy.txt"
                            if args.profile and run == 1 and py_spy() else None)
                worker = run_worker(s_run, len(messages), bare.ends,
                                    logdir / f"bench-worker-{run}.log", profile=spy_file)
                if spy_file is not None and spy_file.exists():
                    print("run 1: the worker's profile (py-spy):", flush=True)
                    for line in py_spy_top(spy_file, limit=30):
                        print("  " + line, flush=True)
                if args.workers > 1:
                    one = state_digest(s_run)
                    s_many = s.with_(group=f"gridwatch-bench-{uuid.uuid4().hex[:8]}")
                    _stack.clean(s_many)
                    asyncio.run(preload(s_many, messages))
                    many = run_worker(s_many, len(messages), bare.ends,
                                      logdir / f"bench-workers-{run}.log", n_workers=args.workers)
                    same = state_digest(s_many) == one
                    scale_out.append((worker, many, same))
                    print(f"run {run}: {args.workers} workers in one group: {many.rate:,.0f} events/s "
                          f"together (one worker: {worker.rate:,.0f}); applied per worker "
                          + ", ".join(f"{n:,} ({n / many.seconds:,.0f}/s)" for n in many.per_worker)
                          + f"; worker CPU together {many.worker_cpu:.0%}; final state "
                          + ("IDENTICAL to one worker's" if same else "DIFFERS from one worker's"),
                          flush=True)
            except RuntimeError as exc:
                failures.append(f"run {run}: {exc}")
                print(f"run {run}: FAILED: {exc}", flush=True)
                continue
            a_rise, c_rise = max_rise(worker.applied_lag), max_rise(worker.committed_lag)
            results.append((worker, bare))
            print(f"run {run}: worker {worker.rate:,.0f} events/s ({worker.applied:,} applied in "
                  f"{worker.seconds:.2f} s, worker CPU {worker.worker_cpu:.0%}, "
                  f"{worker.worker_us:.0f} us/event; redis-server {worker.redis_us:.1f} us/event); "
                  f"bare aiokafka read {bare.rate:,.0f} msg/s; ratio {worker.rate / bare.rate:.3f}; "
                  f"pre-load {produced:,.0f} msg/s", flush=True)
            lag_points = worker.applied_lag
            picks = [lag_points[int(i * (len(lag_points) - 1) / 5)] for i in range(6)]
            print("        applied lag (s: events): "
                  + ", ".join(f"{t:.1f}: {lag:,}" for t, lag in picks)
                  + f"; largest rise {a_rise}; committed lag at the end "
                  + (f"{worker.committed_lag[-1][1]:,}" if worker.committed_lag else "n/a")
                  + f", largest rise {c_rise}", flush=True)
    finally:
        if not was_running and not args.keep_stack:
            stack.down(s, log=lambda msg: print(f"[bench stack] {msg}", file=sys.stderr))
            if s.redis_cluster:
                stack.down(s.with_(home=_stack.cluster_home(s)),
                           log=lambda msg: print(f"[bench cluster] {msg}", file=sys.stderr))

    if not results:
        print("no run completed: " + "; ".join(failures))
        return 1
    worker_rates = [w.rate for w, _ in results]
    bare_rates = [b.rate for _, b in results]
    ratios = [w.rate / b.rate for w, b in results]
    grew = [max(max_rise(w.applied_lag), max_rise(w.committed_lag)) for w, _ in results]
    print()
    print(f"median of {len(results)} runs, {len(messages):,} events each:")
    print(f"  (a) end-to-end ingest, one worker:   {statistics.median(worker_rates):>10,.0f} "
          f"events/s   (runs: {', '.join(f'{x:,.0f}' for x in worker_rates)})")
    print(f"  (b) bare aiokafka read (getmany):    {statistics.median(bare_rates):>10,.0f} "
          f"msg/s      (runs: {', '.join(f'{x:,.0f}' for x in bare_rates)})")
    print(f"  (c) ratio worker / bare read:        {statistics.median(ratios):>10.3f}"
          f"             (runs: {', '.join(f'{x:.3f}' for x in ratios)})")
    print(f"  consumer lag: {'never grew' if max(grew) <= 0 else 'GREW'} during any run "
          f"(largest rise between samples: {max(grew)})")
    print(f"  worker CPU over the timed window: "
          f"{statistics.median([w.worker_cpu for w, _ in results]):.0%} of one core (median)")
    print(f"  CPU per applied event (median): worker "
          f"{statistics.median([w.worker_us for w, _ in results]):.1f} us, redis-server "
          f"{statistics.median([w.redis_us for w, _ in results]):.1f} us")
    names = sorted({c for w, _ in results for c in w.calls},
                   key=lambda c: -statistics.median([w.calls.get(c, 0.0) for w, _ in results]))
    per_event = {c: statistics.median([w.calls.get(c, 0.0) for w, _ in results]) for c in names}
    print(f"  Redis calls per applied event (median; the bench's own polling included): "
          f"{sum(per_event.values()):.2f} in all; "
          + ", ".join(f"{c} {v:.3f}" for c, v in per_event.items() if v >= 0.001))
    if scale_out:
        print(f"  (d) {args.workers} workers in one group: "
              f"{statistics.median([m.rate for _, m, _ in scale_out]):,.0f} events/s together "
              f"(median; runs: {', '.join(f'{m.rate:,.0f}' for _, m, _ in scale_out)}); final state "
              + ("identical to one worker's in every run" if all(x for _, _, x in scale_out)
                 else "DIFFERENT from one worker's in some run"))
    if failures:
        print(f"  {len(failures)} run(s) failed: " + "; ".join(failures))
    print(f"  load average after the runs: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    ok = max(grew) <= 0 and not failures and all(x for _, _, x in scale_out)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
