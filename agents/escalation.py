"""Escalation deadlines as data, so that a restart fires every overdue escalation once.

Each alert has at most one running chain of deadlines, chosen by its state:

* ``ack``: a new alert not acknowledged within ``ack_s[severity]`` (high 5 min,
  medium 15, low 60); level k falls due at ``ts_raised + k * ack_s``.
* ``accept``: its task still offered ``accept_s`` (10 min) after dispatch; level k at
  ``ts_created + k * accept_s``.
* ``done``: its task accepted or on site at ``due_at`` (the SLA, 2 h by default);
  level k at ``due_at + (k - 1) * done_repeat_s`` (30 min).

A silenced or shelved alert is not escalated: a shelved one is watched by its shelf end
(kind ``shelf``, at ``held_until``), a silenced one by its silence's end (stored with the
silence). An alert new again after either is acknowledged from then: its ``ack`` chain
counts from the time it became new last (:func:`new_since`), not from its raise.

The caller stores the one :class:`Deadline` per alert (e.g. a Redis sorted set scored by
``due_at`` plus the deadline JSON under the alert id), recomputes it with
:func:`next_deadline` after every change of the alert or its task, and on a timer
takes :func:`due` ones and calls :func:`fire`. An escalation raises the alert it is about
(no separate alert): its ``escalation_level`` goes up, ``escalated_at`` is the deadline's
``due_at`` and an ``escalate`` audit entry says why. Firing is a pure function of the
deadline and the alert, and the same deadline applied twice changes nothing; storing
the raised alert and swapping the fired deadline for the next one in the same
transaction (under the alert's version) makes each level fire exactly once, however
long the worker was down.
A deadline whose state has moved on (e.g. acknowledged) fires nothing: acknowledging
stops the ``ack`` chain.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..schemas.errors import ConfigError
from ..schemas.records import Alert, AuditEntry, Task
from .lifecycle import DEFAULT_SLA_S, SYSTEM_ACTOR

KINDS = ("ack", "accept", "done", "shelf")
"""``shelf`` is no escalation: the end of a shelved alert's shelf time, stored and fired
like one (the timers unshelve the alert then, and its ``ack`` chain starts)."""


@dataclass(frozen=True)
class EscalationConfig:
    """Escalation intervals in seconds; ``max_level`` ``None`` repeats without end."""

    ack_s: Mapping[str, float] = field(
        default_factory=lambda: {"high": 300.0, "medium": 900.0, "low": 3600.0})
    accept_s: float = 600.0
    sla_s: float = DEFAULT_SLA_S
    done_repeat_s: float = 1800.0
    max_level: int | None = None
    # Never escalated: the separate escalation alerts stored before escalations raised
    # the alert they are about.
    exempt_kinds: frozenset[str] = frozenset({"escalation"})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EscalationConfig:
        """Build from minutes: ``{"ack_min": {"high": 5, ...}, "accept_min": 10,
        "sla_min": 120, "done_repeat_min": 30, "max_level": null}``.

        Raises:
            ConfigError: an unknown key or a non-positive value.
        """
        known = {"ack_min", "accept_min", "sla_min", "done_repeat_min", "max_level"}
        extra = sorted(set(data) - known)
        if extra:
            raise ConfigError(f"escalation config: unknown key {extra[0]!r}")
        ack = {"high": 5, "medium": 15, "low": 60, **data.get("ack_min", {})}
        if set(ack) != {"high", "medium", "low"}:
            raise ConfigError("escalation config: ack_min takes high, medium and low")
        max_level = data.get("max_level")
        if max_level is not None and (not isinstance(max_level, int) or max_level < 1):
            raise ConfigError(f"escalation config: max_level must be >= 1 or null, got {max_level!r}")
        return cls(
            ack_s={k: _minutes(v, f"ack_min.{k}") for k, v in ack.items()},
            accept_s=_minutes(data.get("accept_min", 10), "accept_min"),
            sla_s=_minutes(data.get("sla_min", 120), "sla_min"),
            done_repeat_s=_minutes(data.get("done_repeat_min", 30), "done_repeat_min"),
            max_level=max_level,
        )


def _minutes(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"escalation config: {where} must be a positive number of minutes")
    return float(value) * 60.0


@dataclass(frozen=True)
class Deadline:
    """One pending escalation.

    Attributes:
        id: ``es-<kind>-<level>-<subject>`` (before escalations raised the alert they are
            about, also the id of the separate escalation alert it fired).
        kind: ``"ack"``, ``"accept"`` or ``"done"``.
        alert_id: the alert it watches (the key it is stored under).
        task_id: the task it watches (``accept``/``done``), else ``None``.
        level: the level it fires (1, 2, ...).
        due_at: when it fires, UTC epoch seconds.
        interval_s: how long after it the next level falls due.
    """

    id: str
    kind: str
    alert_id: str
    task_id: str | None
    level: int
    due_at: float
    interval_s: float

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data, with ``"v": 1``."""
        return {"v": 1, "id": self.id, "kind": self.kind, "alert_id": self.alert_id,
                "task_id": self.task_id, "level": self.level, "due_at": self.due_at,
                "interval_s": self.interval_s}

    @classmethod
    def from_dict(cls, data: Any) -> Deadline:
        """Decode :meth:`to_dict` output.

        Raises:
            ValueError: a field is missing, unknown or of the wrong type.
        """
        names = {"id", "kind", "alert_id", "task_id", "level", "due_at", "interval_s"}
        if not isinstance(data, dict) or set(data) - {"v"} != names or data.get("v", 1) != 1:
            raise ValueError("Deadline: expected the fields " + ", ".join(sorted(names)))
        ok = (isinstance(data["id"], str) and data["kind"] in KINDS
              and isinstance(data["alert_id"], str)
              and (data["task_id"] is None or isinstance(data["task_id"], str))
              and isinstance(data["level"], int) and not isinstance(data["level"], bool)
              and data["level"] >= 1
              and all(isinstance(data[k], (int, float)) and not isinstance(data[k], bool)
                      for k in ("due_at", "interval_s")))
        if not ok:
            raise ValueError(f"Deadline: bad field values in {data!r:.200}")
        return cls(data["id"], data["kind"], data["alert_id"], data["task_id"], data["level"],
                   float(data["due_at"]), float(data["interval_s"]))


