"""Alerts and tasks end to end: Kafka in, real workers, commands through the CLI, Redis out.

Events are sent with a plain kafka-python producer to the input topics; commands go
through ``python -m gridwatch.cli alert|task ...`` (which puts them on
``gridwatch.commands`` and waits for the worker's outcome), exactly as a duty officer's
script would. The state is read back from Redis and through ``gridwatch alerts`` /
``gridwatch tasks --json``.

Event times are fixed (a day in the past, aligned to the 10-minute incident windows), so
the feed's clock never reaches an escalation deadline unless a test moves it there; the
commands carry the wall clock, which is later than every event.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from gridwatch.agents.decide import incident_id
from gridwatch.agents.loiter import loiter_alert_id
from gridwatch.agents.rules import alert_id as rule_alert_id
from gridwatch.schemas.events import format_time, parse_time
from gridwatch.streams import clients
from gridwatch.streams.simulate import CST, CityDay, Simulator
from gridwatch.streams.topics import CHECKPOINT_SCANS, COMMANDS, CROWD_LOITER, INPUT_BY_NAME
from kafka import KafkaProducer, TopicPartition

from gridwatch import keys, store
from gridwatch import settings as settings_mod
from gridwatch.city import Grid, load_city, load_grids

from .conftest import Workers, wait_until

pytestmark = pytest.mark.integration

T0 = parse_time("2026-11-02T08:00:00+08:00")  # a 10-minute window starts here
assert T0 % 600 == 0
APPLY_TIMEOUT = 90.0


# ---- the district ----------------------------------------------------------------------


@dataclass(frozen=True)
class Place:
    """A grid with its workers and a point well inside it."""

    grid: str
    workers: tuple[str, ...]
    lon: float
    lat: float


def places(n: int) -> list[Place]:
    """``n`` grids of the bundled district, each with workers none of the others has."""
    grids: list[Grid] = load_grids(settings_mod.Settings().grids)
    out: list[Place] = []
    taken: set[str] = set()
    for g in grids:
        if not g.workers or taken & set(g.workers):
            continue
        point = g.polygon.representative_point()
        out.append(Place(g.id, tuple(g.workers), round(point.x, 6), round(point.y, 6)))
        taken |= set(g.workers)
        if len(out) == n:
            return out
    raise AssertionError(f"the district has fewer than {n} grids with workers of their own")


# ---- sending events ---------------------------------------------------------------------


class Feed:
    """Sends input events, keyed as ``gridwatch publish`` keys them."""

    def __init__(self, s: settings_mod.Settings) -> None:
        self.producer = KafkaProducer(bootstrap_servers=s.kafka, acks="all", linger_ms=2)
        self.sent: dict[str, int] = {}

    def send(self, topic: str, event: dict[str, Any]) -> None:
        key = str(event[INPUT_BY_NAME[topic].key_field]).encode()
        self.producer.send(topic, key=key, value=orjson.dumps(event))
        self.sent[topic] = self.sent.get(topic, 0) + 1

    def loiter(self, place: Place, *, camera: str, zone: str, people: int, dwell_s: float,
               ts: float, event_id: str | None = None) -> str:
        """Send a crowd report; returns its event id."""
        event_id = event_id or f"cam-ev-{uuid.uuid4().hex[:12]}"
        self.send(CROWD_LOITER, {
            "event_id": event_id, "ts": format_time(ts), "camera_id": camera,
            "lon": place.lon, "lat": place.lat, "zone": zone, "people": people,
            "dwell_s": dwell_s,
        })
        return event_id

    def scan(self, place: Place, *, color: str, ts: float, checkpoint: str = "cp-test-1",
             person: str | None = None, event_id: str | None = None) -> str:
        """Send a checkpoint scan (with a fresh negative test); returns its event id."""
        event_id = event_id or f"scan-{uuid.uuid4().hex[:12]}"
        self.send(CHECKPOINT_SCANS, {
            "event_id": event_id, "ts": format_time(ts), "checkpoint_id": checkpoint,
            "lon": place.lon, "lat": place.lat, "person_ref": person or uuid.uuid4().hex[:20],
            "code_color": color, "direction": "in",
            "last_negative_test_at": format_time(ts - 3600),
        })
        return event_id

    def flush(self) -> None:
        self.producer.flush()

    def close(self) -> None:
        self.producer.flush()
        self.producer.close()


def applied_total(r: redis.Redis) -> int:
    """Valid input events applied (all kinds) plus dead letters."""
    sm = store.summary(r)
    return sm["checkpoint_scans"] + sm["loiter_reports"] + sm["station_tickets"] + sm["deadletter"]


def wait_applied(r: redis.Redis, feed: Feed) -> None:
    """Wait until every event the feed sent is applied (no more, no fewer)."""
    total = sum(feed.sent.values())
    wait_until(lambda: applied_total(r) >= total, timeout=APPLY_TIMEOUT,
               what=f"{total} input events applied")
    assert applied_total(r) == total


def alert(r: redis.Redis, alert_id: str) -> dict[str, Any]:
    raw = r.get(keys.alert(alert_id))
    assert raw is not None, f"no alert {alert_id} in Redis"
    return orjson.loads(raw)  # type: ignore[no-any-return]


def task(r: redis.Redis, task_id: str) -> dict[str, Any]:
    raw = r.get(keys.task(task_id))
    assert raw is not None, f"no task {task_id} in Redis"
    return orjson.loads(raw)  # type: ignore[no-any-return]


def wait_alert(r: redis.Redis, alert_id: str) -> dict[str, Any]:
    wait_until(lambda: bool(r.exists(keys.alert(alert_id))), timeout=APPLY_TIMEOUT,
               what=f"alert {alert_id}")
    return alert(r, alert_id)


def trail(record: dict[str, Any]) -> list[tuple[str, str | None, str, str, str]]:
    """The audit as (action, from, to, actor, role)."""
    return [(e["action"], e["from_state"], e["to_state"], e["actor"], e["role"])
            for e in record["audit"]]


# ---- the CLI -------------------------------------------------------------------------


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return orjson.loads(self.out)


def cli_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "gridwatch.cli", *args]


def gw(workers: Workers, *args: str) -> Ran:
    """Run ``gridwatch ARGS`` against the test stack."""
    proc = subprocess.run(cli_argv(*args), env=workers.env(), capture_output=True, text=True,
                          timeout=120, check=False)
    return Ran(proc.returncode, proc.stdout, proc.stderr)


def ok(workers: Workers, *args: str) -> Ran:
    """Run a command that must succeed."""
    ran = gw(workers, *args)
    assert ran.code == 0, f"gridwatch {' '.join(args)} failed ({ran.code}): {ran.err}"
    return ran


def refused(workers: Workers, *args: str) -> str:
    """Run a transition that must be refused; returns the reason printed."""
    ran = gw(workers, *args)
    assert ran.code == 1, f"gridwatch {' '.join(args)} was not refused: {ran.out} {ran.err}"
    assert "refused:" in ran.err, ran.err
    return ran.err.split("refused:", 1)[1].strip()


class TimerlessWorkers(Workers):
    """Workers with the escalation and liveness timers off."""

    def env(self) -> dict[str, str]:
        return {**super().env(), "GRIDWATCH_TIMERS": "0"}


@pytest.fixture
def timerless(clean_stack: settings_mod.Settings, tmp_path: Path) -> Iterator[TimerlessWorkers]:
    w = TimerlessWorkers(clean_stack, tmp_path)
    yield w
    w.stop_all()


# ---- scenarios ------------------------------------------------------------------------


def test_loiter_report_raises_an_alert_and_repeats_fold_into_it(workers: Workers) -> None:
    s = workers.settings
    (here,) = places(1)
    feed = Feed(s)
    cam, zone = "cam-t-0001", "pharmacy:t01"  # pharmacy: 3 people, 180 s, base medium
    first = feed.loiter(here, camera=cam, zone=zone, people=4, dwell_s=200, ts=T0 + 10)
    feed.loiter(here, camera=cam, zone=zone, people=12, dwell_s=300, ts=T0 + 130)
    third = feed.loiter(here, camera=cam, zone=zone, people=5, dwell_s=650, ts=T0 + 250)
    feed.loiter(here, camera=cam, zone=zone, people=1, dwell_s=900, ts=T0 + 300)  # below N
    # More than the re-arm time (600 s) after the last report that counted: a new alert.
    again = feed.loiter(here, camera=cam, zone=zone, people=4, dwell_s=200, ts=T0 + 250 + 601)
    # Below the threshold from the start: no alert at all.
    feed.loiter(here, camera="cam-t-0002", zone="market:t02", people=11, dwell_s=3000, ts=T0 + 20)
    feed.close()
    workers.start()
    r = store.connect(s.redis)
    wait_applied(r, feed)

    a = alert(r, loiter_alert_id(cam, zone, first))
    assert a["kind"] == "loiter"
    assert a["grid_id"] == here.grid
    assert a["source_ids"]["camera_id"] == cam
    assert a["source_ids"]["zone"] == zone
    assert a["source_ids"]["event_id"] == first
    assert a["source_ids"]["last_event_id"] == third
    d = a["details"]
    assert d["reports"] == 3
    assert d["max_people"] == 12
    assert d["max_dwell_s"] == 650
    assert d["first_seen"] == T0 + 10 and d["last_seen"] == T0 + 250
    assert a["severity"] == "high"  # 12 people = 4x the pharmacy threshold
    assert a["ts_raised"] == T0 + 10
    assert a["status"] == "new"

    b = alert(r, loiter_alert_id(cam, zone, again))
    assert b["details"]["reports"] == 1
    assert b["source_ids"]["camera_id"] == cam
    assert b["severity"] == "medium"

    loiter_ids = {i for i in r.zrange(keys.ALERTS_ALL, 0, -1)
                  if alert(r, i)["kind"] == "loiter"}
    assert loiter_ids == {a["id"], b["id"]}
    r.close()


def test_red_code_is_a_high_alert_and_three_in_a_window_share_an_incident(workers: Workers) -> None:
    s = workers.settings
    here, other = places(2)
    feed = Feed(s)
    red = feed.scan(here, color="red", ts=T0 + 30, checkpoint="cp-t-red")
    feed.scan(here, color="green", ts=T0 + 40, checkpoint="cp-t-red")  # no alert
    crowd1 = feed.loiter(here, camera="cam-t-0101", zone="clinic:a", people=3, dwell_s=130,
                         ts=T0 + 200)
    crowd2 = feed.loiter(here, camera="cam-t-0102", zone="clinic:b", people=4, dwell_s=500,
                         ts=T0 + 590)
    # The next window of the same grid, and the same window of another grid.
    later = feed.scan(here, color="yellow", ts=T0 + 600, checkpoint="cp-t-red")
    elsewhere = feed.scan(other, color="red", ts=T0 + 100, checkpoint="cp-t-other")
    feed.close()
    workers.start()
    r = store.connect(s.redis)
    wait_applied(r, feed)

    high = alert(r, rule_alert_id("red_code", red))
    assert high["kind"] == "red_code"
    assert high["severity"] == "high"
    assert high["grid_id"] == here.grid
    assert high["source_ids"]["checkpoint_id"] == "cp-t-red"
    assert high["source_ids"]["event_id"] == red
    assert high["status"] == "new"

    window = int(T0 // 600)
    members = {high["id"], loiter_alert_id("cam-t-0101", "clinic:a", crowd1),
               loiter_alert_id("cam-t-0102", "clinic:b", crowd2)}
    incident = incident_id(here.grid, window)
    for member in members:
        assert alert(r, member)["incident_id"] == incident, member
    record = r.hgetall(keys.incident(incident))
    assert int(record["count"]) >= 3
    assert int(record["count"]) == 3
    assert record["grid_id"] == here.grid
    assert set(r.smembers(keys.incident_alerts(incident))) == members

    # One alert in the next window, one in another grid: neither makes an incident.
    nxt = alert(r, rule_alert_id("yellow_code", later))
    assert nxt["severity"] == "medium"
    assert nxt["incident_id"] == incident_id(here.grid, window + 1) != incident
    assert int(r.hget(keys.incident(nxt["incident_id"]), "count")) == 1
    far = alert(r, rule_alert_id("red_code", elsewhere))
    assert far["incident_id"] == incident_id(other.grid, window) != incident
    assert int(r.hget(keys.incident(far["incident_id"]), "count")) == 1
    r.close()


def _raise_loiter(workers: Workers, place: Place, *, camera: str, ts: float = T0 + 60) -> str:
    """Publish one crowd report over the threshold and wait for its alert; returns its id."""
    feed = Feed(workers.settings)
    zone = f"pharmacy:{camera}"
    event_id = feed.loiter(place, camera=camera, zone=zone, people=6, dwell_s=400, ts=ts)
    feed.close()
    alert_id = loiter_alert_id(camera, zone, event_id)
    r = store.connect(workers.settings.redis)
    wait_alert(r, alert_id)
    r.close()
    return alert_id


def test_closed_loop_ack_dispatch_accept_arrive_done_close_with_audit(workers: Workers) -> None:
    s = workers.settings
    (here,) = places(1)
    worker = here.workers[0]
    workers.start()
    aid = _raise_loiter(workers, here, camera="cam-t-0201")
    r = store.connect(s.redis)

    out = ok(workers, "alert", "ack", aid, "--actor", "wang", "--note", "seen", "--json").json()
    assert out["ok"] is True and out["alert"]["status"] == "acknowledged"
    out = ok(workers, "alert", "dispatch", aid, "--actor", "wang", "--note", "please check",
             "--json").json()
    tid = f"tk-{aid}-1"
    assert out["alert"]["status"] == "dispatched" and out["alert"]["task_id"] == tid
    assert out["task"]["status"] == "offered" and worker in out["task"]["workers"]

    mine = ok(workers, "tasks", "--worker", worker, "--json").json()
    assert isinstance(mine, list)
    assert [(t["id"], t["status"], t["alert_id"]) for t in mine] == [(tid, "offered", aid)]

    grids = ("--grids", here.grid)
    ok(workers, "task", "accept", tid, "--actor", worker, *grids)
    ok(workers, "task", "arrive", tid, "--actor", worker, *grids, "--note", "on my way in")
    ran = ok(workers, "task", "done", tid, "--actor", worker, *grids, "--note", "dispersed")
    assert f"task {tid}: done done; status done" in ran.out
    assert alert(r, aid)["status"] == "resolved"  # a task done resolves its alert
    ok(workers, "alert", "close", aid, "--actor", "li", "--note", "loop closed")

    a, t = alert(r, aid), task(r, tid)
    assert a["status"] == "closed"
    assert trail(a) == [
        ("raise", None, "new", "system", "system"),
        ("ack", "new", "acknowledged", "wang", "duty_officer"),
        ("dispatch", "acknowledged", "dispatched", "wang", "duty_officer"),
        ("task_done", "dispatched", "resolved", "system", "system"),
        ("close", "resolved", "closed", "li", "duty_officer"),
    ]
    notes = [e["note"] for e in a["audit"]]
    assert notes[1:3] == ["seen", "please check"]
    assert notes[3] == f"task {tid} done by {worker}: dispersed"
    assert notes[4] == "loop closed"
    stamps = [e["ts"] for e in a["audit"]]
    assert stamps == sorted(stamps) and stamps[0] == T0 + 60
    assert all(isinstance(x, float) for x in stamps)

    assert t["status"] == "done" and t["assignee"] == worker and t["note"] == "dispersed"
    assert trail(t) == [
        ("offer", None, "offered", "wang", "duty_officer"),
        ("accept", "offered", "accepted", worker, "grid_worker"),
        ("arrive", "accepted", "on_site", worker, "grid_worker"),
        ("done", "on_site", "done", worker, "grid_worker"),
    ]
    assert [e["note"] for e in t["audit"]] == ["please check", "", "on my way in", "dispersed"]
    task_stamps = [e["ts"] for e in t["audit"]]
    assert task_stamps == sorted(task_stamps)
    assert a["audit"][3]["ts"] == t["audit"][3]["ts"]  # resolved at the moment it was done

    # Closed: gone from the open list and from the grid's open tasks, kept in history.
    assert r.zscore(keys.ALERTS_OPEN, aid) is None
    assert r.zscore(keys.tasks_open(here.grid), tid) is None
    assert r.zscore(keys.ALERTS_ALL, aid) == T0 + 60
    assert not r.exists(keys.deadline(aid))
    open_now = ok(workers, "alerts", "--status", "open", "--grid", here.grid, "--json").json()
    assert aid not in {x["id"] for x in open_now}
    closed = ok(workers, "alerts", "--status", "closed", "--grid", here.grid, "--json").json()
    assert [x["id"] for x in closed] == [aid]
    mine = ok(workers, "tasks", "--worker", worker, "--json").json()
    assert [(x["id"], x["status"]) for x in mine] == [(tid, "done")]
    r.close()


def test_refused_transitions_exit_nonzero_with_the_reason(workers: Workers) -> None:
    s = workers.settings
    here, other = places(2)
    workers.start()
    aid = _raise_loiter(workers, here, camera="cam-t-0301")
    r = store.connect(s.redis)
    before = alert(r, aid)

    reason = refused(workers, "alert", "dispatch", aid, "--actor", "wang")
    assert reason.startswith(f"cannot dispatch alert {aid}: it is new")
    assert reason.endswith("; allowed now: ack, dismiss, shelve")
    reason = refused(workers, "alert", "close", aid, "--actor", "wang")
    assert reason.startswith(f"cannot close alert {aid}: it is new")
    reason = refused(workers, "alert", "resolve", aid, "--actor", "wang", "--note", "fine")
    assert reason.startswith(f"cannot resolve alert {aid}: it is new")
    reason = refused(workers, "alert", "ack", aid, "--actor", here.workers[0],
                     "--role", "grid_worker")
    assert reason == (f"alert {aid}: only a duty officer or admin may acknowledge it, "
                      f"not worker {here.workers[0]}")
    reason = refused(workers, "alert", "ack", "al-0000000000000000", "--actor", "wang")
    assert reason == "no alert al-0000000000000000"
    reason = refused(workers, "task", "accept", f"tk-{aid}-1", "--actor", here.workers[0],
                     "--grids", here.grid)
    assert reason == f"no task tk-{aid}-1"
    assert alert(r, aid) == before  # nothing refused changed the alert

    ok(workers, "alert", "ack", aid, "--actor", "wang")
    reason = refused(workers, "alert", "ack", aid, "--actor", "zhao")
    assert reason.startswith(f"alert {aid} is already acknowledged by officer wang at ")
    reason = refused(workers, "alert", "resolve", aid, "--actor", "wang")
    assert reason == f"alert {aid}: resolve needs a note saying why"
    ok(workers, "alert", "dispatch", aid, "--actor", "wang")
    tid = f"tk-{aid}-1"
    worker = here.workers[0]
    stranger = other.workers[0]
    reason = refused(workers, "alert", "close", aid, "--actor", "wang")
    assert reason.startswith(f"cannot close alert {aid}: it is dispatched")
    reason = refused(workers, "task", "arrive", tid, "--actor", worker, "--grids", here.grid)
    assert reason.startswith(f"cannot report arrival on task {tid}: it is offered")
    # A worker of another grid may not take the task.
    reason = refused(workers, "task", "accept", tid, "--actor", stranger, "--grids", other.grid)
    assert reason == (f"task {tid}: only a worker of grid {here.grid} may accept it; "
                      f"{stranger} works grids {other.grid}")
    assert task(r, tid)["status"] == "offered"
    ok(workers, "task", "accept", tid, "--actor", worker, "--grids", here.grid)
    reason = refused(workers, "task", "accept", tid, "--actor", worker, "--grids", here.grid)
    assert reason.startswith(f"task {tid} is already accepted by worker {worker} at ")
    ok(workers, "task", "arrive", tid, "--actor", worker, "--grids", here.grid)
    reason = refused(workers, "task", "done", tid, "--actor", worker, "--grids", here.grid)
    assert reason == f"task {tid}: finish needs a note on what was found and done"
    reason = refused(workers, "task", "reject", tid, "--actor", worker, "--grids", here.grid,
                     "--note", "too late")
    assert reason.startswith(f"cannot reject task {tid}: it is on_site")
    t = task(r, tid)
    assert t["status"] == "on_site"
    assert [e["action"] for e in t["audit"]] == ["offer", "accept", "arrive"]
    a = alert(r, aid)
    assert [e["action"] for e in a["audit"]] == ["raise", "ack", "dispatch"]
    r.close()


def test_two_acknowledgements_at_once_one_wins_the_other_is_told_who(workers: Workers) -> None:
    s = workers.settings
    (here,) = places(1)
    workers.start()
    aid = _raise_loiter(workers, here, camera="cam-t-0401")
    procs = {actor: subprocess.Popen(cli_argv("alert", "ack", aid, "--actor", actor),
                                     env=workers.env(), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
             for actor in ("officer-a", "officer-b")}
    results = {actor: (p.wait(120), p.stderr.read() if p.stderr else "")
               for actor, p in procs.items()}
    winners = [actor for actor, (code, _) in results.items() if code == 0]
    losers = [actor for actor, (code, _) in results.items() if code == 1]
    assert len(winners) == 1 and len(losers) == 1, results
    winner, loser = winners[0], losers[0]
    reason = results[loser][1]
    assert f"alert {aid} is already acknowledged by officer {winner} at " in reason

    r = store.connect(s.redis)
    a = alert(r, aid)
    acks = [e for e in a["audit"] if e["action"] == "ack"]
    assert [(e["actor"], e["role"]) for e in acks] == [(winner, "duty_officer")]
    assert a["status"] == "acknowledged"
    r.close()


def test_reject_returns_the_alert_to_the_officer_and_resolve_cancels_a_task(workers: Workers) -> None:
    s = workers.settings
    (here,) = places(1)
    worker = here.workers[0]
    grids = ("--grids", here.grid)
    workers.start()
    aid = _raise_loiter(workers, here, camera="cam-t-0501")
    r = store.connect(s.redis)
    ok(workers, "alert", "ack", aid, "--actor", "wang")
    ok(workers, "alert", "dispatch", aid, "--actor", "wang", "--note", "go")
    first = f"tk-{aid}-1"
    reason = refused(workers, "task", "reject", first, "--actor", worker, *grids)
    assert reason == f"task {first}: reject needs a reason"
    ok(workers, "task", "accept", first, "--actor", worker, *grids)
    ok(workers, "task", "reject", first, "--actor", worker, *grids, "--note", "road closed")

    a, t = alert(r, aid), task(r, first)
    assert t["status"] == "rejected"
    assert a["status"] == "acknowledged"  # back to the officer
    assert trail(a)[-1] == ("task_rejected", "dispatched", "acknowledged", "system", "system")
    assert a["audit"][-1]["note"] == f"task {first} rejected by {worker}: road closed"
    assert r.zscore(keys.tasks_open(here.grid), first) is None

    # Dispatched again: a second task; the officer then resolves it without it.
    ok(workers, "alert", "dispatch", aid, "--actor", "wang", "--note", "try again")
    second = f"tk-{aid}-2"
    assert alert(r, aid)["task_id"] == second
    assert task(r, second)["status"] == "offered"
    assert r.zscore(keys.tasks_open(here.grid), second) is not None
    ok(workers, "alert", "resolve", aid, "--actor", "wang", "--note", "handled by phone")
    a, t2 = alert(r, aid), task(r, second)
    assert a["status"] == "resolved"
    assert t2["status"] == "cancelled"
    assert trail(t2)[-1] == ("cancel", "offered", "cancelled", "wang", "duty_officer")
    assert t2["audit"][-1]["note"] == "handled by phone"
    assert r.zscore(keys.tasks_open(here.grid), second) is None
    ok(workers, "alert", "close", aid, "--actor", "wang")
    assert [e["action"] for e in alert(r, aid)["audit"]] == [
        "raise", "ack", "dispatch", "task_rejected", "dispatch", "resolve", "close"]
    listed = ok(workers, "tasks", "--worker", worker, "--json").json()
    assert sorted((x["id"], x["status"]) for x in listed) == [
        (first, "rejected"), (second, "cancelled")]
    r.close()


def test_dismiss_needs_a_reason_and_resolve_without_a_task(workers: Workers) -> None:
    s = workers.settings
    (here,) = places(1)
    workers.start()
    dismissed = _raise_loiter(workers, here, camera="cam-t-0601")
    phoned = _raise_loiter(workers, here, camera="cam-t-0602")
    r = store.connect(s.redis)

    reason = refused(workers, "alert", "dismiss", dismissed, "--actor", "wang")
    assert reason == f"alert {dismissed}: dismiss needs a note saying why"
    reason = refused(workers, "alert", "dismiss", dismissed, "--actor", "wang", "--note", "   ")
    assert reason == f"alert {dismissed}: dismiss needs a note saying why"
    assert alert(r, dismissed)["status"] == "new"
    ok(workers, "alert", "dismiss", dismissed, "--actor", "wang", "--note", "queue for a sale")
    a = alert(r, dismissed)
    assert a["status"] == "dismissed"
    assert trail(a)[-1] == ("dismiss", "new", "dismissed", "wang", "duty_officer")
    assert a["audit"][-1]["note"] == "queue for a sale"
    assert not r.exists(keys.deadline(dismissed))  # nothing left to escalate
    reason = refused(workers, "alert", "close", dismissed, "--actor", "wang")
    assert reason.startswith(f"cannot close a dismissed alert (alert {dismissed} was dismissed "
                             "by officer wang at ")

    ok(workers, "alert", "ack", phoned, "--actor", "zhao")
    ok(workers, "alert", "handover", phoned, "--actor", "zhao", "--note", "night shift: watch it")
    ok(workers, "alert", "resolve", phoned, "--actor", "zhao", "--note", "called the shop")
    ok(workers, "alert", "close", phoned, "--actor", "zhao")
    b = alert(r, phoned)
    assert [e["action"] for e in b["audit"]] == ["raise", "ack", "resolve", "close"]
    assert b["task_id"] is None
    assert [(h["actor"], h["note"]) for h in b["handover"]] == [("zhao", "night shift: watch it")]
    open_ids = {x["id"] for x in ok(workers, "alerts", "--status", "open", "--json").json()}
    assert dismissed not in open_ids and phoned not in open_ids
    r.close()


def test_alerts_and_tasks_queries_as_json(timerless: Workers) -> None:
    # Timers off: the old alert is hours behind the feed and would escalate at once.
    workers = timerless
    s = workers.settings
    here, other = places(2)
    feed = Feed(s)
    old = feed.loiter(here, camera="cam-t-0701", zone="pharmacy:old", people=5, dwell_s=400,
                      ts=T0 - 7 * 3600)
    fresh = feed.loiter(here, camera="cam-t-0702", zone="pharmacy:new", people=5, dwell_s=400,
                        ts=T0 + 60)
    gone = feed.loiter(here, camera="cam-t-0703", zone="pharmacy:gone", people=5, dwell_s=400,
                       ts=T0 + 70)
    red = feed.scan(here, color="red", ts=T0 + 80, checkpoint="cp-t-0701")
    feed.loiter(other, camera="cam-t-0704", zone="pharmacy:far", people=5, dwell_s=400,
                ts=T0 + 90)
    feed.close()
    workers.start()
    r = store.connect(s.redis)
    wait_applied(r, feed)
    fresh_id = loiter_alert_id("cam-t-0702", "pharmacy:new", fresh)
    gone_id = loiter_alert_id("cam-t-0703", "pharmacy:gone", gone)
    red_id = rule_alert_id("red_code", red)
    ok(workers, "alert", "dismiss", gone_id, "--actor", "wang", "--note", "test pattern")
    ok(workers, "alert", "ack", fresh_id, "--actor", "wang")
    ok(workers, "alert", "dispatch", fresh_id, "--actor", "wang")

    rows = ok(workers, "alerts", "--status", "open", "--grid", here.grid, "--since", "6h",
              "--json").json()
    assert isinstance(rows, list)
    assert [x["id"] for x in rows] == [red_id, fresh_id]  # newest first; old and gone left out
    by_id = {x["id"]: x for x in rows}
    assert by_id[fresh_id]["source_ids"]["camera_id"] == "cam-t-0702"
    assert by_id[fresh_id]["source_ids"]["event_id"] == fresh
    assert by_id[red_id]["source_ids"]["checkpoint_id"] == "cp-t-0701"
    assert {x["grid_id"] for x in rows} == {here.grid}
    assert by_id[fresh_id]["status"] == "dispatched"

    everything = ok(workers, "alerts", "--grid", here.grid, "--json").json()
    old_id = loiter_alert_id("cam-t-0701", "pharmacy:old", old)
    assert {x["id"] for x in everything} == {red_id, fresh_id, gone_id, old_id}
    assert ok(workers, "alerts", "--status", "dismissed", "--json").json()[0]["id"] == gone_id

    worker = here.workers[0]
    mine = ok(workers, "tasks", "--worker", worker, "--json").json()
    assert [(t["id"], t["alert_id"], t["grid_id"], t["status"]) for t in mine] == [
        (f"tk-{fresh_id}-1", fresh_id, here.grid, "offered")]
    assert ok(workers, "tasks", "--worker", other.workers[0], "--json").json() == []
    bad = gw(workers, "alerts", "--since", "soon", "--json")
    assert bad.code != 0 and "expected a span like 30m, 6h or 14d" in bad.err
    r.close()


# ---- replay -----------------------------------------------------------------------------


def end_offsets(s: settings_mod.Settings, topic_names: list[str]) -> dict[str, int]:
    """``topic:partition`` -> the offset of the last record, for non-empty partitions."""
    consumer = clients.offsets_consumer(s)
    try:
        parts = [TopicPartition(t, p) for t in topic_names for p in range(s.partitions)]
        ends = consumer.end_offsets(parts)
    finally:
        consumer.close()
    return {keys.partition_field(tp.topic, tp.partition): end - 1
            for tp, end in ends.items() if end > 0}


def all_applied(r: redis.Redis, ends: dict[str, int]) -> bool:
    stored = r.hgetall(keys.OFFSETS)
    return all(int(stored.get(f, -1)) >= last for f, last in ends.items())


@dataclass
class Snapshot:
    """What a run left in Redis: alert and task records by id, command outcomes by
    command id, and the number of input events applied."""

    alerts: dict[str, Any]
    tasks: dict[str, Any]
    outcomes: dict[str, Any]
    applied: int


def snapshot(r: redis.Redis) -> Snapshot:
    def by_id(pattern: str) -> dict[str, Any]:
        start = pattern[:-1]  # the key of id "": what every id follows
        return {k[len(start):]: orjson.loads(v) for k in r.scan_iter(pattern, count=1000)
                if (v := r.get(k)) is not None}

    sm = store.summary(r)
    return Snapshot(by_id(keys.alert("*")), by_id(keys.task("*")), by_id(keys.cmdresult("*")),
                    sm["checkpoint_scans"] + sm["loiter_reports"] + sm["station_tickets"])


def comparable(record: dict[str, Any]) -> dict[str, Any]:
    """A record without wall-clock-dependent fields. With the timers off and every
    command carrying its own time, no field depends on when a run happened, so this is
    the record itself: the replay must reproduce every field."""
    return record


def replay(s: settings_mod.Settings, tmp_path: Path, r: redis.Redis,
           ends: dict[str, int]) -> Snapshot:
    """Empty Redis, then apply the same topics from the start in a new consumer group."""
    r.flushdb()
    again = TimerlessWorkers(s.with_(group=f"gridwatch-replay-{uuid.uuid4().hex[:8]}"),
                             tmp_path)
    try:
        again.start()
        wait_until(lambda: all_applied(r, ends), timeout=APPLY_TIMEOUT * 2,
                   what="the replay to apply every record of the topics")
        return snapshot(r)
    finally:
        again.stop_all()


def simulated(feed: Feed, n: int) -> None:
    """``n`` events of a simulated city day that ends before ``T0``."""
    start = datetime.fromtimestamp(T0, CST).replace(hour=0) - timedelta(days=1)
    sim = Simulator(load_city(settings_mod.Settings().city), seed=21, start=start,
                    profile=CityDay(scans=40_000, loiter_reports=4_000))
    for i, (_, topic, event) in enumerate(sim.stream(days=1.0)):
        if i >= n:
            break
        feed.send(topic.name, event)


def assert_no_duplicates(alerts: dict[str, Any]) -> None:
    """One alert per triggering event, and no two loiter alerts of one camera and zone
    whose reports lie within the re-arm time of each other (those must fold)."""
    firsts = [a["source_ids"].get("event_id") for a in alerts.values()
              if a["kind"] != "cross_grid"]
    assert len(firsts) == len(set(firsts))
    spans: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for a in alerts.values():
        if a["kind"] == "loiter":
            spans.setdefault((a["source_ids"]["camera_id"], a["source_ids"]["zone"]), []).append(
                (a["details"]["first_seen"], a["details"]["last_seen"]))
    for key, runs in spans.items():
        runs.sort()
        for (_, last), (start, _) in itertools.pairwise(runs):
            assert start - last > 600, (key, runs)


def assert_same(before: Snapshot, after: Snapshot) -> None:
    assert after.applied == before.applied
    assert set(after.alerts) == set(before.alerts)
    assert set(after.tasks) == set(before.tasks)
    for alert_id, record in before.alerts.items():
        assert comparable(after.alerts[alert_id]) == comparable(record), alert_id
    for task_id, record in before.tasks.items():
        assert comparable(after.tasks[task_id]) == comparable(record), task_id
    assert_no_duplicates(after.alerts)


def test_replay_of_the_input_topics_gives_the_same_alerts(timerless: TimerlessWorkers) -> None:
    s = timerless.settings
    here, _ = places(2)
    feed = Feed(s)
    simulated(feed, 12_000)
    crowd = feed.loiter(here, camera="cam-t-0801", zone="pharmacy:r", people=7, dwell_s=500,
                        ts=T0 + 60)
    feed.loiter(here, camera="cam-t-0801", zone="pharmacy:r", people=9, dwell_s=560,
                ts=T0 + 120)
    feed.close()
    timerless.start()
    r = store.connect(s.redis)
    wait_applied(r, feed)
    ends = end_offsets(s, list(INPUT_BY_NAME))
    assert all_applied(r, ends)
    before = snapshot(r)
    timerless.stop_all()
    assert len(before.alerts) > 20, "the simulated traffic should raise a good many alerts"
    crowd_id = loiter_alert_id("cam-t-0801", "pharmacy:r", crowd)
    assert before.alerts[crowd_id]["details"]["reports"] == 2
    assert_no_duplicates(before.alerts)

    after = replay(s, timerless.logdir, r, ends)
    assert_same(before, after)
    r.close()


def test_replay_with_the_command_log_gives_the_same_alerts_and_tasks(
        timerless: TimerlessWorkers) -> None:
    s = timerless.settings
    here, other = places(2)
    feed = Feed(s)
    simulated(feed, 12_000)
    crowd = feed.loiter(here, camera="cam-t-0801", zone="pharmacy:r", people=7, dwell_s=500,
                        ts=T0 + 60)
    red = feed.scan(here, color="red", ts=T0 + 90, checkpoint="cp-t-0801")
    far = feed.scan(other, color="red", ts=T0 + 95, checkpoint="cp-t-0802")
    feed.close()
    first = timerless
    first.start()
    r = store.connect(s.redis)
    wait_applied(r, feed)
    crowd_id = loiter_alert_id("cam-t-0801", "pharmacy:r", crowd)
    red_id, far_id = rule_alert_id("red_code", red), rule_alert_id("red_code", far)
    worker, grids = here.workers[0], ("--grids", here.grid)
    ok(first, "alert", "ack", crowd_id, "--actor", "wang")
    ok(first, "alert", "dispatch", crowd_id, "--actor", "wang", "--note", "go")
    ok(first, "task", "accept", f"tk-{crowd_id}-1", "--actor", worker, *grids)
    ok(first, "task", "arrive", f"tk-{crowd_id}-1", "--actor", worker, *grids)
    ok(first, "task", "done", f"tk-{crowd_id}-1", "--actor", worker, *grids, "--note", "ok")
    ok(first, "alert", "ack", red_id, "--actor", "li")
    ok(first, "alert", "dispatch", red_id, "--actor", "li")
    ok(first, "task", "reject", f"tk-{red_id}-1", "--actor", worker, *grids, "--note", "no")
    ok(first, "alert", "dismiss", far_id, "--actor", "li", "--note", "test card")
    refused(first, "alert", "close", far_id, "--actor", "li")
    ends = end_offsets(s, [*INPUT_BY_NAME, COMMANDS])
    assert all_applied(r, ends)
    before = snapshot(r)
    first.stop_all()
    assert set(before.tasks) == {f"tk-{crowd_id}-1", f"tk-{red_id}-1"}
    assert len(before.outcomes) == 10
    assert sum(1 for o in before.outcomes.values() if o["ok"]) == 9

    after = replay(s, first.logdir, r, ends)
    # Every command must have the same outcome as the first time (a command applied
    # before the alert it names exists would be refused with "no alert ...").
    def verdicts(snap: Snapshot) -> dict[str, tuple[bool, str | None]]:
        return {cid: (o["ok"], o.get("reason")) for cid, o in snap.outcomes.items()}

    assert verdicts(after) == verdicts(before)
    assert_same(before, after)
    assert after.alerts[crowd_id]["status"] == "resolved"
    assert after.alerts[red_id]["status"] == "acknowledged"
    assert after.alerts[far_id]["status"] == "dismissed"
    r.close()
