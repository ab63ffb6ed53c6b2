"""Turning decided records into writes of a batch update, and loading what decisions read.

The write side is pure (records in, :class:`~gridwatch.batch.BatchUpdate`
operations out); the load side reads Redis with one pipeline per round trip. Both
use only the key functions of :mod:`gridwatch.keys`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from .. import keys
from ..batch import BatchUpdate
from ..redis_client import is_cluster
from ..schemas.commands import OPEN_ALERT, OPEN_TASK
from ..schemas.events import CheckpointScan, CrowdLoiter, Event, StationTicket
from ..schemas.records import Alert, Task
from . import rules
from .decide import Decisions, View, incident_id
from .escalation import Deadline
from .silences import Silence


def write_alert(update: BatchUpdate, alert: Alert, version: int) -> None:
    """Store an alert (compare-and-set at ``version``) and announce it on its channel."""
    key = keys.alert(alert.id)
    data = orjson.dumps(alert.to_dict())
    update.cas[key] = version
    update.sets[key] = (data, keys.ALERT_TTL_S)
    update.zadd[keys.ALERTS_ALL][alert.id] = alert.ts_raised
    if alert.grid_id:
        update.zadd[keys.alerts_by_grid(alert.grid_id)][alert.id] = alert.ts_raised
    if alert.status in OPEN_ALERT:
        update.zadd[keys.ALERTS_OPEN][alert.id] = alert.ts_raised
        update.zrem[keys.ALERTS_OPEN].discard(alert.id)
    else:
        update.zadd[keys.ALERTS_OPEN].pop(alert.id, None)
        update.zrem[keys.ALERTS_OPEN].add(alert.id)
    update.streams.append((keys.CHAN_ALERTS, keys.CHAN_MAXLEN,
                           keys.channel_message("alert", data)))


def write_task(update: BatchUpdate, task: Task, version: int) -> None:
    """Store a task (compare-and-set at ``version``) and announce it on its channel."""
    key = keys.task(task.id)
    data = orjson.dumps(task.to_dict())
    update.cas[key] = version
    update.sets[key] = (data, keys.ALERT_TTL_S)
    for worker in task.workers:
        update.zadd[keys.tasks_by_worker(worker)][task.id] = task.ts_created
    open_key = keys.tasks_open(task.grid_id)
    if task.status in OPEN_TASK:
        update.zadd[open_key][task.id] = task.due_at
        update.zrem[open_key].discard(task.id)
    else:
        update.zadd[open_key].pop(task.id, None)
        update.zrem[open_key].add(task.id)
    bump_grid(update, task.grid_id)  # open/overdue tasks feed the risk
    update.streams.append((keys.CHAN_TASKS, keys.CHAN_MAXLEN,
                           keys.channel_message("task", data)))


def write_deadline(update: BatchUpdate, alert_id: str, deadline: Deadline | None) -> None:
    """Store (or clear) the next escalation deadline of an alert."""
    if deadline is None:
        update.dels.add(keys.deadline(alert_id))
        update.zrem[keys.DEADLINES].add(alert_id)
        update.zadd[keys.DEADLINES].pop(alert_id, None)
    else:
        update.sets[keys.deadline(alert_id)] = (orjson.dumps(deadline.to_dict()), keys.ALERT_TTL_S)
        update.zadd[keys.DEADLINES][alert_id] = deadline.due_at
        update.zrem[keys.DEADLINES].discard(alert_id)
        update.dels.discard(keys.deadline(alert_id))


def write_silence(update: BatchUpdate, silence: Silence, version: int) -> None:
    """Store a silence (compare-and-set at ``version``): active, it is in the active hash
    and its end is a stored deadline; ended, it leaves both."""
    key = keys.silence(silence.id)
    data = orjson.dumps(silence.to_dict())
    update.cas[key] = version
    update.sets[key] = (data, keys.ALERT_TTL_S)
    update.zadd[keys.SILENCES][silence.id] = silence.starts_at
    if silence.active:
        update.hset[(keys.SILENCES_ACTIVE, silence.id)] = data.decode()
        update.zadd[keys.SILENCE_ENDS][silence.id] = silence.ends_at
    else:
        update.hset.pop((keys.SILENCES_ACTIVE, silence.id), None)
        update.hdel[keys.SILENCES_ACTIVE].add(silence.id)
        update.zadd[keys.SILENCE_ENDS].pop(silence.id, None)
        update.zrem[keys.SILENCE_ENDS].add(silence.id)


def note_held(update: BatchUpdate, silence_id: str, alert_ids: Iterable[str]) -> None:
    """Note the alerts a silence holds (those it reopens when it ends)."""
    update.sadd[keys.silence_alerts(silence_id)].update(alert_ids)
    update.expire[keys.silence_alerts(silence_id)] = keys.ALERT_TTL_S


async def load_silences(redis: Any) -> dict[str, Silence]:
    """The active silences, by id."""
    raw = await redis.hgetall(keys.SILENCES_ACTIVE)
    return decode_silences(raw)


def decode_silences(raw: dict[Any, Any]) -> dict[str, Silence]:
    """The silences of an ``HGETALL`` of :data:`keys.SILENCES_ACTIVE`."""
    out = {}
    for sid, value in raw.items():
        silence = Silence.from_dict(orjson.loads(value))
        out[sid.decode() if isinstance(sid, bytes) else sid] = silence
    return out


def add_decisions(update: BatchUpdate, decisions: Decisions, versions: dict[str, int], *,
                  visit_horizon_s: float, trace_s: float) -> None:
    """Add a batch's decided records to its update.

    Args:
        versions: the version each alert key was read at (absent: new, version 0).
        visit_horizon_s: how long a red-code person's visits are kept.
        trace_s: how long a person's trace is kept.
    """
    for alert in decisions.alerts.values():
        write_alert(update, alert, versions.get(keys.alert(alert.id), 0))
    for alert_id, deadline in decisions.deadlines.items():
        write_deadline(update, alert_id, deadline)
    for silence_id, alert_ids in decisions.silenced.items():
        note_held(update, silence_id, alert_ids)
    for key, alert_id in decisions.loiter_latest.items():
        update.hset[(keys.LOITER_LATEST, key)] = alert_id
    for person, members in decisions.red_visits.items():
        zkey = keys.red_visits(person)
        update.cas[zkey] = versions.get(zkey, 0)
        update.cas_ttl[zkey] = int(visit_horizon_s)  # the version goes with the visits
        update.zadd[zkey].update(dict(members))
        update.zkeep[zkey] = visit_horizon_s  # behind the person's newest visit, whenever it came
        update.expire[zkey] = int(visit_horizon_s)
    for (grid, hour, name), n in decisions.uncount.items():
        update.hdecr[(keys.grid_hour(grid, hour), name)] = (n, False)
        bump_grid(update, grid)
    for (grid, window), ids in decisions.incidents_left.items():
        iid = incident_id(grid, window)
        update.hdecr[(keys.incident(iid), "count")] = (len(ids), True)
        update.srem[keys.incident_alerts(iid)].update(ids)
    for grid, alert_id in decisions.grid_index_left:
        update.zrem[keys.alerts_by_grid(grid)].add(alert_id)
    for person, members in decisions.traces.items():
        zkey = keys.trace(person)
        newest = max(ts for _, ts in members)
        update.zadd[zkey].update(dict(members))
        update.ztrim[zkey] = newest - trace_s
        update.expire[zkey] = int(trace_s)
    for source_id, seen in decisions.sources_seen.items():
        update.incr[(keys.SOURCE_STATS, f"{source_id}:n")] += seen.count
        k_first, k_last = (keys.SOURCE_STATS, f"{source_id}:first"), (keys.SOURCE_STATS, f"{source_id}:last")
        update.hmin[k_first] = min(seen.first, update.hmin.get(k_first, seen.first))
        update.hmax[k_last] = max(seen.last, update.hmax.get(k_last, seen.last))
        update.hset[(keys.SOURCE_STATS, f"{source_id}:kind")] = seen.kind
        update.hset[(keys.SOURCE_STATS, f"{source_id}:grid")] = seen.grid_id or ""
    for source_id in decisions.silent_cleared:
        update.hdel[keys.SILENT].add(source_id)
    for (grid, window), ids in decisions.incidents.items():
        iid = incident_id(grid, window)
        update.incr[(keys.incident(iid), "count")] += len(ids)
        update.hset[(keys.incident(iid), "grid_id")] = grid
        update.hset[(keys.incident(iid), "window")] = str(window)
        update.sadd[keys.incident_alerts(iid)].update(ids)
        update.expire[keys.incident(iid)] = keys.ALERT_TTL_S
        update.expire[keys.incident_alerts(iid)] = keys.ALERT_TTL_S
    for (grid, hour, name), n in decisions.grid_counts.items():
        update.incr[(keys.grid_hour(grid, hour), name)] += n
        update.expire[keys.grid_hour(grid, hour)] = keys.HOUR_TTL_S
        # a risk input of its own: the grid of a moved cross-grid raise may be one this
        # batch's events did not touch
        bump_grid(update, grid)
    for tkey, n in decisions.train_high_risk.items():
        station, train_no, arrival = tkey.split("|")
        hkey = keys.train(station, train_no, float(arrival))
        update.incr[(hkey, "high_risk")] += n
        update.expire[hkey] = keys.STATION_TTL_S
    for (grid, hour), people in decisions.crowd_max.items():
        k = (keys.grid_hour(grid, hour), "loiter_max")
        update.hmax[k] = max(people, update.hmax.get(k, 0))


def mark_grids(update: BatchUpdate) -> set[str]:
    """Note each touched grid's newest event hour and bump its risk-input version;
    returns the touched grids."""
    touched: set[str] = set()
    for _, event, grid in update.events:
        if grid is None or not isinstance(event, (CheckpointScan, CrowdLoiter)):
            continue
        touched.add(grid)
        k = (keys.GRID_HOUR, grid)
        update.hmax[k] = max(float(keys.hour_of(event.ts)), update.hmax.get(k, 0.0))
    for grid in touched:
        bump_grid(update, grid)
    return touched


def bump_grid(update: BatchUpdate, grid: str) -> None:
    """The grid's risk inputs change with this update: bump its version and mark it
    for scoring, both in the update's one atomic step (``keys.RISK_DIRTY``)."""
    update.incr[(keys.GRID_VERSION, grid)] += 1
    update.sadd[keys.RISK_DIRTY].add(grid)


