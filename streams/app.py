"""The faust app factory of the gridwatch workers."""

from __future__ import annotations

import faust

from ..settings import Settings
from . import clients


def make_app(settings: Settings, *, app_id: str = "gridwatch-worker") -> faust.App:
    """A faust app for the gridwatch workers.

    Its brokers, group timings and producer (``acks=all``) come from
    :func:`gridwatch.streams.clients.faust_options`. Topics are never declared by faust
    (``gridwatch stack up`` or the compose ``topics`` service creates them with the
    right partition count) and there are no tables. Faust's data directory (empty
    here, as the store is in memory) lives under the gridwatch home, not in the
    working directory.
    """
    # Faust makes its data directory without parents when the worker starts.
    datadir = settings.home / "faust" / f"{app_id}-data"
    datadir.parent.mkdir(parents=True, exist_ok=True)
    return faust.App(
        app_id,
        **clients.faust_options(settings),
        store="memory://",
        datadir=str(datadir),
        topic_partitions=settings.partitions,
        topic_allow_declare=False,
        topic_disable_leader=True,
        stream_buffer_maxsize=8192,
        web_enabled=False,
        autodiscover=False,
    )
