"""Checkpoint rules: a versioned rule table and the pure decisions over one scan.

Nothing here touches Kafka, Redis or the clock: every function takes plain data and
returns plain data, so a replay of the same events gives the same hits, with the same
alert ids.

The rule table (``gridwatch/data/rules.json`` by default) is a list of versions, each
in force from its ``valid_from`` time until the next version's. Every version is
complete (nothing is inherited from the previous one)::

    {"versions": [{
        "valid_from": "2020-01-01T00:00:00+08:00",
        "red_code": "high",            # severity, or null to switch the rule off
        "yellow_code": "medium",
        "stale_test": "medium",
        "stale_test_hours": 48,        # a test older than this (strictly) is stale
        "missing_test_is_stale": true, # optional, default true
        "cross_grid": {"window_hours": 24, "min_grids": 2, "severity": "high"},
        "note": "free text"            # optional
    }]}

Rules over one scan (:func:`evaluate_scan`):

* red code -> ``red_code`` hit; yellow code -> ``yellow_code`` hit;
* green code whose ``last_negative_test_at`` is more than ``stale_test_hours`` before
  the scan -> ``stale_test`` hit (the pass is not valid). Exactly ``stale_test_hours``
  is still valid. A green code with no test on record (``null``) is treated as stale
  (details ``reason: "no_test"``) unless ``missing_test_is_stale`` is false: without
  a negative test the pass cannot be valid.

Cross-grid movement (:func:`cross_grid_periods`): see that function for the exact rule;
it is a function of a person's visits alone, so any arrival order gives the same alerts.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Union

from ..schemas.errors import ConfigError
from ..schemas.events import CheckpointScan, format_time, parse_time
from ..settings import DATA_DIR

DEFAULT_RULES_PATH = DATA_DIR / "rules.json"
SEVERITIES = ("high", "medium", "low")
RULES = ("red_code", "yellow_code", "stale_test", "cross_grid")

RulesSource = Union[str, "os.PathLike[str]", Mapping[str, Any], None]

_US = 1_000_000
_VERSION_KEYS = {
    "valid_from",
    "red_code",
    "yellow_code",
    "stale_test",
    "stale_test_hours",
    "missing_test_is_stale",
    "cross_grid",
    "note",
}
_OPTIONAL_KEYS = {"missing_test_is_stale", "note"}
_CROSS_KEYS = {"window_hours", "min_grids", "severity"}


def _us(seconds: float) -> int:
    # Event times are parsed to whole microseconds; epoch floats near 1.7e9 carry
    # about 0.24 us of error, so rounding to microseconds makes "exactly 48 h" and
    # "exactly 24 h" compare exactly instead of by float luck.
    return round(seconds * _US)


@dataclass(frozen=True)
class RuleVersion:
    """One version of the rule table; severities are ``None`` when a rule is off."""

    valid_from: float
    red_code: str | None
    yellow_code: str | None
    stale_test: str | None
    stale_test_hours: float
    missing_test_is_stale: bool
    cross_grid: str | None
    cross_grid_window_hours: float
    cross_grid_min_grids: int
    note: str = ""

    @property
    def label(self) -> str:
        """The version's ``valid_from`` as RFC 3339 UTC, used in hit details."""
        return format_time(self.valid_from)


