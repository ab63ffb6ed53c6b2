"""The demo's live day in figures: open alerts per hour with and without the crew.

``python -m gridwatch.story`` plays the demo's day in-process, twice, through the pure
core and no server: the ten weeks of station history and the live day from 07:00 with
its outbreak (seed 1, the demo's profile at scale 1), folded and decided as the worker
does (:class:`~gridwatch.agents.replay.DayReplay`); the escalation deadlines fired
(:func:`~gridwatch.agents.escalation.fire_all`, the worker's levels, up to 3); and, in
the first run, the demo's crew (:mod:`.crew`) planning its commands every simulated
minute (what it does once a second at the demo's 60 simulated seconds a second), each
applied at once with :func:`~gridwatch.agents.lifecycle.apply` as the worker applies a
command, every grid worker on duty. The grids of the demo's own grid worker are left
alone, as in the demo. It prints, at the end of each local hour, the alerts raised so
far and those open (not closed or dismissed) with the crew and without it, how many
of those were escalated, and the share of grids per risk band at the outbreak's peak
hour (with the crew, its open and overdue tasks count in the grids' risk as they do
live).

Left out, as in the replay: silent-source alerts (liveness) and incidents' own
records; commands take effect the minute they are planned (live, a second or so
later); one partition per topic.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .agents import escalation, lifecycle
from .agents.escalation import Deadline
from .agents.replay import BANDS, DayReplay, band_counts, demo_outbreak
from .city import load_city
from .schemas.commands import OPEN_ALERT, OPEN_TASK
from .schemas.errors import TransitionRefused
from .schemas.records import Alert, Task
from .settings import DATA_DIR

TICK_S = 60.0  # the crew's round and the timers' check, in simulated seconds
HISTORY_DAYS = 70  # as the demo sends
START = "2026-11-23T07:00:00+08:00"


@dataclass
class Hour:
    """One local hour's end: alerts raised so far, open, escalated (level 1 or more)
    among the open, open in the grids left to the demo's user, and grids per band."""

    hour: int
    raised: int
    open: int
    escalated: int
    yours: int
    bands: dict[str, int]


@dataclass
class Loop:
    """The records the worker keeps in Redis for the life cycle: alerts (the replay's
    view), tasks and one escalation deadline per alert."""

    replay: DayReplay
    tasks: dict[str, Task] = field(default_factory=dict)
    deadlines: dict[str, Deadline] = field(default_factory=dict)
    refused: int = 0
    commands: int = 0

    @property
    def alerts(self) -> dict[str, Alert]:
        return self.replay.state.alerts

    def feed(self, batch: list[tuple[str, dict[str, Any]]]) -> None:
        st = self.replay.state
        # The worker reads the loiter alerts it may fold into as they are stored now.
        st.loiter_latest = {k: st.alerts.get(a.id, a) for k, a in st.loiter_latest.items()}
        out = self.replay.feed(batch)
        for aid, deadline in out.deadlines.items():
            if deadline is None:
                self.deadlines.pop(aid, None)
            else:
                self.deadlines[aid] = deadline

    def store(self, alert: Alert, task: Task | None) -> None:
        self.alerts[alert.id] = alert
        if task is not None:
            self.tasks[task.id] = task
        deadline = escalation.next_deadline(alert, self.tasks.get(alert.task_id or ""),
                                            self.replay.config.escalation,
                                            self.deadlines.get(alert.id))
        if deadline is None:
            self.deadlines.pop(alert.id, None)
        else:
            self.deadlines[alert.id] = deadline

    def escalate(self, now: float) -> None:
        config = self.replay.config.escalation
        for deadline in escalation.due(self.deadlines.values(), now):
            alert = self.alerts[deadline.alert_id]
            task = self.tasks.get(deadline.task_id or "")
            fired, following = escalation.fire_all(deadline, alert, task, now, config)
            if fired:
                self.alerts[alert.id] = fired[-1]
            if following is None:
                following = escalation.next_deadline(self.alerts[alert.id], task, config) \
                    if not fired else None
            if following is None:
                self.deadlines.pop(alert.id, None)
            else:
                self.deadlines[alert.id] = following

    def apply(self, command: Mapping[str, Any], now: float) -> None:
        """Apply one of the crew's commands as the worker does (every worker on duty)."""
        self.commands += 1
        if command["target"] == "task":
            task: Task | None = self.tasks[command["id"]]
            alert = self.alerts[task.alert_id]  # type: ignore[union-attr]
        else:
            alert = self.alerts[command["id"]]
            task = self.tasks.get(alert.task_id or "")
        workers = self.replay.index.workers_of(alert.grid_id) if alert.grid_id else ()
        try:
            alert, task = lifecycle.apply(
                command["target"], command["action"], alert, task, actor=command["actor"],
                role=command["role"], ts=now, note=command["note"], grids=command["grids"],
                workers=workers)
        except TransitionRefused:
            self.refused += 1
            return
        self.store(alert, task)

    def open_alerts(self) -> list[Alert]:
        return [a for a in self.alerts.values() if a.status in OPEN_ALERT]

    def grid_tasks(self, hour: int) -> dict[str, tuple[int, int]]:
        """Open and overdue (due before the hour's end) tasks per grid."""
        out: dict[str, tuple[int, int]] = {}
        for t in self.tasks.values():
            if t.status in OPEN_TASK:
                n, late = out.get(t.grid_id, (0, 0))
                out[t.grid_id] = (n + 1, late + (t.due_at < (hour + 1) * 3600))
        return out


