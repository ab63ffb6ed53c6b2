"""The test session's stack decisions: what ran before it, and stopping only what it started.

No server: sleeping processes stand in for Kafka and Redis (their pid files written as
``stack.up`` writes them), a listening socket for a stack somebody else started.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gridwatch import settings as settings_mod
from gridwatch import stack
from tests.integration.conftest import running_parts, stop_parts

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def slot(tmp_path: Path) -> Iterator[settings_mod.Settings]:
    """Settings on two ports nothing listens on, with a home of the test's own."""
    s = settings_mod.load({"GRIDWATCH_HOME": str(tmp_path),
                           "GRIDWATCH_KAFKA": f"127.0.0.1:{_free_port()}",
                           "GRIDWATCH_REDIS": f"redis://127.0.0.1:{_free_port()}/0"})
    stack.Paths(tmp_path).run.mkdir(parents=True)
    yield s


def _spawn(s: settings_mod.Settings, *names: str) -> dict[str, subprocess.Popen[bytes]]:
    procs = {name: subprocess.Popen(SLEEPER) for name in names}
    for name, proc in procs.items():
        stack.Paths(s.home).pidfile(name).write_text(str(proc.pid))
    return procs


def test_nothing_runs_on_a_new_home_so_the_session_owns_both_parts(
        slot: settings_mod.Settings) -> None:
    assert running_parts(slot) == set()


def test_a_live_pid_file_or_an_answering_port_counts_as_already_running(
        slot: settings_mod.Settings) -> None:
    procs = _spawn(slot, "redis")
    listener = socket.socket()
    try:
        assert running_parts(slot) == {"redis"}
        listener.bind(("127.0.0.1", slot.kafka_port))
        listener.listen()
        assert running_parts(slot) == {"kafka", "redis"}  # a stranger's broker: not ours
        procs["redis"].kill()
        procs["redis"].wait()
        assert running_parts(slot) == {"kafka"}  # a dead pid file is not a running part
    finally:
        listener.close()
        for proc in procs.values():
            proc.kill()
            proc.wait()


def test_stopping_the_started_part_leaves_the_other_running(
        slot: settings_mod.Settings) -> None:
    procs = _spawn(slot, "kafka", "redis")
    paths = stack.Paths(slot.home)
    try:
        lines: list[str] = []
        stop_parts(slot, {"kafka"}, log=lines.append)
        assert procs["kafka"].wait(5) is not None
        assert procs["redis"].poll() is None
        assert not paths.pidfile("kafka").exists() and paths.pidfile("redis").exists()
        assert lines == [f"kafka: stopped (pid {procs['kafka'].pid}), started by this session"]
        assert running_parts(slot) == {"redis"}
        stop_parts(slot, {"redis"}, log=lines.append)
        assert procs["redis"].wait(5) is not None
        assert running_parts(slot) == set()
    finally:
        for proc in procs.values():
            proc.kill()
            proc.wait()


def test_a_cluster_started_under_the_session_is_stopped_with_its_part(
        slot: settings_mod.Settings) -> None:
    procs = _spawn(slot, "kafka-1", "kafka-2", "redis-cluster-17001")
    try:
        assert running_parts(slot) == {"kafka", "redis"}
        stop_parts(slot, {"kafka", "redis"}, log=lambda _: None)
        for proc in procs.values():
            assert proc.wait(5) is not None
        assert not list(stack.Paths(slot.home).run.glob("*.pid"))
    finally:
        for proc in procs.values():
            proc.kill()
            proc.wait()


def test_stopping_nothing_touches_nothing(slot: settings_mod.Settings) -> None:
    procs = _spawn(slot, "kafka", "redis")
    try:
        stop_parts(slot, set(), log=lambda _: None)
        assert all(proc.poll() is None for proc in procs.values())
        assert running_parts(slot) == {"kafka", "redis"}
    finally:
        for proc in procs.values():
            proc.kill()
            proc.wait()
