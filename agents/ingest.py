"""The ingest pipeline of one batch: fold, decide, publish, apply — once.

:class:`BatchApplier` is what each input agent calls with a consumed batch:

1. fold the raw records into counters (pure, :mod:`.fold`);
2. load what the rules need and decide alerts, traces, liveness, incidents (pure,
   :mod:`.decide`);
3. send dead letters and changed alerts to Kafka and wait for the broker's
   acknowledgement (at least once: consumers dedupe by id, the ids are stable);
4. apply everything to Redis in one atomic script that refuses the batch if the
   partitions' offsets or the records' versions moved since they were read.

A refused batch is folded again from fresh state; Redis or Kafka being away makes it
wait and retry; nothing is acknowledged to Kafka before it is applied.

No input stops the worker: any other exception while a batch is folded, decided or
applied is taken for a record that the code cannot handle. The batch is bisected, the
halves applied in order, down to the single record(s) that still raise; each is
dead-lettered with the exception as its reason (``internal error: ValueError: ...``)
and its offset applied like any dead letter, so a restart does not meet it again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any

import orjson
import redis.exceptions as redis_errors

from .. import keys
from ..grid_index import GridIndex
from ..schemas.events import Bounds
from ..settings import Settings
from ..store import ApplyConflict, AsyncStore
from .decide import DecideConfig, Decisions, candidate_alert_ids, decide
from .fold import BatchUpdate, DeadLetter, RawRecord, fold_batch
from .records_io import add_decisions, load_alerts, load_view, mark_grids, versions_of
from .risk_refresh import RiskRefresher

log = logging.getLogger("gridwatch.ingest")

Publisher = Callable[[BatchUpdate], Awaitable[None]]


class OffsetGap(Exception):
    """A batch does not start right after the offset Redis holds for its partition:
    Redis lost its last writes (or a record is missing). Nothing was applied."""

    def __init__(self, expected: dict[str, int]) -> None:
        super().__init__(", ".join(f"{f}: next is {o}" for f, o in expected.items()))
        self.expected = expected  # partition field -> offset that must come next


def gaps(records: list[RawRecord], applied: dict[str, int]) -> dict[str, int]:
    """Partitions whose first record in the batch comes after the next one expected
    (field -> the offset expected)."""
    out: dict[str, int] = {}
    seen: set[str] = set()
    for rec in records:
        f = keys.partition_field(rec.topic, rec.partition)
        if f in seen:
            continue
        seen.add(f)
        expected = applied.get(f, -1) + 1
        if rec.offset > expected:
            out[f] = expected
    return out


class Prefolded:
    """A batch folded ahead of time, and what it was folded against."""

    def __init__(self, update: BatchUpdate, generation: int) -> None:
        self.update: BatchUpdate | None = update
        self.generation = generation

    def fits(self, generation: int, applied: dict[str, int]) -> bool:
        update = self.update
        return (update is not None and generation == self.generation
                and all(applied.get(f, -1) == before for f, (before, _) in update.offsets.items()))

    def take(self) -> BatchUpdate:
        """The folded update, once (deciding adds to it)."""
        update, self.update = self.update, None
        assert update is not None
        return update


async def seen_before(redis: Any, update: BatchUpdate) -> set[tuple[str, str]]:
    """(topic, event id) of the batch's events that an earlier batch applied."""
    groups = [(k, topic, sorted(ids)) for k, ids in update.sadd.items()
              if (topic := keys.seen_topic(k)) is not None]
    if not groups:
        return set()
    pipe = redis.pipeline(transaction=False)
    for k, _, ids in groups:
        pipe.smismember(k, ids)
    replies = await pipe.execute()
    out: set[tuple[str, str]] = set()
    for (_, topic, ids), flags in zip(groups, replies):
        out.update((topic, i) for i, flag in zip(ids, flags) if flag)
    return out


