"""A real local Redis Cluster (3 masters) and a real 3-node KRaft Kafka, started by the stack.

One stack for the module, on ports of its own derived from ``GRIDWATCH_TEST_SLOT``
(Kafka 29192+10N.., Redis 16579+N, Redis Cluster 17101+10N..), all below Linux's ephemeral
range (32768-60999, where a client connection's own port could take a node's before it
binds), with data under
``.local/test-cluster[-N]`` wiped first: the other integration tests' stack is untouched.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from gridwatch.schemas.errors import StackError
from gridwatch.streams import clients
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType
from redis.cluster import RedisCluster

from gridwatch import keys, redis_client, stack, stack_redis
from gridwatch import settings as settings_mod
from tests import aio

from .conftest import ROOT, Workers, _share_jars, wait_until

pytestmark = pytest.mark.integration

SLOT = int(os.environ.get("GRIDWATCH_TEST_SLOT", "0"))
ENV = {
    "GRIDWATCH_KAFKA": f"127.0.0.1:{29192 + 10 * SLOT}",
    "GRIDWATCH_REDIS": f"redis://127.0.0.1:{16579 + SLOT}/0",
    "GRIDWATCH_REDIS_CLUSTER": f"127.0.0.1:{17101 + 10 * SLOT}",
    "GRIDWATCH_HOME": str(ROOT / ".local" / (f"test-cluster-{SLOT}" if SLOT else "test-cluster")),
    "GRIDWATCH_PARTITIONS": "2",
}
TOPIC = "gridwatch.alerts"


def _log(msg: str) -> None:
    print(f"[cluster stack] {msg}", file=sys.stderr)


@pytest.fixture(scope="module")
def cluster() -> Iterator[settings_mod.Settings]:
    """Three Kafka nodes and three Redis masters from empty data; all stopped at the end."""
    base = settings_mod.load({**os.environ, **ENV})
    stack.reset(base, log=_log)
    _share_jars(base.home)
    started = time.monotonic()
    s = stack.up(base, brokers=3, redis_cluster=3, log=_log, timeout=180)
    _log(f"up in {time.monotonic() - started:.1f} s")
    yield s
    stack.down(base, log=_log)
    st = stack.status(base)
    assert st["kafka_pid"] is None and st["redis_pid"] is None
    assert not stack_redis.running_ports(stack.Paths(base.home))


# ---- Redis Cluster ----------------------------------------------------------------------------


def test_redis_cluster_serves_keys_across_slots_and_scripts_within_one(
        cluster: settings_mod.Settings) -> None:
    ports = [int(node.rsplit(":", 1)[1]) for node in cluster.redis_cluster]
    assert len(ports) == 3
    for port in ports:
        info = stack_redis.cluster_info(port)
        assert info["cluster_state"] == "ok"
        assert info["cluster_slots_assigned"] == "16384"
        assert info["cluster_known_nodes"] == "3"
    assert stack.status(cluster)["redis_cluster_up"] is True

    client = redis_client.sync_client(cluster, decode_responses=True)
    assert isinstance(client, RedisCluster)
    try:
        keys = [f"grid:{i}:count" for i in range(300)]
        pipe = client.pipeline()  # a cluster pipeline splits the batch by node
        for i, key in enumerate(keys):
            pipe.set(key, i)
        pipe.execute()
        assert [client.get(k) for k in keys] == [str(i) for i in range(300)]
        owners = {client.get_node_from_key(k).port for k in keys}
        assert owners == set(ports)  # the keys really live on all three masters
        per_master = [stack_redis_dbsize(p) for p in ports]
        assert sum(per_master) == 300 and min(per_master) > 0

        # A script touching two keys with one hash tag runs on the master of that slot.
        script = client.register_script(
            "local n = redis.call('INCRBY', KEYS[1], ARGV[1]); "
            "if tonumber(ARGV[2]) > tonumber(redis.call('GET', KEYS[2]) or '-1') then "
            "redis.call('SET', KEYS[2], ARGV[2]) end; return n")
        tagged = ["{grid:7}:count", "{grid:7}:offset"]
        assert client.keyslot(tagged[0]) == client.keyslot(tagged[1])
        assert script(keys=tagged, args=[5, 10]) == 5
        assert script(keys=tagged, args=[5, 3]) == 10  # an older offset is not written back
        assert client.get(tagged[1]) == "10"
        # Keys of two slots are refused: cluster mode is real, not a single server.
        split = ["grid:1:count", "grid:2:count"]
        assert client.keyslot(split[0]) != client.keyslot(split[1])
        with pytest.raises(Exception, match="(?i)slot"):
            script(keys=split, args=[1, 1])
    finally:
        client.close()

    async def through_asyncio() -> None:
        aclient = redis_client.async_client(cluster, decode_responses=True)
        assert redis_client.is_cluster(aclient)
        try:
            got = await asyncio.gather(*(aclient.get(f"grid:{i}:count") for i in range(300)))
            assert got == [str(i) for i in range(300)]
            for i in range(50):
                await aclient.hset(f"{{grid:{i}}}:cells", mapping={"a": i, "b": -i})
            assert await aclient.hgetall("{grid:49}:cells") == {"a": "49", "b": "-49"}
            ascript = aclient.register_script(
                "return redis.call('INCRBY', KEYS[1], ARGV[1]) + #KEYS")
            assert await ascript(keys=["{grid:7}:count", "{grid:7}:offset"], args=[1]) == 13
        finally:
            await aclient.aclose()

    aio.run(through_asyncio())


def stack_redis_dbsize(port: int) -> int:
    import redis

    single = redis.Redis(host="127.0.0.1", port=port)
    try:
        return int(single.dbsize())
    finally:
        single.close()


# ---- Kafka, three nodes -----------------------------------------------------------------------


def _admin(s: settings_mod.Settings) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=s.kafka.split(","), client_id="test-cluster")


def _produce(s: settings_mod.Settings, start: int, count: int) -> None:
    producer = clients.producer(s, retries=20, request_timeout_ms=15000)
    assert producer.config["acks"] in (-1, "all")
    try:
        futures = [producer.send(TOPIC, key=str(i % 7).encode(), value=f"event-{i}".encode())
                   for i in range(start, start + count)]
        producer.flush(timeout=60)
        for future in futures:
            meta = future.get(timeout=30)  # raises if a write was not acknowledged by all ISR
            assert meta.topic == TOPIC
    finally:
        producer.close()


def _consume_all(s: settings_mod.Settings, expected: int, timeout: float = 60) -> list[str]:
    consumer = KafkaConsumer(bootstrap_servers=s.kafka.split(","), group_id=None,
                             enable_auto_commit=False, client_id="test-cluster-reader")
    try:
        parts = [TopicPartition(TOPIC, p) for p in range(s.partitions)]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while len(seen) < expected and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=1000).values():
                seen += [r.value.decode() for r in records]
        return seen
    finally:
        consumer.close()


def _isr_sizes(s: settings_mod.Settings) -> list[int]:
    admin = _admin(s)
    try:
        [meta] = admin.describe_topics([TOPIC])
        return [len(p["isr_nodes"]) for p in meta["partitions"]]
    finally:
        admin.close()


def test_three_brokers_keep_serving_with_one_down(cluster: settings_mod.Settings) -> None:
    st = stack.status(cluster)
    nodes = st["kafka_nodes"]
    assert isinstance(nodes, dict) and len(nodes) == 3 and all(nodes.values())
    admin = _admin(cluster)
    try:
        assert len(admin.describe_cluster()["brokers"]) == 3
        # Under load the new nodes may take a moment to share the topics' metadata.
        wait_until(lambda: len([n for n in admin.list_topics() if n.startswith("gridwatch.")]) >= 8,
                   timeout=60, what="the topics in every broker's metadata")
        names = [n for n in admin.list_topics() if n.startswith("gridwatch.")]
        gridwatch_topics = admin.describe_topics(names)
        assert len(gridwatch_topics) >= 8
        for meta in gridwatch_topics:
            assert len(meta["partitions"]) == cluster.partitions
            for part in meta["partitions"]:
                assert sorted(part["replica_nodes"]) == [1, 2, 3], meta["name"]
        configs = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, m["name"]) for m in gridwatch_topics])
        for name, values in configs["topic"].items():
            assert values["min.insync.replicas"]["value"] == "2", name
    finally:
        admin.close()

    _produce(cluster, 0, 300)
    assert sorted(_consume_all(cluster, 300)) == sorted(f"event-{i}" for i in range(300))

    stack.stop_broker(cluster, 3, log=_log)
    after = stack.status(cluster)["kafka_nodes"]
    assert isinstance(after, dict) and list(after.values())[2] is None
    wait_until(lambda: max(_isr_sizes(cluster)) == 2, timeout=60,
               what="node 3 to leave the in-sync replicas")
    # Two of three copies in sync still meet min.insync.replicas=2: acks=all writes go on.
    _produce(cluster, 300, 300)
    assert sorted(_consume_all(cluster, 600)) == sorted(f"event-{i}" for i in range(600))

    # `up` again (no sizes given) keeps the shape that runs and restarts the missing node.
    stack.up(cluster, log=_log, timeout=120)
    back = stack.status(cluster)["kafka_nodes"]
    assert isinstance(back, dict) and all(back.values())
    wait_until(lambda: min(_isr_sizes(cluster)) == 3, timeout=90,
               what="node 3 to catch up and rejoin the in-sync replicas")
    assert len(_consume_all(cluster, 600)) == 600


def test_stack_up_is_idempotent_on_a_running_cluster(cluster: settings_mod.Settings) -> None:
    before = stack.status(cluster)
    lines: list[str] = []
    again = stack.up(cluster, log=lines.append)
    assert again.kafka == cluster.kafka and again.redis_cluster == cluster.redis_cluster
    assert not [line for line in lines if "starting" in line]
    after = stack.status(cluster)
    assert after["kafka_nodes"] == before["kafka_nodes"]
    assert after["redis_cluster_pids"] == before["redis_cluster_pids"]
    assert Path(str(after["home"])) == cluster.home
    assert orjson.loads(orjson.dumps(after))["redis_cluster_up"] is True  # `status --json`
    with pytest.raises(StackError, match="several-broker"):
        stack.up(cluster, brokers=1, log=lines.append)


# ---- a worker on three brokers, one of them stopped and brought back ----------------------


class _ClusterWorkers(Workers):
    """Workers on the module's three brokers and its single Redis (the apply is one
    script over many slots, which needs one Redis), timers off."""

    def env(self) -> dict[str, str]:
        s = self.settings
        return {**os.environ, "GRIDWATCH_KAFKA": s.kafka, "GRIDWATCH_REDIS": s.redis,
                "GRIDWATCH_REDIS_CLUSTER": "", "GRIDWATCH_HOME": str(s.home),
                "GRIDWATCH_PARTITIONS": str(s.partitions), "GRIDWATCH_GROUP": s.group,
                "GRIDWATCH_TIMERS": "0", "GRIDWATCH_WORKER_HTTP": "0"}


def _city_messages(n: int) -> list[tuple[str, bytes, bytes]]:
    from datetime import datetime

    from gridwatch.streams.simulate import CST, CityDay, Simulator

    from gridwatch.city import load_city

    sim = Simulator(load_city(settings_mod.Settings().city), seed=5,
                    start=datetime(2024, 3, 4, tzinfo=CST),
                    profile=CityDay(scans=n, loiter_reports=n // 50, late_share=0.01))
    out = []
    for _, topic, event in sim.stream(days=1.0):
        out.append((topic.name, str(event[topic.key_field]).encode(), orjson.dumps(event)))
    return out


def _applied_and_quiet(r: object, total: int) -> None:
    from gridwatch import keys as keys_mod
    from gridwatch import store as store_mod

    def applied() -> int:
        sm = store_mod.summary(r)  # type: ignore[arg-type]
        return sum(sm[k] for k in ("checkpoint_scans", "loiter_reports", "station_tickets",
                                   "deadletter", "duplicates"))

    wait_until(lambda: applied() >= total, timeout=300, what=f"{total} messages applied")
    looks: list[object] = []

    def quiet() -> bool:
        looks.append((tuple(sorted(r.hgetall(keys_mod.OFFSETS).items())),  # type: ignore[attr-defined]
                      applied(), r.scard(keys_mod.RISK_DIRTY)))  # type: ignore[attr-defined]
        time.sleep(0.75)
        return len(looks) >= 3 and looks[-1] == looks[-2] == looks[-3] and looks[-1][2] == 0  # type: ignore[index]

    wait_until(quiet, timeout=120, what="the worker to go quiet")
    assert applied() == total


def test_a_broker_stopped_and_brought_back_mid_run_loses_nothing_and_changes_nothing(
        cluster: settings_mod.Settings, tmp_path: Path) -> None:
    """On three brokers (replication 3, min in-sync 2, acks=all), a worker applies a
    simulated city's events while one broker is stopped and started again: every message
    is applied once and the state equals a clean pass's, key for key."""
    import uuid

    import redis as redis_mod

    from gridwatch import store as store_mod

    messages = _city_messages(15_000)
    producer = clients.producer(cluster, retries=20, request_timeout_ms=15000)
    try:
        for topic, key, value in messages:
            producer.send(topic, key=key, value=value)
        producer.flush(timeout=120)
    finally:
        producer.close()
    r = redis_mod.Redis.from_url(cluster.redis, decode_responses=True)
    try:
        dumps = []
        for attempt in ("clean", "broker stopped"):
            r.flushdb()
            s = cluster.with_(group=f"gridwatch-drill-{uuid.uuid4().hex[:8]}")
            (tmp_path / attempt).mkdir()
            workers = _ClusterWorkers(s, tmp_path / attempt)
            try:
                if attempt == "broker stopped":
                    # down before the worker starts, back once it has applied a fifth: the
                    # worker reads through the leaders' failover and the node's return
                    stack.stop_broker(cluster, 3, log=_log)
                workers.start()
                if attempt == "broker stopped":
                    wait_until(lambda: int(r.hget(keys.SUMMARY, "checkpoint_scans") or 0)
                               > len(messages) // 5, timeout=300, what="a fifth applied")
                    stack.up(cluster, log=_log, timeout=120)
                    assert all(stack.status(cluster)["kafka_nodes"].values())  # type: ignore[union-attr]
                _applied_and_quiet(r, len(messages))
                dumps.append(store_mod.dump(r))
            finally:
                workers.stop_all()
        clean, drilled = dumps
        assert drilled.keys() == clean.keys()
        assert [k for k in clean if drilled[k] != clean[k]] == []
        assert any(k.startswith(keys.alert("")) for k in clean)
    finally:
        r.flushdb()
        r.close()
