"""The story of the simulated live day: an outbreak in a few neighbouring grids of one street.

A quiet city is not what a control room is for. On the live day the simulator can add
one cluster, as the districts' reports describe them: red-code people turning up again
and again at the gates of a few neighbouring grids of one street (so their movements
across those grids raise cross-grid alerts), their contacts scanning yellow, people
who have skipped their test, and crowds lingering at the street's pharmacies (the
Hangzhou morning: "people lingering outside 4 pharmacies"). It builds over some hours
to a peak and then fades, the core grid most, its neighbours less.

:func:`plan` picks the place from the district (pure, seeded); :func:`events` draws the
cluster's events for one day with its own random stream, so the rest of the city's
events stay what they were. The grid workers of the core grid are the ones the demo's
crew lets a task wait too long (:attr:`Outbreak.slow_workers`).
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..schemas.events import format_time
from .topics import CHECKPOINT_SCANS, CROWD_LOITER

Event = tuple[float, str, dict[str, Any]]


@dataclass(frozen=True)
class Outbreak:
    """Where and when the cluster happens, and how strong it is.

    ``grids`` are the core grid first, then its neighbours, each with the share of the
    core's intensity it gets (``weights``); ``gates`` their gate checkpoints;
    ``pharmacies`` the street's pharmacy cameras nearest the core. Times are hours
    after the live day's local midnight.
    """

    street: str
    grids: tuple[str, ...]
    weights: tuple[float, ...]
    gates: Mapping[str, tuple[dict[str, Any], ...]]
    pharmacies: tuple[dict[str, Any], ...]
    slow_workers: tuple[str, ...]
    onset_h: float = 8.5
    peak_h: float = 13.5
    fade_h: float = 2.0
    red_people: int = 7
    red_scans: int = 46  # red-code scans in the core grid over the episode
    yellow_scans: int = 60
    stale_scans: int = 36
    crowd_episodes: int = 5  # per pharmacy: bursts of reports, each a loiter alert

    def intensity(self, hour: float) -> float:
        """0-1: how far the cluster has built up at ``hour`` (hours after midnight)."""
        if hour < self.onset_h:
            return 0.0
        if hour <= self.peak_h:
            return ((hour - self.onset_h) / (self.peak_h - self.onset_h)) ** 2
        return max(0.0, 1.0 - (hour - self.peak_h) / self.fade_h)


def clock(hour: float) -> str:
    """``HH:MM`` of an hour after midnight (``8.5`` is ``08:30``)."""
    minutes = round(hour * 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _digest(seed: int, text: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{seed}:{text}".encode(), digest_size=8).digest(), "big")


def plan(grids: Sequence[Any], city: Mapping[str, Any], *, seed: int = 1,
         avoid: Sequence[str] = ()) -> Outbreak | None:
    """Pick the outbreak's street and grids in a district.

    The core is a grid with a gate checkpoint and a pharmacy camera whose street has
    at least two more grids with gates touching it; the neighbours are up to three of
    those. Grids in ``avoid`` (e.g. the demo's own grid worker's) are never chosen.

    Args:
        grids: the district's :class:`~gridwatch.city.Grid` list.
        city: the city (checkpoints, cameras, workers).
        seed: the same seed picks the same place.
        avoid: grid ids left out.

    Returns:
        The plan, or ``None`` when no grid of the district qualifies.
    """
    from ..grid_index import GridIndex

    index = GridIndex(grids)
    gates = [c for c in city["checkpoints"] if c["kind"] == "gate"]
    pharmacies = [c for c in city["cameras"] if str(c["zone"]).startswith("pharmacy")]
    gate_grid = index.assign([c["lon"] for c in gates], [c["lat"] for c in gates])
    cam_grid = index.assign([c["lon"] for c in pharmacies], [c["lat"] for c in pharmacies])
    gates_of: dict[str, list[dict[str, Any]]] = {}
    for cp, g in zip(gates, gate_grid, strict=True):
        if g is not None:
            gates_of.setdefault(g, []).append(cp)
    with_pharmacy = {g for g in cam_grid if g is not None}
    skip = set(avoid)
    by_id = {g.id: g for g in grids}

    def neighbours(g: Any) -> list[str]:
        return sorted(o.id for o in grids if o.id != g.id and o.street == g.street
                      and o.id in gates_of and o.id not in skip
                      and o.polygon.intersects(g.polygon))

    candidates = [g.id for g in grids if g.id in gates_of and g.id in with_pharmacy
                  and g.id not in skip and len(neighbours(g)) >= 2]
    if not candidates:
        return None
    core_id = min(candidates, key=lambda gid: _digest(seed, gid))
    core = by_id[core_id]
    near = sorted(neighbours(core), key=lambda gid: _digest(seed, "n" + gid))[:3]
    chosen = (core_id, *near)
    # The core grid carries the cluster; the first neighbour about half of it, the
    # others less: one or two grids red at the peak, a few yellow.
    weights = (1.0, 0.55, 0.35, 0.3)[:len(chosen)]
    centre = core.polygon.representative_point()
    street_cams = [c for c, g in zip(pharmacies, cam_grid, strict=True)
                   if g is not None and by_id[g].street == core.street]
    street_cams.sort(key=lambda c: math.hypot(c["lon"] - centre.x, c["lat"] - centre.y))
    workers = tuple(sorted(w["id"] for w in city.get("workers", ()) if core_id in w["grids"]))
    return Outbreak(street=core.street, grids=chosen, weights=weights,
                    gates={g: tuple(gates_of[g]) for g in chosen},
                    pharmacies=tuple(street_cams[:4]), slow_workers=workers)


def _when(rng: random.Random, ob: Outbreak) -> float:
    """An hour of the episode, drawn with the density of :meth:`Outbreak.intensity`."""
    while True:
        hour = rng.uniform(ob.onset_h, ob.peak_h + ob.fade_h)
        if rng.random() < ob.intensity(hour):
            return hour


def _ref(seed: int, kind: str, n: int) -> str:
    return hashlib.blake2b(f"outbreak:{seed}:{kind}:{n}".encode(), digest_size=10).hexdigest()


def events(ob: Outbreak, *, seed: int, day_start: float, next_id: Callable[[str], str]) -> Iterator[Event]:
    """The cluster's events of the day beginning at ``day_start`` (local midnight), in
    no particular order; ``next_id(prefix)`` names each event."""
    rng = random.Random(_digest(seed, "outbreak:" + ob.street))
    total = sum(ob.weights)

    def grid_pick() -> str:
        x = rng.random() * total
        for grid, w in zip(ob.grids, ob.weights, strict=True):
            x -= w
            if x < 0:
                return grid
        return ob.grids[-1]

    def scan(ts: float, grid: str, person: str, color: str, test_age_h: float) -> Event:
        cp = rng.choice(ob.gates[grid])
        return ts, CHECKPOINT_SCANS, {
            "event_id": next_id("scan"),
            "ts": format_time(ts),
            "checkpoint_id": cp["id"],
            "lon": cp["lon"],
            "lat": cp["lat"],
            "person_ref": person,
            "code_color": color,
            "direction": "in" if rng.random() < 0.5 else "out",
            "last_negative_test_at": format_time(ts - test_age_h * 3600),
        }

    # Red-code people of the cluster: each is seen at the gates of several of its grids.
    for _ in range(int(ob.red_scans * total / ob.weights[0])):
        person = _ref(seed, "red", rng.randrange(ob.red_people))
        yield scan(day_start + _when(rng, ob) * 3600, grid_pick(), person, "red",
                   rng.uniform(20, 47))
    for _ in range(int(ob.yellow_scans * total / ob.weights[0])):
        person = _ref(seed, "yellow", rng.randrange(ob.yellow_scans * 2))
        yield scan(day_start + _when(rng, ob) * 3600, grid_pick(), person, "yellow",
                   rng.uniform(6, 47))
    for _ in range(int(ob.stale_scans * total / ob.weights[0])):
        person = _ref(seed, "stale", rng.randrange(ob.stale_scans * 4))
        yield scan(day_start + _when(rng, ob) * 3600, grid_pick(), person, "green",
                   rng.uniform(50, 120))
    # Crowds at the street's pharmacies: bursts of reports every two minutes, growing
    # towards the peak; bursts more than the re-arm time apart are separate alerts.
    for cam in ob.pharmacies:
        for _ in range(ob.crowd_episodes):
            hour = _when(rng, ob)
            size = 4 + int(36 * ob.intensity(hour) * rng.uniform(0.6, 1.0))
            for k in range(rng.randint(4, 8)):
                ts = day_start + hour * 3600 + k * 120 + rng.random() * 30
                yield ts, CROWD_LOITER, {
                    "event_id": next_id("loiter"),
                    "ts": format_time(ts),
                    "camera_id": cam["id"],
                    "lon": cam["lon"],
                    "lat": cam["lat"],
                    "zone": cam["zone"],
                    "people": size + rng.randint(-2, 3),
                    "dwell_s": round(240 + k * 150 + rng.random() * 90, 1),
                }
