"""Every Kafka client gridwatch builds, from the settings, with the shared defaults here.

Three libraries talk to Kafka: kafka-python for the blocking clients (topic
administration, the stack's readiness probe, the CLI's and simulator's producer, the
worker's end-offset lookup), aiokafka for the asyncio ones (the ingest consumer, the
gateway's command producer) and faust for the worker's app. Each builder here takes
:class:`~gridwatch.settings.Settings` and keyword overrides that win over the
defaults; each ``*_options`` function is the pure part, the keyword arguments the
client would get (kafka-python clients connect as they are built).

Shared by all: the bootstrap servers are ``GRIDWATCH_KAFKA`` split on commas, and every
producer uses ``acks=all`` -- with topics on three brokers and min.insync.replicas 2,
that is what makes an acknowledged event survive a broker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..settings import Settings

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

#: Topic administration: a broker that has only just started may answer slowly.
ADMIN_REQUEST_TIMEOUT_MS = 15_000
#: The stack's readiness probe: "not yet" quickly, it is asked again.
PROBE_REQUEST_TIMEOUT_MS = 3_000


def bootstrap(settings: Settings) -> list[str]:
    """The bootstrap servers: ``settings.kafka`` split on commas."""
    return [s.strip() for s in settings.kafka.split(",") if s.strip()]


def _check_acks(overrides: dict[str, Any]) -> None:
    if overrides.get("acks", "all") not in ("all", -1):
        raise ValueError(f"acks={overrides['acks']!r}: gridwatch producers use acks=all")


# ---- kafka-python --------------------------------------------------------------------------


def admin_options(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """The keyword arguments of :func:`admin`."""
    return {
        "bootstrap_servers": bootstrap(settings),
        "client_id": "gridwatch-admin",
        "request_timeout_ms": ADMIN_REQUEST_TIMEOUT_MS,
        **overrides,
    }


def admin(settings: Settings, **overrides: Any) -> KafkaAdminClient:
    """A kafka-python admin client (it connects as it is built).

    Raises:
        kafka.errors.KafkaError: (or another exception) the cluster cannot be reached.
    """
    from kafka import KafkaAdminClient

    return KafkaAdminClient(**admin_options(settings, **overrides))


def probe_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments of :func:`probe`."""
    return admin_options(settings, client_id="gridwatch-stack",
                         request_timeout_ms=PROBE_REQUEST_TIMEOUT_MS)


def probe(settings: Settings) -> KafkaAdminClient:
    """The admin client the local stack asks whether Kafka is ready."""
    from kafka import KafkaAdminClient

    return KafkaAdminClient(**probe_options(settings))


def producer_options(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """The keyword arguments of :func:`producer`.

    Raises:
        ValueError: ``overrides`` ask for weaker acknowledgements than ``acks=all``.
    """
    _check_acks(overrides)
    return {
        "bootstrap_servers": bootstrap(settings),
        "acks": "all",
        "linger_ms": 5,
        "batch_size": 256 * 1024,
        "max_request_size": 4 * 1024 * 1024,
        "compression_type": None,
        "retries": 10,
        "client_id": "gridwatch-producer",
        **overrides,
    }


def producer(settings: Settings, **overrides: Any) -> KafkaProducer:
    """A kafka-python producer tuned for throughput with every write acknowledged.

    ``acks=all`` is not negotiable (see the module's docstring).

    Raises:
        ValueError: ``overrides`` ask for weaker acknowledgements.
    """
    from kafka import KafkaProducer

    return KafkaProducer(**producer_options(settings, **overrides))


def offsets_consumer_options(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """The keyword arguments of :func:`offsets_consumer`."""
    return {"bootstrap_servers": bootstrap(settings), "client_id": "gridwatch-ends",
            **overrides}


def offsets_consumer(settings: Settings, **overrides: Any) -> KafkaConsumer:
    """A kafka-python consumer in no group, to look offsets up (``end_offsets``)."""
    from kafka import KafkaConsumer

    return KafkaConsumer(**offsets_consumer_options(settings, **overrides))


# ---- aiokafka ------------------------------------------------------------------------------


def async_producer_options(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """The keyword arguments of :func:`async_producer`.

    Raises:
        ValueError: ``overrides`` ask for weaker acknowledgements than ``acks=all``.
    """
    _check_acks(overrides)
    return {"bootstrap_servers": bootstrap(settings), "acks": "all",
            "client_id": "gridwatch-producer", **overrides}


def async_producer(settings: Settings, **overrides: Any) -> AIOKafkaProducer:
    """An aiokafka producer with every write acknowledged; not started (``await
    producer.start()`` connects).

    Raises:
        ValueError: ``overrides`` ask for weaker acknowledgements.
    """
    from aiokafka import AIOKafkaProducer

    return AIOKafkaProducer(**async_producer_options(settings, **overrides))


def async_consumer_options(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """The keyword arguments of :func:`async_consumer` (besides its topics)."""
    return {"bootstrap_servers": bootstrap(settings), "client_id": "gridwatch-consumer",
            **overrides}


def async_consumer(settings: Settings, *topics: str, **overrides: Any) -> AIOKafkaConsumer:
    """An aiokafka consumer of ``topics`` (none: the caller subscribes or assigns);
    not started (``await consumer.start()`` connects)."""
    from aiokafka import AIOKafkaConsumer

    return AIOKafkaConsumer(*topics, **async_consumer_options(settings, **overrides))


# ---- faust ---------------------------------------------------------------------------------


def faust_options(settings: Settings) -> dict[str, Any]:
    """How the worker's faust app talks to Kafka: its brokers, consumer group timings
    and producer (``gridwatch.streams.app.make_app`` adds the rest).

    The group's session timeout is short so a worker joins in seconds and a dead one's
    partitions move on quickly.
    """
    return {
        "broker": [f"kafka://{host}" for host in bootstrap(settings)],
        "consumer_auto_offset_reset": "earliest",
        "broker_session_timeout": 10.0,
        "broker_heartbeat_interval": 2.0,
        "broker_commit_every": 2000,
        "broker_commit_interval": 1.0,
        # acks=all: a write counts once min.insync.replicas copies have it (2 of 3 on a
        # replicated cluster), so a broker can fail without losing a forwarded event.
        "producer_acks": -1,
        "producer_linger": 0.005,
    }
