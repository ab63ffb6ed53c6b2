"""Several Kafka brokers and a Redis Cluster: the config the stack writes, the settings that
select them, the client factory (starting them for real is tests/integration/
test_cluster_stack.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis
from gridwatch.schemas.errors import ConfigError, StackError
from gridwatch.streams import topics
from gridwatch.streams.admin import topic_replication
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

from gridwatch import redis_client, stack, stack_kafka, stack_redis
from gridwatch import settings as settings_mod
from gridwatch.cli import build_parser
from tests import aio


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


@pytest.fixture
def s(tmp_path: Path) -> settings_mod.Settings:
    return settings_mod.load({"GRIDWATCH_HOME": str(tmp_path), "GRIDWATCH_KAFKA": "127.0.0.1:19092"})


# ---- Kafka nodes ------------------------------------------------------------------------------


def test_one_node_is_the_single_broker_the_stack_always_ran(s: settings_mod.Settings) -> None:
    paths = stack.Paths(s.home)
    [node] = stack_kafka.plan(s, paths, 1)
    assert (node.id, node.port, node.controller_port, node.name) == (1, 19092, 19093, "kafka")
    assert node.data == paths.kafka_data and node.config == paths.kafka_config
    props = _props(stack_kafka.properties(s, node, [node]))
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    assert "min.insync.replicas" not in props and "default.replication.factor" not in props


def test_three_nodes_get_distinct_ports_and_folders_and_share_the_voters(
        s: settings_mod.Settings) -> None:
    nodes = stack_kafka.plan(s, stack.Paths(s.home), 3)
    assert [n.id for n in nodes] == [1, 2, 3]
    ports = [p for n in nodes for p in (n.port, n.controller_port)]
    assert ports == list(range(19092, 19098))  # derived from GRIDWATCH_KAFKA, no overlap
    assert len({n.data for n in nodes}) == 3 and len({n.name for n in nodes}) == 3
    assert stack_kafka.bootstrap(nodes) == "127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096"
    configs = [_props(stack_kafka.properties(s, n, nodes)) for n in nodes]
    voters = {c["controller.quorum.voters"] for c in configs}
    assert voters == {"1@127.0.0.1:19093,2@127.0.0.1:19095,3@127.0.0.1:19097"}
    for node, props in zip(nodes, configs):
        assert props["node.id"] == str(node.id)
        assert props["process.roles"] == "broker,controller"
        assert props["listeners"] == (f"PLAINTEXT://127.0.0.1:{node.port},"
                                      f"CONTROLLER://127.0.0.1:{node.controller_port}")
        assert props["advertised.listeners"] == f"PLAINTEXT://127.0.0.1:{node.port}"
        assert props["log.dirs"] == str(node.data)
        assert props["default.replication.factor"] == "3"
        assert props["min.insync.replicas"] == "2"
        assert props["offsets.topic.replication.factor"] == "3"
        assert props["transaction.state.log.min.isr"] == "2"


@pytest.mark.parametrize(("brokers", "expected"), [(1, (1, 1)), (2, (2, 1)), (3, (3, 2)),
                                                   (5, (3, 2))])
def test_replication_follows_the_broker_count(brokers: int, expected: tuple[int, int]) -> None:
    assert topics.replication_for(brokers) == expected
    assert topic_replication(settings_mod.Settings(), brokers) == expected


def test_replication_settings_override_and_are_checked_against_the_cluster() -> None:
    env = {"GRIDWATCH_REPLICATION": "2", "GRIDWATCH_MIN_INSYNC": "2"}
    assert topic_replication(settings_mod.load(env), 5) == (2, 2)
    assert topic_replication(settings_mod.load({"GRIDWATCH_REPLICATION": "3"}), 3) == (3, 2)
    with pytest.raises(StackError, match="3 brokers"):
        topic_replication(settings_mod.load({"GRIDWATCH_REPLICATION": "4"}), 3)
    with pytest.raises(StackError, match="exceeds"):
        topic_replication(settings_mod.load({"GRIDWATCH_MIN_INSYNC": "2"}), 1)


def test_no_kafka_without_nodes(s: settings_mod.Settings) -> None:
    with pytest.raises(StackError):
        stack_kafka.plan(s, stack.Paths(s.home), 0)


def test_a_cluster_made_with_another_node_count_is_refused(s: settings_mod.Settings) -> None:
    paths = stack.Paths(s.home)
    for i in range(1, 6):
        (paths.kafka_cluster / f"node-{i}").mkdir(parents=True)
    with pytest.raises(StackError, match="5 nodes"):
        stack_kafka.start(s, paths, stack_kafka.plan(s, paths, 3), log=lambda _: None)


def test_a_restarted_node_keeps_the_cluster_id_of_the_others(s: settings_mod.Settings) -> None:
    nodes = stack_kafka.plan(s, stack.Paths(s.home), 3)
    nodes[1].data.mkdir(parents=True)
    (nodes[1].data / "meta.properties").write_text("version=1\ncluster.id=abcDEF123\nnode.id=2\n")
    assert stack_kafka._shared_cluster_id(nodes) == "abcDEF123"
    (nodes[1].data / "meta.properties").unlink()
    assert stack_kafka._shared_cluster_id(nodes) != "abcDEF123"


def test_cluster_heap_is_smaller_unless_set() -> None:
    unset = settings_mod.load({}).kafka_heap
    assert "-Xmx384m" in stack_kafka.heap(3, unset).split()
    assert "-Xmx1g" in stack_kafka.heap(1, unset).split()
    configured = settings_mod.load({"GRIDWATCH_KAFKA_HEAP": " -Xmx200m "}).kafka_heap
    assert stack_kafka.heap(3, configured) == "-Xmx200m"
    assert stack_kafka.heap(1, configured) == "-Xmx200m"


# ---- Redis Cluster ----------------------------------------------------------------------------


def test_redis_cluster_ports_default_and_derive_from_the_seeds() -> None:
    assert stack_redis.ports(settings_mod.Settings(), 3) == [17001, 17002, 17003]
    seeded = settings_mod.load({"GRIDWATCH_REDIS_CLUSTER": "127.0.0.1:17141,127.0.0.1:17142"})
    assert stack_redis.ports(seeded, 4) == [17141, 17142, 17143, 17144]
    assert stack_redis.ports(seeded, 0) == []
    with pytest.raises(StackError, match="at least 3"):
        stack_redis.ports(seeded, 2)
    with pytest.raises(StackError, match="cluster bus"):
        stack_redis.ports(settings_mod.load({"GRIDWATCH_REDIS_CLUSTER": "h:60000"}), 3)
    assert stack_redis.seeds([17001, 17002]) == "127.0.0.1:17001,127.0.0.1:17002"


def test_redis_cluster_masters_run_in_cluster_mode_with_aof(tmp_path: Path) -> None:
    paths = stack.Paths(tmp_path)
    args = [stack_redis.server_args(paths, port) for port in (17001, 17002)]
    for port, a in zip((17001, 17002), args):
        opts = dict(zip(a[::2], a[1::2]))
        assert opts["--port"] == str(port)
        assert opts["--cluster-enabled"] == "yes"
        assert opts["--appendonly"] == "yes"
        assert opts["--dir"] == str(tmp_path / "redis-cluster" / str(port))
        assert opts["--pidfile"] == str(paths.pidfile(f"redis-cluster-{port}"))
    assert stack_redis.create_args([17001, 17002, 17003]) == [
        "--cluster", "create", "127.0.0.1:17001", "127.0.0.1:17002", "127.0.0.1:17003",
        "--cluster-replicas", "0", "--cluster-yes"]


def test_a_redis_cluster_on_other_ports_is_refused(tmp_path: Path) -> None:
    paths = stack.Paths(tmp_path)
    for port in (17001, 17002, 17003):
        (paths.redis_cluster / str(port)).mkdir(parents=True)
    with pytest.raises(StackError, match="17001"):
        stack_redis.start(paths, [17101, 17102, 17103])


# ---- settings ---------------------------------------------------------------------------------


def test_redis_cluster_setting_parses_seed_lists() -> None:
    assert settings_mod.load({}).redis_cluster == ()
    assert settings_mod.load({"GRIDWATCH_REDIS_CLUSTER": ""}).redis_cluster == ()
    loaded = settings_mod.load({"GRIDWATCH_REDIS_CLUSTER": " a:1 , b.example:7002,,"})
    assert loaded.redis_cluster == ("a:1", "b.example:7002")


@pytest.mark.parametrize("raw", ["a", "a:", ":7000", "a:70000", "a:x", "a:1,b"])
def test_malformed_redis_cluster_settings_are_refused(raw: str) -> None:
    with pytest.raises(ConfigError, match="GRIDWATCH_REDIS_CLUSTER"):
        settings_mod.load({"GRIDWATCH_REDIS_CLUSTER": raw})


def test_replication_settings_default_to_derived_and_reject_negatives() -> None:
    base = settings_mod.load({})
    assert (base.replication, base.min_insync) == (0, 0)
    with pytest.raises(ConfigError, match="GRIDWATCH_REPLICATION"):
        settings_mod.load({"GRIDWATCH_REPLICATION": "-1"})
    with pytest.raises(ConfigError, match="GRIDWATCH_MIN_INSYNC"):
        settings_mod.load({"GRIDWATCH_MIN_INSYNC": "two"})


# ---- client factory ---------------------------------------------------------------------------


def test_without_cluster_seeds_the_factory_gives_single_server_clients() -> None:
    s = settings_mod.load({"GRIDWATCH_REDIS": "redis://127.0.0.1:16999/3"})
    sync = redis_client.sync_client(s, decode_responses=True)
    assert type(sync) is redis.Redis and not redis_client.is_cluster(sync)
    kwargs = sync.connection_pool.connection_kwargs
    assert (kwargs["port"], kwargs["db"], kwargs["decode_responses"]) == (16999, 3, True)
    sync.close()
    client = redis_client.async_client(s)
    assert type(client) is aioredis.Redis
    aio.run(client.aclose())


def test_with_cluster_seeds_the_asyncio_factory_gives_a_cluster_client() -> None:
    s = settings_mod.load({"GRIDWATCH_REDIS": "rediss://user:p%40ss@x:6379/0",
                           "GRIDWATCH_REDIS_CLUSTER": "127.0.0.1:17001,[::1]:17002"})
    assert redis_client.cluster_nodes(s) == [("127.0.0.1", 17001), ("::1", 17002)]
    assert redis_client._url_options(s.redis) == {"username": "user", "password": "p@ss",
                                                  "ssl": True}
    # The asyncio cluster client connects lazily, so it can be built without a server.
    client = redis_client.async_client(settings_mod.load(
        {"GRIDWATCH_REDIS_CLUSTER": "127.0.0.1:17001"}), decode_responses=True)
    assert isinstance(client, AsyncRedisCluster) and redis_client.is_cluster(client)
    aio.run(client.aclose())


# ---- CLI and stopping -------------------------------------------------------------------------


def test_stack_up_takes_the_cluster_sizes() -> None:
    args = build_parser().parse_args(["stack", "up", "--brokers", "3", "--redis-cluster", "3"])
    assert (args.brokers, args.redis_cluster) == (3, 3)
    args = build_parser().parse_args(["stack", "up"])
    assert (args.brokers, args.redis_cluster) == (None, None)


def test_down_stops_every_node_it_started_and_nothing_else(tmp_path: Path) -> None:
    s = settings_mod.load({"GRIDWATCH_HOME": str(tmp_path)})
    paths = stack.Paths(tmp_path)
    paths.run.mkdir(parents=True)
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    ours = {name: subprocess.Popen(sleeper) for name in ("kafka-1", "kafka-2",
                                                         "redis-cluster-17001")}
    other = subprocess.Popen(sleeper)
    try:
        for name, proc in ours.items():
            paths.pidfile(name).write_text(str(proc.pid))
        assert stack_kafka.running_nodes(paths) == 2
        assert stack_redis.running_ports(paths) == [17001]
        lines: list[str] = []
        stack.down(s, log=lines.append)
        for proc in ours.values():
            assert proc.wait(5) is not None
        assert other.poll() is None
        assert not list(paths.run.glob("*.pid"))
        assert f"kafka-2: stopped (pid {ours['kafka-2'].pid})" in lines
    finally:
        for proc in [*ours.values(), other]:
            proc.kill()
            proc.wait()


# ---- producers --------------------------------------------------------------------------------


def test_producers_built_by_the_project_wait_for_all_in_sync_replicas(tmp_path: Path) -> None:
    from gridwatch.streams import clients
    from gridwatch.streams.app import make_app

    app = make_app(settings_mod.load({"GRIDWATCH_HOME": str(tmp_path)}), app_id="gw-acks")
    assert int(app.conf.producer_acks) == -1
    with pytest.raises(ValueError, match="acks=all"):
        clients.producer(settings_mod.Settings(), acks=1)
    with pytest.raises(ValueError, match="acks=all"):
        clients.async_producer(settings_mod.Settings(), acks=0)


def test_up_refuses_one_broker_while_this_stacks_cluster_runs(tmp_path: Path) -> None:
    """Node 1 of the cluster answers on the one-node port: it must not pass for a broker
    someone else started."""
    s = settings_mod.load({"GRIDWATCH_HOME": str(tmp_path)})
    paths = stack.Paths(tmp_path)
    paths.run.mkdir(parents=True)
    (paths.kafka_cluster / "node-1").mkdir(parents=True)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        paths.pidfile("kafka-1").write_text(str(sleeper.pid))
        with pytest.raises(StackError, match="several-broker Kafka"):
            stack.up(s, brokers=1, log=lambda _: None)
        assert not paths.pidfile("redis").exists()  # refused before starting anything
    finally:
        sleeper.kill()
        sleeper.wait()


def test_up_without_sizes_follows_what_runs_then_what_was_exported(tmp_path: Path) -> None:
    paths = stack.Paths(tmp_path)
    one = settings_mod.load({"GRIDWATCH_HOME": str(tmp_path)})
    exported = settings_mod.load({
        "GRIDWATCH_HOME": str(tmp_path),
        "GRIDWATCH_KAFKA": "127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096",
        "GRIDWATCH_REDIS_CLUSTER": "127.0.0.1:17001,127.0.0.1:17002,127.0.0.1:17003"})
    remote = settings_mod.load({"GRIDWATCH_REDIS_CLUSTER": "10.0.0.5:7000,10.0.0.6:7000,"
                                                           "10.0.0.7:7000"})
    assert stack._brokers_wanted(one, paths, None) == 1
    assert stack._masters_wanted(one, paths, None) == 0
    assert stack._brokers_wanted(exported, paths, None) == 3
    assert stack._masters_wanted(exported, paths, None) == 3
    assert stack._masters_wanted(remote, paths, None) == 0  # not ours to start
    assert stack._brokers_wanted(exported, paths, 1) == 1  # said outright, it wins
    # A running cluster keeps its shape whatever the environment says.
    for i in range(1, 6):
        (paths.kafka_cluster / f"node-{i}").mkdir(parents=True)
    paths.run.mkdir(parents=True)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        paths.pidfile("kafka-2").write_text(str(sleeper.pid))
        assert stack._brokers_wanted(one, paths, None) == 5
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_part_that_exits_at_start_is_reported_with_its_last_words(tmp_path: Path) -> None:
    """The error names the reason from the part's own log, not only where the log is."""
    paths = stack.Paths(tmp_path)
    paths.logs.mkdir(parents=True)
    (paths.logs / "kafka-3.log").write_text(
        "[2026-12-05 07:00:00,000] INFO starting\n"
        "[2026-12-05 07:00:01,000] ERROR Exiting Kafka due to fatal exception\n"
        "org.apache.kafka.common.KafkaException: Socket server failed to bind to "
        "127.0.0.1:39196: Address already in use.\n")
    said = stack.exited_at_start(paths, "kafka-3")
    assert said.startswith("kafka-3 exited at start; see ")
    assert "Address already in use" in said and "fatal exception" in said
    assert "INFO starting" not in said
    assert stack.exited_at_start(paths, "kafka-9").endswith("kafka-9.log")


def test_topic_creation_is_asked_again_while_a_new_cluster_settles(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A node that has only just started may name a controller it has no address for
    (kafka-python: UnknownBrokerIdError); creating topics is asked again, with a new
    client, until the cluster answers or the time is up."""
    from gridwatch.streams import admin
    from kafka.errors import UnknownBrokerIdError

    calls: list[int] = []

    def flaky(settings: object, **_: object) -> list[str]:
        calls.append(1)
        if len(calls) < 3:
            raise UnknownBrokerIdError(3)
        return ["gridwatch.alerts"]

    monkeypatch.setattr(admin, "_ensure_topics", flaky)
    monkeypatch.setattr(admin.time, "sleep", lambda s: None)
    assert admin.ensure_topics(object(), brokers=3) == ["gridwatch.alerts"]  # type: ignore[arg-type]
    assert len(calls) == 3
    calls.clear()
    with pytest.raises(UnknownBrokerIdError):
        admin.ensure_topics(object(), brokers=3, settle_s=-1)  # type: ignore[arg-type]
    assert len(calls) == 1
