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
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Collection

from .. import keys
from ..settings import Settings
from ..store import ApplyConflict, AsyncStore
from .decide import DecideConfig, candidate_alert_ids, decide
from .fold import BatchUpdate, RawRecord, fold_batch
from .grid_index import GridIndex
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
    groups = [(k, sorted(ids)) for k, ids in update.sadd.items() if k.startswith(keys.SEEN_PREFIX)]
    if not groups:
        return set()
    pipe = redis.pipeline(transaction=False)
    for k, ids in groups:
        pipe.smismember(k, ids)
    replies = await pipe.execute()
    out: set[tuple[str, str]] = set()
    for (k, ids), flags in zip(groups, replies):
        topic = k[len(keys.SEEN_PREFIX):].rsplit(":", 1)[0]
        out.update((topic, i) for i, flag in zip(ids, flags) if flag)
    return out


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, (OSError, ConnectionError, asyncio.TimeoutError)) or \
        type(exc).__module__.startswith(("redis", "aiokafka", "kafka"))


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
                      "alerts": 0, "retries": 0}
        # Bumped whenever the offsets and watermarks are read from Redis again: a batch
        # folded ahead of time against older ones is folded again.
        self.generation = 0

    async def reload(self) -> None:
        self.applied = await self.store.offsets()
        self.watermarks = await self.store.watermarks()
        self.generation += 1

    def prefold(self, records: list[RawRecord], applied: dict[str, int],
                watermarks: dict[str, float]) -> Prefolded:
        """Fold a batch ahead of time (pure CPU work, no I/O) against the offsets and
        watermarks it will meet once the batch before it is applied; :meth:`prepare`
        uses it only if that is what it finds."""
        update = fold_batch(records, index=self.index, applied=applied,
                            watermarks=watermarks, grace_s=self.settings.grace_s)
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
        if pre is not None and pre.fits(self.generation, self.applied):
            update = pre.take()
        else:
            update = fold_batch(records, index=self.index, applied=self.applied,
                                watermarks=self.watermarks, grace_s=self.settings.grace_s)
        if update.events:
            seen = await seen_before(self.store.redis, update)
            if seen:  # sent again: fold once more without them (rare)
                update = fold_batch(records, index=self.index, applied=self.applied,
                                    watermarks=self.watermarks, grace_s=self.settings.grace_s,
                                    seen=seen)
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
            except Exception as exc:  # noqa: BLE001 - only transient ones are retried
                if not _transient(exc):
                    raise
                self.stats["retries"] += 1
                log.warning("apply failed (%s: %s); retrying in %.1fs", type(exc).__name__, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                self.applied = None


def alert_messages(update: BatchUpdate) -> list[tuple[bytes, bytes]]:
    """(key, value) of each changed alert for the ``gridwatch.alerts`` topic."""
    out = []
    for key, _, data in update.streams:
        if key == keys.CHAN_ALERTS:
            # The channel message wraps the record: {"type":"alert","alert":{...}}
            record = data[len(b'{"type":"alert","alert":'):-1]
            alert_id = record.split(b'"id":"', 1)[1].split(b'"', 1)[0]
            out.append((alert_id, record))
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
