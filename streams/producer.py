"""Sending events to Kafka with the one producer the CLI, simulator and benchmarks share
(built by :mod:`gridwatch.streams.clients`)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaProducer

from ..schemas.errors import DecodeError
from ..schemas.events import decode
from ..settings import Settings
from . import clients
from .topics import InputTopic, resolve

#: The kafka-python producer every gridwatch command and benchmark sends with
#: (:func:`gridwatch.streams.clients.producer`: ``acks=all``, tuned for throughput).
make_producer = clients.producer


@dataclass
class PublishReport:
    """What ``gridwatch publish`` did."""

    sent: int = 0
    rejected: int = 0
    reasons: list[tuple[int, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"sent": self.sent, "rejected": self.rejected,
                "first_rejections": [{"line": n, "reason": r} for n, r in self.reasons[:20]]}


def publish_file(
    settings: Settings,
    topic_name: str,
    path: Path,
    *,
    progress: Callable[[int], None] | None = None,
) -> PublishReport:
    """Validate each line of a JSON Lines file and send the valid ones.

    Each valid event is sent keyed by its topic's key field (person, camera, station),
    so one source's events stay in order on one partition. Invalid lines are counted
    and reported with their line number and reason, and not sent.

    Raises:
        KeyError: unknown topic name.
        OSError: the file cannot be read.
    """
    topic = resolve(topic_name)
    report = PublishReport()
    producer = clients.producer(settings)
    try:
        with open(path, "rb") as fh:
            for n, line in enumerate(fh, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    event = decode(line, topic.event)
                except DecodeError as exc:
                    report.rejected += 1
                    report.reasons.append((n, exc.reason))
                    continue
                key = str(getattr(event, topic.key_field)).encode()
                producer.send(topic.name, key=key, value=line)
                report.sent += 1
                if progress and report.sent % 10_000 == 0:
                    progress(report.sent)
        producer.flush()
    finally:
        producer.close()
    return report


def send_events(
    producer: KafkaProducer,
    items: Iterable[tuple[InputTopic, dict[str, Any]]],
    *,
    rate: float | None = None,
    progress: Callable[[int], None] | None = None,
    every: int = 10_000,
) -> int:
    """Send (topic, event dict) pairs, at most ``rate`` per second; returns the count."""
    sent = 0
    start = time.monotonic()
    for topic, event in items:
        producer.send(topic.name, key=str(event[topic.key_field]).encode(),
                      value=orjson.dumps(event))
        sent += 1
        if rate:
            ahead = sent / rate - (time.monotonic() - start)
            if ahead > 0.002:
                time.sleep(ahead)
        if progress and sent % every == 0:
            progress(sent)
    producer.flush()
    return sent


def paced(
    items: Iterable[tuple[float, InputTopic, dict[str, Any]]],
    *,
    speed: float | None = None,
) -> Iterator[tuple[InputTopic, dict[str, Any]]]:
    """Release timed events as simulated time passes ``speed`` times faster than real
    time (``None``: as fast as they can be sent)."""
    origin: tuple[float, float] | None = None
    for ts, topic, event in items:
        if speed:
            if origin is None:
                origin = (ts, time.monotonic())
            wait = (ts - origin[0]) / speed - (time.monotonic() - origin[1])
            if wait > 0.002:
                time.sleep(min(wait, 60.0))
        yield topic, event


def stderr_progress(label: str) -> Callable[[int], None]:
    """A progress callback printing ``label: N`` on one refreshed stderr line."""
    started = time.monotonic()

    def show(n: int) -> None:
        rate = n / max(time.monotonic() - started, 1e-6)
        print(f"\r{label}: {n:,} ({rate:,.0f}/s)", end="", file=sys.stderr, flush=True)

    return show
