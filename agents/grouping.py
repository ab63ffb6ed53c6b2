"""Grouping: a burst of alerts in one grid becomes one incident, so the feed stays readable.

``min_alerts`` alerts (default 3) of one grid whose ``ts_raised`` lie within
``window_s`` (default 600 s) of each other open an incident that carries them; later
alerts join the open incident while they come within ``window_s`` of its latest
alert. Each grid has one group record, kept by the caller: ``forming`` (fewer alerts
than the threshold so far, a sliding window, not shown), ``open`` or ``closed``.
Alerts without a grid and alerts of ``exclude_kinds`` (by default ``escalation``: the
separate escalation alerts stored before an escalation raised the alert it is about)
are never grouped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from ..schemas.errors import ConfigError
from ..schemas.records import Alert, Incident, max_severity


@dataclass(frozen=True)
class GroupingConfig:
    """How many alerts within how long make an incident, and which kinds never group."""

    min_alerts: int = 3
    window_s: float = 600.0
    exclude_kinds: frozenset[str] = frozenset({"escalation"})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GroupingConfig:
        """Build from ``{"min_alerts": 3, "window_min": 10, "exclude_kinds": [...]}``.

        Raises:
            ConfigError: an unknown key or a value out of range.
        """
        extra = sorted(set(data) - {"min_alerts", "window_min", "exclude_kinds"})
        if extra:
            raise ConfigError(f"grouping config: unknown key {extra[0]!r}")
        n = data.get("min_alerts", 3)
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"grouping config: min_alerts must be a whole number >= 1, got {n!r}")
        minutes = data.get("window_min", 10)
        if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or minutes <= 0:
            raise ConfigError(f"grouping config: window_min must be positive, got {minutes!r}")
        kinds = data.get("exclude_kinds", ["escalation"])
        if not isinstance(kinds, list) or not all(isinstance(k, str) for k in kinds):
            raise ConfigError("grouping config: exclude_kinds must be a list of strings")
        return cls(min_alerts=n, window_s=float(minutes) * 60.0, exclude_kinds=frozenset(kinds))


def _start(alert: Alert, status: str) -> Incident:
    assert alert.grid_id is not None
    return Incident(id=f"in-{alert.id}", grid_id=alert.grid_id, alert_ids=(alert.id,),
                    alert_ts=(alert.ts_raised,), alert_severities=(alert.severity,),
                    ts_first=alert.ts_raised, ts_last=alert.ts_raised, severity=alert.severity,
                    status=status)


def _members(ids: tuple[str, ...], ts: tuple[float, ...], sev: tuple[str, ...],
             base: Incident, status: str) -> Incident:
    # The id follows the first member, so a forming window that slid gets a fresh id.
    return replace(base, id=f"in-{ids[0]}", alert_ids=ids, alert_ts=ts, alert_severities=sev,
                   ts_first=min(ts), ts_last=max(ts), severity=max_severity(*sev), status=status)


def group(incident: Incident | None, alert: Alert,
          config: GroupingConfig = GroupingConfig()) -> tuple[Incident | None, Alert]:
    """Add one new alert to its grid's group record.

    Call :func:`expire` first, so an open incident whose window has passed is closed
    and stored before a new one forms.

    Args:
        incident: the grid's group record (forming or open), or ``None``.
        alert: the alert just raised.

    Returns:
        the grid's group record to store (``incident`` itself when the alert is not
        grouped) and the alert, with ``incident_id`` set when it is in an open incident.
        When the record has just turned open, give the earlier members their
        ``incident_id`` too (:func:`members_to_tag`).

    Raises:
        ValueError: ``incident`` belongs to another grid.
    """
    if alert.grid_id is None or alert.kind in config.exclude_kinds:
        return incident, alert
    if incident is not None and incident.grid_id != alert.grid_id:
        raise ValueError(f"incident {incident.id} is of grid {incident.grid_id}, "
                         f"not {alert.grid_id}")
    if incident is not None and alert.id in incident.alert_ids:  # replayed alert
        return incident, _tagged(alert, incident)
    n = config.min_alerts
    if incident is None or incident.status == "closed" or (
        incident.status == "open" and alert.ts_raised - incident.ts_last > config.window_s
    ):
        record = _start(alert, "open" if n <= 1 else "forming")
        return record, _tagged(alert, record)
    ids = (*incident.alert_ids, alert.id)
    ts = (*incident.alert_ts, alert.ts_raised)
    sev = (*incident.alert_severities, alert.severity)
    if incident.status == "forming":
        # Slide: keep only members within the window of the newest alert.
        newest = max(ts)
        kept = [i for i, t in enumerate(ts) if newest - t <= config.window_s]
        ids = tuple(ids[i] for i in kept)
        ts = tuple(ts[i] for i in kept)
        sev = tuple(sev[i] for i in kept)
    record = _members(ids, ts, sev, incident, "open" if len(ids) >= n else "forming")
    return record, _tagged(alert, record)


def _tagged(alert: Alert, incident: Incident) -> Alert:
    if incident.status == "open" and alert.incident_id != incident.id:
        return replace(alert, incident_id=incident.id)
    return alert


def members_to_tag(before: Incident | None, after: Incident | None) -> tuple[str, ...]:
    """Alerts grouped earlier that must now get ``after.id`` as their ``incident_id``.

    Returns:
        the other members when ``after`` has just turned open, else ``()``.
    """
    if after is None or after.status != "open":
        return ()
    if before is not None and before.status == "open" and before.id == after.id:
        return ()
    return after.alert_ids[:-1]


def attach(alert: Alert, incident: Incident) -> Alert:
    """``alert`` with ``incident_id`` set to ``incident.id``."""
    return replace(alert, incident_id=incident.id)


def expire(incident: Incident | None, now: float,
           config: GroupingConfig = GroupingConfig()) -> Incident | None:
    """The grid's group record as it should be kept at ``now``.

    Returns:
        ``incident`` while its window is still running; a closed copy of an open
        incident whose latest alert is more than ``window_s`` old; ``None`` for a
        forming record whose window has passed (delete it) or when there is none.
    """
    if incident is None or now - incident.ts_last <= config.window_s:
        return incident
    if incident.status == "open":
        return replace(incident, status="closed")
    return None if incident.status == "forming" else incident
