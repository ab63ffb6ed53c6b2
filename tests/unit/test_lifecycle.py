"""Scenarios of the alert and task state machines: every path, every refusal, the audit."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
import pytest
from gridwatch.agents import lifecycle as lc
from gridwatch.schemas.errors import TransitionRefused
from gridwatch.schemas.events import parse_time
from gridwatch.schemas.records import Alert, AuditEntry, Task

T0 = parse_time("2026-11-22T08:00:00+08:00")
GRID = "G-12"
WORKERS = ("li", "zhou")
OFFICER: dict[str, Any] = {"actor": "wang", "role": "duty_officer"}
WORKER: dict[str, Any] = {"actor": "li", "role": "grid_worker", "grids": {GRID}}


def new_alert() -> Alert:
    return lc.raise_alert(id="al-1", kind="loiter", severity="high", grid_id=GRID, ts=T0,
                          title="6 people lingering 5 min at pharmacy:Yifeng-023",
                          title_zh="药店Yifeng-023门口6人聚集逗留5分钟",
                          source_ids={"camera_id": "cam-7", "event_id": "ev-1"})


def acknowledged() -> Alert:
    return lc.ack(new_alert(), ts=T0 + 62, **OFFICER)


def dispatched() -> tuple[Alert, Task]:
    return lc.dispatch(acknowledged(), workers=WORKERS, ts=T0 + 120, note="please check",
                       **OFFICER)


def alert_in(status: str) -> tuple[Alert, Task | None]:
    if status == "new":
        return new_alert(), None
    if status == "acknowledged":
        return acknowledged(), None
    if status == "dispatched":
        return dispatched()
    if status == "resolved":
        return lc.resolve(acknowledged(), ts=T0 + 300, note="called the shop", **OFFICER)
    if status == "closed":
        alert, task = alert_in("resolved")
        return lc.close(alert, ts=T0 + 400, **OFFICER), task
    if status == "dismissed":
        return lc.dismiss(new_alert(), ts=T0 + 60, note="queue for masks", **OFFICER)
    raise AssertionError(status)


def task_in(status: str) -> tuple[Alert, Task]:
    alert, task = dispatched()
    if status == "offered":
        return alert, task
    if status == "rejected":
        task, alert = lc.reject(task, alert, ts=T0 + 200, note="off duty", **WORKER)
        return alert, task
    if status == "cancelled":
        alert, cancelled = lc.dismiss(alert, task, ts=T0 + 200, note="false alarm", **OFFICER)
        assert cancelled is not None
        return alert, cancelled
    task = lc.accept(task, ts=T0 + 180, **WORKER)
    if status == "accepted":
        return alert, task
    task = lc.arrive(task, ts=T0 + 600, **WORKER)
    if status == "on_site":
        return alert, task
    task, alert = lc.done(task, alert, ts=T0 + 900, note="crowd dispersed", **WORKER)
    assert status == "done"
    return alert, task


def command(action: str, alert: Alert, task: Task | None) -> tuple[Alert, Task | None]:
    """Issue ``action`` with a note and the right role for it."""
    target = "alert" if action in lc.ALERT_COMMANDS else "task"
    who = OFFICER if target == "alert" else {k: WORKER[k] for k in ("actor", "role")}
    return lc.apply(target, action, alert, task, ts=T0 + 5000, note="a note", grids={GRID},
                    workers=WORKERS, **who)


# ---- the happy path and its audit trail --------------------------------------------------


def test_full_loop_records_every_step_with_actor_role_time_and_note() -> None:
    alert = new_alert()
    alert = lc.ack(alert, ts=T0 + 62, note="on it", **OFFICER)
    alert, task = lc.dispatch(alert, workers=["zhou", "li", "li"], ts=T0 + 120,
                              note="check the pharmacy door", sla_s=3600, **OFFICER)
    assert (alert.status, alert.task_id, task.id) == ("dispatched", "tk-al-1-1", "tk-al-1-1")
    assert task.workers == ("li", "zhou") and task.due_at == T0 + 120 + 3600
    assert task.status == "offered" and task.assignee is None
    task = lc.accept(task, ts=T0 + 180, **WORKER)
    assert (task.status, task.assignee) == ("accepted", "li")
    task = lc.arrive(task, ts=T0 + 600, note="at the door", **WORKER)
    assert task.status == "on_site"
    task, alert = lc.done(task, alert, ts=T0 + 900, note="8 people queueing, spaced out", **WORKER)
    assert task.status == "done" and task.note == "8 people queueing, spaced out"
    assert alert.status == "resolved"
    alert = lc.close(alert, ts=T0 + 1000, note="checked photo", actor="chen", role="admin")
    assert alert.status == "closed" and alert.ts_updated == T0 + 1000

    assert alert.audit == (
        AuditEntry("raise", None, "new", "system", "system", T0, alert.title),
        AuditEntry("ack", "new", "acknowledged", "wang", "duty_officer", T0 + 62, "on it"),
        AuditEntry("dispatch", "acknowledged", "dispatched", "wang", "duty_officer", T0 + 120,
                   "check the pharmacy door"),
        AuditEntry("task_done", "dispatched", "resolved", "system", "system", T0 + 900,
                   "task tk-al-1-1 done by li: 8 people queueing, spaced out"),
        AuditEntry("close", "resolved", "closed", "chen", "admin", T0 + 1000, "checked photo"),
    )
    assert task.audit == (
        AuditEntry("offer", None, "offered", "wang", "duty_officer", T0 + 120,
                   "check the pharmacy door"),
        AuditEntry("accept", "offered", "accepted", "li", "grid_worker", T0 + 180, ""),
        AuditEntry("arrive", "accepted", "on_site", "li", "grid_worker", T0 + 600, "at the door"),
        AuditEntry("done", "on_site", "done", "li", "grid_worker", T0 + 900,
                   "8 people queueing, spaced out"),
    )
    # Records survive JSON exactly (what the shell stores and publishes).
    assert Alert.from_dict(orjson.loads(orjson.dumps(alert.to_dict()))) == alert
    assert Task.from_dict(orjson.loads(orjson.dumps(task.to_dict()))) == task
    assert alert.to_dict()["v"] == 1


def test_replaying_the_same_commands_gives_the_same_records() -> None:
    assert task_in("done") == task_in("done")
    assert task_in("done")[1].id == "tk-al-1-1"


# ---- concurrent acknowledgement -----------------------------------------------------------


def test_second_acknowledgement_is_refused_naming_the_first_officer_and_time() -> None:
    alert = lc.ack(new_alert(), actor="wang", role="duty_officer", ts=T0 + 62)
    with pytest.raises(TransitionRefused) as refused:
        lc.ack(alert, actor="zhao", role="duty_officer", ts=T0 + 63)
    assert refused.value.reason == (
        "alert al-1 is already acknowledged by officer wang at 2026-11-22T08:01:02+08:00"
    )
    assert str(refused.value) == refused.value.reason


def test_ack_after_dispatch_names_the_dispatcher() -> None:
    alert, _ = dispatched()
    with pytest.raises(TransitionRefused, match=r"already dispatched by officer wang at "
                                               r"2026-11-22T08:02:00\+08:00"):
        lc.ack(alert, actor="zhao", role="duty_officer", ts=T0 + 130)


# ---- other paths of the alert machine -----------------------------------------------------


def test_resolve_without_dispatch_when_handled_by_phone_then_close() -> None:
    alert, task = lc.resolve(acknowledged(), ts=T0 + 300, note="called the shop owner",
                             **OFFICER)
    assert task is None and alert.status == "resolved" and alert.task_id is None
    assert alert.audit[-1] == AuditEntry("resolve", "acknowledged", "resolved", "wang",
                                         "duty_officer", T0 + 300, "called the shop owner")
    assert lc.close(alert, ts=T0 + 310, **OFFICER).status == "closed"


@pytest.mark.parametrize("task_status", ["offered", "accepted", "on_site"])
def test_resolving_a_dispatched_alert_cancels_its_open_task(task_status: str) -> None:
    alert, task = task_in(task_status)
    alert, cancelled = lc.resolve(alert, task, ts=T0 + 700, note="police handled it",
                                  **OFFICER)
    assert alert.status == "resolved"
    assert cancelled is not None and cancelled.status == "cancelled"
    assert cancelled.audit[-1] == AuditEntry("cancel", task_status, "cancelled", "wang",
                                             "duty_officer", T0 + 700, "police handled it")


@pytest.mark.parametrize("status", ["new", "acknowledged", "dispatched"])
def test_dismiss_with_a_reason_from_every_open_state(status: str) -> None:
    alert, task = alert_in(status)
    alert, task = lc.dismiss(alert, task, ts=T0 + 700, note="camera false positive", **OFFICER)
    assert alert.status == "dismissed"
    assert alert.audit[-1] == AuditEntry("dismiss", status, "dismissed", "wang", "duty_officer",
                                         T0 + 700, "camera false positive")
    if status == "dispatched":
        assert task is not None and task.status == "cancelled"


@pytest.mark.parametrize("status", ["new", "acknowledged", "dispatched"])
def test_dismiss_without_a_reason_is_refused(status: str) -> None:
    alert, task = alert_in(status)
    with pytest.raises(TransitionRefused, match="dismiss needs a note saying why"):
        lc.dismiss(alert, task, ts=T0 + 700, note="  ", **OFFICER)


def test_resolve_needs_a_note() -> None:
    with pytest.raises(TransitionRefused, match="resolve needs a note"):
        lc.resolve(acknowledged(), ts=T0 + 300, note="", **OFFICER)


@pytest.mark.parametrize("status", ["new", "acknowledged", "dispatched", "resolved"])
def test_system_auto_close_from_every_state_but_final(status: str) -> None:
    alert, task = alert_in(status)
    alert, task = lc.auto_close(alert, task, ts=T0 + 900, note="source back")
    assert alert.status == "closed"
    assert alert.audit[-1] == AuditEntry("auto_close", status, "closed", "system", "system",
                                         T0 + 900, "source back")


@pytest.mark.parametrize("status", ["closed", "dismissed"])
def test_auto_close_of_a_final_alert_is_refused(status: str) -> None:
    alert, task = alert_in(status)
    with pytest.raises(TransitionRefused, match=f"cannot close a {status} alert"):
        lc.auto_close(alert, task, ts=T0 + 900, note="source back")


def test_officer_cannot_use_system_transitions() -> None:
    alert, _ = dispatched()
    with pytest.raises(TransitionRefused, match="only the system may close it, not officer wang"):
        lc._step_alert(alert, "auto_close", ts=T0, note="x", **OFFICER)


def test_cannot_resolve_a_closed_alert() -> None:
    alert, _ = alert_in("closed")
    with pytest.raises(TransitionRefused) as refused:
        lc.resolve(alert, ts=T0 + 500, note="again", **OFFICER)
    assert refused.value.reason == (
        "cannot resolve a closed alert (alert al-1 was closed by officer wang "
        "at 2026-11-22T08:06:40+08:00)"
    )


def test_dispatch_before_acknowledgement_says_what_is_allowed() -> None:
    with pytest.raises(TransitionRefused) as refused:
        lc.dispatch(new_alert(), workers=WORKERS, ts=T0 + 10, **OFFICER)
    assert refused.value.reason == (
        "cannot dispatch alert al-1: it is new (raised by the system at 2026-11-22T08:00:00+08:00); "
        "allowed now: ack, dismiss, shelve"
    )


def test_close_of_a_dispatched_alert_waits_for_its_task() -> None:
    alert, _ = task_in("accepted")
    with pytest.raises(TransitionRefused, match="cannot close alert al-1: it is dispatched"):
        lc.close(alert, ts=T0 + 500, **OFFICER)


ALERT_STATES = ["new", "acknowledged", "dispatched", "resolved", "closed", "dismissed"]


@pytest.mark.parametrize("status", ALERT_STATES)
@pytest.mark.parametrize("action", lc.ALERT_COMMANDS)
def test_every_alert_command_follows_the_table(status: str, action: str) -> None:
    alert, task = alert_in(status)
    rule = lc.ALERT_TABLE.get((status, action))
    if rule is None:
        with pytest.raises(TransitionRefused) as refused:
            command(action, alert, task)
        assert "al-1" in refused.value.reason
    else:
        after, _ = command(action, alert, task)
        assert after.status == rule.to_state
        assert after.audit[-1].action == action and after.audit[-1].from_state == status


@pytest.mark.parametrize("role", ["grid_worker", "station_manager"])
@pytest.mark.parametrize("action", ["ack", "dismiss"])
def test_only_officers_and_admins_act_on_alerts(role: str, action: str) -> None:
    with pytest.raises(TransitionRefused) as refused:
        lc.apply("alert", action, new_alert(), None, actor="li", role=role, ts=T0 + 5,
                 note="x")
    word = {"grid_worker": "worker", "station_manager": "station manager"}[role]
    verb = {"ack": "acknowledge", "dismiss": "dismiss"}[action]
    assert refused.value.reason == f"alert al-1: only a duty officer or admin may {verb} it, not {word} li"


def test_admin_may_do_what_an_officer_may() -> None:
    admin: dict[str, Any] = {"actor": "chen", "role": "admin"}
    alert = lc.ack(new_alert(), ts=T0 + 1, **admin)
    alert, task = lc.dispatch(alert, workers=WORKERS, ts=T0 + 2, **admin)
    alert, task = lc.dismiss(alert, task, ts=T0 + 3, note="duplicate", **admin)
    assert alert.status == "dismissed" and task is not None and task.status == "cancelled"


def test_dispatch_needs_a_grid_and_workers() -> None:
    with pytest.raises(TransitionRefused, match="grid G-12 has no workers"):
        lc.dispatch(acknowledged(), workers=[], ts=T0 + 100, **OFFICER)
    gridless = lc.raise_alert(id="al-9", kind="station_high_risk", severity="low",
                              grid_id=None, ts=T0, title="t", title_zh="t", station_id="st-1")
    gridless = lc.ack(gridless, ts=T0 + 1, **OFFICER)
    with pytest.raises(TransitionRefused, match="alert al-9 has no grid"):
        lc.dispatch(gridless, workers=WORKERS, ts=T0 + 2, **OFFICER)


def test_resolving_a_dispatched_alert_without_its_task_is_a_programming_error() -> None:
    alert, _ = dispatched()
    with pytest.raises(ValueError, match="pass its task tk-al-1-1"):
        lc.resolve(alert, None, ts=T0 + 500, note="x", **OFFICER)


# ---- the task machine ------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["offered", "accepted"])
def test_reject_puts_the_alert_back_to_the_officer(status: str) -> None:
    alert, task = task_in(status)
    task, alert = lc.reject(task, alert, ts=T0 + 240, note="I am at another call", **WORKER)
    assert task.status == "rejected"
    assert task.audit[-1] == AuditEntry("reject", status, "rejected", "li", "grid_worker",
                                        T0 + 240, "I am at another call")
    assert alert.status == "acknowledged"
    assert alert.audit[-1] == AuditEntry(
        "task_rejected", "dispatched", "acknowledged", "system", "system", T0 + 240,
        "task tk-al-1-1 rejected by li: I am at another call")
    # The officer dispatches again: a new task with the next id.
    alert, again = lc.dispatch(alert, workers=WORKERS, ts=T0 + 300, **OFFICER)
    assert again.id == "tk-al-1-2" and alert.task_id == "tk-al-1-2"


def test_another_worker_of_the_grid_may_reject_an_offered_task() -> None:
    alert, task = dispatched()
    task, alert = lc.reject(task, alert, actor="zhou", role="grid_worker", grids={GRID},
                            ts=T0 + 200, note="not my street")
    assert task.status == "rejected" and alert.status == "acknowledged"


def test_worker_of_another_grid_is_refused() -> None:
    _, task = dispatched()
    with pytest.raises(TransitionRefused) as refused:
        lc.accept(task, actor="sun", role="grid_worker", grids={"G-3", "G-4"}, ts=T0 + 130)
    assert refused.value.reason == (
        "task tk-al-1-1: only a worker of grid G-12 may accept it; sun works grids G-3, G-4"
    )
    assert refused.value.reason.startswith("task tk-al-1-1: only a worker of grid G-12 may accept it")


def test_a_worker_named_in_the_offer_may_accept_after_a_grid_change() -> None:
    _, task = dispatched()
    task = lc.accept(task, actor="zhou", role="grid_worker", grids=set(), ts=T0 + 130)
    assert task.assignee == "zhou"


def test_an_officer_cannot_accept_a_task() -> None:
    _, task = dispatched()
    with pytest.raises(TransitionRefused, match="only a worker of grid G-12 may accept it, "
                                                "not officer wang"):
        lc.accept(task, grids={GRID}, ts=T0 + 130, **OFFICER)


def test_second_acceptance_names_the_first_worker() -> None:
    _, task = task_in("accepted")
    with pytest.raises(TransitionRefused) as refused:
        lc.accept(task, actor="zhou", role="grid_worker", grids={GRID}, ts=T0 + 181)
    assert refused.value.reason == (
        "task tk-al-1-1 is already accepted by worker li at 2026-11-22T08:03:00+08:00"
    )


@pytest.mark.parametrize(("status", "action"), [("accepted", "arrive"), ("accepted", "reject"),
                                                ("on_site", "done")])
def test_only_the_assignee_acts_on_an_accepted_task(status: str, action: str) -> None:
    alert, task = task_in(status)
    with pytest.raises(TransitionRefused) as refused:
        lc.apply("task", action, alert, task, actor="zhou", role="grid_worker", grids={GRID},
                 ts=T0 + 700, note="n")
    assert refused.value.reason.startswith(f"task tk-al-1-1 is {status} by worker li; only li may")


def test_done_needs_a_note_and_reject_needs_a_reason() -> None:
    alert, task = task_in("on_site")
    with pytest.raises(TransitionRefused, match="finish needs a note on what was found"):
        lc.done(task, alert, ts=T0 + 900, note="", **WORKER)
    alert, task = task_in("offered")
    with pytest.raises(TransitionRefused, match="reject needs a reason"):
        lc.reject(task, alert, ts=T0 + 900, note=" ", **WORKER)


def test_done_before_arrival_is_refused() -> None:
    alert, task = task_in("accepted")
    with pytest.raises(TransitionRefused, match="cannot finish task tk-al-1-1: it is accepted "
                                                "by worker li .*; allowed now: arrive, cancel, reject"):
        lc.done(task, alert, ts=T0 + 900, note="done", **WORKER)


def test_cancelling_needs_an_officer() -> None:
    _, task = dispatched()
    with pytest.raises(TransitionRefused, match="only a duty officer, admin or the system may "
                                                "cancel it, not worker li"):
        lc._step_task(task, "cancel", actor="li", role="grid_worker", ts=T0, note="x",
                      grids={GRID})


TASK_STATES = ["offered", "accepted", "on_site", "done", "rejected", "cancelled"]


@pytest.mark.parametrize("status", TASK_STATES)
@pytest.mark.parametrize("action", lc.TASK_COMMANDS)
def test_every_task_command_follows_the_table(status: str, action: str) -> None:
    alert, task = task_in(status)
    rule = lc.TASK_TABLE.get((status, action))
    if rule is None:
        with pytest.raises(TransitionRefused) as refused:
            command(action, alert, task)
        reason = refused.value.reason
        assert "tk-al-1-1" in reason
        if status in ("done", "rejected", "cancelled"):
            assert reason.startswith(f"cannot {lc._VERB.get(action, action)} a {status} task")
    else:
        _, after = command(action, alert, task)
        assert after is not None and after.status == rule.to_state


def test_task_done_for_an_older_task_leaves_the_alert_alone() -> None:
    alert, task = task_in("on_site")
    alert = lc.handover_note(alert, "wang", "duty_officer", T0 + 800, "worker on site")
    other = lc.raise_alert(id="al-2", kind="loiter", severity="low", grid_id=GRID, ts=T0,
                           title="t", title_zh="t")
    task, unchanged = lc.done(task, other, ts=T0 + 900, note="ok", **WORKER)
    assert task.status == "done" and unchanged == other


# ---- handover notes, commands, records ---------------------------------------------------


def test_handover_notes_are_kept_in_order_in_any_state() -> None:
    alert, _ = alert_in("closed")
    alert = lc.handover_note(alert, "wang", "duty_officer", T0 + 3600, "night shift: watch cam-7")
    alert = lc.handover_note(alert, "zhao", "admin", T0 + 3700, "noted")
    assert [(h.actor, h.note, h.from_state) for h in alert.handover] == [
        ("wang", "night shift: watch cam-7", "closed"), ("zhao", "noted", "closed")]
    assert alert.status == "closed"
    with pytest.raises(TransitionRefused, match="cannot be empty"):
        lc.handover_note(alert, "wang", "duty_officer", T0, "")
    with pytest.raises(TransitionRefused, match="not worker li"):
        lc.handover_note(alert, "li", "grid_worker", T0, "hi")


def test_apply_handover_and_unknown_commands() -> None:
    alert, task = lc.apply("alert", "handover", new_alert(), None, ts=T0, note="n", **OFFICER)
    assert alert.handover[-1].note == "n" and task is None
    with pytest.raises(TransitionRefused, match="unknown command alert reopen"):
        lc.apply("alert", "reopen", alert, None, ts=T0, **OFFICER)
    with pytest.raises(TransitionRefused, match="unknown command task accept"):
        lc.apply("task", "accept", alert, None, ts=T0, **OFFICER)


def test_from_dict_is_strict() -> None:
    good = new_alert().to_dict()
    with pytest.raises(ValueError, match="unknown field 'colour'"):
        Alert.from_dict({**good, "colour": "red"})
    with pytest.raises(ValueError, match="Alert.status: must be one of"):
        Alert.from_dict({**good, "status": "pending"})
    with pytest.raises(ValueError, match="unsupported version 2"):
        Alert.from_dict({**good, "v": 2})
    missing = dict(good)
    del missing["title_zh"]
    with pytest.raises(ValueError, match="Alert.title_zh: missing"):
        Alert.from_dict(missing)
    with pytest.raises(ValueError, match="AuditEntry.role"):
        Alert.from_dict({**good, "audit": [{**good["audit"][0], "role": "mayor"}]})
    with pytest.raises(ValueError, match="Alert.ts_raised: must be a number"):
        Alert.from_dict({**good, "ts_raised": "now"})
    with pytest.raises(ValueError, match="Task.workers"):
        Task.from_dict({**dispatched()[1].to_dict(), "workers": "li"})


def test_an_incident_ack_acknowledges_its_new_alerts_each_naming_the_incident() -> None:
    first = new_alert()
    second = replace(new_alert(), id="al-2")
    acked = lc.ack(replace(new_alert(), id="al-3"), ts=T0 + 1, actor="li", role="duty_officer")
    out = lc.ack_incident("in-1", [first, second, acked], ts=T0 + 9, note=" crowd ", **OFFICER)
    assert [a.id for a in out] == [first.id, "al-2"]
    for a in out:
        assert a.status == "acknowledged" and a.ts_updated == T0 + 9
        assert (a.audit[-1].action, a.audit[-1].actor, a.audit[-1].note) == (
            "ack", "wang", "incident in-1: crowd")
    with pytest.raises(TransitionRefused, match="incident in-1: no alert left to acknowledge"):
        lc.ack_incident("in-1", [*out, acked], ts=T0 + 10, **OFFICER)
    with pytest.raises(TransitionRefused, match="only a duty officer or admin"):
        lc.ack_incident("in-1", [first], ts=T0 + 10, actor="w1", role="grid_worker")
