"""The state path alone: the worker's own batch applier on one Redis and on a cluster.

    python bench/bench_apply.py [--events 60000] [--runs 3] [--masters 3] [--slot 9]
                                [--profile]

``bench_ingest.py`` measures the whole worker with Kafka in the loop; its per-event CPU
figures move with whatever else the machine does in a three-second window. This one
takes Kafka out, to compare the state path's cost on one Redis with its cost on a Redis
Cluster: the simulated mix of ``bench_ingest.py`` is cut into the worker's batches
(``GRIDWATCH_BATCH`` records, taken from the partitions in turn as ``getmany()`` hands
them over, partitions chosen by Kafka's default partitioner from the keys) and each
batch goes through :class:`gridwatch.agents.ingest.BatchApplier` (fold, decide, apply)
and the risk refresher (one round every ten batches, about once a second at 20,000
events/s), in this process, one after the other. Nothing is published (no broker).

Per run and target it prints this process's CPU microseconds per applied event (user +
system, the same measure as the ingest bench's worker figure), redis-server's (all
masters), and the Redis calls per event; then the medians and the cluster / one-server
ratio of the process's cost. The two targets alternate within each run, so a change in
the machine's load falls on both. Redis on the bench stack's port of ``--slot`` and the
cluster on ports 17301+10*slot (started and stopped here, like ``bench_ingest.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import _stack  # bench/_stack.py: the script's own folder is first on sys.path
from _machine import cpu_model, py_spy, py_spy_top
from bench_ingest import _commandstats, _cpu_seconds, simulated_messages
from gridwatch.agents.ingest import BatchApplier
from gridwatch.agents.risk_refresh import RiskRefresher
from gridwatch.agents.worker import decide_config

from gridwatch import heap, redis_client, stack, store
from gridwatch.batch import RawRecord
from gridwatch.city import load_grids
from gridwatch.grid_index import GridIndex
from gridwatch.risk import load_risk_config
from gridwatch.settings import Settings


def batches(messages: list[tuple[str, bytes, bytes]], partitions: int, size: int
            ) -> list[list[RawRecord]]:
    """The records as a consumer would get them: offsets per partition, and batches of
    ``size`` taken from the partitions in turn (an equal share of each that has any)."""
    from aiokafka.partitioner import DefaultPartitioner

    partitioner = DefaultPartitioner()
    every = list(range(partitions))
    queues: dict[tuple[str, int], list[RawRecord]] = {}
    for topic, key, value in messages:
        p = partitioner(key, every, every)
        q = queues.setdefault((topic, p), [])
        q.append(RawRecord(topic, p, len(q), value, key))
    out: list[list[RawRecord]] = []
    cursors = dict.fromkeys(queues, 0)
    while any(cursors[q] < len(queues[q]) for q in queues):
        live = [q for q in queues if cursors[q] < len(queues[q])]
        share = max(1, size // len(live))
        batch: list[RawRecord] = []
        for q in live:
            take = queues[q][cursors[q]:cursors[q] + share]
            cursors[q] += len(take)
            batch.extend(take)
        out.append(batch)
    return out


def _redis_pids(s: Settings) -> list[int]:
    r = store.connect(s)
    try:
        infos = r.info("server", target_nodes="primaries") if s.redis_cluster else {"x": r.info("server")}
    finally:
        r.close()
    return [int(v["process_id"]) for v in infos.values()]


def _flush(s: Settings) -> None:
    c = redis_client.sync_client(s)
    try:
        if s.redis_cluster:
            c.flushdb(target_nodes="primaries")
        else:
            c.flushdb()
    finally:
        c.close()


async def _apply_all(s: Settings, work: list[list[RawRecord]]
                     ) -> tuple[int, float, float, dict[str, float]]:
    """(events applied, CPU seconds of this process, wall seconds, CPU seconds per step:
    fold and decide with their reads, the apply, the risk refresher)."""
    index = GridIndex(load_grids(s.grids))
    st = store.AsyncStore(s)
    risk = RiskRefresher(st.redis, load_risk_config(), every=0)
    applier = BatchApplier(s, st, index, decide_config(s), risk=risk)
    heap.tune()  # as the worker does once its start-up objects exist
    # CPU per step: nothing else runs in this process, so the CPU time across an await is
    # the step's own (its socket writes and reads included).
    spent = {"prepare": 0.0, "apply": 0.0, "risk": 0.0}

    def timed(name: str, fn: Any) -> Any:
        async def run(*a: Any, **kw: Any) -> Any:
            t = time.process_time()
            try:
                return await fn(*a, **kw)
            finally:
                spent[name] += time.process_time() - t
        return run

    applier.prepare = timed("prepare", applier.prepare)  # type: ignore[method-assign]
    st.apply = timed("apply", st.apply)  # type: ignore[method-assign]
    risk.tick = timed("risk", risk.tick)  # type: ignore[method-assign]
    try:
        await applier.reload()
        await applier.handle(work[0])  # scripts loaded, connections open
        await risk.tick(durable=False)
        applied = 0
        spent.update(dict.fromkeys(spent, 0.0))
        cpu, wall = time.process_time(), time.perf_counter()
        for i, batch in enumerate(work[1:], 1):
            update = await applier.handle(batch)
            applied += len(update.events)
            if i % 10 == 0:
                await risk.tick(durable=False)
        await risk.tick(durable=False)
        return applied, time.process_time() - cpu, time.perf_counter() - wall, spent
    finally:
        await st.close()


def one(s: Settings, work: list[list[RawRecord]]) -> dict[str, float]:
    _flush(s)
    pids = _redis_pids(s)
    r = store.connect(s)
    try:
        calls0, rcpu0 = sum(_commandstats(r).values()), sum(_cpu_seconds(p) for p in pids)
        applied, cpu, wall, steps = asyncio.run(_apply_all(s, work))
        calls = sum(_commandstats(r).values()) - calls0
        rcpu = sum(_cpu_seconds(p) for p in pids) - rcpu0
    finally:
        r.close()
    return {"applied": applied, "us": cpu / applied * 1e6, "redis_us": rcpu / applied * 1e6,
            "calls": calls / applied, "rate": applied / wall,
            **{step: v / applied * 1e6 for step, v in steps.items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--masters", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--slot", type=int, default=9)
    parser.add_argument("--profile", action="store_true",
                        help="record this process with py-spy over the cluster's first run")
    args = parser.parse_args(argv)

    base = _stack.slot_settings(args.slot)
    was_running = stack.status(base)["kafka_pid"] is not None
    _stack.up(base)  # its Redis (and an idle broker: the stack comes whole)
    cluster = _stack.with_redis_cluster(base, args.masters, args.slot)
    print(f"gridwatch state-path benchmark: the batch applier alone, one Redis vs a "
          f"{args.masters}-master cluster\n  CPU: {cpu_model()}, {os.cpu_count()} cores",
          flush=True)
    messages, _ = simulated_messages(args.events, args.seed, base.city)
    work = batches(messages, base.partitions, base.batch)
    print(f"workload: {len(messages):,} events (seed {args.seed}) in {len(work)} batches of "
          f"up to {base.batch}; load average {os.getloadavg()[0]:.2f}", flush=True)
    got: dict[str, list[dict[str, float]]] = {"one Redis": [], "cluster": []}
    try:
        for run in range(1, args.runs + 1):
            for name, s in (("one Redis", base.with_(redis_cluster=())), ("cluster", cluster)):
                spy = None
                if args.profile and run == 1 and name == "cluster" and py_spy():
                    import subprocess

                    out = Path(base.home) / "logs" / "bench-apply.pyspy.txt"
                    out.parent.mkdir(parents=True, exist_ok=True)
                    spy = (subprocess.Popen([py_spy(), "record", "-r", "200", "-f", "raw",
                                             "-o", str(out), "-p", str(os.getpid()), "--nonblocking"],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
                           out)
                    time.sleep(1.0)
                res = one(s, work)
                if spy is not None:
                    spy[0].send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
                    spy[0].wait(timeout=60)
                    for line in py_spy_top(spy[1], limit=30):
                        print("  " + line, flush=True)
                got[name].append(res)
                print(f"run {run}, {name}: {res['applied']:,.0f} events, {res['us']:.1f} us CPU "
                      f"of the applier per event, redis-server {res['redis_us']:.1f} us, "
                      f"{res['calls']:.2f} Redis calls per event, {res['rate']:,.0f} events/s; "
                      f"of the applier: prepare {res['prepare']:.1f}, apply {res['apply']:.1f}, "
                      f"risk {res['risk']:.1f} us "
                      f"(load {os.getloadavg()[0]:.2f})", flush=True)
    finally:
        if not was_running:
            stack.down(base, log=lambda m: print(f"[bench stack] {m}", file=sys.stderr))
            stack.down(cluster.with_(home=_stack.cluster_home(base)),
                       log=lambda m: print(f"[bench cluster] {m}", file=sys.stderr))

    def med(name: str, k: str) -> float:
        return statistics.median(r[k] for r in got[name])

    print(f"\nmedian of {args.runs} runs, {args.events:,} events each:")
    for name, runs in got.items():
        print(f"  {name:>9}: applier {med(name, 'us'):.1f} us/event (runs: "
              + ", ".join(f"{r['us']:.1f}" for r in runs)
              + f"; prepare {med(name, 'prepare'):.1f}, apply {med(name, 'apply'):.1f}, risk "
              f"{med(name, 'risk'):.1f}), redis-server {med(name, 'redis_us'):.1f} us, "
              f"{med(name, 'calls'):.2f} calls/event")
    ratios = [c["us"] / o["us"] for o, c in zip(got["one Redis"], got["cluster"])]
    print(f"  cluster / one Redis, applier CPU per event: {statistics.median(ratios):.2f} "
          f"(runs: {', '.join(f'{x:.2f}' for x in ratios)}); redis-server: "
          f"{med('cluster', 'redis_us') / med('one Redis', 'redis_us'):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
