"""The live forecast refresher against a real Redis: it reads the recent weeks and
the same dates in past years, in the district's time zone, and writes the forecast."""

from __future__ import annotations

import asyncio
import zoneinfo
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from itertools import pairwise

import numpy as np
import orjson
import redis
import redis.asyncio as aredis
from gridwatch.agents.forecast import history_spans
from gridwatch.agents.forecast_refresh import ForecastRefresher, build_inputs

from gridwatch import keys
from tests.drill import run_async

TZ = zoneinfo.ZoneInfo("Asia/Shanghai")
STATION = "SHS-T"


def _hour(d: datetime) -> int:
    return int(d.timestamp() // 3600)


def _arrivals(hour: int, rng: np.random.Generator) -> int:
    local = datetime.fromtimestamp(hour * 3600, TZ)
    shape = 0.0 if local.hour < 6 else 1 + 0.8 * np.sin(2 * np.pi * (local.hour - 9) / 24)
    return int(rng.poisson(200 * shape))


def test_refresher_reads_past_years_holiday_in_local_time(stack_settings) -> None:
    r = redis.Redis.from_url(stack_settings.redis)
    r.flushdb()
    rng = np.random.default_rng(7)
    now = datetime(2025, 12, 25, 0, 30, tzinfo=TZ)
    origin = _hour(now)
    # 25 December (local) was nearly empty in 2023 and 2024: two years make it come back.
    holidays = [(_hour(datetime(y, 12, 25, tzinfo=TZ)), _hour(datetime(y, 12, 26, tzinfo=TZ)))
                for y in (2023, 2024)]
    pipe = r.pipeline(transaction=False)
    stretches = [(datetime(2023, 10, 10, tzinfo=TZ), datetime(2024, 1, 5, tzinfo=TZ)),
                 (datetime(2024, 10, 10, tzinfo=TZ), datetime(2025, 1, 5, tzinfo=TZ)),
                 (datetime(2025, 10, 10, tzinfo=TZ), now)]
    for lo, hi in stretches:
        for h in range(_hour(lo), _hour(hi)):
            n = _arrivals(h, rng)
            if any(a <= h < b for a, b in holidays):
                n = n // 10
            pipe.hset(keys.station_hour(STATION, h), mapping={"arrived": n})
            pipe.zadd(keys.station_hours(STATION), {str(h): h})
    pipe.execute()

    made: list[dict] = []

    async def run() -> None:
        client = aredis.Redis.from_url(stack_settings.redis)
        try:
            refresher = ForecastRefresher(client, tz=TZ)
            made.append(await refresher.refresh(STATION, now.timestamp(), force=True))
        finally:
            await client.aclose()

    run_async(run)  # a thread of its own: the browser tests may leave a loop on this one
    record = made[0]
    stored = orjson.loads(r.get(keys.forecast(STATION)))
    assert stored["hours"] == record["hours"]
    assert stored["hours"][0] == "2025-12-25T00:00:00+08:00" and len(stored["hours"]) == 24
    assert r.xlen(keys.CHAN_FORECASTS) == 1
    # An ordinary day's arrivals: the same hours a week before.
    week_ago = sum(int(r.hget(keys.station_hour(STATION, origin - 168 + i), "arrived")) for i in range(24))
    assert sum(stored["yhat"]) < 0.4 * week_ago, (sum(stored["yhat"]), week_ago)
    r.close()


def test_build_inputs_covers_the_spans_the_model_reads() -> None:
    origin = 500_000
    rows = {h: {"arrived": 1} for lo, hi in history_spans(origin) for h in range(lo, hi)}
    ts, _counts, view, booked, arrived = build_inputs(rows, origin)
    hours = {int(t.timestamp() // 3600) for t in ts}
    assert hours == set(rows) and all(h < origin for h in hours)
    assert len(booked) == len(arrived) == 24 and not view.history
    spans = history_spans(origin)
    assert spans[-1][1] == origin
    assert len(spans) == 4 and all(a[1] < b[0] for a, b in pairwise(spans))
    assert timedelta(hours=origin - spans[0][0]) > timedelta(days=3 * 365)
    # With a holiday calendar the past years' stretches are a month wider either way,
    # and the refresher's inputs follow them.
    wide = {h: {"arrived": 1} for lo, hi in history_spans(origin, calendar="CN") for h in range(lo, hi)}
    assert set(rows) < set(wide)
    ts, *_ = build_inputs(wide, origin, "CN")
    assert {int(t.timestamp() // 3600) for t in ts} == set(wide)


def test_kept_history_gives_the_same_forecasts_and_reads_far_less(stack_settings) -> None:
    """A refresher that keeps the settled hours makes the forecasts one that reads
    everything makes, hour after hour while new arrivals come in and recent hours are
    corrected; a late correction to an older hour reaches it at the next refresh when the
    ticket fold marked the hour revised, and at the daily re-read when nobody did."""
    r = redis.Redis.from_url(stack_settings.redis)
    r.flushdb()
    rng = np.random.default_rng(11)
    start = _hour(datetime(2025, 6, 2, 8, 0, tzinfo=TZ))
    origins = [start + k for k in range(4)] + [start + 30]
    pipe = r.pipeline(transaction=False)
    for h in sorted({h for o in origins for lo, hi in history_spans(o) for h in range(lo, hi)}):
        if h >= start:
            continue
        fields = {"arrived": _arrivals(h, rng)}
        if h >= start - 20 * 24:  # the booking curve's counters on recent hours
            fields |= {"lead:0": fields["arrived"] // 4, "lead:6": fields["arrived"] // 2,
                       "booked": fields["arrived"]}
        pipe.hset(keys.station_hour(STATION, h), mapping=fields)
        pipe.zadd(keys.station_hours(STATION), {str(h): h})
    pipe.execute()

    def arrive(hour: int, n: int) -> None:
        r.hset(keys.station_hour(STATION, hour), "arrived", n)
        r.zadd(keys.station_hours(STATION), {str(hour): hour})

    pairs: list[tuple[dict, dict]] = []
    reads: list[tuple[int, int]] = []

    async def run() -> None:
        client = aredis.Redis.from_url(stack_settings.redis)
        try:
            kept = ForecastRefresher(client, tz=TZ)
            full = ForecastRefresher(client, tz=TZ, cache=False)
            for k, o in enumerate(origins):
                if k:
                    for h in range(origins[k - 1], o):  # the hours that passed
                        arrive(h, _arrivals(h, rng))
                    arrive(o - 10, 3)  # a recent hour corrected
                if k == 2:  # an older hour corrected by a late message, as the fold marks it
                    arrive(o - 300, 4000)
                    r.zadd(keys.station_revised(STATION), {str(o - 300): o - 300})
                if k == 3:
                    arrive(o - 200, 5000)  # an older hour edited behind the fold's back
                before = (kept.hours_read, full.hours_read)
                now = o * 3600 + 60
                pairs.append((await kept.refresh(STATION, now, force=True),
                              await full.refresh(STATION, now, force=True)))
                reads.append((kept.hours_read - before[0], full.hours_read - before[1]))
        finally:
            await client.aclose()

    run_async(run)
    same = [a["yhat"] == b["yhat"] and a["lo80"] == b["lo80"] and a["hi95"] == b["hi95"]
            for a, b in pairs]
    # The marked correction is seen at once; the unmarked one 200 hours back is missed
    # until the kept hours are read again.
    assert same == [True, True, True, False, True], same
    assert reads[2][0] < 60 and not r.exists(keys.station_revised(STATION))
    assert pairs[0][0]["notes"] == pairs[0][1]["notes"]
    assert reads[0][0] == reads[0][1] > 10_000  # the first refresh reads it all
    assert all(kept < 60 for kept, _ in reads[1:4])  # then two days and the new hour
    assert reads[4][0] == reads[4][1]  # a day on: read again in full
    r.close()


def _three_weeks(r: redis.Redis, seed: int) -> int:
    """An empty Redis with three weeks of the station's arrivals and the feed's event time
    at their end; returns the hour the feed is at."""
    r.flushdb()
    rng = np.random.default_rng(seed)
    start = _hour(datetime(2025, 6, 2, 8, 0, tzinfo=TZ))
    pipe = r.pipeline(transaction=False)
    for h in range(start - 21 * 24, start):
        pipe.hset(keys.station_hour(STATION, h), mapping={"arrived": _arrivals(h, rng)})
        pipe.zadd(keys.station_hours(STATION), {str(h): h})
    pipe.sadd(keys.STATIONS, STATION)
    pipe.hset(keys.WATERMARKS, "station-tickets:0", start * 3600 + 60)
    pipe.execute()
    return start


async def _refreshers(url: str, owners: list[str], lease_s: int,
                      body: Callable[[list[ForecastRefresher], list[asyncio.Task]], Awaitable[None]]) -> None:
    """Runs a refresher per owner (passes every 0.1 s) while ``body`` looks on."""
    client = aredis.Redis.from_url(url)
    found = [ForecastRefresher(client, tz=TZ, every=0.1, owner=o, lease_s=lease_s) for o in owners]
    tasks = [asyncio.create_task(f.run()) for f in found]
    try:
        await body(found, tasks)
    finally:
        # Cancelled again until done: a cancel that lands inside a Redis call can be
        # lost there, and the next one then lands in the refresher's sleep.
        for _ in range(100):
            pending = [t for t in tasks if not t.done()]
            if not pending:
                break
            for t in pending:
                t.cancel()
            await asyncio.wait(pending, timeout=0.1)
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.aclose()


def test_one_worker_makes_each_forecast_and_another_takes_over(stack_settings) -> None:
    """Two workers' refreshers: the station's forecast is made and published once, by the
    lease holder; when it stops, the other takes the lease and goes on."""
    r = redis.Redis.from_url(stack_settings.redis)
    start = _three_weeks(r, seed=5)
    seen: dict[str, object] = {}

    async def until(done: Callable[[], bool], limit: float = 60.0) -> None:
        # A forecast with no fit kept takes seconds on a slow machine (57 fits a model).
        t = asyncio.get_running_loop().time()
        while not done() and asyncio.get_running_loop().time() - t < limit:
            await asyncio.sleep(0.1)

    async def body(found: list[ForecastRefresher], tasks: list[asyncio.Task]) -> None:
        a, b = found
        await asyncio.sleep(1.5)
        await until(lambda: a.made + b.made > 0)
        await asyncio.sleep(0.5)  # time for a second forecast, which must not come
        seen["first"] = (a.made, b.made, r.xlen(keys.CHAN_FORECASTS))
        holder, other = (a, b) if a.made else (b, a)
        seen["holder"] = r.get(keys.forecast_owner(STATION)).decode() == holder.owner
        tasks[found.index(holder)].cancel()  # the holder's worker stops
        r.hset(keys.WATERMARKS, "station-tickets:0", (start + 1) * 3600 + 60)  # an hour on
        await asyncio.sleep(1.0)
        seen["early"] = other.made  # the lease has not run out yet
        await asyncio.sleep(2.5)
        await until(lambda: other.made > 0)
        seen["after"] = (other.made, r.xlen(keys.CHAN_FORECASTS))
        seen["taken"] = r.get(keys.forecast_owner(STATION)).decode() == other.owner

    # A lease longer than a forecast with no fit kept (several seconds on a slow machine):
    # the holder renews it between forecasts, not during one.
    run_async(lambda: _refreshers(stack_settings.redis, ["worker-a", "worker-b"], 10, body))
    made_a, made_b, published = seen["first"]
    assert sorted((made_a, made_b)) == [0, 1] and published == 1, seen
    assert seen["holder"] and seen["early"] == 0, seen
    assert seen["after"] == (1, 2) and seen["taken"], seen
    r.close()


def test_a_worker_that_loses_a_stations_lease_lets_its_kept_hours_go(stack_settings) -> None:
    r = redis.Redis.from_url(stack_settings.redis)
    _three_weeks(r, seed=6)
    seen: dict[str, object] = {}

    async def body(found: list[ForecastRefresher], tasks: list[asyncio.Task]) -> None:
        (a,) = found
        await asyncio.sleep(1.0)
        seen["kept"] = (a.made, len(a.history[STATION].rows) if STATION in a.history else 0)
        r.set(keys.forecast_owner(STATION), "worker-b", ex=30)  # another worker has it now
        await asyncio.sleep(0.6)
        seen["after"] = (a.made, STATION in a.history, STATION in a.last)

    run_async(lambda: _refreshers(stack_settings.redis, ["worker-a"], 30, body))
    made, kept = seen["kept"]
    assert made == 1 and kept > 400, seen  # three weeks less the two days read each time
    assert seen["after"] == (1, False, False), seen
    r.close()


def test_the_lease_is_kept_through_a_forecast_longer_than_it(stack_settings, monkeypatch) -> None:
    """A forecast that takes three lease lengths (a cold pass over many stations takes
    minutes): the holder renews its lease meanwhile, and no other worker starts the
    station's forecast."""
    import time

    r = redis.Redis.from_url(stack_settings.redis)
    _three_weeks(r, seed=7)
    started: list[str] = []
    make = ForecastRefresher._make

    def slow_make(self: ForecastRefresher, *args: object) -> object:
        started.append(self.owner)
        time.sleep(6.0)  # in the forecast's thread, as a slow forecast would
        return make(self, *args)

    monkeypatch.setattr(ForecastRefresher, "_make", slow_make)
    seen: dict[str, object] = {}

    async def body(found: list[ForecastRefresher], tasks: list[asyncio.Task]) -> None:
        t = asyncio.get_running_loop().time()
        while not started and asyncio.get_running_loop().time() - t < 30:
            await asyncio.sleep(0.05)
        await asyncio.sleep(5.0)  # 2.5 lease lengths into the forecast
        owner = r.get(keys.forecast_owner(STATION))
        seen["owner"] = owner.decode() if owner else None  # None: the lease ran out
        seen["ttl"] = r.ttl(keys.forecast_owner(STATION))
        seen["started"] = list(started)

    run_async(lambda: _refreshers(stack_settings.redis, ["worker-a", "worker-b"], 2, body))
    assert len(seen["started"]) == 1, seen  # without the renewals: both, 2 s apart
    assert seen["owner"] == seen["started"][0] and seen["ttl"] > 0, seen
    r.close()