def _make(kind: str, alert: Alert, task: Task | None, level: int, first_due: float,
          interval: float) -> Deadline:
    subject = alert.id if task is None else task.id
    return Deadline(id=f"es-{kind}-{level}-{subject}", kind=kind, alert_id=alert.id,
                    task_id=None if task is None else task.id, level=level,
                    due_at=first_due + (level - 1) * interval, interval_s=interval)


def new_since(alert: Alert) -> float:
    """When the alert last became ``new``: raised, or reopened or unshelved since."""
    for entry in reversed(alert.audit):
        if entry.to_state == "new" and entry.from_state != "new":
            return entry.ts
    return alert.ts_raised


def next_deadline(alert: Alert, task: Task | None, config: EscalationConfig = EscalationConfig(),
                  current: Deadline | None = None) -> Deadline | None:
    """The deadline the alert should be watched by now, given its state.

    Args:
        alert: the alert as it is now.
        task: its latest task (``alert.task_id``), or ``None``.
        current: the deadline stored for the alert; when it belongs to the same chain its
            level is kept (levels already fired are not fired again), with ``due_at``
            recomputed (e.g. after the severity grew).

    Returns:
        the deadline to store, or ``None`` when nothing is awaited (remove the stored one).
    """
    if alert.kind in config.exempt_kinds:
        return None
    if alert.status == "shelved" and alert.held_until is not None:
        return Deadline(id=f"es-shelf-1-{alert.id}", kind="shelf", alert_id=alert.id,
                        task_id=None, level=1, due_at=alert.held_until, interval_s=0.0)
    if alert.status == "new":
        kind, subject, interval = "ack", None, config.ack_s[alert.severity]
        first = new_since(alert) + interval
    elif alert.status == "dispatched" and task is not None and task.id == alert.task_id:
        if task.status == "offered":
            kind, subject, interval = "accept", task, config.accept_s
            first = task.ts_created + interval
        elif task.status in ("accepted", "on_site"):
            kind, subject, interval = "done", task, config.done_repeat_s
            first = task.due_at
        else:
            return None
    else:
        return None
    level = 1
    if current is not None and current.kind == kind and current.alert_id == alert.id and (
        current.task_id == (None if subject is None else subject.id)
    ):
        level = current.level
    if config.max_level is not None and level > config.max_level:
        return None
    return _make(kind, alert, subject, level, first, interval)


