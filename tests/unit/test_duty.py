"""On duty / off duty: whom a dispatch offers the task to, the alert back with the
officers when no one is on duty, what going off or on duty does to open tasks, and the
duty command in the contract, the gateway's check, the worker's decoding and the CLI."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from gridwatch.agents import duty
from gridwatch.agents import lifecycle as lc
from gridwatch.agents.commands import decode_command
from gridwatch.schemas import commands as contract
from gridwatch.schemas.errors import TransitionRefused
from gridwatch.schemas.events import parse_time
from gridwatch.schemas.records import Alert, Duty, Task
from gridwatch.ws.auth import User
from gridwatch.ws.commands import CommandError, check, parse

from gridwatch.cli import build_parser

T0 = parse_time("2026-11-22T08:00:00+08:00")
OFFICER: dict[str, Any] = {"actor": "wang", "role": "duty_officer"}


def off(worker: str, ts: float = T0) -> Duty:
    return Duty(worker=worker, on=False, ts=ts, actor=worker, role="grid_worker")


def acked() -> Alert:
    alert = lc.raise_alert(id="al-1", kind="loiter", severity="high", grid_id="G1", ts=T0,
                           title="crowd", title_zh="聚集")
    return lc.ack(alert, ts=T0 + 1, **OFFICER)


def dispatched(workers: tuple[str, ...] = ("li", "zhao")) -> tuple[Alert, Task]:
    return lc.dispatch(acked(), workers=workers, ts=T0 + 2, **OFFICER)


def test_a_worker_never_marked_is_on_duty() -> None:
    assert duty.is_on({}, "li")
    assert not duty.is_on({"li": off("li")}, "li")
    assert duty.split(["zhao", "li", "li"], {"li": off("li")}) == (("zhao",), ("li",))


def test_the_task_is_offered_only_to_the_workers_on_duty() -> None:
    on_duty, off_duty = duty.split(["li", "zhao"], {"li": off("li")})
    alert, task = lc.apply("alert", "dispatch", acked(), None, ts=T0 + 2, workers=on_duty,
                           off_duty=off_duty, **OFFICER)
    assert alert.status == "dispatched" and alert.needs_officer is None
    assert task is not None and task.workers == ("zhao",) and task.status == "offered"


def test_with_no_one_on_duty_the_alert_stays_with_the_officers_and_no_task_is_made() -> None:
    on_duty, off_duty = duty.split(["li", "zhao"], {"li": off("li"), "zhao": off("zhao")})
    alert, task = lc.apply("alert", "dispatch", acked(), None, ts=T0 + 2, workers=on_duty,
                           off_duty=off_duty, **OFFICER)
    assert task is None
    assert alert.status == "acknowledged" and alert.task_id is None
    assert "no worker of grid G1 is on duty" in (alert.needs_officer or "")
    assert "li, zhao" in (alert.needs_officer or "")
    last = alert.audit[-1]
    assert (last.action, last.from_state, last.to_state, last.role) == (
        "no_one_on_duty", "acknowledged", "acknowledged", "system")
    assert "officer wang" in last.note
    # the flag survives the JSON round trip, and an older record without it decodes
    assert Alert.from_dict(orjson.loads(orjson.dumps(alert.to_dict()))) == alert
    old = acked().to_dict()
    del old["needs_officer"]
    assert Alert.from_dict(old).needs_officer is None
    # a later dispatch that finds someone on duty clears the flag
    again, task = lc.dispatch(alert, workers=["zhao"], ts=T0 + 60, **OFFICER)
    assert again.status == "dispatched" and again.needs_officer is None
    assert task.id == "tk-al-1-1"  # the unstaffed try made no task and took no number


def test_an_unstaffed_dispatch_is_still_checked_as_a_dispatch() -> None:
    raised = lc.raise_alert(id="al-2", kind="loiter", severity="high", grid_id="G1", ts=T0,
                            title="crowd", title_zh="聚集")
    with pytest.raises(TransitionRefused, match="allowed now: ack"):
        lc.apply("alert", "dispatch", raised, None, ts=T0 + 1, off_duty=["li"], **OFFICER)
    with pytest.raises(TransitionRefused, match="only a duty officer"):
        lc.apply("alert", "dispatch", acked(), None, ts=T0 + 1, off_duty=["li"],
                 actor="li", role="grid_worker")


def test_going_off_duty_re_offers_an_offered_task_to_the_others_on_duty() -> None:
    alert, task = dispatched()
    new_task, new_alert = duty.reoffer(task, alert, "li", False, ["zhao"], T0 + 10)
    assert new_alert == alert
    assert new_task.workers == ("zhao",) and new_task.status == "offered"
    entry = new_task.audit[-1]
    assert (entry.action, entry.role, entry.ts) == ("reoffer", "system", T0 + 10)
    assert "li went off duty" in entry.note


def test_going_off_duty_with_no_one_else_on_duty_sends_the_alert_back() -> None:
    alert, task = dispatched(("li",))
    new_task, new_alert = duty.reoffer(task, alert, "li", False, [], T0 + 10)
    assert new_task.status == "cancelled" and new_task.audit[-1].role == "system"
    assert new_alert is not None and new_alert.status == "acknowledged"
    assert new_alert.needs_officer and "back with the officers" in new_alert.needs_officer
    assert new_alert.audit[-1].action == "no_one_on_duty"


def test_an_accepted_task_stays_with_the_worker_who_goes_off_duty() -> None:
    alert, task = dispatched()
    task = lc.accept(task, actor="li", role="grid_worker", grids={"G1"}, ts=T0 + 5)
    assert duty.reoffer(task, alert, "li", False, ["zhao"], T0 + 10) == (task, alert)


def test_going_on_duty_joins_the_offers_of_ones_grids() -> None:
    alert, task = dispatched(("zhao",))
    new_task, _ = duty.reoffer(task, alert, "li", True, ["li", "zhao"], T0 + 10)
    assert new_task.workers == ("li", "zhao")
    assert duty.reoffer(new_task, alert, "li", True, ["li", "zhao"], T0 + 11)[0] == new_task


def test_a_grid_worker_sets_only_their_own_duty() -> None:
    assert duty.set_duty("li", False, actor="li", role="grid_worker", ts=T0).on is False
    with pytest.raises(TransitionRefused, match="only their own duty"):
        duty.set_duty("zhao", False, actor="li", role="grid_worker", ts=T0)
    for role in ("duty_officer", "admin"):
        assert duty.set_duty("zhao", True, actor="wang", role=role, ts=T0).actor == "wang"


def test_the_contract_has_the_duty_commands() -> None:
    assert contract.actions_for("duty") == ("on_duty", "off_duty")
    for action in contract.DUTY_ACTIONS:
        assert contract.roles_for("duty", action) == {"grid_worker", "duty_officer", "admin"}
        assert not contract.needs_note("duty", action)
    assert contract.to_dict()["duty"]["self_only"] == ["grid_worker"]
    # the system's no-one-on-duty step is no one's command
    assert "no_one_on_duty" not in contract.ALERT_ACTIONS


WORKER_RECORD = {"name": "li", "role": "grid_worker", "grids": ["G1"]}


@pytest.mark.parametrize(("who", "target_id", "record", "verdict"), [
    (User("li", "grid_worker", grids=("G1",)), "li", WORKER_RECORD, None),
    (User("li", "grid_worker", grids=("G1",)), "zhao", {**WORKER_RECORD, "name": "zhao"},
     "forbidden"),
    (User("wang", "duty_officer"), "li", WORKER_RECORD, None),
    (User("root", "admin"), "li", WORKER_RECORD, None),
    (User("zhou", "station_manager", stations=("SHS",)), "li", WORKER_RECORD, "forbidden"),
    (User("wang", "duty_officer"), "wang", {"name": "wang", "role": "duty_officer"},
     "not_found"),
    (User("wang", "duty_officer"), "nobody", None, "not_found"),
])
def test_the_gateway_checks_who_may_set_whose_duty(who: User, target_id: str,
                                                    record: dict[str, Any] | None,
                                                    verdict: str | None) -> None:
    for action in ("on_duty", "off_duty"):
        cmd = parse({"target": "duty", "id": target_id, "action": action})
        if verdict is None:
            check(who, cmd, record)
        else:
            with pytest.raises(CommandError, match=verdict):
                check(who, cmd, record)


def test_the_worker_decodes_a_duty_command_and_refuses_a_bad_one() -> None:
    base = {"v": 1, "command_id": "c1", "target": "duty", "id": "li", "action": "off_duty",
            "actor": "li", "role": "grid_worker", "ts": "2026-11-22T00:05:00+00:00"}
    cmd = decode_command(orjson.dumps(base))
    assert (cmd.target, cmd.id, cmd.action) == ("duty", "li", "off_duty")
    with pytest.raises(Exception, match="action"):
        decode_command(orjson.dumps({**base, "action": "ack"}))


def test_the_cli_parses_duty() -> None:
    args = build_parser().parse_args(["duty", "off", "--worker", "li", "--actor", "wang"])
    assert (args.change, args.worker, args.actor, args.role) == ("off", "li", "wang", None)
    assert build_parser().parse_args(["duty", "list"]).change == "list"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["duty", "maybe"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["duty", "on", "--worker", "li", "--actor", "z",
                                   "--role", "station_manager"])