async def load_view(redis: Any, events: list[tuple[Event, str | None]], *,
                    visit_window_s: float) -> tuple[View, dict[str, int]]:
    """Read what the decisions of a batch need (two round trips), active silences too.

    Returns:
        the view, and the version of every alert key it read.
    """
    view = View()
    red_people: dict[str, float] = {}
    loiter_keys: list[str] = []
    sources: set[str] = set()
    trains: dict[str, str] = {}
    for event, _ in events:
        if isinstance(event, StationTicket) and event.origin_risk == "high":
            from .decide import train_key

            trains[train_key(event)] = keys.train(event.station_id, event.train_no, event.arrival_at)
        if isinstance(event, CheckpointScan):
            sources.add(event.checkpoint_id)
            if event.code_color == "red":
                red_people[event.person_ref] = min(event.ts, red_people.get(event.person_ref, event.ts))
        elif isinstance(event, CrowdLoiter):
            sources.add(event.camera_id)
            loiter_keys.append(f"{event.camera_id}|{event.zone}")
    loiter_keys = sorted(set(loiter_keys))
    source_list = sorted(sources)
    pipe = redis.pipeline(transaction=False)
    people = sorted(red_people)
    # A person's visits are compare-and-set like a record (two workers may hold scans of
    # one person when producers do not key by person); the version is read before the
    # visits, so a write landing between the two reads makes the batch fold again
    # rather than decide on visits older than their version.
    visit_keys = [keys.red_visits(p) for p in people]
    version_keys = [keys.version_of(k) for k in visit_keys]
    cluster = is_cluster(redis)
    if version_keys and cluster:  # a cluster's pipeline refuses MGET (same slot: GETs)
        for vkey in version_keys:
            pipe.get(vkey)
    elif version_keys:
        pipe.mget(version_keys)
    for person in people:
        pipe.zrangebyscore(keys.red_visits(person), red_people[person] - visit_window_s, "+inf",
                           withscores=True)
    if loiter_keys:
        pipe.hmget(keys.LOITER_LATEST, loiter_keys)
    if source_list:
        pipe.hmget(keys.SILENT, source_list)
    train_list = sorted(trains)
    for tkey in train_list:
        pipe.hget(trains[tkey], "high_risk")
    pipe.hgetall(keys.SILENCES_ACTIVE)
    replies = await pipe.execute()
    view.silences = decode_silences(replies.pop())
    visit_versions: dict[str, int] = {}
    if visit_keys:
        got = replies[:len(visit_keys)] if cluster else replies[0]
        visit_versions = {k: int(v or 0) for k, v in zip(visit_keys, got)}
        replies = replies[len(visit_keys):] if cluster else replies[1:]
    if train_list:
        for tkey, value in zip(train_list, replies[-len(train_list):]):
            view.train_high_risk[tkey] = int(value or 0)
        replies = replies[: -len(train_list)]
    for person, visits in zip(people, replies[: len(people)]):
        out = []
        for member, score in visits:
            # "grid|event_id|checkpoint_id" (before the checkpoint was kept: "grid|event_id")
            text = member.decode() if isinstance(member, bytes) else member
            grid, event_id, checkpoint = [*text.split("|", 2), "", ""][:3]
            out.append(rules.Visit(float(score), grid or None, event_id, checkpoint))
        view.red_visits[person] = out
    rest = replies[len(people):]
    latest_ids: dict[str, str] = {}
    if loiter_keys:
        for key, value in zip(loiter_keys, rest[0]):
            if value:
                latest_ids[key] = value.decode()
        rest = rest[1:]
    if source_list:
        for sid, value in zip(source_list, rest[0]):
            if value:
                view.silent[sid] = value.decode()
    from .rules import alert_id as rule_alert_id

    wanted = set(latest_ids.values()) | set(view.silent.values())
    wanted |= {rule_alert_id("station_high_risk", t) for t in train_list}
    versions = await load_alerts(redis, view, wanted, latest_ids)
    versions.update(visit_versions)
    return view, versions