def _applies(deadline: Deadline, alert: Alert, task: Task | None) -> bool:
    if alert.id != deadline.alert_id:
        return False
    if deadline.kind == "ack":
        return alert.status == "new"
    if deadline.kind == "shelf":
        return False  # not an escalation: the timers unshelve the alert
    if task is None or task.id != deadline.task_id or alert.task_id != task.id:
        return False
    if alert.status != "dispatched":
        return False
    if deadline.kind == "accept":
        return task.status == "offered"
    return task.status in ("accepted", "on_site")


def reason(deadline: Deadline, alert: Alert, task: Task | None) -> str:
    """Why the deadline escalates, in English (the note of the ``escalate`` audit entry)."""
    k = deadline.level
    if deadline.kind == "ack":
        minutes = round((deadline.due_at - new_since(alert)) / 60)
        return f"Not acknowledged for {minutes} min (level {k})"
    assert task is not None
    if deadline.kind == "accept":
        minutes = round((deadline.due_at - task.ts_created) / 60)
        return f"Task {task.id} not accepted for {minutes} min (level {k})"
    minutes = round((deadline.due_at - task.due_at) / 60)
    late = f"{minutes} min past its SLA" if minutes else "at its SLA"
    return f"Task {task.id} not done, {late} (level {k})"


def escalated(alert: Alert, deadline: Deadline, task: Task | None) -> Alert:
    """``alert`` raised by the deadline: ``escalation_level`` up to the deadline's level
    (never down: it is the highest so far), ``escalated_at`` and ``ts_updated`` at its due
    time and an ``escalate`` audit entry noting :func:`reason`.

    Applying the same deadline twice changes nothing.
    """
    note = reason(deadline, alert, task)
    if any(e.action == "escalate" and e.ts == deadline.due_at and e.note == note
           for e in alert.audit):
        return alert
    entry = AuditEntry("escalate", alert.status, alert.status, SYSTEM_ACTOR, "system",
                       deadline.due_at, note)
    return replace(alert, escalation_level=max(alert.escalation_level, deadline.level),
                   escalated_at=deadline.due_at,
                   ts_updated=max(alert.ts_updated, deadline.due_at),
                   audit=(*alert.audit, entry))


def fire(deadline: Deadline, alert: Alert, task: Task | None, now: float,
         config: EscalationConfig = EscalationConfig()) -> tuple[Alert | None, Deadline | None]:
    """Fire one deadline against the alert and task as they are now.

    Returns:
        ``(the alert escalated, next level's deadline)``; ``(None, deadline)`` when it is
        not due yet; ``(None, None)`` when the state it watched has moved on (store
        :func:`next_deadline` instead). The next deadline is ``None`` past ``max_level``.
    """
    if now < deadline.due_at:
        return None, deadline
    if not _applies(deadline, alert, task):
        return None, None
    raised = escalated(alert, deadline, task)
    level = deadline.level + 1
    if config.max_level is not None and level > config.max_level:
        return raised, None
    subject = task if deadline.task_id is not None else None
    first = deadline.due_at - (deadline.level - 1) * deadline.interval_s
    return raised, _make(deadline.kind, alert, subject, level, first, deadline.interval_s)


def fire_all(deadline: Deadline, alert: Alert, task: Task | None, now: float,
             config: EscalationConfig = EscalationConfig()
             ) -> tuple[tuple[Alert, ...], Deadline | None]:
    """Fire every level of one chain that is overdue at ``now`` (after a restart: several).

    Returns:
        the alert after each level fired, oldest level first (the last one is the one to
        store; empty when none fired), and the deadline to store next.
    """
    fired: list[Alert] = []
    current: Deadline | None = deadline
    while current is not None and current.due_at <= now:
        raised, current = fire(current, alert, task, now, config)
        if raised is None:
            break
        fired.append(raised)
        alert = raised
    return tuple(fired), current


def due(deadlines: Iterable[Deadline], now: float) -> list[Deadline]:
    """The deadlines with ``due_at <= now``, earliest first (ties by id)."""
    return sorted((d for d in deadlines if d.due_at <= now), key=lambda d: (d.due_at, d.id))
