"""Applying cockpit and CLI commands from the ``gridwatch.commands`` log.

Each command is applied once, in log order, with the pure state machines of
:mod:`.lifecycle`: the alert and task records are read with their versions, the
transition is decided, and the new records, the next escalation deadline, the
command's outcome and the partition's offset are written in one atomic step. A refused
transition is an outcome too (``{"ok": false, "reason": ...}``), so the officer who
acknowledged second is told who was first.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from .. import keys
from ..batch import BatchUpdate, DeadLetter, RawRecord
from ..grid_index import GridIndex
from ..schemas import commands as contract
from ..schemas.errors import DecodeError, TransitionRefused
from ..schemas.events import DEFAULT_BOUNDS, Bounds, parse_time
from ..schemas.records import ALERT_KINDS, Alert, Task
from ..signing import Keyring, verify_raw
from ..store import ApplyConflict, AsyncStore
from . import duty, escalation, lifecycle, silence_io
from .escalation import Deadline, EscalationConfig
from .ingest import _transient, internal_reason
from .records_io import bump_grid, load_records, write_alert, write_deadline, write_task

log = logging.getLogger("gridwatch.commands")

CMDRESULT_TTL_S = 3600


@dataclass(frozen=True)
class Command:
    """One command: who does what to which alert or task."""

    command_id: str
    target: str
    id: str
    action: str
    actor: str
    role: str
    grids: tuple[str, ...]
    note: str
    ts: float
    params: dict[str, Any] = field(default_factory=dict)


def decode_params(obj: Any) -> dict[str, Any]:
    """A command's ``params`` (a silence's match and duration, a shelf time): at most 8
    short strings or finite numbers.

    Raises:
        DecodeError: not an object of such values.
    """
    if obj is None:
        return {}
    ok = isinstance(obj, dict) and len(obj) <= 8 and all(
        isinstance(k, str) and len(k) <= 40 and (
            (isinstance(v, str) and len(v) <= 200)
            or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)))
        for k, v in obj.items())
    if not ok:
        raise DecodeError("params: must be an object of at most 8 short values", "params")
    return dict(obj)


def decode_command(raw: bytes | None) -> Command:
    """Strictly decode a command record.

    Raises:
        DecodeError: naming the bad field.
    """
    if raw is None:
        raise DecodeError("empty command")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise DecodeError("invalid JSON") from None
    if not isinstance(obj, dict):
        raise DecodeError("command must be a JSON object")
    if obj.get("v", 1) != 1:
        raise DecodeError("unsupported command version", "v")
    for name in ("command_id", "target", "id", "action", "actor", "role"):
        if not isinstance(obj.get(name), str) or not obj[name] or len(obj[name]) > 200:
            raise DecodeError(f"{name}: missing or not a short string", name)
    if obj["target"] not in contract.TARGETS:
        raise DecodeError(f"target: must be one of {', '.join(contract.TARGETS)}", "target")
    if obj["action"] not in contract.actions_for(obj["target"]):
        raise DecodeError(f"action: {obj['action']!r} is not an {obj['target']} action", "action")
    if obj["role"] not in contract.PERSON_ROLES:
        raise DecodeError("role: unknown role", "role")
    grids = obj.get("grids", [])
    if not isinstance(grids, list) or not all(isinstance(g, str) for g in grids):
        raise DecodeError("grids: must be a list of grid ids", "grids")
    note = obj.get("note", "")
    if not isinstance(note, str) or len(note) > 2000:
        raise DecodeError("note: must be text of at most 2000 characters", "note")
    try:
        ts = parse_time(obj["ts"]) if isinstance(obj.get("ts"), str) else float(obj["ts"])
    except (KeyError, TypeError, ValueError):
        raise DecodeError("ts: missing or not an RFC 3339 time", "ts") from None
    return Command(obj["command_id"], obj["target"], obj["id"], obj["action"], obj["actor"],
                   obj["role"], tuple(grids), note, ts, decode_params(obj.get("params")))


def shelf_time(cmd: Command) -> dict[str, Any]:
    """The ``for_s`` of a shelve command (absent: the longest allowed).

    Raises:
        TransitionRefused: not a number of seconds.
    """
    if cmd.action != "shelve" or "for_s" not in cmd.params:
        return {}
    value = cmd.params["for_s"]
    if not isinstance(value, (int, float)):
        raise TransitionRefused(f"alert {cmd.id}: shelve for a number of seconds, not {value!r}")
    return {"for_s": float(value)}


class CommandApplier:
    """Applies commands one at a time, each atomically with its partition's offset."""

    def __init__(self, store: AsyncStore, index: GridIndex, config: EscalationConfig,
                 *, sla_s: float = 7200.0, input_ends: Callable[[], Awaitable[dict[str, int]]] | None = None,
                 catch_up_s: float = 120.0, keyring: Keyring,
                 bounds: Bounds = DEFAULT_BOUNDS,
                 alert_kinds: frozenset[str] = frozenset(ALERT_KINDS)) -> None:
        self.alert_kinds = alert_kinds  # what a kind silence may name
        self.keyring = keyring  # only commands signed with one of its keys are applied
        self.input_ends = input_ends
        self.bounds = bounds  # the years a command's time (its "now") may fall in
        self.catch_up_s = catch_up_s
        self.store = store
        self.index = index
        self.config = config
        self.sla_s = sla_s
        self.applied: dict[str, int] | None = None
        self.stats = {"applied": 0, "refused": 0, "bad": 0, "poison": 0}

    async def decide(self, cmd: Command, update: BatchUpdate) -> dict[str, Any]:
        """Decide one command into ``update``; returns its outcome."""
        if cmd.target == "incident":
            return await self.decide_incident(cmd, update)
        if cmd.target == "silence":
            return await silence_io.decide_silence(
                self.store.redis, cmd, update, grids=self.index.by_id,
                kinds=self.alert_kinds, config=self.config)
        if cmd.target == "duty":
            return await duty.decide(self, cmd, update)
        if cmd.target == "task":
            found, versions = await load_records(self.store.redis, [keys.task(cmd.id)])
            task_raw = found.get(keys.task(cmd.id))
            if task_raw is None:
                return {"ok": False, "reason": f"no task {cmd.id}", "missing": True}
            task: Task | None = Task.from_dict(task_raw)
            assert task is not None
            alert_id = task.alert_id
        else:
            task, alert_id = None, cmd.id
        a_key = keys.alert(alert_id)
        found, more = await load_records(self.store.redis, [a_key, keys.deadline(alert_id)])
        versions = {**(versions if cmd.target == "task" else {}), **more}
        if a_key not in found:
            return {"ok": False, "reason": f"no alert {alert_id}", "missing": True}
        alert = Alert.from_dict(found[a_key])
        if task is None and alert.task_id:
            tfound, tvers = await load_records(self.store.redis, [keys.task(alert.task_id)])
            if keys.task(alert.task_id) in tfound:
                task = Task.from_dict(tfound[keys.task(alert.task_id)])
            versions.update(tvers)
        workers: tuple[str, ...] = ()
        off_duty: tuple[str, ...] = ()
        if (cmd.target, cmd.action) == ("alert", "dispatch") and alert.grid_id:
            # offered to the grid's workers on duty, as the duty commands applied so far
            # left it (compare-and-set: a duty change applied meanwhile decides again)
            grid_workers = self.index.workers_of(alert.grid_id)
            on_duty, update.cas[keys.DUTY] = await duty.load(self.store.redis, grid_workers)
            workers, off_duty = duty.split(grid_workers, on_duty)
        elif (cmd.target, cmd.action, cmd.role) == ("task", "accept", "grid_worker"):
            mine, update.cas[keys.DUTY] = await duty.load(self.store.redis, [cmd.actor])
            if not duty.is_on(mine, cmd.actor):
                update.cas.pop(keys.DUTY)
                return {"ok": False, "reason": f"task {cmd.id}: worker {cmd.actor} is off duty; "
                                               "go on duty to accept it"}
        try:
            new_alert, new_task = lifecycle.apply(
                cmd.target, cmd.action, alert, task, actor=cmd.actor, role=cmd.role, ts=cmd.ts,
                note=cmd.note, grids=cmd.grids, workers=workers, off_duty=off_duty,
                sla_s=self.sla_s, **shelf_time(cmd))
        except TransitionRefused as exc:
            update.cas.pop(keys.DUTY, None)
            return {"ok": False, "reason": exc.reason}
        current = found.get(keys.deadline(alert_id))
        deadline = escalation.next_deadline(
            new_alert, new_task, self.config,
            current=Deadline.from_dict(current) if current else None)
        write_alert(update, new_alert, versions.get(a_key, 0))
        if new_task is not None and (task is None or new_task != task or new_task.id != task.id):
            t_key = keys.task(new_task.id)
            if t_key not in versions:
                versions.update((await load_records(self.store.redis, [t_key]))[1])
            write_task(update, new_task, versions.get(t_key, 0))
        write_deadline(update, alert_id, deadline)
        if new_alert.grid_id:
            bump_grid(update, new_alert.grid_id)
        if cmd.action == "dispatch" and new_alert.status == "acknowledged":
            # no one on duty: recorded on the alert, and the officer is told no task went out
            return {"ok": False, "reason": new_alert.needs_officer, "alert": new_alert.to_dict(),
                    "task": None}
        return {"ok": True, "alert": new_alert.to_dict(),
                "task": new_task.to_dict() if new_task else None}

    async def decide_incident(self, cmd: Command, update: BatchUpdate) -> dict[str, Any]:
        """An incident's ``ack``: each of its alerts still new acknowledged as its own
        ``ack`` would (:func:`.lifecycle.ack_incident`), the others left as they are.

        Refused when the incident is unknown, has fewer alerts than make an incident, or
        has no alert left to acknowledge (the reason says so).
        """
        r = self.store.redis
        count = await r.hget(keys.incident(cmd.id), "count")
        ids = sorted(_text(m) for m in await r.smembers(keys.incident_alerts(cmd.id)))
        if count is None or not ids:
            return {"ok": False, "reason": f"no incident {cmd.id}", "missing": True}
        if len(ids) < contract.INCIDENT_MIN_ALERTS:
            return {"ok": False, "reason": f"incident {cmd.id}: {len(ids)} alerts, "
                    f"fewer than the {contract.INCIDENT_MIN_ALERTS} that make an incident"}
        names = [n for i in ids for n in (keys.alert(i), keys.deadline(i))]
        found, versions = await load_records(r, names)
        members = [Alert.from_dict(found[keys.alert(i)]) for i in ids if keys.alert(i) in found]
        try:
            acked = lifecycle.ack_incident(cmd.id, members, actor=cmd.actor, role=cmd.role,
                                           ts=cmd.ts, note=cmd.note)
        except TransitionRefused as exc:
            return {"ok": False, "reason": exc.reason}
        for alert in acked:
            current = found.get(keys.deadline(alert.id))
            deadline = escalation.next_deadline(
                alert, None, self.config,
                current=Deadline.from_dict(current) if current else None)
            write_alert(update, alert, versions.get(keys.alert(alert.id), 0))
            write_deadline(update, alert.id, deadline)
            if alert.grid_id:
                bump_grid(update, alert.grid_id)
        acked_ids = [a.id for a in acked]
        return {"ok": True, "incident": cmd.id, "acknowledged": acked_ids}

    async def catch_up(self) -> bool:
        """Wait until the input topics are applied up to their end offsets as of now.

        A command names an alert that was in the log when the command was sent. When the
        commands are read faster than the inputs (a replay, a restart), its alert may
        not be applied yet; waiting for the inputs' current end is enough for it to be.

        Returns:
            True if the inputs were behind and have caught up (decide again).
        """
        if self.input_ends is None:
            return False
        ends = await self.input_ends()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.catch_up_s
        waited = False
        while loop.time() < deadline:
            applied = await self.store.offsets()
            behind = [p for p, end in ends.items() if end > 0 and applied.get(p, -1) < end - 1]
            if not behind:
                return waited
            waited = True
            await asyncio.sleep(0.2)
        log.warning("inputs did not catch up within %.0f s; deciding the command now", self.catch_up_s)
        return False

    async def handle(self, rec: RawRecord) -> dict[str, Any] | None:
        """Apply one command record; returns its outcome (None if applied before)."""
        pfield = keys.partition_field(rec.topic, rec.partition)
        while True:
            if self.applied is None:
                self.applied = await self.store.offsets()
            before = self.applied.get(pfield, -1)
            if rec.offset <= before:
                return None
            update = BatchUpdate()
            update.offsets[pfield] = (before, rec.offset)
            try:
                verify_raw(rec.value, self.keyring)  # unsigned or altered: dead-lettered
                cmd = decode_command(rec.value)
                if not self.bounds.lo <= cmd.ts < self.bounds.hi:  # also NaN
                    raise self.bounds.refuse("ts", cmd.ts)
            except DecodeError as exc:
                self.stats["bad"] += 1
                update.deadletters.append(DeadLetter(rec.topic, rec.partition, rec.offset,
                                                     exc.reason, exc.field, rec.value or b""))
                update.incr[(keys.SUMMARY, "deadletter")] += 1
                outcome: dict[str, Any] = {"ok": False, "reason": exc.reason}
                cmd = None
            else:
                try:
                    outcome = await self.decide(cmd, update)
                except Exception as exc:  # a command we cannot handle
                    if _transient(exc):
                        raise
                    update, outcome = self._poison(rec, cmd, before, exc)
                if outcome.pop("missing", False) and await self.catch_up():
                    continue  # the inputs were behind: decide again now they have caught up
                update.sets[keys.cmdresult(cmd.command_id)] = (orjson.dumps(outcome), CMDRESULT_TTL_S)
            try:
                await self.store.apply(update)
            except ApplyConflict:
                self.applied = None
                continue
            except Exception as exc:  # the decided writes cannot be applied
                if _transient(exc) or update.deadletters:
                    raise
                update, outcome = self._poison(rec, cmd, before, exc)
                if cmd is not None:
                    update.sets[keys.cmdresult(cmd.command_id)] = (orjson.dumps(outcome),
                                                                   CMDRESULT_TTL_S)
                try:
                    await self.store.apply(update)
                except ApplyConflict:
                    self.applied = None
                    continue
            self.applied[pfield] = rec.offset
            self.stats["applied" if outcome.get("ok") else "refused"] += 1
            if update.deadletters:
                outcome["deadletters"] = update.deadletters
            return outcome

    def _poison(self, rec: RawRecord, cmd: Command | None, before: int,
                exc: BaseException) -> tuple[BatchUpdate, dict[str, Any]]:
        """An update that dead-letters a command the code raised on (offset applied)."""
        reason = internal_reason(exc)
        log.error("command %s:%d@%d dead-lettered (%s)", rec.topic, rec.partition, rec.offset,
                  reason, exc_info=exc)
        self.stats["poison"] += 1
        update = BatchUpdate()
        update.offsets[keys.partition_field(rec.topic, rec.partition)] = (before, rec.offset)
        update.deadletters.append(DeadLetter(rec.topic, rec.partition, rec.offset, reason, None,
                                             rec.value or b""))
        update.incr[(keys.SUMMARY, "deadletter")] += 1
        return update, {"ok": False, "reason": reason}


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def wait_result(redis: Any, command_id: str, *, timeout: float = 15.0) -> dict[str, Any] | None:
    """Poll for one command's outcome (the CLI; the gateway waits for all of its commands
    in flight at once, in ``ws/relay.py``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        raw = await redis.get(keys.cmdresult(command_id))
        if raw:
            return orjson.loads(raw)  # type: ignore[no-any-return]
        await asyncio.sleep(0.05)
    return None
