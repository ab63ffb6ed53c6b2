"""Redis: the atomic, idempotent apply of a batch, and the reads the CLI and gateway use.

Applying a batch is one Lua script (``APPLY``, ``lua/apply.lua``). It first compares, for
every partition the batch touches, the offset stored in Redis with the one the batch was
folded against, and the version of every record it read; if any differs (another worker
applied part of it after a rebalance, or this worker restarted), it changes nothing and
says so, and the worker reloads the offsets and folds again. Otherwise it applies every
write and moves the offsets, all in one step. So each Kafka record changes the state
exactly once, however often Kafka delivers it. MULTI/EXEC could not do this: it cannot
skip conditionally.

On a Redis Cluster one script may only touch one slot. Every key the worker writes
carries a hash tag (:mod:`gridwatch.keys`): the rules' state shares the ``{core}`` slot,
the per-event state is spread over ``keys.SHARDS`` tags. A batch is split by tag:

1. **stage**: one script in the core slot does the checks above, the core slot's writes
   (offsets, versions, alerts, ...) and keeps the other slots' parts under the batch's
   id in ``keys.PENDING``, all in one step. From here on the batch is applied;
2. **parts**: one script per other slot (pipelined, one round trip per master) applies
   the slot's part and notes the batch's offsets in the slot's own marks, in one step;
   a part whose marks say it is applied is skipped;
3. **unstage**: the batch leaves ``keys.PENDING``.

A crash between 1 and 3 leaves the batch pending; whoever reloads the offsets next (this
worker, or the one that takes over its partitions) applies its parts first
(:meth:`AsyncStore.complete_pending`), each at most once thanks to the marks; a
partition with a pending batch is refused new ones until then. On one server the same
script runs once over all the keys (mode ``all``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson
import redis
import redis.asyncio as aioredis

from . import keys, redis_client
from .batch import BatchUpdate
from .settings import Settings

APPLY = (Path(__file__).parent / "lua" / "apply.lua").read_text()

# Take a completed batch out of keys.PENDING (its partitions' fields only if they still
# name it). KEYS[1] pending; ARGV[1] the batch id, ARGV[2..] its partition fields.
UNSTAGE = """
if redis.call('HDEL', KEYS[1], 'b:' .. ARGV[1]) == 0 then return 0 end
for i = 2, #ARGV do
  if redis.call('HGET', KEYS[1], 'p:' .. ARGV[i]) == ARGV[1] then
    redis.call('HDEL', KEYS[1], 'p:' .. ARGV[i])
  end
