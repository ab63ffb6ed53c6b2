"""Every Redis key gridwatch uses, in one place (docs/redis.md).

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
# Station history feeds the forecaster: the recent weeks, and the same dates in the
# last three years (holidays that come back), with a month either way for holidays that
# move; see agents.forecast.history_spans.
STATION_TTL_S = (3 * 366 + 160) * 86400

UNASSIGNED = "_unassigned"  # pseudo grid of points outside every grid

# Event ids applied, per input topic and event-time hour (sets): a message sent again
# (a producer's retry, a re-sent file) is recognised and changes nothing. Kept two days
# after the hour's last write; a copy arriving later than that would count again.
SEEN_TTL_S = 2 * 86400
SEEN_PREFIX = "gw:seen:"


def seen_ids(topic: str, hour: int) -> str:
    """The event ids of one input topic applied for one event-time hour (set)."""
    return f"{SEEN_PREFIX}{topic}:{hour}"


def hour_of(ts: float) -> int:
    """The event-time hour number of an epoch time."""
    return int(ts // 3600)


def partition_field(topic: str, partition: int) -> str:
    """The field of a topic-partition in ``OFFSETS`` and ``WATERMARKS``."""
    return f"{topic}:{partition}"


def grid_total(grid_id: str) -> str:
    """All-time counters of one grid (hash)."""
    return f"gw:grid:{grid_id}:total"


GRID_HOUR_FMT = "gw:grid:%s:h:%d"  # the same key as grid_hour(), for Lua's string.format
TASKS_OPEN_FMT = "gw:tasks:open:%s"


def grid_hour(grid_id: str, hour: int) -> str:
    """Counters of one grid for one event-time hour (hash, TTL ``HOUR_TTL_S``)."""
    return GRID_HOUR_FMT % (grid_id, hour)


def station_hour(station_id: str, hour: int) -> str:
    """One station's arrival hour: booked, sold, refunded, arrived, high_risk (hash)."""
    return f"gw:station:{station_id}:h:{hour}"


def station_hours(station_id: str) -> str:
    """The arrival hours of one station that have any data (sorted set, score = hour)."""
    return f"gw:station:{station_id}:hours"


def station_revised(station_id: str) -> str:
    """Arrival hours of one station changed by a message that came more than
    ``STATION_SETTLED_HOURS`` behind its partition's event time (sorted set, score =
    hour): the live refresher reads them again instead of its kept copy, then clears them."""
    return f"gw:stationrevised:{station_id}"


# Hours further than this behind the feed's event time are "settled": the live refresher
# keeps them in memory between refreshes; a message that changes one marks it revised.
STATION_SETTLED_HOURS = 48
STATION_REVISED_TTL_S = 2 * 86400  # longer than the refresher's daily full re-read

STATIONS = "gw:stations"  # every station id seen (a set)

# ---- alerts, tasks, rules state -------------------------------------------------------
# Record keys written by read-modify-write carry a version in VERSIONS (field = key);
# the apply script refuses a batch whose versions moved since it read them.
VERSIONS = "gw:ver"
ALERTS_ALL = "gw:alerts:all"  # every alert id ever raised (zset, score ts_raised): history
ALERT_TTL_S = 400 * 86400  # an alert and its audit trail are kept ~13 months
LOITER_LATEST = "gw:loiter:latest"  # "camera|zone" -> latest loiter alert id (hash)
SOURCE_STATS = "gw:sources"  # "<id>:n|first|last|kind|grid" liveness statistics (hash)
SILENT = "gw:silent"  # source id -> its open silent-source alert id (hash)
DEADLINES = "gw:deadlines"  # alert id -> due time of its next escalation (zset)
GRID_HOUR = "gw:gridhour"  # grid -> newest event-time hour seen in it (hash)
GRID_VERSION = "gw:gridver"  # grid -> how often its risk inputs changed (hash)
# Grids whose risk inputs changed and whose score is not yet written for that change
# (set). Added in the same atomic step as the version bump, removed by the refresher's
# write only if the version it scored is still the current one: so a worker that dies
# between the two leaves its grids here for any other worker. The hash tag puts it in
# the slot of GRID_VERSION ("gw:gridver"), so one script can check one and update the
# other on a cluster too.
RISK_DIRTY = "gw:riskdirty{" + GRID_VERSION + "}"
RISK_RANK = "gw:risk:rank"  # grid -> risk score (zset): the worst grids first


