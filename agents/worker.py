"""The faust worker: consume the input topics in batches, fold, apply to Redis.

Each agent is the thin shell around :func:`~gridwatch.agents.fold.fold_batch`:
take a batch -> fold it (pure) -> dead-letter the bad records -> apply the update to
Redis in one atomic script -> let faust acknowledge the batch. A record that cannot be
decoded never stops the agent; an error while applying is retried with a back-off, so
nothing is acknowledged that was not applied.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import faust
import orjson

from ..city import load_grids
from ..settings import Settings
from ..store import ApplyConflict, AsyncStore
from ..streams import topics
from ..streams.app import make_app
from .fold import BatchUpdate, RawRecord, fold_batch
from .grid_index import GridIndex

log = logging.getLogger("gridwatch.worker")


class BatchApplier:
    """Holds what the worker knows between batches: the grid index, and the offsets
    and watermarks it last saw in Redis (reloaded whenever Redis says they moved)."""

    def __init__(self, settings: Settings, store: AsyncStore, index: GridIndex,
                 deadletter: Any = None) -> None:
        self.settings = settings
        self.store = store
        self.index = index
        self.deadletter = deadletter
        self.applied: dict[str, int] | None = None
        self.watermarks: dict[str, float] = {}
        self.stats = {"batches": 0, "applied": 0, "deadletter": 0, "conflicts": 0}

    async def reload(self) -> None:
        self.applied = await self.store.offsets()
        self.watermarks = await self.store.watermarks()

    async def handle(self, records: list[RawRecord]) -> BatchUpdate:
        """Fold and apply one batch; returns the update that was applied."""
        delay = 0.1
        while True:
            try:
                if self.applied is None:
                    await self.reload()
                assert self.applied is not None
                update = fold_batch(records, index=self.index, applied=self.applied,
                                    watermarks=self.watermarks,
                                    grace_s=self.settings.grace_s)
                if update.empty:
                    return update
                if update.deadletters and self.deadletter is not None:
                    await self.deadletter(update)
                await self.store.apply(update)
            except ApplyConflict as exc:
                self.stats["conflicts"] += 1
                log.info("offsets moved under us (%s); reloading and folding again", exc)
                await self.reload()
                continue
            except (OSError, ConnectionError, asyncio.TimeoutError) as exc:
                # Redis or Kafka away: keep the batch, wait, try again; never ack unapplied.
                log.warning("apply failed (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                self.applied = None
                continue
            except Exception as exc:  # noqa: BLE001 - redis-py raises its own tree
                if type(exc).__module__.startswith("redis"):
                    log.warning("redis error (%s); retrying in %.1fs", exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
                    self.applied = None
                    continue
                raise
            for pfield, (_, last) in update.offsets.items():
                self.applied[pfield] = last
            self.watermarks.update(update.watermarks)
            self.stats["batches"] += 1
            self.stats["applied"] += len(update.events)
            self.stats["deadletter"] += len(update.deadletters)
            return update


def build(settings: Settings) -> tuple[faust.App, BatchApplier]:
    """The faust app with one agent per input topic, and the applier they share."""
    app = make_app(settings, app_id=settings.group)
    index = GridIndex(load_grids(settings.grids))
    store = AsyncStore(settings.redis)
    dl_topic = app.topic(topics.DEADLETTER, key_type=bytes, value_type=bytes,
                         key_serializer="raw", value_serializer="raw")

    async def send_deadletters(update: BatchUpdate) -> None:
        futures = []
        for dl in update.deadletters:
            key = f"{dl.topic}:{dl.partition}:{dl.offset}".encode()
            futures.append(await dl_topic.send(key=key, value=orjson.dumps(dl.to_dict())))
        # Wait until Kafka has them before the batch is applied and acknowledged.
        await asyncio.gather(*futures)

    applier = BatchApplier(settings, store, index, send_deadletters)

    for spec in topics.INPUTS:
        topic = app.topic(spec.name, key_type=bytes, value_type=bytes,
                          key_serializer="raw", value_serializer="raw")

        async def consume(stream: faust.StreamT, _name: str = spec.name) -> None:
            async for events in stream.take_events(settings.batch, within=settings.batch_within_s):
                started = time.perf_counter()
                records = [
                    RawRecord(ev.message.topic, ev.message.partition, ev.message.offset,
                              ev.message.value, ev.message.key)
                    for ev in events
                ]
                update = await applier.handle(records)
                log.debug("%s: %d records in %.1f ms", _name, len(records),
                          (time.perf_counter() - started) * 1000)
                if update.late:
                    log.info("%s: %d late events counted apart", _name, update.late)

        app.agent(topic, name=f"gridwatch.ingest.{spec.name.split('.')[-1]}")(consume)

    @app.timer(interval=10.0)
    async def report() -> None:
        log.info("worker: %(batches)d batches, %(applied)d events applied, "
                 "%(deadletter)d dead-lettered, %(conflicts)d offset conflicts", applier.stats)

    return app, applier


def run(settings: Settings, *, loglevel: str = "info") -> None:
    """Run the worker until interrupted (``gridwatch worker``)."""
    from faust.worker import Worker

    app, _ = build(settings)
    Worker(app, loglevel=loglevel, quiet=True).execute_from_commandline()
