"""Topic administration: create every gridwatch topic explicitly, never by auto-create.

Topics are replicated as the cluster allows: ``GRIDWATCH_REPLICATION`` copies if set,
else min(3, brokers); with three copies a write needs two in sync
(``min.insync.replicas=2``, ``GRIDWATCH_MIN_INSYNC`` to change it), so with producers
on ``acks=all`` one broker can fail without losing an acknowledged event.
"""

from __future__ import annotations

import time

from kafka.admin import NewTopic
from kafka.errors import (
    NodeNotReadyError,
    NotControllerError,
    TopicAlreadyExistsError,
    UnknownBrokerIdError,
)

from ..schemas.errors import StackError
from ..settings import Settings
from . import clients
from .topics import all_topics, replication_for


def topic_replication(settings: Settings, brokers: int) -> tuple[int, int]:
    """(replication factor, min.insync.replicas) of new topics on ``brokers`` brokers.

    Raises:
        StackError: the settings ask for more copies than brokers, or more in-sync
            copies than copies (Kafka would refuse every write).
    """
    rf = settings.replication or replication_for(brokers)[0]
    min_isr = settings.min_insync or (2 if rf >= 3 else 1)
    if rf > brokers:
        raise StackError(f"GRIDWATCH_REPLICATION={rf} but the cluster has {brokers} brokers")
    if min_isr > rf:
        raise StackError(f"GRIDWATCH_MIN_INSYNC={min_isr} exceeds the replication factor {rf}")
    return rf, min_isr


# What a cluster whose nodes have only just started may answer for a few seconds: the
# node asked names a controller it has no address for yet, or one not ready.
_SETTLING = (UnknownBrokerIdError, NodeNotReadyError, NotControllerError)


def ensure_topics(settings: Settings, *, retention_ms: int | None = None,
                  brokers: int | None = None, settle_s: float = 30.0) -> list[str]:
    """:func:`_ensure_topics`, asked again (with a new client, so fresh metadata) while
    the cluster is still settling, for up to ``settle_s`` seconds."""
    deadline = time.monotonic() + settle_s
    while True:
        try:
            return _ensure_topics(settings, retention_ms=retention_ms, brokers=brokers)
        except _SETTLING:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _ensure_topics(settings: Settings, *, retention_ms: int | None = None,
                   brokers: int | None = None) -> list[str]:
    """Create the topics that do not exist yet, with ``settings.partitions`` each,
    replicated as :func:`topic_replication` says for the brokers of the cluster.

    ``brokers``: the size of the cluster when the caller knows it (the local stack
    does); otherwise the brokers registered now are counted, which a node that has only
    just started may not be yet in the metadata of the node asked.

    Returns:
        The names of the topics created now.

    Raises:
        StackError: an existing topic has another partition count (faust would refuse
            it with ``PartitionsMismatch``), or the broker cannot be reached.
    """
    wanted = all_topics(settings.partitions)
    try:
        admin = clients.admin(settings)
    except Exception as exc:  # report any connection failure plainly
        raise StackError(f"cannot reach Kafka at {settings.kafka}: {exc}") from exc
    try:
        existing = set(admin.list_topics())
        missing = [name for name in wanted if name not in existing]
        configs = {"retention.ms": str(retention_ms)} if retention_ms else {}
        if missing:
            if brokers is None:
                brokers = len(admin.describe_cluster().get("brokers") or [None])
            rf, min_isr = topic_replication(settings, brokers)
            if rf > 1:
                configs["min.insync.replicas"] = str(min_isr)
            try:
                admin.create_topics([
                    NewTopic(name, num_partitions=wanted[name], replication_factor=rf,
                             topic_configs=configs)
                    for name in missing
                ])
            except TopicAlreadyExistsError:
                pass  # another process created them between our two calls
        present = [name for name in wanted if name in existing]
        if present:
            for meta in admin.describe_topics(present):
                # kafka-python 2.x names the topic "topic", 3.x "name".
                name = meta.get("name") or meta.get("topic")
                count = len(meta.get("partitions", []))
                if name in wanted and count and count != wanted[name]:
                    raise StackError(
                        f"topic {name} has {count} partitions, settings say {wanted[name]}: "
                        f"set GRIDWATCH_PARTITIONS={count} or `gridwatch stack reset --yes`"
                    )
        return missing
    finally:
        admin.close()


def recreate_topics(settings: Settings, *, timeout: float = 60.0,
                    brokers: int | None = None) -> None:
    """Delete every gridwatch topic and create it again: empty topics, offsets from 0.

    For test and benchmark stacks, which start each run from an empty log.

    Raises:
        StackError: the topics could not be created again within ``timeout`` seconds.
    """
    from kafka.errors import UnknownTopicOrPartitionError

    # kafka-python's default request timeout, which the deletions have always had.
    admin = clients.admin(settings, request_timeout_ms=30_000)
    try:
        names = [n for n in admin.list_topics() if n in all_topics(settings.partitions)]
        if names:
            try:
                admin.delete_topics(names, timeout_ms=int(timeout * 1000))
            except UnknownTopicOrPartitionError:
                pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and set(names) & set(admin.list_topics()):
            time.sleep(0.2)
    finally:
        admin.close()
    deadline = time.monotonic() + timeout
    while True:
        try:
            ensure_topics(settings, brokers=brokers)
            return
        except Exception as exc:  # the deletion may still be settling
            if time.monotonic() > deadline:
                raise StackError(f"topics not re-created within {timeout:.0f} s: {exc}") from exc
            time.sleep(0.5)
