"""Redis: the atomic, idempotent apply of a batch, and the reads the CLI and gateway use.

Applying a batch is one Lua script (``APPLY``, ``lua/apply.lua``). It first compares, for every partition
the batch touches, the offset stored in Redis with the one the batch was folded
against; if any differs (another worker applied part of it after a rebalance, or this
worker restarted), it changes nothing and says so, and the worker reloads the offsets
and folds again. Otherwise it applies every counter and moves the offsets, all in one
step. So each Kafka record changes the state exactly once, however often Kafka
delivers it. MULTI/EXEC could not do this: it cannot skip conditionally.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson
import redis
import redis.asyncio as aioredis

from . import keys, redis_client
from .agents.fold import BatchUpdate
from .settings import Settings

APPLY = (Path(__file__).parent / "lua" / "apply.lua").read_text()


def _by_key(items: Iterable[tuple[tuple[str, str], Any]], value: Callable[[Any], Any]
            ) -> list[list[Any]]:
    """``{(key, field): v}`` items as ``[[key, [field, value(v), field, ...]], ...]``:
    one entry per key, so the script makes one call per key."""
    grouped: dict[str, list[Any]] = {}
    for (k, f), v in items:
        flat = grouped.get(k)
        if flat is None:
            flat = grouped[k] = []
        flat.append(f)
        flat.append(value(v))
    return [[k, flat] for k, flat in grouped.items()]


def _same(v: Any) -> Any:
    return v


def _real(v: float) -> str:
    return repr(float(v))


def encode_update(update: BatchUpdate) -> bytes:
    """The script's argument: the update as compact JSON, grouped by key (numbers as
    strings where Lua's doubles would round them)."""
    payload = {
        "o": [[f, str(before), str(last)] for f, (before, last) in update.offsets.items()],
        "c": [[k, str(v)] for k, v in update.cas.items()],
        "w": [x for f, w in update.watermarks.items() for x in (f, repr(float(w)))],
        # Zero increments are kept: HINCRBY by 0 creates the field, so a +2 and a -2 in
        # one batch leave the same fields as in two batches.
        "i": _by_key(update.incr.items(), _same),
        "h": _by_key(update.hset.items(), _same),
        "hd": [[k, sorted(fields)] for k, fields in update.hdel.items() if fields],
        "mx": _by_key(update.hmax.items(), _real),
        "mn": _by_key(update.hmin.items(), _real),
        "s": [[k, sorted(members)] for k, members in update.sadd.items() if members],
        "z": [[k, [x for m, score in members.items() for x in (score, m)]]
              for k, members in update.zadd.items() if members],
        "zr": [[k, sorted(members)] for k, members in update.zrem.items() if members],
        "zt": [[k, repr(float(v))] for k, v in update.ztrim.items()],
        "zk": [[k, repr(float(v))] for k, v in update.zkeep.items()],
        "sr": [[k, sorted(members)] for k, members in update.srem.items() if members],
        "hz": [[k, f, n, 1 if whole else 0] for (k, f), (n, whole) in update.hdecr.items()],
        "t": [[k, v.decode(), ttl or 0] for k, (v, ttl) in update.sets.items()],
        "d": sorted(update.dels),
        "e": [[k, ttl] for k, ttl in update.expire.items()],
        "x": [[k, maxlen, data.decode()] for k, maxlen, data in update.streams],
    }
    return orjson.dumps(payload)


class ApplyConflict(Exception):
    """The offsets in Redis moved since the batch was folded; fold again."""


