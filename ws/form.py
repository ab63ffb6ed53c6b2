"""A small form POST on the gateway's one port (the login confirmation), beside the socket.

websockets parses only what a WebSocket handshake needs: a request with a body is
refused before the gateway sees it. The login link must be redeemed by a POST with the
token in its body (a GET - a chat app's link preview - must spend nothing), so the
connection class here swaps in a protocol that also reads a short body
(``Content-Length`` up to :data:`MAX_BODY` bytes, POST only) and hands it on as
``request.body``. Everything else is websockets' own handling.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import InvalidMessage
from websockets.http11 import Request
from websockets.protocol import CONNECTING, Protocol
from websockets.server import ServerProtocol

MAX_BODY = 4096  # a login form is ~100 bytes


def body_size(method: str, lengths: list[bytes]) -> int:
    """How many body bytes follow the headers, from the Content-Length values seen.

    Raises:
        ValueError: a body where none may be (not a POST), or a bad or too large one.
    """
    values = {v.strip() for v in lengths}
    if not values or values == {b"0"}:
        return 0
    if method != "POST" or len(values) != 1:
        raise ValueError("unsupported request body")
    raw = values.pop()
    if not raw.isdigit() or int(raw) > MAX_BODY:
        raise ValueError("request body too large")
    return int(raw)


class FormProtocol(ServerProtocol):
    """websockets' server protocol, reading a short POST body after the headers."""

    def parse(self) -> Generator[None]:
        if self.state is CONNECTING:
            lengths: list[bytes] = []
            read_line = self.reader.read_line

            def without_length(limit: int, exc: type[Exception]) -> Generator[None, None, Any]:
                # websockets refuses any Content-Length but 0: note it and rename it.
                line = yield from read_line(limit, exc)
                name, sep, value = bytes(line).partition(b":")
                if sep and name.strip().lower() == b"content-length":
                    lengths.append(value)
                    return b"X-Form-Length:" + value
                return line

            try:
                request = yield from Request.parse(without_length)
                size = body_size(request.method, lengths)
                body = bytes((yield from self.reader.read_exact(size))) if size else b""
            except Exception as exc:  # noqa: BLE001 - as websockets: no valid request
                self.handshake_exc = InvalidMessage("did not receive a valid HTTP request")
                self.handshake_exc.__cause__ = exc
                self.send_eof()
                self.parser = self.discard()
                next(self.parser)
                yield
            request.body = body  # type: ignore[attr-defined]
            self.events.append(request)
        yield from Protocol.parse(self)


class FormConnection(ServerConnection):
    """A server connection whose protocol reads form bodies (``create_connection``)."""

    def __init__(self, protocol: ServerProtocol, *args: Any, **kwargs: Any) -> None:
        # Nothing has been received yet: restart the parser as the form-reading one.
        protocol.__class__ = FormProtocol
        protocol.parser = protocol.parse()
        next(protocol.parser)
        super().__init__(protocol, *args, **kwargs)


def body_of(request: Request) -> bytes:
    """The body read with a request (``b""`` for none)."""
    body: bytes = getattr(request, "body", b"")
    return body


