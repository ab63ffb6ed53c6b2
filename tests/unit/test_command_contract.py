"""schemas/commands.py: the command contract is the life-cycle tables', "open" means one
thing wherever an alert's or task's state is sorted into open or not, and the gateway
serves the contract to the cockpit."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from gridwatch.agents import lifecycle as lc
from gridwatch.agents.liveness import recover
from gridwatch.agents.loiter import fold_report, load_config
from gridwatch.agents.records_io import write_alert, write_task
from gridwatch.schemas import commands as contract
from gridwatch.schemas.commands import ALERT_TABLE, TASK_TABLE, Rule
from gridwatch.schemas.events import CrowdLoiter, parse_time
from gridwatch.schemas.records import ALERT_STATUSES, TASK_STATUSES, Alert, Task
from gridwatch.ws.auth import User
from gridwatch.ws.gateway import Gateway
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from gridwatch import keys
from gridwatch.batch import BatchUpdate
from gridwatch.settings import Settings
from tests import aio

T0 = parse_time("2026-11-22T08:00:00+08:00")
LOITER = load_config()
PEOPLE = frozenset(contract.PERSON_ROLES)
TABLES = {"alert": ALERT_TABLE, "task": TASK_TABLE}
ROWS = [(target, state, action, rule) for target, table in TABLES.items()
        for (state, action), rule in table.items()]


# ---- the contract is derived from the tables ------------------------------------------


@pytest.mark.parametrize(("target", "state", "action", "rule"), ROWS,
                         ids=[f"{t}-{s}-{a}" for t, s, a, _ in ROWS])
def test_every_table_row_is_in_the_contract_with_its_roles_and_note_rule(
        target: str, state: str, action: str, rule: Rule) -> None:
    if rule.effect or not rule.roles & PEOPLE:  # the system's, or the effect of another
        assert action not in contract.actions_for(target)
        assert contract.roles_for(target, action) == frozenset()
        return
    assert action in contract.actions_for(target)
    assert contract.roles_for(target, action) == rule.roles & PEOPLE
    assert contract.needs_note(target, action) is rule.needs_note
    assert (action in contract.NOTE_REQUIRED) is rule.needs_note
    assert contract.to_dict()[target]["next"][state][action] == rule.to_state


@pytest.mark.parametrize("target", list(TABLES))
def test_every_contract_action_is_a_table_command_or_the_handover_note(target: str) -> None:
    commands = {a for (_, a), r in TABLES[target].items() if not r.effect and r.roles & PEOPLE}
    extra = {contract.HANDOVER} if target == "alert" else set()
    assert set(contract.actions_for(target)) == commands | extra
    assert contract.roles_for("alert", contract.HANDOVER) == contract.HANDOVER_ROLES
    assert contract.needs_note("alert", contract.HANDOVER)


def test_the_command_names_are_those_of_the_command_log() -> None:
    # The names travel in every command record (version 1 of the log), the cockpit
    # labels them (act_<name>) and the CLI takes them as arguments: a table that drops
    # or renames one must change this test too, knowingly.
    assert contract.ALERT_ACTIONS == ("ack", "dispatch", "resolve", "close", "dismiss",
                                      "shelve", "unshelve", "handover")
    assert contract.SILENCE_ACTIONS == ("silence", "end_silence")
    assert contract.TASK_ACTIONS == ("accept", "arrive", "done", "reject")
    assert contract.ALERT_COMMANDS == lc.ALERT_COMMANDS == contract.ALERT_ACTIONS[:-1]
    assert contract.TASK_COMMANDS == lc.TASK_COMMANDS == contract.TASK_ACTIONS
    assert contract.NOTE_REQUIRED == {"resolve", "dismiss", "handover", "reject", "done",
                                      "shelve", "silence"}
    assert contract.PERSON_ROLES == ("duty_officer", "grid_worker", "station_manager", "admin")


def test_the_lifecycle_applies_the_contract_tables() -> None:
    assert lc.ALERT_TABLE is ALERT_TABLE and lc.TASK_TABLE is TASK_TABLE and lc.Rule is Rule


def test_a_command_with_other_rules_in_other_states_cannot_be_a_contract() -> None:
    table = {("new", "ack"): Rule("acknowledged", contract.OFFICERS),
             ("acknowledged", "ack"): Rule("acknowledged", contract.WORKERS)}
    with pytest.raises(ValueError, match="'ack' from 'acknowledged'"):
        contract.commands_of(table)
    table = {("new", "ack"): Rule("acknowledged", contract.OFFICERS),
             ("acknowledged", "ack"): Rule("acknowledged", contract.OFFICERS, needs_note=True)}
    with pytest.raises(ValueError, match="note rule"):
        contract.commands_of(table)


def test_unknown_targets_and_actions_have_no_roles() -> None:
    assert contract.actions_for("street") == ()
    for target, action in (("alert", "accept"), ("task", "ack"), ("alert", "auto_close"),
                           ("task", "cancel"), ("incident", "close"), ("street", "ack"),
                           ("alert", "")):
        assert contract.roles_for(target, action) == frozenset()
        assert not contract.needs_note(target, action)


def test_the_cockpits_copy_is_the_contract() -> None:
    data = contract.to_dict()
    assert data["roles"] == list(contract.PERSON_ROLES)
    for target in TABLES:
        part = data[target]
        assert list(part["actions"]) == list(contract.actions_for(target))
        for action, rules in part["actions"].items():
            assert set(rules["roles"]) == contract.roles_for(target, action)
            assert rules["needs_note"] is contract.needs_note(target, action)
        moving = {a for by in part["next"].values() for a in by}
        assert part["any_state"] == [a for a in contract.actions_for(target) if a not in moving]
    assert data["alert"]["any_state"] == ["handover"] and data["task"]["any_state"] == []
    assert data["alert"]["open"] == ["new", "acknowledged", "dispatched", "resolved",
                                     "silenced", "shelved"]
    assert data["alert"]["held"] == ["shelved", "silenced"]
    assert set(data["task"]["open"]) == contract.OPEN_TASK


def test_an_incident_has_one_command_with_the_alert_acks_rules() -> None:
    # Acknowledging an incident acknowledges its alerts: whoever may acknowledge an alert
    # may acknowledge an incident, on the same note rule, and nobody else.
    assert contract.TARGETS == ("alert", "task", "incident", "silence", "duty")
    assert contract.actions_for("incident") == ("ack",)
    assert contract.roles_for("incident", "ack") == contract.roles_for("alert", "ack") \
        == contract.OFFICERS
    assert not contract.needs_note("incident", "ack")
    part = contract.to_dict()["incident"]
    assert part["actions"] == {"ack": {"roles": ["admin", "duty_officer"], "needs_note": False}}
    assert part["any_state"] == ["ack"] and part["next"] == {}
    assert (part["min_alerts"], part["window_s"]) == (3, 600.0)
    from gridwatch.agents.decide import DecideConfig
    from gridwatch.agents.rules import load_rules

    config = DecideConfig(rules=load_rules(), loiter=LOITER)
    assert (config.incident_min_alerts, config.incident_window_s) == (3, 600.0)


# ---- "open": one definition -----------------------------------------------------------


def test_open_is_every_state_the_table_leads_on_from() -> None:
    assert contract.OPEN_ALERT == {"new", "acknowledged", "dispatched", "resolved",
                                   "silenced", "shelved"}
    assert contract.UNRESOLVED_ALERT == contract.OPEN_ALERT - {"resolved"}
    assert contract.OPEN_TASK == {"offered", "accepted", "on_site"}
    for statuses, table, open_ in ((ALERT_STATUSES, ALERT_TABLE, contract.OPEN_ALERT),
                                   (TASK_STATUSES, TASK_TABLE, contract.OPEN_TASK)):
        finals = set(statuses) - open_
        assert {r.to_state for r in table.values()} <= set(statuses)
        assert not {s for s, _ in table} & finals  # nothing leads on from a final state


def _alert(status: str) -> Alert:
    alert = lc.raise_alert(id="al-1", kind="silent_source", severity="medium", grid_id="G1",
                           ts=T0, title="camera cam-7 silent", title_zh="摄像头cam-7无数据")
    return replace(alert, status=status)


@pytest.mark.parametrize("status", ALERT_STATUSES)
def test_the_open_alerts_index_holds_the_open_alerts(status: str) -> None:
    update = BatchUpdate()
    write_alert(update, _alert(status), 0)
    listed = "al-1" in update.zadd[keys.ALERTS_OPEN]
    assert listed is (status in contract.OPEN_ALERT)
    assert ("al-1" in update.zrem[keys.ALERTS_OPEN]) is not listed


@pytest.mark.parametrize("status", TASK_STATUSES)
def test_the_open_tasks_index_holds_the_open_tasks(status: str) -> None:
    task = Task(id="tk-1", alert_id="al-1", grid_id="G1", workers=("li",), status=status,
                assignee=None, ts_created=T0, ts_updated=T0, due_at=T0 + 7200, note="",
                audit=())
    update = BatchUpdate()
    write_task(update, task, 0)
    assert ("tk-1" in update.zadd[keys.tasks_open("G1")]) is (status in contract.OPEN_TASK)


@pytest.mark.parametrize("status", [s for s in ALERT_STATUSES if s != "dispatched"])
def test_a_source_that_comes_back_closes_its_alert_while_it_is_open(status: str) -> None:
    alert = _alert(status)
    after, _ = recover(alert, None, T0 + 100)
    assert (after.status == "closed" and after != alert) is (status in contract.OPEN_ALERT)


@pytest.mark.parametrize("status", ALERT_STATUSES)
def test_a_crowd_folds_into_its_alert_only_while_the_alert_is_unresolved(status: str) -> None:
    def crowd(at: float) -> CrowdLoiter:
        return CrowdLoiter(event_id=f"ev-{at:g}", ts=T0 + at, camera_id="cam-7", lon=121.43,
                           lat=31.19, zone="bus:x", people=6, dwell_s=300 + at)

    first = fold_report(None, crowd(0), "G1", LOITER).alert
    assert first is not None
    decision = fold_report(replace(first, status=status), crowd(60), "G1", LOITER)
    if status in contract.UNRESOLVED_ALERT:
        assert decision.alert is not None and decision.alert.id == first.id
    else:  # resolved, closed or dismissed: the same crowd is suppressed until re-arm
        assert decision.alert is None and decision.outcome == "suppressed"


# ---- the cockpit reads it from the gateway --------------------------------------------


def _get(gateway: Gateway, path: str, **headers: str) -> Response:
    class Peer:  # the connection as process_request reads it: its address only
        remote_address = ("203.0.113.9", 50000)

    request = Request(path, Headers(list(headers.items())))
    response = aio.run(gateway.process_request(Peer(), request))  # type: ignore[arg-type]
    assert response is not None
    return response


def test_the_gateway_serves_the_contract_to_signed_in_users_only(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, command_keys="k1:" + "s" * 40)
    gateway = Gateway(settings)
    # A session the gateway trusted a moment ago is served from its cache (no Redis).
    gateway.gate.good.put("tok-1", User("w1", "grid_worker", grids=("G1",)), time.monotonic())
    ok = _get(gateway, "/api/contract", Authorization="Bearer tok-1")
    assert ok.status_code == 200 and ok.headers["Content-Type"] == "application/json"
    assert orjson.loads(ok.body) == contract.to_dict()
    assert _get(gateway, "/api/contract").status_code == 401


STATIC = Path(contract.__file__).resolve().parent.parent / "ws" / "static"


def test_the_cockpit_labels_every_command_and_keeps_no_copy_of_the_rules() -> None:
    labels = (STATIC / "i18n.js").read_text(encoding="utf-8")
    for action in (*contract.ALERT_ACTIONS, *contract.TASK_ACTIONS):
        assert labels.count(f"act_{action}:") == 2, action  # Chinese and English
    for view in ("officer.js", "worker.js"):
        code = (STATIC / view).read_text(encoding="utf-8")
        assert "contract" in code
        for state in (*contract.OPEN_ALERT, *contract.OPEN_TASK):
            assert f"{state}: [" not in code, (view, state)  # a status -> actions table
