"""The risk refresher's reads and writes on a Redis Cluster.

On one server the refresher reads a chunk of grids with one Lua script
(:data:`~gridwatch.agents.risk_refresh.INDICATORS`) that builds the hour keys inside
Lua, and writes with a compare-and-set script over keys of every grid. On a cluster a
script's keys must share a slot: here the hour buckets are read by one script per grid
shard (a grid's hour keys share its shard tag), with the tasks' counts of the core slot
in the same pipelined round trip, and the write is checked, written, then checked
again: a grid whose input version moved is reported back to be scored again. Rows have
the layout of the script's rows, so scoring is shared.
"""

from __future__ import annotations

from typing import Any

import orjson
from redis.exceptions import NoScriptError

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


# The Lua this script and :data:`~gridwatch.agents.risk_refresh.INDICATORS` share.
# ``scans(key)``: the scans of one grid-hour hash (as :func:`scans`).
SCANS_LUA = """
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
end"""


def sum_hours_lua(first: str, last: str, key: str) -> str:
    """Lua (inside a loop over grids) that sums the grid-hour hashes ``key``, a Lua
    expression of ``h``, for ``h`` from ``first`` to ``last`` into ``red, yellow, stale,
    cross, loit, crowd``, as :func:`row_of` sums the HMGET of :data:`FIELDS`."""
    fields = ", ".join(f"'{f}'" for f in FIELDS)
    return f"""
  local red, yellow, stale, cross, loit, crowd = 0, 0, 0, 0, 0, 0
  for h = {first}, {last} do
    local v = redis.call('HMGET', {key}, {fields})
    for k = 1, 4 do red = red + tonumber(v[k] or 0) end
    for k = 5, 8 do yellow = yellow + tonumber(v[k] or 0) end
    stale = stale + tonumber(v[9] or 0)
    cross = cross + tonumber(v[10] or 0)
    loit = loit + tonumber(v[11] or 0)
    local m = tonumber(v[12] or 0)
    if m > crowd then crowd = m end
  end"""


# One grid shard's part of the rows: every hour key a script reads is declared, and a
# grid's hour keys share its shard's slot (``keys.grid_hour``), so one call per shard
# reads the 24 hours and the same hour a week earlier of each of its grids. KEYS: 25 per
# grid (its 24 hours up to the newest, then the hour a week before the newest).
HOURS = """
local out = {}""" + SCANS_LUA + """
for g = 0, #KEYS / 25 - 1 do
  local b = g * 25""" + sum_hours_lua("1", "24", "KEYS[b + h]") + """
  table.insert(out, {red, yellow, stale, cross, loit, crowd, scans(KEYS[b + 24]), scans(KEYS[b + 25])})
end
return cjson.encode(out)
"""


async def read_rows(redis: Any, grids: list[str]) -> list[list[Any]]:
    """The indicator rows of ``grids``: two round trips, the second one pipelined call
    per grid shard (:data:`HOURS`) beside the tasks' counts of the core slot."""
    if not grids:
        return []
    pipe = redis.pipeline(transaction=False)
    pipe.hmget(keys.GRID_HOUR, grids)
    pipe.hmget(keys.GRID_VERSION, grids)
    hours_raw, vers_raw = await pipe.execute()
    hours = [int(_num(h)) for h in hours_raw]
    shards: dict[str, list[int]] = {}
    for i, grid in enumerate(grids):
        shards.setdefault(keys.grid_hours_prefix(grid), []).append(i)
    by_tag: dict[str | None, list[int]] = {}
    for prefix, members in shards.items():
        by_tag.setdefault(keys.slot_tag(prefix), []).extend(members)
    try:
        replies = await _second_round(redis, grids, hours, by_tag, await _hours_sha(redis))
    except NoScriptError:  # a master restarted without the script
        replies = await _second_round(redis, grids, hours, by_tag,
                                      await _hours_sha(redis, again=True))
    order = list(by_tag.values())
    tasks, sums = replies[:2 * len(grids)], replies[2 * len(grids):]
    numbers: dict[int, list[Any]] = {}
    for members, raw in zip(order, sums):
        for i, row in zip(members, orjson.loads(raw)):
            numbers[i] = [_int_or_float(n) for n in row]
    return [[grid, _text(ver), hour, *numbers[i], int(tasks[2 * i]), int(tasks[2 * i + 1])]
            for i, (grid, hour, ver) in enumerate(zip(grids, hours, vers_raw))]


async def _second_round(redis: Any, grids: list[str], hours: list[int],
                        by_tag: dict[str | None, list[int]], sha: str) -> list[Any]:
    pipe = redis.pipeline(transaction=False)
    for grid, hour in zip(grids, hours):
        pipe.zcard(keys.tasks_open(grid))
        pipe.zcount(keys.tasks_open(grid), "-inf", f"({(hour + 1) * 3600}")
    for members in by_tag.values():
        hour_keys = []
        for i in members:
            grid, hour = grids[i], hours[i]
            hour_keys += [keys.grid_hour(grid, h) for h in range(hour - 23, hour + 1)]
            hour_keys.append(keys.grid_hour(grid, hour - 168))
        pipe.evalsha(sha, len(hour_keys), *hour_keys)
    return list(await pipe.execute())


async def _hours_sha(redis: Any, *, again: bool = False) -> str:
    """The SHA1 of :data:`HOURS`, loaded on every master (a cluster client sends
    ``SCRIPT LOAD`` to all of them) once per client, or ``again``."""
    sha = _LOADED.get(id(redis))
    if sha is None or again:
        sha = _LOADED[id(redis)] = await redis.script_load(HOURS)
    return sha


_LOADED: dict[int, str] = {}


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
