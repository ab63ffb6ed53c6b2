"""The alert and task state machines: who may do what, when, and the audit of it.

Both machines are explicit tables (:data:`ALERT_TABLE`, :data:`TASK_TABLE`, kept in
:mod:`gridwatch.schemas.commands`, the command contract derived from them) from
``(state, action)`` to a :class:`Rule` (the new state, the roles allowed, whether a
note is required). Every function here is pure: it takes the current records and
returns new ones with one :class:`~gridwatch.schemas.records.AuditEntry` appended per
transition, or raises :class:`~gridwatch.schemas.errors.TransitionRefused` with a
reason a person can act on. Commands come from one ordered log, so two officers
acknowledging "at once" are two calls in sequence: the second is refused and told
who was first, and when.

Alert::

    new --ack--> acknowledged --dispatch--> dispatched --(task done)--> resolved --close--> closed
                 acknowledged --resolve (note)--> resolved      (handled by phone, no task)
                 dispatched --resolve (note)--> resolved        (the open task is cancelled)
                 dispatched --(task rejected)--> acknowledged   (back to the officer)
    acknowledged | dispatched --(no one on duty)--> acknowledged  (flagged needs_officer)
    new | acknowledged | dispatched --dismiss (reason)--> dismissed
    new | acknowledged | dispatched | resolved --auto_close (system)--> closed
    new --(raised under a silence)--> silenced --(the silence ends)--> new
    new --shelve (reason, for at most 8 h)--> shelved --unshelve (or the shelf time ends)--> new
    silenced | shelved --dismiss (reason)--> dismissed; --auto_close (system)--> closed

Decisions: dispatch and resolve need an acknowledgement first, so every alert has
an owner before it is worked on. Closing is only from ``resolved``: a task done
resolves its alert automatically (audited as the system), and an officer closes it
after review; a dispatched alert with its task still open cannot be closed.

Task::

    offered --accept--> accepted --arrive--> on_site --done (note)--> done
    offered | accepted --reject (reason)--> rejected
    offered | accepted | on_site --cancel (reason; officer, admin or system)--> cancelled

A task is offered to the grid's workers on duty (:mod:`.duty`); with none on duty no
task is made and the alert stays with the officers, flagged ``needs_officer``.
Only a grid worker of the task's grid (or one named in the offer) may accept or
reject an offered task; once accepted, only its assignee may act on it. Roles: ``duty_officer``, ``grid_worker``,
``station_manager``, ``admin`` (may do whatever an officer may) and ``system``.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

from ..schemas.commands import (  # noqa: F401 - the tables are read from here too
    ALERT_COMMANDS,
    ALERT_TABLE,
    HANDOVER,
    HANDOVER_ROLES,
    OPEN_TASK,
    ROLE_WORDS,
    SHELVE_MAX_S,
    SYSTEM,
    TASK_COMMANDS,
    TASK_TABLE,
    WORKERS,
    Rule,
)
from ..schemas.errors import TransitionRefused
from ..schemas.records import Alert, AuditEntry, Task

SYSTEM_ACTOR = "system"
DEFAULT_SLA_S = 2 * 3600.0
DISPLAY_TZ = timezone(timedelta(hours=8))
"""Times in refusal reasons are shown in China Standard Time, as the officers read them."""


# Progress order, to tell "already done" from "not yet possible" in refusals.
_ALERT_RANK = {"new": 0, "silenced": 0, "shelved": 0, "acknowledged": 1, "dispatched": 2,
               "resolved": 3}
_ALERT_AIM = {"ack": 1, "dispatch": 2, "resolve": 3, "task_done": 3, "task_rejected": 2}
_TASK_RANK = {"offered": 0, "accepted": 1, "on_site": 2}
_TASK_AIM = {"accept": 1, "arrive": 2}
_VERB = {"ack": "acknowledge", "arrive": "report arrival on", "done": "finish",
         "auto_close": "close"}
_ROLE_WORD = ROLE_WORDS  # one word per role, the contract's


def when(ts: float) -> str:
    """``ts`` as the officers read it: ``2026-11-22T08:01:02+08:00``; a time no date can
    hold (a command's clock gone wrong) as its number, never an exception."""
    try:
        return datetime.fromtimestamp(ts, tz=DISPLAY_TZ).isoformat(timespec="seconds")
    except (OverflowError, ValueError, OSError):
        return repr(float(ts))


def _who(entry: AuditEntry) -> str:
    if entry.role == "system":
        return f"the system at {when(entry.ts)}"
    return f"{_ROLE_WORD.get(entry.role, entry.role)} {entry.actor} at {when(entry.ts)}"


def _last_change(audit: tuple[AuditEntry, ...], state: str) -> AuditEntry | None:
    for entry in reversed(audit):
        if entry.to_state == state and entry.from_state != state:
            return entry
    return None


def _refusal(noun: str, rid: str, status: str, action: str, audit: tuple[AuditEntry, ...],
             table: dict[tuple[str, str], Rule], rank: dict[str, int],
             aim: dict[str, int]) -> TransitionRefused:
    """Why ``action`` is not possible from ``status``, naming who made it so."""
    verb = _VERB.get(action, action)
    last = _last_change(audit, status)
    by = f" by {_who(last)}" if last else ""
    if status not in rank:  # a final state
        return TransitionRefused(f"cannot {verb} a {status} {noun} ({noun} {rid} was {status}{by})")
    if action in aim and aim[action] <= rank[status]:
        return TransitionRefused(f"{noun} {rid} is already {status}{by}")
    # a silence holding or reopening an alert is no one's command (a task's cancel is
    # an officer's, taken through the alert)
    allowed = sorted(a for (s, a), r in table.items() if s == status and r.roles != SYSTEM
                     and not (r.effect and table is ALERT_TABLE))
    if status == "new" and last:  # "new by the system" reads oddly: say who raised it
        by = f" (raised by {_who(last)})"
    return TransitionRefused(
        f"cannot {verb} {noun} {rid}: it is {status}{by}; allowed now: {', '.join(allowed)}"
    )


def _alert_rule(alert: Alert, action: str, actor: str, role: str, note: str) -> Rule:
    rule = ALERT_TABLE.get((alert.status, action))
    if rule is None:
        raise _refusal("alert", alert.id, alert.status, action, alert.audit,
                       ALERT_TABLE, _ALERT_RANK, _ALERT_AIM)
    verb = _VERB.get(action, action)
    if role not in rule.roles:
        who = "the system" if rule.roles == SYSTEM else "a duty officer or admin"
        raise TransitionRefused(
            f"alert {alert.id}: only {who} may {verb} it, not {_ROLE_WORD.get(role, role)} {actor}"
        )
    if rule.needs_note and not note.strip():
        raise TransitionRefused(f"alert {alert.id}: {verb} needs a note saying why")
    return rule


def _step_alert(alert: Alert, action: str, *, actor: str, role: str, ts: float, note: str,
                **changes: Any) -> Alert:
    rule = _alert_rule(alert, action, actor, role, note)
    entry = AuditEntry(action, alert.status, rule.to_state, actor, role, ts, note)
    if rule.to_state != alert.status:
        changes.setdefault("needs_officer", None)  # a person moved it on
    return replace(alert, status=rule.to_state, ts_updated=ts, audit=(*alert.audit, entry),
                   **changes)


def _step_task(task: Task, action: str, *, actor: str, role: str, ts: float, note: str,
               grids: Collection[str] = (), **changes: Any) -> Task:
    rule = TASK_TABLE.get((task.status, action))
    if rule is None:
        raise _refusal("task", task.id, task.status, action, task.audit,
                       TASK_TABLE, _TASK_RANK, _TASK_AIM)
    verb = _VERB.get(action, action)
    if role not in rule.roles:
        if rule.roles == WORKERS:
            raise TransitionRefused(f"task {task.id}: only a worker of grid {task.grid_id} "
                                    f"may {verb} it, not {_ROLE_WORD.get(role, role)} {actor}")
        raise TransitionRefused(f"task {task.id}: only a duty officer, admin or the system "
                                f"may {verb} it, not {_ROLE_WORD.get(role, role)} {actor}")
    if role == "grid_worker":
        # A worker owns the task through the grids they hold now (passed in by the
        # caller) or by being named in the offer (they held the grid at dispatch).
        if task.grid_id not in grids and actor not in task.workers:
            raise TransitionRefused(f"task {task.id}: only a worker of grid {task.grid_id} "
                                    f"may {verb} it; {actor} works {_grids(grids)}")
        if task.assignee is not None and actor != task.assignee:
            raise TransitionRefused(f"task {task.id} is {task.status} by worker {task.assignee}; "
                                    f"only {task.assignee} may {verb} it, not {actor}")
    if rule.needs_note and not note.strip():
        what = "a note on what was found and done" if action == "done" else "a reason"
        raise TransitionRefused(f"task {task.id}: {verb} needs {what}")
    entry = AuditEntry(action, task.status, rule.to_state, actor, role, ts, note)
    return replace(task, status=rule.to_state, ts_updated=ts, audit=(*task.audit, entry),
                   note=note or task.note, **changes)


def _grids(grids: Collection[str]) -> str:
    return "grids " + ", ".join(sorted(grids)) if grids else "no grid"


def raise_alert(*, id: str, kind: str, severity: str, grid_id: str | None, ts: float,
                title: str, title_zh: str, source_ids: dict[str, str] | None = None,
                details: dict[str, Any] | None = None, station_id: str | None = None,
                escalation_level: int = 0) -> Alert:
    """A new alert, its audit opened with a ``raise`` entry by the system.

    Returns:
        an :class:`Alert` with status ``"new"``, ``ts_raised == ts_updated == ts``.
    """
    entry = AuditEntry("raise", None, "new", SYSTEM_ACTOR, "system", ts, title)
    return Alert(id=id, kind=kind, severity=severity, status="new", grid_id=grid_id,
                 ts_raised=ts, ts_updated=ts, title=title, title_zh=title_zh,
                 station_id=station_id, source_ids=dict(source_ids or {}),
                 details=dict(details or {}), escalation_level=escalation_level,
                 audit=(entry,))


def ack(alert: Alert, *, actor: str, role: str, ts: float, note: str = "") -> Alert:
    """Acknowledge a new alert (this stops its acknowledgement escalation).

    Raises:
        TransitionRefused: not new (the reason names who acknowledged it first, and when),
            or the role is not an officer's.
    """
    return _step_alert(alert, "ack", actor=actor, role=role, ts=ts, note=note)


def dispatch(alert: Alert, *, workers: Collection[str], actor: str, role: str, ts: float,
             note: str = "", sla_s: float = DEFAULT_SLA_S) -> tuple[Alert, Task]:
    """Dispatch an acknowledged alert: offer a task to the workers of its grid on duty.

    The task id is ``tk-<alert id>-<n>`` for the n-th dispatch of the alert, so a
    replay of the same commands makes the same task.

    Args:
        workers: the grid's workers on duty now (whom the task is offered to).
        sla_s: the task should be done within this many seconds.

    Returns:
        the dispatched alert (``task_id`` set) and the offered task.

    Raises:
        TransitionRefused: not acknowledged, not an officer, no grid or no workers.
    """
    rule = _alert_rule(alert, "dispatch", actor, role, note)
    if alert.grid_id is None:
        raise TransitionRefused(f"alert {alert.id} has no grid: there are no grid workers "
                                "to dispatch it to")
    if not workers:
        raise TransitionRefused(f"alert {alert.id}: grid {alert.grid_id} has no workers "
                                "to dispatch it to")
    n = 1 + sum(1 for e in alert.audit if e.action == "dispatch")
    task_id = f"tk-{alert.id}-{n}"
    offer = AuditEntry("offer", None, "offered", actor, role, ts, note)
    task = Task(id=task_id, alert_id=alert.id, grid_id=alert.grid_id,
                workers=tuple(sorted(set(workers))), status="offered", assignee=None,
                ts_created=ts, ts_updated=ts, due_at=ts + sla_s, note=note, audit=(offer,))
    entry = AuditEntry("dispatch", alert.status, rule.to_state, actor, role, ts, note)
    return replace(alert, status=rule.to_state, ts_updated=ts, task_id=task_id,
                   audit=(*alert.audit, entry), needs_officer=None), task


def no_one_on_duty(alert: Alert, task: Task | None = None, *, ts: float,
                   note: str) -> tuple[Alert, Task | None]:
    """No worker of the alert's grid is on duty: the alert stays with (acknowledged) or
    goes back to (dispatched) the officers, flagged ``needs_officer`` with ``note``, and
    its open task is withdrawn (cancelled by the system). Audited as the system.

    Raises:
        TransitionRefused: the alert is neither acknowledged nor dispatched.
        ValueError: the alert is dispatched and ``task`` is not its task.
    """
    _alert_rule(alert, "no_one_on_duty", SYSTEM_ACTOR, "system", note)
    task = _cancel_open(alert, task, SYSTEM_ACTOR, "system", ts, note)
    return _step_alert(alert, "no_one_on_duty", actor=SYSTEM_ACTOR, role="system", ts=ts,
                       note=note, needs_officer=note), task


def withdraw(task: Task, *, ts: float, note: str) -> Task:
    """The system cancels an open task no one may take any more (no worker on duty)."""
    return _step_task(task, "cancel", actor=SYSTEM_ACTOR, role="system", ts=ts, note=note)


def dispatch_unstaffed(alert: Alert, *, off_duty: Collection[str], actor: str, role: str,
                       ts: float, note: str = "") -> Alert:
    """An officer dispatches an alert whose grid has workers, none of them on duty: no
    task is offered to nobody; the alert stays acknowledged, flagged ``needs_officer``.

    Raises:
        TransitionRefused: the dispatch itself is not allowed (state, role, no grid).
    """
    _alert_rule(alert, "dispatch", actor, role, note)
    if alert.grid_id is None:
        raise TransitionRefused(f"alert {alert.id} has no grid: there are no grid workers "
                                "to dispatch it to")
    why = (f"dispatch by {_ROLE_WORD.get(role, role)} {actor}: no worker of grid "
           f"{alert.grid_id} is on duty (off duty: {', '.join(sorted(off_duty))}); "
           "no task offered, the alert stays with the officers")
    return no_one_on_duty(alert, None, ts=ts, note=why)[0]


def _cancel_open(alert: Alert, task: Task | None, actor: str, role: str, ts: float,
                 note: str) -> Task | None:
    """Withdraw the alert's open task when the alert leaves ``dispatched`` another way."""
    if alert.status != "dispatched":
        return task
    if task is None or task.id != alert.task_id:
        raise ValueError(f"alert {alert.id} is dispatched: pass its task {alert.task_id}")
    if task.status not in OPEN_TASK:
        return task
    return _step_task(task, "cancel", actor=actor, role=role, ts=ts, note=note)


def resolve(alert: Alert, task: Task | None = None, *, actor: str, role: str, ts: float,
            note: str) -> tuple[Alert, Task | None]:
    """An officer resolves an alert themselves (e.g. handled it by phone).

    A dispatched alert's open task is cancelled with the same note.

    Returns:
        the resolved alert and the (possibly cancelled) task.

    Raises:
        TransitionRefused: not acknowledged/dispatched, no note, or not an officer.
        ValueError: the alert is dispatched and ``task`` is not its task.
    """
    _alert_rule(alert, "resolve", actor, role, note)
    task = _cancel_open(alert, task, actor, role, ts, note)
    return _step_alert(alert, "resolve", actor=actor, role=role, ts=ts, note=note), task


def close(alert: Alert, *, actor: str, role: str, ts: float, note: str = "") -> Alert:
    """Close a resolved alert: the loop is closed.

    Raises:
        TransitionRefused: not resolved, or not an officer.
    """
    return _step_alert(alert, "close", actor=actor, role=role, ts=ts, note=note)


def dismiss(alert: Alert, task: Task | None = None, *, actor: str, role: str, ts: float,
            note: str) -> tuple[Alert, Task | None]:
    """Dismiss an open alert with a reason (false alarm, duplicate, ...).

    Raises:
        TransitionRefused: already resolved/closed/dismissed, no reason, or not an officer.
        ValueError: the alert is dispatched and ``task`` is not its task.
    """
    _alert_rule(alert, "dismiss", actor, role, note)
    task = _cancel_open(alert, task, actor, role, ts, note)
    return _step_alert(alert, "dismiss", actor=actor, role=role, ts=ts, note=note), task


def auto_close(alert: Alert, task: Task | None = None, *, ts: float,
               note: str) -> tuple[Alert, Task | None]:
    """The system closes an alert whose cause went away (a silent source came back).

    Raises:
        TransitionRefused: the alert is already closed or dismissed.
    """
    _alert_rule(alert, "auto_close", SYSTEM_ACTOR, "system", note)
    task = _cancel_open(alert, task, SYSTEM_ACTOR, "system", ts, note)
    return _step_alert(alert, "auto_close", actor=SYSTEM_ACTOR, role="system", ts=ts,
                       note=note), task


def shelve(alert: Alert, *, actor: str, role: str, ts: float, note: str,
           for_s: float = SHELVE_MAX_S, max_s: float = SHELVE_MAX_S) -> Alert:
    """An officer shelves a nuisance alert: out of the live feed and not escalated until
    ``ts + for_s`` (:func:`unshelve` then, by the system), with a reason.

    Raises:
        TransitionRefused: not new, no reason, not an officer, or ``for_s`` not in
            ``(0, max_s]``.
    """
    if not 0 < for_s <= max_s:  # also NaN
        raise TransitionRefused(f"alert {alert.id}: shelve for more than 0 and at most "
                                f"{max_s / 3600:g} h, not {for_s / 3600:g} h")
    until = ts + for_s
    note = f"{note.strip()} (until {when(until)})" if note.strip() else note
    return _step_alert(alert, "shelve", actor=actor, role=role, ts=ts, note=note,
                       held_until=until)


def unshelve(alert: Alert, *, actor: str = SYSTEM_ACTOR, role: str = "system", ts: float,
             note: str = "") -> Alert:
    """A shelved alert comes back as new: its shelf time ended (the system, at
    ``held_until``) or an officer took it off the shelf early.

    Raises:
        TransitionRefused: not shelved, or not an officer or the system.
    """
    if not note.strip():  # the trail says which: the time ran out, or who took it off
        note = "shelf time ended" if role == "system" else "taken off the shelf early"
    return _step_alert(alert, "unshelve", actor=actor, role=role, ts=ts, note=note,
                       held_until=None)


def accept(task: Task, *, actor: str, role: str, grids: Collection[str], ts: float,
           note: str = "") -> Task:
    """A worker of the task's grid takes an offered task and becomes its assignee.

    Args:
        grids: the grids ``actor`` works now.

    Raises:
        TransitionRefused: not offered (names who accepted it), or not a worker of the grid.
    """
    return _step_task(task, "accept", actor=actor, role=role, ts=ts, note=note, grids=grids,
                      assignee=actor)


def arrive(task: Task, *, actor: str, role: str, grids: Collection[str], ts: float,
           note: str = "") -> Task:
    """The assignee reports being on site.

    Raises:
        TransitionRefused: not accepted, or ``actor`` is not the assignee.
    """
    return _step_task(task, "arrive", actor=actor, role=role, ts=ts, note=note, grids=grids)


def done(task: Task, alert: Alert, *, actor: str, role: str, grids: Collection[str], ts: float,
         note: str) -> tuple[Task, Alert]:
    """The assignee finishes the task; its alert becomes resolved (audited as the system).

    Raises:
        TransitionRefused: not on site, no note, or ``actor`` is not the assignee.
    """
    task = _step_task(task, "done", actor=actor, role=role, ts=ts, note=note, grids=grids)
    if alert.status == "dispatched" and alert.task_id == task.id:
        alert = _step_alert(alert, "task_done", actor=SYSTEM_ACTOR, role="system", ts=ts,
                            note=f"task {task.id} done by {actor}: {note}")
    return task, alert


def reject(task: Task, alert: Alert, *, actor: str, role: str, grids: Collection[str],
           ts: float, note: str) -> tuple[Task, Alert]:
    """A worker turns the task down; the alert goes back to the officer (acknowledged).

    Raises:
        TransitionRefused: not offered/accepted, no reason, or not a worker allowed to.
    """
    task = _step_task(task, "reject", actor=actor, role=role, ts=ts, note=note, grids=grids)
    if alert.status == "dispatched" and alert.task_id == task.id:
        alert = _step_alert(alert, "task_rejected", actor=SYSTEM_ACTOR, role="system", ts=ts,
                            note=f"task {task.id} rejected by {actor}: {note}")
    return task, alert


def handover_note(alert: Alert, actor: str, role: str, ts: float, note: str) -> Alert:
    """Add a shift-handover note to an alert, in any state.

    Raises:
        TransitionRefused: the note is empty, or the role is not an officer's.
    """
    if role not in HANDOVER_ROLES:
        raise TransitionRefused(f"alert {alert.id}: only a duty officer or admin may leave "
                                f"a handover note, not {_ROLE_WORD.get(role, role)} {actor}")
    if not note.strip():
        raise TransitionRefused(f"alert {alert.id}: a handover note cannot be empty")
    entry = AuditEntry(HANDOVER, alert.status, alert.status, actor, role, ts, note)
    return replace(alert, ts_updated=ts, handover=(*alert.handover, entry))


def ack_incident(incident_id: str, alerts: Collection[Alert], *, actor: str, role: str,
                 ts: float, note: str = "") -> list[Alert]:
    """Acknowledge an incident: each of its alerts still new, as its own ``ack`` would,
    its audit entry naming the incident (``"incident <id>"``, then the note if any).

    Returns:
        the acknowledged alerts, in the order given (the others are left as they are).

    Raises:
        TransitionRefused: the role may not acknowledge alerts, or no alert is new (the
            reason names the incident).
    """
    said = f"incident {incident_id}" + (f": {note.strip()}" if note.strip() else "")
    fresh = [a for a in alerts if a.status == "new"]
    if not fresh:
        raise TransitionRefused(f"incident {incident_id}: no alert left to acknowledge "
                                f"({len(alerts)} alerts, none new)")
    return [ack(a, actor=actor, role=role, ts=ts, note=said) for a in fresh]


def apply(target: str, action: str, alert: Alert, task: Task | None, *, actor: str, role: str,
          ts: float, note: str = "", grids: Collection[str] = (),
          workers: Collection[str] = (), off_duty: Collection[str] = (),
          sla_s: float = DEFAULT_SLA_S, for_s: float = SHELVE_MAX_S) -> tuple[Alert, Task | None]:
    """Apply one command from the command log, whatever its action.

    Args:
        target: ``"alert"`` or ``"task"``.
        action: one of :data:`ALERT_COMMANDS` (for an alert), :data:`TASK_COMMANDS`
            (for a task), or ``"handover"`` (an alert note).
        alert: the alert (for a task command: the task's alert).
        task: the alert's latest task (needed to dispatch-resolve/dismiss), or the task.
        grids: the grids ``actor`` works (task commands).
        workers: the grid's workers on duty (dispatch).
        off_duty: the grid's workers off duty (dispatch: with none on duty, the alert
            stays with the officers, :func:`dispatch_unstaffed`).
        for_s: how long to shelve the alert (shelve).

    Returns:
        the alert and the task after the command (a new task after a dispatch).

    Raises:
        TransitionRefused: the command is not allowed now, with the reason.
    """
    kw: dict[str, Any] = {"actor": actor, "role": role, "ts": ts}
    if target == "alert":
        if action == "ack":
            return ack(alert, note=note, **kw), task
        if action == "dispatch" and not workers and off_duty:
            return dispatch_unstaffed(alert, off_duty=off_duty, note=note, **kw), task
        if action == "dispatch":
            return dispatch(alert, workers=workers, note=note, sla_s=sla_s, **kw)
        if action == "resolve":
            return resolve(alert, task, note=note, **kw)
        if action == "close":
            return close(alert, note=note, **kw), task
        if action == "dismiss":
            return dismiss(alert, task, note=note, **kw)
        if action == "shelve":
            return shelve(alert, note=note, for_s=for_s, **kw), task
        if action == "unshelve":
            return unshelve(alert, note=note, **kw), task
        if action == HANDOVER:
            return handover_note(alert, actor, role, ts, note), task
    elif target == "task" and task is not None:
        if action == "accept":
            return alert, accept(task, grids=grids, note=note, **kw)
        if action == "arrive":
            return alert, arrive(task, grids=grids, note=note, **kw)
        if action == "done":
            task, alert = done(task, alert, grids=grids, note=note, **kw)
            return alert, task
        if action == "reject":
            task, alert = reject(task, alert, grids=grids, note=note, **kw)
            return alert, task
    raise TransitionRefused(f"unknown command {target} {action}")
