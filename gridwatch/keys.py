"""Every Redis key gridwatch uses, in one place (docs/redis.md).

All keys start with ``gw:``. Times in key names are *event-time* hour numbers:
``hour = floor(ts / 3600)`` (UTC epoch hours), so a late event lands in the bucket of
the hour it happened in, whatever time it arrives.

Hashes of counters use field names ``scan:<color>:<direction>`` (``scan:red:in``),
``loiter``, ``loiter_people`` and, for events past the grace period, the same names
prefixed with ``late:``.

**Slots** (docs/cluster.md). Every key the worker writes carries a Redis hash tag, so
one script can write a group of keys on a Redis Cluster as on one server:

- ``gw:{core}:...``: the rules' state, the one part the decisions read and
  compare-and-set (offsets, watermarks, record versions, alerts, tasks, deadlines,
  incidents, red-code visits, trains, sources, channels, totals). One slot: a batch's
  decisions, its offsets and its versions change in one atomic step.
- ``gw:{<shard tag>}:...``: what grows with the events and no decision reads back
  (grid counters, person traces, seen event ids, station hours), spread over
  ``SHARDS`` tags by a hash of the grid, person, event or station. Each tag is chosen to
  fall in its own 1/``SHARDS`` of the 16,384 slots, so a cluster whose masters hold equal
  slot ranges holds equal shares of them.

The tag comes first, before any id taken from an event, so an id holding braces
cannot move a key to another slot.
"""

from __future__ import annotations

import itertools
import zlib
from functools import cache, lru_cache

from redis.crc import key_slot

PREFIX = "gw:"
CORE_TAG = "core"
CORE = "gw:{core}:"

# Shards of the per-event state. Changing it re-keys that state: the state written with
# another count is not read (start from an empty Redis, or replay the topics).
SHARDS = 128
_SLOTS = 16384


@cache
def shard_tags() -> tuple[str, ...]:
    """The hash tag of each shard: the shortest string of ``[0-9a-z]`` (the first in
    that order) whose slot lies in the i-th of ``SHARDS`` equal ranges of the slots.
    Short, because every sharded key carries it."""
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    tags: list[str | None] = [None] * SHARDS
    missing = SHARDS
    for length in (1, 2, 3):
        for combo in itertools.product(alphabet, repeat=length):
            tag = "".join(combo)
            i = key_slot(tag.encode()) * SHARDS // _SLOTS
            if tags[i] is None:
                tags[i] = tag
                missing -= 1
                if not missing:
                    return tuple(t for t in tags if t is not None)
    raise AssertionError("no tag for some shard")  # pragma: no cover - 3 letters suffice


def shard_of(entity: str) -> int:
    """The shard of a grid, person, event or station id."""
    return zlib.crc32(entity.encode("utf-8", "surrogatepass")) % SHARDS


@lru_cache(maxsize=1 << 16)  # grids and stations stay in it; people come and go
def shard_prefix(entity: str) -> str:
    """``gw:{<tag>}:``: the start of every sharded key of ``entity``."""
    return f"gw:{{{shard_tags()[shard_of(entity)]}}}:"


# Seen event ids use every eighth shard only: a batch writes one set per topic-hour and
# shard, so fewer shards mean fewer calls, and 16 still spread an hour's ids over every
# master of a cluster of up to 16.
SEEN_SHARDS = 16


def slot_tag(key: str) -> str | None:
    """The hash tag of a key (the text between its first braces), or None."""
    start = key.find("{")
    if start < 0:
        return None
    end = key.find("}", start + 1)
    return key[start + 1:end] if end > start + 1 else None


# Applied Kafka offsets and event-time watermarks, one field "topic:partition" each.
OFFSETS = CORE + "offsets"
WATERMARKS = CORE + "wm"
# Totals of valid events applied per kind, unassigned points, dead letters, late events.
SUMMARY = CORE + "summary"
# Every grid id that has received at least one event (a set).
GRIDS_SEEN = CORE + "grids"

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


