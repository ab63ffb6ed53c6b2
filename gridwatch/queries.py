"""Read-only queries over the live state (CLI and tools): grids, alerts, tasks, risk.

A person's trace is read only through :mod:`gridwatch.trace_access`, which audits it.

Each reader turns the stored strings back into the types the writers meant: counters
(``HINCRBY``) are whole numbers that add up over hours; the largest-of fields written
with a compare-and-set maximum (``loiter_max``, stored by the apply script as a float
such as ``"11.0"``) are combined by ``max`` and read back as the number they were.
"""

from __future__ import annotations

import math
import re
import time
from typing import Any

import orjson
import redis

from . import keys
from .redis_client import mget
from .schemas.commands import OPEN_ALERT
from .schemas.events import format_time

_SPAN = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")


def parse_span(text: str) -> float:
    """``"6h"`` -> 21600.0 seconds (s, m, h, d).

    Raises:
        ValueError: not a number followed by s, m, h or d.
    """
    m = _SPAN.match(text.strip())
    if not m:
        raise ValueError(f"{text!r}: expected a span like 30m, 6h or 14d")
    return float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def event_now(r: redis.Redis) -> float:
    """The feed's event time (newest event seen), or the wall clock before any event."""
    marks = [float(v) for v in r.hvals(keys.WATERMARKS)]
    return max(marks) if marks else time.time()


# Hour-hash fields written as a running maximum (agents.records_io: ``update.hmax``);
# every other field of a grid's hour and total hashes is a counter.
MAX_FIELDS = frozenset({"loiter_max"})


def number(raw: str | bytes) -> int | float:
    """A stored number as the writer meant it: ``"3"`` -> 3, ``"11.0"`` -> 11, ``"2.5"`` -> 2.5.

    Raises:
        ValueError: not a number (a corrupted key); the caller names it.
    """
    text = raw.decode() if isinstance(raw, bytes) else raw
    try:
        return int(text)
    except ValueError:
        value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return int(value) if value.is_integer() else value


def _fields(raw: dict[str, str], key: str) -> dict[str, int | float]:
    try:
        return {name: number(value) for name, value in raw.items()}
    except ValueError as exc:
        raise ValueError(f"{key}: {exc}") from None


def combine(into: dict[str, int | float], fields: dict[str, int | float]) -> None:
    """Add one hour's fields into a span: counters add up, maxima take the largest."""
    for name, value in fields.items():
        if name in MAX_FIELDS:
            into[name] = max(into.get(name, value), value)
        else:
            into[name] = into.get(name, 0) + value


def now_hour(r: redis.Redis) -> int | None:
    """The event-time "current hour": the hour of the newest event seen anywhere."""
    marks = [float(v) for v in r.hvals(keys.WATERMARKS)]
    return keys.hour_of(max(marks)) if marks else None


def grid_state(r: redis.Redis, grid_id: str, *, hour: int | None = None) -> dict[str, Any]:
    """One grid's live state: the current hour, the last 24 hours (event time), all time.

    Raises:
        ValueError: a stored field is not a number (names the key).
    """
    hour = now_hour(r) if hour is None else hour
    hours = list(range(hour - 23, hour + 1)) if hour is not None else []
    pipe = r.pipeline(transaction=False)  # on a cluster: split by node, replies in order
    pipe.hgetall(keys.grid_total(grid_id))
    for h in hours:
        pipe.hgetall(keys.grid_hour(grid_id, h))
    replies = pipe.execute()
    total = _fields(replies[0], keys.grid_total(grid_id))
    per_hour = [_fields(raw, keys.grid_hour(grid_id, h)) for h, raw in zip(hours, replies[1:])]
    last24: dict[str, int | float] = {}
    for fields in per_hour:
        combine(last24, fields)
    return {
        "grid_id": grid_id,
        "hour": None if hour is None else format_time(hour * 3600),
        "current_hour": per_hour[-1] if per_hour else {},
        "last_24h": last24,
        "total": total,
    }


def risk_of(r: redis.Redis, grid_id: str) -> dict[str, Any] | None:
    raw = r.get(keys.risk(grid_id))
    return orjson.loads(raw) if raw else None


def top(r: redis.Redis, *, limit: int = 20) -> list[dict[str, Any]]:
    """The grids with the highest risk score, worst first."""
    ids = [g for g, _ in r.zrevrange(keys.RISK_RANK, 0, limit - 1, withscores=True)]
    raws = mget(r, [keys.risk(g) for g in ids])
    return [orjson.loads(raw) for raw in raws if raw]


def alerts(r: redis.Redis, *, status: str | None = None, grid: str | None = None,
           since_s: float | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    """Alerts, newest first, filtered by status ("open" = not closed or dismissed),
    grid and age (event time)."""
    lo = event_now(r) - since_s if since_s else "-inf"
    if grid:
        source = keys.alerts_by_grid(grid)
    elif status == "open":
        source = keys.ALERTS_OPEN
    else:
        source = keys.ALERTS_ALL
    ids = r.zrevrangebyscore(source, "+inf", lo, start=0, num=limit * 4 if status else limit)
    out = []
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        for raw in mget(r, [keys.alert(i) for i in chunk]):
            if not raw:
                continue
            alert = orjson.loads(raw)
            if status == "open" and alert["status"] not in OPEN_ALERT:
                continue
            if status and status != "open" and alert["status"] != status:
                continue
            out.append(alert)
            if len(out) >= limit:
                return out
    return out


def tasks(r: redis.Redis, *, worker: str, limit: int = 200) -> list[dict[str, Any]]:
    """A worker's tasks, newest first."""
    ids = r.zrevrange(keys.tasks_by_worker(worker), 0, limit - 1)
    raws = mget(r, [keys.task(i) for i in ids])
    return [orjson.loads(raw) for raw in raws if raw]
