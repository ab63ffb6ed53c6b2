"""The worker's operational signals: Prometheus metrics and a health endpoint.

A tiny asyncio HTTP server (no extra dependency) answers ``GET /metrics`` in the
Prometheus text format and ``GET /healthz`` with JSON: ``ok`` is false when no batch
was applied for a minute while the consumer lags, or when Redis does not answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

log = logging.getLogger("gridwatch.metrics")


class WorkerMetrics:
    """The counters and gauges a worker exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events_in = Counter("gridwatch_events_in", "Records consumed", ["topic"], registry=r)
        self.applied = Counter("gridwatch_events_applied", "Valid events applied", ["topic"], registry=r)
        self.deadletter = Counter("gridwatch_events_deadlettered", "Records dead-lettered", registry=r)
        self.late = Counter("gridwatch_events_late", "Events past the grace period", registry=r)
        self.alerts = Counter("gridwatch_alerts_raised", "Alerts raised", registry=r)
        self.conflicts = Counter("gridwatch_apply_conflicts", "Batches folded again", registry=r)
        # Records the code raised on, isolated and dead-lettered (ingest: an input
        # record; commands: a command): each one is a bug to look at.
        self.poison = Counter("gridwatch_poison_records", "Records isolated and dead-lettered "
                              "because processing them raised", ["stage"], registry=r)
        self.batch_seconds = Histogram(
            "gridwatch_batch_seconds", "Time to fold, decide and apply one batch", registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))
        self.lag = Gauge("gridwatch_consumer_lag", "Records behind the end of the log",
                         ["topic"], registry=r)
        self.last_batch = Gauge("gridwatch_last_batch_timestamp", "Wall time of the last applied batch",
                                registry=r)

    def observe_batch(self, topic: str, consumed: int, applied: int, deadletter: int, late: int,
                      alerts: int, seconds: float) -> None:
        self.events_in.labels(topic).inc(consumed)
        self.applied.labels(topic).inc(applied)
        self.observe_batch_totals(deadletter, late, alerts, seconds)

    def observe_batch_totals(self, deadletter: int, late: int, alerts: int, seconds: float) -> None:
        self.deadletter.inc(deadletter)
        self.late.inc(late)
        self.alerts.inc(alerts)
        self.batch_seconds.observe(seconds)
        self.last_batch.set(time.time())


async def serve(metrics: WorkerMetrics, host: str, port: int,
                health: Callable[[], Any]) -> asyncio.AbstractServer | None:
    """Serve ``/metrics`` and ``/healthz``.

    A second worker on the same host finds the port taken and takes the next free one
    (up to 20 above), so every worker can be scraped; returns None when none is free.
    """

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                pass
            path = line.split(b" ")[1] if line.count(b" ") >= 2 else b"/"
            if path.startswith(b"/metrics"):
                body, ctype, status = generate_latest(metrics.registry), b"text/plain; version=0.0.4", b"200 OK"
            elif path.startswith(b"/healthz"):
                report = await health()
                body, ctype = orjson.dumps(report), b"application/json"
                status = b"200 OK" if report.get("ok") else b"503 Service Unavailable"
            else:
                body, ctype, status = b"not found\n", b"text/plain", b"404 Not Found"
            writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: " + ctype +
                         b"\r\nContent-Length: " + str(len(body)).encode() +
                         b"\r\nConnection: close\r\n\r\n" + body)
            await writer.drain()
        except (asyncio.TimeoutError, ConnectionError, IndexError):
            pass
        finally:
            writer.close()

    last: OSError | None = None
    for candidate in range(port, port + 21):
        try:
            server = await asyncio.start_server(handle, host, candidate)
        except OSError as exc:
            last = exc
            continue
        log.info("metrics and health on http://%s:%d/metrics and /healthz", host, candidate)
        return server
    log.warning("metrics: cannot listen on %s:%d-%d (%s); running without", host, port,
                port + 20, last)
    return None
