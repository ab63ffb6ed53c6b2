"""The demo's simulated duty desk and field crew: what it does, and when."""

from __future__ import annotations

from typing import Any

import orjson
from gridwatch.agents.commands import decode_command

from gridwatch import crew as crew_mod

T0 = 1_790_000_000.0
CITY = {"workers": [{"id": "w-you", "grids": ["G0001", "G0002"]},
                    {"id": "w2", "grids": ["G0003"]}, {"id": "w3", "grids": ["G0003", "G0004"]}]}


def alert(aid: str, status: str = "new", kind: str = "red_code", severity: str = "high",
          grid: str | None = "G0003", updated: float = T0, task_id: str | None = None) -> dict[str, Any]:
    return {"id": aid, "kind": kind, "severity": severity, "status": status, "grid_id": grid,
            "ts_raised": T0, "ts_updated": updated, "task_id": task_id}


def task(tid: str, status: str = "offered", assignee: str | None = None,
         workers: tuple[str, ...] = ("w2", "w3"), updated: float = T0) -> dict[str, Any]:
    return {"id": tid, "alert_id": tid[3:-2], "grid_id": "G0003", "workers": list(workers),
            "status": status, "assignee": assignee, "ts_created": T0, "ts_updated": updated}


def on_time_id(crew: crew_mod.Crew, severity: str = "high") -> str:
    """An alert id the desk acknowledges on time (most are)."""
    return next(f"al-{i}" for i in range(100)
                if crew._ack_wait(alert(f"al-{i}", severity=severity)) < crew_mod.ESCALATION.ack_s[severity])


def test_the_desk_acknowledges_after_a_few_minutes_once() -> None:
    crew = crew_mod.from_city(CITY, leave_worker="w-you")
    a = alert(on_time_id(crew))
    assert crew.plan([a], {}, T0 + 30, wall=0.0) == []  # nobody acts within seconds
    [cmd] = crew.plan([a], {}, T0 + 300, wall=1.0)
    assert (cmd["target"], cmd["id"], cmd["action"], cmd["actor"], cmd["role"]) == (
        "alert", a["id"], "ack", "desk-sim", "duty_officer")
    # The worker's own decoder takes it (the command log's contract).
    decoded = decode_command(orjson.dumps(cmd))
    assert decoded.action == "ack" and decoded.actor == "desk-sim"
    # Sent once; again only if the alert is still new well after (a lost command).
    assert crew.plan([a], {}, T0 + 301, wall=2.0) == []
    assert [c["action"] for c in crew.plan([a], {}, T0 + 400, wall=40.0)] == ["ack"]


def test_about_one_in_ten_alerts_is_acknowledged_late_so_escalations_still_happen() -> None:
    crew = crew_mod.from_city(CITY, leave_worker="w-you")
    for severity, (lo, hi) in crew_mod.ACK_S.items():
        waits = [crew._ack_wait(alert(f"al-{i}", severity=severity)) for i in range(2000)]
        late = [w for w in waits if w > crew_mod.ESCALATION.ack_s[severity]]
        assert 0.07 < len(late) / len(waits) < 0.13
        assert all(lo <= w < hi for w in waits if w <= crew_mod.ESCALATION.ack_s[severity])


def test_the_grids_of_the_demos_own_worker_are_left_to_people() -> None:
    crew = crew_mod.from_city(CITY, leave_worker="w-you")
    assert crew.leave == frozenset({"G0001", "G0002"}) and "w-you" not in crew.workers
    mine = alert("al-x", grid="G0001")
    assert crew.plan([mine], {}, T0 + 10_000, wall=0.0) == []


def test_visits_are_dispatched_the_rest_resolved_and_resolved_alerts_closed() -> None:
    crew = crew_mod.from_city(CITY, leave_worker="w-you")
    later = T0 + 2000
    cmds = crew.plan([alert("al-r", "acknowledged", "red_code"),
                      alert("al-s", "acknowledged", "stale_test", "low"),
                      alert("al-st", "acknowledged", "station_high_risk", grid=None),
                      alert("al-d", "resolved", "loiter")], {}, later, wall=0.0)
    got = {c["id"]: (c["action"], c["note"]) for c in cmds}
    assert got["al-r"] == ("dispatch", "please check on the spot")
    assert got["al-s"][0] == "resolve" and "test" in got["al-s"][1]
    assert got["al-st"][0] == "resolve"  # a station alert has no grid workers to send
    assert got["al-d"] == ("close", "loop closed")
    assert all(c["role"] == "duty_officer" for c in cmds)


def test_grid_workers_accept_arrive_and_finish_their_tasks() -> None:
    crew = crew_mod.from_city(CITY, leave_worker="w-you")
    a = alert("al-r", "dispatched", task_id="tk-al-r-1")
    later = T0 + 5000
    [accept] = crew.plan([a], {"tk-al-r-1": task("tk-al-r-1", workers=("w-you", "w3"))},
                         later, wall=0.0)
    # The first offered worker the crew plays, with that worker's grids.
    assert (accept["target"], accept["action"], accept["actor"], accept["role"],
            accept["grids"]) == ("task", "accept", "w3", "grid_worker", ["G0003", "G0004"])
    [arrive] = crew.plan([a], {"tk-al-r-1": task("tk-al-r-1", "accepted", "w2")}, later, wall=0.0)
    assert (arrive["action"], arrive["actor"]) == ("arrive", "w2")
    [done] = crew.plan([a], {"tk-al-r-1": task("tk-al-r-1", "on_site", "w2")}, later, wall=0.0)
    assert (done["action"], done["note"]) == ("done", "person escorted to the testing point")
    # A task offered only to the demo's own worker waits for that person's phone.
    assert crew.plan([a], {"tk-al-r-1": task("tk-al-r-1", workers=("w-you",))}, later,
                     wall=0.0) == []


def test_a_slow_worker_accepts_only_after_the_accept_deadline() -> None:
    crew = crew_mod.from_city(CITY, leave_worker="w-you", slow=["w3", "w-you"])
    assert crew.slow == frozenset({"w3"})  # the demo's own worker is the user, never slow
    deadline = crew_mod.ESCALATION.accept_s
    a = alert("al-r", "dispatched", task_id="tk-al-r-1")
    offered = {"tk-al-r-1": task("tk-al-r-1", workers=("w3",))}
    assert crew.plan([a], offered, T0 + deadline, wall=0.0) == []  # the accept escalation fires
    [accept] = crew.plan([a], offered, T0 + 2.5 * deadline, wall=0.0)
    assert (accept["action"], accept["actor"]) == ("accept", "w3")
    # The others still accept within minutes, and a slow worker is slow to accept only.
    prompt = crew_mod.from_city(CITY, leave_worker="w-you")
    assert [c["actor"] for c in prompt.plan([a], offered, T0 + 400, wall=0.0)] == ["w3"]
    [arrive] = crew.plan([a], {"tk-al-r-1": task("tk-al-r-1", "accepted", "w3")},
                         T0 + 1200, wall=0.0)
    assert arrive["action"] == "arrive"


def test_the_demo_takes_the_crew_by_default_and_leaves_it_out_when_told() -> None:
    from gridwatch.cli import build_parser

    assert build_parser().parse_args(["demo"]).crew is True
    assert build_parser().parse_args(["demo", "--no-crew"]).crew is False
