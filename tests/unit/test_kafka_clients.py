"""gridwatch.streams.clients: every Kafka client from the settings, with one set of defaults.

No broker runs here: kafka-python clients connect as they are built, so their keyword
arguments are checked; aiokafka clients only connect on ``start()``, so they are built
and looked at.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from gridwatch.agents.consume import IngestLoop, ingest_group
from gridwatch.streams import clients
from gridwatch.streams.app import make_app

from gridwatch import settings as settings_mod
from tests import aio

# Nothing listens on port 1: a client that tried to connect here would fail or hang.
NOWHERE = "127.0.0.1:1, 127.0.0.1:3"
BOOTSTRAP = ["127.0.0.1:1", "127.0.0.1:3"]


@pytest.fixture
def s(tmp_path: Path) -> settings_mod.Settings:
    return settings_mod.load({"GRIDWATCH_KAFKA": NOWHERE, "GRIDWATCH_HOME": str(tmp_path),
                              "GRIDWATCH_GROUP": "district-7", "GRIDWATCH_BATCH": "500"})


def test_the_bootstrap_servers_are_gridwatch_kafka_split_on_commas(
        s: settings_mod.Settings) -> None:
    assert clients.bootstrap(s) == BOOTSTRAP
    assert clients.bootstrap(settings_mod.Settings()) == ["127.0.0.1:19092"]


def test_admin_options_and_their_overrides(s: settings_mod.Settings) -> None:
    assert clients.admin_options(s) == {"bootstrap_servers": BOOTSTRAP,
                                        "client_id": "gridwatch-admin",
                                        "request_timeout_ms": 15_000}
    changed = clients.admin_options(s, client_id="other", request_timeout_ms=30_000)
    assert (changed["client_id"], changed["request_timeout_ms"]) == ("other", 30_000)
    assert clients.probe_options(s) == {"bootstrap_servers": BOOTSTRAP,
                                        "client_id": "gridwatch-stack",
                                        "request_timeout_ms": 3_000}


def test_the_producer_waits_for_all_in_sync_replicas_and_overrides_win(
        s: settings_mod.Settings) -> None:
    options = clients.producer_options(s)
    assert options == {
        "bootstrap_servers": BOOTSTRAP, "acks": "all", "linger_ms": 5,
        "batch_size": 256 * 1024, "max_request_size": 4 * 1024 * 1024,
        "compression_type": None, "retries": 10, "client_id": "gridwatch-producer",
    }
    changed = clients.producer_options(s, linger_ms=0, retries=20, request_timeout_ms=15000)
    assert (changed["linger_ms"], changed["retries"], changed["request_timeout_ms"]) == (
        0, 20, 15000)
    assert clients.producer_options(s, acks=-1)["acks"] == -1


@pytest.mark.parametrize("acks", [0, 1, "1", None])
def test_weaker_acknowledgements_are_refused(s: settings_mod.Settings, acks: Any) -> None:
    for build in (clients.producer_options, clients.producer, clients.async_producer_options,
                  clients.async_producer):
        with pytest.raises(ValueError, match="acks=all"):
            build(s, acks=acks)


def test_the_offsets_consumer_options(s: settings_mod.Settings) -> None:
    assert clients.offsets_consumer_options(s) == {"bootstrap_servers": BOOTSTRAP,
                                                   "client_id": "gridwatch-ends"}
    assert clients.offsets_consumer_options(s, client_id="x")["client_id"] == "x"


def test_the_async_producer_is_built_without_connecting(s: settings_mod.Settings) -> None:
    assert clients.async_producer_options(s) == {"bootstrap_servers": BOOTSTRAP, "acks": "all",
                                                 "client_id": "gridwatch-producer"}

    async def build() -> None:
        producer = clients.async_producer(s, client_id="gridwatch-gateway")
        try:
            assert producer.client._bootstrap_servers == BOOTSTRAP
            assert producer.client._client_id == "gridwatch-gateway"
            assert producer._sender._acks == -1  # aiokafka's spelling of "all"
        finally:
            await producer.stop()

    aio.run(build())


def test_the_async_consumer_is_built_without_connecting(s: settings_mod.Settings) -> None:
    assert clients.async_consumer_options(s) == {"bootstrap_servers": BOOTSTRAP,
                                                 "client_id": "gridwatch-consumer"}

    async def build() -> None:
        consumer = clients.async_consumer(s, "a", "b", group_id="g", max_poll_records=7)
        try:
            assert consumer._client._bootstrap_servers == BOOTSTRAP
            assert consumer._client._client_id == "gridwatch-consumer"
            assert (consumer._group_id, consumer._max_poll_records) == ("g", 7)
            assert consumer._subscription.subscription.topics == {"a", "b"}
        finally:
            await consumer.stop()

    aio.run(build())


def test_the_ingest_loop_consumer_keeps_its_own_options(s: settings_mod.Settings) -> None:
    async def build() -> None:
        consumer = IngestLoop(s, applier=None).make_consumer()  # type: ignore[arg-type]
        try:
            assert consumer._client._bootstrap_servers == BOOTSTRAP
            assert consumer._client._client_id == "district-7-ingest"
            assert consumer._group_id == ingest_group(s)
            assert consumer._enable_auto_commit is False
            assert consumer._auto_offset_reset == "earliest"
            assert consumer._max_poll_records == 500
            assert consumer._session_timeout_ms == 10_000
            assert consumer._max_poll_interval_ms == 300_000
            assert consumer._subscription.subscription is None  # it subscribes itself
        finally:
            await consumer.stop()

    aio.run(build())


def test_the_faust_app_takes_its_brokers_and_acks_from_the_clients_module(
        s: settings_mod.Settings) -> None:
    options = clients.faust_options(s)
    assert options["broker"] == ["kafka://127.0.0.1:1", "kafka://127.0.0.1:3"]
    assert options["producer_acks"] == -1
    app = make_app(s, app_id="gw-clients-test")
    assert [str(url) for url in app.conf.broker] == options["broker"]
    assert int(app.conf.producer_acks) == -1
    assert app.conf.broker_session_timeout == 10.0
    assert app.conf.broker_commit_every == 2000
