"""Loitering: when a camera's crowd report becomes an alert, and how repeats fold into it.

A :class:`~gridwatch.schemas.events.CrowdLoiter` report raises an alert when
``people >= N`` and ``dwell_s >= T``, with N and T per zone type (the text before
``":"`` in the zone, e.g. ``pharmacy`` in ``"pharmacy:Yifeng-023"``; the whole zone
text when it is a known type; otherwise the defaults). Configuration is JSON,
bundled as ``gridwatch/data/loiter.json``.

Reports from the same camera and zone no later than the re-arm time after the open
alert's last report fold into it (count of reports, largest crowd, longest dwell,
last seen) instead of raising another. After an alert is resolved, closed or
dismissed, the same crowd is not raised again until the re-arm time has passed
since the later of its last report and its end (the re-arm idea of camera analytics).

Severity is the zone type's base severity (``low`` unless configured), raised to
``medium`` when the crowd or the dwell reaches ``severity_factors.medium`` (2) times
its threshold and to ``high`` at ``severity_factors.high`` (4) times; folding never
lowers it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..schemas.commands import UNRESOLVED_ALERT
from ..schemas.errors import ConfigError
from ..schemas.events import CrowdLoiter
from ..schemas.records import SEVERITIES, Alert, max_severity
from ..settings import DATA_DIR
from .lifecycle import raise_alert

DEFAULT_CONFIG_PATH = DATA_DIR / "loiter.json"
_ZONE_ZH = {"pharmacy": "药店", "clinic": "诊所", "market": "市场", "station": "车站"}


@dataclass(frozen=True)
class ZoneRule:
    """Thresholds of one zone type: a report with ``people >= people`` and
    ``dwell_s >= dwell_s`` raises an alert; repeats within ``rearm_s`` fold."""

    people: int = 5
    dwell_s: float = 300.0
    rearm_s: float = 600.0
    base_severity: str = "low"


@dataclass(frozen=True)
class LoiterConfig:
    """Loitering thresholds: defaults, per zone type, and severity factors."""

    default: ZoneRule = ZoneRule()
    zone_types: Mapping[str, ZoneRule] = field(default_factory=dict)
    medium_factor: float = 2.0
    high_factor: float = 4.0

    def rule_for(self, zone: str) -> tuple[str, ZoneRule]:
        """The zone type of ``zone`` and its rule (``("default", ...)`` when unknown)."""
        kind = zone.split(":", 1)[0].strip().lower()
        if kind in self.zone_types:
            return kind, self.zone_types[kind]
        return "default", self.default

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LoiterConfig:
        """Build the configuration from parsed JSON (see ``gridwatch/data/loiter.json``).

        Raises:
            ConfigError: an unknown key, a missing threshold or a value out of range.
        """
        _keys(data, {"v", "description", "rearm_s", "severity_factors", "default",
                     "zone_types"}, "loiter config")
        rearm = _positive(data.get("rearm_s", 600), "loiter config: rearm_s")
        default = _zone(data.get("default", {}), "default", ZoneRule(rearm_s=rearm))
        types = data.get("zone_types", {})
        if not isinstance(types, Mapping):
            raise ConfigError("loiter config: zone_types must be an object")
        factors = data.get("severity_factors", {})
        _keys(factors, {"medium", "high"}, "loiter config: severity_factors")
        medium = _positive(factors.get("medium", 2.0), "loiter config: severity_factors.medium")
        high = _positive(factors.get("high", 4.0), "loiter config: severity_factors.high")
        if not 1 <= medium <= high:
            raise ConfigError("loiter config: severity_factors need 1 <= medium <= high")
        return cls(
            default=default,
            zone_types={str(k).lower(): _zone(v, f"zone_types.{k}", default)
                        for k, v in types.items()},
            medium_factor=medium,
            high_factor=high,
        )


def _keys(data: Any, allowed: set[str], where: str) -> None:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: must be an object")
    extra = sorted(set(data) - allowed)
    if extra:
        raise ConfigError(f"{where}: unknown key {extra[0]!r}")


def _positive(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"{where}: must be a positive number, got {value!r}")
    return float(value)


def _zone(data: Any, name: str, base: ZoneRule) -> ZoneRule:
    where = f"loiter config: {name}"
    _keys(data, {"people", "dwell_s", "rearm_s", "base_severity"}, where)
    people = data.get("people", base.people)
    if isinstance(people, bool) or not isinstance(people, int) or people < 1:
        raise ConfigError(f"{where}.people: must be a whole number >= 1, got {people!r}")
    severity = data.get("base_severity", "low")
    if severity not in SEVERITIES:
        raise ConfigError(f"{where}.base_severity: must be one of {', '.join(SEVERITIES)}")
    return ZoneRule(
        people=people,
        dwell_s=_positive(data.get("dwell_s", base.dwell_s), f"{where}.dwell_s"),
        rearm_s=_positive(data.get("rearm_s", base.rearm_s), f"{where}.rearm_s"),
        base_severity=severity,
    )


def load_config(path: str | os.PathLike[str] | None = None) -> LoiterConfig:
    """Load the loitering configuration (the bundled ``loiter.json`` by default).

    Raises:
        ConfigError: the file cannot be read, is not JSON, or is malformed.
    """
    path = DEFAULT_CONFIG_PATH if path is None else Path(path)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"loiter config: cannot read {os.fspath(path)}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"loiter config: {os.fspath(path)} is not valid JSON: {exc}") from None
    return LoiterConfig.from_dict(data)


@dataclass(frozen=True)
class LoiterDecision:
    """What one report did.

    Attributes:
        alert: the new or updated alert to store and publish, or ``None`` (nothing changed).
        is_new: ``alert`` is a new alert (``outcome == "raised"``).
        outcome: ``"raised"``, ``"folded"``, ``"below_threshold"``, ``"suppressed"``
            (within re-arm of a finished alert) or ``"duplicate"`` (an event already folded).
        severity_changed: folding raised the severity (deadlines should be recomputed).
    """

    alert: Alert | None
    is_new: bool
    outcome: str
    severity_changed: bool = False


def loiter_key(report: CrowdLoiter) -> str:
    """The key under which the open alert of this camera and zone is kept."""
    return f"{report.camera_id}|{report.zone}"


def loiter_alert_id(camera_id: str, zone: str, event_id: str) -> str:
    """The stable id of the alert first raised by report ``event_id``."""
    key = f"loiter|{camera_id}|{zone}|{event_id}"
    return "al-" + hashlib.sha1(key.encode()).hexdigest()[:16]


def severity_of(people: int, dwell_s: float, rule: ZoneRule, config: LoiterConfig) -> str:
    """The severity of a crowd of ``people`` lingering ``dwell_s`` under ``rule``."""
    ratio = max(people / rule.people, dwell_s / rule.dwell_s)
    grown = "high" if ratio >= config.high_factor else (
        "medium" if ratio >= config.medium_factor else "low")
    return max_severity(grown, rule.base_severity)


def _titles(zone: str, zone_type: str, people: int, dwell_s: float) -> tuple[str, str]:
    minutes = int(dwell_s // 60)
    place = zone.split(":", 1)[1] if ":" in zone else zone
    zh = f"{_ZONE_ZH[zone_type]}{place}" if zone_type in _ZONE_ZH else zone
    return (f"{people} people lingering {minutes} min at {zone}",
            f"{zh}门口{people}人聚集逗留{minutes}分钟")


def fold_report(open_alert: Alert | None, report: CrowdLoiter, grid_id: str | None,
                config: LoiterConfig) -> LoiterDecision:
    """Decide what one crowd report does, given the latest alert of its camera and zone.

    Args:
        open_alert: the latest alert kept under :func:`loiter_key` of the report, or ``None``.
        report: the decoded report.
        grid_id: the grid the report's point falls in, or ``None``.
        config: the thresholds.

    Returns:
        a :class:`LoiterDecision`; store ``decision.alert`` under the key when it is set.

    Raises:
        ValueError: ``open_alert`` belongs to another camera or zone.
    """
    zone_type, rule = config.rule_for(report.zone)
    over = report.people >= rule.people and report.dwell_s >= rule.dwell_s
    if open_alert is not None:
        ids = open_alert.source_ids
        if ids.get("camera_id") != report.camera_id or ids.get("zone") != report.zone:
            raise ValueError(f"alert {open_alert.id} is not about {loiter_key(report)}")
        if report.event_id in (ids.get("event_id"), ids.get("last_event_id")):
            return LoiterDecision(None, False, "duplicate")
        details = open_alert.details
        if open_alert.status in UNRESOLVED_ALERT:
            if report.ts - details["last_seen"] <= rule.rearm_s:
                if not over:
                    return LoiterDecision(None, False, "below_threshold")
                return _fold(open_alert, report, rule, config, zone_type)
        elif report.ts - max(details["last_seen"], open_alert.ts_updated) < rule.rearm_s:
            return LoiterDecision(None, False, "suppressed" if over else "below_threshold")
    if not over:
        return LoiterDecision(None, False, "below_threshold")
    title, title_zh = _titles(report.zone, zone_type, report.people, report.dwell_s)
    alert = raise_alert(
        id=loiter_alert_id(report.camera_id, report.zone, report.event_id),
        kind="loiter",
        severity=severity_of(report.people, report.dwell_s, rule, config),
        grid_id=grid_id,
        ts=report.ts,
        title=title,
        title_zh=title_zh,
        source_ids={"camera_id": report.camera_id, "zone": report.zone,
                    "event_id": report.event_id, "last_event_id": report.event_id},
        details={
            "zone": report.zone, "zone_type": zone_type, "lon": report.lon, "lat": report.lat,
            "people": report.people, "dwell_s": report.dwell_s,
            "max_people": report.people, "max_dwell_s": report.dwell_s, "reports": 1,
            "first_seen": report.ts, "last_seen": report.ts,
            "threshold_people": rule.people, "threshold_dwell_s": rule.dwell_s,
        },
    )
    return LoiterDecision(alert, True, "raised")


def _fold(alert: Alert, report: CrowdLoiter, rule: ZoneRule, config: LoiterConfig,
          zone_type: str) -> LoiterDecision:
    old = alert.details
    max_people = max(int(old["max_people"]), report.people)
    max_dwell = max(float(old["max_dwell_s"]), report.dwell_s)
    latest = report.ts >= old["last_seen"]  # a late report must not move "now" backwards
    details = {
        **old,
        "reports": int(old["reports"]) + 1,
        "max_people": max_people,
        "max_dwell_s": max_dwell,
        "first_seen": min(old["first_seen"], report.ts),
        "last_seen": max(old["last_seen"], report.ts),
    }
    if latest:
        details.update(people=report.people, dwell_s=report.dwell_s,
                       lon=report.lon, lat=report.lat)
    severity = max_severity(alert.severity, severity_of(max_people, max_dwell, rule, config))
    title, title_zh = _titles(report.zone, zone_type, max_people, max_dwell)
    source_ids = {**alert.source_ids, "last_event_id": report.event_id}
    folded = replace(alert, severity=severity, details=details, title=title, title_zh=title_zh,
                     source_ids=source_ids, ts_updated=max(alert.ts_updated, report.ts))
    return LoiterDecision(folded, False, "folded", severity_changed=severity != alert.severity)
