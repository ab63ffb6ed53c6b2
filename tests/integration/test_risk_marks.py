"""A grid's risk is scored even when the worker that changed it dies before scoring it.

The batch that changes a grid marks it in Redis (``keys.RISK_DIRTY``) in the same atomic
step; the score's write unmarks it only if the version it scored is still current. So a
worker killed between the two leaves its grids marked, and any other worker's refresher
scores them from Redis alone. Against the test stack's real Redis and the session's real
3-master Redis Cluster.
"""

from __future__ import annotations

import asyncio

import orjson
import pytest
import redis
from gridwatch.agents.fold import RawRecord
from gridwatch.agents.ingest import BatchApplier
from gridwatch.agents.risk_refresh import RiskRefresher
from gridwatch.agents.worker import decide_config
from gridwatch.schemas.events import format_time
from gridwatch.streams.topics import CHECKPOINT_SCANS
from shapely.geometry import box

from gridwatch import keys, redis_client
from gridwatch import settings as settings_mod
from gridwatch.city import Grid
from gridwatch.grid_index import GridIndex
from gridwatch.risk import load_risk_config
from gridwatch.store import AsyncStore
from tests import aio

pytestmark = pytest.mark.integration

BASE = 1_709_510_400.0  # 2024-03-04T00:00:00Z
GRIDS = [Grid(f"M-{n}", f"Mark {n}", f"标记{n}", "test", (f"w{n}",),
              box(121.39 + n * 0.01, 31.20, 121.40 + n * 0.01, 31.21)) for n in (1, 2, 3)]


def _scans(n: int) -> list[RawRecord]:
    out = []
    for i in range(n):
        g = i % len(GRIDS)
        ts = BASE + 60 * i
        event = {"event_id": f"s{i}", "ts": format_time(ts), "checkpoint_id": f"cp{g}",
                 "lon": 121.395 + (g + 1) * 0.01, "lat": 31.205, "person_ref": f"p{i}",
                 "code_color": "red" if i % 2 else "yellow", "direction": "in",
                 "last_negative_test_at": format_time(ts - 3600)}
        out.append(RawRecord(CHECKPOINT_SCANS, 0, i, orjson.dumps(event)))
    return out


def test_a_dead_workers_grids_are_scored_by_another(clean_stack: settings_mod.Settings) -> None:
    s = clean_stack

    async def run() -> tuple[set[str], int, set[str], set[bytes]]:
        store = AsyncStore(s.redis)
        try:
            # The worker applies a batch and dies before its refresher runs: no RiskRefresher.
            applier = BatchApplier(s, store, GridIndex(GRIDS), decide_config(s))
            update = await applier.prepare(_scans(30))
            await applier.commit(update)
            marked = {m.decode() for m in await store.redis.smembers(keys.RISK_DIRTY)}
            # Another worker's refresher, which marked nothing itself.
            other = RiskRefresher(store.redis, load_risk_config())
            assert not other.dirty
            written = await other.tick(durable=True)
            left = {m.decode() for m in await store.redis.smembers(keys.RISK_DIRTY)}
            risks = {k for k in await store.redis.keys(keys.risk("M-*"))}
            return marked, written, left, risks
        finally:
            await store.close()

    marked, written, left, risks = aio.run(run())
    assert marked == {g.id for g in GRIDS}
    assert written == len(GRIDS)
    assert left == set()
    assert risks == {keys.risk(g.id).encode() for g in GRIDS}
    r = redis.Redis.from_url(s.redis)
    try:
        record = orjson.loads(r.get(keys.risk("M-1")))
        assert record["hour"] == keys.hour_of(BASE + 60 * 27)  # scored from the applied scans
        assert record["contributions"]["red_scans"]["raw"] > 0
    finally:
        r.close()