end
return 1
"""

log = logging.getLogger("gridwatch.store")

# A master away, busy or full: the batch is completed later, not given up.
_SERVICE_ERRORS: tuple[type[BaseException], ...] = tuple(
    getattr(redis.exceptions, name) for name in (
        "ConnectionError", "TimeoutError", "BusyLoadingError", "TryAgainError",
        "ClusterDownError", "MasterDownError", "ReadOnlyError", "OutOfMemoryError",
        "MovedError", "AskError", "SlotNotCoveredError") if hasattr(redis.exceptions, name))

class Part:
    """The writes of one slot (or of the whole batch on one server): the keys, numbered
    from 1 in the order first met, and the script's payload naming them by number (a
    kind of write with nothing to do is left out; the script reads it as empty)."""

    __slots__ = ("_index", "keys", "p")

    def __init__(self) -> None:
        self.keys: list[str] = []
        self._index: dict[str, int] = {}
        self.p: dict[str, Any] = {}

    def k(self, key: str) -> int:
        n = self._index.get(key)
        if n is None:
            self.keys.append(key)
            n = self._index[key] = len(self.keys)
        return n

    def encode(self) -> bytes:
        return orjson.dumps(self.p)


def _real(v: float) -> str:
    return repr(float(v))


def _by_key(items: Iterable[tuple[tuple[str, str], Any]], value: Callable[[Any], Any]
            ) -> dict[str, list[Any]]:
    """``{(key, field): v}`` items as ``{key: [field, value(v), field, ...]}``: one entry
    per key, so the script makes one call per key."""
    grouped: dict[str, list[Any]] = {}
    for (k, f), v in items:
        flat = grouped.get(k)
        if flat is None:
            flat = grouped[k] = []
        flat.append(f)
        flat.append(value(v))
    return grouped


def split_update(update: BatchUpdate, *, by_slot: bool) -> tuple[Part, dict[str, Part]]:
    """The update's writes as the core part (with the offsets, watermarks and version
    checks) and, with ``by_slot``, one part per other hash tag (a key without a tag is
    its own); without it everything is in the core part (one server).

    Numbers that Lua's doubles would round travel as strings.
    """
    core = Part()
    parts: dict[str, Part] = {}

    def part(key: str) -> Part:
        if not by_slot:
            return core
        tag = keys.slot_tag(key) or key
        if tag == keys.CORE_TAG:
            return core
        got = parts.get(tag)
        if got is None:
            got = parts[tag] = Part()
        return got

    placed: dict[str, tuple[Part, int]] = {}  # key -> its part and number there

    def add(op: str, key: str, *rest: Any) -> None:
        got = placed.get(key)
        if got is None:
            target = part(key)
            got = placed[key] = (target, target.k(key))
        ops = got[0].p.get(op)
        if ops is None:
            ops = got[0].p[op] = []
        ops.append([got[1], *rest])

    core.p["o"] = [[f, str(before), str(last)] for f, (before, last) in update.offsets.items()]
    core.p["c"] = [[k, str(v), core.k(keys.version_of(k)), update.cas_ttl[k]]
                   if k in update.cas_ttl else [k, str(v), 0, 0] for k, v in update.cas.items()]
    core.p["w"] = [x for f, w in update.watermarks.items() for x in (f, repr(float(w)))]
    # Zero increments are kept: HINCRBY by 0 creates the field, so a +2 and a -2 in one
    # batch leave the same fields as in two batches.
    for k, flat in _by_key(update.incr.items(), lambda v: v).items():
        add("i", k, flat)
    for k, flat in _by_key(update.hset.items(), lambda v: v).items():
        add("h", k, flat)
    for k, fields in update.hdel.items():
        if fields:
            add("hd", k, sorted(fields))
    for k, flat in _by_key(update.hmax.items(), _real).items():
        add("mx", k, flat)
    for k, flat in _by_key(update.hmin.items(), _real).items():
        add("mn", k, flat)
    for k, members in update.sadd.items():
        if members:
            add("s", k, sorted(members))
    for k, scored in update.zadd.items():
        if scored:
            add("z", k, [x for m, score in scored.items() for x in (score, m)])
    for k, members in update.zrem.items():
        if members:
            add("zr", k, sorted(members))
    for k, v in update.ztrim.items():
        add("zt", k, repr(float(v)))
    for k, v in update.zkeep.items():
        add("zk", k, repr(float(v)))
    for k, members in update.srem.items():
        if members:
            add("sr", k, sorted(members))
    for (k, f), (n, whole) in update.hdecr.items():
        add("hz", k, f, n, 1 if whole else 0)
    for k, (v, ttl) in update.sets.items():
        add("t", k, v.decode(), ttl or 0)
    for k in sorted(update.dels):
        got = placed.get(k)
        if got is None:
            target = part(k)
            got = placed[k] = (target, target.k(k))
        got[0].p.setdefault("d", []).append(got[1])
    for k, ttl in update.expire.items():
        add("e", k, ttl)
    for k, maxlen, data in update.streams:
        add("x", k, maxlen, data.decode())
    return core, parts


def encode_update(update: BatchUpdate) -> tuple[list[str], bytes]:
    """The keys and payload of the one-server script (mode ``all``)."""
    core, _ = split_update(update, by_slot=False)
    return core.keys, core.encode()


def batch_id(update: BatchUpdate) -> str:
    """A batch's id while it is pending: its partitions and last offsets; an update
    without offsets (a command, a timer) gets a random one."""
    if update.offsets:
        return ";".join(f"{f}@{last}" for f, (_, last) in sorted(update.offsets.items()))
    return "u:" + uuid.uuid4().hex


def _partition_fields(bid: str) -> list[str]:
    return [] if bid.startswith("u:") else [x.rpartition("@")[0] for x in bid.split(";")]


class ApplyConflict(Exception):
    """The offsets in Redis moved since the batch was folded; fold again."""


def _conflict(result: list[Any]) -> None:
    if int(result[0]) != 1:
        field, at = (x.decode() if isinstance(x, bytes) else str(x) for x in result[1:3])
        raise ApplyConflict(f"{field} is at {at}")


class AsyncStore:
    """The worker's and gateway's side of Redis (asyncio)."""

    def __init__(self, target: str | Settings) -> None:
        # A URL names one server; Settings may name a cluster (GRIDWATCH_REDIS_CLUSTER).
        self.redis: aioredis.Redis = redis_client.async_client(  # type: ignore[assignment]
            redis_client.settings_for(target))
        self.cluster = redis_client.is_cluster(self.redis)
        self._apply = self.redis.register_script(APPLY)
        self._unstage = self.redis.register_script(UNSTAGE)
        self.route = redis_client.SlotRouter(self.redis)  # each call to its slot's master
        self.stats = {"parts": 0, "parts_skipped": 0, "parts_failed": 0, "completed": 0}

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
        """Apply a batch atomically (on a cluster: atomically per slot, see above).

        Raises:
            ApplyConflict: a partition's stored offset is not the one the batch was
                folded against (or it has a batch still pending), or a record's version
                moved; nothing was changed.
        """
        if not self.cluster:
            core, _ = split_update(update, by_slot=False)
            _conflict(await self._apply(
                keys=[keys.OFFSETS, keys.WATERMARKS, keys.VERSIONS, keys.PENDING, *core.keys],
                args=["all", core.encode()]))
            return
        bid, staged = await self.stage(update)
        if staged:
            await self.apply_parts(staged)
            await self.route.script(self._unstage, [keys.PENDING], [bid, *_partition_fields(bid)])

    async def stage(self, update: BatchUpdate) -> tuple[str, list[list[Any]]]:
        """On a cluster, the first step of :meth:`apply` alone: the checks and the core
        slot's writes, the other slots' parts left pending; returns the batch id and
        those parts (what a worker that dies at once leaves to :meth:`complete_pending`).
        """
        core, parts = split_update(update, by_slot=True)
        bid = batch_id(update)
        staged = self._staged_parts(bid, update, parts)
        # Kept as [[keys, payload], ...] with each payload as JSON in place (not a string
        # of it): no second escaping of every part.
        blob = (b"[" + b",".join(b"[" + orjson.dumps(k) + b"," + payload + b"]"
                                 for k, payload in staged) + b"]") if staged else b""
        _conflict(await self.route.script(
            self._apply, [keys.OFFSETS, keys.WATERMARKS, keys.VERSIONS, keys.PENDING,
                          *core.keys], ["stage", core.encode(), blob, bid]))
        return bid, staged

    @staticmethod
    def _staged_parts(bid: str, update: BatchUpdate, parts: dict[str, Part]
                      ) -> list[tuple[list[str], bytes]]:
        """(keys (the marks first), payload) of each slot's part."""
        out = []
        # One list for every part (orjson writes it into each payload).
        offsets = [[f, str(last)] for f, (_, last) in update.offsets.items()]
        for tag, part in parts.items():
            if offsets:
                part.p["o"] = offsets
                marks = keys.applied_marks(tag)
            else:
                part.p["o"], part.p["u"] = [["u", "1"]], 1
                marks = keys.update_marks(tag, bid)
            out.append(([marks, *part.keys], part.encode()))
        return out

    async def apply_parts(self, staged: list[tuple[list[str], bytes]]) -> None:
        """Apply each slot's part once: one pipelined round trip per master, the
        masters at once.

        A master that restarted without the script gets it again. A service error (a
        master away, loading, out of memory) is raised and the whole batch completed
        later; a part that Redis refuses for good (a key of another type written by
        hand) is logged and counted (``apply_errors`` in the summary) and left out, so
        one damaged key cannot hold up every later batch of its partitions.
        """
        sha, todo = self._apply.sha, staged
        for _ in range(3):
            replies = await self.route.each(
                sha, [(part_keys, ["part", payload]) for part_keys, payload in todo])
            again = []
            for part, reply in zip(todo, replies):
                if isinstance(reply, redis.exceptions.NoScriptError):
                    again.append(part)
                elif isinstance(reply, _SERVICE_ERRORS):
                    raise reply
                elif isinstance(reply, Exception):
                    log.error("a slot refused its part of a batch (%s: %s); keys %s",
                              type(reply).__name__, reply, part[0][:4])
                    self.stats["parts_failed"] += 1
                    await self.redis.hincrby(keys.SUMMARY, "apply_errors", 1)
                else:
                    self.stats["parts"] += 1
                    self.stats["parts_skipped"] += int(reply[0]) == 2
            if not again:
                return
            await self.redis.script_load(APPLY)  # a master restarted without it
            todo = again
        raise redis.exceptions.NoScriptError("the apply script could not be loaded")

    async def complete_pending(self) -> int:
        """Apply the remaining parts of every batch staged but not completed (a worker
        died, or lost Redis, between its stage and its unstage); returns how many."""
        if not self.cluster:
            return 0
        done = 0
        for field, blob in (await self.redis.hgetall(keys.PENDING)).items():
            name = field.decode() if isinstance(field, bytes) else field
            if not name.startswith("b:"):
                continue
            bid = name[2:]
            await self.apply_parts([(k, payload.encode() if isinstance(payload, str)
                                     else orjson.dumps(payload))
                                    for k, payload in orjson.loads(blob)])
            await self.route.script(self._unstage, [keys.PENDING], [bid, *_partition_fields(bid)])
            done += 1
        self.stats["completed"] += done
        return done


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
# Also the bookkeeping of the apply on a cluster (pending batches, slots' marks).
# Matched on the name after the tag.
NOT_STATE = ("chan:", "ver", "gridver", "cmdresult:", "user", "login:", "session:",
             "forecast:", "forecastowner:", "stationrevised:", "riskdirty", "pending",
             "applied")