class AsyncStore:
    """The worker's and gateway's side of Redis (asyncio)."""

    def __init__(self, target: str | Settings) -> None:
        # A URL names one server; Settings may name a cluster (GRIDWATCH_REDIS_CLUSTER).
        self.redis: aioredis.Redis = redis_client.async_client(  # type: ignore[assignment]
            redis_client.settings_for(target))
        self._apply = self.redis.register_script(APPLY)

    async def close(self) -> None:
        await self.redis.aclose()

    async def offsets(self) -> dict[str, int]:
        """Last applied offset per partition field."""
        raw = await self.redis.hgetall(keys.OFFSETS)
        return {k.decode(): int(v) for k, v in raw.items()}

    async def watermarks(self) -> dict[str, float]:
        raw = await self.redis.hgetall(keys.WATERMARKS)
        return {k.decode(): float(v) for k, v in raw.items()}

    async def apply(self, update: BatchUpdate) -> None:
        """Apply a batch atomically.

        Raises:
            ApplyConflict: a partition's stored offset is not the one the batch was
                folded against; nothing was changed.
        """
        result = await self._apply(keys=[keys.OFFSETS, keys.WATERMARKS, keys.VERSIONS],
                                   args=[encode_update(update)])
        if int(result[0]) != 1:
            raise ApplyConflict(f"{result[1].decode()} is at {result[2].decode()}")


# ---- reads (CLI; a grid's counters: gridwatch.queries.grid_state) ----------------------


def connect(target: str | Settings) -> redis.Redis:
    """A synchronous client answering ``str`` (CLI, tests, benchmarks): a URL names one
    server; Settings name the cluster of ``GRIDWATCH_REDIS_CLUSTER`` when it is set."""
    client = redis_client.sync_client(redis_client.settings_for(target), decode_responses=True)
    return client  # type: ignore[return-value]  # RedisCluster answers the same reads


def summary(r: redis.Redis) -> dict[str, int]:
    """Totals: valid events applied per kind, unassigned points, dead letters, late."""
    raw = r.hgetall(keys.SUMMARY)
    out = {name: 0 for name in ("checkpoint_scans", "loiter_reports", "station_tickets",
                                "unassigned", "deadletter", "late", "duplicates")}
    out.update({k: int(v) for k, v in raw.items()})
    out["grids_seen"] = int(r.scard(keys.GRIDS_SEEN)) - int(r.sismember(keys.GRIDS_SEEN, keys.UNASSIGNED))
    return out


def now_hour(r: redis.Redis) -> int | None:
    """The event-time "current hour": the hour of the newest event seen anywhere."""
    marks = [float(v) for v in r.hvals(keys.WATERMARKS)]
    return keys.hour_of(max(marks)) if marks else None


def keys_hour_iso(hour: int | None) -> str | None:
    from .schemas.events import format_time

    return None if hour is None else format_time(hour * 3600)


# Keys whose content depends on how the events were batched, on when a timer ran or on
# who is logged in, not on the events: channel streams (one entry per write),
# write-version counters, command outcomes, users and sessions, forecasts (made when the
# refresher's clock ticks, by whichever worker holds the station's lease), the revised
# station hours (a queue that refresher empties) and the grids waiting for their risk
# score (a queue the risk refresher empties).
NOT_STATE = ("gw:chan:", "gw:ver", "gw:gridver", "gw:cmdresult:", "gw:user", "gw:login:",
             "gw:session:", "gw:forecast:", "gw:forecastowner:", "gw:stationrevised:",
             "gw:riskdirty")


def dump(r: redis.Redis) -> dict[str, Any]:
    """The materialised state: every gridwatch key with its value, TTLs and the keys of
    ``NOT_STATE`` left out. Two runs that applied the same events (with the timers off)
    compare equal, however they were batched, crashed or shared. On a cluster the scan
    visits every master (redis-py's ``RedisCluster.scan_iter``), so the dump is the same."""
    out: dict[str, Any] = {}
    for key in sorted(set(r.scan_iter(match=keys.PREFIX + "*", count=1000))):
        if key.startswith(NOT_STATE):
            continue
        kind = r.type(key)
        if kind == "hash":
            out[key] = dict(sorted(r.hgetall(key).items()))
        elif kind == "set":
            out[key] = sorted(r.smembers(key))
        elif kind == "zset":
            out[key] = r.zrange(key, 0, -1, withscores=True)
        elif kind == "string":
            out[key] = r.get(key)
        elif kind == "list":
            out[key] = r.lrange(key, 0, -1)
        elif kind == "stream":
            out[key] = [fields for _, fields in r.xrange(key)]
    return out