def deadline(alert_id: str) -> str:
    """The next escalation deadline of one alert (string, JSON)."""
    return f"gw:deadline:{alert_id}"


def tasks_open(grid_id: str) -> str:
    """Open tasks of one grid (zset, score = due time): open and overdue task counts."""
    return TASKS_OPEN_FMT % grid_id


def red_visits(person_ref: str) -> str:
    """A red-code person's recent scans "grid|event_id" (zset, score ts): cross-grid."""
    return f"gw:redvisits:{person_ref}"


def trace(person_ref: str) -> str:
    """Every scan of one person, "event_id|checkpoint|grid|direction|colour" (zset, score ts)."""
    return f"gw:trace:{person_ref}"


def train(station_id: str, train_no: str, arrival_at: float) -> str:
    """One train's bookings at a station: sold, refunded, high_risk seats (hash)."""
    return f"gw:train:{station_id}:{train_no}:{int(arrival_at)}"


def incident(incident_id: str) -> str:
    """One incident: grid, window, count (hash); its alert ids in ``incident_alerts``."""
    return f"gw:incident:{incident_id}"


def incident_alerts(incident_id: str) -> str:
    """The alert ids of one incident (set)."""
    return f"gw:incident:{incident_id}:alerts"


# ---- cockpit: the worker-gateway channel contract, users and sessions ----------------
# Snapshots and channels the gateway reads (the worker writes them); values are JSON.

ALERTS_OPEN = "gw:alerts:open"  # ids of alerts not closed or dismissed (zset, score ts_raised)
CHAN_ALERTS = "gw:chan:alerts"  # every alert or incident change (stream, field "d")
CHAN_TASKS = "gw:chan:tasks"  # every task change (stream, field "d")
CHAN_GRIDS = "gw:chan:grids"  # grid state deltas (stream, field "d")
CHAN_FORECASTS = "gw:chan:forecasts"  # station forecasts (stream, field "d")
CHAN_MAXLEN = 20_000  # XADD MAXLEN ~ bound of every channel stream


def alert(alert_id: str) -> str:
    """One alert record (string, JSON)."""
    return f"gw:alert:{alert_id}"


def alerts_by_grid(grid_id: str) -> str:
    """Alert ids of one grid (zset, score ts_raised)."""
    return f"gw:alerts:by_grid:{grid_id}"


def task(task_id: str) -> str:
    """One task record (string, JSON)."""
    return f"gw:task:{task_id}"


def tasks_by_worker(worker: str) -> str:
    """Task ids offered to one worker (zset, score ts_created)."""
    return f"gw:tasks:by_worker:{worker}"


def risk(grid_id: str) -> str:
    """One grid's risk: score, band, contributions (string, JSON)."""
    return f"gw:risk:{grid_id}"


def forecast(station_id: str) -> str:
    """One station's next-24-hours forecast (string, JSON)."""
    return f"gw:forecast:{station_id}"


def forecast_owner(station_id: str) -> str:
    """The worker that makes one station's forecasts, a lease (string, TTL
    ``FORECAST_LEASE_S``): with several workers, one makes each forecast."""
    return f"gw:forecastowner:{station_id}"


FORECAST_LEASE_S = 30


def cmdresult(command_id: str) -> str:
    """The outcome of one cockpit command (string, JSON, TTL 1 h)."""
    return f"gw:cmdresult:{command_id}"


USERS = "gw:users"  # every user name (a set)
LOGIN_TTL_S = 24 * 3600  # a one-time login link is valid this long
SESSION_TTL_S = 12 * 3600  # a session lasts one shift; a 24-hour shift logs in again


def user(name: str) -> str:
    """One user: role, grids, stations (string, JSON)."""
    return f"gw:user:{name}"


def login_token(token_id: str) -> str:
    """One unused login link: user, salt, scrypt hash of its secret (string, JSON, TTL)."""
    return f"gw:login:{token_id}"


def session(session_id: str) -> str:
    """One session: user, salt, hash of its secret, expiry (string, JSON, TTL)."""
    return f"gw:session:{session_id}"
