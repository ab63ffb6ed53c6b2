"""Grid workers on and off duty: to whom a grid's tasks are offered.

A grid worker goes on or off duty from the phone; an officer or admin may set anyone's
duty (``gridwatch duty on|off``). The change is a command of the ``gridwatch.commands``
log (target ``duty``, the worker's name as its id), applied like the others: the duty
record (:class:`~gridwatch.schemas.records.Duty`) is stored in ``keys.DUTY`` with the
command's time, in the same atomic step as what it changes.

Rules:

* A worker never marked is on duty (a grid whose workers never mark their shifts works
  as before).
* A dispatch offers the task to the grid's workers on duty. With none on duty, no task
  is made: the alert stays with the officers, flagged ``needs_officer`` with an audit
  entry ``no_one_on_duty`` (:func:`.lifecycle.dispatch_unstaffed`), and the dispatch's
  outcome is refused with the same words.
* Going off duty: tasks the worker accepted (or is on site for) stay theirs. A task
  still offered to them is re-offered to the grid's other workers on duty (audit entry
  ``reoffer``); when there are none, it is withdrawn (cancelled by the system) and its
  alert goes back to the officers, flagged ``needs_officer`` (:func:`.lifecycle.no_one_on_duty`).
* Going on duty: the tasks still offered in the worker's grids are offered to them too.
  An alert already back with the officers is not dispatched again by itself: an
  officer dispatches it.
* A worker off duty may not accept a task.

Exactness: a dispatch reads the duty records as the commands applied before it left
them, and compare-and-sets their version (``keys.DUTY``), so a duty change applied at
the same moment by another worker process makes the dispatch decide again. Commands of
one alert share a partition of the log and keep their order; a duty command is keyed by
the worker's name, so relative to a dispatch on another partition it counts from when
it is applied, not from its time stamp.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import orjson

from .. import keys
from ..schemas.commands import DUTY_SELF_ONLY
from ..schemas.errors import TransitionRefused
from ..schemas.records import Alert, AuditEntry, Duty, Task
from . import escalation, lifecycle
from .escalation import Deadline
from .lifecycle import SYSTEM_ACTOR
from .records_io import bump_grid, load_records, write_alert, write_deadline, write_task

if TYPE_CHECKING:
    from .commands import Command, CommandApplier
    from .fold import BatchUpdate


def is_on(duty: Mapping[str, Duty], worker: str) -> bool:
    """Whether ``worker`` is on duty (never marked: on)."""
    record = duty.get(worker)
    return record is None or record.on


def split(workers: Iterable[str], duty: Mapping[str, Duty]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The workers on duty and those off duty, each sorted."""
    names = sorted(set(workers))
    return (tuple(w for w in names if is_on(duty, w)),
            tuple(w for w in names if not is_on(duty, w)))


def set_duty(worker: str, on: bool, *, actor: str, role: str, ts: float, note: str = "") -> Duty:
    """The duty record a command sets.

    Raises:
        TransitionRefused: a grid worker sets another worker's duty.
    """
    if role in DUTY_SELF_ONLY and actor != worker:
        raise TransitionRefused(f"worker {actor} may set only their own duty, not {worker}'s")
    return Duty(worker=worker, on=on, ts=ts, actor=actor, role=role, note=note)


def reoffer(task: Task, alert: Alert | None, worker: str, on: bool,
            on_duty: Collection[str], ts: float) -> tuple[Task, Alert | None]:
    """A still-offered task after ``worker`` went on or off duty.

    Args:
        on_duty: the task's grid's workers on duty after the change.

    Returns:
        the task and its alert, unchanged when the change does not concern the offer;
        re-offered (audit ``reoffer``); or withdrawn with the alert back with the officers.
    """
    if task.status != "offered" or (worker in task.workers) == on:
        return task, alert
    if on:
        workers = tuple(sorted({*task.workers, worker}))
        why = f"{worker} came on duty: offered to {', '.join(workers)}"
    else:
        workers = tuple(sorted(set(on_duty) - {worker}))
        if not workers:
            if alert is None or alert.task_id != task.id or alert.status != "dispatched":
                note = f"{worker} went off duty: no worker of grid {task.grid_id} on duty"
                return lifecycle.withdraw(task, ts=ts, note=note), alert
            why = (f"{worker} went off duty: no worker of grid {task.grid_id} is on duty; "
                   f"task {task.id} withdrawn, the alert is back with the officers")
            new_alert, new_task = lifecycle.no_one_on_duty(alert, task, ts=ts, note=why)
            assert new_task is not None
            return new_task, new_alert
        why = f"{worker} went off duty: offered to {', '.join(workers)}"
    entry = AuditEntry("reoffer", "offered", "offered", SYSTEM_ACTOR, "system", ts, why)
    return replace(task, workers=workers, ts_updated=ts, audit=(*task.audit, entry)), alert


