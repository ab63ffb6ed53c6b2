"""The alerts of a period with their audit trails: what the duty officer's export holds.

The cockpit's API (``/api/alerts?from=..&to=..`` as JSON, ``/api/alerts.csv`` as CSV)
and ``gridwatch alerts export --from .. --to ..`` all read here, so their rows are the
same. An alert belongs to the period when it was *raised* in it, ``from`` included, ``to``
not; its whole trail comes with it (also what was done after ``to``).

The CSV has one row per audit entry (an alert without any: one row with the entry's
columns empty), oldest first within an alert, alerts oldest first. A cell that a
spreadsheet would read as a formula (starting with ``=``, ``+``, ``-``, ``@``, a tab or
a carriage return) is written with a ``'`` in front: notes and titles are typed by
people and by whatever feeds the cameras.

:func:`parse_period`, :func:`csv_rows` and :func:`csv_text` are pure; the readers only
fetch alert records.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

import orjson

from . import keys
from .redis_client import mget
from .schemas.events import format_time

MAX_DAYS = 31  # the longest period one export may cover
MAX_ALERTS = 50_000  # more raised in one period: ask for a shorter one
ALERT_COLUMNS = ("alert_id", "kind", "severity", "status", "grid_id", "station_id",
                 "raised_at", "title", "title_zh", "escalation_level", "task_id")
AUDIT_COLUMNS = ("audit_n", "at", "action", "from_state", "to_state", "actor", "role", "note")
#: The CSV's columns: the alert's, then one audit entry's.
COLUMNS = ALERT_COLUMNS + AUDIT_COLUMNS
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


class PeriodError(ValueError):
    """A period that cannot be exported; the message says why, for the person asking."""


def _moment(text: str, name: str, tz: tzinfo) -> datetime:
    text = (text or "").strip()
    if not text:
        raise PeriodError(f"{name} is missing (a date such as 2024-05-01, or a time such as "
                          "2024-05-01T08:00 or 2024-05-01T08:00:00+08:00)")
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=tz)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise PeriodError(f"{name}={text[:40]!r} is not a date or time (e.g. 2024-05-01 or "
                          "2024-05-01T08:00+08:00)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)


def parse_period(start: str, end: str, tz: tzinfo, *,
                 max_days: int = MAX_DAYS) -> tuple[float, float]:
    """The period ``[start, end)`` as epoch seconds.

    Args:
        start: RFC 3339 / ISO 8601: a date (its midnight) or a time; without an offset
            it is read on the district's clock ``tz``.
        end: the same; the period ends just before it.
        tz: the district's time zone.
        max_days: the longest period allowed.

    Raises:
        PeriodError: a bound is missing or unreadable, the period is empty or reversed,
            or longer than ``max_days``.
    """
    lo, hi = _moment(start, "from", tz), _moment(end, "to", tz)
    if hi <= lo:
        raise PeriodError(f"to ({hi.isoformat()}) must be after from ({lo.isoformat()})")
    if hi - lo > timedelta(days=max_days):
        raise PeriodError(f"the period is longer than {max_days} days: export it in parts")
    return lo.timestamp(), hi.timestamp()


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA):
        return "'" + value
    return value


def csv_rows(alerts: Iterable[Mapping[str, Any]]) -> list[list[Any]]:
    """The alerts as rows of :data:`COLUMNS`, one per audit entry (values as stored;
    times as RFC 3339 UTC; ``None`` and the formula guard are :func:`csv_text`'s)."""
    rows: list[list[Any]] = []
    for a in alerts:
        head = [a.get("id"), a.get("kind"), a.get("severity"), a.get("status"),
                a.get("grid_id"), a.get("station_id"), format_time(a["ts_raised"]),
                a.get("title"), a.get("title_zh"), a.get("escalation_level", 0),
                a.get("task_id")]
        trail = a.get("audit") or []
        if not trail:
            rows.append(head + [None] * len(AUDIT_COLUMNS))
        for n, e in enumerate(trail, 1):
            rows.append(head + [n, format_time(e["ts"]), e.get("action"), e.get("from_state"),
                                e.get("to_state"), e.get("actor"), e.get("role"),
                                e.get("note")])
    return rows


def csv_text(alerts: Iterable[Mapping[str, Any]]) -> str:
    """The CSV of :func:`csv_rows` with a header line, safe to open in a spreadsheet."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    w.writerows([[_cell(v) for v in row] for row in csv_rows(alerts)])
    return buf.getvalue()


def payload(alerts: list[dict[str, Any]], lo: float, hi: float) -> dict[str, Any]:
    """The JSON reply: the period and its alerts, oldest first."""
    return {"from": format_time(lo), "to": format_time(hi), "count": len(alerts),
            "alerts": alerts}


def _check_count(n: int) -> None:
    if n > MAX_ALERTS:
        raise PeriodError(f"{n} alerts were raised in this period, more than {MAX_ALERTS} "
                          "one export holds: ask for a shorter period")


def _decode(raws: Iterable[bytes | None]) -> list[dict[str, Any]]:
    out = [orjson.loads(raw) for raw in raws if raw]
    out.sort(key=lambda a: (a["ts_raised"], a["id"]))
    return out


def read(r: Any, lo: float, hi: float) -> list[dict[str, Any]]:
    """The alerts raised in ``[lo, hi)``, oldest first (a synchronous client).

    Raises:
        PeriodError: more than :data:`MAX_ALERTS` of them.
    """
    ids = r.zrangebyscore(keys.ALERTS_ALL, lo, f"({hi}")
    _check_count(len(ids))
    raws: list[bytes | None] = []
    for i in range(0, len(ids), 500):
        raws.extend(mget(r, [keys.alert(x.decode() if isinstance(x, bytes) else x)
                             for x in ids[i:i + 500]]))
    return _decode(raws)


async def aread(r: Any, lo: float, hi: float) -> list[dict[str, Any]]:
    """:func:`read` for an asyncio client."""
    from .redis_client import amget

    ids = await r.zrangebyscore(keys.ALERTS_ALL, lo, f"({hi}")
    _check_count(len(ids))
    raws: list[bytes | None] = []
    for i in range(0, len(ids), 500):
        raws.extend(await amget(r, [keys.alert(x.decode() if isinstance(x, bytes) else x)
                                    for x in ids[i:i + 500]]))
    return _decode(raws)
