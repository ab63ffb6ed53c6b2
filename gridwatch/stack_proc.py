"""The local stack's process plumbing: where its files live, pid files, ports, stopping.

Shared by the Kafka and Redis parts of the stack (``stack.py``, ``stack_kafka.py``,
``stack_redis.py``); it knows nothing about either server.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from .schemas.errors import StackError


@dataclass(frozen=True)
class Paths:
    """Where the local stack keeps its files."""

    home: Path

    @property
    def jars(self) -> Path:
        return self.home / "kafka" / "lib"

    @property
    def kafka_data(self) -> Path:
        return self.home / "kafka" / "data"

    @property
    def kafka_config(self) -> Path:
        return self.home / "kafka" / "server.properties"

    @property
    def kafka_cluster(self) -> Path:
        """The nodes of a several-broker Kafka, one folder each (``node-1`` ...)."""
        return self.home / "kafka-cluster"

    @property
    def redis_data(self) -> Path:
        return self.home / "redis"

    @property
    def redis_cluster(self) -> Path:
        """The masters of a local Redis Cluster, one folder per port."""
        return self.home / "redis-cluster"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def run(self) -> Path:
        return self.home / "run"

    def pidfile(self, name: str) -> Path:
        return self.run / f"{name}.pid"

    def pidfiles(self, prefix: str) -> list[Path]:
        """The pid files named ``<prefix>-*.pid`` (a cluster's nodes), in name order."""
        return sorted(self.run.glob(f"{prefix}-*.pid")) if self.run.is_dir() else []


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def read_pid(path: Path) -> int | None:
    """The pid in ``path`` if that process is alive, else None."""
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


def require(tool: str, hint: str) -> str:
    """The full path of a command-line tool.

    Raises:
        StackError: the tool is not installed, with ``hint`` saying how to get it.
    """
    found = shutil.which(tool)
    if not found:
        raise StackError(f"{tool} not found: {hint}")
    return found


def stop(pids: list[int], timeout: float = 30) -> None:
    """SIGTERM every pid at once, then SIGKILL those still alive after ``timeout``.

    All at once, because the nodes of a cluster each wait for the others while they
    shut down cleanly: one by one, the last would wait for a quorum that is gone.
    """
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + timeout
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if _alive(pid)]
        if alive:
            time.sleep(0.2)
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    # A child of ours that exited stays a zombie until reaped: reap it, or it looks alive.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return done == 0
