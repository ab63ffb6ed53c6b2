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
from typing import Callable

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from .. import keys
from ..settings import Settings
from ..streams import topics
from .fold import RawRecord
from .ingest import BatchApplier, OffsetGap

log = logging.getLogger("gridwatch.ingest")

Observer = Callable[[list[RawRecord], object, float], None]


def ingest_group(settings: Settings) -> str:
    """The consumer group of the input topics."""
    return f"{settings.group}.ingest"


class _Seek(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, loop: "IngestLoop") -> None:
        self.loop = loop

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        log.info("ingest: %d partitions revoked", len(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.loop.seek_to_applied(list(assigned))
        log.info("ingest: %d partitions assigned", len(assigned))


class IngestLoop:
    """Consume the input topics and apply them batch by batch, until stopped."""

    def __init__(self, settings: Settings, applier: BatchApplier, *,
                 observe: Observer | None = None) -> None:
        self.settings = settings
        self.applier = applier
        self.observe = observe
        self.consumer: AIOKafkaConsumer | None = None
        self.accepted_gaps = 0
        self._committed_at = 0.0
        self._stopping = asyncio.Event()

    def make_consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka.split(","),
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
        for tp in tps:
            done = applied.get(keys.partition_field(tp.topic, tp.partition))
            if done is None:
                consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, done + 1)

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
        within = max(1, int(self.settings.batch_within_s * 1000))
        while not self._stopping.is_set():
            fetched = await consumer.getmany(timeout_ms=within, max_records=self.settings.batch)
            if not fetched:
                continue
            records = [RawRecord(tp.topic, tp.partition, m.offset, m.value, m.key)
                       for tp, msgs in fetched.items() for m in msgs]
            allow: set[str] = set()
            while True:
                started = time.perf_counter()
                try:
                    update = await self.applier.handle(records, allow_gaps=allow)
                except OffsetGap as gap:
                    allow |= await self._gap(consumer, fetched, gap)
                    if allow >= set(gap.expected):
                        continue  # only retention gaps: apply the batch as it is
                    records = []  # re-read from Redis's offsets
                    break
                took = time.perf_counter() - started
                if self.observe is not None:
                    self.observe(records, update, took)
                await self._commit(consumer, fetched)
                break

    async def _gap(self, consumer: AIOKafkaConsumer, fetched: dict[TopicPartition, list],
                   gap: OffsetGap) -> set[str]:
        """Handle a batch that does not follow what Redis holds: seek back to Redis's
        offsets and drop the batch, unless Kafka no longer has the missing records.
        Returns the partition fields whose gap is accepted."""
        by_field = {keys.partition_field(tp.topic, tp.partition): tp for tp in fetched}
        gap_tps = [by_field[f] for f in gap.expected if f in by_field]
        starts = await consumer.beginning_offsets(gap_tps) if gap_tps else {}
        accepted = set()
        for f, expected in gap.expected.items():
            tp = by_field.get(f)
            if tp is not None and starts.get(tp, 0) > expected:
                log.warning("ingest: %s: records %d..%d are no longer in Kafka (retention); "
                            "going on from %d", f, expected, starts[tp] - 1, starts[tp])
                self.accepted_gaps += 1
                accepted.add(f)
        if accepted >= set(gap.expected):
            return accepted
        log.warning("ingest: Redis is behind the batch (%s); re-reading from Redis's offsets",
                    ", ".join(f"{f} expects {o}" for f, o in gap.expected.items()))
        # Drop the whole batch: every partition in it is read again from its first
        # record, the ones behind from Redis's offset.
        for tp, msgs in fetched.items():
            f = keys.partition_field(tp.topic, tp.partition)
            consumer.seek(tp, gap.expected.get(f, msgs[0].offset))
        return accepted

    async def _commit(self, consumer: AIOKafkaConsumer, fetched: dict[TopicPartition, list]) -> None:
        now = time.monotonic()
        if now - self._committed_at < 1.0:
            return
        self._committed_at = now
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

