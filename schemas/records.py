"""Version 1 of the output records: alerts, tasks and their audit entries.

These are what gridwatch stores in Redis and publishes on ``gridwatch.alerts`` /
``gridwatch.tasks``. Every record is a frozen dataclass; ``to_dict()`` gives plain
JSON-ready data (tuples become lists, ``"v": 1`` added) and ``from_dict()`` is strict:
an unknown or missing field, a wrong type or an unknown state raises ``ValueError``
naming the field. A field added to version 1 later (``_LATER``) may be absent: a record
stored before it decodes with the field's default. Times are float UTC epoch seconds, as
everywhere inside gridwatch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, TypeVar

from . import commands

SCHEMA_VERSION = 1

SEVERITIES: tuple[str, ...] = ("low", "medium", "high")
"""Severities, weakest first; :data:`SEVERITY_RANK` orders them."""
SEVERITY_RANK: dict[str, int] = {name: i for i, name in enumerate(SEVERITIES)}

ALERT_STATUSES: tuple[str, ...] = (
    "new", "acknowledged", "dispatched", "resolved", "closed", "dismissed", "silenced",
    "shelved",
)
TASK_STATUSES: tuple[str, ...] = (
    "offered", "accepted", "on_site", "done", "rejected", "cancelled",
)
ROLES: tuple[str, ...] = commands.ROLES
"""The roles an audit entry may name: a person's, or the system's."""
ALERT_KINDS: tuple[str, ...] = (
    "red_code", "yellow_code", "stale_test", "cross_grid", "loiter", "silent_source",
    "escalation", "station_high_risk",
)
"""Kinds raised today; ``Alert.kind`` accepts any rule name so new rules need no new version.
``"escalation"`` is no longer raised (an escalation now raises the alert it is about); it
stays for the separate escalation alerts stored before."""


def max_severity(*severities: str) -> str:
    """The strongest of ``severities`` (``"low"`` when none is given)."""
    return max(severities, key=SEVERITY_RANK.__getitem__, default="low")


# ---- strict field checkers -------------------------------------------------------------
# Each takes a raw JSON value and returns the typed value or raises ValueError.

Check = Callable[[Any], Any]
R = TypeVar("R")
Rec = TypeVar("Rec", bound="_Record")


def _str(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("must be a non-empty string")
    return value


def _text(value: Any) -> str:
    # Notes and titles may be empty.
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _opt(check: Check) -> Check:
    return lambda value: None if value is None else check(value)


def _num(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("must be a number")
    if not math.isfinite(value):
        raise ValueError("must be finite")
    return float(value)


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("must be a whole number >= 0")
    return value


def _one_of(options: tuple[str, ...]) -> Check:
    def check(value: Any) -> str:
        if value not in options:
            raise ValueError("must be one of " + ", ".join(options))
        return str(value)

    return check


def _str_tuple(value: Any) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)):
        raise ValueError("must be a list of strings")
    return tuple(_str(v) for v in value)


def _str_dict(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError("must be an object of strings")
    return dict(value)


def _json_dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ValueError("must be an object")
    return dict(value)


def _records(cls: type[R]) -> Check:
    def check(value: Any) -> tuple[R, ...]:
        if not isinstance(value, (list, tuple)):
            raise ValueError("must be a list")
        return tuple(cls.from_dict(v) for v in value)  # type: ignore[attr-defined]

    return check


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "to_dict"):
        return value.to_dict(versioned=False)
    if isinstance(value, dict):
        return dict(value)
    return value


class _Record:
    """Shared to_dict/from_dict over a per-class table of checkers (``_CHECKS``)."""

    _CHECKS: ClassVar[dict[str, Check]] = {}
    _LATER: ClassVar[frozenset[str]] = frozenset()  # added later: absent means the default

    def to_dict(self, *, versioned: bool = True) -> dict[str, Any]:
        """The record as plain JSON-ready data; ``"v": 1`` first unless ``versioned`` is off."""
        out: dict[str, Any] = {"v": SCHEMA_VERSION} if versioned else {}
        for f in fields(self):  # type: ignore[arg-type]
            out[f.name] = _plain(getattr(self, f.name))
        return out

    @classmethod
    def from_dict(cls: type[Rec], data: Any) -> Rec:  # noqa: PYI019 (Self needs 3.11)
        """Decode plain data made by :meth:`to_dict`.

        Raises:
            ValueError: not an object, ``v`` is not 1, or a field is unknown, missing or bad.
        """
        if not isinstance(data, dict):
            raise ValueError(f"{cls.__name__}: must be an object")
        if data.get("v", SCHEMA_VERSION) != SCHEMA_VERSION or isinstance(data.get("v"), bool):
            raise ValueError(f"{cls.__name__}: unsupported version {data.get('v')!r}")
        checks = cls._CHECKS
        extra = sorted(data.keys() - checks.keys() - {"v"})
        if extra:
            raise ValueError(f"{cls.__name__}: unknown field {extra[0]!r}")
        values = {}
        for name, check in checks.items():
            if name not in data:
                if name in cls._LATER:
                    continue
                raise ValueError(f"{cls.__name__}.{name}: missing")
            try:
                values[name] = check(data[name])
            except ValueError as exc:
                raise ValueError(f"{cls.__name__}.{name}: {exc}") from None
        return cls(**values)


@dataclass(frozen=True)
class AuditEntry(_Record):
    """One thing someone did to an alert or task.

    Attributes:
        action: what was done (``"raise"``, ``"ack"``, ``"dispatch"``, ``"task_done"``, ...).
        from_state: the status before, or ``None`` for the record's creation.
        to_state: the status after (equal to ``from_state`` for notes).
        actor: who did it (a user id, or ``"system"``).
        role: the actor's role, one of :data:`ROLES`.
        ts: when, UTC epoch seconds.
        note: the actor's note or reason (may be empty).
    """

    action: str
    from_state: str | None
    to_state: str
    actor: str
    role: str
    ts: float
    note: str = ""

    _CHECKS: ClassVar[dict[str, Check]] = {
        "action": _str, "from_state": _opt(_str), "to_state": _str, "actor": _str,
        "role": _one_of(ROLES), "ts": _num, "note": _text,
    }


@dataclass(frozen=True)
class Alert(_Record):
    """An alert shown to the duty officers.

    Attributes:
        id: stable id, derived from the input that raised it (a replay gives the same id).
        kind: the rule that raised it, e.g. one of :data:`ALERT_KINDS`.
        severity: ``"high"``, ``"medium"`` or ``"low"``.
        status: one of :data:`ALERT_STATUSES` (see ``agents/lifecycle.py``).
        grid_id: the grid it belongs to, or ``None`` (e.g. a station alert).
        station_id: the station, for station alerts, else ``None``.
        ts_raised: when it was raised (event time of the input).
        ts_updated: when it last changed.
        title: a one-line English summary.
        title_zh: the same in Chinese.
        source_ids: ids of what raised it (``camera_id``, ``checkpoint_id``, ``event_id``,
            ``alert_id`` of the alert an escalation is about, ...).
        details: rule-specific JSON data (crowd size, thresholds, overdue seconds, ...).
        incident_id: the incident it was grouped into, or ``None``.
        escalation_level: the highest level it was escalated to so far (0 when none);
            for an old separate escalation alert (kind ``"escalation"``) its level.
        escalated_at: when it was last escalated (the deadline's due time), or ``None``.
        audit: every transition, oldest first.
        handover: shift-handover notes, oldest first (action ``"handover"``).
        task_id: the latest task dispatched for it, or ``None``.
        held_until: while ``silenced`` or ``shelved``, when the silence or the shelf time
            ends (it is new again then), else ``None``.
        silence_id: while ``silenced``, the silence that holds it, else ``None``.
        needs_officer: why it is back with the officers with no task (no worker of its
            grid on duty), or ``None``; cleared by its next change of status.
    """

    id: str
    kind: str
    severity: str
    status: str
    grid_id: str | None
    ts_raised: float
    ts_updated: float
    title: str
    title_zh: str
    station_id: str | None = None
    source_ids: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    incident_id: str | None = None
    escalation_level: int = 0
    escalated_at: float | None = None
    audit: tuple[AuditEntry, ...] = ()
    handover: tuple[AuditEntry, ...] = ()
    task_id: str | None = None
    held_until: float | None = None
    silence_id: str | None = None
    needs_officer: str | None = None

    _CHECKS: ClassVar[dict[str, Check]] = {
        "id": _str, "kind": _str, "severity": _one_of(SEVERITIES),
        "status": _one_of(ALERT_STATUSES), "grid_id": _opt(_str), "ts_raised": _num,
        "ts_updated": _num, "title": _text, "title_zh": _text, "station_id": _opt(_str),
        "source_ids": _str_dict, "details": _json_dict, "incident_id": _opt(_str),
        "escalation_level": _int, "escalated_at": _opt(_num), "audit": _records(AuditEntry),
        "handover": _records(AuditEntry), "task_id": _opt(_str),
        "held_until": _opt(_num), "silence_id": _opt(_str), "needs_officer": _opt(_text),
    }
    _LATER: ClassVar[frozenset[str]] = frozenset({"escalated_at", "held_until", "silence_id",
                                                  "needs_officer"})


@dataclass(frozen=True)
class Task(_Record):
    """A task pushed to the workers of one grid when an alert is dispatched.

    Attributes:
        id: ``tk-<alert id>-<n>`` for the n-th dispatch of that alert (stable on replay).
        alert_id: the alert it handles.
        grid_id: the grid whose workers may take it.
        workers: whom it is offered to: the grid's workers on duty at dispatch, changed
            while it is offered as they go on or off duty.
        status: one of :data:`TASK_STATUSES` (see ``agents/lifecycle.py``).
        assignee: the worker who accepted it, or ``None`` while offered.
        ts_created: when it was dispatched.
        ts_updated: when it last changed.
        due_at: the SLA: it should be done by then.
        note: the latest note (the dispatch instruction, then the done note or reason).
        audit: every transition, oldest first.
    """

    id: str
    alert_id: str
    grid_id: str
    workers: tuple[str, ...]
    status: str
    assignee: str | None
    ts_created: float
    ts_updated: float
    due_at: float
    note: str = ""
    audit: tuple[AuditEntry, ...] = ()

    _CHECKS: ClassVar[dict[str, Check]] = {
        "id": _str, "alert_id": _str, "grid_id": _str, "workers": _str_tuple,
        "status": _one_of(TASK_STATUSES), "assignee": _opt(_str), "ts_created": _num,
        "ts_updated": _num, "due_at": _num, "note": _text, "audit": _records(AuditEntry),
    }


@dataclass(frozen=True)
class Duty(_Record):
    """Whether a grid worker is on duty, as the latest duty command left it.

    A worker with no record is on duty (tasks are offered to every worker of a grid
    until its workers start marking their shifts).

    Attributes:
        worker: the grid worker's name.
        on: on duty (tasks of their grids are offered to them) or off.
        ts: when it was set (the command's time).
        actor: who set it (the worker, an officer or an admin).
        role: the actor's role.
        note: the actor's note (may be empty).
    """

    worker: str
    on: bool
    ts: float
    actor: str
    role: str
    note: str = ""

    _CHECKS: ClassVar[dict[str, Check]] = {
        "worker": _str, "on": _bool, "ts": _num, "actor": _str, "role": _one_of(ROLES),
        "note": _text,
    }
