"""Cockpit users, one-time login links and sessions in Redis.

A login link carries ``<id>.<secret>``; Redis keeps only the salted scrypt hash under
``gw:login:<id>`` with a 24-hour TTL, and redeeming it deletes it (GETDEL), so a link
works once. Redeeming issues a session the same way (``gw:session:<id>``, 12 hours by
default). The synchronous functions serve the CLI; the ``a``-prefixed ones the gateway.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import redis
import redis.asyncio as aioredis

from . import keys
from .ws.auth import LOGIN_N, SESSION_N, AuthError, User, issue, split_token, verify


def add_user(r: redis.Redis, user: User, *, now: float | None = None) -> str:
    """Store (or replace) a user and return a fresh one-time login token."""
    pipe = r.pipeline()
    pipe.set(keys.user(user.name), orjson.dumps(user.to_dict()))
    pipe.sadd(keys.USERS, user.name)
    pipe.execute()
    return new_login(r, user.name, now=now)


def new_login(r: redis.Redis, name: str, *, now: float | None = None) -> str:
    """A new one-time login token for an existing user.

    Raises:
        AuthError: no such user.
    """
    if not r.exists(keys.user(name)):
        raise AuthError(f"no user {name!r}")
    cred = issue(name, now=time.time() if now is None else now, ttl_s=keys.LOGIN_TTL_S,
                 n=LOGIN_N)
    r.set(keys.login_token(cred.record_id), orjson.dumps(cred.record), ex=keys.LOGIN_TTL_S)
    return cred.token


def list_users(r: redis.Redis) -> list[User]:
    """Every user, by name."""
    names = sorted(n.decode() if isinstance(n, bytes) else n for n in r.smembers(keys.USERS))
    raw = r.mget([keys.user(n) for n in names]) if names else []
    return [User.from_dict(orjson.loads(v)) for v in raw if v]


def remove_user(r: redis.Redis, name: str) -> bool:
    """Delete a user; their sessions fail at the next check. Returns whether it existed."""
    pipe = r.pipeline()
    pipe.delete(keys.user(name))
    pipe.srem(keys.USERS, name)
    return bool(pipe.execute()[0])


def login_link(host: str, port: int, token: str) -> str:
    """The URL a user opens once to log in."""
    return f"http://{host}:{port}/login?token={token}"


# ---- gateway (asyncio) ---------------------------------------------------------------


async def aget_user(r: aioredis.Redis, name: str) -> User | None:
    """A user by name, or ``None``."""
    raw = await r.get(keys.user(name))
    return User.from_dict(orjson.loads(raw)) if raw else None


async def aredeem_login(r: aioredis.Redis, token: str, *, now: float,
                        session_ttl_s: int = keys.SESSION_TTL_S) -> tuple[User, str]:
    """Use a login token once and open a session.

    Returns:
        The user and the new session token (for the cookie).

    Raises:
        AuthError: malformed, unknown, already used, expired, or the user is gone.
    """
    record_id, secret = split_token(token)
    # GETDEL first: a second use of the same link finds nothing, even when both race.
    raw = await r.getdel(keys.login_token(record_id))
    name = verify(orjson.loads(raw) if raw else None, secret, now=now)
    user = await aget_user(r, name)
    if user is None:
        raise AuthError("user removed")
    cred = issue(name, now=now, ttl_s=session_ttl_s, n=SESSION_N)
    await r.set(keys.session(cred.record_id), orjson.dumps(cred.record), ex=session_ttl_s)
    return user, cred.token


async def acheck_session(r: aioredis.Redis, token: str | None, *, now: float) -> User:
    """The user a session token belongs to.

    Raises:
        AuthError: malformed, unknown, expired, or the user is gone.
    """
    record_id, secret = split_token(token)
    raw = await r.get(keys.session(record_id))
    record: dict[str, Any] | None = orjson.loads(raw) if raw else None
    name = verify(record, secret, now=now)
    user = await aget_user(r, name)
    if user is None:
        raise AuthError("user removed")
    return user


async def aend_session(r: aioredis.Redis, token: str | None) -> None:
    """Log out: delete the session record (a bad token is ignored)."""
    try:
        record_id, _ = split_token(token)
    except AuthError:
        return
    await r.delete(keys.session(record_id))
