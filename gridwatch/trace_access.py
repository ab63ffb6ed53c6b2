"""Trace lookups (出入留痕) for people, and the audit of every lookup.

A person's trace says where they went: reading it is the most sensitive read the
control room has. So a lookup takes a reason, and every lookup is written to the audit
stream ``keys.TRACE_AUDIT`` (who, whom, when, why, how many rows) *before* the rows are
handed out; a lookup whose audit cannot be written returns nothing. The gateway
(``POST /api/trace``) and the CLI (``gridwatch trace``) both look up through here, and
both list the audit (``GET /api/trace/audit``, ``gridwatch trace audit``).

Who may: duty officers and admins look up (:data:`LOOKUP_ROLES`); only admins read the
audit (:data:`AUDIT_ROLES`).

The checks (:func:`check_person`, :func:`check_reason`) and the parsing are plain
functions; the synchronous readers serve the CLI, the ``a``-prefixed ones the gateway.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from . import keys
from .schemas.events import MAX_STRING, format_time

LOOKUP_ROLES = frozenset({"duty_officer", "admin"})
AUDIT_ROLES = frozenset({"admin"})
REASON_MAX = 300  # characters: a case number and a sentence
ROWS_MAX = 5000  # rows of one lookup (a person scanning every few minutes for 14 days)
AUDIT_LIST_MAX = 1000
# An opaque keyed hash as upstream sends it: hex, base64 or base64url, perhaps with a
# prefix. Nothing that means something to Redis or a shell: no braces (hash tags),
# no * ? [ ] (patterns), no spaces or control characters.
PERSON_CHARS = re.compile(r"[A-Za-z0-9_.:=+/-]+")
# Unicode categories refused in a reason: control, format (bidi overrides), surrogates,
# private use. They would hide or reorder what the audit list shows.
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Co"})


class TraceRefused(ValueError):
    """A lookup refused before any read: ``code`` for the screen, the text for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def check_person(value: Any) -> str:
    """A person reference fit for a lookup, as the checkpoint scans carry it.

    >>> check_person("9f3a0c5e21b7d4e8a6c1")
    '9f3a0c5e21b7d4e8a6c1'

    Raises:
        TraceRefused: not a string, empty, longer than the events allow, or with a
            character outside ``[A-Za-z0-9_.:=+/-]``.
    """
    if not isinstance(value, str) or not value:
        raise TraceRefused("person_required", "a person reference is required")
    if len(value) > MAX_STRING:
        raise TraceRefused("person_too_long",
                           f"a person reference has at most {MAX_STRING} characters")
    if not PERSON_CHARS.fullmatch(value):
        raise TraceRefused("person_bad_chars",
                           "a person reference has only letters, digits and _ . : = + / -")
    return value


