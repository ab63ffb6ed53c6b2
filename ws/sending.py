"""When the frames queued for clients are written to their sockets.

Queuing a frame for a connection only marks it ready; once the current dispatch is
done, one callback writes every ready connection whose socket takes frames now
(a message for 1,000 clients is one pass, not 1,000 task wake-ups). A connection whose
socket is busy (flow control, websockets mid-message) or whose coalesced grid deltas
wait for their interval is handed to its own send loop. A client whose queue is full
reads too slowly and is closed with 1013 (it resumes on reconnect). The bytes on the
wire are :mod:`.wire`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from .conn import Conn
from .hub import Hub
from .metrics import Metrics
from .wire import send_frames, writable, write_frames

log = logging.getLogger("gridwatch.gateway")

CLOSE_SLOW = 1013


class Sender:
    """The writes of every connection of one gateway process."""

    def __init__(self, hub: Hub, metrics: Metrics) -> None:
        self.hub = hub
        self.metrics = metrics
        self._ready: dict[Conn, ServerConnection] = {}

    def notify(self, conn: Conn, ws: ServerConnection) -> None:
        """Frames were queued for ``conn``: write every ready connection from one
        callback once the current dispatch is done."""
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

    async def send_loop(self, ws: ServerConnection, conn: Conn) -> None:
        """One connection's writes that could not go out at once: waits for the socket
        (websockets' flow control) and for the grid interval."""
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

    def close_slow(self, ws: ServerConnection, why: str) -> None:
        """Close a client whose queue is full."""
        self.metrics.slow.inc()
        log.info("closing slow client %s: %s", ws.remote_address, why)
        asyncio.get_running_loop().create_task(
            ws.close(CLOSE_SLOW, "too slow: queue full, resume on reconnect"))
