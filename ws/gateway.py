"""The gateway: one port serving the cockpit's files, its login, and the ``/ws`` socket.

A thin asyncio shell that builds the parts and serves them:

* ``routes``    plain HTTP: login, ``/api/*``, ``/metrics``, static files, and the checks
                a ``/ws`` upgrade must pass (401, 403, 429 before any socket);
* ``handler``   one socket from the upgrade to the close (hello, resume, client frames,
                session re-checks);
* ``resume``    a connecting client's replay or snapshot;
* ``hub``       one Redis reader per channel, fanning each entry out to connections;
* ``sending``   when queued frames are written; ``wire`` the bytes of a text frame;
* ``relay``     commands: checked, produced to Kafka, the worker's outcome relayed
                (one waiter for all commands in flight), and the Kafka producer;
* ``policy``    who sees what, for all of the above; ``commands`` who may do what.

Close codes:

* 1001  the gateway is shutting down (resume on reconnect);
* 1009  a client frame over 1 MiB (websockets' own limit; up to that, a frame over
        16 KiB is answered with an error frame and the socket stays open);
* 1013  the client reads too slowly, its queue is full (resume on reconnect);
* 4401  the session expired or ended, or the user was removed (log in again);
* 4403  the user's role, grids or stations changed (reconnect with the new rights).

Command budgets and socket caps are per user, shared by all of that user's sockets on
this gateway process. ``gridwatch gateway --procs N`` runs N such processes on one port
(:mod:`.procs`); each has its own channel readers, and a client resumes on any of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from gridwatch.schemas.errors import GridwatchError
from websockets.asyncio.server import serve

from gridwatch import city, command_keys, heap
from gridwatch.settings import Settings

from . import users
from .form import FormConnection
from .handler import Handler, recheck
from .hub import Hub
from .metrics import Metrics
from .places import Places
from .relay import Relay
from .routes import Routes
from .sending import Sender
from .sessions import SessionGate
from .traces import TraceLookups

log = logging.getLogger("gridwatch.gateway")

MAX_MESSAGE = 1024 * 1024  # websockets closes (1009) past this; frames.MAX_FRAME answers


class Gateway:
    """Everything one running gateway holds."""

    def __init__(self, settings: Settings, *, queue_limit: int = 2000,
                 proc: int | None = None) -> None:
        self.settings = settings
        # One of several processes sharing the port (SO_REUSEPORT): its index, else None.
        self.proc = proc
        # The shared loader: a file it cannot use stops the gateway with one ConfigError;
        # the cockpit gets the GeoJSON with every grid's id as properties.id.
        district = city.read_grids(settings.grids)
        stations = city.load_city(settings.city)["stations"]
        self.stations = [{k: s.get(k) for k in ("id", "name", "name_zh", "daily_arrivals")}
                         for s in stations]
        self.hub = Hub(settings, grid_ids=[g.id for g in district.grids],
                       station_ids=[s["id"] for s in self.stations])
        self.metrics = Metrics(self.hub, proc)
        public = users.public_base(settings)
        origins = (*settings.web_origins, public)
        self.gate = SessionGate(self.hub.r, origins=origins,
                                secure=public.startswith("https://"),
                                fail_rate=settings.auth_fail_rate,
                                fail_burst=settings.auth_fail_burst,
                                on_check=lambda outcome: self.metrics.checks.labels(outcome).inc())
        self.relay = Relay(settings, self.hub.r, self.metrics,
                           keyring=command_keys.keyring(settings),
                           recheck=functools.partial(recheck, self.gate))
        sockets: dict[str, int] = {}  # open sockets per user name
        self.handler = Handler(settings, hub=self.hub, gate=self.gate, relay=self.relay,
                               sender=Sender(self.hub, self.metrics), metrics=self.metrics,
                               sockets=sockets, queue_limit=queue_limit)
        self.routes = Routes(hub=self.hub, gate=self.gate, metrics=self.metrics,
                             origins=origins, user_sockets=settings.user_sockets,
                             sockets=sockets, stations=self.stations,
                             places=Places(district),
                             traces=TraceLookups(self.hub.r, settings), proc=proc)
        self.process_request = self.routes.process_request

    async def serve(self, stop: asyncio.Future[None], ready: asyncio.Event | None = None) -> None:
        """Serve until ``stop`` completes; closing sends every client 1001."""
        await self.hub.start()
        await self.gate.start()
        self.relay.start()
        # Several processes on one port: each listens with SO_REUSEPORT, the kernel
        # spreads the connections over them.
        shared = {"reuse_port": True} if self.proc is not None else {}
        try:
            async with _listening(self.settings), serve(
                    self.handler.handle, self.settings.gateway_host, self.settings.gateway_port,
                    process_request=self.process_request, max_size=MAX_MESSAGE,
                    create_connection=FormConnection,
                    # No per-message deflate: compressing means one zlib pass per
                    # client per frame, and frames are shared by all clients.
                    compression=None,
                    ping_interval=20, ping_timeout=20, close_timeout=2,
                    server_header="gridwatch", **shared) as server:
                log.info("gateway on http://%s:%d%s", self.settings.gateway_host,
                         self.settings.gateway_port,
                         "" if self.proc is None else f" (process {self.proc})")
                if ready is not None:
                    ready.set()
                await stop
                server.close()
                await server.wait_closed()
        finally:
            await self.relay.stop()
            await self.hub.stop()


def check(settings: Settings) -> None:
    """What a gateway reads at start and may refuse (the district's files, the command
    keys), read once: a ConfigError here stops ``--procs N`` before any child starts."""
    city.read_grids(settings.grids)
    city.load_city(settings.city)
    command_keys.keyring(settings)


@contextlib.asynccontextmanager
async def _listening(settings: Settings) -> AsyncIterator[None]:
    """Turn a failure to listen (the port taken, the address not here) into a clear error."""
    try:
        yield
    except OSError as exc:
        raise listen_error(settings, exc) from None


def listen_error(settings: Settings, exc: OSError) -> GridwatchError:
    """A failure to listen on the gateway's address as a clear error (others: re-raised)."""
    if exc.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
        raise exc
    return GridwatchError(
        f"cannot listen on {settings.gateway_host}:{settings.gateway_port}: "
        f"{os.strerror(exc.errno)} (another gateway running? GRIDWATCH_GATEWAY=host:port or "
        "--port picks another port)")


