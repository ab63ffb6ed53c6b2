"""Every Redis key gridwatch uses, in one place (the README's "Redis layout" section).

All keys start with ``gw:``. Times in key names are *event-time* hour numbers:
``hour = floor(ts / 3600)`` (UTC epoch hours), so a late event lands in the bucket of
the hour it happened in, whatever time it arrives.

Hashes of counters use field names ``scan:<color>:<direction>`` (``scan:red:in``),
``loiter``, ``loiter_people`` and, for events past the grace period, the same names
prefixed with ``late:``.
"""

from __future__ import annotations

PREFIX = "gw:"

# Applied Kafka offsets and event-time watermarks, one field "topic:partition" each.
OFFSETS = "gw:offsets"
WATERMARKS = "gw:wm"
# Totals of valid events applied per kind, unassigned points, dead letters, late events.
SUMMARY = "gw:summary"
# Every grid id that has received at least one event (a set).
GRIDS_SEEN = "gw:grids"

HOUR_TTL_S = 8 * 86400  # an hour bucket is kept 8 days: "same hour a week earlier" needs 7
STATION_TTL_S = 60 * 86400  # station history feeds the forecaster (weekly seasonality)

UNASSIGNED = "_unassigned"  # pseudo grid of points outside every grid


def hour_of(ts: float) -> int:
    """The event-time hour number of an epoch time."""
    return int(ts // 3600)


def partition_field(topic: str, partition: int) -> str:
    """The field of a topic-partition in ``OFFSETS`` and ``WATERMARKS``."""
    return f"{topic}:{partition}"


def grid_total(grid_id: str) -> str:
    """All-time counters of one grid (hash)."""
    return f"gw:grid:{grid_id}:total"


def grid_hour(grid_id: str, hour: int) -> str:
    """Counters of one grid for one event-time hour (hash, TTL ``HOUR_TTL_S``)."""
    return f"gw:grid:{grid_id}:h:{hour}"


def station_hour(station_id: str, hour: int) -> str:
    """One station's arrival hour: booked, sold, refunded, arrived, high_risk (hash)."""
    return f"gw:station:{station_id}:h:{hour}"


def station_hours(station_id: str) -> str:
    """The arrival hours of one station that have any data (sorted set, score = hour)."""
    return f"gw:station:{station_id}:hours"


STATIONS = "gw:stations"  # every station id seen (a set)
