"""Integration fixtures: a real Kafka broker and a real Redis, started by the project.

The tests run their own stack on ports of their own (Kafka 19192, Redis 16479) with
data under ``.local/test-stack``, so they never touch the stack a developer's demo is
using. The session stops the parts of that stack it started (a stack that already ran is
left running). Each test starts from empty topics and an empty Redis database, and runs real
``gridwatch worker`` processes in a consumer group of its own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from gridwatch import settings as settings_mod
from gridwatch import stack, stack_kafka, stack_redis
from gridwatch.stack_proc import read_pid, stop

ROOT = Path(__file__).resolve().parents[2]
# GRIDWATCH_TEST_SLOT=N gives a test run a stack of its own (Kafka 19192+10N, Redis
# 16479+N), so several runs on one machine never reset each other's topics.
SLOT = int(os.environ.get("GRIDWATCH_TEST_SLOT", "0"))
TEST_ENV = {
    "GRIDWATCH_KAFKA": f"127.0.0.1:{19192 + 10 * SLOT}",
    "GRIDWATCH_REDIS": f"redis://127.0.0.1:{16479 + SLOT}/0",
    "GRIDWATCH_HOME": str(ROOT / ".local" / (f"test-stack-{SLOT}" if SLOT else "test-stack")),
    "GRIDWATCH_PARTITIONS": "8",
}


def _share_jars(home: Path) -> None:
    # Reuse the developer stack's downloaded jars when present (saves a Maven run).
    mine = stack.Paths(home).jars
    theirs = stack.Paths(settings_mod.Settings().home).jars
    if not mine.exists() and theirs.is_dir() and any(theirs.glob("kafka_2.13-*.jar")):
        mine.parent.mkdir(parents=True, exist_ok=True)
        mine.symlink_to(theirs, target_is_directory=True)


def _stack_log(msg: str) -> None:
    print(f"[test stack] {msg}", file=sys.stderr)


def running_parts(s: settings_mod.Settings) -> set[str]:
    """The parts of the stack (``kafka``, ``redis``) that run now: a live pid file of this
    stack's home, or something answering on the part's port (another stack's, left alone)."""
    paths = stack.Paths(s.home)
    host = s.kafka.split(",")[0].rsplit(":", 1)[0]
    parts = set()
    if (read_pid(paths.pidfile("kafka")) or stack_kafka.running_nodes(paths)
            or stack.port_open(host, s.kafka_port)):
        parts.add("kafka")
    if (read_pid(paths.pidfile("redis")) or stack_redis.running_ports(paths)
            or stack.port_open("127.0.0.1", s.redis_port)):
        parts.add("redis")
    return parts


def stop_parts(s: settings_mod.Settings, parts: set[str],
               log: Callable[[str], None] = _stack_log) -> None:
    """Stop the processes of ``parts`` that this stack's pid files name (a drill may have
    restarted them since), as ``stack.down`` does for both; nothing without a pid file."""
    paths = stack.Paths(s.home)
    groups = {"kafka": ["kafka", *(p.stem for p in paths.pidfiles("kafka"))],
              "redis": ["redis", *(p.stem for p in paths.pidfiles("redis-cluster"))]}
    for part in sorted(parts):
        pids = {name: read_pid(paths.pidfile(name)) for name in groups[part]}
        stop([pid for pid in pids.values() if pid])  # a cluster's nodes together
        for name, pid in pids.items():
            if pid:
                log(f"{name}: stopped (pid {pid}), started by this session")
            paths.pidfile(name).unlink(missing_ok=True)


@pytest.fixture(scope="session")
def stack_settings() -> Iterator[settings_mod.Settings]:
    """The test stack, up for the whole session; at its end the parts this session
    started are stopped, and a stack that already ran (a developer's reuse) is left."""
    env = {**os.environ, **TEST_ENV}
    s = settings_mod.load(env)
    _share_jars(s.home)
    before = running_parts(s)
    try:
        stack.up(s, log=_stack_log)
        yield s
    finally:
        stop_parts(s, {"kafka", "redis"} - before)


def _reset_topics(s: settings_mod.Settings) -> None:
    from gridwatch.streams.admin import recreate_topics

    recreate_topics(s)


@pytest.fixture
def clean_stack(stack_settings: settings_mod.Settings) -> Iterator[settings_mod.Settings]:
    """Empty topics, an empty Redis database and a consumer group of the test's own."""
    _reset_topics(stack_settings)
    r = redis.Redis.from_url(stack_settings.redis)
    r.flushdb()
    r.close()
    yield stack_settings.with_(group=f"gridwatch-test-{uuid.uuid4().hex[:8]}")


class Workers:
    """Real ``gridwatch worker`` processes for one test."""

    def __init__(self, s: settings_mod.Settings, logdir: Path) -> None:
        self.settings = s
        self.logdir = logdir
        self.procs: list[subprocess.Popen[bytes]] = []

    def env(self) -> dict[str, str]:
        s = self.settings
        return {**os.environ, **TEST_ENV, "GRIDWATCH_GROUP": s.group,
                "GRIDWATCH_KAFKA": s.kafka, "GRIDWATCH_REDIS": s.redis,
                "GRIDWATCH_REDIS_CLUSTER": ",".join(s.redis_cluster)}

    def start(self) -> subprocess.Popen[bytes]:
        n = len(self.procs)
        with open(self.logdir / f"worker-{n}.log", "ab") as log:  # the child keeps its copy
            proc = subprocess.Popen([sys.executable, "-m", "gridwatch.cli", "worker"],
                                    env=self.env(), stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.procs.append(proc)
        return proc

    def kill9(self, proc: subprocess.Popen[bytes]) -> None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture
def workers(clean_stack: settings_mod.Settings, tmp_path: Path) -> Iterator[Workers]:
    w = Workers(clean_stack, tmp_path)
    yield w
    w.stop_all()


def wait_until(check: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Poll ``check`` until it is true, or fail the test saying ``what`` never happened."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


# ---- a Redis Cluster beside the test stack ---------------------------------------------

# Three masters on ports of the slot's own (17201+10N.., cluster bus +10000), apart from
# those of test_cluster_stack.py (17101+10N..), with a home of their own: the test stack's
# home stays without a cluster, so its `stack.up` keeps its shape.
CLUSTER_PORT = 17201 + 10 * SLOT


@pytest.fixture(scope="session")
def redis_cluster_session(
        stack_settings: settings_mod.Settings) -> Iterator[settings_mod.Settings]:
    """A real 3-master Redis Cluster for the session (the test stack's Kafka and single
    Redis keep running beside it); its masters are stopped at the end of the session."""
    from gridwatch import stack_redis

    seeds = (f"127.0.0.1:{CLUSTER_PORT}",)
    home = stack_settings.home.with_name(stack_settings.home.name + "-redis-cluster")
    # The Kafka and single Redis of the test stack answer already: `up` leaves them alone.
    s = stack.up(stack_settings.with_(redis_cluster=seeds, home=home), redis_cluster=3,
                 log=lambda msg: print(f"[test cluster] {msg}", file=sys.stderr))
    assert len(s.redis_cluster) == 3
    yield s.with_(home=stack_settings.home)  # the command keys live in the stack's home
    paths = stack.Paths(home)
    names = [p.stem for p in paths.pidfiles("redis-cluster")]
    stack.stop([pid for pid in (stack.read_pid(paths.pidfile(n)) for n in names) if pid])
    for name in names:
        paths.pidfile(name).unlink(missing_ok=True)
    assert not stack_redis.running_ports(paths)


@pytest.fixture
def redis_cluster(redis_cluster_session: settings_mod.Settings,
                  stack_settings: settings_mod.Settings) -> Iterator[settings_mod.Settings]:
    """The session's cluster with every master flushed, and the single Redis too (tests
    compare the two); the settings name the cluster in ``redis_cluster``."""
    from redis.cluster import RedisCluster

    from gridwatch import redis_client

    client = redis_client.sync_client(redis_cluster_session)
    client.flushdb(target_nodes=RedisCluster.PRIMARIES)
    client.close()
    single = redis.Redis.from_url(stack_settings.redis)
    single.flushdb()
    single.close()
    yield redis_cluster_session
