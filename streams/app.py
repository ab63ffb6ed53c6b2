"""The faust app factory: one place that knows how gridwatch talks to Kafka."""

from __future__ import annotations

import faust

from ..settings import Settings


def make_app(settings: Settings, *, app_id: str = "gridwatch-worker") -> faust.App:
    """A faust app for the gridwatch workers.

    Topics are never declared by faust (``gridwatch stack up`` or the compose
    ``topics`` service creates them with the right partition count), there are no
    tables, and the group's session timeout is short so a worker joins in seconds and
    a dead one's partitions move on quickly. Faust's data directory (empty here, as
    the store is in memory) lives under the gridwatch home, not in the working
    directory.
    """
    # Faust makes its data directory without parents when the worker starts.
    datadir = settings.home / "faust" / f"{app_id}-data"
    datadir.parent.mkdir(parents=True, exist_ok=True)
    return faust.App(
        app_id,
        broker=[f"kafka://{host}" for host in settings.kafka.split(",")],
        store="memory://",
        datadir=str(datadir),
        topic_partitions=settings.partitions,
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
        broker_commit_every=2000,
        broker_commit_interval=1.0,
        stream_buffer_maxsize=8192,
        web_enabled=False,
        # acks=all: a write counts once min.insync.replicas copies have it (2 of 3 on a
        # replicated cluster), so a broker can fail without losing a forwarded event.
        producer_acks=-1,
        producer_linger=0.005,
        autodiscover=False,
    )
