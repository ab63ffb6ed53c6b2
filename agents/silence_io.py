"""Setting and ending silences against the stored state (the worker's shell around
:mod:`.silences`).

A silence is set or ended by a command (``silence`` / ``end_silence``, applied in log
order by :class:`~.commands.CommandApplier`) or ends by itself when the timers reach its
``ends_at`` in event time (:func:`fire_ends`). Ending one writes, in one atomic step
under the versions read: the ended silence, each alert it held reopened (with its
acknowledgement deadline, counted from the reopening) or moved to another silence
that still matches it.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

from .. import keys
from ..schemas import commands as contract
from ..schemas.commands import silence_id_of
from ..schemas.errors import TransitionRefused
from ..schemas.records import Alert
from ..store import ApplyConflict, AsyncStore
from . import escalation, silences
from .escalation import EscalationConfig
from .fold import BatchUpdate
from .records_io import (
    bump_grid,
    load_records,
    load_silences,
    note_held,
    write_alert,
    write_deadline,
    write_silence,
)
from .silences import Silence

log = logging.getLogger("gridwatch.silences")


async def decide_silence(redis: Any, cmd: Any, update: BatchUpdate, *,
                         grids: Collection[str], kinds: Collection[str],
                         config: EscalationConfig) -> dict[str, Any]:
    """Decide one ``silence`` or ``end_silence`` command into ``update``; its outcome."""
    if cmd.role not in contract.roles_for("silence", cmd.action):
        verb = "set" if cmd.action == "silence" else "end"
        return {"ok": False, "reason": f"only a duty officer or admin may {verb} a silence, "
                                       f"not {cmd.role} {cmd.actor}"}
    if cmd.action == "silence":
        sid = silence_id_of(cmd.command_id)
        match = next((m for m in ("grid", "source", "kind") if cmd.params.get(m)), "")
        for_s = cmd.params.get("for_s")
        try:
            silence = silences.new_silence(
                sid, match=match, value=str(cmd.params.get(match, "")),
                for_s=for_s if isinstance(for_s, (int, float)) else float("nan"),
                reason=cmd.note, actor=cmd.actor, role=cmd.role, ts=cmd.ts, grids=grids,
                kinds=kinds)
        except TransitionRefused as exc:
            return {"ok": False, "reason": exc.reason}
        _, versions = await load_records(redis, [keys.silence(sid)])
        write_silence(update, silence, versions[keys.silence(sid)])
        return {"ok": True, "silence": silence.to_dict()}
    found, versions = await load_records(redis, [keys.silence(cmd.id)])
    if keys.silence(cmd.id) not in found:
        return {"ok": False, "reason": f"no silence {cmd.id}", "missing": True}
    silence = Silence.from_dict(found[keys.silence(cmd.id)])
    try:
        ended = silences.end(silence, actor=cmd.actor, role=cmd.role, ts=cmd.ts, note=cmd.note)
    except TransitionRefused as exc:
        return {"ok": False, "reason": exc.reason}
    reopened = await _end(redis, ended, versions[keys.silence(cmd.id)], update, config,
                          actor=cmd.actor, role=cmd.role)
    return {"ok": True, "silence": ended.to_dict(), "reopened": reopened}


async def _end(redis: Any, ended: Silence, version: int, update: BatchUpdate,
               config: EscalationConfig, *, actor: str, role: str) -> list[str]:
    """Write ``ended`` and release the alerts it held; returns the ids reopened."""
    assert ended.ended_at is not None
    write_silence(update, ended, version)
    ids = sorted(m.decode() if isinstance(m, bytes) else m
                 for m in await redis.smembers(keys.silence_alerts(ended.id)))
    found, versions = await load_records(redis, [keys.alert(i) for i in ids])
    held = [Alert.from_dict(v) for v in found.values()]
    others = await load_silences(redis)
    out = silences.release(ended, held, others, actor=actor, role=role, ts=ended.ended_at)
    for alert in out.reopened:
        write_alert(update, alert, versions[keys.alert(alert.id)])
        write_deadline(update, alert.id, escalation.next_deadline(alert, None, config))
        if alert.grid_id:
            bump_grid(update, alert.grid_id)
    for other_id, moved in out.moved.items():
        for alert in moved:
            write_alert(update, alert, versions[keys.alert(alert.id)])
        note_held(update, other_id, [a.id for a in moved])
    return [a.id for a in out.reopened]


async def fire_ends(store: AsyncStore, now: float, config: EscalationConfig, *,
                    limit: int = 50) -> int:
    """End every silence whose time is up at ``now`` (event time); returns how many."""
    redis = store.redis
    due = await redis.zrangebyscore(keys.SILENCE_ENDS, "-inf", now, start=0, num=limit)
    ended = 0
    for raw_id in due:
        sid = raw_id.decode() if isinstance(raw_id, bytes) else raw_id
        for _ in range(5):  # a version conflict: someone else moved it, look again
            try:
                ended += await _end_one(store, sid, config)
                break
            except ApplyConflict:
                continue
    return ended


async def _end_one(store: AsyncStore, sid: str, config: EscalationConfig) -> int:
    redis = store.redis
    found, versions = await load_records(redis, [keys.silence(sid)])
    update = BatchUpdate()
    raw = found.get(keys.silence(sid))
    silence = Silence.from_dict(raw) if raw else None
    if silence is None or not silence.active:  # ended meanwhile: only the deadline is left
        update.zrem[keys.SILENCE_ENDS].add(sid)
        update.hdel[keys.SILENCES_ACTIVE].add(sid)
        update.cas[keys.silence(sid)] = versions[keys.silence(sid)]
        await store.apply(update)
        return 0
    ended = silences.end(silence, actor="system", role="system", ts=silence.ends_at)
    reopened = await _end(redis, ended, versions[keys.silence(sid)], update, config,
                          actor="system", role="system")
    await store.apply(update)
    log.info("silence %s ended; %d alerts reopened", sid, len(reopened))
    return 1
