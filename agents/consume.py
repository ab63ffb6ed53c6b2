"""The ingest loop: aiokafka's ``getmany()`` straight into the batch applier.

The three input topics carry almost all of the traffic, so they are read by one plain
aiokafka consumer of their own (group ``{GRIDWATCH_GROUP}.ingest``) instead of
faust's per-message path: one ``getmany()`` hands over up to ``GRIDWATCH_BATCH``
records of every assigned partition, and aiokafka keeps fetching the next ones while
the batch is folded, decided and applied. faust still runs the low-volume command
agent and the timers.

Where to read from is Redis's business, not Kafka's: the offset applied last for each
partition is stored in Redis in the same atomic step as the state it produced
(:mod:`gridwatch.store`). So

- on every assignment the consumer seeks each partition to the offset after the one
  Redis holds (from the beginning when Redis holds none);
- when a batch does not start right after what Redis holds — Redis lost its last
  writes (a crash within the AOF fsync second, a restore from an older copy) — the
  batch is dropped and the partition re-read from Redis's offset; records that Kafka
  no longer has (retention) are the only gap accepted, and it is logged and counted;
- offsets are also committed to Kafka after each applied batch, only so that
  ``kafka-consumer-groups`` and the lag metric show the truth.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from .. import keys
from ..settings import Settings
from ..store import ApplyConflict
from ..streams import clients, topics
from .fold import BatchUpdate, RawRecord
from .ingest import BatchApplier, OffsetGap, Prefolded

log = logging.getLogger("gridwatch.ingest")

Observer = Callable[[list[RawRecord], object, float], None]
Fetched = dict[TopicPartition, list]


class _Inflight:
    """A batch whose publish-and-apply is running."""

    def __init__(self, fetched: Fetched, records: list[RawRecord], update: BatchUpdate,
                 task: asyncio.Future[None], started: float) -> None:
        self.fetched = fetched
        self.records = records
        self.update = update
        self.task = task
        self.started = started


def ingest_group(settings: Settings) -> str:
    """The consumer group of the input topics."""
    return f"{settings.group}.ingest"


class _Seek(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, loop: IngestLoop) -> None:
        self.loop = loop

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        log.info("ingest: %d partitions revoked", len(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.loop.seek_to_applied(list(assigned))
        log.info("ingest: %d partitions assigned", len(assigned))


class IngestLoop:
    """Consume the input topics and apply them batch by batch, until stopped."""

    def __init__(self, settings: Settings, applier: BatchApplier, *,
                 observe: Observer | None = None,
                 on_rewind: Callable[[], None] | None = None) -> None:
        self.settings = settings
        self.applier = applier
        self.observe = observe
        # Called when Redis was found behind: whatever was derived from the lost writes
        # in memory (the risk refresher's dirty grids) must be derived again.
        self.on_rewind = on_rewind
        self.consumer: AIOKafkaConsumer | None = None
        self.accepted_gaps = 0
        self.rewinds = 0
        self._committed_at = 0.0
        self._commit_task: asyncio.Future[None] | None = None
        self._uncommitted = False
        self._stopping = asyncio.Event()

    def make_consumer(self) -> AIOKafkaConsumer:
        return clients.async_consumer(
            self.settings,
            group_id=ingest_group(self.settings),
            client_id=f"{self.settings.group}-ingest",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.settings.batch,
            fetch_max_bytes=16 * 1024 * 1024,
            max_partition_fetch_bytes=2 * 1024 * 1024,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=2_000,
            rebalance_timeout_ms=30_000,
            # Between two getmany() calls a batch is applied; a slow Redis must not
            # make the group think this worker died.
            max_poll_interval_ms=300_000,
        )

    async def _redis_offsets(self) -> dict[str, int]:
        delay = 0.2
        while True:
            try:
                return await self.applier.store.offsets()
            except Exception as exc:  # noqa: BLE001 - Redis away: wait, never guess
                log.warning("ingest: cannot read offsets from Redis (%s); retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def seek_to_applied(self, tps: list[TopicPartition]) -> None:
        """Point each partition at the record after the last one applied in Redis."""
        consumer = self.consumer
        if consumer is None or not tps:
            return
        applied = await self._redis_offsets()
        self.applier.applied = applied
        self.applier.watermarks = await self.applier.store.watermarks()
        self.applier.generation += 1  # anything folded ahead is folded again
        fresh = []
        for tp in tps:
            done = applied.get(keys.partition_field(tp.topic, tp.partition))
            if done is None:
                fresh.append(tp)
            else:
                consumer.seek(tp, done + 1)
        if fresh:  # nothing applied yet: from the start of the log, whatever was committed
            await consumer.seek_to_beginning(*fresh)

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        consumer = self.consumer = self.make_consumer()
        consumer.subscribe(topics=[t.name for t in topics.INPUTS], listener=_Seek(self))
        await self._start(consumer)
        try:
            await self._loop(consumer)
        finally:
            await consumer.stop()

    async def _start(self, consumer: AIOKafkaConsumer) -> None:
        delay = 0.5
        while True:
            try:
                await consumer.start()
                return
            except Exception as exc:  # noqa: BLE001 - the broker may still be starting
                log.warning("ingest: cannot reach Kafka (%s); retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _loop(self, consumer: AIOKafkaConsumer) -> None:
        """Two batches overlap: while batch N's Lua apply runs in Redis (and its alerts
        go to Kafka), batch N+1 is fetched and folded (decoding, grid lookup: pure CPU)
        against the offsets N will leave; N+1 reads its view from Redis and is decided
        only after N is applied, so every decision sees the state before it, exactly as
        one batch at a time would."""
        within = max(1, int(self.settings.batch_within_s * 1000))
        inflight: _Inflight | None = None
        while not self._stopping.is_set():
            fetched = await consumer.getmany(timeout_ms=0 if inflight else within,
                                             max_records=self.settings.batch)
            if not fetched:
                if inflight is not None:
                    await self._finish(consumer, inflight, [])
                    inflight = None
                elif self._uncommitted:  # idle: let the group's lag show the truth
                    self._uncommitted = False
                    self._committed_at = time.monotonic()
                    self._commit_task = asyncio.ensure_future(self._commit(consumer))
                continue
            records = [RawRecord(tp.topic, tp.partition, m.offset, m.value, m.key)
                       for tp, msgs in fetched.items() for m in msgs]
            started = time.perf_counter()
            applied = dict(self.applier.applied or {})
            watermarks = dict(self.applier.watermarks)
            if inflight is not None and inflight.update is not None:
                for f, (_, last) in inflight.update.offsets.items():
                    applied[f] = last
                watermarks.update(inflight.update.watermarks)
            pre = None
            if self.applier.applied is not None:
                try:
                    pre = self.applier.prefold(records, applied, watermarks)
                except Exception as exc:  # noqa: BLE001 - folded again, and isolated, below
                    log.warning("ingest: folding ahead raised %s: %s", type(exc).__name__, exc)
            if inflight is not None:
                ok = await self._finish(consumer, inflight, [fetched])
                inflight = None
                if not ok:
                    continue  # rewound: this batch is read again too
            inflight = await self._start_batch(consumer, fetched, records, pre, started)

    async def _start_batch(self, consumer: AIOKafkaConsumer, fetched: Fetched,
                           records: list[RawRecord], pre: Prefolded | None,
                           started: float) -> _Inflight | None:
        """Prepare a batch and start its publish-and-apply; None when nothing is left
        in flight (empty, rewound, or applied the slow way)."""
        allow: set[str] = set()
        while True:
            try:
                update = await self.applier.prepare(records, allow_gaps=allow, pre=pre)
            except OffsetGap as gap:
                allow |= await self._gap(consumer, [fetched], gap)
                if allow >= set(gap.expected):
                    pre = None
                    continue  # only retention gaps: apply the batch as it is
                return None  # re-read from Redis's offsets
            except Exception:  # noqa: BLE001 - Redis away, or a record that raises: the
                # careful path retries the one and isolates the other
                await self._slow(consumer, fetched, records, started)
                return None
            if update.empty:
                self._done(consumer, fetched, records, update, started)
                return None
            task = asyncio.ensure_future(self.applier.commit(update))
            return _Inflight(fetched, records, update, task, started)

    async def _finish(self, consumer: AIOKafkaConsumer, inflight: _Inflight,
                      later: list[Fetched]) -> bool:
        """Wait for a batch in flight; False when the partitions were rewound (and the
        ``later`` batches already fetched must be dropped)."""
        try:
            await inflight.task
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - conflict, Redis/Kafka away, or a fault
            # the careful path isolates (a record that makes the apply fail)
            if isinstance(exc, ApplyConflict):
                self.applier.stats["conflicts"] += 1
                log.info("ingest: state moved under us (%s); folding again", exc)
            else:
                log.warning("ingest: apply failed (%s: %s); retrying", type(exc).__name__, exc)
            self.applier.applied = None  # read again (and fold again) from Redis
            return await self._slow(consumer, inflight.fetched, inflight.records,
                                    inflight.started, later)
        self._done(consumer, inflight.fetched, inflight.records, inflight.update,
                   inflight.started)
        return True

    async def _slow(self, consumer: AIOKafkaConsumer, fetched: Fetched, records: list[RawRecord],
                    started: float, later: list[Fetched] | None = None) -> bool:
        """One batch the careful way (retrying, folding again); False if rewound."""
        allow: set[str] = set()
        while True:
            try:
                update = await self.applier.handle(records, allow_gaps=allow)
            except OffsetGap as gap:
                allow |= await self._gap(consumer, [fetched, *(later or [])], gap)
                if allow >= set(gap.expected):
                    continue
                return False
            self._done(consumer, fetched, records, update, started)
            return True

    def _done(self, consumer: AIOKafkaConsumer, fetched: Fetched, records: list[RawRecord],
              update: object, started: float) -> None:
        if self.observe is not None:
            self.observe(records, update, time.perf_counter() - started)
        now = time.monotonic()
        if now - self._committed_at >= 1.0:
            self._committed_at = now
            self._uncommitted = False
            self._commit_task = asyncio.ensure_future(self._commit(consumer))
        else:
            self._uncommitted = True

    async def _gap(self, consumer: AIOKafkaConsumer, batches: list[Fetched],
                   gap: OffsetGap) -> set[str]:
        """Handle a batch that does not follow what Redis holds: seek back to Redis's
        offsets and drop the batches in hand, unless Kafka no longer has the missing
        records. Returns the partition fields whose gap is accepted."""
        first: dict[str, tuple[TopicPartition, int]] = {}
        for fetched in batches:
            for tp, msgs in fetched.items():
                f = keys.partition_field(tp.topic, tp.partition)
                if f not in first and msgs:
                    first[f] = (tp, msgs[0].offset)
        gap_tps = [first[f][0] for f in gap.expected if f in first]
        starts = await consumer.beginning_offsets(gap_tps) if gap_tps else {}
        accepted = set()
        for f, expected in gap.expected.items():
            tp = first[f][0] if f in first else None
            if tp is not None and starts.get(tp, 0) > expected:
                log.warning("ingest: %s: records %d..%d are no longer in Kafka (retention); "
                            "going on from %d", f, expected, starts[tp] - 1, starts[tp])
                self.accepted_gaps += 1
                accepted.add(f)
        if accepted >= set(gap.expected):
            return accepted
        log.warning("ingest: Redis is behind the batch (%s); re-reading from Redis's offsets",
                    ", ".join(f"{f} expects {o}" for f, o in gap.expected.items()))
        # Drop what is in hand: every partition in it is read again from its first
        # record, the ones behind from Redis's offset.
        for f, (tp, offset) in first.items():
            consumer.seek(tp, gap.expected.get(f, offset))
        self.rewinds += 1
        if self.on_rewind is not None:
            self.on_rewind()
        return accepted

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        applied = self.applier.applied or {}
        offsets = {}
        for tp in consumer.assignment():
            done = applied.get(keys.partition_field(tp.topic, tp.partition))
            if done is not None:
                offsets[tp] = OffsetAndMetadata(done + 1, "")
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except Exception as exc:  # noqa: BLE001 - informational only; Redis holds the truth
            log.debug("ingest: offset commit to Kafka failed (%s)", exc)

    def lag(self) -> dict[str, int]:
        """Records not yet applied, per input topic (what the broker has minus Redis)."""
        out: dict[str, int] = {}
        consumer = self.consumer
        if consumer is None:
            return out
        try:
            assigned = consumer.assignment()
        except Exception:  # noqa: BLE001 - not started yet
            return out
        for tp in assigned:
            high = consumer.highwater(tp)
            if high is None:
                continue
            done = (self.applier.applied or {}).get(keys.partition_field(tp.topic, tp.partition), -1)
            out[tp.topic] = out.get(tp.topic, 0) + max(0, high - done - 1)
        return out

