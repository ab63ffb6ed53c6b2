"""An incident acknowledged at once: one command on the command log, the real worker
acknowledges each of the incident's alerts still new, and each audit trail says so.

Sent through ``gridwatch incident ack`` (the gateway's path is the browser test's,
tests/browser/test_feed.py); the state is read back from Redis.
"""

from __future__ import annotations

import pytest
from gridwatch.agents.decide import incident_id
from gridwatch.agents.loiter import loiter_alert_id
from gridwatch.agents.rules import alert_id as rule_alert_id

from gridwatch import store

from .conftest import Workers
from .test_alerts_e2e import T0, Feed, alert, ok, places, refused, trail, wait_applied

pytestmark = pytest.mark.integration


def test_one_command_acknowledges_every_new_alert_of_an_incident(workers: Workers) -> None:
    s = workers.settings
    here, other = places(2)
    feed = Feed(s)
    red = feed.scan(here, color="red", ts=T0 + 30, checkpoint="cp-i-red")
    crowds = [feed.loiter(here, camera=f"cam-i-{n}", zone=f"pharmacy:{n}", people=6,
                          dwell_s=400, ts=T0 + 60 + n) for n in range(3)]
    alone = feed.scan(other, color="red", ts=T0 + 30, checkpoint="cp-i-other")
    feed.close()
    workers.start()
    r = store.connect(s.redis)
    wait_applied(r, feed)
    incident = incident_id(here.grid, int(T0 // 600))
    members = [rule_alert_id("red_code", red),
               *(loiter_alert_id(f"cam-i-{n}", f"pharmacy:{n}", e) for n, e in enumerate(crowds))]
    assert {alert(r, m)["incident_id"] for m in members} == {incident}

    # One of them acknowledged on its own first, one dismissed: the incident's ack
    # leaves both as they are.
    ok(workers, "alert", "ack", members[0], "--actor", "li")
    ok(workers, "alert", "dismiss", members[1], "--actor", "li", "--note", "camera test")
    # A grid worker may not, whatever their grids.
    reason = refused(workers, "incident", "ack", incident, "--actor", "w9",
                     "--role", "grid_worker", "--grids", here.grid)
    assert "only a duty officer or admin" in reason
    assert {alert(r, m)["status"] for m in members[2:]} == {"new"}

    done = ok(workers, "incident", "ack", incident, "--actor", "wang", "--note", "one crowd",
              "--json").json()
    assert done["ok"] and done["incident"] == incident
    assert sorted(done["acknowledged"]) == sorted(members[2:])
    for m in members[2:]:
        record = alert(r, m)
        assert record["status"] == "acknowledged"
        assert trail(record)[-1] == ("ack", "new", "acknowledged", "wang", "duty_officer")
        assert record["audit"][-1]["note"] == f"incident {incident}: one crowd"
    assert alert(r, members[0])["audit"][-1]["actor"] == "li"  # its own ack stands
    assert alert(r, members[1])["status"] == "dismissed"

    # Twice: nothing left to acknowledge, and said so.
    assert "no alert left to acknowledge" in refused(workers, "incident", "ack", incident,
                                                     "--actor", "wang")
    # One alert of a grid in a window is no incident.
    single = alert(r, rule_alert_id("red_code", alone))["incident_id"]
    assert "fewer than the 3" in refused(workers, "incident", "ack", single, "--actor", "wang")
    assert alert(r, rule_alert_id("red_code", alone))["status"] == "new"
    r.close()
