"""Stored deadlines that fire: escalations, shelf ends, silence ends and silent sources.

Nothing here lives only in memory. Escalation deadlines are a sorted set in Redis;
every worker looks at the overdue ones every few seconds, and firing one rewrites the
alert and its next deadline under a version check, so with several workers, or after
a restart that finds many overdue, each level fires exactly once.

Time is the feed's event time (the newest event seen), so a simulated day at speed and
a replay of old data escalate as the day itself would have; in live operation event
time follows the wall clock within seconds. It never runs further ahead of the wall
clock than the allowed skew (``GRIDWATCH_MAX_FUTURE_S``): one event stamped years
ahead (or a watermark stored before the decoders bounded ``ts``) must not fire every
escalation at once and make every source look silent.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any

from .. import keys
from ..batch import BatchUpdate
from ..schemas.records import Alert, Task
from ..store import ApplyConflict, AsyncStore
from . import escalation, lifecycle, liveness, silence_io
from .decide import DecideConfig, hold_if_silenced, source_state
from .escalation import Deadline
from .records_io import load_records, load_silences, note_held, write_alert, write_deadline

log = logging.getLogger("gridwatch.timers")


def clamp_now(mark: float, wall: float, max_future_s: float | None) -> float:
    """An event time kept to at most ``max_future_s`` ahead of the wall clock (no limit
    when None); a stored value that is not a number counts as the wall clock."""
    if math.isnan(mark):
        return wall
    if max_future_s is None:
        return mark
    return min(mark, wall + max_future_s)


async def event_now(redis: Any, *, max_future_s: float | None = None) -> float | None:
    """The feed's event time: the newest watermark of any partition, at most
    ``max_future_s`` ahead of the wall clock when given."""
    marks = [float(v) for v in await redis.hvals(keys.WATERMARKS)]
    if not marks:
        return None
    return clamp_now(max(marks), time.time(), max_future_s)


class Timers:
    """Fires overdue escalations and raises silent-source alerts."""

    def __init__(self, store: AsyncStore, config: DecideConfig, *,
                 max_future_s: float | None = 300.0) -> None:
        self.store = store
        self.config = config
        self.max_future_s = max_future_s  # how far ahead of the wall clock time may run
        self.stats = {"escalations": 0, "silent": 0, "unshelved": 0, "silences_ended": 0}

    async def fire_due(self, now: float, *, limit: int = 200) -> int:
        """Fire every deadline due at ``now``; returns the escalation levels fired."""
        redis = self.store.redis
        due = await redis.zrangebyscore(keys.DEADLINES, "-inf", now, start=0, num=limit)
        fired = 0
        for raw_id in due:
            alert_id = raw_id.decode()
            for _ in range(5):  # a version conflict means someone else moved it: look again
                try:
                    fired += await self._fire_one(alert_id, now)
                    break
                except ApplyConflict:
                    continue
        self.stats["escalations"] += fired
        return fired

    async def _fire_one(self, alert_id: str, now: float) -> int:
        a_key, d_key = keys.alert(alert_id), keys.deadline(alert_id)
        found, versions = await load_records(self.store.redis, [a_key, d_key])
        update = BatchUpdate()
        if a_key not in found or d_key not in found:
            write_deadline(update, alert_id, None)
            update.cas[a_key] = versions[a_key]
            await self.store.apply(update)
            return 0
        alert = Alert.from_dict(found[a_key])
        deadline = Deadline.from_dict(found[d_key])
        if deadline.kind == "shelf":
            return await self._unshelve(alert, versions[a_key], deadline, now)
        task: Task | None = None
        if alert.task_id:
            t_found, _ = await load_records(self.store.redis, [keys.task(alert.task_id)])
            if keys.task(alert.task_id) in t_found:
                task = Task.from_dict(t_found[keys.task(alert.task_id)])
        raised, next_deadline = escalation.fire_all(deadline, alert, task, now, self.config.escalation)
        if not raised and next_deadline is None:
            next_deadline = escalation.next_deadline(alert, task, self.config.escalation)
        if raised:  # the alert itself, raised to its new level and announced again
            write_alert(update, raised[-1], versions[a_key])
        else:
            update.cas[a_key] = versions[a_key]
        write_deadline(update, alert_id, next_deadline)
        await self.store.apply(update)
        return len(raised)

    async def _unshelve(self, alert: Alert, version: int, deadline: Deadline, now: float) -> int:
        """A shelf time that ended: the alert is new again (its ``ack`` chain from then)."""
        update = BatchUpdate()
        if now < deadline.due_at:
            update.cas[keys.alert(alert.id)] = version
            write_deadline(update, alert.id, deadline)
        elif alert.status == "shelved":
            back = lifecycle.unshelve(alert, ts=deadline.due_at)
            write_alert(update, back, version)
            write_deadline(update, alert.id, escalation.next_deadline(
                back, None, self.config.escalation))
            self.stats["unshelved"] += 1
        else:
            update.cas[keys.alert(alert.id)] = version
            write_deadline(update, alert.id, escalation.next_deadline(
                alert, None, self.config.escalation))
        await self.store.apply(update)
        return 0

    async def end_silences(self, now: float) -> int:
        """End every silence whose time is up at ``now``; returns how many ended."""
        ended = await silence_io.fire_ends(self.store, now, self.config.escalation)
        self.stats["silences_ended"] += ended
        return ended

    async def check_sources(self, now: float) -> int:
        """Raise a silent-source alert for each source overdue at ``now``."""
        redis = self.store.redis
        raw = await redis.hgetall(keys.SOURCE_STATS)
        stats: dict[str, dict[str, str]] = {}
        for field, value in raw.items():
            sid, _, name = field.decode().rpartition(":")
            stats.setdefault(sid, {})[name] = value.decode()
        silent = {k.decode() for k in await redis.hkeys(keys.SILENT)}
        active = await load_silences(redis)
        raised = 0
        for sid, s in stats.items():
            if sid in silent or "last" not in s:
                continue
            state = source_state(sid, s.get("kind", "checkpoint"), s.get("grid") or None,
                                 int(s.get("n", 0)), float(s.get("first", s["last"])),
                                 float(s["last"]), self.config.liveness)
            alert = liveness.check(state, now, self.config.liveness)
            if alert is None:
                continue
            update = BatchUpdate()
            key = keys.alert(alert.id)
            version = int(await redis.hget(keys.VERSIONS, key) or 0)
            if version:
                continue  # raised already for this silence
            held: dict[str, list[str]] = {}
            alert = hold_if_silenced(alert, active, held)
            for silence_id, ids in held.items():
                note_held(update, silence_id, ids)
            write_alert(update, alert, 0)
            if alert.status == "silenced":
                write_deadline(update, alert.id, None)
            update.hset[(keys.SILENT, sid)] = alert.id
            try:
                await self.store.apply(update)
                raised += 1
            except ApplyConflict:
                continue
        self.stats["silent"] += raised
        return raised

    async def run(self, *, every: float = 2.0, sources_every: float = 30.0) -> None:
        """Fire deadlines every ``every`` seconds and check sources every ``sources_every``."""
        last_sources = 0.0
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(every)
            try:
                now = await event_now(self.store.redis, max_future_s=self.max_future_s)
                if now is None:
                    continue
                await self.fire_due(now)
                await self.end_silences(now)
                if loop.time() - last_sources >= sources_every:
                    last_sources = loop.time()
                    await self.check_sources(now)
            except Exception as exc:  # noqa: BLE001 - a timer must outlive a Redis blip
                log.warning("timers: %s: %s; retrying", type(exc).__name__, exc)
