"""A seeded, reproducible city day: the three input streams as a district would send them.

- Checkpoint scans with a daily rhythm (morning and evening peaks), mostly green codes,
  a few yellow and red ones, some green codes with a negative test older than 48 hours,
  and a few red-code people who move across grids.
- Crowd-loiter reports from cameras at pharmacies and markets: small crowds most of
  the time, and now and then a cluster of pharmacies with people lingering at once
  (Hangzhou's "people lingering outside 4 pharmacies" at 07:30).
- One station with about 5,000 arrivals a day, 09-10 and 12-13 carrying about 40 %:
  tickets sold in the days and hours before each train, a few refunded, exits at the
  gates when the train arrives. ``history_days`` emits earlier days first, so the
  forecaster has a past to learn from.

With an :class:`~.outbreak.Outbreak`, the first live day also tells a story: a cluster
of red and yellow codes building over some hours in a few neighbouring grids of one
street, with crowds at its pharmacies (:mod:`.outbreak`); the rest of the city's events
keep their values and ids with or without it.

A small share of events is sent late (out of order), some beyond the grace period,
as real feeds do. The same seed gives the same events, byte for byte.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from ..schemas.errors import ConfigError
from ..schemas.events import format_time
from . import outbreak as outbreak_mod
from .topics import CHECKPOINT_SCANS, CROWD_LOITER, INPUT_BY_NAME, STATION_TICKETS, InputTopic

CST = timezone(timedelta(hours=8))

# Share of a day's scans per hour (00..23): night quiet, 07-09 and 17-19 peaks.
SCAN_PROFILE = [0.4, 0.2, 0.15, 0.1, 0.15, 0.5, 1.6, 3.6, 4.2, 2.8, 2.3, 2.4,
                2.6, 2.3, 2.2, 2.3, 2.8, 4.0, 4.3, 3.0, 2.2, 1.6, 1.0, 0.6]
LOITER_PROFILE = [0.1, 0.05, 0.05, 0.05, 0.1, 0.3, 0.8, 1.6, 2.0, 1.8, 1.6, 1.5,
                  1.4, 1.3, 1.3, 1.4, 1.6, 1.9, 1.8, 1.4, 1.1, 0.8, 0.4, 0.2]
# Station arrivals per hour: 09-10 and 12-13 carry about 40 % of the day.
STATION_PROFILE = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0, 4.5, 6.0, 21.0, 6.5, 5.5,
                   19.0, 6.0, 5.0, 4.5, 4.5, 5.0, 4.0, 2.5, 2.0, 1.0, 0.5, 0.0]
WEEKDAY_FACTOR = [0.95, 0.93, 0.95, 1.0, 1.12, 1.08, 1.05]  # Monday .. Sunday
ORIGINS = [("Hangzhou", "low"), ("Nanjing", "low"), ("Suzhou", "low"), ("Ningbo", "low"),
           ("Hefei", "medium"), ("Wuhan", "low"), ("Changsha", "medium"),
           ("Xi'an", "high"), ("Guangzhou", "low"), ("Xiamen", "medium"),
           ("Wenzhou", "low"), ("Nanchang", "high")]


@dataclass(frozen=True)
class CityDay:
    """How busy the simulated city is; every count is per simulated day."""

    scans: int = 400_000
    loiter_reports: int = 6_000
    arrivals: int = 5_000
    people: int = 120_000
    red_share: float = 0.0006
    yellow_share: float = 0.002
    stale_share: float = 0.002
    late_share: float = 0.003


def _ref(seed: int, n: int) -> str:
    # person_ref is an opaque keyed hash upstream; we mimic its shape.
    return hashlib.blake2b(f"{seed}:{n}".encode(), digest_size=10).hexdigest()


class Simulator:
    """Generates the district's events in (roughly) time order.

    Args:
        city: the city file (checkpoints, cameras, stations).
        seed: random seed; the same seed and arguments give the same events.
        start: the first simulated instant (default: yesterday 00:00 China time, so
            that a day sent as fast as it goes is not ahead of the wall clock, which a
            worker refuses beyond ``GRIDWATCH_MAX_FUTURE_S``).
        profile: how busy the city is.
        local_days: the simulated days are China's calendar days, and the live part
            begins at ``start`` within its day (the morning peak at 09:00 local
            whatever the start); otherwise a simulated day begins at ``start``.
        outbreak: the story of the live day (:func:`.outbreak.plan`), on simulated day
            0 (with ``local_days``, its hours are local hours of that day).
    """

    def __init__(self, city: dict[str, Any], *, seed: int = 1, start: datetime | None = None,
                 profile: CityDay = CityDay(), local_days: bool = False,
                 outbreak: outbreak_mod.Outbreak | None = None) -> None:
        self.city = city
        self.seed = seed
        self.profile = profile
        self.outbreak = outbreak
        today = datetime.now(CST).replace(hour=0, minute=0, second=0, microsecond=0)
        first = start or today - timedelta(days=1)
        self.live_from = first.timestamp()
        if local_days:
            first = first.astimezone(CST).replace(hour=0, minute=0, second=0, microsecond=0)
        self.start = first.timestamp()  # where simulated day 0 begins
        # ``city`` comes from gridwatch.city.load_city, which checked every field read here.
        if not (city["stations"] and city["cameras"]
                and any(c["kind"] == "gate" for c in city["checkpoints"])):
            raise ConfigError("the city file needs a station, a camera and a gate checkpoint "
                              "to simulate")
        self.checkpoints = [c for c in city["checkpoints"]]
        self.cameras = city["cameras"]
        self.station = city["stations"][0]
        self._n = 0

    def ahead_of(self, now: float, days: float) -> float:
        """How far ahead of the wall clock ``now`` the event times of ``days`` live days
        can get (seconds): a worker fed at speed needs ``GRIDWATCH_MAX_FUTURE_S`` of at
        least this, or it dead-letters the events of the simulated future."""
        return max(0.0, self.live_from + days * 86400 - now)

    def _id(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}-{self.seed}-{self._n:09d}"

    # ---- scans ---------------------------------------------------------------------

    def _scans(self, rng: random.Random, day_start: float, factor: float) -> Iterator[tuple[float, str, dict[str, Any]]]:
        p = self.profile
        weight = sum(SCAN_PROFILE)
        cps = self.checkpoints
        gates = [c for c in cps if c["kind"] == "gate"]
        reds = max(1, int(p.people * p.red_share))
        for hour in range(24):
            n = int(p.scans * factor * SCAN_PROFILE[hour] / weight)
            for _ in range(n):
                ts = day_start + hour * 3600 + rng.random() * 3600
                u = rng.random()
                if u < p.red_share:
                    person = rng.randrange(reds)  # the few red-code people, who move about
                    color, cp = "red", rng.choice(cps)
                else:
                    person = reds + rng.randrange(p.people - reds)
                    # People mostly use the gate of their own community.
                    cp = gates[person % len(gates)] if rng.random() < 0.85 else rng.choice(cps)
                    color = "yellow" if u < p.red_share + p.yellow_share else "green"
                test_age_h = rng.uniform(2, 47.5)
                if color == "green" and rng.random() < p.stale_share:
                    test_age_h = rng.uniform(48.5, 96)
                yield ts, CHECKPOINT_SCANS, {
                    "event_id": self._id("scan"),
                    "ts": format_time(ts),
                    "checkpoint_id": cp["id"],
                    "lon": cp["lon"],
                    "lat": cp["lat"],
                    "person_ref": _ref(self.seed, person),
                    "code_color": color,
                    "direction": "in" if rng.random() < 0.52 else "out",
                    "last_negative_test_at": format_time(ts - test_age_h * 3600),
                }

    # ---- loitering -----------------------------------------------------------------

    def _loiter(self, rng: random.Random, day_start: float, factor: float) -> Iterator[tuple[float, str, dict[str, Any]]]:
        p = self.profile
        weight = sum(LOITER_PROFILE)
        pharmacies = [c for c in self.cameras if c["zone"].startswith("pharmacy")]

        def report(cam: dict[str, Any], ts: float, people: int, dwell: float) -> tuple[float, str, dict[str, Any]]:
            return ts, CROWD_LOITER, {
                "event_id": self._id("loiter"),
                "ts": format_time(ts),
                "camera_id": cam["id"],
                "lon": cam["lon"],
                "lat": cam["lat"],
                "zone": cam["zone"],
                "people": people,
                "dwell_s": round(dwell, 1),
            }

        for hour in range(24):
            n = int(p.loiter_reports * factor * LOITER_PROFILE[hour] / weight)
            for _ in range(n):
                cam = rng.choice(self.cameras)
                ts = day_start + hour * 3600 + rng.random() * 3600
                people = 1 + int(rng.expovariate(1 / 1.6))
                yield report(cam, ts, people, rng.expovariate(1 / 150))
        # Clusters: several pharmacies with crowds lingering at once, reported every
        # couple of minutes for a quarter of an hour.
        for _ in range(rng.randint(1, 3)):
            at = day_start + rng.choice([7.5, 8.0, 10.0, 15.5, 18.0]) * 3600
            for cam in rng.sample(pharmacies, k=min(4, len(pharmacies))):
                for k in range(8):
                    ts = at + k * 120 + rng.random() * 30
                    yield report(cam, ts, rng.randint(6, 14), 320 + k * 110 + rng.random() * 60)

    # ---- station -------------------------------------------------------------------

    def _trains(self, rng: random.Random, day_start: float) -> list[dict[str, Any]]:
        weekday = datetime.fromtimestamp(day_start, CST).weekday()
        total = self.profile.arrivals * WEEKDAY_FACTOR[weekday] * rng.uniform(0.93, 1.07)
        weight = sum(STATION_PROFILE)
        trains = []
        for hour, share in enumerate(STATION_PROFILE):
            riders = total * share / weight
            if riders <= 0:
                continue
            count = max(1, round(riders / 180))
            for k in range(count):
                origin, risk = ORIGINS[rng.randrange(len(ORIGINS))]
                trains.append({
                    "train_no": f"G{1000 + hour * 10 + k}",
                    "arrival_at": day_start + hour * 3600 + (k + rng.random()) * 2700 / count,
                    "seats": max(1, int(rng.gauss(riders / count, riders / count * 0.12))),
                    "origin": origin,
                    "risk": risk,
                })
        return trains

    def _tickets(self, rng: random.Random, day_start: float, window: tuple[float, float]) -> Iterator[tuple[float, str, dict[str, Any]]]:
        """Ticket events whose time falls in ``window`` for trains arriving on this day."""
        station = self.station["id"]
        lo, hi = window

        def ticket(train: dict[str, Any], ts: float, action: str,
                   seats: int) -> tuple[float, str, dict[str, Any]]:
            return ts, STATION_TICKETS, {
                "event_id": self._id("ticket"),
                "ts": format_time(ts),
                "station_id": station,
                "train_no": train["train_no"],
                "action": action,
                "arrival_at": format_time(train["arrival_at"]),
                "origin": train["origin"],
                "origin_risk": train["risk"],
                "seats": seats,
            }

        for train in self._trains(rng, day_start):
            arrival = train["arrival_at"]
            sold = 0
            while sold < train["seats"]:
                seats = min(train["seats"] - sold, rng.choice([1, 1, 1, 2, 2, 3]))
                sold += seats
                # Booking curve: most seats sold in the last two days, some weeks ahead.
                lead_h = min(rng.expovariate(1 / 30.0), 14 * 24) + 0.25
                ts = arrival - lead_h * 3600
                if lo <= ts < hi:
                    yield ticket(train, ts, "sold", seats)
                if rng.random() < 0.04:
                    ts_ref = ts + rng.random() * (arrival - ts)
                    if lo <= ts_ref < hi:
                        yield ticket(train, ts_ref, "refunded", seats)
            arrived = int(train["seats"] * rng.uniform(0.9, 0.97))
            chunk, done = 25, 0
            while done < arrived:
                seats = min(chunk, arrived - done)
                done += seats
                ts = arrival + 60 + rng.random() * 600
                if lo <= ts < hi:
                    yield ticket(train, ts, "exited", seats)

    # ---- the whole day -------------------------------------------------------------

    def day(self, day: int, *, station_only: bool = False) -> list[tuple[float, str, dict[str, Any]]]:
        """Every event of simulated day ``day`` (0 = the start day), sorted by time."""
        rng = random.Random(self.seed * 1_000_003 + day)
        day_start = self.start + day * 86400
        weekday = datetime.fromtimestamp(day_start, CST).weekday()
        factor = WEEKDAY_FACTOR[weekday]
        events: list[tuple[float, str, dict[str, Any]]] = []
        window = (day_start, day_start + 86400)
        # Tickets sold today are for trains of today and the next two weeks.
        for ahead in range(15):
            events.extend(self._tickets(random.Random(self.seed * 7919 + day + ahead), day_start + ahead * 86400, window))
        if not station_only:
            events.extend(self._scans(rng, day_start, factor))
            events.extend(self._loiter(rng, day_start, factor))
            if self.outbreak is not None and day == 0:
                # Its own random stream, drawn last: the city's other events keep their
                # values and ids.
                events.extend(outbreak_mod.events(self.outbreak, seed=self.seed,
                                                  day_start=day_start, next_id=self._id))
        events.sort(key=lambda e: e[0])
        return events

    def stream(self, *, days: float = 1.0, history_days: int = 0) -> Iterator[tuple[float, InputTopic, dict[str, Any]]]:
        """(send time, topic, event) for ``history_days`` of station history, then the
        live ``days`` from the start. Late events are sent after their time, some past
        the grace. With ``local_days`` and a start after midnight, the history also
        holds the start day's ticket events before the start."""
        rng = random.Random(self.seed)
        for d in range(-history_days, 0):
            for ts, name, event in self.day(d, station_only=True):
                yield ts, INPUT_BY_NAME[name], event
        late: list[tuple[float, int, str, dict[str, Any]]] = []
        n = 0
        end = self.live_from + days * 86400
        # With no live part, the days before the start give only their tickets (their
        # ids come first in a day, so they are the same either way).
        only_tickets = end <= self.live_from
        for d in range(math.ceil((end - self.start) / 86400)):
            for ts, name, event in self.day(d, station_only=only_tickets):
                if ts >= end:
                    break
                if ts < self.live_from:
                    if history_days and name == STATION_TICKETS:
                        yield ts, INPUT_BY_NAME[name], event
                    continue
                while late and late[0][0] <= ts:
                    send_at, _, lname, levent = heapq.heappop(late)
                    yield send_at, INPUT_BY_NAME[lname], levent
                if name != STATION_TICKETS and rng.random() < self.profile.late_share:
                    # Delivered later than it happened: mostly within the grace period,
                    # one in four beyond it.
                    delay = rng.uniform(30, 540) if rng.random() < 0.75 else rng.uniform(700, 1800)
                    n += 1
                    heapq.heappush(late, (ts + delay, n, name, event))
                    continue
                yield ts, INPUT_BY_NAME[name], event
        while late:
            send_at, _, lname, levent = heapq.heappop(late)
            yield send_at, INPUT_BY_NAME[lname], levent
