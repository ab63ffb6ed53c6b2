"""A simulated city day scored through the pure core, without Kafka or Redis.

What the risk bands of a district look like after the simulator's events: the events
go through the worker's own pure steps — the strict decoder and the grid lookup
(:func:`.fold.fold_batch`), the rules, cross-grid movements and loiter folding
(:func:`.decide.decide`) — into grid-hour counters kept in memory as the apply script
keeps them in Redis, and every grid is scored with the refresher's own row layout
(:func:`.risk_rows.row_of`, :func:`.risk_refresh.indicators_of`) and
:func:`.risk.score_grid`, over the 24 hours up to its newest event hour.

Left out: tasks (no one dispatches here, so ``open_tasks`` and ``overdue_tasks`` are 0:
a grid scores here at most what it scores live), escalations and liveness. One
partition per topic, so lateness is judged against one watermark per topic.

``python -m gridwatch.agents.replay`` prints the band counts per hour of the demo's
live day (07:00 local, seed 1).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from .. import keys
from ..city import load_city, load_grids
from ..grid_index import GridIndex
from ..risk import RiskConfig, RiskScore, load_risk_config, score_grid
from ..schemas.events import Bounds, CheckpointScan, CrowdLoiter
from ..settings import DATA_DIR
from . import loiter, rules
from .decide import DecideConfig, Decisions, View, decide, red_visits
from .fold import RawRecord, fold_batch
from .risk_refresh import indicators_of
from .risk_rows import FIELDS, row_of

BANDS = ("red", "yellow", "blue")


@dataclass
class DayState:
    """What the replay keeps between batches: grid-hour counters, newest hour per grid,
    and the rules' view (red-code visits, open loiter alerts, alerts raised)."""

    hours: dict[tuple[str, int], Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    newest: dict[str, int] = field(default_factory=dict)  # grid -> newest event hour
    applied: dict[str, int] = field(default_factory=dict)
    watermarks: dict[str, float] = field(default_factory=dict)
    visits: dict[str, list[rules.Visit]] = field(default_factory=dict)
    loiter_latest: dict[str, Any] = field(default_factory=dict)
    alerts: dict[str, Any] = field(default_factory=dict)
    offsets: Counter[str] = field(default_factory=Counter)


class DayReplay:
    """Feeds batches of simulated events through fold and decide; scores on demand.

    Args:
        grids_path: the district's grids file (default: the bundled one).
        risk: the risk configuration (default: the bundled one).
        grace_s: the event-time grace (the worker's default).
    """

    def __init__(self, *, grids_path: Any = None, risk: RiskConfig | None = None,
                 grace_s: float = 600.0) -> None:
        self.index = GridIndex(load_grids(grids_path or DATA_DIR / "grids.geojson"))
        self.risk = risk or load_risk_config()
        self.grace_s = grace_s
        table = rules.load_rules()
        self.config = DecideConfig(rules=table, loiter=loiter.load_config(),
                                   visit_horizon_s=table.visit_horizon_s(grace_s))
        self.state = DayState()
        self.bounds = Bounds()  # simulated days may lie ahead of the wall clock

    def feed(self, batch: Iterable[tuple[str, dict[str, Any]]]) -> Decisions:
        """Apply one batch of (topic name, event) in the order given; returns what
        :func:`.decide.decide` decided (its alerts are kept in the state's view)."""
        st = self.state
        records = []
        for topic, event in batch:
            offset = st.offsets[topic]
            st.offsets[topic] += 1
            records.append(RawRecord(topic, 0, offset, orjson.dumps(event), None))
        update = fold_batch(records, index=self.index, applied=st.applied,
                            watermarks=st.watermarks, grace_s=self.grace_s, bounds=self.bounds)
        for pfield, (_, last) in update.offsets.items():
            st.applied[pfield] = last
        st.watermarks.update(update.watermarks)
        # The grid-hour counters the fold wrote, found by their keys.
        place: dict[str, tuple[str, int]] = {}
        for _, event, grid in update.events:
            if grid is not None and isinstance(event, (CheckpointScan, CrowdLoiter)):
                hour = keys.hour_of(event.ts)
                place[keys.grid_hour(grid, hour)] = (grid, hour)
                st.newest[grid] = max(st.newest.get(grid, hour), hour)
        for (key, name), n in update.incr.items():
            if key in place:
                st.hours[place[key]][name] += n
        events = [(e, g) for _, e, g in update.events]
        view = View(red_visits={p: list(v) for p, v in st.visits.items()},
                    loiter_latest=st.loiter_latest, alerts=st.alerts)
        out = decide(events, view, self.config, workers_of=self.index.workers_of)
        for person, new in red_visits(events).items():
            st.visits.setdefault(person, []).extend(new)
        st.alerts.update(out.alerts)
        for (grid, hour, name), n in out.grid_counts.items():
            st.hours[(grid, hour)][name] += n
        for (grid, hour, name), n in out.uncount.items():
            st.hours[(grid, hour)][name] -= n
        for (grid, hour), people in out.crowd_max.items():
            c = st.hours[(grid, hour)]
            c["loiter_max"] = max(c["loiter_max"], people)
        return out

    def scores(self, until_hour: int | None = None,
               tasks: Mapping[str, tuple[int, int]] | None = None) -> dict[str, RiskScore]:
        """Every grid's score as the refresher writes it, each over the 24 hours up to
        its newest event hour (at most ``until_hour``); ``tasks``: a grid's open and
        overdue tasks (none when left out)."""
        out = {}
        hours = self.state.hours
        for grid, newest in self.state.newest.items():
            hour = newest if until_hour is None else min(newest, until_hour)
            rows = [[hours.get((grid, h), Counter()).get(f, 0) for f in FIELDS]
                    for h in range(hour - 23, hour + 1)]
            open_tasks, overdue = (tasks or {}).get(grid, (0, 0))
            row = row_of(grid, "0", hour, rows, dict(hours.get((grid, hour), {})),
                         dict(hours.get((grid, hour - 168), {})), open_tasks, overdue)
            out[grid] = score_grid(indicators_of(row, self.risk), self.risk)
        return out


def band_counts(scores: Mapping[str, RiskScore], grids: int) -> dict[str, int]:
    """Grids per band; grids with no score yet count as blue."""
    counts = Counter(s.band for s in scores.values())
    counts["blue"] += grids - len(scores)
    return {band: counts.get(band, 0) for band in BANDS}


def hourly_bands(stream: Iterable[tuple[float, Any, dict[str, Any]]], *, batch: int = 2000,
                 replay: DayReplay | None = None) -> Iterator[tuple[int, dict[str, int], dict[str, RiskScore]]]:
    """(hour, band counts, scores) at the end of every event-time hour of ``stream``
    (``(send time, topic, event)`` as :meth:`~gridwatch.streams.simulate.Simulator.stream`
    gives), each once every event sent before the hour's end is applied."""
    rp = replay or DayReplay()
    grids = len(rp.index.ids)
    pending: list[tuple[str, dict[str, Any]]] = []
    current: int | None = None
    for send_at, topic, event in stream:
        hour = int(send_at // 3600)
        if current is not None and hour != current:
            if pending:
                rp.feed(pending)
                pending = []
            scores = rp.scores(current)
            yield current, band_counts(scores, grids), scores
        current = hour
        pending.append((topic.name, event))
        if len(pending) >= batch:
            rp.feed(pending)
            pending = []
    if current is not None:
        if pending:
            rp.feed(pending)
        scores = rp.scores(current)
        yield current, band_counts(scores, grids), scores


def demo_outbreak(city: Mapping[str, Any], *, seed: int = 1) -> Any:
    """The outbreak the demo tells, on the bundled district: never in the grids of the
    demo's own grid worker (the first of the city), which are left to the user."""
    from ..streams.outbreak import plan

    mine = city["workers"][0]["grids"] if city.get("workers") else ()
    return plan(load_grids(DATA_DIR / "grids.geojson"), city, seed=seed, avoid=mine)


def main(argv: list[str] | None = None) -> int:
    from ..streams.simulate import CST, Simulator

    p = argparse.ArgumentParser(prog="python -m gridwatch.agents.replay",
                                description=__doc__.splitlines()[0])
    p.add_argument("--start", default="2026-11-23T07:00:00+08:00",
                   help="the live day's first instant (the demo starts at 07:00 local)")
    p.add_argument("--hours", type=float, default=24.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-story", dest="story", action="store_false",
                   help="the city without the live day's outbreak")
    args = p.parse_args(argv)
    start = datetime.fromisoformat(args.start)
    city = load_city(DATA_DIR / "city.json")
    story = demo_outbreak(city, seed=args.seed) if args.story else None
    if story is not None:
        print(f"outbreak: {story.street} street, grids {', '.join(story.grids)}; "
              f"slow to accept: {', '.join(story.slow_workers)}")
    sim = Simulator(city, seed=args.seed, start=start, local_days=True, outbreak=story)
    print("hour (local)   red  yellow   blue   top scores")
    for hour, counts, scores in hourly_bands(sim.stream(days=args.hours / 24)):
        top = sorted(scores.items(), key=lambda kv: -kv[1].score)[:4]
        at = datetime.fromtimestamp(hour * 3600, CST).strftime("%m-%d %H:00")
        print(f"{at}   {counts['red']:4d} {counts['yellow']:7d} {counts['blue']:6d}   "
              + ", ".join(f"{g} {s.score:.1f}" for g, s in top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
