"""``gridwatch gateway --procs 2`` against the real Redis and Kafka: two processes on one
port, each with its own channel readers; a child killed is started again and its clients
resume on either process, losing and repeating nothing; SIGTERM stops them all.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis
from gridwatch.ws.auth import User

from gridwatch import settings as settings_mod

from .test_gateway import Client, GatewayProcess, put_alert, run_async, session_for, until

pytestmark = pytest.mark.integration

STARTED = re.compile(rb"gateway process (\d+) started \(pid (\d+)\)")


class Procs(GatewayProcess):
    """``python -m gridwatch.cli gateway --procs 2`` on a free port."""

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "gridwatch.cli", "gateway",
                                      "--procs", "2"], env=self.env,
                                     stdout=self.log.open("ab"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if {0, 1} <= set(health(self)):
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"gateway did not start: {self.log.read_text()[-2000:]}")

    def children(self) -> dict[int, int]:
        """The pid of each child, as the parent last logged it."""
        return {int(i): int(pid) for i, pid in STARTED.findall(self.log.read_bytes())}


def health(g: GatewayProcess, tries: int = 20) -> dict[int, int]:
    """Open sockets per process, from ``tries`` /healthz requests (each a new connection,
    which the kernel hands to either process)."""
    seen: dict[int, int] = {}
    for _ in range(tries):
        try:
            body = orjson.loads(urllib.request.urlopen(f"{g.origin}/healthz", timeout=2).read())
        except OSError:
            continue
        seen[body["proc"]] = body["clients"]
    return seen


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def procs(stack_settings: settings_mod.Settings,
          tmp_path: Path) -> Iterator[tuple[Procs, redis.Redis]]:
    r = redis.Redis.from_url(stack_settings.redis)
    r.flushdb()
    g = Procs(stack_settings, tmp_path)
    g.start()
    try:
        yield g, r
    finally:
        g.stop()
        r.close()


def test_two_processes_share_the_port_restart_a_dead_one_and_resume_across(
        procs: tuple[Procs, redis.Redis]) -> None:
    g, r = procs
    # Five sockets per officer: under the per-process cap even if all land on one process.
    sessions = [session_for(g, r, User(f"o{i}", "duty_officer")) for i in range(4)]

    async def main() -> None:
        clients = [Client(g, sessions[i % 4]).start() for i in range(20)]
        await until(lambda: all(len(c.snapshots) == 4 for c in clients), timeout=20)
        # Both processes hold some of the 20 sockets.
        counts: dict[int, int] = {}
        deadline = time.monotonic() + 15
        while not (set(counts) == {0, 1} and sum(counts.values()) == 20 and all(counts.values())):
            assert time.monotonic() < deadline, counts
            counts.update(await asyncio.to_thread(health, g))
        log: list[str] = [put_alert(r, "a0", "G0001")]
        # Each process reads the stream itself: every socket gets the alert.
        await until(lambda: all(c.deltas == [("alerts", log[0])] for c in clients))

        before = g.children()
        os.kill(before[0], signal.SIGKILL)  # cut: no goodbye to its clients
        log += [put_alert(r, f"during{i}", ("G0001", "G0002")[i % 2]) for i in range(5)]
        # The parent starts process 0 again, under a new pid.
        await until(lambda: g.children().get(0, before[0]) != before[0], timeout=15)
        assert g.children()[1] == before[1]
        deadline = time.monotonic() + 15
        while 0 not in await asyncio.to_thread(health, g):
            assert time.monotonic() < deadline
        log += [put_alert(r, f"after{i}", "G0002") for i in range(5)]
        want = [("alerts", sid) for sid in log]
        await until(lambda: all(c.deltas == want for c in clients), timeout=20)
        await asyncio.sleep(0.5)
        for c in clients:
            assert c.deltas == want  # nothing lost, nothing twice
            assert len(c.snapshots) == 4  # those cut resumed from their last ids
            await c.stop()

    run_async(main)
    pids = g.children()
    assert g.proc is not None
    g.proc.send_signal(signal.SIGTERM)
    assert g.proc.wait(20) == 0
    deadline = time.monotonic() + 5
    while any(alive(p) for p in pids.values()):
        assert time.monotonic() < deadline, pids
        time.sleep(0.1)
