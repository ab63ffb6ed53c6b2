"""Checkpoint rules: rule table loading and version choice, per-scan rules, cross-grid."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from gridwatch.agents.rules import (
    RuleHit,
    RuleTable,
    Visit,
    alert_id,
    cross_grid_periods,
    evaluate_scan,
    load_rules,
    parse_rules,
)
from gridwatch.schemas.errors import ConfigError
from gridwatch.schemas.events import CheckpointScan, parse_time

H = 3600.0
T0 = parse_time("2026-11-22T10:00:00+08:00")

VERSION: dict[str, Any] = {
    "valid_from": "2020-01-01T00:00:00+08:00",
    "red_code": "high",
    "yellow_code": "medium",
    "stale_test": "medium",
    "stale_test_hours": 48,
    "cross_grid": {"window_hours": 24, "min_grids": 2, "severity": "high"},
}


def table_of(*versions: dict[str, Any]) -> RuleTable:
    return parse_rules({"versions": [dict(VERSION, **v) for v in versions] or [VERSION]})


TABLE = table_of()


def scan(
    color: str = "green",
    ts: float = T0,
    tested: float | None = None,
    event_id: str = "ev-1",
    person: str = "p-1",
    checkpoint: str = "cp-7",
) -> CheckpointScan:
    return CheckpointScan(
        event_id=event_id,
        ts=ts,
        checkpoint_id=checkpoint,
        lon=121.43,
        lat=31.18,
        person_ref=person,
        code_color=color,
        direction="in",
        last_negative_test_at=tested,
    )


# ---- configuration -------------------------------------------------------------------


def test_bundled_default_loads() -> None:
    table = load_rules()
    version = table.at(T0)
    severities = (version.red_code, version.yellow_code, version.stale_test)
    assert severities == ("high", "medium", "medium")
    assert version.stale_test_hours == 48
    assert version.missing_test_is_stale is True
    assert (version.cross_grid, version.cross_grid_window_hours, version.cross_grid_min_grids) == (
        "high",
        24,
        2,
    )


def test_load_from_path_and_from_dict_agree(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    path.write_text(json.dumps({"versions": [VERSION]}), encoding="utf-8")
    assert load_rules(path) == load_rules({"versions": [VERSION]}) == load_rules(str(path))


def test_missing_test_is_stale_defaults_to_true() -> None:
    assert "missing_test_is_stale" not in VERSION
    assert TABLE.at(T0).missing_test_is_stale is True


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"red_code": "critical"}, "versions[0].red_code"),
        ({"valid_from": "2020-01-01T00:00:00"}, "versions[0].valid_from"),
        ({"stale_test_hours": 0}, "versions[0].stale_test_hours"),
        ({"stale_test_hours": "48"}, "versions[0].stale_test_hours"),
        ({"missing_test_is_stale": "yes"}, "missing_test_is_stale"),
        ({"colour": "red"}, "unknown key 'colour'"),
        ({"cross_grid": {"window_hours": 24, "min_grids": 1, "severity": "high"}}, "min_grids"),
        ({"cross_grid": {"window_hours": -1, "min_grids": 2, "severity": "high"}}, "window_hours"),
        ({"cross_grid": {"window_hours": 24, "min_grids": 2}}, "missing key 'severity'"),
        (
            {"cross_grid": {"window_hours": 24, "min_grids": 2, "severity": "high", "x": 1}},
            "unknown key 'x'",
        ),
        ({"cross_grid": 24}, "versions[0].cross_grid"),
    ],
)
def test_malformed_version_is_refused_naming_the_problem(
    change: dict[str, Any], words: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(words)):
        parse_rules({"versions": [dict(VERSION, **change)]})


def test_missing_key_is_refused() -> None:
    broken = copy.deepcopy(VERSION)
    del broken["yellow_code"]
    with pytest.raises(ConfigError, match="missing key 'yellow_code'"):
        parse_rules({"versions": [broken]})


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({"versions": []}, "non-empty list"),
        ({}, "non-empty list"),
        ([], "JSON object"),
        ({"versions": [VERSION], "extra": 1}, "unknown key 'extra'"),
        ({"versions": [VERSION, VERSION]}, "versions[1].valid_from: same time as versions[0]"),
        ({"versions": ["v1"]}, "versions[0]: must be an object"),
    ],
)
def test_malformed_table_is_refused(config: Any, words: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(words)):
        parse_rules(config)


def test_unreadable_or_invalid_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_rules(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_rules(bad)


# ---- version selection by event time -------------------------------------------------


def test_version_in_force_is_chosen_by_event_time() -> None:
    table = table_of(
        # listed out of order on purpose: the table sorts by valid_from
        {"valid_from": "2022-06-01T00:00:00+08:00", "stale_test_hours": 72, "yellow_code": None},
        {},
    )
    switch = parse_time("2022-06-01T00:00:00+08:00")
    assert table.at(switch - 1).stale_test_hours == 48
    assert table.at(switch).stale_test_hours == 72  # valid_from is inclusive
    assert table.at(switch + 86400 * 365).stale_test_hours == 72
    # an event older than every version uses the first one
    assert table.at(0.0).stale_test_hours == 48


def test_rules_follow_the_version_of_the_event_not_the_newest() -> None:
    table = table_of(
        {}, {"valid_from": "2022-06-01T00:00:00+08:00", "stale_test_hours": 72, "yellow_code": None}
    )
    switch = parse_time("2022-06-01T00:00:00+08:00")
    old, new = switch - H, switch + H
    assert [h.rule for h in evaluate_scan(scan("yellow", ts=old), "G1", table)] == ["yellow_code"]
    assert evaluate_scan(scan("yellow", ts=new), "G1", table) == []
    # 60 h old test: stale under 48 h, valid under 72 h
    assert evaluate_scan(scan("green", ts=old, tested=old - 60 * H), "G1", table)
    assert evaluate_scan(scan("green", ts=new, tested=new - 60 * H), "G1", table) == []


# ---- per-scan rules ------------------------------------------------------------------


def test_red_code_raises_a_high_alert() -> None:
    [hit] = evaluate_scan(scan("red"), "G1", TABLE)
    assert (hit.rule, hit.severity, hit.grid_id, hit.ts) == ("red_code", "high", "G1", T0)
    assert hit.source_ids == {"checkpoint_id": "cp-7", "event_id": "ev-1", "person_ref": "p-1"}
    assert "cp-7" in hit.title and "红码" in hit.title_zh


def test_yellow_code_raises_a_medium_alert() -> None:
    [hit] = evaluate_scan(scan("yellow"), "G2", TABLE)
    assert (hit.rule, hit.severity, hit.grid_id) == ("yellow_code", "medium", "G2")
    assert "黄码" in hit.title_zh


def test_green_with_fresh_test_raises_nothing() -> None:
    assert evaluate_scan(scan("green", tested=T0 - 3 * H), "G1", TABLE) == []


def test_exactly_48_hours_is_not_stale() -> None:
    assert evaluate_scan(scan("green", tested=T0 - 48 * H), "G1", TABLE) == []


def test_48_hours_and_one_second_is_stale() -> None:
    [hit] = evaluate_scan(scan("green", tested=T0 - 48 * H - 1), "G1", TABLE)
    assert (hit.rule, hit.severity) == ("stale_test", "medium")
    assert hit.details["reason"] == "too_old"
    assert hit.details["limit_hours"] == 48
    assert "not valid" in hit.title and "通行无效" in hit.title_zh


def test_exactly_48_hours_with_fractional_seconds_is_not_stale() -> None:
    ts = parse_time("2026-11-22T10:00:00.123457+08:00")
    tested = parse_time("2026-11-20T10:00:00.123457+08:00")
    assert evaluate_scan(scan("green", ts=ts, tested=tested), "G1", TABLE) == []
    one_us_older = parse_time("2026-11-20T10:00:00.123456+08:00")
    assert evaluate_scan(scan("green", ts=ts, tested=one_us_older), "G1", TABLE)


def test_green_without_any_test_is_stale_by_default() -> None:
    [hit] = evaluate_scan(scan("green", tested=None), "G1", TABLE)
    assert (hit.rule, hit.severity) == ("stale_test", "medium")
    assert hit.details["reason"] == "no_test"
    assert hit.details["last_negative_test_at"] is None


def test_green_without_test_can_be_configured_as_valid() -> None:
    table = table_of({"missing_test_is_stale": False})
    assert evaluate_scan(scan("green", tested=None), "G1", table) == []


def test_test_dated_after_the_scan_is_not_stale() -> None:
    assert evaluate_scan(scan("green", tested=T0 + 60), "G1", TABLE) == []


def test_rules_switched_off_raise_nothing() -> None:
    table = table_of({"red_code": None, "yellow_code": None, "stale_test": None})
    assert evaluate_scan(scan("red"), "G1", table) == []
    assert evaluate_scan(scan("yellow"), "G1", table) == []
    assert evaluate_scan(scan("green", tested=None), "G1", table) == []


def test_unassigned_checkpoint_keeps_grid_none() -> None:
    [hit] = evaluate_scan(scan("red"), None, TABLE)
    assert hit.grid_id is None


def test_alert_id_is_stable_and_distinct_per_event_and_rule() -> None:
    first = evaluate_scan(scan("red", event_id="ev-9"), "G1", TABLE)[0]
    fresh_table = load_rules({"versions": [VERSION]})
    replay = evaluate_scan(scan("red", event_id="ev-9"), "G1", fresh_table)[0]
    other = evaluate_scan(scan("red", event_id="ev-10"), "G1", TABLE)[0]
    assert first.alert_id == replay.alert_id == alert_id("red_code", "ev-9")
    assert re.fullmatch(r"al-[0-9a-f]{16}", first.alert_id)
    assert other.alert_id != first.alert_id
    assert alert_id("yellow_code", "ev-9") != first.alert_id


def test_hit_is_frozen_and_json_ready() -> None:
    [hit] = evaluate_scan(scan("green", tested=T0 - 50 * H), "G1", TABLE)
    with pytest.raises(AttributeError):
        hit.severity = "low"  # type: ignore[misc,unused-ignore]
    data = json.loads(json.dumps(hit.to_dict(), ensure_ascii=False))
    assert set(data) == set(RuleHit.__dataclass_fields__)
    assert data["details"]["test_age_hours"] == 50.0


# ---- cross-grid movement -------------------------------------------------------------


def red(ts: float = T0, event_id: str = "ev-x") -> CheckpointScan:
    return scan("red", ts=ts, event_id=event_id)


def cross_grid_hit(person: str, visits: list[tuple[float, str | None]], scan_: CheckpointScan,
                   grid: str | None, table: RuleTable) -> RuleHit | None:
    """What the worker decides when ``scan_`` arrives after ``visits`` (the same
    (time, grid) counts once): the alert of the latest period the scan touches, with the
    grid of its raise and the details of all its windows; None when it touches none."""
    if scan_.code_color != "red":
        return None  # only red-code scans are visits
    known = {(ts, g): Visit(ts, g, f"v{i}") for i, (ts, g) in enumerate(visits)}
    known[(scan_.ts, grid)] = Visit(scan_.ts, grid, scan_.event_id, scan_.checkpoint_id)
    out = cross_grid_periods(person, list(known.values()), [scan_.ts], table)
    if not out:
        return None
    return max(out.values(), key=lambda o: o.latest.ts).latest


def test_one_grid_only_raises_nothing() -> None:
    visits = [(T0 - 5 * H, "G1"), (T0 - 2 * H, "G1")]
    assert cross_grid_hit("p-1", visits, red(), "G1", TABLE) is None


def test_two_grids_within_24_hours_raise_a_high_alert_naming_both() -> None:
    hit = cross_grid_hit("p-1", [(T0 - 3 * H, "G1")], red(), "G2", TABLE)
    assert hit is not None
    assert (hit.rule, hit.severity, hit.grid_id) == ("cross_grid", "high", "G2")
    assert hit.details["grids"] == ["G1", "G2"]
    assert "G1" in hit.title and "G2" in hit.title
    assert "G1、G2" in hit.title_zh
    assert hit.source_ids["person_ref"] == "p-1"
    json.dumps(hit.to_dict(), ensure_ascii=False)


def test_two_grids_exactly_24_hours_apart_raise_an_alert() -> None:
    assert cross_grid_hit("p-1", [(T0 - 24 * H, "G1")], red(), "G2", TABLE) is not None


def test_two_grids_24_hours_and_one_second_apart_raise_nothing() -> None:
    assert cross_grid_hit("p-1", [(T0 - 24 * H - 1, "G1")], red(), "G2", TABLE) is None
    # the same gap seen from the other side (a late event arriving after the later one)
    assert cross_grid_hit("p-1", [(T0 + 24 * H + 1, "G1")], red(), "G2", TABLE) is None


def test_only_red_scans_in_a_grid_can_fire() -> None:
    visits = [(T0 - H, "G1")]
    assert cross_grid_hit("p-1", visits, scan("yellow"), "G2", TABLE) is None
    assert cross_grid_hit("p-1", visits, red(), None, TABLE) is None
    assert cross_grid_hit("p-1", [(T0 - H, None)], red(), "G2", TABLE) is None


def test_rule_switched_off_raises_nothing() -> None:
    table = table_of({"cross_grid": {"window_hours": 24, "min_grids": 2, "severity": None}})
    assert cross_grid_hit("p-1", [(T0 - H, "G1")], red(), "G2", table) is None


def test_alert_id_is_stable_on_replay_and_for_further_scans() -> None:
    visits = [(T0 - 3 * H, "G1")]
    first = cross_grid_hit("p-1", visits, red(), "G2", TABLE)
    replay = cross_grid_hit("p-1", list(visits), red(), "G2", TABLE)
    assert first is not None and replay is not None
    assert first == replay
    # the stored visits may already hold the current scan: same answer
    assert cross_grid_hit("p-1", [*visits, (T0, "G2")], red(), "G2", TABLE) == first
    # further scans of the same episode update the same alert, with the grids named
    later = cross_grid_hit("p-1", [*visits, (T0, "G2")], red(T0 + 2 * H, "ev-y"), "G3", TABLE)
    assert later is not None
    assert later.alert_id == first.alert_id
    assert later.details["grids"] == ["G1", "G2", "G3"]
    # another person, another alert
    other = cross_grid_hit("p-2", visits, red(), "G2", TABLE)
    assert other is not None and other.alert_id != first.alert_id


def test_a_new_episode_days_later_gets_a_new_alert_id() -> None:
    first = cross_grid_hit("p-1", [(T0 - H, "G1")], red(), "G2", TABLE)
    later_ts = T0 + 3 * 86400
    visits = [(T0 - H, "G1"), (T0, "G2"), (later_ts - H, "G1")]
    again = cross_grid_hit("p-1", visits, red(later_ts), "G2", TABLE)
    assert first is not None and again is not None
    assert again.alert_id != first.alert_id
    assert again.details["grids"] == ["G1", "G2"]


def test_late_event_earlier_than_stored_visits_is_judged_by_event_time() -> None:
    hit = cross_grid_hit("p-1", [(T0 + 5 * H, "G2")], red(T0), "G1", TABLE)
    assert hit is not None
    assert hit.details["grids"] == ["G1", "G2"]


def test_min_grids_three_needs_three_grids_in_one_window() -> None:
    table = table_of({"cross_grid": {"window_hours": 24, "min_grids": 3, "severity": "high"}})
    assert cross_grid_hit("p-1", [(T0 - H, "G1")], red(), "G2", table) is None
    # G1 and G3 are both within 24 h of the scan but 30 h from each other
    spread = [(T0 - 15 * H, "G1"), (T0 + 15 * H, "G3")]
    assert cross_grid_hit("p-1", spread, red(), "G2", table) is None
    hit = cross_grid_hit("p-1", [(T0 - 15 * H, "G1"), (T0 - 2 * H, "G3")], red(), "G2", table)
    assert hit is not None and hit.details["grids"] == ["G1", "G3", "G2"]


def test_visit_horizon_covers_two_of_the_longest_windows_and_a_day() -> None:
    table = table_of(
        {},
        {
            "valid_from": "2023-01-01T00:00:00+08:00",
            "cross_grid": {"window_hours": 36, "min_grids": 2, "severity": "high"},
        },
    )
    assert table.visit_horizon_s(600) == 2 * 36 * H + 24 * H
    assert table.visit_horizon_s(2 * 86400) == 2 * 36 * H + 48 * H


