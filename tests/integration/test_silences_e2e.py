"""Silences and shelving against real Kafka, Redis and a worker, through the CLI.

An alert raised under a silence is stored as ``silenced``, audited and not escalated;
ending the silence (by ``gridwatch silence end`` or by its time running out, in event
time) makes it new again, and its acknowledgement escalation starts then. A shelved
alert is not escalated until its shelf time ends.
"""

from __future__ import annotations

import pytest

from gridwatch import keys, store

from .conftest import Workers, wait_until
from .test_alerts_e2e import APPLY_TIMEOUT, T0, Feed, alert, gw, ok, places, refused, wait_alert
from .test_escalation_restart import tick

pytestmark = pytest.mark.integration

HIGH_S = 300.0
MIN = 60.0


def test_a_silence_holds_alerts_until_it_ends_and_shelving_stops_escalation(
        workers: Workers) -> None:
    s = workers.settings
    here, there = places(2)
    workers.start()
    r = store.connect(s.redis)

    # Bad silences are refused with the reason, before or by the worker.
    bad = gw(workers, "silence", "add", "--grid", here.grid, "--for", "25h", "--reason", "x",
             "--actor", "wang")
    assert bad.code == 2 and "at most 24 h" in bad.err
    assert "unknown grid 'G-nowhere'" in refused(
        workers, "silence", "add", "--grid", "G-nowhere", "--for", "1h", "--reason", "x",
        "--actor", "wang", "--at", str(T0))
    assert "--reason" in gw(workers, "silence", "add", "--grid", here.grid, "--for", "1h",
                            "--actor", "wang").err
    assert "only a duty officer or admin may set a silence, not grid_worker li" in refused(
        workers, "silence", "add", "--grid", here.grid, "--for", "1h", "--reason", "x",
        "--actor", "li", "--role", "grid_worker", "--at", str(T0))

    added = ok(workers, "silence", "add", "--grid", here.grid, "--for", "1h", "--reason",
               "camera maintenance", "--actor", "wang", "--at", str(T0), "--json").json()
    assert added["ok"], added
    sid = added["silence"]["id"]
    assert r.zscore(keys.SILENCE_ENDS, sid) == T0 + 3600

    feed = Feed(s)
    held_ev = feed.loiter(here, camera="cam-t-s01", zone="pharmacy:s01", people=12,
                          dwell_s=200, ts=T0 + MIN)
    free_ev = feed.loiter(there, camera="cam-t-s02", zone="pharmacy:s02", people=12,
                          dwell_s=200, ts=T0 + MIN)
    tick(feed, there, T0 + MIN, T0 + 12 * MIN)
    feed.flush()
    from gridwatch.agents.loiter import loiter_alert_id

    held_id = loiter_alert_id("cam-t-s01", "pharmacy:s01", held_ev)
    free_id = loiter_alert_id("cam-t-s02", "pharmacy:s02", free_ev)
    wait_alert(r, held_id)
    wait_until(lambda: alert(r, free_id)["escalation_level"] >= 1, timeout=APPLY_TIMEOUT,
               what="the alert outside the silence escalates")
    held = alert(r, held_id)
    assert held["status"] == "silenced" and held["silence_id"] == sid
    assert held["escalation_level"] == 0 and r.zscore(keys.DEADLINES, held_id) is None
    entry = held["audit"][-1]
    assert (entry["action"], entry["actor"]) == ("silence", "wang")
    assert "camera maintenance" in entry["note"]
    assert r.sismember(keys.silence_alerts(sid), held_id)
    listed = ok(workers, "silence", "list", "--json").json()
    assert [(x["id"], x["held"]) for x in listed] == [(sid, 1)]
    assert "held 1" in ok(workers, "silence", "list").out
    assert "it is silenced" in refused(workers, "alert", "ack", held_id, "--actor", "wang")

    # Shelve the other one for 10 minutes: no escalation meanwhile, back when it ends.
    level = alert(r, free_id)["escalation_level"]
    shelved = ok(workers, "alert", "shelve", free_id, "--actor", "zhao", "--note", "nuisance",
                 "--for", "10m", "--at", str(T0 + 12 * MIN), "--json").json()["alert"]
    assert shelved["status"] == "shelved" and shelved["held_until"] == T0 + 22 * MIN
    assert r.zscore(keys.DEADLINES, free_id) == T0 + 22 * MIN
    too_long = gw(workers, "alert", "shelve", held_id, "--actor", "zhao", "--note", "x",
                  "--for", "9h")
    assert too_long.code == 2 and "at most 8 h" in too_long.err
    assert "only a duty officer or admin" in refused(
        workers, "alert", "unshelve", free_id, "--actor", "li", "--role", "grid_worker")

    # The silence ended early by an officer: the held alert is new again, from then.
    ended = ok(workers, "silence", "end", sid, "--actor", "zhao", "--at",
               str(T0 + 15 * MIN), "--json").json()
    assert ended["ok"] and ended["reopened"] == [held_id]
    back = alert(r, held_id)
    assert back["status"] == "new" and back["silence_id"] is None
    assert (back["audit"][-1]["action"], back["audit"][-1]["actor"]) == ("reopen", "zhao")
    assert r.zscore(keys.DEADLINES, held_id) == T0 + 15 * MIN + HIGH_S
    assert not r.hexists(keys.SILENCES_ACTIVE, sid)
    assert ok(workers, "silence", "list", "--json").json() == []
    assert "ended already by zhao" in refused(workers, "silence", "end", sid, "--actor", "wang")

    # The feed moves on: the shelf time ends, the reopened alert escalates.
    tick(feed, there, T0 + 13 * MIN, T0 + 24 * MIN)
    feed.flush()
    wait_until(lambda: alert(r, free_id)["status"] == "new", timeout=APPLY_TIMEOUT,
               what="the shelved alert back when its shelf time ends")
    wait_until(lambda: alert(r, held_id)["escalation_level"] == 1, timeout=APPLY_TIMEOUT,
               what="the reopened alert escalates 5 min after it reopened")
    free = alert(r, free_id)
    assert free["audit"][-1]["action"] == "unshelve" and free["audit"][-1]["actor"] == "system"
    assert free["escalation_level"] == level  # nothing fired while it was shelved
    assert not [e for e in free["audit"] if e["action"] == "escalate"
                and T0 + 12 * MIN < e["ts"] < T0 + 22 * MIN]
    assert r.zscore(keys.DEADLINES, free_id) == T0 + 22 * MIN + HIGH_S
    assert [e["ts"] for e in alert(r, held_id)["audit"] if e["action"] == "escalate"] == [
        T0 + 15 * MIN + HIGH_S]

    # A silence that runs out by itself, in event time: the system reopens what it held.
    kind = ok(workers, "silence", "add", "--kind", "loiter", "--for", "5m", "--reason",
              "market day", "--actor", "wang", "--at", str(T0 + 25 * MIN), "--json").json()
    ksid = kind["silence"]["id"]
    late_ev = feed.loiter(there, camera="cam-t-s03", zone="pharmacy:s03", people=12,
                          dwell_s=200, ts=T0 + 26 * MIN)
    late_id = loiter_alert_id("cam-t-s03", "pharmacy:s03", late_ev)
    feed.flush()
    assert wait_alert(r, late_id)["status"] == "silenced"
    tick(feed, there, T0 + 25 * MIN, T0 + 32 * MIN)
    feed.flush()
    wait_until(lambda: alert(r, late_id)["status"] == "new", timeout=APPLY_TIMEOUT,
               what="the alert reopened when the silence ran out")
    late = alert(r, late_id)
    assert (late["audit"][-1]["action"], late["audit"][-1]["actor"],
            late["audit"][-1]["ts"]) == ("reopen", "system", T0 + 30 * MIN)
    record = r.get(keys.silence(ksid))
    assert record and '"end_silence"' in record and not r.hexists(keys.SILENCES_ACTIVE, ksid)
    feed.close()
    r.close()