def play(events: Iterable[tuple[float, Any, dict[str, Any]]], loop: Loop, *,
         live_from: float, until: float, crew: Any = None, yours: Iterable[str] = (),
         batch: int = 2000) -> Iterator[Hour]:
    """Feed ``events`` (``(send time, topic, event)`` as the simulator gives, history
    first) through the pure core; every ``TICK_S`` of the live part fire the due
    escalations and, with ``crew`` (a :class:`~gridwatch.crew.Crew`), apply its
    commands. Yields an :class:`Hour` at the end of every hour from ``live_from`` to
    ``until`` (events sent after it, late ones, are not shown)."""
    grids = len(loop.replay.index.ids)
    mine = frozenset(yours)
    pending: list[tuple[str, dict[str, Any]]] = []
    tick: float | None = None
    hour: int | None = None

    def round_at(now: float) -> None:
        loop.escalate(now)
        if crew is None:
            return
        alerts = [a.to_dict(versioned=False) for a in loop.open_alerts()]
        tasks = {a["task_id"]: loop.tasks[a["task_id"]].to_dict(versioned=False)
                 for a in alerts if a["status"] == "dispatched" and a.get("task_id") in loop.tasks}
        for command in crew.plan(alerts, tasks, now, wall=now):
            loop.apply(command, now)

    def snapshot(h: int) -> Hour:
        open_alerts = loop.open_alerts()
        scores = loop.replay.scores(h, loop.grid_tasks(h))
        return Hour(h, len(loop.alerts), len(open_alerts),
                    sum(1 for a in open_alerts if a.escalation_level > 0),
                    sum(1 for a in open_alerts if a.grid_id in mine),
                    band_counts(scores, grids))

    for send_at, topic, event in events:
        if send_at < live_from:  # the history, sent as fast as it goes
            pending.append((topic.name, event))
            if len(pending) >= batch:
                loop.feed(pending)
                pending = []
                round_at(send_at)
            continue
        if tick is None:
            tick = live_from
            hour = int(live_from // 3600)
        while send_at >= tick + TICK_S:
            if pending:
                loop.feed(pending)
                pending = []
            tick += TICK_S
            round_at(tick)
            if int(tick // 3600) != hour:
                if tick <= until:
                    yield snapshot(hour)  # type: ignore[arg-type]
                hour = int(tick // 3600)
        pending.append((topic.name, event))
        if len(pending) >= batch:
            loop.feed(pending)
            pending = []
    if pending:
        loop.feed(pending)
    if tick is not None and hour is not None and (hour + 1) * 3600 <= until:
        round_at(tick + TICK_S)
        yield snapshot(hour)


def day(*, crew: bool, seed: int = 1, hours: float = 24.0, start: str = START,
        history_days: int = HISTORY_DAYS, scale: float = 1.0) -> tuple[list[Hour], Loop]:
    """The demo's day (as ``gridwatch demo --seed SEED --scale SCALE`` sends it) played
    with its crew or without any: the hours, and the records at the end."""
    from . import crew as crew_mod
    from .streams.simulate import CityDay, Simulator

    city = load_city(DATA_DIR / "city.json")
    first = datetime.fromisoformat(start)
    story = demo_outbreak(city, seed=seed)
    yours = city["workers"][0]
    base = CityDay()
    profile = CityDay(scans=int(base.scans * scale),
                      loiter_reports=int(base.loiter_reports * max(scale, 0.2)))

    def events() -> Iterator[tuple[float, Any, dict[str, Any]]]:
        past = Simulator(city, seed=seed, start=first, profile=profile, local_days=True)
        yield from past.stream(days=0, history_days=history_days)
        live = Simulator(city, seed=seed, start=first, profile=profile, local_days=True,
                         outbreak=story)
        yield from live.stream(days=hours / 24)

    desk = crew_mod.from_city(city, leave_worker=yours["id"], seed=seed,
                              slow=story.slow_workers if story else ()) if crew else None
    loop = Loop(DayReplay())
    return list(play(events(), loop, live_from=first.timestamp(),
                     until=first.timestamp() + hours * 3600, crew=desk,
                     yours=yours["grids"])), loop


def peak_hour(seed: int = 1, start: str = START) -> int:
    """The epoch hour of the outbreak's peak on the demo's day."""
    city = load_city(DATA_DIR / "city.json")
    story = demo_outbreak(city, seed=seed)
    first = datetime.fromisoformat(start)
    midnight = first.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    return int((midnight + (story.peak_h if story else 13.5) * 3600) // 3600)


def report(with_crew: list[Hour], without: list[Hour], peak: int,
           clock: Callable[[int], str], say: Callable[[str], None] = print) -> None:
    """The table and the bands at the peak, as printed."""
    say("            with the crew                       without it")
    say("hour ends   raised  open  escalated  yours     raised  open  escalated")
    for a, b in zip(with_crew, without, strict=False):
        say(f"{clock(a.hour + 1)}      {a.raised:6d} {a.open:5d} {a.escalated:10d} {a.yours:6d}"
            f"     {b.raised:6d} {b.open:5d} {b.escalated:10d}")
    for name, rows in (("with crew", with_crew), ("without crew", without)):
        at = next((h for h in rows if h.hour == peak), None)
        if at is None:
            continue
        total = sum(at.bands.values())
        shares = ", ".join(f"{b} {at.bands[b]} ({100 * at.bands[b] / total:.1f} %)"
                           for b in BANDS)
        say(f"bands at the peak, {clock(peak)}-{clock(peak + 1)}, {name}: {shares}")


def main(argv: list[str] | None = None) -> int:
    from .streams.simulate import CST

    p = argparse.ArgumentParser(prog="python -m gridwatch.story",
                                description=__doc__.splitlines()[0])
    p.add_argument("--hours", type=float, default=24.0, help="of the live day, from 07:00")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--scale", type=float, default=1.0, help="as gridwatch demo --scale")
    p.add_argument("--history-days", type=int, default=HISTORY_DAYS)
    args = p.parse_args(argv)
    if not 0 < args.hours <= 48 or args.scale <= 0 or args.history_days < 0:
        p.error("--hours must be in (0, 48], --scale above 0, --history-days 0 or more")
    kw = {"seed": args.seed, "hours": args.hours, "history_days": args.history_days,
          "scale": args.scale}
    with_crew, acted = day(crew=True, **kw)
    without, _ = day(crew=False, **kw)
    city = load_city(DATA_DIR / "city.json")
    story = demo_outbreak(city, seed=args.seed)
    if story is not None:
        print(f"outbreak: {story.street} street, grids {', '.join(story.grids)}; "
              f"slow to accept: {', '.join(story.slow_workers)}; left to you: "
              f"{', '.join(city['workers'][0]['grids'])}")
    report(with_crew, without, peak_hour(args.seed),
           lambda h: datetime.fromtimestamp(h * 3600, CST).strftime("%H:00"))
    print(f"crew commands applied {acted.commands - acted.refused:,}, refused {acted.refused:,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
