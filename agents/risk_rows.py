"""The risk refresher's reads: one grid's indicators as a row, the same on one Redis
and on a Redis Cluster.

Every script declares the keys it reads, and the keys of one call share a slot, so the
same calls run on one server and on a cluster (where each goes straight to the master
of its slot, :class:`gridwatch.redis_client.SlotRouter`). A chunk of grids costs two
round trips:

1. :data:`CORE_ROWS`, in the core slot: each grid's newest event hour and input
   version, and its open and overdue tasks;
2. :data:`HOURS`, one call per grid shard (a grid's hour keys share its shard tag; on
   one server one call for all): the sums over the 24 hour buckets up to the newest,
   and the scans of that hour and of the same hour a week earlier.

Rows have one layout (:func:`row_of` builds it from replies read one by one, as the
simulated day of :mod:`.replay` does in memory), so scoring is shared.
"""

from __future__ import annotations

from typing import Any

import orjson

from .. import keys
from ..redis_client import SlotRouter

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


# One grid shard's part of the rows: every hour key a script reads is declared, and a
# grid's hour keys share its shard's slot (``keys.grid_hour``), so one call per shard
# reads the 24 hours and the same hour a week earlier of each of its grids. KEYS: 25 per
# grid (its 24 hours up to the newest, then the hour a week before the newest).
HOURS = """
local out = {}
local function scans(key)
  local all = redis.call('HGETALL', key)
  local n = 0
  for k = 1, #all, 2 do
    local f = all[k]
    if string.sub(f, 1, 5) == 'scan:' or string.sub(f, 1, 10) == 'late:scan:' then
      n = n + tonumber(all[k + 1])
    end
  end
  return n
end
for g = 0, #KEYS / 25 - 1 do
  local b = g * 25
  local red, yellow, stale, cross, loit, crowd = 0, 0, 0, 0, 0, 0
  for h = 1, 24 do
    local v = redis.call('HMGET', KEYS[b + h],
      'scan:red:in', 'scan:red:out', 'late:scan:red:in', 'late:scan:red:out',
      'scan:yellow:in', 'scan:yellow:out', 'late:scan:yellow:in', 'late:scan:yellow:out',
      'stale', 'cross_grid', 'loiter_alerts', 'loiter_max')
    for k = 1, 4 do red = red + tonumber(v[k] or 0) end
    for k = 5, 8 do yellow = yellow + tonumber(v[k] or 0) end
    stale = stale + tonumber(v[9] or 0)
    cross = cross + tonumber(v[10] or 0)
    loit = loit + tonumber(v[11] or 0)
    local m = tonumber(v[12] or 0)
    if m > crowd then crowd = m end
  end
  table.insert(out, {red, yellow, stale, cross, loit, crowd, scans(KEYS[b + 24]), scans(KEYS[b + 25])})
end
return cjson.encode(out)
"""


# KEYS: the grid-hour hash, the grid-version hash, then each grid's open tasks (in the
# core slot, all of them); ARGV[1]: the grids (JSON), in the order of their task keys.
# Per grid: {newest hour, input version, open tasks, tasks due before the hour's end}.
CORE_ROWS = """
local grids = cjson.decode(ARGV[1])
local out = {}
for i, g in ipairs(grids) do
  local hour = tonumber(redis.call('HGET', KEYS[1], g) or '0')
  local ver = redis.call('HGET', KEYS[2], g) or '0'
  local tasks = KEYS[2 + i]
  table.insert(out, {hour, ver, redis.call('ZCARD', tasks),
                     redis.call('ZCOUNT', tasks, '-inf', '(' .. tostring((hour + 1) * 3600))})
end
return cjson.encode(out)
"""


def _hour_keys(grid: str, hour: int) -> list[str]:
    """The 25 keys :data:`HOURS` reads for a grid: its 24 hours up to ``hour``, then the
    hour a week before."""
    return [*(keys.grid_hour(grid, h) for h in range(hour - 23, hour + 1)),
            keys.grid_hour(grid, hour - 168)]


async def read_rows(route: SlotRouter, core_rows: Any, hours: Any, grids: list[str]
                    ) -> list[list[Any]]:
    """The indicator rows of ``grids`` (``core_rows`` and ``hours``: :data:`CORE_ROWS`
    and :data:`HOURS` registered on the router's client)."""
    if not grids:
        return []
    raw = await route.script(core_rows, [keys.GRID_HOUR, keys.GRID_VERSION,
                                         *(keys.tasks_open(g) for g in grids)],
                             [orjson.dumps(grids)])
    core = orjson.loads(raw)
    if len(core) != len(grids):  # cjson writes an empty table as {}
        raise ValueError(f"risk rows: {len(core)} rows for {len(grids)} grids")
    groups: dict[str | None, list[int]] = {}
    if route.cluster:
        for i, grid in enumerate(grids):
            groups.setdefault(keys.slot_tag(keys.grid_hours_prefix(grid)), []).append(i)
    else:
        groups[None] = list(range(len(grids)))
    calls = [[k for i in members for k in _hour_keys(grids[i], int(core[i][0]))]
             for members in groups.values()]
    sums = await route.scripts(hours, calls)
    numbers: dict[int, list[Any]] = {}
    for members, got in zip(groups.values(), sums):
        for i, row in zip(members, orjson.loads(got)):
            numbers[i] = [_int_or_float(n) for n in row]
    return [[grid, _text(ver), int(hour), *numbers[i], int(open_t), int(overdue)]
            for i, (grid, (hour, ver, open_t, overdue)) in enumerate(zip(grids, core))]
