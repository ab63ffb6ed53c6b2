"""Authentication decisions without I/O: users, secrets, sessions, Origin and rate limits.

A login link and a session are both a *credential* ``<id>.<secret>``: the id names the
Redis record, the secret is checked against its keyed hash (HMAC-SHA256 with a server
key), so a copy of Redis does not let anyone log in. The secrets are 256 random bits, so
a slow hash adds nothing but CPU: a flood of bad secrets must stay cheap. Records of the
older salted-scrypt format still verify (the gateway runs that check off its event
loop). Everything here takes the time as an argument and touches no network, so the
tests need no servers.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gridwatch.schemas.commands import PERSON_ROLES

ROLES: tuple[str, ...] = PERSON_ROLES
SESSION_COOKIE = "gw_session"
# Over https the cookie takes the __Host- prefix: the browser then insists on Secure,
# Path=/ and no Domain, so no sibling host can plant or read it.
SECURE_COOKIE = "__Host-gw_session"
HMAC_ALG = "hmac-sha256"

# The older scrypt costs: records of that format (issued before the keyed hash, or by
# tools that still ask for it with ``n=``) verify at the cost they were made with.
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
    """The salted scrypt hash of a secret (32 bytes): the older record format."""
    return hashlib.scrypt(secret.encode(), salt=salt, n=n, r=8, p=1, dklen=32)


def keyed_hash(secret: str, key: bytes) -> bytes:
    """HMAC-SHA256 of a secret under the server key (32 bytes, a microsecond)."""
    return hmac.new(key, secret.encode(), hashlib.sha256).digest()


def is_legacy(record: Mapping[str, Any]) -> bool:
    """Whether a stored record uses the older (slow) salted-scrypt hash."""
    return record.get("alg") != HMAC_ALG


@dataclass(frozen=True)
class Credential:
    """A newly issued credential: what to hand out and what to store.

    Attributes:
        token: ``<id>.<secret>``, shown once (in the link or the cookie), never stored.
        record_id: the id part, the Redis key suffix.
        record: the stored form: user, hash (hex), expiry, the user's epoch.
    """

    token: str
    record_id: str
    record: dict[str, Any] = field(default_factory=dict)


def issue(user: str, *, now: float, ttl_s: float, key: bytes | None = None,
          epoch: str | None = None, n: int = SESSION_N) -> Credential:
    """A fresh credential for ``user`` valid for ``ttl_s`` seconds from ``now``.

    With ``key`` the record holds the keyed hash and the user's ``epoch`` (a user removed
    and made again has a new epoch, so this credential dies with the old one); without,
    the older salted scrypt of cost ``n``.
    """
    record_id = secrets.token_urlsafe(12)
    secret = secrets.token_urlsafe(32)
    record: dict[str, Any]
    if key is not None:
        record = {"user": user, "alg": HMAC_ALG, "hash": keyed_hash(secret, key).hex(),
                  "epoch": epoch, "expires": now + ttl_s, "issued": now}
    else:
        salt = secrets.token_bytes(16)
        record = {"user": user, "salt": salt.hex(),
                  "hash": hash_secret(secret, salt, n=n).hex(), "n": n,
                  "expires": now + ttl_s, "issued": now}
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


def verify(record: Mapping[str, Any] | None, secret: str, *, now: float,
           key: bytes | None = None) -> str:
    """The user name a stored record grants to ``secret``.

    A record of the keyed format needs ``key``; an older one is checked with scrypt
    (slow: the gateway runs it in a thread). A record that is not a mapping of the
    expected fields is refused like a wrong secret, never a crash.

    Raises:
        AuthError: no record, expired, malformed, or the secret does not match.
    """
    if record is None:
        raise AuthError("unknown or already used credential")
    try:
        if float(record["expires"]) <= now:
            raise AuthError("credential expired")
        if not is_legacy(record):
            if key is None:
                raise AuthError("no server key to check the credential")
            digest = keyed_hash(secret, key)
        else:
            digest = hash_secret(secret, bytes.fromhex(record["salt"]), n=int(record["n"]))
        stored = bytes.fromhex(record["hash"])
        user = str(record["user"])
    except (KeyError, TypeError, ValueError):
        raise AuthError("malformed credential record: log in again") from None
    if not hmac.compare_digest(digest, stored):
        raise AuthError("credential does not match")
    return user


def parse_cookies(header: str | None) -> dict[str, str]:
    """The name=value pairs of a Cookie header (last one wins)."""
    out: dict[str, str] = {}
    for part in (header or "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name:
            out[name] = value
    return out


def cookie_name(secure: bool) -> str:
    """The session cookie's name: ``__Host-`` prefixed over https."""
    return SECURE_COOKIE if secure else SESSION_COOKIE


def session_cookie(token: str, *, max_age_s: int, secure: bool = False) -> str:
    """The Set-Cookie value carrying a session: HttpOnly, SameSite=Strict, whole site;
    over https also Secure, under the ``__Host-`` name."""
    flags = "; Secure" if secure else ""
    return (f"{cookie_name(secure)}={token}; Max-Age={max_age_s}; Path=/; HttpOnly; "
            f"SameSite=Strict{flags}")


def clear_cookie(*, secure: bool = False) -> str:
    """The Set-Cookie value that removes the session cookie."""
    flags = "; Secure" if secure else ""
    return f"{cookie_name(secure)}=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict{flags}"


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
