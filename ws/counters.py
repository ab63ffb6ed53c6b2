"""The duty officer's counters: what each one counts and over which window.

Defined once here and sent to the page in every summary frame (``windows``, in the
order the page shows them), so no counter is shown without its window: ``now`` (a
current state), ``last_hour`` (the hour of event time before the feed's newest event),
``today`` (since the local midnight of the feed's event time, in the district's zone;
the frame's ``day`` names the date) or ``all_time`` (since the state began). The frame's
``event_ts`` is the feed's newest event time, for the wall's feed health. Pure: the gateway reads the numbers, this builds the message.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, tzinfo
from typing import Any

#: counter -> its window, in the order shown.
WINDOWS: dict[str, str] = {
    "open_alerts": "now",
    "alerts_today": "today",
    "alerts_last_hour": "last_hour",
    "checkpoint_scans": "all_time",
    "loiter_reports": "all_time",
    "station_tickets": "all_time",
    "unassigned": "all_time",
    "late": "all_time",
    "deadletter": "all_time",
}


def day_start(now: float, tz: tzinfo) -> float:
    """The epoch time of the local midnight that begins ``now``'s day in ``tz``."""
    local = datetime.fromtimestamp(now, tz)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def summary_message(totals: Mapping[str, int], *, open_alerts: int, alerts_today: int,
                    now: float | None, tz: tzinfo, alerts_last_hour: int = 0) -> dict[str, Any]:
    """The summary frame's message.

    Args:
        totals: the all-time counters (``gw:summary``), by name.
        open_alerts: alerts not closed or dismissed, now.
        alerts_today: alerts raised since :func:`day_start` of ``now``.
        alerts_last_hour: alerts raised in the hour before ``now``.
        now: the feed's event time, or ``None`` before any event.
        tz: the district's zone.

    Returns:
        Every counter by name (the totals' other fields too), ``windows`` (see
        :data:`WINDOWS`), ``day`` (``YYYY-MM-DD`` of ``now``, or ``None``) and
        ``event_ts`` (``now``).
    """
    out: dict[str, Any] = {name: 0 for name in WINDOWS}
    out.update(totals)
    out["open_alerts"] = open_alerts
    out["alerts_today"] = alerts_today if now is not None else 0
    out["alerts_last_hour"] = alerts_last_hour if now is not None else 0
    out["event_ts"] = now
    out["windows"] = dict(WINDOWS)
    out["day"] = datetime.fromtimestamp(now, tz).date().isoformat() if now is not None else None
    return out
