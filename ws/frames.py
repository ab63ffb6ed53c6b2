"""What a client may send on ``/ws``: every frame checked by type before anything acts on it.

A client frame is a JSON object with an ``op``: ``hello`` (where the client stopped,
per channel), ``cmd`` (a command; its fields are judged by ``commands.parse``) or
``ping``. Anything else - binary, not JSON, not an object, an unknown op or field, a
value of the wrong type, too large - is a :class:`FrameError` whose ``reason`` the
gateway sends back as ``{"op":"error","reason":...}``, keeping the socket open. No I/O.
"""

from __future__ import annotations

from typing import Any

import orjson

from .channels import CHANNELS, parse_id

MAX_FRAME = 16 * 1024  # bytes of one client frame; a command with its note is ~2 KiB
MAX_REQ = 100  # characters of a client's request id
FIELDS: dict[str, frozenset[str]] = {
    "hello": frozenset({"op", "last", "req"}),
    # params: a silence's match and duration, a shelf time (checked in .commands.parse)
    "cmd": frozenset({"op", "req", "command_id", "target", "id", "action", "note", "params"}),
    "ping": frozenset({"op", "req"}),
}
CMD_STRINGS = ("command_id", "target", "id", "action", "note")


class FrameError(Exception):
    """A client frame that is not one the protocol knows; ``reason`` is a short code."""

    def __init__(self, reason: str, req: str | int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.req = req


def _req(msg: dict[str, Any]) -> str | int | None:
    req = msg.get("req")
    if req is None or (isinstance(req, str) and len(req) <= MAX_REQ):
        return req
    if isinstance(req, int) and not isinstance(req, bool) and abs(req) < 2**53:
        return req
    raise FrameError("bad_req")


def parse_frame(raw: str | bytes) -> dict[str, Any]:
    """The checked message of one client frame.

    Returns:
        ``{"op": "hello", "last": {channel: stream id}}``, ``{"op": "ping", ...}`` or the
        client's ``cmd`` object (every field present of the right type).

    Raises:
        FrameError: the frame is not a valid client message.
    """
    if not isinstance(raw, str):
        raise FrameError("binary_frame")
    if len(raw) > MAX_FRAME:
        raise FrameError("frame_too_large")
    try:
        msg = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise FrameError("not_json") from None
    if not isinstance(msg, dict):
        raise FrameError("not_an_object")
    op = msg.get("op")
    if not isinstance(op, str) or op not in FIELDS:
        raise FrameError("unknown_op")
    req = _req(msg)
    if not set(msg) <= FIELDS[op]:
        raise FrameError("unknown_field", req)
    if op == "hello":
        return {"op": "hello", "last": parse_last(msg.get("last"), req), "req": req}
    if op == "cmd":
        for name in CMD_STRINGS:
            if name in msg and not isinstance(msg[name], str) and not (
                    name == "command_id" and msg[name] is None):
                raise FrameError(f"bad_{name}", req)
    return msg


def parse_last(last: Any, req: str | int | None = None) -> dict[str, str]:
    """A hello's resume points: a known channel name to a stream id, each checked.

    Raises:
        FrameError: ``last`` is not such a mapping.
    """
    if last is None:
        return {}
    if not isinstance(last, dict) or len(last) > len(CHANNELS):
        raise FrameError("bad_last", req)
    out: dict[str, str] = {}
    for ch, sid in last.items():
        if ch not in CHANNELS or not isinstance(sid, str) or len(sid) > 41:
            raise FrameError("bad_last", req)
        try:
            ms, seq = parse_id(sid)
        except ValueError:
            raise FrameError("bad_last", req) from None
        if ms < 0 or seq < 0:
            raise FrameError("bad_last", req)
        out[ch] = sid
    return out


def error_frame(reason: str, req: str | int | None = None) -> bytes:
    """The reply to a frame the gateway cannot take; the socket stays open."""
    return orjson.dumps({"op": "error", "reason": reason, "req": req})
