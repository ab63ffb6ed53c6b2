"""Escalation survives a stopped worker: every overdue level fires once on restart.

Escalations follow the feed's event time (the newest watermark). Alerts are raised
with event times, the workers are stopped, the feed moves on by half an hour of events
while nobody is running, and the workers start again: each level that fell due while
they were away must fire exactly once (one ``escalate`` audit entry in the alert it is
about, whose ``escalation_level`` goes up; no separate alert), and the levels not yet
due must not fire. Acknowledging an alert stops its chain.

Ack intervals: high 5 min, medium 15 min; a task not accepted: 10 min; at most 3 levels.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from typing import Any

import orjson
import pytest
import redis
from gridwatch.agents.loiter import loiter_alert_id
from gridwatch.agents.rules import alert_id as rule_alert_id

from gridwatch import keys, store

from .conftest import Workers, wait_until
from .test_alerts_e2e import (
    APPLY_TIMEOUT,
    T0,
    Feed,
    Place,
    alert,
    ok,
    places,
    wait_alert,
    wait_applied,
)

pytestmark = pytest.mark.integration

HIGH_S, MEDIUM_S, ACCEPT_S = 300.0, 900.0, 600.0
TICKER = ("cam-t-tick", "market:tick")  # reports below the threshold: they only move time


def tick(feed: Feed, place: Place, start: float, end: float) -> None:
    """Move the feed's clock from ``start`` to ``end`` with a report every minute (a
    steady source, so it never looks silent)."""
    ts = start
    while ts <= end:
        feed.loiter(place, camera=TICKER[0], zone=TICKER[1], people=1, dwell_s=10, ts=ts)
        ts += 60.0


def separate_escalations(r: redis.Redis) -> set[str]:
    """Ids of separate escalation alerts in Redis (there must be none)."""
    return {i for i in r.zrange(keys.ALERTS_ALL, 0, -1) if i.startswith("es-")}


def announced(r: redis.Redis) -> Counter[str]:
    """How many times each alert id was announced on the cockpit's alert channel."""
    seen: Counter[str] = Counter()
    for _, fields in r.xrange(keys.CHAN_ALERTS):
        message: dict[str, Any] = orjson.loads(fields["d"])
        if message.get("type") == "alert":
            seen[message["alert"]["id"]] += 1
    return seen


def escalate_notes(record: dict[str, Any]) -> list[tuple[float, str]]:
    """The time and note of an alert's ``escalate`` audit entries, in order."""
    return [(e["ts"], e["note"]) for e in record["audit"] if e["action"] == "escalate"]


def ack_notes(start: float, every_s: float, levels: tuple[int, ...]) -> list[tuple[float, str]]:
    return [(start + k * every_s, f"Not acknowledged for {round(k * every_s / 60)} min (level {k})")
            for k in levels]


def stop(workers: Workers, how: str) -> None:
    for proc in workers.procs:
        if proc.poll() is None:
            if how == "kill9":
                workers.kill9(proc)
            else:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(30)
    assert all(p.poll() is not None for p in workers.procs)


