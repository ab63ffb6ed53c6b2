"""The faust worker: the agents are thin shells around the pure core.

- the ingest loop (:mod:`.consume`, plain aiokafka ``getmany()``) reads the three
  input topics batch by batch -> :class:`~.ingest.BatchApplier`;
- the command agent: each command -> :class:`~.commands.CommandApplier`;
- background tasks: the risk refresher (dirty grids, every 100 ms) and the timers
  (escalations every 2 s, silent sources every 30 s).

A record that cannot be decoded never stops an agent: it goes to the dead-letter
topic with its reason and its offset is applied like any other. Nor does one that
decodes but makes the code raise: it is isolated and dead-lettered with the exception
(``gridwatch_poison_records_total``, ``poison`` in ``/healthz``); only Redis or Kafka
being away makes an agent wait and retry.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zoneinfo

import faust

from .. import command_keys, heap
from ..city import load_grids
from ..grid_index import GridIndex
from ..risk import load_risk_config
from ..schemas.events import Bounds
from ..settings import Settings
from ..store import AsyncStore
from ..streams import clients, topics
from ..streams.app import make_app
from . import loiter, rules
from .commands import CommandApplier
from .consume import IngestLoop
from .decide import DecideConfig
from .fold import RawRecord
from .forecast_refresh import ForecastRefresher
from .ingest import BatchApplier, _transient, publisher
from .metrics import WorkerMetrics
from .metrics import serve as serve_metrics
from .risk_refresh import RiskRefresher
from .timers import Timers

log = logging.getLogger("gridwatch.worker")


def decide_config(settings: Settings) -> DecideConfig:
    """The rule tables and thresholds, from the bundled (or configured) files."""
    table = rules.load_rules()
    return DecideConfig(rules=table, loiter=loiter.load_config(),
                        visit_horizon_s=table.visit_horizon_s(settings.grace_s))


def _records(events: list[faust.EventT]) -> list[RawRecord]:
    return [RawRecord(ev.message.topic, ev.message.partition, ev.message.offset,
                      ev.message.value, ev.message.key) for ev in events]


def _end_offsets(settings: Settings) -> dict[str, int]:
    """The end offset of every input partition ("topic:partition" -> next offset)."""
    from kafka import TopicPartition

    consumer = clients.offsets_consumer(settings)
    try:
        parts = [TopicPartition(t.name, p) for t in topics.INPUTS for p in range(settings.partitions)]
        return {f"{tp.topic}:{tp.partition}": int(end) for tp, end in consumer.end_offsets(parts).items()}
    finally:
        consumer.close()


def build(settings: Settings) -> tuple[faust.App, BatchApplier]:
    """The faust app with its agents, and the batch applier they share."""
    app = make_app(settings, app_id=settings.group)
    index = GridIndex(load_grids(settings.grids))
    store = AsyncStore(settings)  # one server, or the cluster of GRIDWATCH_REDIS_CLUSTER
    config = decide_config(settings)
    risk = RiskRefresher(store.redis, load_risk_config(), every=settings.risk_every_s)
    raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
    out_topics = {name: app.topic(name, **raw)
                  for name in (topics.DEADLETTER, topics.ALERTS, topics.FORECASTS)}

    async def send(topic: str, key: bytes, value: bytes) -> object:
        return await out_topics[topic].send(key=key, value=value)

    applier = BatchApplier(settings, store, index, config, publish=publisher(send), risk=risk)
    async def input_ends() -> dict[str, int]:
        return await asyncio.to_thread(_end_offsets, settings)

    commands = CommandApplier(store, index, config.escalation, input_ends=input_ends,
                              keyring=command_keys.keyring(settings),
                              bounds=Bounds(settings.time_min_year, settings.time_max_year))
    timers = Timers(store, config, max_future_s=settings.max_future_s)
    forecasts = ForecastRefresher(store.redis, publish=send, tz=zoneinfo.ZoneInfo(settings.tz),
                                  calendar=settings.calendar)

    metrics = WorkerMetrics()

    seen = {"conflicts": 0, "poison": 0, "command_poison": 0}

    def observe(records: list[RawRecord], update: object, took: float) -> None:
        per_topic: dict[str, int] = {}
        for rec in records:
            per_topic[rec.topic] = per_topic.get(rec.topic, 0) + 1
        applied_per_topic: dict[str, int] = {}
        for rec, _, _ in getattr(update, "events", ()):
            applied_per_topic[rec.topic] = applied_per_topic.get(rec.topic, 0) + 1
        decisions = getattr(update, "decisions", None)
        metrics.conflicts.inc(applier.stats["conflicts"] - seen["conflicts"])
        seen["conflicts"] = applier.stats["conflicts"]
        metrics.poison.labels("ingest").inc(applier.stats["poison"] - seen["poison"])
        seen["poison"] = applier.stats["poison"]
        for topic, n in per_topic.items():
            metrics.events_in.labels(topic).inc(n)
            metrics.applied.labels(topic).inc(applied_per_topic.get(topic, 0))
        metrics.observe_batch_totals(len(getattr(update, "deadletters", ())), getattr(update, "late", 0),
                                     len(decisions.new_alert_ids) if decisions else 0, took)
        log.debug("ingest: %d records in %.1f ms", len(records), took * 1000)

    # Redis found behind (lost writes): every grid's risk is computed again, as at start,
    # since the grids whose events were lost may not be touched by what is read again.
    ingest = IngestLoop(settings, applier, observe=observe,
                        on_rewind=lambda: risk.mark(g.id for g in index.grids))

    async def run_ingest() -> None:
        try:
            await ingest.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug, not bad input (that is dead-lettered): stop loudly
            log.exception("ingest loop failed; stopping the worker")
            await app.crash(exc)

    async def handle_command(rec: RawRecord) -> dict[str, object] | None:
        """One command; waits while Redis is away. A command the code raises on is
        dead-lettered by the applier; should even that fail, the agent goes on (the
        command is met again after a restart)."""
        delay = 0.1
        while True:
            try:
                return await commands.handle(rec)
            except Exception as exc:  # the agent must outlive any command
                if not _transient(exc):
                    log.exception("command %s:%d@%d failed; going on", rec.topic,
                                  rec.partition, rec.offset)
                    return None
                log.warning("commands: %s: %s; retrying in %.1fs", type(exc).__name__, exc, delay)
                commands.applied = None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def consume_commands(stream: faust.StreamT) -> None:
        async for events in stream.take_events(100, within=0.02):
            for rec in _records(events):
                outcome = await handle_command(rec)
                metrics.poison.labels("commands").inc(
                    commands.stats["poison"] - seen["command_poison"])
                seen["command_poison"] = commands.stats["poison"]
                if outcome and outcome.get("deadletters"):
                    for dl in outcome["deadletters"]:
                        import orjson

                        await send(topics.DEADLETTER, f"{dl.topic}:{dl.partition}:{dl.offset}".encode(),
                                   orjson.dumps(dl.to_dict()))

    app.agent(app.topic(topics.COMMANDS, **raw), name="gridwatch.commands")(consume_commands)

    @app.task
    async def start_background() -> None:
        # Recompute every grid once at start: a crash may have lost the dirty set.
        grids = [g.id for g in index.grids]
        await risk.refresh(grids)
        app.add_future(run_ingest())
        app.add_future(risk.run())
        app.add_future(forecasts.run())
        if settings.timers:
            app.add_future(timers.run())

    async def health() -> dict[str, object]:
        try:
            redis_ok = bool(await store.redis.ping())
        except Exception:  # noqa: BLE001 - any failure means not healthy
            redis_ok = False
        lag = sum(int(v) for v in _lag().values())
        idle = time.time() - (metrics.last_batch._value.get() or started_at)
        return {"ok": redis_ok and not (lag > 0 and idle > 60), "redis": redis_ok,
                "lag": lag, "seconds_since_last_batch": round(idle, 1),
                "retention_gaps": ingest.accepted_gaps, "rewinds": ingest.rewinds,
                **applier.stats, "command_poison": commands.stats["poison"]}

    def _lag() -> dict[str, int]:
        return ingest.lag()

    started_at = time.time()


    @app.timer(interval=5.0)
    async def sample_lag() -> None:
        for topic, lag in _lag().items():
            metrics.lag.labels(topic).set(lag)

    @app.task
    async def start_http() -> None:
        host, _, port = settings.worker_http.rpartition(":")
        if port and port != "0":
            server = await serve_metrics(metrics, host or "127.0.0.1", int(port), health)
            if server is not None:
                app.add_future(server.serve_forever())

    @app.timer(interval=10.0)
    async def report() -> None:
        log.info("worker: %(batches)d batches, %(applied)d events applied, %(deadletter)d "
                 "dead-lettered, %(alerts)d alerts raised, %(conflicts)d conflicts",
                 applier.stats)

    return app, applier


def run(settings: Settings, *, loglevel: str = "info") -> None:
    """Run the worker until interrupted (``gridwatch worker``)."""
    from faust.worker import Worker

    try:  # uvloop's event loop cuts faust's per-message overhead noticeably
        import mode.loop

        mode.loop.use("uvloop")
    except ImportError:
        log.info("uvloop not installed: running on asyncio's default loop")
    app, _ = build(settings)
    from ..logs import config as log_config

    heap.tune()  # after the grid index, rules and clients exist (gridwatch/heap.py)

    # faust's own setup would colour text for a terminal; ours writes plain text or
    # JSON lines (GRIDWATCH_LOG_FORMAT) to stderr, the same as the gateway.
    Worker(app, loglevel=loglevel, quiet=True,
           logging_config=log_config(settings.log_format, loglevel)).execute_from_commandline()
