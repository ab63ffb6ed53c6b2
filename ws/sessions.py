"""The gateway's door: session checks (cached both ways), login links, per-address limits.

A session check is a Redis read and a keyed hash (microseconds, no scrypt on the event
loop). A valid session is trusted for ``GOOD_S`` seconds, a refused token is refused
from memory for ``BAD_S`` seconds, both in bounded tables, so a flood of one bad cookie
costs one check. Unauthenticated failures (bad cookies, bad or used login links) are
also limited per remote address: past the address's budget the answer is 429 with no
check at all. Every real check is counted (``gridwatch_ws_session_checks``).

Login: ``GET /login?token=`` shows a page with a button and spends nothing; the
button's same-origin ``POST /login`` (the token in the form body) redeems the link and
sets the cookie (``Secure`` and ``__Host-`` when the public URL is https).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import redis.asyncio as aioredis
from websockets.http11 import Request, Response

from gridwatch import keys

from . import http, users
from .auth import (
    AuthError,
    User,
    clear_cookie,
    cookie_name,
    parse_cookies,
    session_cookie,
    split_token,
)
from .form import body_of
from .limits import KeyedBuckets, TtlCache

log = logging.getLogger("gridwatch.gateway")

GOOD_S = 10.0  # a checked session is trusted this long before Redis is asked again
BAD_S = 10.0  # a refused token is refused from memory this long
CACHE_SIZE = 50_000


class SessionGate:
    """Session checks with their caches, login pages, and the per-address failure budget.

    Args:
        r: the gateway's Redis.
        origins: the browser Origins allowed to POST a login.
        secure: the public URL is https: Secure, ``__Host-`` cookie.
        fail_rate, fail_burst: failed checks a second (and at once) per remote address.
        on_check: called with ``"ok"`` or ``"refused"`` for every real (uncached) check.
    """

    def __init__(self, r: aioredis.Redis, *, origins: tuple[str, ...], secure: bool,
                 fail_rate: float, fail_burst: float,
                 on_check: Callable[[str], None] | None = None) -> None:
        self.r = r
        self.origins = frozenset(o.rstrip("/") for o in origins)
        self.secure = secure
        self.cookie = cookie_name(secure)
        self.key = b""
        self.good: TtlCache[User] = TtlCache(ttl_s=GOOD_S, size=CACHE_SIZE)
        self.bad: TtlCache[bool] = TtlCache(ttl_s=BAD_S, size=CACHE_SIZE)
        self.fails = KeyedBuckets(rate=fail_rate, burst=fail_burst, size=CACHE_SIZE)
        self.on_check = on_check
        self.inflight: dict[str, asyncio.Future[User]] = {}

    async def start(self) -> None:
        """Read (or make) the hash key shared by every gateway and the CLI."""
        self.key = await users.aserver_key(self.r)

    # ---- sessions ----------------------------------------------------------------

    def credential(self, request: Request) -> str | None:
        """The session token of a request: cookie, bearer header or ``?session=``."""
        cookie = parse_cookies(request.headers.get("Cookie")).get(self.cookie)
        if cookie:
            return cookie
        auth = request.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        return parse_qs(urlsplit(request.path).query).get("session", [None])[0]

    async def user_of(self, token: str | None, *, fresh: bool = False) -> User:
        """The user of a session token, with the rights stored now (cached unless
        ``fresh``; a refusal is cached too).

        Raises:
            AuthError: no valid session.
        """
        split_token(token)  # a malformed token costs nothing
        assert token is not None
        now = time.monotonic()
        if not fresh:
            hit = self.good.get(token, now)
            if hit is not None:
                return hit
            if self.bad.get(token, now):
                raise AuthError("credential refused a moment ago")
        # Concurrent requests with one token wait for one check (a flood of one bad
        # cookie arrives all at once, before the first refusal is cached).
        pending = self.inflight.get(token)
        if pending is not None:
            return await asyncio.shield(pending)
        task = asyncio.ensure_future(self._check(token, now))
        self.inflight[token] = task
        task.add_done_callback(lambda t: self._settled(token, t))
        return await asyncio.shield(task)

    def _settled(self, token: str, task: asyncio.Future[User]) -> None:
        if self.inflight.get(token) is task:
            del self.inflight[token]
        if not task.cancelled():
            task.exception()  # retrieved here even when every waiter went away

    async def _check(self, token: str, now: float) -> User:
        try:
            user = await users.acheck_session(self.r, token, now=time.time(), key=self.key)
        except AuthError:
            self._counted("refused")
            self.good.pop(token)
            self.bad.put(token, True, now)
            raise
        self._counted("ok")
        self.bad.pop(token)
        self.good.put(token, user, now)
        return user

    def _counted(self, outcome: str) -> None:
        if self.on_check is not None:
            self.on_check(outcome)

    def over_budget(self, address: str) -> bool:
        """Whether ``address`` has spent its failures: answer 429, check nothing."""
        return self.fails.exhausted(address, time.monotonic())

    def failed(self, address: str) -> None:
        self.fails.take(address, time.monotonic())

    async def user_at(self, request: Request,
                      address: str) -> tuple[User | None, str | None, bool]:
        """The request's user (``None``: none or refused), its token, and whether the
        address is past its failed-check budget (then nothing was checked: answer 429).
        A refusal spends from the address's budget; a trusted session always passes."""
        token = self.credential(request)
        if not token:
            return None, None, False
        hit = self.good.get(token, time.monotonic())
        if hit is not None:
            return hit, token, False
        if self.over_budget(address):
            return None, token, True
        try:
            return await self.user_of(token), token, False
        except AuthError:
            self.failed(address)
            return None, token, False

    async def logout(self, token: str | None) -> Response:
        await users.aend_session(self.r, token)
        self.good.pop(token or "")
        return http.redirect("/signin.html",
                             extra=[("Set-Cookie", clear_cookie(secure=self.secure))])

    # ---- login links ---------------------------------------------------------------

    @staticmethod
    def _refused() -> Response:
        return http.message_page(401, "登录链接无效、已使用或已过期",
                                 "This login link is invalid, used or expired.")

    async def login_page(self, request: Request, address: str) -> Response:
        """``GET /login``: the confirmation page; a link preview spends nothing."""
        token = parse_qs(urlsplit(request.path).query).get("token", [""])[0]
        if self.over_budget(address):
            return http.response(429, b"too many failed attempts\n", "text/plain")
        try:
            record_id, _ = split_token(token)
        except AuthError:
            self.failed(address)
            return self._refused()
        if not await self.r.exists(keys.login_token(record_id)):
            self.failed(address)
            return self._refused()
        return http.confirm_page(token)

    def same_origin(self, request: Request) -> bool:
        """Whether a POST comes from the cockpit's own pages (or from a script)."""
        # A browser sends Origin (and Sec-Fetch-Site) with a form POST; scripts send none.
        origin = request.headers.get("Origin")
        if origin is not None and origin.rstrip("/") not in self.origins:
            return False
        site = request.headers.get("Sec-Fetch-Site")
        return site is None or site in ("same-origin", "none")

    async def login(self, request: Request, address: str) -> Response:
        """``POST /login`` with ``token=`` in the form body: redeem it, set the cookie."""
        if not self.same_origin(request):
            return http.response(403, b"origin not allowed\n", "text/plain")
        if self.over_budget(address):
            return http.response(429, b"too many failed attempts\n", "text/plain")
        form = parse_qs(body_of(request).decode("ascii", "replace"))
        try:
            _, session = await users.aredeem_login(self.r, form.get("token", [""])[0],
                                                   now=time.time(), key=self.key)
        except AuthError as exc:
            log.info("login refused: %s", exc)
            self.failed(address)
            return self._refused()
        cookie = session_cookie(session, max_age_s=keys.SESSION_TTL_S, secure=self.secure)
        return http.message_page(200, "登录成功", "Signed in", refresh_to="/",
                                 extra=[("Set-Cookie", cookie)])