async def load(redis: Any, workers: Iterable[str]) -> tuple[dict[str, Duty], int]:
    """The duty records of ``workers`` (absent: never marked) and the version of
    ``keys.DUTY``, in one round trip (the version first, as :func:`.records_io.load_view`)."""
    names = sorted(set(workers))
    pipe = redis.pipeline(transaction=False)
    pipe.hmget(keys.VERSIONS, [keys.DUTY])
    if names:
        pipe.hmget(keys.DUTY, names)
    replies = await pipe.execute()
    version = int(replies[0][0] or 0)
    out = {}
    for name, raw in zip(names, replies[1] if names else ()):
        if raw:
            out[name] = Duty.from_dict(orjson.loads(raw))
    return out, version


async def decide(applier: CommandApplier, cmd: Command, update: BatchUpdate) -> dict[str, Any]:
    """Decide one duty command into ``update``; returns its outcome."""
    worker, on = cmd.id, cmd.action == "on_duty"
    grids = [g.id for g in applier.index.grids if worker in g.workers]
    if not grids:
        return {"ok": False, "reason": f"{worker} is not a worker of any grid"}
    try:
        record = set_duty(worker, on, actor=cmd.actor, role=cmd.role, ts=cmd.ts, note=cmd.note)
    except TransitionRefused as exc:
        return {"ok": False, "reason": exc.reason}
    colleagues = {w for g in grids for w in applier.index.workers_of(g)}
    duty, version = await load(applier.store.redis, colleagues)
    duty[worker] = record
    update.cas[keys.DUTY] = version
    update.hset[(keys.DUTY, worker)] = orjson.dumps(record.to_dict()).decode()
    changed: list[str] = []
    for grid in grids:
        on_duty, _ = split(applier.index.workers_of(grid), duty)
        for raw_id in await applier.store.redis.zrange(keys.tasks_open(grid), 0, -1):
            task_id = raw_id.decode() if isinstance(raw_id, bytes) else raw_id
            if await _reoffer_one(applier, update, task_id, worker, on, on_duty, cmd.ts):
                changed.append(task_id)
    return {"ok": True, "duty": record.to_dict(), "tasks": changed}


async def _reoffer_one(applier: CommandApplier, update: BatchUpdate, task_id: str, worker: str,
                       on: bool, on_duty: Collection[str], ts: float) -> bool:
    """Re-offer (or withdraw) one open task into ``update``; whether it changed."""
    redis = applier.store.redis
    t_key = keys.task(task_id)
    found, versions = await load_records(redis, [t_key])
    if t_key not in found:
        return False
    task = Task.from_dict(found[t_key])
    if task.status != "offered" or (worker in task.workers) == on:
        return False
    a_key, d_key = keys.alert(task.alert_id), keys.deadline(task.alert_id)
    more, more_versions = await load_records(redis, [a_key, d_key])
    versions.update(more_versions)
    alert = Alert.from_dict(more[a_key]) if a_key in more else None
    new_task, new_alert = reoffer(task, alert, worker, on, on_duty, ts)
    write_task(update, new_task, versions.get(t_key, 0))
    if new_alert is not None and new_alert != alert:
        write_alert(update, new_alert, versions.get(a_key, 0))
        current = more.get(d_key)
        write_deadline(update, new_alert.id, escalation.next_deadline(
            new_alert, new_task, applier.config,
            current=Deadline.from_dict(current) if current else None))
        if new_alert.grid_id:
            bump_grid(update, new_alert.grid_id)
    return True
