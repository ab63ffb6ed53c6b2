"""ws/wire.py: the frames the gateway writes itself are websockets' own frames, byte for byte.

The gateway writes shared text frames straight to each client's transport (one header
per frame, the payload unchanged). These tests hold that writer to websockets' own
serializer, and to its parser on the client side, and check on a real connection object
that the websockets attributes the writer reads still mean what it assumes.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from gridwatch.ws.wire import text_header, writable, write_frames
from websockets.asyncio.connection import Connection
from websockets.asyncio.server import ServerConnection
from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from tests import aio

SIZES = (0, 1, 125, 126, 65535, 65536, 70000)
CLOSES = ((1001, "gateway shutting down"), (1013, "too slow: queue full, resume on reconnect"),
          (4401, "session ended: log in again"), (4403, "your rights changed: reconnect"),
          (1000, ""))


def payload(n: int) -> bytes:
    return (b'{"ch":"alerts","m":"' + b"x" * n)[:n]


def websockets_text(data: bytes) -> bytes:
    return Frame(Opcode.TEXT, data).serialize(mask=False, extensions=[])


def websockets_close(code: int, reason: str) -> bytes:
    return Frame(Opcode.CLOSE, Close(code, reason).serialize()).serialize(mask=False,
                                                                         extensions=[])


@pytest.mark.parametrize("size", SIZES)
def test_a_text_frame_is_websockets_own_frame_byte_for_byte(size: int) -> None:
    data = payload(size)
    assert len(data) == size
    assert text_header(size) + data == websockets_text(data)


class Transport(asyncio.Transport):
    """Records what is written; enough of a transport for a websockets connection."""

    def __init__(self) -> None:
        super().__init__()
        self.out = bytearray()
        self.closing = False

    def write(self, data: Any) -> None:
        self.out += data

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.out += data

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def can_write_eof(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name in ("peername", "sockname") else default


def connection() -> tuple[ServerConnection, Transport]:
    """A real open server connection (as after the handshake) on a recording transport."""
    conn = ServerConnection(ServerProtocol(state=State.OPEN), server=None,  # type: ignore[arg-type]
                            ping_interval=None)
    transport = Transport()
    Connection.connection_made(conn, transport)  # the server's own starts a handshake
    return conn, transport


@pytest.mark.parametrize(("code", "reason"), CLOSES)
def test_a_batch_is_websockets_frames_in_order_and_a_close_follows_cleanly(
        code: int, reason: str) -> None:
    async def scenario() -> None:
        conn, transport = connection()
        assert writable(conn)
        frames = [payload(n) for n in SIZES]
        write_frames(conn, frames)
        assert bytes(transport.out) == b"".join(websockets_text(d) for d in frames)
        # The gateway closes through websockets: its close frame follows the written ones.
        written = len(transport.out)
        task = asyncio.create_task(conn.close(code, reason))
        await asyncio.sleep(0)
        close = bytes(transport.out[written:])
        assert close == websockets_close(code, reason)
        assert not writable(conn)  # closing: nothing more is written directly
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        # A client reads the same bytes as the texts, in order, then the close.
        client = ClientProtocol(parse_uri("ws://localhost/ws"), state=State.OPEN,
                                max_size=None)
        client.receive_data(bytes(transport.out))
        events = client.events_received()
        assert [(e.opcode, e.data) for e in events[:-1]] == [(Opcode.TEXT, d) for d in frames]
        assert events[-1].opcode is Opcode.CLOSE
        assert Close.parse(events[-1].data) == Close(code, reason)

    aio.run(scenario())


def test_the_direct_writer_steps_aside_whenever_websockets_is_mid_message_or_full() -> None:
    async def scenario() -> None:
        conn, _ = connection()
        assert writable(conn)
        conn.paused = True  # the transport's buffer is over its limit
        assert not writable(conn) and writable(conn, paused_ok=True)
        conn.paused = False
        conn.send_in_progress = asyncio.get_running_loop().create_future()
        assert not writable(conn)  # websockets is sending a fragmented message
        conn.send_in_progress = None
        conn.protocol.expect_continuation_frame = True
        assert not writable(conn)
        conn.protocol.expect_continuation_frame = False
        assert writable(conn)

    aio.run(scenario())
