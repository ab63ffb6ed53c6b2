"""A live, explainable risk score per grid, in the spirit of Xuhui's model.

The score is a weighted sum of indicators, each first normalised to 0-1::

    score = sum(weight_percent[i] * normalised[i])      # 0-100, rounded to 0.1

Bands follow the rounded score, so the colour always matches the number shown:
``red`` from 60 (exactly 60 is red), ``yellow`` from 40 up to 60 (exactly 40 is
yellow), ``blue`` below 40.

Indicators (the caller feeds the raw values; a missing one counts as 0):

========================  ===========================================================
indicator                 raw value (suggested window)
========================  ===========================================================
red_scans                 red-code scans in the grid, last 24 h
yellow_scans              yellow-code scans in the grid, last 24 h
stale_tests               stale-test hits (stale or missing test) in the grid, last 24 h
cross_grid_moves          distinct cross-grid alert ids naming the grid, last 24 h
loiter_alerts             crowd-loiter events in the grid, last 24 h
largest_crowd             most ``people`` in one crowd-loiter event, last 24 h
scan_volume_vs_last_week  :func:`volume_ratio` of this hour's scans to the same hour
                          a week earlier
open_tasks                open tasks of the grid (0 until tasks exist)
overdue_tasks             overdue tasks of the grid (0 until tasks exist)
========================  ===========================================================

Configuration (``gridwatch/data/risk.json`` by default). Weights are whole percents
(integers, so the checks are exact): each from 3 to 20 inclusive, all nine summing to
exactly 100. Each indicator names its saturating normalisation:

* ``{"norm": "cap", "cap": c}``: ``min(1, value / c)``;
* ``{"norm": "exp", "scale": s}``: ``1 - exp(-value / s)``;
* ``{"norm": "ratio", "max_ratio": m, "min_base": b}``:
  ``clamp((value - 1) / (m - 1), 0, 1)``, for ratios where 1 means "as usual"; ``b``
  is the floor :func:`volume_ratio` puts under last week's count.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Union

from .schemas.errors import ConfigError
from .settings import DATA_DIR

DEFAULT_RISK_PATH = DATA_DIR / "risk.json"
INDICATORS: tuple[str, ...] = (
    "red_scans",
    "yellow_scans",
    "stale_tests",
    "cross_grid_moves",
    "loiter_alerts",
    "largest_crowd",
    "scan_volume_vs_last_week",
    "open_tasks",
    "overdue_tasks",
)
MIN_WEIGHT = 3
MAX_WEIGHT = 20
RED_AT = 60.0
YELLOW_AT = 40.0
NORMS = {"cap": "cap", "exp": "scale", "ratio": "max_ratio"}  # norm -> its parameter

RiskSource = Union[str, "os.PathLike[str]", Mapping[str, Any], None]

LABELS: dict[str, tuple[str, str]] = {  # indicator -> (English, Chinese)
    "red_scans": ("red-code scans", "红码扫码"),
    "yellow_scans": ("yellow-code scans", "黄码扫码"),
    "stale_tests": ("stale or missing tests", "核酸过期或缺失"),
    "cross_grid_moves": ("cross-grid movements", "红码跨网格流动"),
    "loiter_alerts": ("loitering crowds", "人员聚集滞留"),
    "largest_crowd": ("largest crowd (people)", "最大聚集人数"),
    "scan_volume_vs_last_week": ("scan volume vs same hour last week", "扫码量与上周同时段之比"),
    "open_tasks": ("open tasks", "未办结任务"),
    "overdue_tasks": ("overdue tasks", "超时任务"),
}
_BAND_ZH = {"red": "红", "yellow": "黄", "blue": "蓝"}


@dataclass(frozen=True)
class IndicatorSpec:
    """One configured indicator: weight in whole percent and its normalisation."""

    name: str
    weight: int
    norm: str
    param: float
    min_base: float = 1.0

    def normalise(self, value: float) -> float:
        """Map a raw value (>= 0) to 0-1 with this indicator's saturating function."""
        if self.norm == "cap":
            return min(1.0, value / self.param)
        if self.norm == "exp":
            return 1.0 - math.exp(-value / self.param)
        return min(1.0, max(0.0, (value - 1.0) / (self.param - 1.0)))


