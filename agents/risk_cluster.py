"""The risk refresher's reads and writes on a Redis Cluster, without scripts.

On one server the refresher reads a chunk of grids with one Lua script
(:data:`~gridwatch.agents.risk_refresh.INDICATORS`) that builds the hour keys inside
Lua, and writes with a compare-and-set script over keys of every grid. On a cluster
those keys live in many slots, which one script may not touch, so here the same rows
come from pipelines (redis-py splits them by node) and the write is checked, written,
then checked again: a grid whose input version moved is reported back to be scored
again. Rows have the layout of the script's rows, so scoring is shared.
"""

from __future__ import annotations

from typing import Any

import orjson

from .. import keys

# The fields of one grid-hour hash that the indicators sum (as the INDICATORS script).
RED = ("scan:red:in", "scan:red:out", "late:scan:red:in", "late:scan:red:out")
YELLOW = ("scan:yellow:in", "scan:yellow:out", "late:scan:yellow:in", "late:scan:yellow:out")
FIELDS = (*RED, *YELLOW, "stale", "cross_grid", "loiter_alerts", "loiter_max")


def _text(value: bytes | str | None, default: str = "0") -> str:
    if value is None:
        return default
    return value.decode() if isinstance(value, bytes) else str(value)


def _num(value: bytes | str | None) -> float:
    return float(_text(value))


def _int_or_float(value: float) -> int | float:
    value = float(value)  # sums of nothing are the int 0
    return int(value) if value.is_integer() else value


def scans(fields: dict[Any, Any]) -> float:
    """Scans of one grid-hour hash: every ``scan:`` and ``late:scan:`` counter."""
    return sum(_num(v) for k, v in fields.items()
               if _text(k).startswith(("scan:", "late:scan:")))


def row_of(grid: str, ver: str, hour: int, hours: list[list[Any]], now_fields: dict[Any, Any],
           week_fields: dict[Any, Any], open_tasks: int, overdue: int) -> list[Any]:
    """One row as the INDICATORS script returns it, from the replies read for ``grid``.

    ``hours`` holds the HMGET of :data:`FIELDS` for each of the 24 hours up to ``hour``.
    """
    red = yellow = stale = cross = loit = crowd = 0.0
    for v in hours:
        red += sum(_num(x) for x in v[0:4])
        yellow += sum(_num(x) for x in v[4:8])
        stale += _num(v[8])
        cross += _num(v[9])
        loit += _num(v[10])
        crowd = max(crowd, _num(v[11]))
    numbers = (red, yellow, stale, cross, loit, crowd, scans(now_fields), scans(week_fields))
    return [grid, ver, hour, *(_int_or_float(n) for n in numbers), open_tasks, overdue]


async def read_rows(redis: Any, grids: list[str]) -> list[list[Any]]:
    """The indicator rows of ``grids``: two round trips of pipelined single-key reads."""
    if not grids:
        return []
    pipe = redis.pipeline(transaction=False)
    pipe.hmget(keys.GRID_HOUR, grids)
    pipe.hmget(keys.GRID_VERSION, grids)
    hours_raw, vers_raw = await pipe.execute()
    hours = [int(_num(h)) for h in hours_raw]
    pipe = redis.pipeline(transaction=False)
    for grid, hour in zip(grids, hours):
        for h in range(hour - 23, hour + 1):
            pipe.hmget(keys.grid_hour(grid, h), list(FIELDS))
        pipe.hgetall(keys.grid_hour(grid, hour))
        pipe.hgetall(keys.grid_hour(grid, hour - 168))
        pipe.zcard(keys.tasks_open(grid))
        pipe.zcount(keys.tasks_open(grid), "-inf", f"({(hour + 1) * 3600}")
    replies = await pipe.execute()
    rows = []
    for i, (grid, hour, ver) in enumerate(zip(grids, hours, vers_raw)):
        part = replies[i * 28:(i + 1) * 28]
        rows.append(row_of(grid, _text(ver), hour, part[:24], part[24], part[25],
                           int(part[26]), int(part[27])))
    return rows


# The one script of the cluster path: its two keys share a slot (``keys.RISK_DIRTY``
# carries ``keys.GRID_VERSION`` as its hash tag). Unmarks the grids whose version is
# still the one scored; returns those whose version moved.
UNMARK = """
local grids, vers = cjson.decode(ARGV[1]), cjson.decode(ARGV[2])
local moved = {}
for i, g in ipairs(grids) do
  if (redis.call('HGET', KEYS[1], g) or '0') == vers[i] then
    redis.call('SREM', KEYS[2], g)
  else
    table.insert(moved, g)
  end
end
return moved
"""


async def put_rows(redis: Any, items: list[list[Any]]) -> tuple[int, set[str]]:
    """Write the scores whose grid version is still the one read; returns how many were
    written and the grids whose version moved (to be scored again).

    ``items`` are ``[grid, version, risk key, record JSON, score, delta JSON]``.
    """
    grids = [it[0] for it in items]
    before = [_text(v) for v in await redis.hmget(keys.GRID_VERSION, grids)]
    fresh = [it for it, ver in zip(items, before) if ver == str(it[1])]
    moved = {it[0] for it, ver in zip(items, before) if ver != str(it[1])}
    if fresh:
        pipe = redis.pipeline(transaction=False)
        for grid, _, risk_key, data, score, delta in fresh:
            pipe.set(risk_key, data)
            pipe.zadd(keys.RISK_RANK, {grid: score})
            pipe.xadd(keys.CHAN_GRIDS, {"d": delta}, maxlen=keys.CHAN_MAXLEN, approximate=True)
        await pipe.execute()
        # Checked again after the writes, atomically with the unmarking: a grid changed
        # meanwhile stays marked (and is scored again at the next tick).
        after = await redis.eval(UNMARK, 2, keys.GRID_VERSION, keys.RISK_DIRTY,
                                 orjson.dumps([it[0] for it in fresh]),
                                 orjson.dumps([str(it[1]) for it in fresh]))
        moved |= {_text(g) for g in after or ()}
    return len(fresh), moved