@dataclass(frozen=True)
class RuleTable:
    """Rule versions sorted by ``valid_from``; :meth:`at` picks the one in force."""

    versions: tuple[RuleVersion, ...]
    _starts: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.versions:
            raise ConfigError("rules config: versions: needs at least one version")
        ordered = tuple(sorted(self.versions, key=lambda v: v.valid_from))
        object.__setattr__(self, "versions", ordered)
        object.__setattr__(self, "_starts", tuple(v.valid_from for v in ordered))

    def at(self, ts: float) -> RuleVersion:
        """The version in force at event time ``ts`` (UTC epoch seconds).

        A version is in force from its ``valid_from`` (inclusive) to the next one's.
        Events older than the first version use the first version, so no event goes
        unevaluated.
        """
        index = bisect_right(self._starts, ts) - 1
        return self.versions[max(0, index)]

    def visit_horizon_s(self, grace_s: float = 600.0) -> float:
        """How far behind a person's newest visit red-code visits are kept (and read).

        A new visit can change the alert of a period whose windows start up to one
        window before it, and those windows reach one window further back: two of the
        longest windows. A day more (or the grace, if longer) lets a visit that arrives
        late still see every visit of its periods; a visit later than that relative to
        the same person's others is decided from what is kept.

        Args:
            grace_s: the event-time grace for late events.
        """
        longest = max(v.cross_grid_window_hours for v in self.versions) * 3600.0
        return 2 * longest + max(grace_s, 86400.0)


