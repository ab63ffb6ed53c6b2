"""Escalation scenarios: levels repeat, acknowledging stops them, a restart fires each once;
an escalation raises the alert it is about (no separate alert)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from gridwatch.agents import lifecycle as lc
from gridwatch.agents.escalation import (
    Deadline,
    EscalationConfig,
    due,
    escalated,
    fire,
    fire_all,
    next_deadline,
)
from gridwatch.schemas.errors import ConfigError
from gridwatch.schemas.records import Alert, Task

T0 = 1_795_000_000.0
MIN = 60.0
CONFIG = EscalationConfig()
OFFICER: dict[str, Any] = {"actor": "wang", "role": "duty_officer"}
WORKER: dict[str, Any] = {"actor": "li", "role": "grid_worker", "grids": {"G-12"}}


def new_alert(severity: str = "high", n: int = 1) -> Alert:
    return lc.raise_alert(id=f"al-{n}", kind="loiter", severity=severity, grid_id="G-12",
                          ts=T0, title=f"crowd {n}", title_zh=f"聚集{n}")


class Timers:
    """The shell's deadline store (one deadline per alert, like a Redis sorted set);
    firing stores the raised alert in place of the old one."""

    def __init__(self) -> None:
        self.deadlines: dict[str, Deadline] = {}
        self.writes = 0

    def update(self, alert: Alert, task: Task | None) -> None:
        d = next_deadline(alert, task, CONFIG, current=self.deadlines.get(alert.id))
        if d is None:
            self.deadlines.pop(alert.id, None)
        else:
            self.deadlines[alert.id] = d

    def tick(self, now: float, alerts: dict[str, Alert], tasks: dict[str, Task]) -> list[str]:
        """One timer run: fire what is due until nothing is; the deadline ids fired."""
        fired: list[str] = []
        while overdue := due(self.deadlines.values(), now):
            for d in overdue:
                alert = alerts[d.alert_id]
                raised, nxt = fire(d, alert, tasks.get(alert.task_id or ""), now, CONFIG)
                if raised is not None:
                    self.writes += 1
                    fired.append(d.id)
                    alerts[alert.id] = raised
                if nxt is None:
                    self.deadlines.pop(d.alert_id)
                    self.update(alerts[d.alert_id], tasks.get(alert.task_id or ""))
                else:
                    self.deadlines[d.alert_id] = nxt
        return fired


def escalations(alert: Alert) -> list[tuple[float, str]]:
    return [(e.ts, e.note) for e in alert.audit if e.action == "escalate"]


@pytest.mark.parametrize(("severity", "minutes"), [("high", 5), ("medium", 15), ("low", 60)])
def test_ack_deadline_by_severity(severity: str, minutes: int) -> None:
    d = next_deadline(new_alert(severity), None, CONFIG)
    assert d == Deadline("es-ack-1-al-1", "ack", "al-1", None, 1, T0 + minutes * MIN,
                         minutes * MIN)
    assert Deadline.from_dict(d.to_dict()) == d


def test_levels_repeat_after_the_same_interval() -> None:
    alert = new_alert("high")
    d = next_deadline(alert, None, CONFIG)
    assert d is not None
    for expected_level in (1, 2, 3):
        assert fire(d, alert, None, d.due_at - 1, CONFIG) == (None, d)  # not due yet
        raised, nxt = fire(d, alert, None, d.due_at, CONFIG)
        assert raised is not None and nxt is not None
        assert raised.escalation_level == expected_level
        assert raised.escalated_at == raised.ts_updated == T0 + expected_level * 5 * MIN
        assert nxt.due_at == d.due_at + 5 * MIN
        alert, d = raised, nxt
    # The same alert, raised: no new id, kind, severity, status or title.
    assert (alert.id, alert.kind, alert.severity, alert.status) == ("al-1", "loiter", "high", "new")
    assert (alert.title, alert.title_zh, alert.ts_raised) == ("crowd 1", "聚集1", T0)
    assert escalations(alert) == [(T0 + k * 5 * MIN, f"Not acknowledged for {k * 5} min (level {k})")
                                  for k in (1, 2, 3)]
    entry = alert.audit[1]
    assert (entry.from_state, entry.to_state, entry.actor, entry.role) == (
        "new", "new", "system", "system")
    assert Alert.from_dict(alert.to_dict()) == alert


def test_one_alert_raised_twice_then_acknowledged_escalates_no_more() -> None:
    alerts = {"al-1": new_alert("medium")}
    timers = Timers()
    timers.update(alerts["al-1"], None)
    assert timers.tick(T0 + 15 * MIN, alerts, {}) == ["es-ack-1-al-1"]
    assert list(alerts) == ["al-1"] and alerts["al-1"].escalation_level == 1
    assert timers.tick(T0 + 30 * MIN, alerts, {}) == ["es-ack-2-al-1"]
    stored = Alert.from_dict(alerts["al-1"].to_dict())
    assert list(alerts) == ["al-1"] and stored.id == "al-1"
    assert stored.escalation_level == 2 and stored.escalated_at == T0 + 30 * MIN
    assert [e.note for e in stored.audit if e.action == "escalate"] == [
        "Not acknowledged for 15 min (level 1)", "Not acknowledged for 30 min (level 2)"]
    alerts["al-1"] = lc.ack(stored, ts=T0 + 31 * MIN, **OFFICER)
    timers.update(alerts["al-1"], None)
    assert timers.deadlines == {}
    assert timers.tick(T0 + 600 * MIN, alerts, {}) == []
    assert alerts["al-1"].escalation_level == 2
    assert [e.action for e in alerts["al-1"].audit] == ["raise", "escalate", "escalate", "ack"]


def test_acknowledging_stops_the_ack_escalation() -> None:
    alerts = {"al-1": new_alert("high")}
    timers = Timers()
    timers.update(alerts["al-1"], None)
    assert timers.tick(T0 + 5 * MIN, alerts, {}) == ["es-ack-1-al-1"]
    alerts["al-1"] = lc.ack(alerts["al-1"], ts=T0 + 6 * MIN, **OFFICER)
    # A deadline still stored (the shell had not yet replaced it) fires nothing.
    stale = timers.deadlines["al-1"]
    assert fire(stale, alerts["al-1"], None, T0 + 60 * MIN, CONFIG) == (None, None)
    timers.update(alerts["al-1"], None)
    assert timers.deadlines == {}
    assert timers.tick(T0 + 600 * MIN, alerts, {}) == []
    assert alerts["al-1"].escalation_level == 1
    assert [e.action for e in alerts["al-1"].audit] == ["raise", "escalate", "ack"]


def test_restart_after_a_long_gap_fires_each_overdue_level_exactly_once() -> None:
    alerts = {"al-1": new_alert("high", 1), "al-2": new_alert("medium", 2)}
    timers = Timers()
    for a in alerts.values():
        timers.update(a, None)
    assert timers.tick(T0 + 4 * MIN, alerts, {}) == []
    # The worker is down from minute 4 to minute 16; on restart one timer run catches up.
    fired = timers.tick(T0 + 16 * MIN, alerts, {})
    assert sorted(fired) == ["es-ack-1-al-1", "es-ack-1-al-2", "es-ack-2-al-1", "es-ack-3-al-1"]
    assert timers.deadlines["al-1"].due_at == T0 + 20 * MIN
    # Running the timer again (or a second worker after a crash) fires nothing more.
    assert timers.tick(T0 + 16 * MIN, alerts, {}) == []
    assert timers.writes == 4 and sorted(alerts) == ["al-1", "al-2"]
    assert (alerts["al-1"].escalation_level, alerts["al-2"].escalation_level) == (3, 1)
    assert len(escalations(alerts["al-1"])) == 3
    # Firing an already fired deadline again changes nothing.
    old = Deadline("es-ack-1-al-1", "ack", "al-1", None, 1, T0 + 5 * MIN, 5 * MIN)
    assert escalated(alerts["al-1"], old, None) == alerts["al-1"]  # idempotent


def test_fire_all_catches_up_one_chain() -> None:
    alert = new_alert("high")
    d = next_deadline(alert, None, CONFIG)
    assert d is not None
    fired, nxt = fire_all(d, alert, None, T0 + 12 * MIN, CONFIG)
    assert [e.escalation_level for e in fired] == [1, 2]
    assert {e.id for e in fired} == {"al-1"} and len(escalations(fired[-1])) == 2
    assert nxt is not None and nxt.level == 3 and nxt.due_at == T0 + 15 * MIN
    acked = lc.ack(fired[-1], ts=T0 + 13 * MIN, **OFFICER)
    assert fire_all(nxt, acked, None, T0 + 99 * MIN, CONFIG) == ((), None)


def test_due_returns_overdue_deadlines_in_order() -> None:
    ds = [Deadline(f"d{i}", "ack", f"al-{i}", None, 1, T0 + t, 60.0)
          for i, t in enumerate([30, 10, 50, 10])]
    assert [d.id for d in due(ds, T0 + 30)] == ["d1", "d3", "d0"]
    assert due(ds, T0) == []


def test_task_chains_accept_then_done_within_sla() -> None:
    alerts = {"al-1": new_alert("medium")}
    tasks: dict[str, Task] = {}
    timers = Timers()
    timers.update(alerts["al-1"], None)
    alerts["al-1"] = lc.ack(alerts["al-1"], ts=T0 + 1 * MIN, **OFFICER)
    alert, task = lc.dispatch(alerts["al-1"], workers=["li"], ts=T0 + 2 * MIN, **OFFICER)
    alerts["al-1"], tasks[task.id] = alert, task
    timers.update(alert, task)
    d = timers.deadlines["al-1"]
    assert (d.kind, d.task_id, d.due_at) == ("accept", "tk-al-1-1", T0 + 12 * MIN)
    assert timers.tick(T0 + 23 * MIN, alerts, tasks) == ["es-accept-1-tk-al-1-1",
                                                         "es-accept-2-tk-al-1-1"]
    assert [n for _, n in escalations(alerts["al-1"])] == [
        "Task tk-al-1-1 not accepted for 10 min (level 1)",
        "Task tk-al-1-1 not accepted for 20 min (level 2)"]
    alert = alerts["al-1"]
    task = lc.accept(task, ts=T0 + 24 * MIN, **WORKER)
    tasks[task.id] = task
    timers.update(alert, task)
    d = timers.deadlines["al-1"]
    assert (d.kind, d.level, d.due_at) == ("done", 1, T0 + 122 * MIN)
    assert timers.tick(T0 + 155 * MIN, alerts, tasks) == ["es-done-1-tk-al-1-1",
                                                          "es-done-2-tk-al-1-1"]
    assert escalations(alerts["al-1"])[-1] == (
        T0 + 152 * MIN, "Task tk-al-1-1 not done, 30 min past its SLA (level 2)")
    assert alerts["al-1"].escalation_level == 2  # the highest level so far
    task = lc.arrive(task, ts=T0 + 156 * MIN, **WORKER)
    tasks[task.id] = task
    timers.update(alerts["al-1"], task)
    assert timers.deadlines["al-1"].level == 3  # same chain: levels already fired stay fired
    task, alert = lc.done(task, alerts["al-1"], ts=T0 + 157 * MIN, note="ok", **WORKER)
    alerts["al-1"], tasks[task.id] = alert, task
    timers.update(alert, task)
    assert timers.deadlines == {}


def test_rejected_task_and_old_escalation_alerts_have_no_deadline() -> None:
    alert = lc.ack(new_alert(), ts=T0, **OFFICER)
    alert, task = lc.dispatch(alert, workers=["li"], ts=T0, **OFFICER)
    task, alert = lc.reject(task, alert, ts=T0 + 1, note="busy", **WORKER)
    assert next_deadline(alert, task, CONFIG) is None
    # A separate escalation alert stored before escalations raised their alert.
    old = replace(new_alert(), id="es-ack-1-al-1", kind="escalation", escalation_level=1)
    assert next_deadline(old, None, CONFIG) is None


def test_an_alert_stored_before_escalated_at_still_loads() -> None:
    data = new_alert().to_dict()
    del data["escalated_at"]
    assert Alert.from_dict(data) == new_alert()
    with pytest.raises(ValueError, match="Alert.escalation_level: missing"):
        Alert.from_dict({k: v for k, v in data.items() if k != "escalation_level"})


def test_severity_growth_keeps_the_level_and_shortens_the_wait() -> None:
    low = new_alert("low")
    first = next_deadline(low, None, CONFIG)
    assert first is not None and first.due_at == T0 + 60 * MIN
    _, second = fire(first, low, None, T0 + 60 * MIN, CONFIG)
    assert second is not None
    grown = replace(low, severity="high")
    d = next_deadline(grown, None, CONFIG, current=second)
    assert d is not None and (d.level, d.due_at) == (2, T0 + 10 * MIN)


def test_max_level_ends_the_chain_and_config_from_minutes() -> None:
    config = EscalationConfig.from_dict({"ack_min": {"high": 2}, "accept_min": 5,
                                         "sla_min": 60, "max_level": 2})
    assert config.ack_s == {"high": 120.0, "medium": 900.0, "low": 3600.0}
    assert (config.accept_s, config.sla_s, config.max_level) == (300.0, 3600.0, 2)
    alert = new_alert()
    d = next_deadline(alert, None, config)
    assert d is not None
    fired, nxt = fire_all(d, alert, None, T0 + 99 * MIN, config)
    assert len(fired) == 2 and nxt is None
    assert next_deadline(alert, None, config, current=Deadline(
        "es-ack-3-al-1", "ack", "al-1", None, 3, T0, 120.0)) is None
    for data, message in [({"ack_min": {"urgent": 1}}, "ack_min takes"),
                          ({"accept_min": 0}, "accept_min"), ({"max_level": 0}, "max_level"),
                          ({"sla": 1}, "unknown key 'sla'")]:
        with pytest.raises(ConfigError, match=message):
            EscalationConfig.from_dict(data)
    with pytest.raises(ValueError, match="Deadline"):
        Deadline.from_dict({**d.to_dict(), "kind": "lunch"})