async def main(settings: Settings, *, proc: int | None = None,
               on_ready: Callable[[], None] | None = None) -> None:
    """Run a gateway until SIGINT or SIGTERM (one of several processes, ``proc``: until
    SIGTERM; its supervisor handles Ctrl-C). ``on_ready``: called once it listens."""
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()
    for sig in (signal.SIGINT, signal.SIGTERM) if proc is None else (signal.SIGTERM,):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    ready = asyncio.Event()
    tell = None
    if on_ready is not None:
        async def _tell() -> None:
            await ready.wait()
            on_ready()

        tell = asyncio.create_task(_tell())
    try:
        gateway = Gateway(settings, proc=proc)
        heap.tune()  # the district, caches and clients built: out of the collector's way
        await gateway.serve(stop, ready)
    finally:
        if tell is not None:
            tell.cancel()


def setup_logs(settings: Settings) -> None:
    from ..logs import setup

    setup(settings.log_format)  # text, or JSON lines with GRIDWATCH_LOG_FORMAT=json
    # Per-connection open/close lines at INFO would be thousands of lines per reconnect wave.
    logging.getLogger("websockets").setLevel(logging.WARNING)


def run_loop(coro: Coroutine[Any, Any, None]) -> None:
    try:  # uvloop's transports write and schedule for less CPU than asyncio's own
        import uvloop
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)


def run(settings: Settings) -> None:
    """``gridwatch gateway``: serve the cockpit and ``/ws`` on the settings' host:port."""
    setup_logs(settings)
    run_loop(main(settings))


if __name__ == "__main__":
    from gridwatch.settings import load

    run(load())
