"""Benchmark of the live forecast refresh: a station's history read from Redis, with and
without the settled hours kept in memory between refreshes.

One station with three and a half years of hours (each hour's record as the ticket fold
writes it: arrivals, seats sold and booked, nine lead-time counters) is written to an
empty Redis. Then, with no holiday calendar and with ``CN``:

* **read in full** (``cache=False``): every refresh reads all the hours the forecaster
  uses (:func:`~gridwatch.agents.forecast.history_spans`);
* **kept**: the first refresh reads them all, the next ones (an hour apart, as the live
  refresher makes them) only the hours not seen before and the last two days.

Reported per mode: the refresh's wall time (read + forecast + write; median), the hours
read per refresh, the longest stall of the event loop while it ran (a 5 ms ticker on
the same loop: how long the worker's event processing waits), and the memory the kept
hours take (``tracemalloc``, after the first refresh).

Run: ``python bench/bench_refresh.py`` (``--help`` for options). Uses the bench stack of
``bench/_stack.py`` (Redis 16579; Kafka is started with it and unused), or with
``--slot N`` a stack of its own; starts it if needed and stops it afterwards unless it
was already running or ``--keep-stack`` is given.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import tracemalloc
from datetime import datetime, timezone

import _stack
import numpy as np
import redis
import redis.asyncio as aredis
from _machine import cpu_model, versions
from gridwatch.agents.forecast_refresh import ForecastRefresher

from gridwatch import keys
from gridwatch import settings as settings_mod

STATION = "BENCH-STN"
LEADS = (0, 1, 2, 3, 6, 12, 24, 48, 168)


def seed(url: str, origin: int, years: float, rng: np.random.Generator) -> int:
    """Hour records for ``years`` before ``origin``; returns how many were written."""
    r = redis.Redis.from_url(url)
    r.flushdb()
    first = origin - int(years * 365 * 24)
    pipe = r.pipeline(transaction=False)
    for n, h in enumerate(range(first, origin + 24)):
        hod = (h + 8) % 24
        arrived = int(rng.poisson(0 if hod < 6 else 200 * (1 + 0.8 * np.sin(2 * np.pi * (hod - 9) / 24))))
        fields = {"sold": arrived + 3, "booked": arrived, "refunded": 3}
        fields |= {f"lead:{b}": max(arrived // (k + 2), 0) for k, b in enumerate(LEADS)}
        if h < origin:
            fields["arrived"] = arrived
        pipe.hset(keys.station_hour(STATION, h), mapping=fields)
        pipe.zadd(keys.station_hours(STATION), {str(h): h})
        if n % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    r.close()
    return origin + 24 - first


async def _mode(url: str, origin: int, refreshes: int, calendar: str | None,
                cache: bool) -> dict[str, object]:
    client = aredis.Redis.from_url(url)
    stalls: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            stalls.append(now - last - 0.005)
            last = now

    tick = asyncio.create_task(ticker())
    walls, reads, worst, kept_bytes = [], [], [], 0
    try:
        refresher = ForecastRefresher(client, calendar=calendar, cache=cache)
        for k in range(refreshes):
            stalls.clear()
            before = refresher.hours_read
            t = time.perf_counter()
            await refresher.refresh(STATION, (origin + k) * 3600 + 60, force=True)
            walls.append(time.perf_counter() - t)
            await asyncio.sleep(0.02)  # the ticker's last gap
            reads.append(refresher.hours_read - before)
            worst.append(max(stalls, default=0.0))
        if cache:  # the kept hours' memory, from a refresher of its own (tracing is slow)
            tracemalloc.start()
            base = tracemalloc.get_traced_memory()[0]
            other = ForecastRefresher(client, calendar=calendar)
            await other._history(STATION, origin)
            kept_bytes = tracemalloc.get_traced_memory()[0] - base
            tracemalloc.stop()
            del other
    finally:
        stop.set()
        await tick
        await client.aclose()
    rest = slice(1, None) if cache else slice(None)
    return {"first": walls[0], "wall": statistics.median(walls[rest]),
            "reads": statistics.median(reads[rest]), "first_reads": reads[0],
            "stall": statistics.median(worst[rest]), "first_stall": worst[0],
            "kept_mb": kept_bytes / 2**20 if cache else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refreshes", type=int, default=8, help="refreshes per mode, an hour apart")
    parser.add_argument("--years", type=float, default=3.5, help="years of history written")
    parser.add_argument("--keep-stack", action="store_true", help="leave the bench stack running")
    parser.add_argument("--slot", type=int, default=int(os.environ.get("GRIDWATCH_BENCH_SLOT", "0")),
                        help="N > 0: a bench stack of this run's own (Redis 16579+N)")
    args = parser.parse_args(argv)
    if args.refreshes < 2:
        parser.error("--refreshes must be at least 2 (the first reads everything)")

    s = _stack.slot_settings(args.slot)
    with _stack.running(s, keep=args.keep_stack):
        _stack.hold(s)
        run(s, args.refreshes, args.years)
    return 0


def run(s: settings_mod.Settings, refreshes: int, years: float) -> None:
    """Write the station's history, then time each mode (see the module's doc)."""
    print("gridwatch forecast refresh benchmark", flush=True)
    print(f"  {os.cpu_count()} cores ({cpu_model()}), Python {sys.version.split()[0]}, "
          f"{', '.join(versions(['redis', 'numpy']))}, "
          f"Redis {redis.Redis.from_url(s.redis).info()['redis_version']}", flush=True)
    origin = int(datetime(2026, 3, 2, tzinfo=timezone.utc).timestamp() // 3600)
    t = time.perf_counter()
    n = seed(s.redis, origin, years, np.random.default_rng(5))
    print(f"one station, {n:,} hour records ({years} years) written in "
          f"{time.perf_counter() - t:.1f} s; {refreshes} refreshes an hour apart per mode",
          flush=True)
    for calendar in (None, "CN"):
        for cache in (False, True):
            res = asyncio.run(_mode(s.redis, origin, refreshes, calendar, cache))
            name = "kept" if cache else "read in full"
            line = (f"  calendar {calendar or 'none':<4} {name:<13} refresh median "
                    f"{res['wall'] * 1e3:7.0f} ms, {res['reads']:>7,.0f} hours read, "
                    f"longest loop stall {res['stall'] * 1e3:5.0f} ms")
            if cache:
                line += (f"; its first refresh {res['first'] * 1e3:.0f} ms "
                         f"({res['first_reads']:,} hours, stall {res['first_stall'] * 1e3:.0f} ms), "
                         f"kept hours {res['kept_mb']:.1f} MiB")
            print(line, flush=True)

if __name__ == "__main__":
    raise SystemExit(main())
