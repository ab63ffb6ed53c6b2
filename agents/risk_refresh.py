"""Keeping every grid's risk score live: recompute the grids whose inputs changed.

Each applied batch bumps the input version of the grids it touched. The refresher
reads the indicators of those grids in one Lua call (24 hourly buckets each, the same
hour a week earlier, open and overdue tasks), scores them with the pure
:func:`~gridwatch.risk.score_grid`, and writes each score only if the grid's
input version is still the one it read: if another batch changed the grid meanwhile,
that batch's own refresh writes the newer score. The window is the grid's own newest
event hour, so the score is a function of the grid's events alone (a replay, a crash
or a second worker give the same scores).

On a Redis Cluster the grids' keys live in many slots, which one script may not touch:
there the same indicators are read with pipelines split by node (:mod:`.risk_cluster`),
and a score is written after checking the version, then the version is read again; a
grid whose version moved meanwhile is marked dirty, so the newest inputs are scored at
the next tick (the same end state, reached one refresh later at worst).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

import orjson

from .. import keys
from ..redis_client import is_cluster
from ..risk import RiskConfig, score_grid, volume_ratio
from . import risk_cluster

log = logging.getLogger("gridwatch.risk")

# One server only: the hour keys (24 per grid and the week before) are built inside Lua,
# which a cluster refuses; there :func:`.risk_cluster.read_rows` reads the same rows.
INDICATORS = """
-- grids: {grid, the start of its hour keys (keys.grid_hours_prefix)}
local tasks_fmt, grids = ARGV[1], cjson.decode(ARGV[2])
local out = {}""" + risk_cluster.SCANS_LUA + """
for _, row in ipairs(grids) do
  local g, hours = row[1], row[2]
  local hour = tonumber(redis.call('HGET', KEYS[1], g) or '0')
  local ver = redis.call('HGET', KEYS[2], g) or '0'""" + risk_cluster.sum_hours_lua(
    "hour - 23", "hour", "hours .. h") + """
  local tkey = string.format(tasks_fmt, g)
  local open = redis.call('ZCARD', tkey)
  local overdue = redis.call('ZCOUNT', tkey, '-inf', '(' .. tostring((hour + 1) * 3600))
  table.insert(out, {g, ver, hour, red, yellow, stale, cross, loit, crowd,
                     scans(hours .. hour), scans(hours .. (hour - 168)), open, overdue})
end
return cjson.encode(out)
"""

# Every key it writes is declared: KEYS[4 + i] is the risk key of item i. A grid scored
# from its current inputs leaves the dirty set in the same step; one whose version moved
# stays in it, to be scored again.
PUT_RISK = """
local items = cjson.decode(ARGV[1])
local written = 0
for i, it in ipairs(items) do
  local ver = redis.call('HGET', KEYS[1], it[1]) or '0'
  if ver == it[2] then
    redis.call('SET', KEYS[4 + i], it[4])
    redis.call('ZADD', KEYS[2], it[5], it[1])
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*', 'd', it[6])
    redis.call('SREM', KEYS[4], it[1])
    written = written + 1
  end
