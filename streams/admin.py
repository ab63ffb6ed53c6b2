"""Topic administration: create every gridwatch topic explicitly, never by auto-create."""

from __future__ import annotations

import time

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from ..schemas.errors import StackError
from ..settings import Settings
from .topics import all_topics


def ensure_topics(settings: Settings, *, retention_ms: int | None = None) -> list[str]:
    """Create the topics that do not exist yet, with ``settings.partitions`` each.

    Returns:
        The names of the topics created now.

    Raises:
        StackError: an existing topic has another partition count (faust would refuse
            it with ``PartitionsMismatch``), or the broker cannot be reached.
    """
    wanted = all_topics(settings.partitions)
    try:
        admin = KafkaAdminClient(bootstrap_servers=settings.kafka, client_id="gridwatch-admin",
                                 request_timeout_ms=15000)
    except Exception as exc:  # noqa: BLE001 - report any connection failure plainly
        raise StackError(f"cannot reach Kafka at {settings.kafka}: {exc}") from exc
    try:
        existing = set(admin.list_topics())
        missing = [name for name in wanted if name not in existing]
        configs = {"retention.ms": str(retention_ms)} if retention_ms else {}
        if missing:
            try:
                admin.create_topics([
                    NewTopic(name, num_partitions=wanted[name], replication_factor=1,
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


def recreate_topics(settings: Settings, *, timeout: float = 60.0) -> None:
    """Delete every gridwatch topic and create it again: empty topics, offsets from 0.

    For test and benchmark stacks, which start each run from an empty log.

    Raises:
        StackError: the topics could not be created again within ``timeout`` seconds.
    """
    from kafka.errors import UnknownTopicOrPartitionError

    admin = KafkaAdminClient(bootstrap_servers=settings.kafka, client_id="gridwatch-admin")
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
            ensure_topics(settings)
            return
        except Exception as exc:  # noqa: BLE001 - the deletion may still be settling
            if time.monotonic() > deadline:
                raise StackError(f"topics not re-created within {timeout:.0f} s: {exc}") from exc
            time.sleep(0.5)