def _changed_while_scoring(client: object) -> tuple[int, set[str], set[str]]:
    """Grid M-1's inputs change between the refresher's read and its write: M-1 must stay
    marked (scored again next time) and M-2 be unmarked."""

    async def run() -> tuple[int, set[str], set[str]]:
        aclient = client() if callable(client) else client  # type: ignore[operator]
        try:
            for g in ("M-1", "M-2"):
                await aclient.hincrby(keys.GRID_VERSION, g, 1)
                await aclient.sadd(keys.RISK_DIRTY, g)
                await aclient.hset(keys.GRID_HOUR, g, keys.hour_of(BASE))
                await aclient.hincrby(keys.grid_hour(g, keys.hour_of(BASE)), "scan:red:in", 3)
            refresher = RiskRefresher(aclient, load_risk_config())
            real_indicators = refresher._indicators

            async def indicators_then_change(chunk: list[str]) -> list[list[object]]:
                rows = await real_indicators(chunk)
                await aclient.hincrby(keys.GRID_VERSION, "M-1", 1)  # a batch lands meanwhile
                await aclient.sadd(keys.RISK_DIRTY, "M-1")
                return rows

            refresher._indicators = indicators_then_change  # type: ignore[method-assign]
            written = await refresher.refresh(["M-1", "M-2"])
            left = {m.decode() if isinstance(m, bytes) else m
                    for m in await aclient.smembers(keys.RISK_DIRTY)}
            refresher._indicators = real_indicators  # type: ignore[method-assign]
            await refresher.tick(durable=True)
            after = {m.decode() if isinstance(m, bytes) else m
                     for m in await aclient.smembers(keys.RISK_DIRTY)}
            return written, left, after
        finally:
            await aclient.aclose()

    return aio.run(run())


def test_a_grid_changed_while_scored_stays_marked_on_one_redis(
        clean_stack: settings_mod.Settings) -> None:
    written, left, after = _changed_while_scoring(
        lambda: redis_client.async_client(clean_stack.with_(redis_cluster=())))
    assert written == 1 and left == {"M-1"} and after == set()


def test_a_grid_changed_while_scored_stays_marked_on_a_cluster(
        redis_cluster: settings_mod.Settings) -> None:
    written, left, after = _changed_while_scoring(
        lambda: redis_client.async_client(redis_cluster))
    assert written == 1 and left == {"M-1"} and after == set()


def test_a_busy_grid_is_scored_at_most_every_so_often(clean_stack: settings_mod.Settings) -> None:
    """Changed again right after its score, a grid waits (marked) for ``every`` seconds,
    then is scored from its newest inputs; a grid not scored lately goes at once."""

    async def change(aclient: object, grid: str, red: int) -> None:
        await aclient.hincrby(keys.GRID_VERSION, grid, 1)  # type: ignore[attr-defined]
        await aclient.sadd(keys.RISK_DIRTY, grid)  # type: ignore[attr-defined]
        await aclient.hset(keys.GRID_HOUR, grid, keys.hour_of(BASE))  # type: ignore[attr-defined]
        await aclient.hincrby(keys.grid_hour(grid, keys.hour_of(BASE)),  # type: ignore[attr-defined]
                              "scan:red:in", red)

    def red_of(raw: bytes | None) -> float:
        return orjson.loads(raw)["contributions"]["red_scans"]["raw"] if raw else -1.0

    async def run() -> list[tuple[int, float, float, bool]]:
        aclient = redis_client.async_client(clean_stack.with_(redis_cluster=()))
        steps = []
        try:
            refresher = RiskRefresher(aclient, load_risk_config(), every=0.6)

            async def step() -> None:
                written = await refresher.tick(durable=True)
                steps.append((written, red_of(await aclient.get(keys.risk("M-1"))),
                              red_of(await aclient.get(keys.risk("M-2"))),
                              bool(await aclient.sismember(keys.RISK_DIRTY, "M-1"))))

            await change(aclient, "M-1", 2)
            await step()  # scored at once
            await change(aclient, "M-1", 3)
            await change(aclient, "M-2", 4)
            await step()  # M-1 waits, still marked; M-2 (never scored) goes
            await asyncio.sleep(0.7)
            await step()  # M-1 now, from its newest inputs
        finally:
            await aclient.aclose()
        return steps

    first, second, third = aio.run(run())
    assert first == (1, 2.0, -1.0, False)
    assert second == (1, 2.0, 4.0, True)
    assert third == (1, 5.0, 4.0, False)
