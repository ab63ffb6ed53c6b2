"""Loitering scenarios: thresholds per zone type, folding, re-arm, severity, stable ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gridwatch.agents import lifecycle as lc
from gridwatch.agents.loiter import (
    LoiterConfig,
    ZoneRule,
    fold_report,
    load_config,
    loiter_alert_id,
    loiter_key,
)
from gridwatch.schemas.errors import ConfigError
from gridwatch.schemas.events import CrowdLoiter, parse_time
from gridwatch.schemas.records import Alert

T0 = parse_time("2026-11-22T07:30:00+08:00")
CONFIG = load_config()
OFFICER = {"actor": "wang", "role": "duty_officer"}


def report(people: int, dwell_s: float, *, at: float = 0.0, zone: str = "market:north-gate",
           camera: str = "cam-7", event: str | None = None) -> CrowdLoiter:
    return CrowdLoiter(event_id=event or f"ev-{at:g}", ts=T0 + at, camera_id=camera,
                       lon=121.43, lat=31.19, zone=zone, people=people, dwell_s=dwell_s)


def run(reports: list[CrowdLoiter], config: LoiterConfig = CONFIG) -> list[Alert]:
    """Feed reports through fold_report as the shell does; every alert kept, oldest first."""
    alerts: dict[str, Alert] = {}  # by id, in order of raising
    latest: dict[str, str] = {}  # loiter key -> id of its latest alert
    for r in reports:
        key = loiter_key(r)
        decision = fold_report(alerts.get(latest.get(key, "")), r, "G-12", config)
        if decision.alert is not None:
            alerts[decision.alert.id] = decision.alert
            latest[key] = decision.alert.id
    return list(alerts.values())


# ---- thresholds -------------------------------------------------------------------------


def test_bundled_config_makes_a_pharmacy_stricter_than_a_market() -> None:
    pharmacy = CONFIG.rule_for("pharmacy:Yifeng-023")
    market = CONFIG.rule_for("market:north-gate")
    assert pharmacy[0] == "pharmacy" and market[0] == "market"
    assert pharmacy[1].people < market[1].people and pharmacy[1].dwell_s < market[1].dwell_s
    assert CONFIG.rule_for("pharmacy") == pharmacy  # a known type on its own
    assert CONFIG.rule_for("bus:stop-3") == ("default", ZoneRule(5, 300.0, 600.0, "low"))
    assert CONFIG.rule_for("north-gate")[0] == "default"


@pytest.mark.parametrize(("people", "dwell", "raised"), [
    (5, 300, True),       # exactly N and exactly T
    (4, 300, False),      # one person short
    (5, 299.9, False),    # just too short
    (50, 3000, True),
])
def test_defaults_raise_at_exactly_n_people_and_t_seconds(people: int, dwell: float,
                                                            raised: bool) -> None:
    decision = fold_report(None, report(people, dwell, zone="bus:stop-3"), "G-12", CONFIG)
    assert decision.is_new is raised
    assert (decision.alert is not None) is raised
    assert decision.outcome == ("raised" if raised else "below_threshold")


def test_same_crowd_alerts_at_a_pharmacy_but_not_at_a_market() -> None:
    at_pharmacy = fold_report(None, report(3, 180, zone="pharmacy:Yifeng-023"), "G-12", CONFIG)
    at_market = fold_report(None, report(3, 180, zone="market:north-gate"), "G-12", CONFIG)
    assert at_pharmacy.is_new and not at_market.is_new
    assert at_pharmacy.alert is not None and at_pharmacy.alert.severity == "medium"  # base


def test_the_new_alert_carries_its_sources_and_numbers() -> None:
    decision = fold_report(None, report(12, 600, event="ev-a"), "G-12", CONFIG)
    alert = decision.alert
    assert alert is not None
    assert (alert.kind, alert.status, alert.grid_id, alert.ts_raised) == ("loiter", "new",
                                                                          "G-12", T0)
    assert alert.source_ids == {"camera_id": "cam-7", "zone": "market:north-gate",
                                "event_id": "ev-a", "last_event_id": "ev-a"}
    assert alert.details["reports"] == 1 and alert.details["max_people"] == 12
    assert alert.details["threshold_people"] == 12 and alert.details["zone_type"] == "market"
    assert alert.title == "12 people lingering 10 min at market:north-gate"
    assert alert.title_zh == "市场north-gate门口12人聚集逗留10分钟"
    assert alert.audit[0].action == "raise"
    assert Alert.from_dict(alert.to_dict()) == alert


# ---- folding and re-arm -------------------------------------------------------------------


def test_reports_within_rearm_fold_into_the_open_alert() -> None:
    alerts = run([
        report(6, 310, at=0, zone="bus:stop-3"),
        report(9, 400, at=120, zone="bus:stop-3"),
        report(7, 700, at=300, zone="bus:stop-3"),
        report(2, 800, at=400, zone="bus:stop-3"),  # below threshold: ignored
    ])
    assert len(alerts) == 1
    details = alerts[0].details
    assert details["reports"] == 3
    assert details["max_people"] == 9 and details["max_dwell_s"] == 700
    assert details["people"] == 7 and details["dwell_s"] == 700  # the latest report
    assert details["first_seen"] == T0 and details["last_seen"] == T0 + 300
    assert alerts[0].source_ids["last_event_id"] == "ev-300"
    assert alerts[0].title == "9 people lingering 11 min at bus:stop-3"


def test_rearm_boundary_exactly_600_s_folds_and_one_more_second_raises() -> None:
    first = fold_report(None, report(6, 300, at=0, zone="bus:x"), "G-12", CONFIG).alert
    assert first is not None
    at_edge = fold_report(first, report(6, 300, at=600, zone="bus:x"), "G-12", CONFIG)
    assert at_edge.outcome == "folded" and at_edge.alert is not None
    assert at_edge.alert.id == first.id
    after = fold_report(first, report(6, 300, at=601, zone="bus:x"), "G-12", CONFIG)
    assert after.is_new and after.alert is not None and after.alert.id != first.id


def test_rearm_counts_from_the_last_folded_report() -> None:
    alerts = run([report(6, 300, at=t, zone="bus:x") for t in (0, 500, 1000, 1500)]
                 + [report(6, 300, at=2101, zone="bus:x")])
    assert [a.details["reports"] for a in alerts] == [4, 1]


def test_other_camera_or_zone_does_not_fold() -> None:
    alerts = run([report(6, 300, at=0, zone="bus:x"), report(6, 300, at=10, zone="bus:y"),
                  report(6, 300, at=20, zone="bus:x", camera="cam-8")])
    assert len({a.id for a in alerts}) == 3
    first = alerts[0]
    with pytest.raises(ValueError, match="not about cam-7\\|bus:y"):
        fold_report(first, report(6, 300, at=30, zone="bus:y"), "G-12", CONFIG)


def test_a_replayed_report_is_not_counted_twice() -> None:
    r = report(6, 300, at=0, zone="bus:x")
    first = fold_report(None, r, "G-12", CONFIG).alert
    assert first is not None
    assert fold_report(first, r, "G-12", CONFIG).outcome == "duplicate"


def test_late_report_does_not_move_last_seen_back() -> None:
    first = fold_report(None, report(6, 300, at=100, zone="bus:x"), "G-12", CONFIG).alert
    assert first is not None
    late = fold_report(first, report(8, 320, at=40, zone="bus:x"), "G-12", CONFIG).alert
    assert late is not None
    assert late.details["first_seen"] == T0 + 40 and late.details["last_seen"] == T0 + 100
    assert late.details["people"] == 6 and late.details["max_people"] == 8


def test_a_finished_alert_suppresses_the_same_crowd_until_rearm_has_passed() -> None:
    first = fold_report(None, report(6, 300, at=0, zone="bus:x"), "G-12", CONFIG).alert
    assert first is not None
    dismissed, _ = lc.dismiss(first, ts=T0 + 100, note="queue for a bus", **OFFICER)
    quiet = fold_report(dismissed, report(6, 400, at=650, zone="bus:x"), "G-12", CONFIG)
    assert quiet.outcome == "suppressed" and quiet.alert is None
    again = fold_report(dismissed, report(6, 400, at=700, zone="bus:x"), "G-12", CONFIG)
    assert again.is_new and again.alert is not None and again.alert.id != first.id


def test_folding_keeps_the_lifecycle_state() -> None:
    first = fold_report(None, report(6, 300, at=0, zone="bus:x"), "G-12", CONFIG).alert
    assert first is not None
    acked = lc.ack(first, ts=T0 + 30, **OFFICER)
    folded = fold_report(acked, report(7, 360, at=60, zone="bus:x"), "G-12", CONFIG).alert
    assert folded is not None and folded.status == "acknowledged" and folded.audit == acked.audit


# ---- severity ------------------------------------------------------------------------------


@pytest.mark.parametrize(("people", "dwell", "severity"), [
    (5, 300, "low"), (9, 599, "low"), (10, 300, "medium"), (5, 600, "medium"),
    (19, 1199, "medium"), (20, 300, "high"), (5, 1200, "high"),
])
def test_severity_grows_with_crowd_and_dwell(people: int, dwell: float, severity: str) -> None:
    alert = fold_report(None, report(people, dwell, zone="bus:x"), "G-12", CONFIG).alert
    assert alert is not None and alert.severity == severity


def test_folding_raises_severity_and_never_lowers_it() -> None:
    first = fold_report(None, report(5, 300, at=0, zone="bus:x"), "G-12", CONFIG).alert
    assert first is not None and first.severity == "low"
    grown = fold_report(first, report(21, 300, at=60, zone="bus:x"), "G-12", CONFIG)
    assert grown.severity_changed and grown.alert is not None and grown.alert.severity == "high"
    calm = fold_report(grown.alert, report(5, 300, at=120, zone="bus:x"), "G-12", CONFIG)
    assert not calm.severity_changed and calm.alert is not None and calm.alert.severity == "high"


# ---- ids and configuration --------------------------------------------------------------


def test_ids_are_stable_across_a_replay() -> None:
    stream = [report(6, 300, at=t, zone="pharmacy:Yifeng-023") for t in (0, 60, 2000, 2100)]
    first, second = run(stream), run(stream)
    assert first == second
    assert [a.id for a in first] == [
        loiter_alert_id("cam-7", "pharmacy:Yifeng-023", "ev-0"),
        loiter_alert_id("cam-7", "pharmacy:Yifeng-023", "ev-2000"),
    ]
    assert first[0].id.startswith("al-") and len(first[0].id) == 19


def test_config_overrides_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "loiter.json"
    path.write_text(json.dumps({"rearm_s": 60, "default": {"people": 2, "dwell_s": 10},
                                "zone_types": {"School": {"people": 8}}}))
    config = load_config(path)
    assert config.default == ZoneRule(2, 10.0, 60.0, "low")
    assert config.rule_for("school:gate-1") == ("school", ZoneRule(8, 10.0, 60.0, "low"))
    bad = [
        ({"zone_types": {"x": {"people": 0}}}, "zone_types.x.people"),
        ({"default": {"dwell_s": -1}}, "default.dwell_s"),
        ({"colour": 1}, "unknown key 'colour'"),
        ({"severity_factors": {"medium": 5, "high": 2}}, "medium <= high"),
        ({"zone_types": {"x": {"base_severity": "urgent"}}}, "base_severity"),
    ]
    for data, message in bad:
        with pytest.raises(ConfigError, match=message):
            LoiterConfig.from_dict(data)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.json")
    path.write_text("{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(path)