end
return written
"""


def indicators_of(row: list[Any], config: RiskConfig) -> dict[str, float]:
    """The risk indicators of one row of the INDICATORS script."""
    (_, _, _, red, yellow, stale, cross, loit, crowd, now_scans, week_scans, open_t, overdue) = row
    return {
        "red_scans": float(red),
        "yellow_scans": float(yellow),
        "stale_tests": float(stale),
        "cross_grid_moves": float(cross),
        "loiter_alerts": float(loit),
        "largest_crowd": float(crowd),
        "scan_volume_vs_last_week": volume_ratio(float(now_scans), float(week_scans), config),
        "open_tasks": float(open_t),
        "overdue_tasks": float(overdue),
    }


class RiskRefresher:
    """Recomputes the risk of grids marked dirty: it looks every ``interval`` seconds,
    and scores one grid at most every ``every`` seconds (a grid that every batch
    changes would otherwise cost its 24 hours of reads many times a second)."""

    def __init__(self, redis: Any, config: RiskConfig, *, interval: float = 0.1,
                 every: float = 0.0) -> None:
        self.redis = redis
        self.config = config
        self.interval = interval
        self.every = every
        self.dirty: set[str] = set()
        self._scored_at: dict[str, float] = {}  # grid -> monotonic time of its last score
        self.cluster = is_cluster(redis)
        self._read = redis.register_script(INDICATORS)
        self._write = redis.register_script(PUT_RISK)
        self.written = 0

    async def _indicators(self, chunk: list[str]) -> list[list[Any]]:
        # One script on one server; pipelines split by node on a cluster (same rows).
        if self.cluster:
            return await risk_cluster.read_rows(self.redis, chunk)
        raw = await self._read(keys=[keys.GRID_HOUR, keys.GRID_VERSION],
                               args=[keys.TASKS_OPEN_FMT,
                                     orjson.dumps([[g, keys.grid_hours_prefix(g)] for g in chunk])])
        return orjson.loads(raw) if raw not in (b"{}", "{}") else []

    async def _put(self, items: list[list[Any]]) -> int:
        if self.cluster:
            written, moved = await risk_cluster.put_rows(self.redis, items)
            self.dirty |= moved  # scored from older inputs: score again next tick
            return written
        return int(await self._write(
            keys=[keys.GRID_VERSION, keys.RISK_RANK, keys.CHAN_GRIDS, keys.RISK_DIRTY,
                  *(it[2] for it in items)],
            args=[orjson.dumps(items), keys.CHAN_MAXLEN]))

    def mark(self, grids: Iterable[str]) -> None:
        self.dirty.update(grids)

    async def refresh(self, grids: Iterable[str]) -> int:
        """Recompute and store the risk of ``grids``; returns how many were written."""
        grids = sorted(grids)
        now = time.monotonic()
        for grid in grids:
            self._scored_at[grid] = now
        written = 0
        for start in range(0, len(grids), 400):
            chunk = grids[start:start + 400]
            items = []
            for row in await self._indicators(chunk):
                grid, ver, hour = row[0], row[1], int(row[2])
                score = score_grid(indicators_of(row, self.config), self.config)
                record = {"grid_id": grid, "hour": hour, **score.to_dict()}
                data = orjson.dumps(record)
                delta = orjson.dumps({"type": "grid", "grid_id": grid, "score": score.score,
                                      "band": score.band, "hour": hour})
                items.append([grid, str(ver), keys.risk(grid), data.decode(), score.score,
                              delta.decode()])
            if items:
                written += await self._put(items)
        self.written += written
        return written

    async def pending(self, limit: int = 4000) -> set[str]:
        """Grids marked in Redis and not yet scored for their last change: this worker's
        own in-flight ones, and those of a worker that died before scoring them."""
        members = await self.redis.srandmember(keys.RISK_DIRTY, limit)
        return {m.decode() if isinstance(m, bytes) else m for m in members or ()}

    async def tick(self, *, durable: bool) -> int:
        """One round: the grids this worker marked, and with ``durable`` those marked in
        Redis by anyone; returns how many scores were written."""
        grids, self.dirty = self.dirty, set()
        try:
            if durable:
                grids |= await self.pending()
            if self.every > 0:
                # Scored too recently: wait (still marked here and in Redis).
                since = time.monotonic() - self.every
                later = {g for g in grids if self._scored_at.get(g, float("-inf")) > since}
                self.dirty |= later
                grids -= later
            return await self.refresh(grids) if grids else 0
        except Exception as exc:  # noqa: BLE001 - keep the loop alive; retry next tick
            log.warning("risk refresh failed (%s); will retry", exc)
            self.dirty |= grids
            return 0

    async def run(self, *, durable_every: float = 1.0) -> None:
        """Refresh dirty grids forever (a background task of the worker): its own marks
        every ``interval``, the marks left in Redis every ``durable_every`` seconds."""
        loop = asyncio.get_running_loop()
        next_durable = loop.time()
        while True:
            await asyncio.sleep(self.interval)
            durable = loop.time() >= next_durable
            if durable:
                next_durable = loop.time() + durable_every
            elif not self.dirty:
                continue
            await self.tick(durable=durable)
