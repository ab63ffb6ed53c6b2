"""One WebSocket client from the upgrade to the close.

``welcome``, then the client's ``hello`` (where it stopped), its replay or snapshot
(:mod:`.resume`), then live frames from the hub; meanwhile its frames are read: ``cmd``
goes to the relay, ``ping`` is answered ``pong``. Every client frame is checked
(:mod:`.frames`); a bad one is answered ``{"op":"error"}`` and the socket stays open.
The session is re-checked now and then: the socket closes with 4401 when it ended or the
user was removed (log in again), 4403 when the user's role, grids or stations changed
(reconnect with the new rights).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import TYPE_CHECKING, Any

import orjson
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from gridwatch.settings import Settings

from .auth import AuthError, User
from .channels import Outbox
from .conn import Conn
from .frames import FrameError, error_frame, parse_frame
from .hub import REDIS_ERRORS, Hub
from .metrics import Metrics
from .policy import channels_for, subscriptions
from .resume import sync
from .sending import Sender
from .sessions import SessionGate

if TYPE_CHECKING:
    from .relay import Relay

log = logging.getLogger("gridwatch.gateway")

HELLO_S = 15.0  # how long a new connection's "hello" (its resume point) is waited for

CLOSE_SESSION = 4401
CLOSE_RIGHTS = 4403


async def recheck(gate: SessionGate, conn: Conn, token: str | None) -> tuple[int, str] | None:
    """Why the socket must close now (code, reason): its session ended, the user was
    removed, or their role, grids or stations changed; ``None``: all as at connect."""
    try:
        user = await gate.user_of(token, fresh=True)
    except AuthError:
        return CLOSE_SESSION, "session ended: log in again"
    if user != conn.user:
        return CLOSE_RIGHTS, "your rights changed: reconnect"
    return None


class Handler:
    """The per-socket side of one gateway process.

    Args:
        sockets: open sockets per user name, kept here (the routes cap them per user).
    """

    def __init__(self, settings: Settings, *, hub: Hub, gate: SessionGate, relay: Relay,
                 sender: Sender, metrics: Metrics, sockets: dict[str, int],
                 queue_limit: int) -> None:
        self.settings = settings
        self.hub = hub
        self.gate = gate
        self.relay = relay
        self.sender = sender
        self.metrics = metrics
        self.sockets = sockets
        self.queue_limit = queue_limit

    async def handle(self, ws: ServerConnection) -> None:
        """One client: snapshot or replay, then live frames; commands in the meantime."""
        user: User = ws.gw_user  # type: ignore[attr-defined]
        conn = Conn(user=user, subs=subscriptions(user), chans=channels_for(user),
                    outbox=Outbox(limit=self.queue_limit),
                    on_overflow=lambda c, why: self.sender.close_slow(ws, why),
                    notify=lambda c: self.sender.notify(c, ws))
        self.hub.register(conn)
        self.sockets[user.name] = self.sockets.get(user.name, 0) + 1
        token: str | None = ws.gw_token  # type: ignore[attr-defined]
        jobs: set[asyncio.Task[None]] = set()
        sender = asyncio.create_task(self.sender.send_loop(ws, conn))
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
                    verdict = await recheck(self.gate, conn, token)
                except REDIS_ERRORS as exc:  # Redis away: keep the socket, retry
                    log.warning("re-checking a session: %s", exc)
                    continue
                if verdict is not None:
                    await ws.close(*verdict)
                    return
