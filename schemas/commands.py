"""The command contract: roles, the life-cycle tables, and what follows from them.

The alert and task life cycles are two explicit tables (:data:`ALERT_TABLE`,
:data:`TASK_TABLE`) from ``(state, action)`` to a :class:`Rule`: the new state, the roles
allowed, whether a note is required. :mod:`gridwatch.agents.lifecycle` applies them;
everything else here is derived from them, so the gateway, the worker, the CLI and the
cockpit (``GET /api/contract``, :func:`to_dict`) check commands against the same rules:

* the commands: the actions a person's role may take (:data:`ALERT_COMMANDS`,
  :data:`TASK_COMMANDS`), plus ``handover`` (an officer's note on an alert in any state,
  not a transition, so not in the table): :data:`ALERT_ACTIONS`, :data:`TASK_ACTIONS`;
* who may send each (:func:`roles_for`) and which need a note (:data:`NOTE_REQUIRED`);
* the incident's one command, ``ack`` (each of its alerts still new acknowledged);
* silences (target ``silence``: ``silence`` with a reason, ``end_silence``) and
  shelving (``shelve``/``unshelve`` on an alert): :data:`HELD_ALERT` are the open states
  an alert is held in, out of the live feed and not escalated, for at most
  :data:`SILENCE_MAX_S` / :data:`SHELVE_MAX_S`;
* duty: a grid worker goes on or off duty (target ``duty``, the worker's name as its
  id; :data:`DUTY_ACTIONS`); a grid worker may set only their own (:data:`DUTY_SELF_ONLY`),
  an officer or admin anyone's;
* the open states: an alert is open until it is closed or dismissed, i.e. while the
  table leads on from its state (:data:`OPEN_ALERT`, which includes ``resolved``: it
  waits for an officer to close it); :data:`UNRESOLVED_ALERT` is open and not yet
  resolved; a task is open while offered, accepted or on site (:data:`OPEN_TASK`).

Roles: ``duty_officer``, ``grid_worker``, ``station_manager`` (watches only), ``admin``
(may do whatever an officer may) and, in audits only, ``system``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PERSON_ROLES: tuple[str, ...] = ("duty_officer", "grid_worker", "station_manager", "admin")
"""The roles a user has, and that a command may carry."""
SYSTEM_ROLE = "system"
ROLES: tuple[str, ...] = (*PERSON_ROLES, SYSTEM_ROLE)
"""Every role an audit entry may name."""

ROLE_WORDS: dict[str, str] = {"duty_officer": "officer", "grid_worker": "worker",
                               "admin": "admin", "station_manager": "station manager",
                               SYSTEM_ROLE: "the system"}
"""How an audit sentence or a refusal names each role."""
if set(ROLE_WORDS) != set(ROLES):
    raise ValueError(f"ROLE_WORDS must name every role: {sorted(set(ROLES) ^ set(ROLE_WORDS))}")

OFFICERS = frozenset({"duty_officer", "admin"})
WORKERS = frozenset({"grid_worker"})
SYSTEM = frozenset({SYSTEM_ROLE})


@dataclass(frozen=True)
class Rule:
    """Where an action leads, who may take it, and whether a note is required.

    ``effect``: the action is only ever taken as the effect of another (an officer's
    resolve or dismiss cancels the alert's open task), never sent as a command.
    """

    to_state: str
    roles: frozenset[str]
    needs_note: bool = False
    effect: bool = False


ALERT_TABLE: dict[tuple[str, str], Rule] = {
    ("new", "ack"): Rule("acknowledged", OFFICERS),
    ("acknowledged", "dispatch"): Rule("dispatched", OFFICERS),
    ("acknowledged", "resolve"): Rule("resolved", OFFICERS, needs_note=True),
    ("dispatched", "resolve"): Rule("resolved", OFFICERS, needs_note=True),
    ("dispatched", "task_done"): Rule("resolved", SYSTEM),
    ("dispatched", "task_rejected"): Rule("acknowledged", SYSTEM),
    # No worker of the grid on duty (at dispatch, or when the last one offered the task
    # went off duty): the alert stays with, or goes back to, the officers.
    ("acknowledged", "no_one_on_duty"): Rule("acknowledged", SYSTEM),
    ("dispatched", "no_one_on_duty"): Rule("acknowledged", SYSTEM),
    ("resolved", "close"): Rule("closed", OFFICERS),
    **{(s, "dismiss"): Rule("dismissed", OFFICERS, needs_note=True)
       for s in ("new", "acknowledged", "dispatched", "silenced", "shelved")},
    **{(s, "auto_close"): Rule("closed", SYSTEM, needs_note=True)
       for s in ("new", "acknowledged", "dispatched", "resolved", "silenced", "shelved")},
    # Held out of the live feed: raised under a silence (the effect of the silence, in
    # the name of the officer who set it), or shelved by an officer (with a reason and
    # for at most SHELVE_MAX_S); back to new when the silence or the shelf time ends.
    ("new", "silence"): Rule("silenced", OFFICERS, effect=True),
    ("silenced", "reopen"): Rule("new", OFFICERS | SYSTEM, effect=True),
    ("new", "shelve"): Rule("shelved", OFFICERS, needs_note=True),
    ("shelved", "unshelve"): Rule("new", OFFICERS | SYSTEM),
}

TASK_TABLE: dict[tuple[str, str], Rule] = {
    ("offered", "accept"): Rule("accepted", WORKERS),
    ("accepted", "arrive"): Rule("on_site", WORKERS),
    ("on_site", "done"): Rule("done", WORKERS, needs_note=True),
    **{(s, "reject"): Rule("rejected", WORKERS, needs_note=True)
       for s in ("offered", "accepted")},
    **{(s, "cancel"): Rule("cancelled", OFFICERS | SYSTEM, needs_note=True, effect=True)
       for s in ("offered", "accepted", "on_site")},
}

TASK_HAPPY_PATH: tuple[tuple[str, str], ...] = (("offered", "accept"), ("accepted", "arrive"),
                                                ("on_site", "done"))
"""A task's way from offered to done, one worker command a state (the demo's crew)."""
if any(step not in TASK_TABLE for step in TASK_HAPPY_PATH):
    raise ValueError("TASK_HAPPY_PATH must be steps of TASK_TABLE")

INCIDENT_MIN_ALERTS = 3
INCIDENT_WINDOW_S = 600.0
"""An incident: at least this many alerts of one grid raised in one fixed window of this
many seconds of event time (the worker groups them, the cockpit shows them as one row)."""
HELD_ALERT = frozenset({"silenced", "shelved"})
"""Open but held out of the live feed: not escalated, no task dispatched."""
SHELVE_MAX_S = 8 * 3600.0
"""The longest an officer may shelve one alert."""
SILENCE_MAX_S = 24 * 3600.0
"""The longest a silence may last."""
SILENCE_MATCH = ("grid", "source", "kind")
"""What a silence mutes: every alert of one grid, of one source (a camera or
checkpoint: any of the alert's ``source_ids``), or of one kind."""

HANDOVER = "handover"
HANDOVER_ROLES = OFFICERS
"""Who may leave a handover note (always with text: the note is the point)."""


@dataclass(frozen=True)
class Action:
    """What holds for one command whatever the record's state: who may send it, and
    whether it needs a note."""

    roles: frozenset[str]
    needs_note: bool


def commands_of(table: dict[tuple[str, str], Rule]) -> dict[str, Action]:
    """The commands of a life-cycle table, in table order: each action a person's role
    may take (not an effect of another action), with its roles and note rule.

    Raises:
        ValueError: the table gives one command different roles or note rules in
            different states (a command could not be checked before its record is read).
    """
    people = frozenset(PERSON_ROLES)
    out: dict[str, Action] = {}
    for (state, action), rule in table.items():
        if rule.effect or not rule.roles & people:
            continue
        this = Action(rule.roles & people, rule.needs_note)
        if out.setdefault(action, this) != this:
            raise ValueError(f"{action!r} from {state!r}: other roles or note rule than "
                             "in its other states")
    return out


def _commands_by_state(table: dict[tuple[str, str], Rule]) -> dict[str, dict[str, str]]:
    people = frozenset(PERSON_ROLES)
    out: dict[str, dict[str, str]] = {}
    for (state, action), rule in table.items():
        if not rule.effect and rule.roles & people:
            out.setdefault(state, {})[action] = rule.to_state
    out["duty"] = {
        "actions": {a: {"roles": sorted(r.roles), "needs_note": r.needs_note}
                    for a, r in _DUTY.items()},
        "self_only": sorted(DUTY_SELF_ONLY),
    }
    return out


_ALERT = {**commands_of(ALERT_TABLE), HANDOVER: Action(HANDOVER_ROLES, needs_note=True)}
_TASK = commands_of(TASK_TABLE)
INCIDENT_ACK = "ack"
_INCIDENT = {INCIDENT_ACK: _ALERT["ack"]}
"""An incident (a grid's alerts grouped in one window) has one command: ``ack``
acknowledges each of its alerts still new, as that alert's own ``ack`` would, with the
same roles and note rule; the incident has no state of its own."""
# A silence is no life-cycle table: set (with a reason) and ended early, by officers.
_SILENCE = {"silence": Action(OFFICERS, needs_note=True),
            "end_silence": Action(OFFICERS, needs_note=False)}
DUTY_SELF_ONLY = WORKERS
"""The roles that may set only their own duty (the command's id is the actor)."""
_DUTY = {a: Action(OFFICERS | WORKERS, needs_note=False) for a in ("on_duty", "off_duty")}
DUTY_ACTIONS: tuple[str, ...] = tuple(_DUTY)
"""A grid worker goes on or off duty (see :mod:`gridwatch.agents.duty`)."""
_BY_TARGET = {"alert": _ALERT, "task": _TASK, "incident": _INCIDENT, "silence": _SILENCE,
              "duty": _DUTY}

ALERT_COMMANDS: tuple[str, ...] = tuple(commands_of(ALERT_TABLE))
"""The alert commands that move an alert through :data:`ALERT_TABLE`."""
TASK_COMMANDS: tuple[str, ...] = tuple(_TASK)
ALERT_ACTIONS: tuple[str, ...] = tuple(_ALERT)
"""Every alert command: :data:`ALERT_COMMANDS` and ``handover``."""
TASK_ACTIONS: tuple[str, ...] = TASK_COMMANDS
SILENCE_ACTIONS: tuple[str, ...] = tuple(_SILENCE)
TARGETS: tuple[str, ...] = tuple(_BY_TARGET)
NOTE_REQUIRED = frozenset(a for rules in _BY_TARGET.values() for a, r in rules.items()
                          if r.needs_note)
"""The commands refused without a note (their action names; no two targets share one)."""

OPEN_ALERT = frozenset(s for s, _ in ALERT_TABLE)
"""An alert is open while the table leads on from its state: not closed or dismissed."""
UNRESOLVED_ALERT = OPEN_ALERT - {"resolved"}
"""Open and not yet resolved: the alert still stands for what raised it."""
OPEN_TASK = frozenset(s for s, _ in TASK_TABLE)
"""A task is open while the table leads on from its state."""

_SHARED = (set(_ALERT) & set(_TASK)) | (set(_SILENCE) & (set(_ALERT) | set(_TASK)))
if _SHARED:  # NOTE_REQUIRED and the cockpit's labels go by action name
    raise ValueError(f"actions of two targets: {sorted(_SHARED)}")
if any(_ALERT.get(a) != rule for a, rule in _INCIDENT.items()):  # the alert's own rules
    raise ValueError("an incident command must keep its alert command's roles and note rule")


def actions_for(target: str) -> tuple[str, ...]:
    """The commands of ``target`` (``"alert"``, ``"task"`` or ``"incident"``); none for
    another target."""
    return tuple(_BY_TARGET.get(target, ()))


def roles_for(target: str, action: str) -> frozenset[str]:
    """The roles that may send ``action`` on a ``target``; none for an unknown action."""
    rule = _BY_TARGET.get(target, {}).get(action)
    return rule.roles if rule else frozenset()


def needs_note(target: str, action: str) -> bool:
    """Whether ``action`` on a ``target`` is refused without a note."""
    rule = _BY_TARGET.get(target, {}).get(action)
    return bool(rule and rule.needs_note)


def silence_id_of(command_id: str) -> str:
    """The id of the silence a ``silence`` command sets: ``si-`` and its command id's
    first 12 hex digits (the gateway, the CLI and a replay of the log agree on it)."""
    return "si-" + command_id.replace("-", "")[:12].lower()


def to_dict() -> dict[str, Any]:
    """The contract as the cockpit reads it (``GET /api/contract``).

    ``{"roles": [...], "alert": {...}, "task": {...}, "incident": {...}, "silence": {...},
    "duty": {...}}``; per target: ``actions`` (each
    command's ``roles`` and ``needs_note``), ``next`` (per state, the commands that lead
    on from it and the state each leads to, in table order), ``any_state`` (commands
    taken in any state without changing it) and ``open`` (its open states). The
    ``incident`` target has its commands (``any_state``), no states, and how many alerts
    of a grid in one window make an incident (``min_alerts``, ``window_s``); ``duty``
    has only ``actions`` and ``self_only`` (the roles that set only their own duty).
    """
    out: dict[str, Any] = {"roles": list(PERSON_ROLES)}
    for target, table in (("alert", ALERT_TABLE), ("task", TASK_TABLE)):
        nxt = _commands_by_state(table)
        moving = {a for by in nxt.values() for a in by}
        out[target] = {
            "actions": {a: {"roles": sorted(r.roles), "needs_note": r.needs_note}
                        for a, r in _BY_TARGET[target].items()},
            "next": nxt,
            "any_state": [a for a in _BY_TARGET[target] if a not in moving],
            "open": list(dict.fromkeys(s for s, _ in table)),
        }
    out["incident"] = {
        "actions": {a: {"roles": sorted(r.roles), "needs_note": r.needs_note}
                    for a, r in _INCIDENT.items()},
        "next": {}, "any_state": list(_INCIDENT), "open": [],
        "min_alerts": INCIDENT_MIN_ALERTS, "window_s": INCIDENT_WINDOW_S,
    }
    out["alert"]["held"] = sorted(HELD_ALERT)
    out["alert"]["shelve_max_s"] = SHELVE_MAX_S
    out["silence"] = {
        "actions": {a: {"roles": sorted(r.roles), "needs_note": r.needs_note}
                    for a, r in _SILENCE.items()},
        "match": list(SILENCE_MATCH), "max_s": SILENCE_MAX_S,
    }
    out["duty"] = {
        "actions": {a: {"roles": sorted(r.roles), "needs_note": r.needs_note}
                    for a, r in _DUTY.items()},
        "self_only": sorted(DUTY_SELF_ONLY),
    }
    return out
