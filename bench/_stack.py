"""The benchmarks' own Kafka + Redis, apart from the developer's stack and the tests' stack.

Kafka on 127.0.0.1:19292 (controller 19293), Redis on 127.0.0.1:16579, data under
``.local/bench-stack``. The broker jars are shared with the developer stack (a symlink),
as the integration tests do, so no second Maven run is needed. Each run starts from
empty topics and an empty Redis database.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import redis
from gridwatch.streams.admin import recreate_topics
from gridwatch.streams.topics import all_topics

from gridwatch import settings as settings_mod
from gridwatch import stack

ROOT = Path(__file__).resolve().parents[1]
BENCH_ENV = {
    "GRIDWATCH_KAFKA": "127.0.0.1:19292",
    "GRIDWATCH_REDIS": "redis://127.0.0.1:16579/0",
    "GRIDWATCH_HOME": str(ROOT / ".local" / "bench-stack"),
    "GRIDWATCH_PARTITIONS": "8",
}


def bench_settings(**extra: str) -> settings_mod.Settings:
    return settings_mod.load({**os.environ, **BENCH_ENV, **extra})


def slot_settings(slot: int, **extra: str) -> settings_mod.Settings:
    """The bench stack of ``slot``: 0 is the one above; N > 0 has ports of its own (Kafka
    19292+10N, Redis 16579+N, data under ``.local/bench-stack-N``), so several benches
    (or drills) can run side by side."""
    if not slot:
        return bench_settings(**extra)
    return bench_settings(GRIDWATCH_KAFKA=f"127.0.0.1:{19292 + 10 * slot}",
                          GRIDWATCH_REDIS=f"redis://127.0.0.1:{16579 + slot}/0",
                          GRIDWATCH_HOME=str(ROOT / ".local" / f"bench-stack-{slot}"), **extra)


def share_jars(home: Path) -> None:
    """Point this stack's jar folder at the developer stack's, when that one has them."""
    mine = stack.Paths(home).jars
    theirs = stack.Paths(settings_mod.Settings().home).jars
    if not mine.exists() and theirs.is_dir() and any(theirs.glob("kafka_2.13-*.jar")):
        mine.parent.mkdir(parents=True, exist_ok=True)
        mine.symlink_to(theirs, target_is_directory=True)


def up(s: settings_mod.Settings) -> None:
    """Start (or reuse) the bench stack and wait until both answer."""
    share_jars(s.home)
    stack.up(s, log=lambda msg: print(f"[bench stack] {msg}", file=sys.stderr))


@contextlib.contextmanager
def running(s: settings_mod.Settings, keep: bool = False) -> Iterator[None]:
    """The bench stack up for the block (started or reused), and stopped after it unless
    it was already running or ``keep``."""
    was_running = stack.status(s)["kafka_pid"] is not None
    up(s)
    try:
        yield
    finally:
        if not was_running and not keep:
            stack.down(s, log=lambda msg: print(f"[bench stack] {msg}", file=sys.stderr))


def reset_topics(s: settings_mod.Settings) -> None:
    """Delete and re-create every gridwatch topic: empty topics, offsets from 0."""
    recreate_topics(s)
    wait_for_leaders(s)


def wait_for_leaders(s: settings_mod.Settings, timeout: float = 60.0) -> None:
    """Wait until every partition of every gridwatch topic has a leader."""
    from kafka import KafkaAdminClient

    wanted = all_topics(s.partitions)
    admin = KafkaAdminClient(bootstrap_servers=s.kafka, client_id="gridwatch-bench")
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                metas = admin.describe_topics(list(wanted))
            except Exception:  # noqa: BLE001 - metadata may lag just after creation
                metas = []
            ready = sum(1 for meta in metas for p in meta.get("partitions", [])
                        if p.get("leader_id", p.get("leader", -1)) >= 0)
            if ready == sum(wanted.values()):
                return
            time.sleep(0.2)
        raise RuntimeError("topic partitions still have no leader after "
                           f"{timeout:.0f} s on {s.kafka}")
    finally:
        admin.close()


_HELD: dict[Path, object] = {}


def hold(s: settings_mod.Settings) -> None:
    """Take the stack for this process until it exits; another benchmark process waits.

    Two benchmarks on one stack would empty each other's topics and mix their events, so
    whoever empties the stack first keeps it (an advisory lock on a file in its home).
    """
    path = s.home / "bench.lock"
    if path in _HELD:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a+")  # noqa: SIM115 - held open for the life of the process
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"[bench stack] another benchmark is using {s.kafka}; waiting for it to end",
              file=sys.stderr, flush=True)
        fcntl.flock(fh, fcntl.LOCK_EX)
    _HELD[path] = fh


def cluster_home(s: settings_mod.Settings) -> Path:
    """Where the bench's Redis Cluster keeps its nodes (beside the bench stack's home)."""
    return s.home.with_name(s.home.name + "-redis-cluster")


def with_redis_cluster(s: settings_mod.Settings, masters: int, slot: int = 0
                       ) -> settings_mod.Settings:
    """The bench stack with a local Redis Cluster of ``masters`` beside it (ports
    17301+10*slot on; a home of its own, so the bench stack keeps its shape): the
    settings name the cluster."""
    seeds = (f"127.0.0.1:{17301 + 10 * slot}",)
    home = cluster_home(s)
    got = stack.up(s.with_(redis_cluster=seeds, home=home), redis_cluster=masters,
                   log=lambda msg: print(f"[bench cluster] {msg}", file=sys.stderr))
    return s.with_(redis_cluster=got.redis_cluster)


def clean(s: settings_mod.Settings) -> None:
    """Empty topics and an empty Redis database, or every master of the Redis Cluster
    the settings name (taking the stack for this process)."""
    hold(s)
    reset_topics(s)
    if s.redis_cluster:
        from gridwatch import redis_client

        c = redis_client.sync_client(s)
        try:
            c.flushdb(target_nodes="primaries")
        finally:
            c.close()
        return
    r = redis.Redis.from_url(s.redis)
    try:
        r.flushdb()
    finally:
        r.close()


def start_worker(s: settings_mod.Settings, log_path: Path,
                 extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """One real ``gridwatch worker`` process in its own session (so it can be stopped
    with its children), with the bench stack's settings."""
    env = {**os.environ, **BENCH_ENV, "GRIDWATCH_GROUP": s.group,
           "GRIDWATCH_KAFKA": s.kafka, "GRIDWATCH_REDIS": s.redis, **(extra_env or {})}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([sys.executable, "-m", "gridwatch.cli", "worker",
                                 "--loglevel", "warning"], env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


def stop_worker(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    import signal

    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
