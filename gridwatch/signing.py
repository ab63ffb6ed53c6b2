"""Signed commands: the worker acts only on commands signed with a key it shares.

Anyone who can write to ``gridwatch.commands`` could otherwise claim any actor and
role. The gateway (after checking the user's session and rights), the CLI and the demo
crew sign each command record; the worker verifies it before decoding it and
dead-letters it with the reason when it is unsigned or the signature does not match.

The signature is HMAC-SHA256 over the canonical encoding of the record: orjson with
sorted keys, every field but ``sig`` itself. ``sig`` is ``{"kid": key id, "mac": hex}``;
the key id lets keys be rotated: the first key of a :class:`Keyring` signs, all of them
verify. Pure: no I/O (``gridwatch.command_keys`` reads and makes the keys).

>>> ring = Keyring.parse("k1:" + "s" * 32)
>>> signed = sign({"v": 1, "action": "ack"}, ring)
>>> verify(signed, ring)
'k1'
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from .schemas.errors import ConfigError, DecodeError

SIG_FIELD = "sig"
MIN_SECRET = 16  # characters; a generated key has 43
_KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@dataclass(frozen=True)
class Keyring:
    """Command keys: ``(key id, secret)`` pairs; the first signs, all verify."""

    keys: tuple[tuple[str, bytes], ...]

    def __post_init__(self) -> None:
        if not self.keys:
            raise ConfigError("command keys: none given")
        ids = [kid for kid, _ in self.keys]
        if len(set(ids)) != len(ids):
            raise ConfigError("command keys: a key id appears twice")

    def __repr__(self) -> str:  # never the secrets
        return f"Keyring(ids={[kid for kid, _ in self.keys]})"

    @property
    def ids(self) -> list[str]:
        return [kid for kid, _ in self.keys]

    @classmethod
    def parse(cls, text: str, *, source: str = "GRIDWATCH_COMMAND_KEYS") -> Keyring:
        """``"id:secret,id2:secret2"`` (commas or new lines; ``#`` starts a comment).

        Raises:
            ConfigError: an entry is malformed; the message names ``source`` and the
                entry's position or key id, never a secret.
        """
        keys = []
        entries = [e.strip() for line in text.splitlines() for e in line.split("#", 1)[0].split(",")]
        for n, entry in enumerate(e for e in entries if e):
            kid, sep, secret = entry.partition(":")
            if not sep or not _KEY_ID.match(kid):
                raise ConfigError(f"{source}: entry {n + 1} is not key_id:secret (a key id is "
                                  "1-64 letters, digits, '.', '_' or '-')")
            if len(secret) < MIN_SECRET:
                raise ConfigError(f"{source}: the secret of key {kid!r} is shorter than "
                                  f"{MIN_SECRET} characters")
            keys.append((kid, secret.encode()))
        if not keys:
            raise ConfigError(f"{source}: no key given")
        return cls(tuple(keys))


def canonical(record: Mapping[str, Any]) -> bytes:
    """The bytes a signature covers: the record without ``sig``, keys sorted."""
    return orjson.dumps({k: v for k, v in record.items() if k != SIG_FIELD},
                        option=orjson.OPT_SORT_KEYS)


def _mac(secret: bytes, record: Mapping[str, Any]) -> str:
    return hmac.new(secret, canonical(record), hashlib.sha256).hexdigest()


def sign(record: Mapping[str, Any], keyring: Keyring) -> dict[str, Any]:
    """A copy of ``record`` signed with the keyring's first key."""
    kid, secret = keyring.keys[0]
    return {**{k: v for k, v in record.items() if k != SIG_FIELD},
            SIG_FIELD: {"kid": kid, "mac": _mac(secret, record)}}


def verify(record: Mapping[str, Any], keyring: Keyring) -> str:
    """Check a record's signature; returns the key id that signed it.

    Raises:
        DecodeError: field ``sig``; the reason says whether it is missing, malformed,
            made with an unknown key or does not match (an altered record).
    """
    sig = record.get(SIG_FIELD)
    if sig is None:
        raise DecodeError("sig: missing (the command is not signed)", SIG_FIELD)
    if not isinstance(sig, dict) or not isinstance(sig.get("kid"), str) \
            or not isinstance(sig.get("mac"), str):
        raise DecodeError("sig: must be an object with kid and mac", SIG_FIELD)
    secret = dict(keyring.keys).get(sig["kid"])
    if secret is None:
        raise DecodeError(f"sig: unknown key id {sig['kid'][:64]!r}", SIG_FIELD)
    if not hmac.compare_digest(_mac(secret, record), sig["mac"]):
        raise DecodeError("sig: does not match the command (altered, or signed with another "
                          "key)", SIG_FIELD)
    return sig["kid"]  # type: ignore[no-any-return]


def verify_raw(raw: bytes | None, keyring: Keyring) -> str:
    """:func:`verify` for a record as it arrives from Kafka.

    Raises:
        DecodeError: not a JSON object, or the signature is missing or wrong.
    """
    if raw is None:
        raise DecodeError("empty command")
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise DecodeError("invalid JSON") from None
    if not isinstance(record, dict):
        raise DecodeError("command must be a JSON object")
    return verify(record, keyring)
