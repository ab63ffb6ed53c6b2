"""Grid risk score: weights configuration, normalisation, bands, contributions, explain."""

from __future__ import annotations

import copy
import json
import math
import re
import time
from pathlib import Path
from typing import Any

import pytest
from gridwatch.schemas.errors import ConfigError
from hypothesis import given, settings
from hypothesis import strategies as st

from gridwatch.risk import (
    INDICATORS,
    RiskScore,
    band_for,
    explain,
    load_risk_config,
    parse_risk_config,
    score_grid,
    volume_ratio,
)

WEIGHTS = {
    "red_scans": 20,
    "yellow_scans": 12,
    "stale_tests": 10,
    "cross_grid_moves": 15,
    "loiter_alerts": 8,
    "largest_crowd": 10,
    "scan_volume_vs_last_week": 10,
    "open_tasks": 8,
    "overdue_tasks": 7,
}


def linear_config(weights: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every indicator as min(1, value / 100): points = weight * value / 100."""
    return {
        "indicators": {
            name: {"weight": w, "norm": "cap", "cap": 100}
            for name, w in (weights or WEIGHTS).items()
        }
    }


LINEAR = parse_risk_config(linear_config())
DEFAULT = load_risk_config()


# ---- configuration -------------------------------------------------------------------


def test_bundled_default_is_valid_and_sums_to_100() -> None:
    assert [s.name for s in DEFAULT.indicators] == list(INDICATORS)
    assert sum(s.weight for s in DEFAULT.indicators) == 100
    assert all(3 <= s.weight <= 20 for s in DEFAULT.indicators)


def test_load_from_path_and_from_dict_agree(tmp_path: Path) -> None:
    path = tmp_path / "risk.json"
    path.write_text(json.dumps(linear_config()), encoding="utf-8")
    assert load_risk_config(path) == load_risk_config(linear_config()) == LINEAR


def test_weight_of_2_percent_is_refused() -> None:
    weights = dict(WEIGHTS, open_tasks=2, overdue_tasks=13)
    with pytest.raises(ConfigError, match=r"'open_tasks': weight 2 % is below the minimum 3 %"):
        parse_risk_config(linear_config(weights))


def test_weight_of_21_percent_is_refused() -> None:
    weights = dict(WEIGHTS, red_scans=21, overdue_tasks=6)
    with pytest.raises(ConfigError, match=r"'red_scans': weight 21 % is above the maximum 20 %"):
        parse_risk_config(linear_config(weights))


def test_weights_summing_to_99_are_refused() -> None:
    weights = dict(WEIGHTS, overdue_tasks=6)
    with pytest.raises(ConfigError, match=r"weights sum to 99 %, must be exactly 100 %"):
        parse_risk_config(linear_config(weights))


def test_weights_summing_to_101_are_refused() -> None:
    weights = dict(WEIGHTS, overdue_tasks=8)
    with pytest.raises(ConfigError, match=r"weights sum to 101 %"):
        parse_risk_config(linear_config(weights))


def test_unknown_indicator_is_refused() -> None:
    config = linear_config()
    config["indicators"]["weather"] = {"weight": 5, "norm": "cap", "cap": 1}
    with pytest.raises(ConfigError, match=r"unknown indicator 'weather'"):
        parse_risk_config(config)


def test_missing_indicator_is_refused() -> None:
    config = linear_config()
    del config["indicators"]["overdue_tasks"]
    with pytest.raises(ConfigError, match=r"indicator 'overdue_tasks' is missing"):
        parse_risk_config(config)


@pytest.mark.parametrize("weight", [12.5, "12", True, None])
def test_weight_must_be_a_whole_percent(weight: Any) -> None:
    config = linear_config()
    config["indicators"]["yellow_scans"]["weight"] = weight
    words = r"indicator 'yellow_scans': (weight must be a whole|miss)"
    with pytest.raises(ConfigError, match=words):
        parse_risk_config(config)


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"weight": 8, "norm": "log", "cap": 5}, "norm must be one of cap, exp, ratio"),
        ({"weight": 8, "norm": "cap"}, "norm 'cap' needs 'cap'"),
        ({"weight": 8, "norm": "cap", "cap": 0}, "cap must be greater than 0"),
        ({"weight": 8, "norm": "exp", "scale": -1}, "scale must be greater than 0"),
        ({"weight": 8, "norm": "ratio", "max_ratio": 1}, "max_ratio must be greater than 1"),
        ({"weight": 8, "norm": "ratio", "max_ratio": 3, "min_base": 0}, "min_base must be"),
        ({"weight": 8, "norm": "cap", "cap": 5, "scale": 2}, "unknown key 'scale'"),
        ({"weight": 8, "norm": "cap", "cap": float("nan")}, "must be a finite number"),
        (8, "must be an object"),
    ],
)
def test_bad_normalisation_is_refused_naming_the_indicator(spec: Any, words: str) -> None:
    config = linear_config()
    config["indicators"]["open_tasks"] = spec
    pattern = re.escape("indicator 'open_tasks'") + ".*" + re.escape(words)
    with pytest.raises(ConfigError, match=pattern):
        parse_risk_config(config)


def test_malformed_top_level_and_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'indicators' must be an object"):
        parse_risk_config({})
    with pytest.raises(ConfigError, match="unknown key 'bands'"):
        parse_risk_config(dict(linear_config(), bands={}))
    with pytest.raises(ConfigError, match="cannot read"):
        load_risk_config(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text("[", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_risk_config(bad)


# ---- bands ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "band"),
    [(100, "red"), (60, "red"), (59.99, "yellow"), (40, "yellow"), (39.99, "blue"), (0, "blue")],
)
def test_band_boundaries(score: float, band: str) -> None:
    assert band_for(score) == band


def linear_score(points: dict[str, float]) -> RiskScore:
    """Score with LINEAR, giving each indicator the value that yields ``points``."""
    return score_grid({n: p * 100 / WEIGHTS[n] for n, p in points.items()}, LINEAR)


def test_exactly_60_points_is_red() -> None:
    result = linear_score(
        {
            "red_scans": 20,
            "yellow_scans": 12,
            "stale_tests": 10,
            "cross_grid_moves": 15,
            "loiter_alerts": 3,
        }
    )
    assert (result.score, result.band) == (60.0, "red")


def test_just_under_60_points_is_yellow() -> None:
    result = linear_score(
        {
            "red_scans": 20,
            "yellow_scans": 12,
            "stale_tests": 10,
            "cross_grid_moves": 15,
            "loiter_alerts": 2.94,
        }
    )
    assert (result.score, result.band) == (59.9, "yellow")


def test_band_follows_the_rounded_score_shown() -> None:
    # 59.96 is shown as 60.0, so it is coloured red like every other 60.0
    result = linear_score(
        {
            "red_scans": 20,
            "yellow_scans": 12,
            "stale_tests": 10,
            "cross_grid_moves": 15,
            "loiter_alerts": 2.96,
        }
    )
    assert (result.score, result.band) == (60.0, "red")


def test_exactly_40_points_is_yellow_and_just_under_is_blue() -> None:
    exact = linear_score({"red_scans": 20, "cross_grid_moves": 15, "open_tasks": 5})
    assert (exact.score, exact.band) == (40.0, "yellow")
    under = linear_score({"red_scans": 20, "cross_grid_moves": 15, "open_tasks": 4.9})
    assert (under.score, under.band) == (39.9, "blue")


def test_nothing_is_0_blue_and_everything_saturated_is_100_red() -> None:
    assert score_grid({}, DEFAULT).score == 0.0
    assert score_grid({}, DEFAULT).band == "blue"
    huge = {name: 1e9 for name in INDICATORS}
    result = score_grid(huge, DEFAULT)
    assert (result.score, result.band) == (100.0, "red")
    assert [c.points for c in result.contributions] == [float(WEIGHTS[n]) for n in INDICATORS]


# ---- normalisation -------------------------------------------------------------------


def test_normalisations_match_their_documented_formulas() -> None:
    specs = {s.name: s for s in DEFAULT.indicators}
    cap = specs["cross_grid_moves"]  # cap 2
    assert (cap.normalise(0), cap.normalise(1), cap.normalise(2), cap.normalise(9)) == (
        0.0,
        0.5,
        1.0,
        1.0,
    )
    exp = specs["red_scans"]  # scale 4
    assert exp.normalise(4) == pytest.approx(1 - math.exp(-1))
    ratio = specs["scan_volume_vs_last_week"]  # max_ratio 3
    assert [ratio.normalise(r) for r in (0.5, 1.0, 2.0, 3.0, 7.0)] == [0.0, 0.0, 0.5, 1.0, 1.0]


def test_volume_ratio_is_sane_when_last_week_was_quiet() -> None:
    assert volume_ratio(0, 0, DEFAULT) == 0.0
    assert volume_ratio(1, 0, DEFAULT) == 1 / 100  # min_base 100: one scan is no surge
    assert volume_ratio(50, 0, DEFAULT) == 0.5  # a quiet grid's 50 scans: no surge
    assert volume_ratio(250, 0, DEFAULT) == 2.5
    assert volume_ratio(300, 150, DEFAULT) == 2.0
    assert volume_ratio(150, 150, DEFAULT) == 1.0


def test_contributions_explain_every_point() -> None:
    values = {
        "red_scans": 3,
        "yellow_scans": 7,
        "largest_crowd": 60,
        "scan_volume_vs_last_week": 2.0,
    }
    result = score_grid(values, DEFAULT)
    by_name = {c.indicator: c for c in result.contributions}
    assert list(by_name) == list(INDICATORS)
    assert by_name["largest_crowd"] == ("largest_crowd", 60.0, 0.6, 10, 6.0)
    assert by_name["scan_volume_vs_last_week"].points == 5.0
    assert by_name["open_tasks"].points == 0.0  # missing counts as 0
    assert round(sum(c.points for c in result.contributions), 1) == result.score


def test_bad_indicator_values_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown indicator"):
        score_grid({"weather": 1.0}, DEFAULT)
    with pytest.raises(ValueError, match="'red_scans'"):
        score_grid({"red_scans": -1.0}, DEFAULT)
    with pytest.raises(ValueError, match="'largest_crowd'"):
        score_grid({"largest_crowd": float("nan")}, DEFAULT)
    with pytest.raises(ValueError, match="'open_tasks'"):
        score_grid({"open_tasks": float("inf")}, DEFAULT)


def test_to_dict_round_trips_through_json() -> None:
    result = score_grid({"red_scans": 4, "loiter_alerts": 1}, DEFAULT)
    data = json.loads(json.dumps(result.to_dict()))
    assert set(data) == {"score", "band", "contributions"}
    assert set(data["contributions"]["red_scans"]) == {"raw", "normalised", "weight", "points"}
    assert RiskScore.from_dict(data) == result


def test_score_grid_is_fast() -> None:
    values = {
        "red_scans": 3,
        "yellow_scans": 7,
        "stale_tests": 4,
        "cross_grid_moves": 1,
        "loiter_alerts": 2,
        "largest_crowd": 120,
        "scan_volume_vs_last_week": 2.4,
    }
    rounds = 5000
    start = time.perf_counter()
    for _ in range(rounds):
        score_grid(values, DEFAULT)
    per_call = (time.perf_counter() - start) / rounds
    # the target is < 20 us; the bound is loose so a loaded test machine does not flake
    assert per_call < 200e-6


# ---- explain -------------------------------------------------------------------------


def test_explain_lists_largest_contributions_first_in_both_languages() -> None:
    result = linear_score(
        {
            "red_scans": 20,
            "cross_grid_moves": 15,
            "yellow_scans": 12,
            "stale_tests": 10,
            "loiter_alerts": 5,
        }
    )
    zh = explain(result)
    assert zh[0].startswith("风险分 62.0") and "红" in zh[0]
    assert [line.split("：")[0] for line in zh[1:]] == [
        "红码扫码",
        "红码跨网格流动",
        "黄码扫码",
        "核酸过期或缺失",
        "人员聚集滞留",
    ]
    assert zh[1].endswith("= 20.0 分")
    en = explain(result, lang="en")
    assert en[0].startswith("Risk score 62.0, band red")
    assert en[1].startswith("red-code scans: ") and en[1].endswith("= 20.0 points")
    assert len(en) == 6  # indicators with no points are left out


def test_explain_with_no_points_and_bad_language() -> None:
    calm = score_grid({}, DEFAULT)
    assert explain(calm, "en")[-1] == "No indicator adds any points."
    assert len(explain(calm, "zh")) == 2
    with pytest.raises(ValueError, match="lang"):
        explain(calm, "fr")


# ---- properties ----------------------------------------------------------------------

_VALUES = st.one_of(
    st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False),
    st.integers(min_value=0, max_value=10_000),
)


@st.composite
def valid_weights(draw: st.DrawFn) -> dict[str, int]:
    """Nine whole percents, each 3-20, summing to 100: the default moved around."""
    weights = [WEIGHTS[name] for name in INDICATORS]
    moves = draw(st.lists(st.tuples(st.integers(0, 8), st.integers(0, 8), st.integers(1, 17))))
    for source, target, amount in moves:
        # move what both bounds allow, so every step keeps the weights valid
        amount = min(amount, weights[source] - 3, 20 - weights[target])
        if source != target and amount > 0:
            weights[source] -= amount
            weights[target] += amount
    return dict(zip(INDICATORS, weights, strict=True))


@settings(max_examples=300, deadline=None)
@given(values=st.dictionaries(st.sampled_from(INDICATORS), _VALUES), use_default=st.booleans())
def test_score_is_within_0_100_and_contributions_add_up(
    values: dict[str, float], use_default: bool
) -> None:
    config = DEFAULT if use_default else LINEAR
    result = score_grid(values, config)
    assert 0.0 <= result.score <= 100.0
    assert result.score == round(result.score, 1)
    assert round(sum(c.points for c in result.contributions), 1) == result.score
    for c in result.contributions:
        assert 0.0 <= c.normalised <= 1.0
        assert 0.0 <= c.points <= c.weight
        assert abs(c.points - c.weight * c.normalised) <= 0.1 + 1e-9
    assert result.band == band_for(result.score)


@settings(max_examples=300, deadline=None)
@given(a=st.floats(-10, 110, allow_nan=False), b=st.floats(-10, 110, allow_nan=False))
def test_band_is_monotone_in_score(a: float, b: float) -> None:
    rank = {"blue": 0, "yellow": 1, "red": 2}
    low, high = sorted((a, b))
    assert rank[band_for(low)] <= rank[band_for(high)]


@settings(max_examples=200, deadline=None)
@given(weights=valid_weights(), values=st.dictionaries(st.sampled_from(INDICATORS), _VALUES))
def test_any_valid_weighting_is_accepted_and_scores_in_range(
    weights: dict[str, int], values: dict[str, float]
) -> None:
    config = parse_risk_config(linear_config(weights))
    assert 0.0 <= score_grid(values, config).score <= 100.0


@settings(max_examples=200, deadline=None)
@given(weights=st.lists(st.integers(0, 30), min_size=9, max_size=9))
def test_config_accepted_exactly_when_weights_follow_the_rules(weights: list[int]) -> None:
    config = linear_config(dict(zip(INDICATORS, weights, strict=True)))
    valid = all(3 <= w <= 20 for w in weights) and sum(weights) == 100
    if valid:
        parse_risk_config(copy.deepcopy(config))
    else:
        with pytest.raises(ConfigError):
            parse_risk_config(config)
