"""What a station manager's screen and the forecast export show: a station's forecast
with the arrivals so far and last week's same hours beside it.

The forecast record (``gw:forecast:{station}``, made by the worker) holds the next 24
hours from its origin: the forecast, its intervals, seats booked, and arrivals read when
it was made (zero for the hours still to come). The view adds, from the station's hour
records: the :data:`PAST_HOURS` before the origin, the arrivals of every hour up to the
feed's event time (``None`` after it: an hour that has not happened has no arrivals),
and the arrivals of the same hours a week earlier (``None`` where the station has no
record that far back). The cockpit's station page (``/api/forecast/{station}``), its CSV
download (``/api/forecast/{station}.csv``) and ``gridwatch forecast STATION --csv`` all
build it here, so their rows are the same.

:func:`build` and :func:`csv_text` are pure; the readers only fetch hour records.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from . import keys

PAST_HOURS = 12  # hours of arrivals shown before the forecast's origin
WEEK_H = 168
SERIES = ("yhat", "lo80", "hi80", "lo95", "hi95", "booked")
#: The CSV's columns, one row per forecast hour.
COLUMNS = ("hour", "yhat", "lo80", "hi80", "lo95", "hi95", "booked", "arrived", "last_week")

Rows = Mapping[int, Mapping[str, Any]]  # station hour number -> its record's fields


def _iso(d: datetime) -> str:
    return d.isoformat().replace("+00:00", "Z")


def origin_hour(record: Mapping[str, Any]) -> int:
    """The event-time hour number of the record's first forecast hour."""
    return keys.hour_of(datetime.fromisoformat(record["hours"][0]).timestamp())


def hours_to_read(record: Mapping[str, Any], *, past: int = PAST_HOURS) -> list[int]:
    """The station hours :func:`build` reads: the axis and the same hours a week earlier."""
    first = origin_hour(record) - past
    axis = range(first, first + past + len(record["hours"]))
    return sorted({*axis, *(h - WEEK_H for h in axis)})


def build(record: Mapping[str, Any], rows: Rows, now: float, *,
          past: int = PAST_HOURS) -> dict[str, Any]:
    """The station view of one forecast record.

    Args:
        record: the forecast record as the worker stored it.
        rows: the station's hour records (``arrived`` read from each), at least those
            of :func:`hours_to_read`; a missing hour had no arrivals.
        now: the feed's event time (epoch seconds): arrivals are shown up to its hour.
        past: hours of arrivals before the origin.

    Returns:
        The record's own fields, with ``hours`` starting ``past`` hours earlier (on the
        record's clock), the forecast series ``None`` over those hours, ``arrived``
        ``None`` after ``now``'s hour, ``last_week`` the arrivals 168 hours earlier,
        ``now`` (RFC 3339), ``forecast_from`` (the index of the first forecast hour)
        and ``now_index`` (the last index with arrivals, -1 for none).
    """
    first = datetime.fromisoformat(record["hours"][0])
    origin = origin_hour(record)
    n = len(record["hours"])
    axis = [origin - past + i for i in range(past + n)]
    now_hour = keys.hour_of(now)
    known_week = any(h - WEEK_H in rows for h in axis)

    def arrived(h: int) -> int:
        return int((rows.get(h) or {}).get("arrived", 0) or 0)

    out: dict[str, Any] = {k: v for k, v in record.items() if k not in (*SERIES, "hours", "arrived")}
    out["hours"] = [_iso(first + timedelta(hours=h - origin)) for h in axis]
    for name in SERIES:
        values = list(record.get(name) or [None] * n)
        out[name] = [None] * past + values + [None] * (n - len(values))
    out["arrived"] = [arrived(h) if h <= now_hour else None for h in axis]
    out["last_week"] = [arrived(h - WEEK_H) if known_week else None for h in axis]
    out["now"] = _iso(datetime.fromtimestamp(now, first.tzinfo))
    out["forecast_from"] = past
    out["now_index"] = max((i for i, h in enumerate(axis) if h <= now_hour), default=-1)
    return out


def csv_rows(view: Mapping[str, Any]) -> list[list[Any]]:
    """The view's forecast hours as rows of :data:`COLUMNS` (``None`` stays empty)."""
    start = int(view.get("forecast_from", 0))
    return [[view["hours"][i], *(view[c][i] for c in COLUMNS[1:])]
            for i in range(start, len(view["hours"]))]


def csv_text(view: Mapping[str, Any]) -> str:
    """The CSV of :func:`csv_rows` with a header line."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    w.writerows([["" if v is None else v for v in row] for row in csv_rows(view)])
    return buf.getvalue()


def _fields(raw: Mapping[Any, Any]) -> dict[str, str]:
    return {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in raw.items()}


def read_rows(r: Any, station: str, hours: Iterable[int]) -> dict[int, dict[str, str]]:
    """The station's hour records of ``hours`` (a synchronous client), absent ones left out."""
    hours = list(hours)
    pipe = r.pipeline(transaction=False)
    for h in hours:
        pipe.hgetall(keys.station_hour(station, h))
    return {h: _fields(raw) for h, raw in zip(hours, pipe.execute()) if raw}


async def aread_rows(r: Any, station: str, hours: Iterable[int]) -> dict[int, dict[str, str]]:
    """:func:`read_rows` for an asyncio client."""
    hours = list(hours)
    pipe = r.pipeline(transaction=False)
    for h in hours:
        pipe.hgetall(keys.station_hour(station, h))
    return {h: _fields(raw) for h, raw in zip(hours, await pipe.execute()) if raw}


def event_now(marks: Iterable[Any], record: Mapping[str, Any]) -> float:
    """The feed's event time from the stored watermarks; without any, when the record
    was made."""
    values = [float(m) for m in marks]
    if values:
        return max(values)
    made = record.get("made_at_event_time")
    return float(made) if made is not None else datetime.fromisoformat(record["hours"][0]).timestamp()