# Errors of a service being away or busy for a while: retried, never dead-lettered. A
# Redis ResponseError from a script or a Kafka error that is not retriable is a fault of
# the batch (or of the code), not of the moment.
_TRANSIENT: tuple[type[BaseException], ...] = tuple(
    getattr(redis_errors, name) for name in (
        "ConnectionError", "TimeoutError", "BusyLoadingError", "TryAgainError",
        "ClusterDownError", "MasterDownError", "ReadOnlyError", "OutOfMemoryError",
        "MaxConnectionsError", "RedisClusterUnreachableError", "SlotNotCoveredError",
        "NoScriptError") if hasattr(redis_errors, name)
) + (OSError, ConnectionError, asyncio.TimeoutError, TimeoutError)


def _kafka_transient(exc: BaseException) -> bool:
    try:
        import aiokafka.errors as aiokafka_errors
        import kafka.errors as kafka_errors
    except ImportError:  # pragma: no cover - both are dependencies
        return False
    for mod in (aiokafka_errors, kafka_errors):
        if isinstance(exc, mod.KafkaError):
            return bool(getattr(exc, "retriable", False)) or isinstance(
                exc, (mod.KafkaConnectionError, mod.KafkaTimeoutError))
    return False


def _transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a service away or busy (retry) rather than a fault (isolate)."""
    return isinstance(exc, _TRANSIENT) or _kafka_transient(exc)


def internal_reason(exc: BaseException) -> str:
    """The dead-letter reason of a record the code raised on."""
    return f"internal error: {type(exc).__name__}: {str(exc)[:300]}"


def _merge(parts: list[BatchUpdate]) -> BatchUpdate:
    """One summary of the updates a bisected batch was applied in (what the caller
    observes: events, dead letters, late, new alerts)."""
    out = BatchUpdate()
    decisions = Decisions()
    for part in parts:
        for f, (before, last) in part.offsets.items():
            first = out.offsets.get(f, (before, last))[0]
            out.offsets[f] = (first, last)
        out.watermarks.update(part.watermarks)
        out.events.extend(part.events)
        out.deadletters.extend(part.deadletters)
        out.late += part.late
        got = getattr(part, "decisions", None)
        if got is not None:
            decisions.new_alert_ids.extend(got.new_alert_ids)
    out.decisions = decisions  # type: ignore[attr-defined]
    return out


class BatchApplier:
    """Holds what the worker knows between batches: the grid index, the rule config,
    and the offsets and watermarks it last saw in Redis (reloaded whenever Redis says
    they moved)."""

    def __init__(self, settings: Settings, store: AsyncStore, index: GridIndex,
                 config: DecideConfig, *, publish: Publisher | None = None,
                 risk: RiskRefresher | None = None) -> None:
        self.settings = settings
        self.store = store
        self.index = index
        self.config = config
        self.publish = publish
        self.risk = risk
        self.applied: dict[str, int] | None = None
        self.watermarks: dict[str, float] = {}
        self.stats = {"batches": 0, "applied": 0, "deadletter": 0, "conflicts": 0,
                      "alerts": 0, "retries": 0, "poison": 0}
        # Bumped whenever the offsets and watermarks are read from Redis again: a batch
        # folded ahead of time against older ones is folded again.
        self.generation = 0

    def bounds(self) -> Bounds:
        """The times the decoder accepts now (the wall clock is read here, not in it)."""
        s = self.settings
        return Bounds(s.time_min_year, s.time_max_year, time.time(), s.max_future_s)

    async def reload(self) -> None:
        # A batch staged on a cluster but not completed (a worker died between its
        # slots) is completed first: its partitions refuse new batches until then.
        await self.store.complete_pending()
        self.applied = await self.store.offsets()
        self.watermarks = await self.store.watermarks()
        self.generation += 1

    def prefold(self, records: list[RawRecord], applied: dict[str, int],
                watermarks: dict[str, float]) -> Prefolded:
        """Fold a batch ahead of time (pure CPU work, no I/O) against the offsets and
        watermarks it will meet once the batch before it is applied; :meth:`prepare`
        uses it only if that is what it finds."""
        update = fold_batch(records, index=self.index, applied=applied,
                            watermarks=watermarks, grace_s=self.settings.grace_s,
                            bounds=self.bounds())
        return Prefolded(update, self.generation)

    async def prepare(self, records: list[RawRecord], *,
                      allow_gaps: Collection[str] | None = None,
                      pre: Prefolded | None = None) -> BatchUpdate:
        """Fold and decide one batch against the state in Redis now.

        Raises:
            OffsetGap: with ``allow_gaps`` given, a partition (not in it) whose records
                do not follow on from the offset Redis holds.
        """
        if self.applied is None:
            await self.reload()
        assert self.applied is not None
        if allow_gaps is not None:
            missing = {f: o for f, o in gaps(records, self.applied).items() if f not in allow_gaps}
            if missing:
                raise OffsetGap(missing)
        bounds = self.bounds()
        if pre is not None and pre.fits(self.generation, self.applied):
            update = pre.take()
        else:
            update = fold_batch(records, index=self.index, applied=self.applied,
                                watermarks=self.watermarks, grace_s=self.settings.grace_s,
                                bounds=bounds)
        if update.events:
            seen = await seen_before(self.store.redis, update)
            if seen:  # sent again: fold once more without them (rare)
                update = fold_batch(records, index=self.index, applied=self.applied,
                                    watermarks=self.watermarks, grace_s=self.settings.grace_s,
                                    seen=seen, bounds=bounds)
        if update.empty or not update.events:
            return update
        events = [(event, grid) for _, event, grid in update.events]
        redis = self.store.redis
        view, versions = await load_view(redis, events, visit_window_s=self.config.visit_horizon_s)
        extra = candidate_alert_ids(events, view, self.config)
        versions.update(await load_alerts(redis, view, extra))
        decisions = decide(events, view, self.config, workers_of=self.index.workers_of)
        unread = [keys.alert(a) for a in decisions.alerts if keys.alert(a) not in versions]
        versions.update(await versions_of(redis, unread))
        add_decisions(update, decisions, versions, visit_horizon_s=self.config.visit_horizon_s,
                      trace_s=self.settings.trace_days * 86400.0)
        update.touched = mark_grids(update)  # type: ignore[attr-defined]
        update.decisions = decisions  # type: ignore[attr-defined]
        return update

    async def commit(self, update: BatchUpdate) -> None:
        """Publish and apply a prepared batch, then take note of it.

        Raises:
            ApplyConflict: Redis moved since the batch was prepared; nothing applied.
        """
        if self.publish is not None:
            await self.publish(update)
        await self.store.apply(update)
        assert self.applied is not None
        for pfield, (_, last) in update.offsets.items():
            self.applied[pfield] = last
        self.watermarks.update(update.watermarks)
        self.stats["batches"] += 1
        self.stats["applied"] += len(update.events)
        self.stats["deadletter"] += len(update.deadletters)
        decisions = getattr(update, "decisions", None)
        if decisions is not None:
            self.stats["alerts"] += len(decisions.new_alert_ids)
        if self.risk is not None:
            self.risk.mark(getattr(update, "touched", ()))

    async def handle(self, records: list[RawRecord], *,
                     allow_gaps: Collection[str] | None = None,
                     pre: Prefolded | None = None) -> BatchUpdate:
        """Fold, decide, publish and apply one batch; returns the update applied.

        With ``allow_gaps`` (a set of partition fields, possibly empty), a batch that
        does not follow on from Redis's offsets raises :class:`OffsetGap` instead of
        being applied; without it, records are applied wherever they start.
        """
        try:
            return await self._apply_once(records, allow_gaps=allow_gaps, pre=pre)
        except (OffsetGap, asyncio.CancelledError):
            raise
        except Exception as exc:  # noqa: BLE001 - not transient: a record we cannot handle
            log.error("batch of %d records raised %s: %s; isolating the record(s) that cause "
                      "it", len(records), type(exc).__name__, exc)
            parts: list[BatchUpdate] = []
            await self._isolate(records, allow_gaps, parts, failed=exc)
            return _merge(parts)

    async def _apply_once(self, records: list[RawRecord], *,
                          allow_gaps: Collection[str] | None = None,
                          pre: Prefolded | None = None) -> BatchUpdate:
        """Prepare and commit, folding again on conflicts and retrying while Redis or
        Kafka are away; any other exception is raised."""
        delay = 0.1
        while True:
            try:
                update = await self.prepare(records, allow_gaps=allow_gaps, pre=pre)
                if not update.empty:
                    await self.commit(update)
                return update
            except ApplyConflict as exc:
                self.stats["conflicts"] += 1
                log.info("state moved under us (%s); folding again", exc)
                await self.reload()
            except Exception as exc:  # only transient ones are retried
                if not _transient(exc):
                    raise
                self.stats["retries"] += 1
                log.warning("apply failed (%s: %s); retrying in %.1fs", type(exc).__name__, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                self.applied = None
            pre = None

    async def _isolate(self, records: list[RawRecord], allow_gaps: Collection[str] | None,
                       parts: list[BatchUpdate], *, failed: BaseException | None = None) -> None:
        """Apply ``records`` in order, bisecting around whatever raises (``failed``: they
        raised that already); a single record that raises on its own is dead-lettered
        with the exception."""
        if failed is None:
            try:
                parts.append(await self._apply_once(records, allow_gaps=allow_gaps))
                return
            except (OffsetGap, asyncio.CancelledError):
                raise
            except Exception as exc:  # noqa: BLE001 - isolated below
                failed = exc
        if len(records) == 1:
            parts.append(await self._poison(records[0], failed))
            return
        mid = len(records) // 2
        await self._isolate(records[:mid], allow_gaps, parts)
        await self._isolate(records[mid:], allow_gaps, parts)

    async def _poison(self, rec: RawRecord, exc: BaseException) -> BatchUpdate:
        """Dead-letter one record the code raised on, and apply its offset."""
        reason = internal_reason(exc)
        log.error("poison record %s:%d@%d dead-lettered (%s)", rec.topic, rec.partition,
                  rec.offset, reason, exc_info=exc)
        pfield = keys.partition_field(rec.topic, rec.partition)
        while True:
            if self.applied is None:
                await self.reload()
            assert self.applied is not None
            before = self.applied.get(pfield, -1)
            update = BatchUpdate()
            if rec.offset <= before:
                return update  # applied meanwhile (another worker, a retry)
            update.offsets[pfield] = (before, rec.offset)
            update.deadletters.append(DeadLetter(rec.topic, rec.partition, rec.offset, reason,
                                                 None, rec.value or b""))
            update.incr[(keys.SUMMARY, "deadletter")] += 1
            try:
                await self.commit(update)
            except ApplyConflict:
                self.applied = None
                continue
            except Exception as err:  # only transient ones are retried
                if not _transient(err):
                    raise
                self.stats["retries"] += 1
                await asyncio.sleep(0.5)
                self.applied = None
                continue
            self.stats["poison"] += 1
            return update


def alert_messages(update: BatchUpdate) -> list[tuple[bytes, bytes]]:
    """(key, value) of each changed alert for the ``gridwatch.alerts`` topic."""
    out = []
    for key, _, data in update.streams:
        record = keys.channel_record("alert", data) if key == keys.CHAN_ALERTS else None
        if record is not None:
            out.append((orjson.loads(record)["id"].encode(), record))
    return out


def publisher(send: Callable[[str, bytes, bytes], Awaitable[Any]]) -> Publisher:
    """A publisher that sends dead letters and changed alerts and waits for Kafka."""
    from ..streams import topics

    async def publish(update: BatchUpdate) -> None:
        futures = []
        for dl in update.deadletters:
            key = f"{dl.topic}:{dl.partition}:{dl.offset}".encode()
            import orjson

            futures.append(await send(topics.DEADLETTER, key, orjson.dumps(dl.to_dict())))
        for key, value in alert_messages(update):
            futures.append(await send(topics.ALERTS, key, value))
        if futures:
            await asyncio.gather(*futures)

    return publish
