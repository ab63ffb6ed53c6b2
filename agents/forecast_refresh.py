"""Live station forecasts: refresh each station's next 24 hours when it matters.

A background task of the worker. Every ``every`` seconds it looks at each station:
the forecast is made again when the feed's event time has entered a new hour since the
last one, or when the seats booked for the coming 24 hours moved by more than
``threshold`` (a share) since. The history (actual arrivals per hour), the bookings on
the books and the booking curve (seats booked N hours ahead, from the ``lead:N``
counters the ticket fold keeps) come from Redis; the forecast itself is the pure
:func:`~gridwatch.agents.forecast.forecast_next`. The result goes to
``gw:forecast:{station}``, the cockpit's forecast channel and ``gridwatch.forecasts``.

The history is years of hours; its settled part (hours more than :data:`SETTLED_HOURS`
behind the origin, which late messages seldom touch) is kept in memory between
refreshes (:class:`HistoryCache`), so a refresh reads from Redis only the hours it has
not seen and the last two days. A message that changes an older hour has the ticket fold
mark that hour (``gw:stationrevised:{station}``), and the next refresh reads it again.
The cache is also read again in full once a day (:data:`REREAD_HOURS`), which catches
a change made behind the fold's back (an edit by hand).

With several workers, each station's forecasts are made by one of them: the one that
holds the station's lease (``gw:forecastowner:{station}``, renewed every third of its
length, also while a forecast runs, and taken over by another worker within
:data:`~gridwatch.keys.FORECAST_LEASE_S` seconds of the holder stopping), so a forecast is
made and published once, not once per worker.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo
from typing import Any

import orjson

from .. import keys
from ..redis_client import is_cluster
from .fold import LEADS
from .forecast import BookingsView, forecast_next, history_spans, merge_spans

log = logging.getLogger("gridwatch.forecast")


def _utc(hour: int) -> datetime:
    return datetime.fromtimestamp(hour * 3600, tz=timezone.utc)


def booked_at_lead(fields: dict[str, int], lead: int) -> int:
    """Seats booked at least ``lead`` hours before arrival (sold minus refunded)."""
    return sum(v for k, v in fields.items() if k.startswith("lead:") and int(k[5:]) >= lead)


def _booked_by_lead(fields: dict[str, int], leads: int = 24) -> list[int]:
    """:func:`booked_at_lead` for leads 0..``leads``-1 at once (sums from the far end)."""
    by = {int(k[5:]): v for k, v in fields.items() if k.startswith("lead:")}
    acc = sum(v for b, v in by.items() if b >= leads)
    out = [0] * leads
    for lead in range(leads - 1, -1, -1):
        acc += by.get(lead, 0)
        out[lead] = acc
    return out


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
        if hour >= origin_hour - BOOKING_HOURS and any(k.startswith("lead:") for k in fields):
            at = _utc(hour)
            history.extend((at, float(lead), float(b), arrived)
                           for lead, b in enumerate(_booked_by_lead(fields)))
    booked_now = {}
    booked, arrived = [], []
    for i in range(24):
        fields = rows.get(origin_hour + i, {})
        b = booked_at_lead(fields, i)  # only what was booked by now (lead >= i)
        booked_now[_utc(origin_hour + i)] = float(b)
        booked.append(int(fields.get("booked", 0)))
        arrived.append(int(fields.get("arrived", 0)))
    return ts, counts, BookingsView(booked_now=booked_now, history=history), booked, arrived


SETTLED_HOURS = keys.STATION_SETTLED_HOURS  # hours further back are kept between refreshes
REREAD_HOURS = 24  # the kept hours are read again from Redis this often (late corrections)
BOOKING_HOURS = 28 * 24  # build_inputs reads the booking fields of these latest hours only
READ_CHUNK = 200  # station hours per Redis pipeline

Span = tuple[int, int]


def _intersect(a: list[Span], b: list[Span]) -> list[Span]:
    """Hours in both lists of merged ``[lo, hi)`` spans."""
    out: list[Span] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo < hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def _subtract(a: list[Span], b: list[Span]) -> list[Span]:
    """Hours of the merged spans ``a`` not in the merged spans ``b``."""
    out: list[Span] = []
    for lo, hi in a:
        for blo, bhi in b:
            if bhi <= lo or blo >= hi:
                continue
            if blo > lo:
                out.append((lo, blo))
            lo = max(lo, bhi)
            if lo >= hi:
                break
        if lo < hi:
            out.append((lo, hi))
    return out


@dataclass
class HistoryCache:
    """One station's settled hours as read from Redis: which stretches were read
    (``covered``, hours with no record in them are known to be empty) and the records
    found there. Hours older than :data:`BOOKING_HOURS` keep their arrivals only."""

    filled_at: int  # origin hour of the last full read
    covered: list[Span] = field(default_factory=list)
    rows: dict[int, dict[str, int]] = field(default_factory=dict)

    def plan(self, spans: list[Span], settled: int) -> tuple[list[Span], list[Span]]:
        """For the merged spans a forecast reads (:func:`history_spans`): the settled
        stretches to read (not yet covered) and to keep. Hours from ``settled`` on are
        always read, never kept."""
        keep = _intersect(spans, [(spans[0][0], settled)])
        return _subtract(keep, self.covered), keep

    def update(self, keep: list[Span], read: list[Span], found: dict[int, dict[str, int]],
               origin: int) -> None:
        """Add what was read in the settled stretches and drop what left them."""
        old = origin - BOOKING_HOURS
        for h, f in found.items():
            if not _in(h, read):
                continue  # a recent hour: read each time, not kept
            if h >= old:
                self.rows[h] = f
            else:  # still a recorded hour (the history starts at the first one)
                self.rows[h] = {"arrived": f["arrived"]} if "arrived" in f else {}
        self.covered = _intersect(merge_spans(self.covered + read), keep)
        self.rows = {h: f for h, f in self.rows.items() if _in(h, self.covered)}

    def forget(self, hours: list[int]) -> None:
        """Hours changed since they were read: the next plan reads them again."""
        self.covered = _subtract(self.covered, merge_spans([(h, h + 1) for h in hours]))
        for h in hours:
            self.rows.pop(h, None)


def _in(hour: int, spans: list[Span]) -> bool:
    """Whether ``hour`` is in one of the merged spans."""
    for lo, hi in spans:
        if hour < lo:
            return False
        if hour < hi:
            return True
    return False


# Take the lease if it is free, renew it if it is ours: 1 if we hold it now.
CLAIM = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""


class ForecastRefresher:
    """Keeps every station's forecast fresh."""

    def __init__(self, redis: Any, *, publish: Callable[[str, bytes, bytes], Awaitable[Any]] | None = None,
                 every: float = 5.0, threshold: float = 0.05, tz: tzinfo = timezone.utc,
                 calendar: str | None = None, cache: bool = True, owner: str | None = None,
                 lease_s: int = keys.FORECAST_LEASE_S) -> None:
        self.redis = redis
        # Who holds a station's lease: this process (host, pid and a random part).
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_s = lease_s
        self.held: set[str] = set()  # the stations whose lease this refresher holds
        self._claim = redis.register_script(CLAIM)
        self.tz = tz  # the district's zone: the forecaster's day types and dates are local
        self.calendar = calendar  # moving holidays matched across past years ("CN")
        self.publish = publish
        self.every = every
        self.threshold = threshold
        self.last: dict[str, tuple[int, int]] = {}  # station -> (origin hour, seats booked ahead)
        self.made = 0
        self.cache = cache  # keep the settled history between refreshes
        self.history: dict[str, HistoryCache] = {}
        self.hours_read = 0  # station hours read from Redis for histories (a measure)

    async def _rows(self, station: str, spans: list[tuple[int, int]]) -> dict[int, dict[str, int]]:
        """The station's recorded hours in ``spans`` (``[lo, hi)``), field -> count."""
        pipe = self.redis.pipeline(transaction=False)
        for lo, hi in spans:
            pipe.zrangebyscore(keys.station_hours(station), lo, f"({hi}")
        hours = [int(h) for found in await pipe.execute() for h in found]
        out = {}
        # In pipelines of READ_CHUNK hours: the replies are parsed on the event loop, and
        # the worker's events can go in between.
        for i in range(0, len(hours), READ_CHUNK):
            part = hours[i:i + READ_CHUNK]
            pipe = self.redis.pipeline(transaction=False)
            for h in part:
                pipe.hgetall(keys.station_hour(station, h))
            for h, raw in zip(part, await pipe.execute()):
                out[h] = {k.decode(): int(v) for k, v in raw.items()}
        return out

    async def _take_revised(self, station: str) -> list[int]:
        """The station's hours marked revised by the ticket fold, and the mark cleared
        (both at once: a mark made in between is not lost; one key, so one slot)."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.zrange(keys.station_revised(station), 0, -1)
        pipe.delete(keys.station_revised(station))
        found, _ = await pipe.execute()
        return [int(h) for h in found]

    async def _history(self, station: str, origin: int) -> dict[int, dict[str, int]]:
        """The recorded hours of the spans a forecast from ``origin`` reads: the settled
        ones from the cache where it has them, the rest from Redis."""
        spans = history_spans(origin, calendar=self.calendar)
        if not self.cache:
            rows = await self._rows(station, spans)
            self.hours_read += len(rows)
            return rows
        settled = origin - SETTLED_HOURS
        revised = await self._take_revised(station)
        cache = self.history.get(station)
        if cache is None or not 0 <= origin - cache.filled_at < REREAD_HOURS:
            cache = self.history[station] = HistoryCache(filled_at=origin)
        elif revised:
            cache.forget(revised)  # a late message changed them: read them again
        read, keep = cache.plan(spans, settled)
        recent = _intersect(spans, [(settled, origin)])
        found = await self._rows(station, read + recent)
        self.hours_read += len(found)
        cache.update(keep, read, found, origin)
        return {**cache.rows, **{h: f for h, f in found.items() if h >= settled}}

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
        rows = {**await self._history(station, origin), **coming}
        # Off the event loop: the inputs are years of hours, and the worker's events wait
        # while the loop is busy.
        fc, booked, arrived = await asyncio.to_thread(self._make, rows, origin)
        record = {"v": 1, "station_id": station, **fc, "booked": booked, "arrived": arrived,
                  "made_at_event_time": now}
        data = orjson.dumps(record)
        # The record and its channel entry together on one server; on a cluster they are
        # in two slots, so two writes (a gateway that misses the entry still reads the
        # record in its next snapshot).
        pipe = self.redis.pipeline(transaction=not is_cluster(self.redis))
        pipe.set(keys.forecast(station), data)
        pipe.xadd(keys.CHAN_FORECASTS, {"d": keys.channel_message("forecast", data)},
                  maxlen=keys.CHAN_MAXLEN, approximate=True)
        await pipe.execute()
        if self.publish is not None:
            from ..streams.topics import FORECASTS

            await self.publish(FORECASTS, station.encode(), data)
        self.last[station] = (origin, ahead)
        self.made += 1
        return record

    def _make(self, rows: dict[int, dict[str, int]], origin: int) -> tuple[dict[str, Any], list[int], list[int]]:
        ts, counts, bookings, booked, arrived = build_inputs(rows, origin, self.calendar)
        fc = forecast_next(ts, counts, origin=_utc(origin).astimezone(self.tz), bookings=bookings,
                           calendar=self.calendar)
        return fc.to_dict(), booked, arrived

    async def holds(self, station: str) -> bool:
        """Take or renew the station's lease; whether this refresher holds it."""
        held = bool(await self._claim(keys=[keys.forecast_owner(station)],
                                      args=[self.owner, self.lease_s]))
        if held:
            self.held.add(station)
        else:
            self.held.discard(station)
        return held

    async def keep_leases(self) -> None:
        """Renew the leases held every third of their length, whatever the refresher is
        doing: a forecast with no fit kept takes seconds, and a pass over many stations
        minutes. A lease renewed only between forecasts would run out within a pass;
        another worker would take the station, and the two would trade it back and forth,
        each reading its history afresh and fitting the candidates cold."""
        while True:
            await asyncio.sleep(self.lease_s / 3)
            for station in sorted(self.held):
                try:
                    await self.holds(station)
                except Exception as exc:  # a Redis blip: the next round tries again
                    task = asyncio.current_task()
                    if task is not None and task.cancelling():
                        raise asyncio.CancelledError from exc
                    log.warning("forecast lease %s: %s: %s", station, type(exc).__name__, exc)
                    break

    async def run(self) -> None:
        """Refresh forecasts forever (a background task of the worker)."""
        from .timers import event_now

        keeper = asyncio.create_task(self.keep_leases())
        try:
            await self._passes(event_now)
        finally:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)

    async def _passes(self, event_now: Callable[[Any], Awaitable[float | None]]) -> None:
        while True:
            await asyncio.sleep(self.every)
            try:
                now = await event_now(self.redis)
                if now is None:
                    continue
                for raw in await self.redis.smembers(keys.STATIONS):
                    station = raw.decode()
                    if await self.holds(station):
                        await self.refresh(station, now)
                    elif self.history.pop(station, None) is not None:
                        # Another worker makes this station's forecast now: its kept
                        # hours (megabytes) go, and a lease taken back reads afresh.
                        self.last.pop(station, None)
            except Exception as exc:  # a refresher must outlive a Redis blip
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    # A cancel that surfaced as another error inside a Redis call: stop.
                    raise asyncio.CancelledError from exc
                log.warning("forecast refresh: %s: %s; retrying", type(exc).__name__, exc)


__all__ = ["LEADS", "ForecastRefresher", "HistoryCache", "booked_at_lead", "build_inputs"]
