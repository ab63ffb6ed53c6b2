"""The gateway's trace lookup: ``POST /api/trace`` and ``GET /api/trace/audit``.

``POST /api/trace`` with a JSON body ``{"person": ..., "reason": ...}``: a person's
checkpoints, grids and times of the last ``GRIDWATCH_TRACE_DAYS`` days, for duty
officers and admins. Every lookup that reads is audited first
(:mod:`gridwatch.trace_access`). ``GET /api/trace/audit?since=7d&limit=200``: that
audit, newest first, for admins.

Answers (JSON, ``{"error": code, "message": text}`` when refused):

* 400  a missing or malformed body, person reference or reason (nothing read or audited);
* 403  a role that may not (or a cross-site POST);
* 429  past the user's lookup budget (``GRIDWATCH_TRACE_LOOKUPS`` an hour, bursts of
       ``GRIDWATCH_TRACE_BURST``, per gateway process), with ``Retry-After``.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.http11 import Request, Response

from gridwatch import trace_access
from gridwatch.queries import parse_span
from gridwatch.settings import Settings

from . import http
from .auth import User
from .form import body_of
from .limits import KeyedBuckets

log = logging.getLogger("gridwatch.gateway")

LOOKUP_PATH = "/api/trace"
AUDIT_PATH = "/api/trace/audit"
PATHS = frozenset({LOOKUP_PATH, AUDIT_PATH})


def refusal(status: int, code: str, message: str,
            extra: list[tuple[str, str]] | None = None) -> Response:
    return http.json_response(status, {"error": code, "message": message}, extra=extra)


class TraceLookups:
    """Trace lookups and their audit list, with a per-user lookup budget.

    Args:
        r: the gateway's Redis (bytes replies).
        settings: ``trace_days``, ``trace_lookups`` (an hour), ``trace_burst``.
    """

    def __init__(self, r: Any, settings: Settings) -> None:
        self.r = r
        self.days = float(settings.trace_days)
        self.rate = settings.trace_lookups / 3600.0
        self.budget = KeyedBuckets(rate=self.rate, burst=settings.trace_burst)

    def rights(self, user: User) -> dict[str, Any]:
        """What the cockpit shows ``user`` (``/api/me``): the page reads it, never guesses."""
        return {"lookup": user.role in trace_access.LOOKUP_ROLES,
                "audit": user.role in trace_access.AUDIT_ROLES,
                "days": self.days, "reason_max": trace_access.REASON_MAX}

    async def answer(self, request: Request, user: User, path: str, *,
                     same_origin: bool) -> Response:
        """Answer one request to :data:`PATHS` from an authenticated ``user``."""
        if path == AUDIT_PATH:
            if request.method != "GET":
                return http.response(405, b"method not allowed\n", "text/plain",
                                     extra=[("Allow", "GET")])
            return await self.audit(request, user)
        if request.method != "POST":
            return http.response(405, b"method not allowed\n", "text/plain",
                                 extra=[("Allow", "POST")])
        if not same_origin:
            return refusal(403, "origin", "cross-site request refused")
        return await self.lookup(request, user)

    async def lookup(self, request: Request, user: User) -> Response:
        if user.role not in trace_access.LOOKUP_ROLES:
            return refusal(403, "forbidden", "trace lookups are for duty officers and admins")
        try:
            body = orjson.loads(body_of(request) or b"null")
        except orjson.JSONDecodeError:
            return refusal(400, "bad_body", 'expected a JSON body {"person": ..., "reason": ...}')
        if not isinstance(body, dict):
            return refusal(400, "bad_body", 'expected a JSON body {"person": ..., "reason": ...}')
        try:
            person = trace_access.check_person(body.get("person"))
            reason = trace_access.check_reason(body.get("reason"))
        except trace_access.TraceRefused as exc:
            return refusal(400, exc.code, str(exc))
        if not self.budget.take(user.name, time.monotonic()):
            wait = math.ceil(1 / self.rate) if self.rate > 0 else 3600
            return refusal(429, "rate_limited", "too many trace lookups: try again later",
                           extra=[("Retry-After", str(wait))])
        rows = await trace_access.alookup(self.r, actor=user.name, role=user.role,
                                          person=person, reason=reason, days=self.days)
        log.info("trace lookup by %s (%d rows)", user.name, len(rows))
        return http.json_response(200, {"person": person, "days": self.days, "rows": rows,
                                        "truncated": len(rows) >= trace_access.ROWS_MAX})

    async def audit(self, request: Request, user: User) -> Response:
        if user.role not in trace_access.AUDIT_ROLES:
            return refusal(403, "forbidden", "the trace audit is for admins")
        query = parse_qs(urlsplit(request.path).query)
        since_s: float | None = None
        try:
            if query.get("since", [""])[0]:
                since_s = parse_span(query["since"][0])
            limit = int(query.get("limit", ["200"])[0])
        except ValueError:
            return refusal(400, "bad_query", "since is a span like 24h or 7d; limit a number")
        rows = await trace_access.aaudit(self.r, since_s=since_s, limit=limit)
        return http.json_response(200, {"rows": rows})