@pytest.mark.parametrize(("how", "n_workers"), [("kill9", 1), ("term", 2)])
def test_overdue_escalations_fire_once_after_restart(workers: Workers, how: str,
                                                     n_workers: int) -> None:
    s = workers.settings
    (here,) = places(1)
    feed = Feed(s)
    # A: high (12 people at a pharmacy), never acknowledged: levels at +5, +10, +15 min.
    a_ev = feed.loiter(here, camera="cam-t-e01", zone="pharmacy:e01", people=12, dwell_s=200,
                       ts=T0 + 10)
    # M: medium, never acknowledged while stopped: levels at +15, +30 (+45 not yet).
    m_ev = feed.loiter(here, camera="cam-t-e02", zone="pharmacy:e02", people=4, dwell_s=200,
                       ts=T0 + 20)
    # B: a high red-code alert acknowledged before the stop: nothing may fire.
    b_ev = feed.scan(here, color="red", ts=T0 + 30, checkpoint="cp-t-e03")
    # D: acknowledged and dispatched, its task never accepted: accept levels +10, +20, +30.
    d_ev = feed.loiter(here, camera="cam-t-e04", zone="pharmacy:e04", people=12, dwell_s=200,
                       ts=T0 + 40)
    tick(feed, here, T0 + 40, T0 + 60)
    feed.flush()
    a_id = loiter_alert_id("cam-t-e01", "pharmacy:e01", a_ev)
    m_id = loiter_alert_id("cam-t-e02", "pharmacy:e02", m_ev)
    b_id = rule_alert_id("red_code", b_ev)
    d_id = loiter_alert_id("cam-t-e04", "pharmacy:e04", d_ev)
    d_task = f"tk-{d_id}-1"

    for _ in range(n_workers):
        workers.start()
    r = store.connect(s.redis)
    wait_applied(r, feed)
    for aid in (a_id, m_id, b_id, d_id):
        assert r.zscore(keys.DEADLINES, aid) is not None, aid
    assert alert(r, a_id)["severity"] == "high" and alert(r, m_id)["severity"] == "medium"
    assert r.zscore(keys.DEADLINES, a_id) == T0 + 10 + HIGH_S
    assert r.zscore(keys.DEADLINES, m_id) == T0 + 20 + MEDIUM_S

    ok(workers, "alert", "ack", b_id, "--actor", "wang", "--at", str(T0 + 45))
    ok(workers, "alert", "ack", d_id, "--actor", "wang", "--at", str(T0 + 50))
    ok(workers, "alert", "dispatch", d_id, "--actor", "wang", "--at", str(T0 + 60))
    assert r.zscore(keys.DEADLINES, b_id) is None and not r.exists(keys.deadline(b_id))
    assert r.zscore(keys.DEADLINES, d_id) == T0 + 60 + ACCEPT_S
    # The feed is at T0+60: nothing is due yet.
    assert all(alert(r, i)["escalation_level"] == 0 for i in (a_id, m_id, b_id, d_id))

    stop(workers, how)
    # While nobody runs, the feed moves on by half an hour.
    tick(feed, here, T0 + 120, T0 + 1900)
    feed.flush()
    for _ in range(n_workers):
        workers.start()

    expected = {
        a_id: ack_notes(T0 + 10, HIGH_S, (1, 2, 3)),
        m_id: ack_notes(T0 + 20, MEDIUM_S, (1, 2)),
        d_id: [(T0 + 60 + k * ACCEPT_S,
                f"Task {d_task} not accepted for {round(k * ACCEPT_S / 60)} min (level {k})")
               for k in (1, 2, 3)],
    }

    def fired() -> bool:
        return (all(len(escalate_notes(alert(r, i))) >= len(n) for i, n in expected.items())
                and r.zscore(keys.DEADLINES, a_id) is None
                and r.zscore(keys.DEADLINES, d_id) is None
                and r.zscore(keys.DEADLINES, m_id) == T0 + 20 + 3 * MEDIUM_S)

    wait_until(fired, timeout=APPLY_TIMEOUT, what="the overdue escalations after the restart")
    wait_applied(r, feed)
    assert separate_escalations(r) == set()  # no new alert ids: the alerts themselves rose
    seen = announced(r)
    a, m, b, d = (alert(r, i) for i in (a_id, m_id, b_id, d_id))
    for record in (a, m, d):
        assert escalate_notes(record) == expected[record["id"]]  # each level exactly once
        assert record["escalated_at"] == expected[record["id"]][-1][0]  # when it fell due
        assert record["escalation_level"] == len(expected[record["id"]])
        assert all(e["actor"] == "system" for e in record["audit"] if e["action"] == "escalate")
        assert seen[record["id"]] >= 2  # raised, then announced again when escalated
    assert a["status"] == "new" and a["severity"] == "high" and a["grid_id"] == here.grid
    assert m["status"] == "new" and m["severity"] == "medium"
    assert escalate_notes(b) == [] and b["escalation_level"] == 0
    assert b["escalated_at"] is None
    assert d["status"] == "dispatched"

    # Acknowledging M stops its chain: level 3 (due at +45 min) never fires. N, a new
    # high alert whose first level falls due after M's would have, shows when the
    # timers have passed that point.
    ok(workers, "alert", "ack", m_id, "--actor", "zhao")
    assert r.zscore(keys.DEADLINES, m_id) is None and not r.exists(keys.deadline(m_id))
    n_ev = feed.loiter(here, camera="cam-t-e05", zone="pharmacy:e05", people=12, dwell_s=200,
                       ts=T0 + 2430)
    n_id = loiter_alert_id("cam-t-e05", "pharmacy:e05", n_ev)
    tick(feed, here, T0 + 1960, T0 + 2800)
    feed.flush()
    wait_alert(r, n_id)
    wait_until(lambda: alert(r, n_id)["escalation_level"] == 1, timeout=APPLY_TIMEOUT,
               what="the first escalation of the sentinel alert")
    assert escalate_notes(alert(r, n_id)) == ack_notes(T0 + 2430, HIGH_S, (1,))
    assert escalate_notes(alert(r, m_id)) == expected[m_id]  # level 3 never fired
    assert alert(r, m_id)["status"] == "acknowledged"
    assert alert(r, m_id)["escalation_level"] == 2
    assert separate_escalations(r) == set()
    feed.close()
    r.close()
