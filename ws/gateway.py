"""The gateway: one port serving the cockpit's files, its login, and the ``/ws`` socket.

A thin asyncio shell: who sees what, queueing, resume and command rules live in
``channels``, ``commands`` and ``auth``; Redis fan-out in ``hub``. Close codes:

* 1001  the gateway is shutting down (resume on reconnect);
* 1009  a client frame over 1 MiB (websockets' own limit; up to that, a frame over
        16 KiB is answered with an error frame and the socket stays open);
* 1013  the client reads too slowly, its queue is full (resume on reconnect);
* 4401  the session expired or ended, or the user was removed (log in again);
* 4403  the user's role, grids or stations changed (reconnect with the new rights).

Refusals before the upgrade are HTTP: 401 without a valid session, 403 for a foreign
Origin, 429 for a user at its socket cap or an address past its failed-check budget.
Every client frame is checked (``frames``); a bad one is answered ``{"op":"error"}``
and the socket stays open. Command budgets and socket caps are per user, shared by all
of that user's sockets on this gateway process.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import random
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from gridwatch.schemas.errors import GridwatchError
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from gridwatch import city, command_keys, users
from gridwatch.settings import Settings

from .auth import AuthError, User
from .channels import Outbox
from .conn import Conn
from .form import FormConnection
from .frames import FrameError, error_frame, parse_frame
from .hub import REDIS_ERRORS, Hub
from .metrics import Metrics
from .policy import channels_for, subscriptions
from .relay import Relay
from .resume import sync
from .routes import Routes
from .sessions import SessionGate
from .wire import send_frames, writable, write_frames

log = logging.getLogger("gridwatch.gateway")

HELLO_S = 15.0  # how long a new connection's "hello" (its resume point) is waited for

CLOSE_SLOW = 1013
CLOSE_SESSION = 4401
CLOSE_RIGHTS = 4403
MAX_MESSAGE = 1024 * 1024  # websockets closes (1009) past this; frames.MAX_FRAME answers


class Gateway:
    """Everything one running gateway holds."""

    def __init__(self, settings: Settings, *, queue_limit: int = 2000) -> None:
        self.settings = settings
        self.queue_limit = queue_limit
        # The shared loader: a file it cannot use stops the gateway with one ConfigError;
        # the cockpit gets the GeoJSON with every grid's id as properties.id.
        district = city.read_grids(settings.grids)
        stations = city.load_city(settings.city)["stations"]
        self.stations = [{k: s.get(k) for k in ("id", "name", "name_zh", "daily_arrivals")}
                         for s in stations]
        self.hub = Hub(settings, grid_ids=[g.id for g in district.grids],
                       station_ids=[s["id"] for s in self.stations])
        self.metrics = Metrics(self.hub)
        self._ready: dict[Conn, ServerConnection] = {}
        public = users.public_base(settings)
        self.origins = (*settings.web_origins, public)
        self.gate = SessionGate(self.hub.r, origins=self.origins,
                                secure=public.startswith("https://"),
                                fail_rate=settings.auth_fail_rate,
                                fail_burst=settings.auth_fail_burst,
                                on_check=lambda outcome: self.metrics.checks.labels(outcome).inc())
        self.relay = Relay(settings, self.hub.r, self.metrics,
                           keyring=command_keys.keyring(settings), recheck=self._recheck,
                           session_code=CLOSE_SESSION)
        self.sockets: dict[str, int] = {}  # open sockets per user name
        self.routes = Routes(hub=self.hub, gate=self.gate, metrics=self.metrics,
                             origins=self.origins, user_sockets=settings.user_sockets,
                             sockets=self.sockets, stations=self.stations,
                             geojson=orjson.dumps(district.geojson))
        self.process_request = self.routes.process_request

    # ---- WebSocket ---------------------------------------------------------------

    async def handler(self, ws: ServerConnection) -> None:
        """One client: snapshot or replay, then live frames; commands in the meantime."""
        user: User = ws.gw_user  # type: ignore[attr-defined]
        conn = Conn(user=user, subs=subscriptions(user), chans=channels_for(user),
                    outbox=Outbox(limit=self.queue_limit),
                    on_overflow=lambda c, why: self._close_slow(ws, why),
                    notify=lambda c: self._notify(c, ws))
        self.hub.register(conn)
        self.sockets[user.name] = self.sockets.get(user.name, 0) + 1
        token: str | None = ws.gw_token  # type: ignore[attr-defined]
        jobs: set[asyncio.Task[None]] = set()
        sender = asyncio.create_task(self._send_loop(ws, conn))
        watch = asyncio.create_task(self._watch_session(ws, conn, token))
        try:
            conn.send_raw(orjson.dumps({"op": "welcome", "user": user.to_dict()}))
            await sync(self.hub, conn, await self._hello(ws, conn), limit=self.queue_limit // 2)
            async for raw in ws:
                msg = self._frame(conn, raw)
                if msg is None:
                    continue
                if msg["op"] == "cmd":
                    job = self.relay.submit(ws, conn, token, msg)
                    if job is not None:
                        jobs.add(job)
                        job.add_done_callback(jobs.discard)
                elif msg["op"] == "ping":
                    conn.send_raw(b'{"op":"pong"}')
                else:
                    self._refuse(conn, FrameError("hello_only_first", msg.get("req")))
        except ConnectionClosed:
            pass
        finally:
            conn.dead = True
            self.hub.unregister(conn)
            left = self.sockets.get(user.name, 1) - 1
            if left > 0:
                self.sockets[user.name] = left
            else:
                self.sockets.pop(user.name, None)
            for task in (sender, watch, *jobs):
                task.cancel()

    def _frame(self, conn: Conn, raw: str | bytes) -> dict[str, Any] | None:
        """A client frame checked, or ``None`` when it was refused (and answered)."""
        try:
            return parse_frame(raw)
        except FrameError as exc:
            self._refuse(conn, exc)
            return None

    def _refuse(self, conn: Conn, exc: FrameError) -> None:
        self.metrics.bad_frames.labels(exc.reason).inc()
        conn.send_raw(error_frame(exc.reason, exc.req))

    async def _hello(self, ws: ServerConnection, conn: Conn) -> dict[str, str]:
        # The client's first message says where it stopped; none within HELLO_S, or a bad
        # one: no resume (a snapshot). Generous: after a gateway restart every client
        # reconnects at once, so a hello sent at once can wait to be read.
        try:
            raw = await asyncio.wait_for(ws.recv(), timeout=HELLO_S)
        except asyncio.TimeoutError:
            return {}
        msg = self._frame(conn, raw)
        if msg is None:
            return {}
        if msg["op"] != "hello":
            self._refuse(conn, FrameError("hello_expected", msg.get("req")))
            return {}
        last: dict[str, str] = msg["last"]
        return last

    def _notify(self, conn: Conn, ws: ServerConnection) -> None:
        # Frames were queued for ``conn``: write every ready connection from one callback
        # once the current dispatch is done (a message for 1,000 clients is one pass).
        if not self._ready:
            asyncio.get_running_loop().call_soon(self._write_ready)
        self._ready[conn] = ws

    def _write_ready(self) -> None:
        """Write the queued frames of every ready connection whose socket takes them now;
        wake the send loop of the others (flow control, timed grid flushes, closing)."""
        ready, self._ready = self._ready, {}
        now = asyncio.get_running_loop().time()
        sent = 0
        for conn, ws in ready.items():
            due = conn.outbox.due(now)
            if conn.dead or due is None:
                continue
            if due > 0 or conn.sending or not writable(ws):
                conn.wake.set()
                continue
            batch = conn.outbox.take(now)
            write_frames(ws, batch)
            sent += len(batch)
            if conn.outbox.due(now) is not None:  # coalesced grid deltas wait for their time
                conn.wake.set()
        if sent:
            self.metrics.sent.inc(sent)
        oldest, self.hub.oldest_pending = self.hub.oldest_pending, None
        if oldest is not None and sent:
            self.metrics.delivery.observe(max(0.0, time.time() - oldest))

    async def _send_loop(self, ws: ServerConnection, conn: Conn) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(ConnectionClosed):
            while True:
                conn.wake.clear()  # before looking, so a frame queued meanwhile wakes us
                due = conn.outbox.due(loop.time())
                if due is None or due > 0:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(conn.wake.wait(), timeout=due)
                    continue
                batch = conn.outbox.take(loop.time())
                if batch:
                    conn.sending = True
                    try:
                        await send_frames(ws, batch)
                    finally:
                        conn.sending = False
                    self.metrics.sent.inc(len(batch))

    def _close_slow(self, ws: ServerConnection, why: str) -> None:
        self.metrics.slow.inc()
        log.info("closing slow client %s: %s", ws.remote_address, why)
        asyncio.get_running_loop().create_task(
            ws.close(CLOSE_SLOW, "too slow: queue full, resume on reconnect"))

    async def _watch_session(self, ws: ServerConnection, conn: Conn, token: str | None) -> None:
        # A random phase per socket: clients that connected together (a gateway restart)
        # must not all re-check in the same instant.
        every = self.settings.session_recheck_s
        first = random.uniform(0.5, 1.0) * every
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.sleep(first or every)
                first = 0.0
                try:
                    verdict = await self._recheck(conn, token)
                except REDIS_ERRORS as exc:  # Redis away: keep the socket, retry
                    log.warning("re-checking a session: %s", exc)
                    continue
                if verdict is not None:
                    await ws.close(*verdict)
                    return

    async def _recheck(self, conn: Conn, token: str | None) -> tuple[int, str] | None:
        """Why the socket must close now (code, reason): its session ended, the user was
        removed, or their role, grids or stations changed; ``None``: all as at connect."""
        try:
            user = await self.gate.user_of(token, fresh=True)
        except AuthError:
            return CLOSE_SESSION, "session ended: log in again"
        if user != conn.user:
            return CLOSE_RIGHTS, "your rights changed: reconnect"
        return None

    # ---- lifecycle ---------------------------------------------------------------

    async def serve(self, stop: asyncio.Future[None], ready: asyncio.Event | None = None) -> None:
        """Serve until ``stop`` completes; closing sends every client 1001."""
        await self.hub.start()
        await self.gate.start()
        self.relay.start()
        try:
            async with _listening(self.settings), serve(
                    self.handler, self.settings.gateway_host, self.settings.gateway_port,
                    process_request=self.process_request, max_size=MAX_MESSAGE,
                    create_connection=FormConnection,
                    # No per-message deflate: compressing means one zlib pass per
                    # client per frame, and frames are shared by all clients.
                    compression=None,
                    ping_interval=20, ping_timeout=20, close_timeout=2,
                    server_header="gridwatch") as server:
                log.info("gateway on http://%s:%d", self.settings.gateway_host,
                         self.settings.gateway_port)
                if ready is not None:
                    ready.set()
                await stop
                server.close()
                await server.wait_closed()
        finally:
            await self.relay.stop()
            await self.hub.stop()


@contextlib.asynccontextmanager
async def _listening(settings: Settings) -> AsyncIterator[None]:
    """Turn a failure to listen (the port taken, the address not here) into a clear error."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
            raise
        raise GridwatchError(
            f"cannot listen on {settings.gateway_host}:{settings.gateway_port}: "
            f"{os.strerror(exc.errno)} (another gateway running? GRIDWATCH_GATEWAY=host:port or "
            "--port picks another port)") from None


async def main(settings: Settings) -> None:
    """Run a gateway until SIGINT or SIGTERM."""
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    await Gateway(settings).serve(stop)


def run(settings: Settings) -> None:
    """``gridwatch gateway``: serve the cockpit and ``/ws`` on the settings' host:port."""
    from ..logs import setup as setup_logs

    setup_logs(settings.log_format)  # text, or JSON lines with GRIDWATCH_LOG_FORMAT=json
    # Per-connection open/close lines at INFO would be thousands of lines per reconnect wave.
    logging.getLogger("websockets").setLevel(logging.WARNING)
    try:  # uvloop's transports write and schedule for less CPU than asyncio's own
        import uvloop
    except ImportError:
        asyncio.run(main(settings))
    else:
        uvloop.run(main(settings))


if __name__ == "__main__":
    from gridwatch.settings import load

    run(load())
