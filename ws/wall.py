"""The duty officer's wall figures: trends of the last 24 hours and the riskiest grids.

Read from what the worker already keeps, nothing written for them:

* scans by colour per hour: the grids' hour buckets (``keys.grid_hour``, fields
  ``scan:<colour>:<direction>`` and their ``late:`` twins: a late scan still happened in
  that hour), summed over every grid seen (``keys.GRIDS_SEEN``);
* alerts raised per hour by kind, and the alerts open at the end of each hour: the alert
  records (raised since :data:`OPEN_LOOKBACK_H` hours before the window, and every alert
  open now), each closed or dismissed at the time of its audit entry that did it;
* the top grids by score (``keys.RISK_RANK``) with their main reason, the first line of
  :func:`gridwatch.risk.explain` after its headline.

Hours are event-time hours ending with the feed's newest event (the watermarks), as
everywhere else. :func:`trends` and :func:`top` are pure; :func:`read_trends` and
:func:`read_top` do the reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from gridwatch import keys, redis_client
from gridwatch.risk import RiskScore, explain

HOURS = 24
OPEN_LOOKBACK_H = 72  # alerts raised this long before the window may still be open in it
FINAL = frozenset({"closed", "dismissed"})


def closed_at(alert: Mapping[str, Any]) -> float | None:
    """When an alert was closed or dismissed (its last audit entry into such a state)."""
    out = None
    for entry in alert.get("audit") or ():
        if entry.get("to_state") in FINAL:
            out = float(entry["ts"])
    if out is None and alert.get("status") in FINAL:
        out = float(alert.get("ts_updated", alert["ts_raised"]))
    return out


def trends(hour: int, scan_rows: Iterable[tuple[int, Mapping[str, str | bytes]]],
           alerts: Iterable[Mapping[str, Any]], now: float) -> dict[str, Any]:
    """The three trend series over the :data:`HOURS` hours ending with ``hour``.

    Args:
        hour: the newest event-time hour (``keys.hour_of``).
        scan_rows: ``(hour, fields)`` of grid hour buckets (any grids, any hours).
        alerts: alert records (raised in or before the window).
        now: the feed's event time (the last hour's open count is taken at it).

    Returns:
        ``hours`` (each hour's start, epoch s), ``scans`` (colour -> counts), ``alerts``
        (kind -> raised per hour), ``open`` (alerts open at each hour's end) and
        ``window`` (``"last_24h"``).
    """
    first = hour - HOURS + 1
    scans: dict[str, list[int]] = {}
    for h, fields in scan_rows:
        if not first <= h <= hour:
            continue
        for name, value in fields.items():
            text = name.decode() if isinstance(name, bytes) else name
            parts = text.removeprefix("late:").split(":")
            if len(parts) == 3 and parts[0] == "scan":
                scans.setdefault(parts[1], [0] * HOURS)[h - first] += int(value)
    raised: dict[str, list[int]] = {}
    open_at = [0] * HOURS
    ends = [min((first + i + 1) * 3600, now) for i in range(HOURS)]
    for a in alerts:
        ts, done = float(a["ts_raised"]), closed_at(a)
        i = int(ts // 3600) - first
        if 0 <= i < HOURS:
            raised.setdefault(str(a.get("kind")), [0] * HOURS)[i] += 1
        for j, end in enumerate(ends):
            if ts <= end and (done is None or done > end):
                open_at[j] += 1
    return {"hours": [(first + i) * 3600 for i in range(HOURS)], "scans": scans,
            "alerts": raised, "open": open_at, "window": "last_24h"}


def top(records: Iterable[Mapping[str, Any]], names: Mapping[str, Mapping[str, Any]],
        limit: int = 10) -> list[dict[str, Any]]:
    """The riskiest grids, worst first, each with its main reason in both languages
    (``indicator`` ``None`` when no indicator adds points, and the reason says so)."""
    out = []
    for rec in list(records)[:limit]:
        score = RiskScore.from_dict(rec)
        zh, en = explain(score, "zh"), explain(score, "en")
        lead = max(score.contributions, key=lambda c: c.points, default=None)
        props = names.get(str(rec.get("grid_id")), {})
        out.append({"grid_id": rec.get("grid_id"), "name": props.get("name"),
                    "name_zh": props.get("name_zh"), "score": score.score, "band": score.band,
                    "indicator": lead.indicator if lead and lead.points > 0 else None,
                    "reason": {"zh": zh[1], "en": en[1]} if len(zh) > 1 else None})
    return out


def _event_now(marks: list[bytes]) -> float | None:
    values = [float(v) for v in marks]
    return max(values) if values else None


async def read_trends(r: Any) -> dict[str, Any]:
    """:func:`trends` read from Redis (empty series before any event)."""
    now = _event_now(await r.hvals(keys.WATERMARKS))
    if now is None:
        return {"hours": [], "scans": {}, "alerts": {}, "open": [], "window": "last_24h"}
    hour = keys.hour_of(now)
    hours = range(hour - HOURS + 1, hour + 1)
    grids = sorted(g.decode() if isinstance(g, bytes) else g
                   for g in await r.smembers(keys.GRIDS_SEEN))
    rows: list[tuple[int, Any]] = []
    for start in range(0, len(grids), 50):  # 50 grids x 24 hours a round trip
        pipe = r.pipeline(transaction=False)
        asked = [(g, h) for g in grids[start:start + 50] for h in hours]
        for g, h in asked:
            pipe.hgetall(keys.grid_hour(g, h))
        rows.extend((h, fields) for (_, h), fields in zip(asked, await pipe.execute()))
    since = (hour - HOURS + 1 - OPEN_LOOKBACK_H) * 3600
    ids = {i for i in await r.zrangebyscore(keys.ALERTS_ALL, since, "+inf")}
    ids.update(await r.zrange(keys.ALERTS_OPEN, 0, -1))
    names = [keys.alert(i.decode() if isinstance(i, bytes) else i) for i in sorted(ids)]
    alerts = []
    for start in range(0, len(names), 500):
        alerts.extend(orjson.loads(raw) for raw in
                      await redis_client.amget(r, names[start:start + 500]) if raw)
    return {**trends(hour, rows, alerts, now), "now": now}


async def read_top(r: Any, names: Mapping[str, Mapping[str, Any]], limit: int = 10
                   ) -> list[dict[str, Any]]:
    """:func:`top` read from Redis."""
    ids = [g.decode() if isinstance(g, bytes) else g
           for g in await r.zrevrange(keys.RISK_RANK, 0, limit - 1)]
    raws = await redis_client.amget(r, [keys.risk(g) for g in ids]) if ids else []
    return top([orjson.loads(raw) for raw in raws if raw], names, limit)