def not_state(key: str) -> bool:
    """Whether ``key`` is left out of :func:`dump` (``NOT_STATE``)."""
    rest = key[len(keys.PREFIX):]
    if rest.startswith("{"):
        rest = rest.split("}:", 1)[-1]
    return rest.startswith(NOT_STATE)


#: How each kind of key is read for :func:`dump` (on a pipeline), and its value shaped.
_DUMP_READ: dict[str, tuple[Callable[[Any, str], Any], Callable[[Any], Any]]] = {
    "hash": (lambda p, k: p.hgetall(k), lambda v: dict(sorted(v.items()))),
    "set": (lambda p, k: p.smembers(k), sorted),
    "zset": (lambda p, k: p.zrange(k, 0, -1, withscores=True), lambda v: v),
    "string": (lambda p, k: p.get(k), lambda v: v),
    "list": (lambda p, k: p.lrange(k, 0, -1), lambda v: v),
    "stream": (lambda p, k: p.xrange(k), lambda v: [fields for _, fields in v]),
}
DUMP_CHUNK = 500  # keys a pipeline reads at once


def dump(r: redis.Redis) -> dict[str, Any]:
    """The materialised state: every gridwatch key with its value, TTLs and the keys of
    ``NOT_STATE`` left out. Two runs that applied the same events (with the timers off)
    compare equal, however they were batched, crashed or shared. On a cluster the scan
    visits every master (redis-py's ``RedisCluster.scan_iter``), so the dump is the same.
    Keys are read in pipelines of :data:`DUMP_CHUNK` (a city's state is ~100,000 keys:
    two round trips a key took most of a minute)."""
    names = sorted(k for k in set(r.scan_iter(match=keys.PREFIX + "*", count=1000))
                   if not not_state(k))
    out: dict[str, Any] = {}
    for i in range(0, len(names), DUMP_CHUNK):
        part = names[i:i + DUMP_CHUNK]
        pipe = r.pipeline(transaction=False)
        for key in part:
            pipe.type(key)
        found = [(key, kind) for key, kind in zip(part, pipe.execute()) if kind in _DUMP_READ]
        pipe = r.pipeline(transaction=False)
        for key, kind in found:
            _DUMP_READ[kind][0](pipe, key)
        for (key, kind), value in zip(found, pipe.execute()):
            out[key] = _DUMP_READ[kind][1](value)
    return out
