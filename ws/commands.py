"""Cockpit commands: which role may do what to which record, and the Kafka record.

The actions, the roles that may send each and the notes required are the command
contract's (:mod:`gridwatch.schemas.commands`), as the worker applies them. No I/O: the gateway looks the target record up, calls :func:`check`, and produces the
result of :func:`command_record` to ``gridwatch.commands`` keyed by the target id.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from gridwatch.schemas import commands as contract

from gridwatch import keys
from gridwatch.signing import Keyring, sign

from .auth import User
from .policy import owns

MAX_NOTE = 2000
_UUID = re.compile(r"^[0-9a-fA-F-]{32,36}$")


class CommandError(Exception):
    """A command is malformed or not allowed; ``reason`` is a short code for the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The checked fields of a client's ``{"op":"cmd",...}`` message.

    Raises:
        CommandError: a field is missing or malformed.
    """
    target, action = raw.get("target"), raw.get("action")
    rid, note = raw.get("id"), raw.get("note", "")
    if target not in contract.TARGETS:
        raise CommandError("bad_target")
    if not isinstance(rid, str) or not rid or len(rid) > 200:
        raise CommandError("bad_id")
    if action not in contract.actions_for(target):
        raise CommandError("bad_action")
    if not isinstance(note, str) or len(note) > MAX_NOTE:
        raise CommandError("bad_note")
    command_id = raw.get("command_id")
    if command_id is None:
        command_id = str(uuid.uuid4())
    elif not isinstance(command_id, str) or not _UUID.match(command_id):
        raise CommandError("bad_command_id")
    if contract.needs_note(target, action) and not note.strip():
        raise CommandError("note_required")
    params = raw.get("params") or {}
    if not isinstance(params, dict) or len(params) > 8 or not all(
            isinstance(k, str) and len(k) <= 40 and _short_value(v) for k, v in params.items()):
        raise CommandError("bad_params")
    if target == "silence" and action == "silence":  # a new silence: its id is derived
        rid = contract.silence_id_of(command_id)
    out = {"target": target, "id": rid, "action": action, "note": note.strip(),
           "command_id": command_id}
    if params:
        out["params"] = dict(params)
    return out


def _short_value(v: Any) -> bool:
    if isinstance(v, str):
        return len(v) <= 200
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def record_key(cmd: Mapping[str, Any]) -> str | None:
    """The stored record a command acts on (``None``: a new silence, nothing to read)."""
    if cmd["target"] == "silence":
        return None if cmd["action"] == "silence" else keys.silence(cmd["id"])
    if cmd["target"] == "duty":  # the worker whose duty it sets
        return keys.user(cmd["id"])
    return keys.alert(cmd["id"]) if cmd["target"] == "alert" else keys.task(cmd["id"])


def check(user: User, cmd: Mapping[str, Any], record: Mapping[str, Any] | None) -> None:
    """Whether ``user`` may run ``cmd`` on the target ``record`` (``None``: not found).

    The roles that may send each action are the contract's: duty officers and admins act
    on alerts, grid workers on tasks, and only on tasks of their own grids (or offered
    to them by name); station managers only watch. A duty command's record is the
    worker's user record: a grid worker sets only their own duty, an officer or admin
    any grid worker's. What a role may never do is
    ``forbidden`` whatever the record; a record the user may not see is ``not_found``,
    exactly as one that does not exist, so an id's existence is not revealed to whoever
    may not see it.

    Raises:
        CommandError: ``forbidden`` or ``not_found``.
    """
    if user.role not in contract.roles_for(cmd["target"], cmd["action"]):
        raise CommandError("forbidden")
    if cmd["target"] == "duty":  # the record: the worker's user record
        if user.role in contract.DUTY_SELF_ONLY and cmd["id"] != user.name:
            raise CommandError("forbidden")
        if record is None or record.get("role") != "grid_worker":
            raise CommandError("not_found")
        return
    if record is None:
        raise CommandError("not_found")
    if not owns(user, record):
        raise CommandError("not_found")


def command_record(user: User, cmd: Mapping[str, Any], *, now: float,
                   keyring: Keyring | None = None) -> dict[str, Any]:
    """The ``gridwatch.commands`` record of a checked command (the channel contract),
    signed with ``keyring`` (workers refuse unsigned commands; ``None``: the bare record)."""
    record = {
        "v": 1,
        "command_id": cmd["command_id"],
        "target": cmd["target"],
        "id": cmd["id"],
        "action": cmd["action"],
        "actor": user.name,
        "role": user.role,
        "grids": list(user.grids),
        "note": cmd["note"],
        "ts": datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="milliseconds"),
    }
    if cmd.get("params"):
        record["params"] = dict(cmd["params"])
    return sign(record, keyring) if keyring is not None else record
