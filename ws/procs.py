"""``gridwatch gateway --procs N``: N gateway processes sharing one port.

The parent listens on nothing: it starts N children (``multiprocessing``, spawned), each
a whole gateway (:func:`.gateway.main`) listening with ``SO_REUSEPORT``, so the kernel
spreads new connections over them. Each child has its own channel readers, Kafka
producer, caches and limits; sessions and the channel streams are in Redis, so any child
checks any session and a client resumes (its last stream ids) on whichever child its
reconnect reaches.

A child that dies is started again after a pause that doubles with each quick death
(0.5 s up to 30 s; back to 0.5 s once a child has lived 30 s). A child that exits with a
configuration error (code 2) before it ever listened stops them all: starting it again
would fail the same way. SIGTERM or SIGINT: every child gets SIGTERM (its clients a
1001 close, to resume elsewhere), the parent waits for them and exits 0. The children
ignore SIGINT, so Ctrl-C in a terminal stops them once, through the parent.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import sys
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from types import FrameType

from gridwatch.schemas.errors import GridwatchError

from gridwatch.settings import Settings

from . import gateway

log = logging.getLogger("gridwatch.gateway")

RESTART_MIN_S = 0.5  # the pause before a dead child starts again, doubled per quick death
RESTART_MAX_S = 30.0
STEADY_S = 30.0  # a child that lived this long died "once": the pause starts over
STOP_S = 10.0  # how long the children get to close their clients before SIGKILL
CONFIG_ERROR = 2  # the CLI's exit code for an expected failure (a GridwatchError)


def child(settings: Settings, index: int, ready: Connection) -> None:
    """One gateway process; says on ``ready`` once it listens."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us (SIGTERM)
    gateway.setup_logs(settings)
    try:
        gateway.run_loop(gateway.main(settings, proc=index, on_ready=lambda: ready.send(True)))
    except GridwatchError as exc:
        print(f"gridwatch: {exc}", file=sys.stderr)
        sys.exit(CONFIG_ERROR)


@dataclass
class Slot:
    """One child's place: the process in it now, and its restart pause."""

    index: int
    proc: BaseProcess | None = None
    ready_conn: Connection | None = None
    ready: bool = False
    started: float = 0.0
    pause: float = 0.0
    due: float | None = None  # when a dead child starts again


def probe(settings: Settings) -> None:
    """Fail now, with the single gateway's clear error, when something listens on the
    address already (the children's SO_REUSEPORT would otherwise share the port with
    another gateway of the same user, or fail one by one)."""
    host, port = settings.gateway_host, settings.gateway_port
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                          flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise GridwatchError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(addr)  # bound, never listening: closed at once
        except OSError as exc:
            raise gateway.listen_error(settings, exc) from None


def _how(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class Supervisor:
    """Starts, watches and stops the children."""

    def __init__(self, settings: Settings, n: int) -> None:
        self.settings = settings
        self.ctx = multiprocessing.get_context("spawn")
        self.slots = [Slot(i) for i in range(n)]
        self.signals: list[int] = []

    def start(self, slot: Slot) -> None:
        theirs, ours = self.ctx.Pipe(duplex=False)
        proc = self.ctx.Process(target=child, args=(self.settings, slot.index, ours),
                                name=f"gateway-{slot.index}", daemon=False)
        proc.start()
        ours.close()
        slot.proc, slot.ready_conn, slot.ready = proc, theirs, False
        slot.started, slot.due = time.monotonic(), None
        log.info("gateway process %d started (pid %s)", slot.index, proc.pid)

    def run(self) -> int:
        """Until SIGTERM or SIGINT (0), or a child's configuration error (2)."""
        previous = {sig: signal.signal(sig, self._on_signal)
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for slot in self.slots:
                self.start(slot)
            while not self.signals:
                waiting = [s.proc.sentinel for s in self.slots if s.proc is not None]
                waiting += [s.ready_conn for s in self.slots
                            if s.ready_conn is not None and not s.ready]
                wait(waiting, timeout=0.5)
                if self.signals:
                    break
                if self._check(time.monotonic()) is not None:
                    return CONFIG_ERROR
            log.info("gateway: stopping %d processes", len(self.slots))
            return 0
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals.append(signum)

    def _check(self, now: float) -> int | None:
        """Note ready children, restart dead ones when due; a code to exit with, or None."""
        for slot in self.slots:
            conn = slot.ready_conn
            if conn is not None and not slot.ready and conn.poll():
                try:
                    slot.ready = bool(conn.recv())
                except EOFError:  # it died before it listened: its sentinel says how
                    conn.close()
                    slot.ready_conn = conn = None
            proc = slot.proc
            if proc is not None and proc.exitcode is not None:
                proc.join()
                code = proc.exitcode
                if conn is not None:
                    conn.close()
                slot.proc, slot.ready_conn = None, None
                if code == CONFIG_ERROR and not slot.ready:
                    log.error("gateway process %d could not start (see above); stopping",
                              slot.index)
                    return CONFIG_ERROR
                lived = now - slot.started
                slot.pause = (RESTART_MIN_S if lived >= STEADY_S or not slot.pause
                              else min(RESTART_MAX_S, slot.pause * 2))
                slot.due = now + slot.pause
                log.warning("gateway process %d (pid %s) %s after %.1f s; starting it again "
                            "in %.1f s", slot.index, proc.pid, _how(code), lived, slot.pause)
            if slot.proc is None and slot.due is not None and now >= slot.due:
                self.start(slot)
        return None

    def stop(self) -> None:
        """SIGTERM to every child, SIGKILL to those still there after STOP_S."""
        running = [s.proc for s in self.slots if s.proc is not None and s.proc.is_alive()]
        for proc in running:
            proc.terminate()
        deadline = time.monotonic() + STOP_S
        for proc in running:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                log.warning("gateway process pid %s did not stop; killing it", proc.pid)
                proc.kill()
                proc.join()
        for slot in self.slots:
            if slot.ready_conn is not None:
                slot.ready_conn.close()
            slot.proc, slot.ready_conn = None, None


def run(settings: Settings, n: int) -> int:
    """``gridwatch gateway --procs N`` (N > 1): the exit code."""
    gateway.check(settings)
    probe(settings)
    gateway.setup_logs(settings)
    return Supervisor(settings, n).run()
