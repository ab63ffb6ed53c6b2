"""Grouping scenarios: N alerts of a grid within T minutes become one incident."""

from __future__ import annotations

import pytest
from gridwatch.agents import lifecycle as lc
from gridwatch.agents.grouping import GroupingConfig, attach, expire, group, members_to_tag
from gridwatch.schemas.errors import ConfigError
from gridwatch.schemas.records import Alert, Incident

T0 = 1_795_000_000.0
CONFIG = GroupingConfig()  # 3 alerts within 10 minutes


def alert(n: int, minute: float, *, grid: str | None = "G-12", severity: str = "low",
          kind: str = "loiter") -> Alert:
    return lc.raise_alert(id=f"al-{n}", kind=kind, severity=severity, grid_id=grid,
                          ts=T0 + minute * 60, title=f"alert {n}", title_zh=f"告警{n}")


class Grid:
    """One grid as the shell keeps it: its group record and its stored alerts."""

    def __init__(self, config: GroupingConfig = CONFIG) -> None:
        self.config = config
        self.record: Incident | None = None
        self.alerts: dict[str, Alert] = {}
        self.closed: list[Incident] = []

    def add(self, a: Alert) -> Alert:
        kept = expire(self.record, a.ts_raised, self.config)
        if kept is not None and kept.status == "closed":
            self.closed.append(kept)
            kept = None
        before = kept
        self.record, a = group(kept, a, self.config)
        self.alerts[a.id] = a
        for other in members_to_tag(before, self.record):
            assert self.record is not None
            self.alerts[other] = attach(self.alerts[other], self.record)
        return a


def test_three_alerts_within_ten_minutes_become_one_incident() -> None:
    grid = Grid()
    first = grid.add(alert(1, 0))
    second = grid.add(alert(2, 4, severity="high"))
    assert grid.record is not None and grid.record.status == "forming"
    assert first.incident_id is None and second.incident_id is None
    third = grid.add(alert(3, 9))
    incident = grid.record
    assert incident is not None and incident.status == "open"
    assert incident.id == "in-al-1" and incident.alert_ids == ("al-1", "al-2", "al-3")
    assert (incident.ts_first, incident.ts_last) == (T0, T0 + 540)
    assert incident.severity == "high"
    assert third.incident_id == "in-al-1"
    assert all(a.incident_id == "in-al-1" for a in grid.alerts.values())
    assert Incident.from_dict(incident.to_dict()) == incident


def test_later_alerts_join_while_within_the_window_of_the_last_one() -> None:
    grid = Grid()
    for n, minute in enumerate([0, 5, 9, 18, 27], start=1):
        grid.add(alert(n, minute))
    assert grid.record is not None and grid.record.alert_ids == tuple(f"al-{n}" for n in range(1, 6))
    assert grid.alerts["al-5"].incident_id == "in-al-1"
    members_before = len(grid.record.alert_ids)
    grid.add(alert(6, 37.5))  # more than 10 minutes after al-5: the incident closes
    assert [c.id for c in grid.closed] == ["in-al-1"] and grid.closed[0].status == "closed"
    assert len(grid.closed[0].alert_ids) == members_before
    assert grid.record is not None and grid.record.status == "forming"
    assert grid.record.id == "in-al-6" and grid.alerts["al-6"].incident_id is None


def test_window_boundary_exactly_ten_minutes_counts() -> None:
    grid = Grid()
    for n, minute in enumerate([0, 5, 10], start=1):
        grid.add(alert(n, minute))
    assert grid.record is not None and grid.record.status == "open"


def test_spread_out_alerts_never_form_an_incident_and_the_window_slides() -> None:
    grid = Grid()
    for n, minute in enumerate([0, 8, 12], start=1):
        grid.add(alert(n, minute, severity="high" if n == 1 else "low"))
    record = grid.record
    assert record is not None and record.status == "forming"
    # al-1 slid out: its severity no longer counts, and the window starts at al-2.
    assert record.alert_ids == ("al-2", "al-3") and record.id == "in-al-2"
    assert record.severity == "low"
    grid.add(alert(4, 15))
    assert grid.record is not None and grid.record.status == "open"
    assert grid.record.alert_ids == ("al-2", "al-3", "al-4")
    assert grid.alerts["al-1"].incident_id is None
    assert grid.alerts["al-2"].incident_id == "in-al-2"


def test_a_forming_record_expires_and_an_open_one_closes() -> None:
    grid = Grid()
    grid.add(alert(1, 0))
    assert expire(grid.record, T0 + 600, CONFIG) == grid.record
    assert expire(grid.record, T0 + 601, CONFIG) is None
    assert expire(None, T0, CONFIG) is None
    for n, minute in enumerate([1, 2], start=2):
        grid.add(alert(n, minute))
    closed = expire(grid.record, T0 + 2 * 60 + 601, CONFIG)
    assert closed is not None and closed.status == "closed"
    assert expire(closed, T0 + 10_000, CONFIG) == closed


def test_ungrouped_alerts_pass_through() -> None:
    record = group(None, alert(1, 0), CONFIG)[0]
    for a in (alert(2, 1, grid=None), alert(3, 1, kind="escalation")):
        after, same = group(record, a, CONFIG)
        assert after == record and same == a


def test_replaying_an_alert_does_not_add_it_twice() -> None:
    grid = Grid()
    for n in (1, 2, 3):
        grid.add(alert(n, n))
    again_record, again = group(grid.record, alert(3, 3), CONFIG)
    assert again_record == grid.record and again.incident_id == "in-al-1"


def test_another_grids_record_is_refused() -> None:
    record, _ = group(None, alert(1, 0), CONFIG)
    with pytest.raises(ValueError, match="is of grid G-12, not G-3"):
        group(record, alert(2, 1, grid="G-3"), CONFIG)


def test_one_alert_incidents_and_configuration() -> None:
    config = GroupingConfig.from_dict({"min_alerts": 1, "window_min": 2, "exclude_kinds": []})
    assert config == GroupingConfig(1, 120.0, frozenset())
    record, a = group(None, alert(1, 0, kind="escalation"), config)
    assert record is not None and record.status == "open" and a.incident_id == "in-al-1"
    assert members_to_tag(None, record) == ()
    for data, message in [({"min_alerts": 0}, "min_alerts"), ({"window_min": 0}, "window_min"),
                          ({"n": 3}, "unknown key 'n'"), ({"exclude_kinds": "x"}, "list")]:
        with pytest.raises(ConfigError, match=message):
            GroupingConfig.from_dict(data)
