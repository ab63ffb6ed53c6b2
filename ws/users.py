"""Cockpit users, one-time login links and sessions in Redis.

A login link carries ``<id>.<secret>``; Redis keeps only the keyed hash of the secret
under ``gw:login:<id>`` with a 24-hour TTL, and redeeming it deletes it (GETDEL), so a
link works once. Redeeming issues a session the same way (``gw:session:<id>``, 12 hours
by default). The hash key is made once per Redis database (``gw:auth-key``) and shared
by every gateway and the CLI.

Each user record carries an *epoch*, fixed when the name is first stored; every link
and session carries the epoch it was issued under. Removing a user deletes its record,
its sessions and its unused links (each user has an index of them); a user made again
under the same name gets a new epoch, so a copy of an old cookie or link stays dead.
The synchronous functions serve the CLI; the ``a``-prefixed ones the gateway. Their
pipelines are transactions on one server; on a Redis Cluster redis-py splits them by
node (the keys are in many slots), so every command in them names one key.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import orjson
import redis
import redis.asyncio as aioredis

from gridwatch import keys
from gridwatch.redis_client import mget
from gridwatch.settings import Settings

from .auth import AuthError, User, is_legacy, issue, split_token, verify

AUTH_KEY = keys.AUTH_KEY
user_sessions = keys.user_sessions
user_logins = keys.user_logins


def server_key(r: redis.Redis) -> bytes:
    """The hash key of this Redis database, made on first use (every process agrees)."""
    r.set(AUTH_KEY, secrets.token_hex(32), nx=True)
    return bytes.fromhex(_text(r.get(AUTH_KEY)))


async def aserver_key(r: aioredis.Redis) -> bytes:
    await r.set(AUTH_KEY, secrets.token_hex(32), nx=True)
    return bytes.fromhex(_text(await r.get(AUTH_KEY)))


def _text(value: bytes | str | None) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


def public_base(s: Settings) -> str:
    """The cockpit's address as users reach it: the public URL, else the gateway's."""
    return s.public_url or f"http://{s.gateway_host}:{s.gateway_port}"


def login_link(s: Settings, token: str) -> str:
    """The URL a user opens once to log in (it shows a page; its button signs in)."""
    return f"{public_base(s)}/login?token={token}"


def _record(raw: bytes | str | None) -> dict[str, Any] | None:
    # Anything but a JSON object is no record at all (a refusal, never a crash).
    try:
        record = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


def add_user(r: redis.Redis, user: User, *, now: float | None = None) -> str:
    """Store a user (or change an existing one's role, grids, stations) and return a
    fresh one-time login token. A changed user keeps its sessions; the gateway sees the
    new rights at its next check of each open socket."""
    old = _record(r.get(keys.user(user.name)))
    epoch = (old or {}).get("epoch") or secrets.token_hex(8)
    pipe = r.pipeline()
    pipe.set(keys.user(user.name), orjson.dumps({**user.to_dict(), "epoch": epoch}))
    pipe.sadd(keys.USERS, user.name)
    pipe.execute()
    return new_login(r, user.name, now=now)


def new_login(r: redis.Redis, name: str, *, now: float | None = None) -> str:
    """A new one-time login token for an existing user.

    Raises:
        AuthError: no such user.
    """
    record = _record(r.get(keys.user(name)))
    if record is None:
        raise AuthError(f"no user {name!r}")
    cred = issue(name, now=time.time() if now is None else now, ttl_s=keys.LOGIN_TTL_S,
                 key=server_key(r), epoch=record.get("epoch"))
    pipe = r.pipeline()
    pipe.set(keys.login_token(cred.record_id), orjson.dumps(cred.record), ex=keys.LOGIN_TTL_S)
    pipe.sadd(user_logins(name), cred.record_id)
    pipe.expire(user_logins(name), keys.LOGIN_TTL_S)
    pipe.execute()
    return cred.token


def list_users(r: redis.Redis) -> list[User]:
    """Every user, by name."""
    names = sorted(_text(n) for n in r.smembers(keys.USERS))
    raw = mget(r, [keys.user(n) for n in names])
    return [User.from_dict(orjson.loads(v)) for v in raw if v]


def remove_user(r: redis.Redis, name: str) -> bool:
    """Delete a user with its sessions and unused login links. Returns whether it
    existed. Open sockets close at the gateway's next check (its session is gone)."""
    sessions = [keys.session(_text(i)) for i in r.smembers(user_sessions(name))]
    logins = [keys.login_token(_text(i)) for i in r.smembers(user_logins(name))]
    # One DEL per key: on a cluster the keys live in different slots (there the pipeline
    # is split by node and is not a transaction; on one server it stays one MULTI/EXEC).
    pipe = r.pipeline()
    pipe.delete(keys.user(name))
    pipe.srem(keys.USERS, name)
    for key in (user_sessions(name), user_logins(name), *sessions, *logins):
        pipe.delete(key)
    return bool(pipe.execute()[0])


# ---- gateway (asyncio) ---------------------------------------------------------------


async def aget_record(r: aioredis.Redis, name: str) -> dict[str, Any] | None:
    """A user's stored record (with its epoch), or ``None``."""
    return _record(await r.get(keys.user(name)))


async def aget_user(r: aioredis.Redis, name: str) -> User | None:
    """A user by name, or ``None``."""
    record = await aget_record(r, name)
    return User.from_dict(record) if record else None


async def _verify(record: dict[str, Any] | None, secret: str, *, now: float,
                  key: bytes) -> str:
    # An older scrypt record costs milliseconds of CPU: never on the event loop.
    if record is not None and is_legacy(record):
        return await asyncio.to_thread(verify, record, secret, now=now)
    return verify(record, secret, now=now, key=key)


async def _current(r: aioredis.Redis, name: str, record: dict[str, Any]) -> User:
    # The user as stored now, if the credential was issued to this incarnation of it.
    stored = await aget_record(r, name)
    if stored is None:
        raise AuthError("user removed")
    if stored.get("epoch") != record.get("epoch"):
        raise AuthError("user removed and made again: log in again")
    try:
        return User.from_dict(stored)
    except (KeyError, TypeError, ValueError):
        raise AuthError("malformed user record") from None


async def aredeem_login(r: aioredis.Redis, token: str, *, now: float, key: bytes,
                        session_ttl_s: int = keys.SESSION_TTL_S) -> tuple[User, str]:
    """Use a login token once and open a session.

    Returns:
        The user and the new session token (for the cookie).

    Raises:
        AuthError: malformed, unknown, already used, expired, or the user is gone.
    """
    record_id, secret = split_token(token)
    # GETDEL first: a second use of the same link finds nothing, even when both race.
    record = _record(await r.getdel(keys.login_token(record_id)))
    name = await _verify(record, secret, now=now, key=key)
    assert record is not None
    user = await _current(r, name, record)
    cred = issue(name, now=now, ttl_s=session_ttl_s, key=key, epoch=record.get("epoch"))
    pipe = r.pipeline()
    pipe.set(keys.session(cred.record_id), orjson.dumps(cred.record), ex=session_ttl_s)
    pipe.sadd(user_sessions(name), cred.record_id)
    pipe.expire(user_sessions(name), session_ttl_s)
    pipe.srem(user_logins(name), record_id)
    await pipe.execute()
    return user, cred.token


async def acheck_session(r: aioredis.Redis, token: str | None, *, now: float,
                         key: bytes) -> User:
    """The user a session token belongs to, with the rights stored now.

    Raises:
        AuthError: malformed, unknown, expired, or the user is gone or made again.
    """
    record_id, secret = split_token(token)
    record = _record(await r.get(keys.session(record_id)))
    name = await _verify(record, secret, now=now, key=key)
    assert record is not None
    return await _current(r, name, record)


async def aend_session(r: aioredis.Redis, token: str | None) -> None:
    """Log out: delete the session record (a bad token is ignored)."""
    try:
        record_id, _ = split_token(token)
    except AuthError:
        return
    record = _record(await r.getdel(keys.session(record_id)))
    if isinstance(record, dict) and isinstance(record.get("user"), str):
        await r.srem(user_sessions(record["user"]), record_id)
