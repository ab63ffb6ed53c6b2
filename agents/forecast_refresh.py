"""Live station forecasts: refresh each station's next 24 hours when it matters.

A background task of the worker. Every ``every`` seconds it looks at each station:
the forecast is made again when the feed's event time has entered a new hour since the
last one, or when the seats booked for the coming 24 hours moved by more than
``threshold`` (a share) since. The history (actual arrivals per hour), the bookings on
the books and the booking curve (seats booked N hours ahead, from the ``lead:N``
counters the ticket fold keeps) come from Redis; the forecast itself is the pure
:func:`~gridwatch.agents.forecast.forecast_next`. The result goes to
``gw:forecast:{station}``, the cockpit's forecast channel and ``gridwatch.forecasts``.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone, tzinfo
from typing import Any, Awaitable, Callable

import orjson

from .. import keys
from .fold import LEADS
from .forecast import BookingsView, forecast_next, history_spans

log = logging.getLogger("gridwatch.forecast")


def _utc(hour: int) -> datetime:
    return datetime.fromtimestamp(hour * 3600, tz=timezone.utc)


def booked_at_lead(fields: dict[str, int], lead: int) -> int:
    """Seats booked at least ``lead`` hours before arrival (sold minus refunded)."""
    return sum(v for k, v in fields.items() if k.startswith("lead:") and int(k[5:]) >= lead)


def build_inputs(rows: dict[int, dict[str, int]], origin_hour: int,
                 calendar: str | None = None) -> tuple[list[datetime], list[float], BookingsView, list[int], list[int]]:
    """History, bookings view, and booked/arrived for the 24 hours from ``origin_hour``.

    The history is the hours the forecaster reads (:func:`history_spans`: the recent
    weeks and the same dates in past years, wider with a holiday ``calendar``). Hours
    with no record between the first recorded hour and the origin are real zeros (a
    station with no arrivals at night).
    """
    first = min(rows) if rows else origin_hour
    ts: list[datetime] = []
    counts: list[float] = []
    history: list[tuple[datetime, float, float, float]] = []
    past = (h for lo, hi in history_spans(origin_hour, calendar=calendar)
            for h in range(max(lo, first), hi))
    for hour in past:
        fields = rows.get(hour, {})
        arrived = float(fields.get("arrived", 0))
        ts.append(_utc(hour))
        counts.append(arrived)
        if hour >= origin_hour - 28 * 24 and any(k.startswith("lead:") for k in fields):
            for lead in range(0, 24):
                history.append((_utc(hour), float(lead), float(booked_at_lead(fields, lead)), arrived))
    booked_now = {}
    booked, arrived = [], []
    for i in range(24):
        fields = rows.get(origin_hour + i, {})
        b = booked_at_lead(fields, i)  # only what was booked by now (lead >= i)
        booked_now[_utc(origin_hour + i)] = float(b)
        booked.append(int(fields.get("booked", 0)))
        arrived.append(int(fields.get("arrived", 0)))
    return ts, counts, BookingsView(booked_now=booked_now, history=history), booked, arrived


class ForecastRefresher:
    """Keeps every station's forecast fresh."""

    def __init__(self, redis: Any, *, publish: Callable[[str, bytes, bytes], Awaitable[Any]] | None = None,
                 every: float = 5.0, threshold: float = 0.05, tz: tzinfo = timezone.utc,
                 calendar: str | None = None) -> None:
        self.redis = redis
        self.tz = tz  # the district's zone: the forecaster's day types and dates are local
        self.calendar = calendar  # moving holidays matched across past years ("CN")
        self.publish = publish
        self.every = every
        self.threshold = threshold
        self.last: dict[str, tuple[int, int]] = {}  # station -> (origin hour, seats booked ahead)
        self.made = 0

    async def _rows(self, station: str, spans: list[tuple[int, int]]) -> dict[int, dict[str, int]]:
        """The station's recorded hours in ``spans`` (``[lo, hi)``), field -> count."""
        pipe = self.redis.pipeline(transaction=False)
        for lo, hi in spans:
            pipe.zrangebyscore(keys.station_hours(station), lo, f"({hi}")
        hours = [int(h) for found in await pipe.execute() for h in found]
        pipe = self.redis.pipeline(transaction=False)
        for h in hours:
            pipe.hgetall(keys.station_hour(station, h))
        out = {}
        for h, raw in zip(hours, await pipe.execute()):
            out[h] = {k.decode(): int(v) for k, v in raw.items()}
        return out

    async def refresh(self, station: str, now: float, *, force: bool = False) -> dict[str, Any] | None:
        """Make the station's forecast if it is due; returns the record written."""
        origin = int(now // 3600)
        # The coming hours say whether it is due; the history (years of hours) is read
        # only when it is.
        coming = await self._rows(station, [(origin, origin + 24)])
        ahead = sum(int(coming.get(origin + i, {}).get("booked", 0)) for i in range(24))
        last = self.last.get(station)
        if not force and last and last[0] == origin and abs(ahead - last[1]) <= self.threshold * max(last[1], 1):
            return None
        rows = {**await self._rows(station, history_spans(origin, calendar=self.calendar)), **coming}
        ts, counts, bookings, booked, arrived = build_inputs(rows, origin, self.calendar)
        fc = await asyncio.to_thread(forecast_next, ts, counts, origin=_utc(origin).astimezone(self.tz),
                                     bookings=bookings, calendar=self.calendar)
        record = {"v": 1, "station_id": station, **fc.to_dict(), "booked": booked, "arrived": arrived,
                  "made_at_event_time": now}
        data = orjson.dumps(record)
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(keys.forecast(station), data)
        pipe.xadd(keys.CHAN_FORECASTS, {"d": b'{"type":"forecast","forecast":' + data + b"}"},
                  maxlen=keys.CHAN_MAXLEN, approximate=True)
        await pipe.execute()
        if self.publish is not None:
            from ..streams.topics import FORECASTS

            await self.publish(FORECASTS, station.encode(), data)
        self.last[station] = (origin, ahead)
        self.made += 1
        return record

    async def run(self) -> None:
        """Refresh forecasts forever (a background task of the worker)."""
        from .timers import event_now

        while True:
            await asyncio.sleep(self.every)
            try:
                now = await event_now(self.redis)
                if now is None:
                    continue
                for raw in await self.redis.smembers(keys.STATIONS):
                    await self.refresh(raw.decode(), now)
            except Exception as exc:  # noqa: BLE001 - a refresher must outlive a Redis blip
                log.warning("forecast refresh: %s: %s; retrying", type(exc).__name__, exc)


__all__ = ["ForecastRefresher", "booked_at_lead", "build_inputs", "LEADS"]