async def load_alerts(redis: Any, view: View, ids: Iterable[str],
                      latest_ids: dict[str, str] | None = None) -> dict[str, int]:
    """Load alert records into ``view.alerts``; returns the version of each key read."""
    ids = sorted(set(ids) - set(view.alerts))
    versions: dict[str, int] = {}
    if ids:
        alert_keys = [keys.alert(i) for i in ids]
        vers, values = await _versions_then_records(redis, alert_keys)
        for alert_id, key, value, ver in zip(ids, alert_keys, values, vers):
            versions[key] = int(ver or 0)
            if value:
                view.alerts[alert_id] = Alert.from_dict(orjson.loads(value))
    for key, alert_id in (latest_ids or {}).items():
        view.loiter_latest[key] = view.alerts.get(alert_id)
    return versions


async def _versions_then_records(redis: Any, record_keys: list[str]
                                 ) -> tuple[list[Any], list[Any]]:
    """The versions of ``record_keys``, then their values, in one round trip (versions
    first: see :func:`load_view`). A cluster's pipeline refuses MGET; the records share
    the core slot, so there they are one GET each in the same round trip."""
    pipe = redis.pipeline(transaction=False)
    pipe.hmget(keys.VERSIONS, record_keys)
    if is_cluster(redis):
        for key in record_keys:
            pipe.get(key)
        replies = await pipe.execute()
        return replies[0], replies[1:]
    pipe.mget(record_keys)
    vers, values = await pipe.execute()
    return vers, values


async def load_records(redis: Any, record_keys: list[str]) -> tuple[dict[str, Any], dict[str, int]]:
    """The JSON records stored under ``record_keys`` (absent ones left out) and the
    version of every key (0 for a key never written), in one round trip."""
    vers, values = await _versions_then_records(redis, record_keys)
    return ({k: orjson.loads(v) for k, v in zip(record_keys, values) if v},
            {k: int(v or 0) for k, v in zip(record_keys, vers)})


async def versions_of(redis: Any, record_keys: Iterable[str]) -> dict[str, int]:
    """The current version of each record key (0 for a key never written)."""
    record_keys = sorted(set(record_keys))
    if not record_keys:
        return {}
    vers = await redis.hmget(keys.VERSIONS, record_keys)
    return {k: int(v or 0) for k, v in zip(record_keys, vers)}
