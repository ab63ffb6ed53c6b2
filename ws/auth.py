"""Authentication decisions without I/O: users, secrets, sessions, Origin and rate limits.

A login link and a session are both a *credential* ``<id>.<secret>``: the id names the
Redis record, the secret is checked against its salted scrypt hash, so a copy of Redis
does not let anyone log in. Everything here takes the time as an argument and touches
no network, so the tests need no servers.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ROLES: tuple[str, ...] = ("duty_officer", "grid_worker", "station_manager", "admin")
SESSION_COOKIE = "gw_session"

# scrypt cost: n=2**14, r=8 costs ~30 ms and 16 MiB; a session check runs per connection
# and per page asset, so sessions use a cheaper n (their secrets are 256 random bits,
# the hash only guards a stolen Redis copy) and the gateway caches a checked session.
LOGIN_N = 2**14
SESSION_N = 2**10


class AuthError(Exception):
    """A credential is missing, malformed, unknown, used or expired."""


@dataclass(frozen=True)
class User:
    """A cockpit user.

    Attributes:
        name: unique user name (also the worker id for grid workers).
        role: one of :data:`ROLES`.
        grids: the grids a grid worker owns.
        stations: the stations a station manager runs.
    """

    name: str
    role: str
    grids: tuple[str, ...] = ()
    stations: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name or any(c in self.name for c in " .:/\\\t\n"):
            raise ValueError(f"user name {self.name!r}: no spaces, dots, colons or slashes")
        if self.role not in ROLES:
            raise ValueError(f"role {self.role!r}: must be one of {', '.join(ROLES)}")
        if self.role == "grid_worker" and not self.grids:
            raise ValueError("a grid worker needs --grids")
        if self.role == "station_manager" and not self.stations:
            raise ValueError("a station manager needs --stations")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "grids": list(self.grids),
                "stations": list(self.stations)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> User:
        return cls(name=str(data["name"]), role=str(data["role"]),
                   grids=tuple(data.get("grids") or ()),
                   stations=tuple(data.get("stations") or ()))


def hash_secret(secret: str, salt: bytes, *, n: int) -> bytes:
    """The salted scrypt hash of a secret (32 bytes)."""
    return hashlib.scrypt(secret.encode(), salt=salt, n=n, r=8, p=1, dklen=32)


@dataclass(frozen=True)
class Credential:
    """A newly issued credential: what to hand out and what to store.

    Attributes:
        token: ``<id>.<secret>``, shown once (in the link or the cookie), never stored.
        record_id: the id part, the Redis key suffix.
        record: the stored form: user, salt and hash (hex), expiry, scrypt cost.
    """

    token: str
    record_id: str
    record: dict[str, Any] = field(default_factory=dict)


def issue(user: str, *, now: float, ttl_s: float, n: int) -> Credential:
    """A fresh credential for ``user`` valid for ``ttl_s`` seconds from ``now``."""
    record_id = secrets.token_urlsafe(12)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_bytes(16)
    record = {"user": user, "salt": salt.hex(), "hash": hash_secret(secret, salt, n=n).hex(),
              "n": n, "expires": now + ttl_s, "issued": now}
    return Credential(token=f"{record_id}.{secret}", record_id=record_id, record=record)


def split_token(token: str | None) -> tuple[str, str]:
    """The id and secret of ``<id>.<secret>``.

    Raises:
        AuthError: the token is missing or malformed.
    """
    if not token or token.count(".") != 1 or len(token) > 200:
        raise AuthError("missing or malformed credential")
    record_id, secret = token.split(".")
    if not record_id or not secret:
        raise AuthError("missing or malformed credential")
    return record_id, secret


def verify(record: Mapping[str, Any] | None, secret: str, *, now: float) -> str:
    """The user name a stored record grants to ``secret``.

    Raises:
        AuthError: no record, expired, or the secret does not match.
    """
    if record is None:
        raise AuthError("unknown or already used credential")
    if float(record["expires"]) <= now:
        raise AuthError("credential expired")
    digest = hash_secret(secret, bytes.fromhex(record["salt"]), n=int(record["n"]))
    if not hmac.compare_digest(digest, bytes.fromhex(record["hash"])):
        raise AuthError("credential does not match")
    return str(record["user"])


def parse_cookies(header: str | None) -> dict[str, str]:
    """The name=value pairs of a Cookie header (last one wins)."""
    out: dict[str, str] = {}
    for part in (header or "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name:
            out[name] = value
    return out


def session_cookie(token: str, *, max_age_s: int, secure: bool = False) -> str:
    """The Set-Cookie value carrying a session: HttpOnly, SameSite=Strict, whole site."""
    flags = "; Secure" if secure else ""
    return (f"{SESSION_COOKIE}={token}; Max-Age={max_age_s}; Path=/; HttpOnly; "
            f"SameSite=Strict{flags}")


def clear_cookie() -> str:
    """The Set-Cookie value that removes the session cookie."""
    return f"{SESSION_COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict"


def origin_allowed(origin: str | None, allowed: tuple[str, ...]) -> bool:
    """Whether a request may proceed given its Origin header.

    No Origin means a non-browser client (benchmarks, scripts): allowed, it still needs a
    credential. A browser always sends Origin on a WebSocket, so cross-site pages that
    would ride on the cookie are refused here.
    """
    if origin is None:
        return True
    return origin.rstrip("/") in {o.rstrip("/") for o in allowed}


class TokenBucket:
    """A token bucket: ``rate`` commands a second on average, bursts up to ``burst``.

    >>> b = TokenBucket(rate=10, burst=2, now=0.0)
    >>> [b.take(0.0), b.take(0.0), b.take(0.0), b.take(0.1)]
    [True, True, False, True]
    """

    def __init__(self, *, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def take(self, now: float) -> bool:
        """Spend one token if there is one; ``False`` means over the limit."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False