def seen_ids(topic: str, hour: int, event_id: str) -> str:
    """The ids applied of one input topic's events of one event-time hour, in the seen
    shard of ``event_id`` (set)."""
    tag = shard_tags()[shard_of(event_id) % SEEN_SHARDS * (SHARDS // SEEN_SHARDS)]
    return f"gw:{{{tag}}}:seen:{topic}:{hour}"


def seen_topic(key: str) -> str | None:
    """The input topic of a :func:`seen_ids` key, or None for another key."""
    rest = key.split("}:", 1)[-1]
    if not rest.startswith("seen:"):
        return None
    return rest[len("seen:"):].rsplit(":", 1)[0]


def hour_of(ts: float) -> int:
    """The event-time hour number of an epoch time."""
    return int(ts // 3600)


def partition_field(topic: str, partition: int) -> str:
    """The field of a topic-partition in ``OFFSETS`` and ``WATERMARKS``."""
    return f"{topic}:{partition}"


def grid_total(grid_id: str) -> str:
    """All-time counters of one grid (hash)."""
    return f"{shard_prefix(grid_id)}grid:{grid_id}:total"


TASKS_OPEN_FMT = "gw:{core}:tasks:open:%s"


def grid_hour(grid_id: str, hour: int) -> str:
    """Counters of one grid for one event-time hour (hash, TTL ``HOUR_TTL_S``)."""
    return f"{grid_hours_prefix(grid_id)}{hour}"


def grid_hours_prefix(grid_id: str) -> str:
    """What every :func:`grid_hour` key of a grid starts with (the hour follows)."""
    return f"{shard_prefix(grid_id)}grid:{grid_id}:h:"


def station_hour(station_id: str, hour: int) -> str:
    """One station's arrival hour: booked, sold, refunded, arrived, high_risk (hash)."""
    return f"{shard_prefix(station_id)}station:{station_id}:h:{hour}"


def station_hours(station_id: str) -> str:
    """The arrival hours of one station that have any data (sorted set, score = hour)."""
    return f"{shard_prefix(station_id)}station:{station_id}:hours"


def station_revised(station_id: str) -> str:
    """Arrival hours of one station changed by a message that came more than
    ``STATION_SETTLED_HOURS`` behind its partition's event time (sorted set, score =
    hour): the live refresher reads them again instead of its kept copy, then clears them."""
    return f"{shard_prefix(station_id)}stationrevised:{station_id}"


# Hours further than this behind the feed's event time are "settled": the live refresher
# keeps them in memory between refreshes; a message that changes one marks it revised.
STATION_SETTLED_HOURS = 48
STATION_REVISED_TTL_S = 2 * 86400  # longer than the refresher's daily full re-read

STATIONS = CORE + "stations"  # every station id seen (a set)

# ---- alerts, tasks, rules state -------------------------------------------------------
# Record keys written by read-modify-write carry a version in VERSIONS (field = key);
# the apply script refuses a batch whose versions moved since it read them.
VERSIONS = CORE + "ver"
ALERTS_ALL = CORE + "alerts:all"  # every alert id ever raised (zset, score ts_raised): history
ALERT_TTL_S = 400 * 86400  # an alert and its audit trail are kept ~13 months
LOITER_LATEST = CORE + "loiter:latest"  # "camera|zone" -> latest loiter alert id (hash)
SOURCE_STATS = CORE + "sources"  # "<id>:n|first|last|kind|grid" liveness statistics (hash)
SILENT = CORE + "silent"  # source id -> its open silent-source alert id (hash)
DEADLINES = CORE + "deadlines"  # alert id -> due time of its next escalation (zset)
GRID_HOUR = CORE + "gridhour"  # grid -> newest event-time hour seen in it (hash)
GRID_VERSION = CORE + "gridver"  # grid -> how often its risk inputs changed (hash)
# Grids whose risk inputs changed and whose score is not yet written for that change
# (set). Added in the same atomic step as the version bump, removed by the refresher's
# write only if the version it scored is still the current one: so a worker that dies
# between the two leaves its grids here for any other worker. In the slot of
# GRID_VERSION, so one script can check one and update the other on a cluster too.
RISK_DIRTY = CORE + "riskdirty"
# Batches staged on a Redis Cluster whose other slots' parts are not all applied yet:
# "b:<batch id>" -> the parts, "p:<partition field>" -> the batch id (hash).
PENDING = CORE + "pending"


def applied_marks(tag: str) -> str:
    """The batches whose part in the slot of ``tag`` is applied: partition field -> last
    offset (hash, in that slot)."""
    return f"gw:{{{tag}}}:applied"


def update_marks(tag: str, update_id: str) -> str:
    """The mark of one update without offsets (a command's, a timer's) in the slot of
    ``tag`` (hash, a week)."""
    return f"gw:{{{tag}}}:applied:u:{update_id}"


# Scores live in the core slot with the versions they were computed for, so the
# refresher writes a chunk of them in one checked step, on one server or a cluster.
RISK_RANK = CORE + "riskrank"  # grid -> risk score (zset): the worst grids first
RISK_PREFIX = CORE + "risk:"


# Silences (agents/silences.py): every one set (zset, score starts_at), the active ones
# (hash id -> silence JSON: what a batch's decisions read, one HGETALL), and when each
# active one ends by itself (zset, score ends_at: fired by the timers like a deadline).
SILENCES = CORE + "silences"
SILENCES_ACTIVE = CORE + "silences:active"
SILENCE_ENDS = CORE + "silences:ends"


def silence(silence_id: str) -> str:
    """One silence record, active or ended, with its audit (string, JSON)."""
    return f"{CORE}silence:{silence_id}"


def silence_alerts(silence_id: str) -> str:
    """The ids of the alerts one silence has held (set)."""
    return f"{CORE}silence:{silence_id}:alerts"


def deadline(alert_id: str) -> str:
    """The next escalation deadline of one alert (string, JSON)."""
    return f"{CORE}deadline:{alert_id}"


def tasks_open(grid_id: str) -> str:
    """Open tasks of one grid (zset, score = due time): open and overdue task counts."""
    return TASKS_OPEN_FMT % grid_id


def version_of(record_key: str) -> str:
    """The version of a compare-and-set record kept beside it with the record's TTL
    (string), for records that come and go (a red-code person's visits): fields of
    ``VERSIONS`` would outlive them."""
    return f"{CORE}ver:{record_key.removeprefix(CORE)}"


def red_visits(person_ref: str) -> str:
    """A red-code person's recent scans "grid|event_id" (zset, score ts): cross-grid."""
    return f"{CORE}redvisits:{person_ref}"


def trace(person_ref: str) -> str:
    """Every scan of one person, "event_id|checkpoint|grid|direction|colour" (zset, score ts)."""
    # "t:", not "trace:": the tag lengthened every key, and traces are the most numerous
    return f"{shard_prefix(person_ref)}t:{person_ref}"


def train(station_id: str, train_no: str, arrival_at: float) -> str:
    """One train's bookings at a station: sold, refunded, high_risk seats (hash)."""
    return f"{CORE}train:{station_id}:{train_no}:{int(arrival_at)}"


def incident(incident_id: str) -> str:
    """One incident: grid, window, count (hash); its alert ids in ``incident_alerts``."""
    return f"{CORE}incident:{incident_id}"


def incident_alerts(incident_id: str) -> str:
    """The alert ids of one incident (set)."""
    return f"{CORE}incident:{incident_id}:alerts"


# ---- cockpit: the worker-gateway channel contract, users and sessions ----------------
# Snapshots and channels the gateway reads (the worker writes them); values are JSON.

ALERTS_OPEN = CORE + "alerts:open"  # ids of alerts not closed or dismissed (zset, score ts_raised)
CHAN_ALERTS = CORE + "chan:alerts"  # every alert or incident change (stream, field "d")
CHAN_TASKS = CORE + "chan:tasks"  # every task change (stream, field "d")
CHAN_GRIDS = CORE + "chan:grids"  # grid state deltas (stream, field "d")
CHAN_FORECASTS = CORE + "chan:forecasts"  # station forecasts (stream, field "d")
CHAN_MAXLEN = 20_000  # XADD MAXLEN ~ bound of every channel stream


def channel_message(kind: str, record: bytes) -> bytes:
    """A channel stream entry (field ``d``) wrapping one record's JSON:
    ``{"type": kind, kind: record}`` (``alert``, ``task``, ``forecast``), built without
    decoding the record again."""
    k = kind.encode()
    return b'{"type":"' + k + b'","' + k + b'":' + record + b"}"


def channel_record(kind: str, message: bytes) -> bytes | None:
    """The record's JSON inside a :func:`channel_message` of ``kind``, or None when the
    message is of another kind."""
    k = kind.encode()
    head = b'{"type":"' + k + b'","' + k + b'":'
    return message[len(head):-1] if message.startswith(head) else None


def alert(alert_id: str) -> str:
    """One alert record (string, JSON)."""
    return f"{CORE}alert:{alert_id}"


def alerts_by_grid(grid_id: str) -> str:
    """Alert ids of one grid (zset, score ts_raised)."""
    return f"{CORE}alerts:by_grid:{grid_id}"


def task(task_id: str) -> str:
    """One task record (string, JSON)."""
    return f"{CORE}task:{task_id}"


DUTY = CORE + "duty"
"""Grid worker -> their duty record (hash of JSON, :class:`~gridwatch.schemas.records.Duty`);
a worker absent from it is on duty. One record version for the whole hash: a dispatch
compare-and-sets it, so it is decided on the duty that is stored when it is applied."""


def tasks_by_worker(worker: str) -> str:
    """Task ids offered to one worker (zset, score ts_created)."""
    return f"{CORE}tasks:by_worker:{worker}"


def risk(grid_id: str) -> str:
    """One grid's risk: score, band, contributions (string, JSON)."""
    return RISK_PREFIX + grid_id


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
    return f"{CORE}cmdresult:{command_id}"


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


AUTH_KEY = "gw:auth-key"  # the server key of the keyed hashes of logins and sessions (hex, made once)


def user_sessions(name: str) -> str:
    """The ids of a user's sessions (a set; ids of expired sessions may linger)."""
    return f"gw:user-sessions:{name}"


def user_logins(name: str) -> str:
    """The ids of a user's unused login links (a set, like :func:`user_sessions`)."""
    return f"gw:user-logins:{name}"


# Who looked up whose trace, when and why (stream; fields actor, role, person, reason,
# rows, via). Written by the gateway and the CLI at every lookup, before the rows are
# handed out; kept ``TRACE_AUDIT_TTL_S`` (trimmed by id at every write) and never more
# than ``TRACE_AUDIT_MAXLEN`` entries.
TRACE_AUDIT = "gw:trace-audit"
TRACE_AUDIT_TTL_S = 180 * 86400
TRACE_AUDIT_MAXLEN = 1_000_000
