"""Feed liveness: a checkpoint or camera that goes quiet for too long raises an alert.

Each source keeps a small :class:`SourceState`: when it last sent something and its
recent inter-arrival gaps. Its expected interval is, in order of preference, the
configured override for that source, or ``factor`` (3) times the median of its last
gaps once ``min_gaps`` (5) are known (the median, so that one long night or outage
does not teach it to wait forever), never below ``floor_s`` (5 min); before that, the
default of its kind. Silent longer than that, it raises a ``silent_source`` alert
whose id and time derive from the last message seen, so asking again during the same
silence gives the same alert; its next message closes it (:func:`recover`).
"""

from __future__ import annotations

import hashlib
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..schemas.commands import OPEN_ALERT
from ..schemas.errors import ConfigError
from ..schemas.records import SEVERITIES, Alert, Task
from .lifecycle import auto_close, raise_alert, when

SOURCE_KINDS = ("checkpoint", "camera")
GAP_WINDOW = 20
"""How many recent gaps a source remembers."""


@dataclass(frozen=True)
class LivenessConfig:
    """How the expected interval of a source is found, and the alert's severity."""

    factor: float = 3.0
    floor_s: float = 300.0
    min_gaps: int = 5
    default_s: Mapping[str, float] = field(
        default_factory=lambda: {"checkpoint": 3600.0, "camera": 3600.0})
    overrides_s: Mapping[str, float] = field(default_factory=dict)
    severity: str = "medium"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LivenessConfig:
        """Build from ``{"factor": 3, "floor_s": 300, "min_gaps": 5, "default_s": {...},
        "overrides_s": {"cp-1": 900}, "severity": "medium"}``.

        Raises:
            ConfigError: an unknown key or a value out of range.
        """
        known = {"factor", "floor_s", "min_gaps", "default_s", "overrides_s", "severity"}
        extra = sorted(set(data) - known)
        if extra:
            raise ConfigError(f"liveness config: unknown key {extra[0]!r}")
        base = cls()
        defaults = {**base.default_s, **data.get("default_s", {})}
        min_gaps = data.get("min_gaps", base.min_gaps)
        if isinstance(min_gaps, bool) or not isinstance(min_gaps, int) or min_gaps < 1:
            raise ConfigError("liveness config: min_gaps must be a whole number >= 1")
        severity = data.get("severity", base.severity)
        if severity not in SEVERITIES:
            raise ConfigError(f"liveness config: severity must be one of {', '.join(SEVERITIES)}")
        return cls(
            factor=_pos(data.get("factor", base.factor), "factor"),
            floor_s=_pos(data.get("floor_s", base.floor_s), "floor_s"),
            min_gaps=min_gaps,
            default_s={k: _pos(v, f"default_s.{k}") for k, v in defaults.items()},
            overrides_s={k: _pos(v, f"overrides_s.{k}")
                         for k, v in data.get("overrides_s", {}).items()},
            severity=severity,
        )


