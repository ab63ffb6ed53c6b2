"""One WebSocket client as the hub and the gateway see it: its outbox, and the frames
parked while its snapshot or replay is read. No I/O: queueing a frame calls ``notify``
(the gateway's writer), and a full queue calls ``on_overflow`` (the gateway closes the
socket)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from .auth import User
from .channels import Outbox, Overflow


@dataclass(eq=False)
class Conn:
    """One WebSocket client as the hub sees it.

    While ``syncing`` (its snapshot or replay is being read), live frames wait in
    ``pending``; afterwards they go straight into the outbox, whose cursors drop what the
    replay already delivered.
    """

    user: User
    subs: frozenset[str]
    chans: tuple[str, ...]
    outbox: Outbox
    on_overflow: Callable[[Conn, str], None]
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    # Called (instead of setting ``wake``) when frames are queued: the gateway writes
    # the ready connections together, from one callback, rather than waking a task each.
    notify: Callable[[Conn], None] | None = None
    syncing: bool = True
    pending: list[tuple[str, str, bytes, str | None]] = field(default_factory=list)
    dead: bool = False
    sending: bool = False  # the send loop is writing (or waiting on flow control)

    def offer(self, channel: str, stream_id: str, data: bytes, key: str | None) -> None:
        """Queue one live frame (or park it while syncing); too slow means closed."""
        if self.dead:
            return
        if self.syncing:
            if len(self.pending) >= self.outbox.limit:
                self.fail(f"{len(self.pending)} frames waiting")
            else:
                self.pending.append((channel, stream_id, data, key))
            return
        self.deliver(channel, stream_id, data, key)

    def deliver(self, channel: str, stream_id: str, data: bytes, key: str | None) -> None:
        """Queue a frame now, even while syncing (a replayed frame precedes parked ones)."""
        if self.dead:
            return
        try:
            if self.outbox.push(channel, stream_id, data, key):
                self.ready()
        except Overflow as exc:
            self.fail(str(exc))

    def send_raw(self, data: bytes) -> None:
        """Queue a frame outside any channel (snapshot, result, summary)."""
        if self.dead:
            return
        try:
            self.outbox.push_raw(data)
            self.ready()
        except Overflow as exc:
            self.fail(str(exc))

    def go_live(self) -> None:
        """End syncing: move the parked frames through the cursors into the outbox."""
        parked, self.pending = self.pending, []
        self.syncing = False
        for channel, stream_id, data, key in parked:
            self.offer(channel, stream_id, data, key)
        self.ready()

    def ready(self) -> None:
        """Something is queued: tell the gateway (or wake the send loop)."""
        if self.notify is not None:
            self.notify(self)
        else:
            self.wake.set()

    def fail(self, why: str) -> None:
        if not self.dead:
            self.dead = True
            self.on_overflow(self, why)
