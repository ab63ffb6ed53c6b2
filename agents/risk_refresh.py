"""Keeping every grid's risk score live: recompute the grids whose inputs changed.

Each applied batch bumps the input version of the grids it touched. The refresher
reads the indicators of those grids (24 hourly buckets each, the same hour a week
earlier, open and overdue tasks), scores them with the pure
:func:`~gridwatch.risk.score_grid`, and writes each score only if the grid's
input version is still the one it read: if another batch changed the grid meanwhile,
that batch's own refresh writes the newer score. The window is the grid's own newest
event hour, so the score is a function of the grid's events alone (a replay, a crash
or a second worker give the same scores).

The reads are :mod:`.risk_rows`; the write is one script in the core slot (every key it
touches is there: the scores, the rank, the grids' channel, the versions and the marks),
so one server and a Redis Cluster run the same calls.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

import orjson

from .. import keys
from ..redis_client import SlotRouter
from ..risk import RiskConfig, score_grid, volume_ratio
from . import risk_rows

log = logging.getLogger("gridwatch.risk")

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
    """The risk indicators of one row (:func:`.risk_rows.read_rows`)."""
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
        self.route = SlotRouter(redis)
        self.cluster = self.route.cluster
        self._rows = redis.register_script(risk_rows.CORE_ROWS)
        self._hours = redis.register_script(risk_rows.HOURS)
        self._write = redis.register_script(PUT_RISK)
        self.written = 0

    async def _indicators(self, chunk: list[str]) -> list[list[Any]]:
        return await risk_rows.read_rows(self.route, self._rows, self._hours, chunk)

    async def _put(self, items: list[list[Any]]) -> int:
        return int(await self.route.script(
            self._write,
            [keys.GRID_VERSION, keys.RISK_RANK, keys.CHAN_GRIDS, keys.RISK_DIRTY,
             *(it[2] for it in items)],
            [orjson.dumps(items), keys.CHAN_MAXLEN]))

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