def _pos(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"liveness config: {where} must be a positive number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class SourceState:
    """What is known about one source's rhythm.

    Attributes:
        source_id: the checkpoint or camera id.
        kind: ``"checkpoint"`` or ``"camera"``.
        grid_id: the grid it stands in, or ``None``.
        last_ts: event time of its latest message, or ``None`` before the first.
        gaps: its last :data:`GAP_WINDOW` inter-arrival gaps in seconds, oldest first.
        count: messages seen.
    """

    source_id: str
    kind: str
    grid_id: str | None = None
    last_ts: float | None = None
    gaps: tuple[float, ...] = ()
    count: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data, with ``"v": 1``."""
        return {"v": 1, "source_id": self.source_id, "kind": self.kind,
                "grid_id": self.grid_id, "last_ts": self.last_ts, "gaps": list(self.gaps),
                "count": self.count}

    @classmethod
    def from_dict(cls, data: Any) -> SourceState:
        """Decode :meth:`to_dict` output.

        Raises:
            ValueError: a field is missing, unknown or of the wrong type.
        """
        names = {"source_id", "kind", "grid_id", "last_ts", "gaps", "count"}
        if not isinstance(data, dict) or set(data) - {"v"} != names or data.get("v", 1) != 1:
            raise ValueError("SourceState: expected the fields " + ", ".join(sorted(names)))
        num = (int, float)
        ok = (isinstance(data["source_id"], str) and data["kind"] in SOURCE_KINDS
              and (data["grid_id"] is None or isinstance(data["grid_id"], str))
              and (data["last_ts"] is None or isinstance(data["last_ts"], num))
              and isinstance(data["gaps"], list)
              and all(isinstance(g, num) and not isinstance(g, bool) for g in data["gaps"])
              and isinstance(data["count"], int) and not isinstance(data["count"], bool))
        if not ok:
            raise ValueError(f"SourceState: bad field values in {data!r:.200}")
        last = None if data["last_ts"] is None else float(data["last_ts"])
        return cls(data["source_id"], data["kind"], data["grid_id"], last,
                   tuple(float(g) for g in data["gaps"]), data["count"])


def observe(state: SourceState, ts: float) -> SourceState:
    """Record one message from the source at event time ``ts``.

    A message older than the latest one counts but teaches no gap (late delivery is
    not the source's rhythm).
    """
    if state.last_ts is None:
        return replace(state, last_ts=ts, count=state.count + 1)
    if ts <= state.last_ts:
        return replace(state, count=state.count + 1)
    gaps = (*state.gaps, ts - state.last_ts)[-GAP_WINDOW:]
    return replace(state, last_ts=ts, gaps=gaps, count=state.count + 1)


def expected_interval(state: SourceState,
                      config: LivenessConfig = LivenessConfig()) -> tuple[float, str]:
    """How long the source may stay quiet, and why.

    Returns:
        ``(seconds, basis)`` with basis ``"configured"``, ``"learned"`` or ``"default"``.
    """
    if state.source_id in config.overrides_s:
        return config.overrides_s[state.source_id], "configured"
    if len(state.gaps) >= config.min_gaps:
        return max(config.floor_s, config.factor * statistics.median(state.gaps)), "learned"
    return max(config.floor_s, config.default_s.get(state.kind, 3600.0)), "default"


def silent_alert_id(source_id: str, last_ts: float) -> str:
    """The id of the alert for the silence that began after the message at ``last_ts``."""
    key = f"silent_source|{source_id}|{last_ts!r}"
    return "al-" + hashlib.sha1(key.encode()).hexdigest()[:16]


def check(state: SourceState, now: float,
          config: LivenessConfig = LivenessConfig()) -> Alert | None:
    """The silent-source alert if the source is overdue at ``now``, else ``None``.

    The alert is raised at ``last_ts + expected interval`` and its id depends only on
    the source and ``last_ts``: calling again during the same silence returns the same
    record (store it only if absent).
    """
    if state.last_ts is None:
        return None
    expected, basis = expected_interval(state, config)
    if now - state.last_ts <= expected:
        return None
    minutes = round(expected / 60)
    noun = "Checkpoint" if state.kind == "checkpoint" else "Camera"
    noun_zh = "卡口" if state.kind == "checkpoint" else "摄像头"
    return raise_alert(
        id=silent_alert_id(state.source_id, state.last_ts),
        kind="silent_source",
        severity=config.severity,
        grid_id=state.grid_id,
        ts=state.last_ts + expected,
        title=f"{noun} {state.source_id} silent since {when(state.last_ts)} "
              f"(expected every {minutes} min)",
        title_zh=f"{noun_zh}{state.source_id}自{when(state.last_ts)}起无数据（应每{minutes}分钟有数据）",
        source_ids={f"{state.kind}_id": state.source_id},
        details={"last_ts": state.last_ts, "expected_s": expected, "basis": basis,
                 "gaps_known": len(state.gaps), "source_kind": state.kind},
    )


def recover(alert: Alert, task: Task | None, ts: float) -> tuple[Alert, Task | None]:
    """Close a silent-source alert because its source sent data again at ``ts``.

    An alert already closed or dismissed is returned unchanged; an open task is cancelled.
    """
    if alert.status not in OPEN_ALERT:
        return alert, task
    return auto_close(alert, task, ts=ts, note=f"source sent data again at {when(ts)}")