@dataclass(frozen=True)
class RuleHit:
    """One rule firing on one scan: the alert to raise (or update, by ``alert_id``).

    ``alert_id`` is derived only from the rule and the event data, so a replay yields
    the same id and downstream consumers can upsert instead of duplicating.
    """

    alert_id: str
    rule: str
    severity: str
    grid_id: str | None
    ts: float
    title: str
    title_zh: str
    source_ids: dict[str, str]
    details: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The hit as JSON-ready plain data (``ts`` stays epoch seconds)."""
        return {
            "alert_id": self.alert_id,
            "rule": self.rule,
            "severity": self.severity,
            "grid_id": self.grid_id,
            "ts": self.ts,
            "title": self.title,
            "title_zh": self.title_zh,
            "source_ids": dict(self.source_ids),
            "details": dict(self.details),
        }


def alert_id(rule: str, key: str) -> str:
    """The stable alert id of ``rule`` fired for ``key``: ``"al-"`` + 16 hex of sha1."""
    return "al-" + hashlib.sha1(f"{rule}|{key}".encode()).hexdigest()[:16]


# ---- configuration -------------------------------------------------------------------


def _severity(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) and value in SEVERITIES:
        return value
    raise ConfigError(f"rules config: {where}: must be one of high, medium, low or null")


def _positive(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"rules config: {where}: must be a number")
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"rules config: {where}: must be a positive number")
    return float(value)


def _parse_version(raw: Any, where: str) -> RuleVersion:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"rules config: {where}: must be an object")
    unknown = sorted(set(raw) - _VERSION_KEYS)
    if unknown:
        raise ConfigError(f"rules config: {where}: unknown key {unknown[0]!r}")
    missing = sorted(_VERSION_KEYS - _OPTIONAL_KEYS - set(raw))
    if missing:
        raise ConfigError(f"rules config: {where}: missing key {missing[0]!r}")
    try:
        valid_from = parse_time(raw["valid_from"])
    except (TypeError, ValueError):
        raise ConfigError(
            f"rules config: {where}.valid_from: must be an RFC 3339 time with an offset"
        ) from None
    missing_is_stale = raw.get("missing_test_is_stale", True)
    if not isinstance(missing_is_stale, bool):
        raise ConfigError(f"rules config: {where}.missing_test_is_stale: must be true or false")
    note = raw.get("note", "")
    if not isinstance(note, str):
        raise ConfigError(f"rules config: {where}.note: must be a string")
    cross = raw["cross_grid"]
    if not isinstance(cross, Mapping):
        raise ConfigError(f"rules config: {where}.cross_grid: must be an object")
    if set(cross) != _CROSS_KEYS:
        bad = min(set(cross) ^ _CROSS_KEYS)
        problem = "unknown" if bad in cross else "missing"
        raise ConfigError(f"rules config: {where}.cross_grid: {problem} key {bad!r}")
    min_grids = cross["min_grids"]
    if isinstance(min_grids, bool) or not isinstance(min_grids, int) or min_grids < 2:
        raise ConfigError(f"rules config: {where}.cross_grid.min_grids: must be an integer >= 2")
    return RuleVersion(
        valid_from=valid_from,
        red_code=_severity(raw["red_code"], f"{where}.red_code"),
        yellow_code=_severity(raw["yellow_code"], f"{where}.yellow_code"),
        stale_test=_severity(raw["stale_test"], f"{where}.stale_test"),
        stale_test_hours=_positive(raw["stale_test_hours"], f"{where}.stale_test_hours"),
        missing_test_is_stale=missing_is_stale,
        cross_grid=_severity(cross["severity"], f"{where}.cross_grid.severity"),
        cross_grid_window_hours=_positive(
            cross["window_hours"], f"{where}.cross_grid.window_hours"
        ),
        cross_grid_min_grids=min_grids,
        note=note,
    )


def parse_rules(config: Mapping[str, Any]) -> RuleTable:
    """Build a rule table from already-parsed JSON.

    Args:
        config: ``{"versions": [...]}`` (an optional ``"description"`` string is allowed).

    Returns:
        The table, versions sorted by ``valid_from``.

    Raises:
        ConfigError: naming the first problem (path of the key and what is wrong).
    """
    if not isinstance(config, Mapping):
        raise ConfigError("rules config: must be a JSON object")
    unknown = sorted(set(config) - {"versions", "description"})
    if unknown:
        raise ConfigError(f"rules config: unknown key {unknown[0]!r}")
    raw_versions = config.get("versions")
    if not isinstance(raw_versions, list) or not raw_versions:
        raise ConfigError("rules config: versions: must be a non-empty list")
    versions = [_parse_version(v, f"versions[{i}]") for i, v in enumerate(raw_versions)]
    seen: dict[float, int] = {}
    for i, version in enumerate(versions):
        if version.valid_from in seen:
            raise ConfigError(
                f"rules config: versions[{i}].valid_from: same time as "
                f"versions[{seen[version.valid_from]}]"
            )
        seen[version.valid_from] = i
    return RuleTable(tuple(versions))


def load_rules(source: RulesSource = None) -> RuleTable:
    """Load the rule table from a JSON file, or take an already-parsed dict.

    Args:
        source: a path, a parsed mapping, or ``None`` for the bundled default.

    Returns:
        The validated :class:`RuleTable`.

    Raises:
        ConfigError: the file cannot be read, is not JSON, or the table is malformed.
    """
    if isinstance(source, Mapping):
        return parse_rules(source)
    path = DEFAULT_RULES_PATH if source is None else source
    try:
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
    except OSError as exc:
        raise ConfigError(f"rules config: cannot read {os.fspath(path)}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"rules config: {os.fspath(path)} is not valid JSON: {exc}") from None
    return parse_rules(config)


# ---- rules over one scan -------------------------------------------------------------


def _scan_ids(scan: CheckpointScan) -> dict[str, str]:
    return {
        "checkpoint_id": scan.checkpoint_id,
        "event_id": scan.event_id,
        "person_ref": scan.person_ref,
    }


def evaluate_scan(scan: CheckpointScan, grid_id: str | None, table: RuleTable) -> list[RuleHit]:
    """Apply the per-scan rules (red, yellow, stale test) of the version in force.

    Args:
        scan: the decoded scan.
        grid_id: the grid of the scan's checkpoint, or ``None`` when unassigned.
        table: the rule table.

    Returns:
        Zero or one hit; its ``alert_id`` is ``alert_id(rule, scan.event_id)``.
    """
    version = table.at(scan.ts)
    found = _decide(scan, version)
    if found is None:
        return []
    rule, severity, title, title_zh, extra = found
    details: dict[str, Any] = {
        "code_color": scan.code_color,
        "direction": scan.direction,
        "lon": scan.lon,
        "lat": scan.lat,
        "rule_version": version.label,
        **extra,
    }
    return [
        RuleHit(
            alert_id=alert_id(rule, scan.event_id),
            rule=rule,
            severity=severity,
            grid_id=grid_id,
            ts=scan.ts,
            title=title,
            title_zh=title_zh,
            source_ids=_scan_ids(scan),
            details=details,
        )
    ]


_Decision = tuple[str, str, str, str, dict[str, Any]]  # rule, severity, title, zh, details


def _decide(scan: CheckpointScan, version: RuleVersion) -> _Decision | None:
    cp = scan.checkpoint_id
    if scan.code_color == "red":
        if version.red_code is None:
            return None
        return (
            "red_code",
            version.red_code,
            f"Red code scanned at checkpoint {cp}",
            f"卡口 {cp} 扫到红码",
            {},
        )
    if scan.code_color == "yellow":
        if version.yellow_code is None:
            return None
        return (
            "yellow_code",
            version.yellow_code,
            f"Yellow code scanned at checkpoint {cp}",
            f"卡口 {cp} 扫到黄码",
            {},
        )
    if version.stale_test is None:
        return None
    limit = version.stale_test_hours
    tested = scan.last_negative_test_at
    if tested is None:
        if not version.missing_test_is_stale:
            return None
        extra = {
            "reason": "no_test",
            "limit_hours": limit,
            "last_negative_test_at": None,
            "test_age_hours": None,
        }
        return (
            "stale_test",
            version.stale_test,
            f"No negative test on record at checkpoint {cp}: pass not valid",
            f"卡口 {cp} 绿码无核酸阴性记录，通行无效",
            extra,
        )
    age_us = _us(scan.ts - tested)
    if age_us <= _us(limit * 3600.0):  # exactly the limit is still valid
        return None
    hours = round(age_us / _US / 3600.0, 1)
    extra = {
        "reason": "too_old",
        "limit_hours": limit,
        "last_negative_test_at": format_time(tested),
        "test_age_hours": hours,
    }
    return (
        "stale_test",
        version.stale_test,
        (f"Stale test at checkpoint {cp}: last negative test {hours:g} h ago "
         f"(limit {limit:g} h), pass not valid"),
        f"卡口 {cp} 绿码核酸已 {hours:g} 小时（超过 {limit:g} 小时），通行无效",
        extra,
    )


# ---- cross-grid movement -------------------------------------------------------------


# ---- cross-grid movement, as a function of the visits alone ---------------------------


@dataclass(frozen=True)
class Visit:
    """One red-code scan of a person, as kept for the cross-grid rule."""

    ts: float
    grid: str | None
    event_id: str
    checkpoint_id: str = ""


@dataclass(frozen=True)
class CrossGrid:
    """The cross-grid alert of one person and period, from every visit known.

    ``raised``: the hit at the visit that first completed a qualifying window (its
    time, grid and scan are the alert's raise); ``latest``: the same alert's title and
    details over every qualifying window of the period, at its last visit.
    """

    raised: RuleHit
    latest: RuleHit


def cross_grid_periods(person_ref: str, visits: Iterable[Visit], new: Iterable[float],
                       table: RuleTable) -> dict[str, CrossGrid]:
    """The cross-grid alerts that the visits at times ``new`` may have changed,
    computed from ``visits`` (which include them) alone: the same set of visits gives
    the same alerts whatever order they arrived in and however they were batched.

    The rule, with ``W`` = ``cross_grid.window_hours`` and ``N`` =
    ``cross_grid.min_grids`` of the version in force at a window's start:

    * a window starts at a visit ``s`` and holds the visits from ``s`` to ``s + W``
      (both ends inclusive; visits without a grid do not count);
    * it qualifies when it holds visits in at least ``N`` distinct grids; it is
      *completed* at the first of its visits (in time order) that brings the count to
      ``N``;
    * the person's alert of period ``k = floor((s - valid_from) / W)`` exists when a
      qualifying window starts in that period: one alert per person and period at most,
      id ``alert_id("cross_grid", f"{person_ref}|{k}")``;
    * it is raised at the earliest completion among those windows (its time, grid and
      scan; ties by grid, then event id), and describes the union of their visits (the
      grids in order of first visit, how many visits, the first and last seen).

    More visits can only add qualifying windows, so an alert once raised stays; a late
    visit can move its raise earlier (to another grid or hour).

    Args:
        visits: the person's red-code visits from at least ``2 W`` before the earliest
            of ``new`` onwards (the windows of every period a new visit touches).
        new: the times of the visits this batch added.
    """
    ordered = sorted({(_us(v.ts), v.grid, v.event_id, v.checkpoint_id)
                      for v in visits if v.grid is not None})
    new_us = sorted(_us(t) for t in new)
    if not ordered or not new_us:
        return {}
    longest = max(_us(v.cross_grid_window_hours * 3600.0) for v in table.versions)
    lo, hi = new_us[0] - longest, new_us[-1]
    # periods touched: those of windows that can contain a new visit
    touched: set[str] = set()
    windows: dict[str, list[tuple[int, int, int, RuleVersion, int]]] = {}
    for i, (start, _, _, _) in enumerate(ordered):
        version = table.at(start / _US)
        if version.cross_grid is None:
            continue
        window = _us(version.cross_grid_window_hours * 3600.0)
        seen: dict[str, None] = {}
        done = -1
        end = i
        for j in range(i, len(ordered)):
            if ordered[j][0] > start + window:
                break
            end = j
            seen.setdefault(ordered[j][1], None)  # type: ignore[arg-type]
            if done < 0 and len(seen) >= version.cross_grid_min_grids:
                done = j
        window_s = window / _US
        period = math.floor((start / _US - version.valid_from) / window_s)
        aid = alert_id("cross_grid", f"{person_ref}|{period}")
        if lo <= start <= hi and any(start <= t <= start + window for t in new_us):
            touched.add(aid)
        if done >= 0:
            windows.setdefault(aid, []).append((i, done, end, version, period))
    out: dict[str, CrossGrid] = {}
    for aid in sorted(touched & windows.keys()):
        group = windows[aid]
        i, done, _, version, period = min(
            group, key=lambda w: (ordered[w[1]][0], ordered[w[1]][1], ordered[w[1]][2], w[0]))
        union = sorted({k for s, _, e, _, _ in group for k in range(s, e + 1)})
        out[aid] = CrossGrid(
            raised=_period_hit(person_ref, aid, version, period, ordered[i:done + 1], ordered[done]),
            latest=_period_hit(person_ref, aid, version, period, [ordered[k] for k in union],
                               ordered[done], ts=ordered[union[-1]][0] / _US),
        )
    return out


def _period_hit(person_ref: str, aid: str, version: RuleVersion, period: int,
                inside: list[tuple[int, str | None, str, str]],
                at: tuple[int, str | None, str, str], *, ts: float | None = None) -> RuleHit:
    hours = version.cross_grid_window_hours
    grids = list(dict.fromkeys(g for _, g, _, _ in inside if g is not None))
    return RuleHit(
        alert_id=aid,
        rule="cross_grid",
        severity=version.cross_grid or "high",
        grid_id=at[1],
        ts=at[0] / _US if ts is None else ts,
        title=(f"Cross-grid movement: red-code person seen in {len(grids)} grids "
               f"within {hours:g} h: {', '.join(grids)}"),
        title_zh=f"红码人员 {hours:g} 小时内跨 {len(grids)} 个网格流动：{'、'.join(grids)}",
        source_ids={"checkpoint_id": at[3], "event_id": at[2], "person_ref": person_ref},
        details={
            "grids": grids,
            "window_hours": hours,
            "visits": len(inside),
            "first_seen": format_time(inside[0][0] / _US),
            "last_seen": format_time(inside[-1][0] / _US),
            "period_start": format_time(version.valid_from + period * hours * 3600.0),
            "rule_version": version.label,
        },
    )
