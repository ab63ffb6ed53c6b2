"""``gridwatch demo``: the whole system on a simulated city, in one command.

Starts the local stack, one worker and the gateway as child processes, creates one
user of each role and prints their login links and the cockpit URL, then sends
ten weeks of station history (what the forecaster's seasonal mean reads)
followed by a live city day at ``speed`` simulated seconds per second, with
progress on one line. The live day tells a story (:mod:`.streams.outbreak`): an
outbreak building in a few neighbouring grids of one street, crowds at its pharmacies,
and a grid worker there who accepts tasks late. A simulated duty desk and field crew (:mod:`.crew`) handle the
alerts and tasks of every grid but the demo grid worker's, which are left to the people
trying the demo (``crew=False``: all are). Ctrl-C stops everything it started (the
stack keeps running; ``gridwatch stack down`` stops it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import orjson

from . import stack, store
from .city import load_city
from .settings import Settings

#: Days of station history sent before the live day: the ten weeks that the
#: forecaster's seasonal mean reads.
HISTORY_DAYS = 70


def _spawn(name: str, args: list[str], logdir: Path,
           env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    logdir.mkdir(parents=True, exist_ok=True)
    # The child writes to its own copy of the descriptor; ours is closed once it has started.
    with open(logdir / f"{name}.log", "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "gridwatch.cli", *args], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env={**os.environ, **(env or {})})


def _demo_users(settings: Settings) -> list[tuple[str, str, str]]:
    """(role, name, one-time login link) for one user of each role."""
    from .ws.auth import User
    from .ws.users import add_user, login_link

    city = load_city(settings.city)
    worker = city["workers"][0]
    station = city["stations"][0]["id"]
    people = [
        User("officer-demo", "duty_officer"),
        User(worker["id"], "grid_worker", grids=tuple(worker["grids"])),
        User("station-demo", "station_manager", stations=(station,)),
        User("admin-demo", "admin"),
    ]
    r = store.connect(settings)
    try:
        return [(u.role, u.name, login_link(settings, add_user(r, u))) for u in people]
    finally:
        r.close()


def _progress(settings: Settings, stop: threading.Event, sent: list[int],
              acted: list[int]) -> None:
    r = store.connect(settings)
    started = time.monotonic()
    while not stop.wait(1.0):
        try:
            s = store.summary(r)
            hour = store.now_hour(r)
        except Exception:  # noqa: BLE001, S112 - Redis restarting: show what we have
            continue
        applied = _applied(s)
        clock = store.keys_hour_iso(hour) or "-"
        print(f"\r[{time.monotonic() - started:6.0f}s] sent {sent[0]:>9,}  applied {applied:>9,}"
              f"  dead-letter {s['deadletter']:,}  late {s['late']:,}  crew {acted[0]:,}"
              f"  sim hour {clock}   ",
              end="", file=sys.stderr, flush=True)
    r.close()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _applied(summary: dict[str, int]) -> int:
    """Input events applied, of every kind, from the summary counters."""
    return summary["checkpoint_scans"] + summary["loiter_reports"] + summary["station_tickets"]


def _earlier_state(settings: Settings) -> int:
    """Events an earlier run left applied in Redis (0 on a clean stack)."""
    r = store.connect(settings)
    try:
        return _applied(store.summary(r))
    finally:
        r.close()


def run(settings: Settings, *, speed: float = 60.0, seed: int = 1, days: float = 1.0,
        scale: float = 1.0, fresh: bool = False, crew: bool = True) -> int:
    """Run the demo until the simulated days end and Ctrl-C is pressed.

    ``fresh``: wipe the local stack's data first (topics, messages, Redis state), so
    an earlier run's events do not add to this one's.
    """
    from .streams import clients
    from .streams.producer import paced
    from .streams.simulate import CST, CityDay, Simulator

    # A SIGTERM (e.g. from a supervisor) stops the demo like Ctrl-C: children included.
    signal.signal(signal.SIGTERM, _interrupt)

    def say(message: str) -> None:
        print(f"  {message}", file=sys.stderr)

    if fresh:
        print("gridwatch demo: wiping the local stack's data ...", file=sys.stderr)
        stack.reset(settings, log=say)
    print("gridwatch demo: starting the local stack (Kafka, Redis) ...", file=sys.stderr)
    stack.up(settings, log=say)
    earlier = _earlier_state(settings)
    if earlier:
        print(f"  the stack holds {earlier:,} events of an earlier run; they stay and add to "
              "this one's (`gridwatch demo --fresh` starts from a clean stack)", file=sys.stderr)
    logdir = settings.home / "logs"
    # The live city day starts at 07:00 local, just before the morning peak; the
    # simulated days are China's calendar days, so the peaks come at their hours.
    start = datetime.now(CST).replace(hour=7, minute=0, second=0, microsecond=0)
    # At speed the simulated clock runs ahead of the wall clock, up to the end of the
    # last simulated day: the worker must accept event times that far ahead.
    ahead = Simulator(load_city(settings.city), start=start, local_days=True) \
        .ahead_of(time.time(), days) + 300
    skew = {"GRIDWATCH_MAX_FUTURE_S": str(int(max(ahead, settings.max_future_s)))}
    children = [
        _spawn("worker", ["worker"], logdir, skew),
        _spawn("gateway", ["gateway", "--procs", "1"], logdir),  # one is plenty here
    ]
    url = f"http://{settings.gateway_host}:{settings.gateway_port}/"
    print(f"\n  cockpit: {url}", file=sys.stderr)
    for role, name, link in _demo_users(settings):
        print(f"  {role:16s} {name:14s} {link}", file=sys.stderr)
    city = load_city(settings.city)
    yours = city["workers"][0]
    # The live day's story: an outbreak in a few grids of one street (never yours).
    from .city import load_grids
    from .streams.outbreak import clock, plan

    story = plan(load_grids(settings.grids), city, seed=seed, avoid=yours["grids"])
    if story is not None:
        print(f"  the story: from {clock(story.onset_h)} red and yellow codes build up in grids "
              f"{', '.join(story.grids)} ({story.street}), crowds at its pharmacies, peak "
              f"about {clock(story.peak_h)}; {', '.join(story.slow_workers)} accepts tasks late",
              file=sys.stderr)
    if crew:
        print(f"  a simulated duty desk and field crew handle the alerts and tasks of every grid "
              f"but {yours['id']}'s ({', '.join(yours['grids'])}): those are yours "
              "(--no-crew: all are)", file=sys.stderr)
    print(f"  logs: {logdir}  (Ctrl-C stops the demo)\n", file=sys.stderr)

    base = CityDay()
    profile = CityDay(scans=int(base.scans * scale), loiter_reports=int(base.loiter_reports * max(scale, 0.2)))
    sim = Simulator(city, seed=seed, start=start, profile=profile,
                    local_days=True)
    sent, acted = [0], [0]
    stop = threading.Event()
    shower = threading.Thread(target=_progress, args=(settings, stop, sent, acted), daemon=True)
    shower.start()
    if crew:
        from . import crew as crew_mod

        desk = crew_mod.from_city(city, leave_worker=yours["id"], seed=seed,
                                  slow=story.slow_workers if story else ())
        threading.Thread(target=crew_mod.run, args=(settings, desk, stop, acted),
                         daemon=True).start()
    producer = clients.producer(settings)
    try:
        for _, topic, event in sim.stream(days=0, history_days=HISTORY_DAYS):
            producer.send(topic.name, key=str(event[topic.key_field]).encode(),
                          value=orjson.dumps(event))
            sent[0] += 1
        producer.flush()
        live = Simulator(load_city(settings.city), seed=seed, start=start, profile=profile,
                         local_days=True, outbreak=story)
        for topic, event in paced(live.stream(days=days), speed=speed):
            producer.send(topic.name, key=str(event[topic.key_field]).encode(),
                          value=orjson.dumps(event))
            sent[0] += 1
        producer.flush()
        print("\nthe simulated day is over; the cockpit stays up until Ctrl-C", file=sys.stderr)
        while all(c.poll() is None for c in children):
            time.sleep(1)
        print("a child process exited; see the logs", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        # A second signal (a supervisor's SIGTERM on top of Ctrl-C) must not cut the
        # clean-up short and leave the worker and the gateway running.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stop.set()
        producer.close(timeout=5)
        for child in children:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        for child in children:
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
        print("\ndemo stopped (the stack is still up: gridwatch stack down)", file=sys.stderr)