def check_reason(value: Any) -> str:
    """A reason fit for the audit: runs of white space become one space.

    >>> check_reason("  case 2024-118:\\n  contact of a red code ")
    'case 2024-118: contact of a red code'

    Raises:
        TraceRefused: missing, blank, longer than :data:`REASON_MAX` characters, or
            holding control or formatting characters.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        raise TraceRefused("reason_required", "a reason is required for every trace lookup")
    if not isinstance(value, str):
        raise TraceRefused("reason_required", "the reason must be text")
    text = " ".join(value.split())
    if len(text) > REASON_MAX:
        raise TraceRefused("reason_too_long", f"a reason has at most {REASON_MAX} characters")
    if any(unicodedata.category(c) in _HIDDEN for c in text):
        raise TraceRefused("reason_bad_chars", "a reason must not hold control characters")
    return text


def check_actor(value: str) -> str:
    """Who looks, as the CLI names them (``--actor`` or the OS user).

    Raises:
        TraceRefused: empty, over 64 characters, or holding spaces or control characters.
    """
    if not value or len(value) > 64 or any(c.isspace() or unicodedata.category(c) in _HIDDEN
                                           for c in value):
        raise TraceRefused("actor_bad", "--actor: 1-64 characters, no spaces")
    return value


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def parse_rows(rows: Iterable[tuple[bytes | str, float]]) -> list[dict[str, Any]]:
    """Trace members ``event_id|checkpoint|grid|direction|colour`` with their scores
    (epoch seconds) as rows, in the order given. A member of another shape is shown as
    it is (``checkpoint_id`` = the member), never dropped and never a crash."""
    out = []
    for member, ts in rows:
        text = _text(member)
        parts = text.split("|")
        if len(parts) != 5:
            parts = ["", text, "", "", ""]
        event_id, checkpoint, grid, direction, color = parts
        out.append({"ts": format_time(ts), "checkpoint_id": checkpoint, "grid_id": grid or None,
                    "direction": direction, "code_color": color, "event_id": event_id})
    return out


def _window(marks: Iterable[bytes | str], days: float) -> float:
    # The feed's event time (its newest watermark), or the wall clock before any event.
    values = [float(v) for v in marks]
    return (max(values) if values else time.time()) - days * 86400


def audit_fields(*, actor: str, role: str, person: str, reason: str, rows: int,
                 via: str) -> dict[str, str]:
    """The fields of one audit entry (the stream id says when)."""
    return {"actor": actor, "role": role, "person": person, "reason": reason,
            "rows": str(rows), "via": via}


def _trim_id(now: float) -> str:
    return f"{int((now - keys.TRACE_AUDIT_TTL_S) * 1000)}-0"


def parse_audit(entries: Iterable[tuple[bytes | str, Mapping[Any, Any]]]) -> list[dict[str, Any]]:
    """Audit stream entries as rows: id, at (from the id), actor, role, person, reason,
    rows, via."""
    out = []
    for entry_id, raw in entries:
        fields = {_text(k): _text(v) for k, v in raw.items()}
        sid = _text(entry_id)
        try:
            rows: int | None = int(fields.get("rows", ""))
        except ValueError:
            rows = None
        out.append({"id": sid, "at": format_time(int(sid.split("-")[0]) / 1000),
                    "actor": fields.get("actor", ""), "role": fields.get("role", ""),
                    "person": fields.get("person", ""), "reason": fields.get("reason", ""),
                    "rows": rows, "via": fields.get("via", "")})
    return out


def _since_id(since_s: float | None, now: float) -> str:
    if not since_s or since_s >= now:
        return "-"
    return f"{int((now - since_s) * 1000)}-0"


# ---- CLI (synchronous) -----------------------------------------------------------------


def lookup(r: Any, *, actor: str, role: str, person: str, reason: Any, via: str = "cli",
           days: float = 14) -> list[dict[str, Any]]:
    """A person's trace of the last ``days`` (event time), newest first, audited.

    Raises:
        TraceRefused: a bad actor, person reference or reason (nothing read, nothing
            audited).
    """
    actor = check_actor(actor)
    person = check_person(person)
    reason = check_reason(reason)
    since = _window(r.hvals(keys.WATERMARKS), days)
    raw = r.zrevrangebyscore(keys.trace(person), "+inf", since, start=0, num=ROWS_MAX,
                             withscores=True)
    rows = parse_rows(raw)
    record(r, audit_fields(actor=actor, role=role, person=person, reason=reason,
                           rows=len(rows), via=via))
    return rows


def record(r: Any, fields: Mapping[str, str], *, now: float | None = None) -> str:
    """Append one audit entry, trimming what is older than 180 days; returns its id."""
    now = time.time() if now is None else now
    pipe = r.pipeline(transaction=False)  # one key: on a cluster, one node
    pipe.xadd(keys.TRACE_AUDIT, dict(fields), minid=_trim_id(now), approximate=True)
    pipe.xtrim(keys.TRACE_AUDIT, maxlen=keys.TRACE_AUDIT_MAXLEN, approximate=True)
    return _text(pipe.execute()[0])


def audit(r: Any, *, since_s: float | None = None, limit: int = 200,
          now: float | None = None) -> list[dict[str, Any]]:
    """The audit of trace lookups, newest first: the last ``since_s`` seconds (all kept
    entries without), at most ``limit``."""
    now = time.time() if now is None else now
    limit = max(1, min(limit, AUDIT_LIST_MAX))
    return parse_audit(r.xrevrange(keys.TRACE_AUDIT, "+", _since_id(since_s, now), count=limit))


# ---- gateway (asyncio) -----------------------------------------------------------------


async def alookup(r: Any, *, actor: str, role: str, person: str, reason: str,
                  days: float = 14) -> list[dict[str, Any]]:
    """:func:`lookup` for the gateway: ``person`` and ``reason`` already checked.

    The audit entry is written before the rows are returned: if it fails, the caller
    gets the Redis error and hands out nothing.
    """
    since = _window(await r.hvals(keys.WATERMARKS), days)
    raw = await r.zrevrangebyscore(keys.trace(person), "+inf", since, start=0, num=ROWS_MAX,
                                   withscores=True)
    rows = parse_rows(raw)
    pipe = r.pipeline(transaction=False)
    pipe.xadd(keys.TRACE_AUDIT, audit_fields(actor=actor, role=role, person=person,
                                             reason=reason, rows=len(rows), via="gateway"),
              minid=_trim_id(time.time()), approximate=True)
    pipe.xtrim(keys.TRACE_AUDIT, maxlen=keys.TRACE_AUDIT_MAXLEN, approximate=True)
    await pipe.execute()
    return rows


async def aaudit(r: Any, *, since_s: float | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """:func:`audit` for the gateway."""
    limit = max(1, min(limit, AUDIT_LIST_MAX))
    return parse_audit(await r.xrevrange(keys.TRACE_AUDIT, "+", _since_id(since_s, time.time()),
                                         count=limit))
