"""A test session stops the Kafka and Redis it started, and leaves a stack that already ran.

A small pytest session is run in a subprocess on a stack slot of its own
(``GRIDWATCH_TEST_SLOT`` 60 + this run's slot), with the real ``stack_settings`` fixture:
once on a stopped stack (afterwards its ports must be free), once on a stack started
beforehand (afterwards the same processes must still run).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from gridwatch import settings as settings_mod
from gridwatch import stack
from gridwatch.stack_proc import read_pid

from .conftest import ROOT, SLOT, _share_jars

pytestmark = pytest.mark.integration

INNER = 60 + SLOT
INNER_ENV = {
    "GRIDWATCH_KAFKA": f"127.0.0.1:{19192 + 10 * INNER}",
    "GRIDWATCH_REDIS": f"redis://127.0.0.1:{16479 + INNER}/0",
    "GRIDWATCH_HOME": str(ROOT / ".local" / f"test-stack-{INNER}"),
    "GRIDWATCH_PARTITIONS": "8",
}
INNER_CONFTEST = "from tests.integration.conftest import stack_settings  # noqa: F401\n"
INNER_TEST = '''
import redis


def test_the_stack_answers(stack_settings):
    assert redis.Redis.from_url(stack_settings.redis).ping()
'''


def _quiet(_: str) -> None:
    return None


def _inner_session(tmp_path: Path) -> str:
    """Run the one-test session; returns its output (it must pass)."""
    folder = tmp_path / "session"
    folder.mkdir(parents=True)
    (folder / "conftest.py").write_text(INNER_CONFTEST)
    (folder / "test_inner.py").write_text(INNER_TEST)
    env = {**os.environ, "GRIDWATCH_TEST_SLOT": str(INNER), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                           "--rootdir", str(folder), str(folder)],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=240,
                          check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    return out


def _ports_open(s: settings_mod.Settings) -> list[int]:
    return [port for port in (s.kafka_port, s.kafka_port + 1, s.redis_port)
            if stack.port_open("127.0.0.1", port)]


def test_a_session_stops_the_stack_it_started_and_leaves_one_that_ran(tmp_path: Path) -> None:
    s = settings_mod.load({**os.environ, **INNER_ENV})
    stack.down(s, log=_quiet)  # what an interrupted earlier run may have left
    assert _ports_open(s) == [], "the inner slot's ports are taken by something else"
    _share_jars(s.home)
    try:
        out = _inner_session(tmp_path / "cold")
        assert "kafka: stopped" in out and "redis: stopped" in out, out[-3000:]
        assert _ports_open(s) == [], out[-3000:]
        paths = stack.Paths(s.home)
        assert read_pid(paths.pidfile("kafka")) is None
        assert read_pid(paths.pidfile("redis")) is None

        # A stack that already runs (a developer's reuse) is used and left running.
        stack.up(s, log=_quiet)
        pids = (read_pid(paths.pidfile("kafka")), read_pid(paths.pidfile("redis")))
        assert all(pids)
        out = _inner_session(tmp_path / "warm")
        assert "stopped" not in out, out[-3000:]
        assert (read_pid(paths.pidfile("kafka")), read_pid(paths.pidfile("redis"))) == pids
        r = redis.Redis.from_url(s.redis)
        try:
            assert r.ping()
        finally:
            r.close()
    finally:
        stack.down(s, log=_quiet)
    assert _ports_open(s) == []