@dataclass(frozen=True)
class RiskConfig:
    """The validated weights and normalisations, in :data:`INDICATORS` order."""

    indicators: tuple[IndicatorSpec, ...]
    _plan: tuple[tuple[str, int, int, float], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # score_grid runs for every grid a batch touches: precompute a flat plan
        # (name, weight, norm code, parameter) so the hot loop avoids method calls.
        codes = {"cap": 0, "exp": 1, "ratio": 2}
        plan = tuple((s.name, s.weight, codes[s.norm], s.param) for s in self.indicators)
        object.__setattr__(self, "_plan", plan)

    def spec(self, name: str) -> IndicatorSpec:
        """The spec of indicator ``name`` (KeyError if unknown)."""
        for spec in self.indicators:
            if spec.name == name:
                return spec
        raise KeyError(name)


class Contribution(NamedTuple):
    """What one indicator adds: raw value, 0-1 value, weight (percent) and points."""

    indicator: str
    raw: float
    normalised: float
    weight: int
    points: float


class RiskScore(NamedTuple):
    """A grid's score (0-100, one decimal), band and per-indicator contributions.

    ``contributions`` are in :data:`INDICATORS` order; their ``points`` are rounded
    to 0.1 so that they add up to ``score`` exactly (largest-remainder rounding).
    """

    score: float
    band: str
    contributions: tuple[Contribution, ...]

    def to_dict(self) -> dict[str, Any]:
        """The score as JSON-ready plain data.

        Returns:
            ``{"score": float, "band": str, "contributions": {indicator: {"raw": float,
            "normalised": float, "weight": int, "points": float}}}``, indicators in
            :data:`INDICATORS` order.
        """
        return {
            "score": self.score,
            "band": self.band,
            "contributions": {
                c.indicator: {
                    "raw": c.raw,
                    "normalised": c.normalised,
                    "weight": c.weight,
                    "points": c.points,
                }
                for c in self.contributions
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RiskScore:
        """Rebuild a score from :meth:`to_dict` output (e.g. read back from storage)."""
        return cls(
            score=float(data["score"]),
            band=str(data["band"]),
            contributions=tuple(
                Contribution(
                    name,
                    float(c["raw"]),
                    float(c["normalised"]),
                    int(c["weight"]),
                    float(c["points"]),
                )
                for name, c in data["contributions"].items()
            ),
        )


# ---- configuration -------------------------------------------------------------------


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"risk config: {where}: must be a finite number")
    return float(value)


def _parse_indicator(name: str, raw: Any) -> IndicatorSpec:
    where = f"indicator {name!r}"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"risk config: {where}: must be an object")
    weight = raw.get("weight")
    if weight is None:
        raise ConfigError(f"risk config: {where}: missing 'weight'")
    if isinstance(weight, bool) or not isinstance(weight, int):
        raise ConfigError(
            f"risk config: {where}: weight must be a whole number of percent, got {weight!r}"
        )
    if weight < MIN_WEIGHT:
        raise ConfigError(
            f"risk config: {where}: weight {weight} % is below the minimum {MIN_WEIGHT} %"
        )
    if weight > MAX_WEIGHT:
        raise ConfigError(
            f"risk config: {where}: weight {weight} % is above the maximum {MAX_WEIGHT} %"
        )
    norm = raw.get("norm")
    if norm not in NORMS:
        raise ConfigError(f"risk config: {where}: norm must be one of {', '.join(NORMS)}")
    param_name = NORMS[norm]
    allowed = {"weight", "norm", param_name, "note"} | ({"min_base"} if norm == "ratio" else set())
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(f"risk config: {where}: unknown key {unknown[0]!r} for norm {norm!r}")
    if param_name not in raw:
        raise ConfigError(f"risk config: {where}: norm {norm!r} needs {param_name!r}")
    param = _number(raw[param_name], f"{where}.{param_name}")
    floor = 1.0 if norm == "ratio" else 0.0
    if param <= floor:
        raise ConfigError(f"risk config: {where}: {param_name} must be greater than {floor:g}")
    min_base = _number(raw.get("min_base", 1.0), f"{where}.min_base")
    if min_base <= 0:
        raise ConfigError(f"risk config: {where}: min_base must be greater than 0")
    return IndicatorSpec(name, weight, norm, param, min_base)


def parse_risk_config(config: Mapping[str, Any]) -> RiskConfig:
    """Validate already-parsed JSON into a :class:`RiskConfig`.

    Args:
        config: ``{"indicators": {name: {"weight": int, "norm": ..., param...}}}``
            (an optional ``"description"`` string is allowed).

    Returns:
        The configuration, indicators in :data:`INDICATORS` order.

    Raises:
        ConfigError: naming the indicator and the rule broken (unknown or missing
            indicator, weight not a whole percent, outside 3-20 %, sum not 100 %,
            bad normalisation).
    """
    if not isinstance(config, Mapping):
        raise ConfigError("risk config: must be a JSON object")
    unknown = sorted(set(config) - {"indicators", "description"})
    if unknown:
        raise ConfigError(f"risk config: unknown key {unknown[0]!r}")
    raw = config.get("indicators")
    if not isinstance(raw, Mapping):
        raise ConfigError("risk config: 'indicators' must be an object")
    for name in raw:
        if name not in INDICATORS:
            raise ConfigError(
                f"risk config: unknown indicator {name!r} (known: {', '.join(INDICATORS)})"
            )
    for name in INDICATORS:
        if name not in raw:
            raise ConfigError(
                f"risk config: indicator {name!r} is missing; every indicator needs a weight"
            )
    specs = tuple(_parse_indicator(name, raw[name]) for name in INDICATORS)
    total = sum(s.weight for s in specs)
    if total != 100:
        raise ConfigError(f"risk config: weights sum to {total} %, must be exactly 100 %")
    return RiskConfig(specs)


def load_risk_config(source: RiskSource = None) -> RiskConfig:
    """Load the risk configuration from a JSON file, or take an already-parsed dict.

    Args:
        source: a path, a parsed mapping, or ``None`` for the bundled default.

    Returns:
        The validated :class:`RiskConfig`.

    Raises:
        ConfigError: the file cannot be read, is not JSON, or is invalid.
    """
    if isinstance(source, Mapping):
        return parse_risk_config(source)
    path = DEFAULT_RISK_PATH if source is None else source
    try:
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
    except OSError as exc:
        raise ConfigError(f"risk config: cannot read {os.fspath(path)}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"risk config: {os.fspath(path)} is not valid JSON: {exc}") from None
    return parse_risk_config(config)


# ---- scoring -------------------------------------------------------------------------


def band_for(score: float) -> str:
    """``"red"`` if ``score >= 60``, ``"yellow"`` if ``40 <= score < 60``, else ``"blue"``."""
    if score >= RED_AT:
        return "red"
    if score >= YELLOW_AT:
        return "yellow"
    return "blue"


def volume_ratio(this_hour: float, same_hour_last_week: float, config: RiskConfig) -> float:
    """The raw ``scan_volume_vs_last_week`` value: this hour's scans over last week's.

    Last week's count is floored at the indicator's ``min_base`` so that a quiet hour
    (0 or a handful of scans) does not turn one extra scan into a surge: 0 against 0
    gives 0, and 250 against 0 with ``min_base`` 100 gives 2.5.

    Args:
        this_hour: scans in the grid in the current event-time hour.
        same_hour_last_week: scans in the same hour 7 days earlier.
        config: the risk configuration (for ``min_base``).

    Returns:
        A ratio >= 0, where 1 means "as busy as last week".
    """
    base = max(same_hour_last_week, config.spec("scan_volume_vs_last_week").min_base)
    return max(this_hour, 0.0) / base


def score_grid(indicators: Mapping[str, float], config: RiskConfig) -> RiskScore:
    """Score one grid from its raw indicator values.

    Args:
        indicators: raw value per indicator name (see the module table); a missing
            indicator counts as 0.
        config: the risk configuration.

    Returns:
        The :class:`RiskScore`; ``band`` is taken from the rounded ``score``.

    Raises:
        ValueError: an unknown indicator name, or a negative or non-finite value.
    """
    if not indicators.keys() <= _KNOWN:
        bad = sorted(set(indicators) - _KNOWN)
        raise ValueError(f"unknown indicator(s): {', '.join(bad)}")
    get = indicators.get
    rows = []
    tenths = []
    floors = []
    for name, weight, code, param in config._plan:
        raw = get(name, 0.0)
        if not 0.0 <= raw < _INF:  # also refuses NaN
            raise ValueError(f"indicator {name!r}: value {raw!r} must be finite and >= 0")
        if code == 0:
            norm = raw / param
            norm = min(norm, 1.0)
        elif code == 1:
            norm = 1.0 - _exp(-raw / param)
        else:
            norm = (raw - 1.0) / (param - 1.0)
            norm = 0.0 if norm < 0.0 else min(norm, 1.0)
        exact = weight * norm * 10.0
        rows.append((name, raw, norm, weight))
        tenths.append(exact)
        floors.append(_floor(exact))
    score_tenths = _floor(sum(tenths) + 0.5)
    # Largest-remainder rounding: hand the tenths lost by flooring to the indicators
    # that lost the most, so the shown points add up to the shown score exactly.
    missing = score_tenths - sum(floors)
    if missing > 0:
        fractions = [t - f for t, f in zip(tenths, floors, strict=True)]
        for i in sorted(range(len(fractions)), key=fractions.__getitem__, reverse=True)[:missing]:
            floors[i] += 1
    contributions = tuple(
        [
            _new(Contribution, (name, float(raw), norm, weight, whole / 10.0))
            for (name, raw, norm, weight), whole in zip(rows, floors, strict=True)
        ]
    )
    score = score_tenths / 10.0
    return _new(RiskScore, (score, band_for(score), contributions))


_INF = math.inf
_exp = math.exp
_floor = math.floor
_new = tuple.__new__
_KNOWN = frozenset(INDICATORS)


# ---- explanation ---------------------------------------------------------------------


def _raw_text(contribution: Contribution) -> str:
    if contribution.indicator == "scan_volume_vs_last_week":
        return f"×{contribution.raw:.2f}"
    return f"{contribution.raw:g}"


def explain(risk_score: RiskScore, lang: str = "zh") -> list[str]:
    """Lines answering "why is this grid this colour", largest contributions first.

    Args:
        risk_score: a score from :func:`score_grid` (or :meth:`RiskScore.from_dict`).
        lang: ``"zh"`` (Simplified Chinese) or ``"en"``.

    Returns:
        A headline with score and band, then one line per indicator with points > 0.

    Raises:
        ValueError: ``lang`` is neither ``"zh"`` nor ``"en"``.
    """
    if lang not in ("zh", "en"):
        raise ValueError(f"lang must be 'zh' or 'en', not {lang!r}")
    zh = lang == "zh"
    s = risk_score.score
    if zh:
        lines = [(
            f"风险分 {s:.1f}，{_BAND_ZH.get(risk_score.band, risk_score.band)}色"
            f"（≥60 红，40–60 黄，<40 蓝）"
        )]
    else:
        lines = [(
            f"Risk score {s:.1f}, band {risk_score.band} "
            f"(red from 60, yellow from 40, blue below 40)"
        )]
    ranked = sorted(
        (c for c in risk_score.contributions if c.points > 0),
        key=lambda c: (
            -c.points,
            INDICATORS.index(c.indicator) if c.indicator in INDICATORS else len(INDICATORS),
        ),
    )
    for c in ranked:
        en, cn = LABELS.get(c.indicator, (c.indicator, c.indicator))
        if zh:
            lines.append(
                f"{cn}：{_raw_text(c)} → {c.normalised:.2f} × 权重 {c.weight}% = {c.points:.1f} 分"
            )
        else:
            lines.append(
                f"{en}: {_raw_text(c)} → {c.normalised:.2f} × weight {c.weight} % "
                f"= {c.points:.1f} points"
            )
    if not ranked:
        lines.append("各项指标均为 0。" if zh else "No indicator adds any points.")
    return lines
