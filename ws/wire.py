"""Writing server text frames straight to a client's socket: the same shared bytes for
every recipient, one write per batch (see :func:`send_frames`).

websockets' public API has no equivalent at the same cost: ``ws.send`` and
``broadcast`` serialise the frame per connection (a copy of the payload for every
client) and write each frame on its own, and ``broadcast`` ignores flow control. So
the header is written here; ``tests/unit/test_ws_wire.py`` holds it to websockets' own
``Frame.serialize`` byte for byte, and checks on a real connection object the
attributes read below (``protocol.state``, ``protocol.extensions``,
``protocol.expect_continuation_frame``, ``send_in_progress``, ``paused``,
``transport``, ``drain``), which websockets does not document.
"""

from __future__ import annotations

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State


def text_header(length: int) -> bytes:
    """The header of an unmasked, final text frame of ``length`` bytes (RFC 6455 5.2)."""
    if length < 126:
        return bytes((0x81, length))
    if length < 65536:
        return b"\x81\x7e" + length.to_bytes(2, "big")
    return b"\x81\x7f" + length.to_bytes(8, "big")


async def send_frames(ws: ServerConnection, frames: list[bytes]) -> None:
    """Send text frames to one client in one write (one syscall, not one per frame).

    A server's text frame is a short header and the payload, unmasked and, with no
    extension negotiated (the gateway offers none), unchanged: the same shared bytes
    go to every client, so nothing is serialised per client. The frames are written
    only while websockets' own state says the connection is open and no fragmented
    message is under way; otherwise ``ws.send`` handles them (and raises once closed).
    Flow control is websockets' own: ``drain`` waits while the socket's buffer is over
    its limit.
    """
    if not writable(ws, paused_ok=True):
        for data in frames:
            await ws.send(data, text=True)
        return
    write_frames(ws, frames)
    await ws.drain()


def writable(ws: ServerConnection, *, paused_ok: bool = False) -> bool:
    """Whether frames may be written to the socket directly now: open, no extension,
    no fragmented message under way (and, unless ``paused_ok``, the buffer not full)."""
    proto = ws.protocol
    return (proto.state is State.OPEN and not proto.extensions
            and not proto.expect_continuation_frame and ws.send_in_progress is None
            and (paused_ok or not ws.paused))


def write_frames(ws: ServerConnection, frames: list[bytes]) -> None:
    """Write text frames to the socket in one call (see :func:`send_frames`)."""
    parts: list[bytes] = []
    for data in frames:
        parts.append(text_header(len(data)))
        parts.append(data)
    ws.transport.writelines(parts)
