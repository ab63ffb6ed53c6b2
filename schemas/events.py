"""Version 1 of the three input events, and their strict decoders.

Each event kind is declared once, as a table of fields (``FIELDS``); the decoder and
the JSON Schema files producers use (``schemas/jsonschema/``) are both derived from
that table, so they cannot drift apart.

Decoding is strict: unknown fields, missing fields, wrong types, values out of range,
times without a UTC offset and oversized strings are refused with a
:class:`~gridwatch.schemas.errors.DecodeError` naming the field. An optional ``"v"``
field, when present, must be ``1``.

Times are RFC 3339 strings with an offset on the wire and float epoch seconds (UTC)
inside gridwatch. Every time must also lie within a range of years, and an event's
``ts`` no further ahead of the wall clock than an allowed skew (:class:`Bounds`, from
the settings): a well-formed time at the edge of the calendar, or far in the future,
would otherwise break formatting downstream or move the feed's clock for good.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, ClassVar

import orjson

from .errors import DecodeError

SCHEMA_VERSION = 1
MAX_STRING = 200
MAX_MESSAGE_BYTES = 16_384

_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# "YYYY-MM-DDTHH:MM" + offset -> epoch seconds of that minute. Events of a day share a
# few thousand minutes, so most times are parsed by slicing; bounded all the same.
_MINUTES: dict[str, int] = {}


def parse_time(value: str) -> float:
    """Parse an RFC 3339 time with an offset into UTC epoch seconds.

    Sub-microsecond digits are dropped (as ``datetime`` would); the result is the
    same float ``datetime.fromisoformat(value).timestamp()`` gives.

    Raises:
        ValueError: the text is not RFC 3339 with an offset, or not a real time.
    """
    m = _RFC3339.match(value)
    if m is None:
        raise ValueError("not an RFC 3339 time with an offset")
    frac, tz = m.group(1), m.group(2)
    key = value[:16] + tz
    base = _MINUTES.get(key)
    if base is None:
        offset = "+00:00" if tz in ("Z", "z") else tz
        minute = datetime.fromisoformat(f"{value[:10]}T{value[11:16]}:00{offset}")
        base = int((minute - _EPOCH).total_seconds())
        if len(_MINUTES) >= 200_000:
            _MINUTES.clear()
        _MINUTES[key] = base
    second = int(value[17:19])
    if second > 59:
        raise ValueError("second must be in 0..59")
    micros = int(frac[1:7].ljust(6, "0")) if frac else 0
    return ((base + second) * 1_000_000 + micros) / 1_000_000


def format_time(epoch: float) -> str:
    """Format UTC epoch seconds as RFC 3339 (``2026-11-22T08:30:00+00:00``), with
    milliseconds when the time has a fraction of a second.

    A time ``datetime`` cannot hold (before year 1, after 9999, not finite) is written
    as its number instead of raising: formatting is for people, never a reason to stop.
    """
    try:
        whole = float(epoch).is_integer()
        return datetime.fromtimestamp(round(epoch, 3), tz=timezone.utc).isoformat(
            timespec="seconds" if whole else "milliseconds")
    except (OverflowError, ValueError, OSError):
        return repr(float(epoch))


def year_start(year: int) -> float:
    """Epoch seconds of 1 January ``year``, 00:00 UTC (any year ``datetime`` holds)."""
    return (datetime(year, 1, 1, tzinfo=timezone.utc) - _EPOCH).total_seconds()


@dataclass(frozen=True, slots=True)
class Bounds:
    """The times a decoder accepts: every time field within ``min_year``-``max_year``
    (UTC), and an event's ``ts`` at most ``max_future_s`` ahead of ``now`` (the wall
    clock when the batch is decoded; ``None``: not checked).

    Decoding stays pure: the caller reads the clock and passes it in.
    """

    min_year: int = 2000
    max_year: int = 2100
    now: float | None = None
    max_future_s: float = 300.0
    lo: float = 0.0  # derived: first instant accepted
    hi: float = 0.0  # derived: first instant refused (1 January of max_year + 1)
    ts_hi: float = 0.0  # derived: newest ``ts`` accepted

    def __post_init__(self) -> None:
        if not 1 <= self.min_year <= self.max_year <= 9998:
            raise ValueError("need 1 <= min_year <= max_year <= 9998")
        lo, hi = year_start(self.min_year), year_start(self.max_year + 1)
        last = math.nextafter(hi, -math.inf)  # one compare, ``<=``, then suffices for ts
        ts_hi = last if self.now is None else min(last, self.now + self.max_future_s)
        object.__setattr__(self, "lo", lo)
        object.__setattr__(self, "hi", hi)
        object.__setattr__(self, "ts_hi", ts_hi)

    def refuse(self, name: str, value: float) -> DecodeError:
        """The error for a time ``value`` of field ``name`` out of these bounds."""
        if name == "ts" and self.now is not None and self.lo <= value < self.hi:
            return DecodeError(f"ts: {value - self.now:.0f} s ahead of the clock (at most "
                               f"{self.max_future_s:g} s allowed)", "ts")
        return DecodeError(f"{name}: must be within the years {self.min_year}-{self.max_year}",
                           name)


#: Without settings (tools, tests): every year ``datetime`` can hold whatever the offset,
#: no clock. Nothing decoded can break formatting even then; the worker passes the
#: configured, narrower bounds (``GRIDWATCH_TIME_MIN_YEAR`` ...) and its clock.
DEFAULT_BOUNDS = Bounds(min_year=1, max_year=9998)


# ---- field kinds -------------------------------------------------------------------
# Each checker takes the raw JSON value and returns the decoded one or raises
# ValueError with a reason; the table below also says how to write JSON Schema.


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    if not value or len(value) > MAX_STRING:
        raise ValueError(f"must be 1-{MAX_STRING} characters")
    return value


def _ident(value: Any) -> str:
    # Identifiers are joined with "|" into stored members and keys and split back.
    value = _text(value)
    if "|" in value:
        raise ValueError("must not contain '|'")
    return value


def _number(lo: float, hi: float) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError("must be a number")
        number = float(value)
        if not math.isfinite(number) or not lo <= number <= hi:
            raise ValueError(f"must be between {lo:g} and {hi:g}")
        return number

    return check


def _integer(lo: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("must be an integer")
        if value < lo or value > 10_000:
            raise ValueError(f"must be an integer from {lo} to 10000")
        return value

    return check


def _choice(*options: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in options:
            raise ValueError("must be one of " + ", ".join(options))
        return str(value)

    check.options = options  # type: ignore[attr-defined]
    return check


def _time(value: Any) -> float:
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 time string")
    return parse_time(value)


def _time_or_null(value: Any) -> float | None:
    return None if value is None else _time(value)


@dataclass(frozen=True)
class Field:
    """One field of an event: its name, checker, JSON Schema and default."""

    name: str
    check: Callable[[Any], Any]
    schema: dict[str, Any]
    required: bool = True
    default: Any = None


_TEXT = {"type": "string", "minLength": 1, "maxLength": MAX_STRING}
_IDENT = {**_TEXT, "pattern": "^[^|]*$"}
_TIME = {"type": "string", "format": "date-time"}


def _enum(*options: str) -> tuple[Callable[[Any], str], dict[str, Any]]:
    return _choice(*options), {"type": "string", "enum": list(options)}


_COMMON = (
    Field("event_id", _ident, _IDENT),
    Field("ts", _time, _TIME),
)
_LON = Field("lon", _number(-180, 180), {"type": "number", "minimum": -180, "maximum": 180})
_LAT = Field("lat", _number(-90, 90), {"type": "number", "minimum": -90, "maximum": 90})


@dataclass(frozen=True, slots=True)
class CheckpointScan:
    """A person scanned a pass or health code at a checkpoint (卡口)."""

    event_id: str
    ts: float
    checkpoint_id: str
    lon: float
    lat: float
    person_ref: str
    code_color: str
    direction: str
    last_negative_test_at: float | None

    KIND: ClassVar[str] = "checkpoint_scan"


@dataclass(frozen=True, slots=True)
class CrowdLoiter:
    """A camera saw ``people`` lingering ``dwell_s`` seconds in ``zone``."""

    event_id: str
    ts: float
    camera_id: str
    lon: float
    lat: float
    zone: str
    people: int
    dwell_s: float

    KIND: ClassVar[str] = "crowd_loiter"


@dataclass(frozen=True, slots=True)
class StationTicket:
    """Seats sold or refunded for a train arriving at a station, or passengers exited."""

    event_id: str
    ts: float
    station_id: str
    train_no: str
    action: str
    arrival_at: float
    origin: str
    origin_risk: str
    seats: int

    KIND: ClassVar[str] = "station_ticket"


Event = CheckpointScan | CrowdLoiter | StationTicket

FIELDS: dict[type, tuple[Field, ...]] = {
    CheckpointScan: (
        *_COMMON,
        Field("checkpoint_id", _ident, _IDENT),
        _LON,
        _LAT,
        Field("person_ref", _text, _TEXT),
        Field("code_color", *_enum("green", "yellow", "red")),
        Field("direction", *_enum("in", "out")),
        Field(
            "last_negative_test_at",
            _time_or_null,
            {"type": ["string", "null"], "format": "date-time"},
        ),
    ),
    CrowdLoiter: (
        *_COMMON,
        Field("camera_id", _ident, _IDENT),
        _LON,
        _LAT,
        Field("zone", _text, _TEXT),
        Field("people", _integer(1), {"type": "integer", "minimum": 1, "maximum": 10000}),
        Field(
            "dwell_s",
            _number(0, 7 * 86400),
            {"type": "number", "minimum": 0, "maximum": 7 * 86400},
        ),
    ),
    StationTicket: (
        *_COMMON,
        Field("station_id", _ident, _IDENT),
        Field("train_no", _ident, _IDENT),
        Field("action", *_enum("sold", "refunded", "exited")),
        Field("arrival_at", _time, _TIME),
        Field("origin", _text, _TEXT),
        Field("origin_risk", *_enum("low", "medium", "high")),
        Field(
            "seats",
            _integer(1),
            {"type": "integer", "minimum": 1, "maximum": 10000},
            required=False,
            default=1,
        ),
    ),
}

_NAMES = {cls: frozenset(f.name for f in fields) | {"v"} for cls, fields in FIELDS.items()}


def decode_fields(obj: Any, cls: type, bounds: Bounds = DEFAULT_BOUNDS) -> Event:
    """Check an already-parsed JSON object against ``cls``'s fields and ``bounds``.

    Raises:
        DecodeError: with the first problem found.
    """
    if not isinstance(obj, dict):
        raise DecodeError("message must be a JSON object")
    version = obj.get("v", SCHEMA_VERSION)
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise DecodeError(f"unsupported schema version {version!r} (expected 1)", "v")
    extra = obj.keys() - _NAMES[cls]
    if extra:
        name = min(extra)
        raise DecodeError(f"unknown field {name[:40]!r}", name[:40])
    values = []
    for field in FIELDS[cls]:
        if field.name in obj:
            try:
                values.append(field.check(obj[field.name]))
            except ValueError as exc:
                raise DecodeError(f"{field.name}: {exc}", field.name) from None
        elif field.required:
            raise DecodeError(f"{field.name}: missing", field.name)
        else:
            values.append(field.default)
    event = cls(*values)
    _check_times(event, bounds)
    return event  # type: ignore[no-any-return]


# The time fields of each kind other than ``ts`` (a ``None`` one is not checked).
_OTHER_TIMES: dict[type, tuple[str, ...]] = {
    cls: tuple(f.name for f in fields
               if f.name != "ts" and f.schema.get("format") == "date-time")
    for cls, fields in FIELDS.items()
}


def _check_times(event: Any, bounds: Bounds) -> None:
    ts = event.ts
    if not bounds.lo <= ts <= bounds.ts_hi:
        raise bounds.refuse("ts", ts)
    for name in _OTHER_TIMES[type(event)]:
        value = getattr(event, name)
        if value is not None and not bounds.lo <= value < bounds.hi:
            raise bounds.refuse(name, value)


_COLORS = ("green", "yellow", "red")  # tuples: a list value must not raise
_DIRECTIONS = ("in", "out")


def _fast_scan(obj: Any, bounds: Bounds = DEFAULT_BOUNDS) -> CheckpointScan | None:
    """The common case of a checkpoint scan, checked with fewer steps; ``None``
    whenever anything is unusual, and the table-driven checks then give the reason.
    It accepts nothing those checks would refuse."""
    if type(obj) is not dict:
        return None
    n = len(obj)
    if n != 9 and (n != 10 or type(obj.get("v")) is not int or obj["v"] != SCHEMA_VERSION):
        return None
    try:
        event_id = obj["event_id"]
        ts = obj["ts"]
        checkpoint = obj["checkpoint_id"]
        lon = obj["lon"]
        lat = obj["lat"]
        person = obj["person_ref"]
        color = obj["code_color"]
        direction = obj["direction"]
        tested = obj["last_negative_test_at"]
    except KeyError:
        return None
    for text in (event_id, checkpoint, person):
        if type(text) is not str or not 0 < len(text) <= MAX_STRING:
            return None
    if "|" in event_id or "|" in checkpoint:
        return None
    if (type(lon) is not float and type(lon) is not int) or not -180 <= lon <= 180:
        return None
    if (type(lat) is not float and type(lat) is not int) or not -90 <= lat <= 90:
        return None
    if color not in _COLORS or direction not in _DIRECTIONS or type(ts) is not str:
        return None
    try:
        when = parse_time(ts)
        if tested is not None:
            if type(tested) is not str:
                return None
            tested = parse_time(tested)
    except ValueError:
        return None
    # Out of bounds: the table-driven path says which field.
    if not bounds.lo <= when <= bounds.ts_hi:
        return None
    if tested is not None and not bounds.lo <= tested < bounds.hi:
        return None
    return CheckpointScan(event_id, when, checkpoint, float(lon), float(lat), person, color,
                          direction, tested)


def decode(raw: bytes | str, cls: type, bounds: Bounds = DEFAULT_BOUNDS) -> Event:
    """Decode one wire message (JSON bytes) into an event of kind ``cls``, its times
    within ``bounds``.

    Raises:
        DecodeError: the message is not valid JSON or not a valid v1 ``cls``.
    """
    if len(raw) > MAX_MESSAGE_BYTES:
        raise DecodeError(f"message larger than {MAX_MESSAGE_BYTES} bytes")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"invalid JSON: {str(exc)[:80]}") from None
    if cls is CheckpointScan:
        event = _fast_scan(obj, bounds)
        if event is not None:
            return event
    return decode_fields(obj, cls, bounds)


def encode(event: Event) -> bytes:
    """Encode an event as its v1 wire JSON (times as RFC 3339)."""
    out: dict[str, Any] = {}
    for field in FIELDS[type(event)]:
        value = getattr(event, field.name)
        if field.schema is _TIME or (field.schema.get("format") == "date-time"):
            value = None if value is None else format_time(value)
        out[field.name] = value
    return orjson.dumps(out)


def json_schema(cls: type) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one event kind."""
    fields = FIELDS[cls]
    properties: dict[str, Any] = {"v": {"const": SCHEMA_VERSION}}
    for field in fields:
        properties[field.name] = dict(field.schema)
        if not field.required:
            properties[field.name]["default"] = field.default
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"gridwatch/{cls.KIND}.v1.json",
        "title": f"gridwatch {cls.KIND} v1",
        "description": (cls.__doc__ or "").strip(),
        "type": "object",
        "additionalProperties": False,
        "required": [f.name for f in fields if f.required],
        "properties": properties,
    }


KINDS: dict[str, type] = {cls.KIND: cls for cls in FIELDS}
