"""The v1 input events: strict decoding, encoding, and the JSON Schema files producers use."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from gridwatch.schemas import export
from gridwatch.schemas.errors import DecodeError
from gridwatch.schemas.events import (
    FIELDS,
    KINDS,
    MAX_MESSAGE_BYTES,
    MAX_STRING,
    CheckpointScan,
    CrowdLoiter,
    StationTicket,
    decode,
    decode_fields,
    encode,
    format_time,
    json_schema,
    parse_time,
)
from gridwatch.streams.simulate import CityDay, Simulator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridwatch.city import load_city
from gridwatch.settings import DATA_DIR

ROOT = Path(__file__).resolve().parents[2]

VALID: dict[type, dict[str, Any]] = {
    CheckpointScan: {
        "event_id": "scan-1",
        "ts": "2026-11-22T08:30:00+08:00",
        "checkpoint_id": "cp-0001",
        "lon": 121.43,
        "lat": 31.19,
        "person_ref": "3f9a0c",
        "code_color": "green",
        "direction": "in",
        "last_negative_test_at": "2026-11-21T10:00:00+08:00",
    },
    CrowdLoiter: {
        "event_id": "loiter-1",
        "ts": "2026-11-22T07:30:00+08:00",
        "camera_id": "cam-0007",
        "lon": 121.44,
        "lat": 31.18,
        "zone": "pharmacy:023",
        "people": 9,
        "dwell_s": 420.5,
    },
    StationTicket: {
        "event_id": "ticket-1",
        "ts": "2026-11-21T18:00:00+08:00",
        "station_id": "SHS",
        "train_no": "G1090",
        "action": "sold",
        "arrival_at": "2026-11-22T09:20:00+08:00",
        "origin": "Xi'an",
        "origin_risk": "high",
        "seats": 2,
    },
}

ALL_KINDS = list(VALID)
KIND_IDS = [cls.KIND for cls in ALL_KINDS]


def raw(cls: type, **changes: Any) -> bytes:
    """A valid example of ``cls`` on the wire, with some fields changed."""
    obj = dict(VALID[cls])
    obj.update(changes)
    return orjson.dumps(obj)


def without(cls: type, name: str) -> bytes:
    obj = dict(VALID[cls])
    del obj[name]
    return orjson.dumps(obj)


def refused(message: bytes | str, cls: type) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        decode(message, cls)
    return info.value


# ---- valid examples -------------------------------------------------------------------


def test_a_checkpoint_scan_decodes_with_times_as_utc_epoch_seconds() -> None:
    scan = decode(raw(CheckpointScan), CheckpointScan)
    assert isinstance(scan, CheckpointScan)
    assert scan.event_id == "scan-1"
    assert scan.ts == 1795307400.0  # 2026-11-22T00:30:00Z
    assert scan.checkpoint_id == "cp-0001"
    assert (scan.lon, scan.lat) == (121.43, 31.19)
    assert scan.person_ref == "3f9a0c"
    assert (scan.code_color, scan.direction) == ("green", "in")
    assert scan.last_negative_test_at == 1795307400.0 - 22.5 * 3600


def test_a_checkpoint_scan_may_have_no_negative_test() -> None:
    scan = decode(raw(CheckpointScan, last_negative_test_at=None), CheckpointScan)
    assert scan.last_negative_test_at is None  # type: ignore[union-attr]


def test_a_crowd_loiter_report_decodes() -> None:
    report = decode(raw(CrowdLoiter), CrowdLoiter)
    assert report == CrowdLoiter(
        event_id="loiter-1", ts=parse_time("2026-11-22T07:30:00+08:00"), camera_id="cam-0007",
        lon=121.44, lat=31.18, zone="pharmacy:023", people=9, dwell_s=420.5,
    )
    assert isinstance(report.people, int)  # type: ignore[union-attr]
    assert isinstance(report.dwell_s, float)  # type: ignore[union-attr]


def test_a_station_ticket_decodes() -> None:
    ticket = decode(raw(StationTicket), StationTicket)
    assert isinstance(ticket, StationTicket)
    assert ticket.action == "sold"
    assert ticket.arrival_at == parse_time("2026-11-22T01:20:00Z")
    assert (ticket.origin, ticket.origin_risk, ticket.seats) == ("Xi'an", "high", 2)


def test_seats_defaults_to_one() -> None:
    ticket = decode(without(StationTicket, "seats"), StationTicket)
    assert ticket.seats == 1  # type: ignore[union-attr]


@pytest.mark.parametrize("cls", ALL_KINDS, ids=KIND_IDS)
def test_version_one_may_be_stated(cls: type) -> None:
    assert decode(raw(cls, v=1), cls) == decode(raw(cls), cls)


@pytest.mark.parametrize("cls", ALL_KINDS, ids=KIND_IDS)
def test_text_and_bytes_decode_alike(cls: type) -> None:
    assert decode(raw(cls).decode(), cls) == decode(raw(cls), cls)


def test_dwell_zero_and_integral_numbers_are_accepted() -> None:
    report = decode(raw(CrowdLoiter, dwell_s=0, lon=121, lat=31), CrowdLoiter)
    assert report.dwell_s == 0.0  # type: ignore[union-attr]
    assert (report.lon, report.lat) == (121.0, 31.0)  # type: ignore[union-attr]


@pytest.mark.parametrize("text", [
    "2026-11-22T08:30:00Z",
    "2026-11-22t08:30:00z",
    "2026-11-22 08:30:00+00:00",
    "2026-11-22T16:30:00+08:00",
    "2026-11-22T03:30:00-05:00",
    "2026-11-22T08:30:00.000000000Z",
])
def test_rfc3339_forms_with_an_offset_are_all_the_same_instant(text: str) -> None:
    assert parse_time(text) == 1795336200.0


def test_fractions_beyond_microseconds_are_truncated() -> None:
    assert parse_time("2026-11-22T08:30:00.123456789Z") == pytest.approx(1795336200.123456)


# ---- every field's refusals ------------------------------------------------------------

TEXT_FIELDS = {
    CheckpointScan: ["event_id", "checkpoint_id", "person_ref"],
    CrowdLoiter: ["event_id", "camera_id", "zone"],
    StationTicket: ["event_id", "station_id", "train_no", "origin"],
}
TIME_FIELDS = {
    CheckpointScan: ["ts", "last_negative_test_at"],
    CrowdLoiter: ["ts"],
    StationTicket: ["ts", "arrival_at"],
}
ENUM_FIELDS = {
    CheckpointScan: ["code_color", "direction"],
    StationTicket: ["action", "origin_risk"],
}
NUMBER_FIELDS = {
    CheckpointScan: ["lon", "lat"],
    CrowdLoiter: ["lon", "lat", "people", "dwell_s"],
    StationTicket: ["seats"],
}


def _pairs(table: dict[type, list[str]]) -> list[Any]:
    return [pytest.param(cls, name, id=f"{cls.KIND}.{name}")
            for cls, names in table.items() for name in names]


REQUIRED = [pytest.param(cls, f.name, id=f"{cls.KIND}.{f.name}")
            for cls, fields in FIELDS.items() for f in fields if f.required]


def test_the_tables_above_cover_every_field() -> None:
    for cls, fields in FIELDS.items():
        listed = {*TEXT_FIELDS.get(cls, []), *TIME_FIELDS.get(cls, []),
                  *ENUM_FIELDS.get(cls, []), *NUMBER_FIELDS.get(cls, [])}
        assert listed == {f.name for f in fields}, cls.KIND


@pytest.mark.parametrize(("cls", "name"), REQUIRED)
def test_a_missing_required_field_is_named(cls: type, name: str) -> None:
    err = refused(without(cls, name), cls)
    assert err.field == name
    assert name in err.reason and "missing" in err.reason


@pytest.mark.parametrize(("cls", "name"), _pairs(TEXT_FIELDS))
@pytest.mark.parametrize("bad", [17, 1.5, True, None, ["x"], {"x": 1}, "", "x" * (MAX_STRING + 1)],
                         ids=["int", "float", "bool", "null", "list", "object", "empty", "huge"])
def test_a_text_field_refuses_non_strings_empty_and_huge(cls: type, name: str, bad: Any) -> None:
    err = refused(raw(cls, **{name: bad}), cls)
    assert err.field == name
    assert err.reason.startswith(f"{name}: ")


@pytest.mark.parametrize(("cls", "name"), _pairs(TEXT_FIELDS))
def test_a_text_field_of_exactly_the_maximum_length_is_accepted(cls: type, name: str) -> None:
    event = decode(raw(cls, **{name: "x" * MAX_STRING}), cls)
    assert getattr(event, name) == "x" * MAX_STRING


@pytest.mark.parametrize(("cls", "name"), _pairs(TIME_FIELDS))
@pytest.mark.parametrize("bad", [
    "2026-11-22T08:30:00",          # no offset
    "2026-11-22",                    # date only
    "2026-11-22T08:30+08:00",        # no seconds
    "2026-11-22T08:30:00+0800",      # offset without colon
    "2026-13-01T08:30:00Z",          # month 13
    "2026-02-30T08:30:00Z",          # no such day
    "2026-11-22T24:30:00Z",          # hour 24
    "22/11/2026 08:30:00Z",
    "yesterday",
    1795336200,                      # epoch seconds are not RFC 3339
    True,
    ["2026-11-22T08:30:00Z"],
], ids=["no-offset", "date-only", "no-seconds", "offset-no-colon", "month-13", "feb-30",
        "hour-24", "dmy", "word", "epoch", "bool", "list"])
def test_a_time_field_refuses_anything_but_rfc3339_with_an_offset(
        cls: type, name: str, bad: Any) -> None:
    err = refused(raw(cls, **{name: bad}), cls)
    assert err.field == name
    assert err.reason.startswith(f"{name}: ")


@pytest.mark.parametrize(("cls", "name"), [p for p in _pairs(TIME_FIELDS)
                                           if p.values[1] != "last_negative_test_at"])
def test_a_required_time_is_not_nullable(cls: type, name: str) -> None:
    assert refused(raw(cls, **{name: None}), cls).field == name


@pytest.mark.parametrize(("cls", "name"), _pairs(ENUM_FIELDS))
@pytest.mark.parametrize("bad", ["purple", "GREEN", "Sold", "", 1, None, True, ["in"]])
def test_an_enum_field_refuses_other_values(cls: type, name: str, bad: Any) -> None:
    err = refused(raw(cls, **{name: bad}), cls)
    assert err.field == name
    assert "must be one of" in err.reason


@pytest.mark.parametrize(("cls", "name"), _pairs(ENUM_FIELDS))
def test_an_enum_field_accepts_each_of_its_options(cls: type, name: str) -> None:
    options = next(f for f in FIELDS[cls] if f.name == name).schema["enum"]
    assert len(options) >= 2
    for option in options:
        assert getattr(decode(raw(cls, **{name: option}), cls), name) == option


@pytest.mark.parametrize(("cls", "name"), _pairs(NUMBER_FIELDS))
@pytest.mark.parametrize("bad", [True, False, "1", None, [1], {"n": 1}],
                         ids=["true", "false", "string", "null", "list", "object"])
def test_a_number_field_refuses_bools_strings_and_containers(
        cls: type, name: str, bad: Any) -> None:
    err = refused(raw(cls, **{name: bad}), cls)
    assert err.field == name
    assert err.reason.startswith(f"{name}: must be")


@pytest.mark.parametrize(("cls", "name", "bad"), [
    (CheckpointScan, "lon", 180.0001),
    (CheckpointScan, "lon", -180.5),
    (CheckpointScan, "lat", 90.01),
    (CheckpointScan, "lat", -91),
    (CrowdLoiter, "lon", 361),
    (CrowdLoiter, "lat", -90.0001),
    (CrowdLoiter, "people", 0),
    (CrowdLoiter, "people", -3),
    (CrowdLoiter, "people", 10_001),
    (CrowdLoiter, "people", 2.5),
    (CrowdLoiter, "people", 2.0),
    (CrowdLoiter, "dwell_s", -0.1),
    (CrowdLoiter, "dwell_s", -1),
    (CrowdLoiter, "dwell_s", 7 * 86400 + 1),
    (StationTicket, "seats", 0),
    (StationTicket, "seats", -1),
    (StationTicket, "seats", 1.5),
    (StationTicket, "seats", 10_001),
])
def test_a_number_out_of_range_or_of_the_wrong_kind_is_named(
        cls: type, name: str, bad: float) -> None:
    err = refused(raw(cls, **{name: bad}), cls)
    assert err.field == name


@pytest.mark.parametrize(("cls", "name", "edge"), [
    (CheckpointScan, "lon", 180), (CheckpointScan, "lon", -180),
    (CheckpointScan, "lat", 90), (CheckpointScan, "lat", -90),
    (CrowdLoiter, "people", 1), (CrowdLoiter, "people", 10_000),
    (CrowdLoiter, "dwell_s", 7 * 86400), (StationTicket, "seats", 1),
])
def test_range_edges_are_inclusive(cls: type, name: str, edge: float) -> None:
    assert getattr(decode(raw(cls, **{name: edge}), cls), name) == edge


def test_a_seats_of_null_is_refused_not_defaulted() -> None:
    assert refused(raw(StationTicket, seats=None), StationTicket).field == "seats"


@pytest.mark.parametrize("cls", ALL_KINDS, ids=KIND_IDS)
def test_an_unknown_field_is_named(cls: type) -> None:
    err = refused(raw(cls, colour="green"), cls)
    assert err.field == "colour"
    assert "unknown field" in err.reason


def test_a_field_of_another_kind_is_unknown_here() -> None:
    err = refused(raw(CrowdLoiter, code_color="red"), CrowdLoiter)
    assert err.field == "code_color"


def test_a_huge_unknown_field_name_is_cut_in_the_reason() -> None:
    name = "z" * 500
    err = refused(raw(CrowdLoiter, **{name: 1}), CrowdLoiter)
    assert err.field == "z" * 40
    assert len(err.reason) < 100


@pytest.mark.parametrize("cls", ALL_KINDS, ids=KIND_IDS)
@pytest.mark.parametrize("version", [2, 0, "1", None, True, 1.5, [1]])
def test_any_version_but_one_is_refused(cls: type, version: Any) -> None:
    err = refused(raw(cls, v=version), cls)
    assert err.field == "v"
    assert "version" in err.reason


@pytest.mark.parametrize("cls", ALL_KINDS, ids=KIND_IDS)
@pytest.mark.parametrize("message", [b"[]", b"[1, 2]", b'"text"', b"42", b"null", b"true"],
                         ids=["empty-list", "list", "string", "number", "null", "bool"])
def test_a_message_that_is_not_an_object_is_refused_as_a_whole(
        cls: type, message: bytes) -> None:
    err = refused(message, cls)
    assert err.field is None
    assert "JSON object" in err.reason


@pytest.mark.parametrize("message", [
    b"", b"{", b'{"event_id": "e",}', b"{'a': 1}", b"\xff\xfe{}", b"NaN", b"{}{}",
    b'{"lon": 1e400}',
], ids=["empty", "truncated", "trailing-comma", "single-quotes", "not-utf8", "nan",
        "two-objects", "infinite"])
def test_invalid_json_is_refused_as_a_whole(message: bytes) -> None:
    err = refused(message, CrowdLoiter)
    assert err.field is None
    assert err.reason.startswith("invalid JSON")


def test_a_truncated_valid_message_is_invalid_json() -> None:
    message = raw(CheckpointScan)
    for cut in (1, len(message) // 2, len(message) - 1):
        assert refused(message[:cut], CheckpointScan).reason.startswith("invalid JSON")


def test_an_oversize_message_is_refused_before_parsing() -> None:
    padding = "x" * MAX_MESSAGE_BYTES
    message = b'{"event_id": "' + padding.encode() + b'"}'
    err = refused(message, CrowdLoiter)
    assert err.field is None
    assert str(MAX_MESSAGE_BYTES) in err.reason
    # Oversize wins even over invalid JSON: the parser never sees it.
    assert str(MAX_MESSAGE_BYTES) in refused(b"{" * (MAX_MESSAGE_BYTES + 1), CrowdLoiter).reason


def test_a_message_of_exactly_the_limit_is_parsed() -> None:
    message = raw(CrowdLoiter)
    message = message[:-1] + b" " * (MAX_MESSAGE_BYTES - len(message)) + b"}"
    assert len(message) == MAX_MESSAGE_BYTES
    assert decode(message, CrowdLoiter).event_id == "loiter-1"


def test_decode_fields_refuses_a_non_object() -> None:
    with pytest.raises(DecodeError) as info:
        decode_fields(["not", "an", "object"], CheckpointScan)
    assert info.value.field is None


# ---- encoding --------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_KINDS, ids=KIND_IDS)
def test_encode_then_decode_gives_the_same_event(cls: type) -> None:
    event = decode(raw(cls), cls)
    wire = encode(event)
    assert decode(wire, cls) == event
    assert encode(decode(wire, cls)) == wire  # a fixed point


def test_encode_writes_times_as_rfc3339_utc_and_every_field() -> None:
    scan = decode(raw(CheckpointScan, last_negative_test_at=None), CheckpointScan)
    obj = orjson.loads(encode(scan))
    assert obj["ts"] == "2026-11-22T00:30:00+00:00"
    assert obj["last_negative_test_at"] is None
    assert set(obj) == {f.name for f in FIELDS[CheckpointScan]}


def test_encode_writes_the_default_seats() -> None:
    ticket = decode(without(StationTicket, "seats"), StationTicket)
    assert orjson.loads(encode(ticket))["seats"] == 1


def test_format_time_and_parse_time_agree() -> None:
    for epoch in (0.0, 1795336200.0, 1e9 + 7):
        assert parse_time(format_time(epoch)) == epoch


# ---- property tests --------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(message=st.binary(max_size=300), cls=st.sampled_from(ALL_KINDS))
def test_arbitrary_bytes_raise_nothing_but_decode_error(message: bytes, cls: type) -> None:
    try:
        decode(message, cls)
    except DecodeError:
        pass


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(message=st.text(max_size=300), cls=st.sampled_from(ALL_KINDS))
def test_arbitrary_text_raises_nothing_but_decode_error(message: str, cls: type) -> None:
    try:
        decode(message, cls)
    except DecodeError:
        pass


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(value=JSON_VALUES, cls=st.sampled_from(ALL_KINDS))
def test_arbitrary_json_values_raise_nothing_but_decode_error(value: Any, cls: type) -> None:
    try:
        decode(orjson.dumps(value), cls)
    except DecodeError:
        pass


def _mutations(cls: type) -> st.SearchStrategy[dict[str, Any]]:
    """A valid example with one field replaced by an arbitrary JSON value."""
    names = [f.name for f in FIELDS[cls]] + ["v", "extra"]
    return st.builds(lambda name, value: {**VALID[cls], name: value},
                     st.sampled_from(names), JSON_VALUES)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), cls=st.sampled_from(ALL_KINDS))
def test_one_field_replaced_by_anything_decodes_or_names_a_field(
        data: st.DataObject, cls: type) -> None:
    obj = data.draw(_mutations(cls))
    try:
        event = decode(orjson.dumps(obj), cls)
    except DecodeError as exc:
        assert exc.field is not None and exc.field in obj
    else:
        assert isinstance(event, cls)


def _two_mutations(cls: type) -> st.SearchStrategy[dict[str, Any]]:
    """A valid example with up to two fields replaced (or removed) by anything."""
    names = [f.name for f in FIELDS[cls]] + ["v", "extra"]
    change = st.tuples(st.sampled_from(names), JSON_VALUES | st.just(REMOVE))

    def apply(changes: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(VALID[cls])
        for name, value in changes:
            if value is REMOVE:
                obj.pop(name, None)
            else:
                obj[name] = value
        return obj

    return st.lists(change, max_size=2).map(apply)


REMOVE = object()


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_fast_scan_path_agrees_with_the_field_table(data: st.DataObject) -> None:
    """The quick check of a scan never accepts what the table refuses, and what it
    accepts decodes to the very same event."""
    from gridwatch.schemas.events import _fast_scan, decode_fields

    obj = orjson.loads(orjson.dumps(data.draw(_two_mutations(CheckpointScan))))
    fast = _fast_scan(obj)
    try:
        slow = decode_fields(obj, CheckpointScan)
    except DecodeError:
        assert fast is None
    else:
        assert fast is None or fast == slow


def test_the_fast_scan_path_takes_the_common_case() -> None:
    from gridwatch.schemas.events import _fast_scan

    assert _fast_scan(dict(VALID[CheckpointScan])) is not None
    assert _fast_scan({**VALID[CheckpointScan], "v": 1}) is not None
    assert _fast_scan({**VALID[CheckpointScan], "last_negative_test_at": None}) is not None


# Identifiers may not hold "|" (it joins them in stored members and keys).
TEXT = st.text(min_size=1, max_size=MAX_STRING).filter(
    lambda s: len(s) <= MAX_STRING and "|" not in s)
# Seconds since the epoch from 1971 to 2100, at millisecond resolution, and offsets.
INSTANTS = st.integers(31_536_000_000, 4_102_444_800_000).map(lambda ms: ms / 1000)
OFFSETS = st.sampled_from(["Z", "+00:00", "+08:00", "-05:00", "+05:45", "-09:30", "+14:00"])


def _rfc3339(epoch: float, offset: str) -> str:
    from datetime import datetime, timedelta, timezone

    if offset == "Z":
        tz = timezone.utc
    else:
        sign = 1 if offset[0] == "+" else -1
        tz = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])))
    text = datetime.fromtimestamp(epoch, tz).isoformat(timespec="milliseconds")
    return text[:-6] + "Z" if offset == "Z" else text


TIMES = st.builds(_rfc3339, INSTANTS, OFFSETS)
WHOLE_SECOND_TIMES = st.builds(_rfc3339, INSTANTS.map(float.__floor__).map(float), OFFSETS)
LON = st.floats(-180, 180, allow_nan=False)
LAT = st.floats(-90, 90, allow_nan=False)


def generated(cls: type, times: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Valid wire objects of ``cls`` over the whole of each field's domain."""
    if cls is CheckpointScan:
        return st.fixed_dictionaries(
            {"event_id": TEXT, "ts": times, "checkpoint_id": TEXT, "lon": LON, "lat": LAT,
             "person_ref": TEXT, "code_color": st.sampled_from(["green", "yellow", "red"]),
             "direction": st.sampled_from(["in", "out"]),
             "last_negative_test_at": st.none() | times},
            optional={"v": st.just(1)})
    if cls is CrowdLoiter:
        return st.fixed_dictionaries(
            {"event_id": TEXT, "ts": times, "camera_id": TEXT, "lon": LON, "lat": LAT,
             "zone": TEXT, "people": st.integers(1, 10_000),
             "dwell_s": st.floats(0, 7 * 86400, allow_nan=False) | st.integers(0, 7 * 86400)},
            optional={"v": st.just(1)})
    return st.fixed_dictionaries(
        {"event_id": TEXT, "ts": times, "station_id": TEXT, "train_no": TEXT,
         "action": st.sampled_from(["sold", "refunded", "exited"]), "arrival_at": times,
         "origin": TEXT, "origin_risk": st.sampled_from(["low", "medium", "high"])},
        optional={"v": st.just(1), "seats": st.integers(1, 10_000)})


TIME_NAMES = {cls: {f.name for f in FIELDS[cls] if f.schema.get("format") == "date-time"}
              for cls in ALL_KINDS}


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), cls=st.sampled_from(ALL_KINDS))
def test_valid_generated_events_always_decode(data: st.DataObject, cls: type) -> None:
    obj = data.draw(generated(cls, TIMES))
    event = decode(orjson.dumps(obj), cls)
    assert isinstance(event, cls)
    for f in FIELDS[cls]:
        value = getattr(event, f.name)
        sent = obj.get(f.name, f.default)
        if f.name in TIME_NAMES[cls]:
            assert value == (None if sent is None else pytest.approx(parse_time(sent)))
        else:
            assert value == sent


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), cls=st.sampled_from(ALL_KINDS))
def test_whole_second_events_survive_encode_and_decode(data: st.DataObject, cls: type) -> None:
    event = decode(orjson.dumps(data.draw(generated(cls, WHOLE_SECOND_TIMES))), cls)
    assert decode(encode(event), cls) == event


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), cls=st.sampled_from(ALL_KINDS))
def test_millisecond_events_survive_encode_and_decode(data: st.DataObject, cls: type) -> None:
    event = decode(orjson.dumps(data.draw(generated(cls, TIMES))), cls)
    again = decode(encode(event), cls)
    assert again == event
    assert encode(again) == encode(event)


def test_encode_keeps_fractions_of_a_second() -> None:
    event = decode(raw(CrowdLoiter, ts="2026-11-22T08:30:00.250Z"), CrowdLoiter)
    assert event.ts == 1795336200.25
    assert decode(encode(event), CrowdLoiter).ts == event.ts


# ---- JSON Schema files -----------------------------------------------------------------


def test_the_committed_schema_files_are_what_export_writes_now(tmp_path: Path) -> None:
    written = export.write_all(tmp_path)
    assert sorted(p.name for p in written) == sorted(f"{k}.v1.json" for k in KINDS)
    committed = ROOT / "schemas" / "jsonschema"
    assert sorted(p.name for p in committed.glob("*.json")) == sorted(p.name for p in written)
    for path in written:
        assert (committed / path.name).read_bytes() == path.read_bytes(), (
            f"schemas/jsonschema/{path.name} is stale: run `gridwatch schemas export "
            "schemas/jsonschema`")


@pytest.mark.parametrize("cls", ALL_KINDS, ids=KIND_IDS)
def test_the_schema_requires_exactly_the_required_fields(cls: type) -> None:
    schema = json_schema(cls)
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {f.name for f in FIELDS[cls] if f.required}
    assert set(schema["properties"]) == {f.name for f in FIELDS[cls]} | {"v"}


def _validator(cls: type) -> Any:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((ROOT / "schemas" / "jsonschema" / f"{cls.KIND}.v1.json").read_text())
    validator_cls = jsonschema.validators.validator_for(schema)
    validator_cls.check_schema(schema)
    return validator_cls(schema, format_checker=validator_cls.FORMAT_CHECKER)


@pytest.mark.parametrize("cls", ALL_KINDS, ids=KIND_IDS)
def test_the_valid_examples_validate_against_the_schema(cls: type) -> None:
    _validator(cls).validate(VALID[cls])


@pytest.mark.parametrize(("cls", "changes"), [
    (CheckpointScan, {"code_color": "purple"}),
    (CheckpointScan, {"lat": 91}),
    (CrowdLoiter, {"people": 0}),
    (CrowdLoiter, {"dwell_s": -1}),
    (CrowdLoiter, {"extra": 1}),
    (StationTicket, {"seats": 0}),
    (StationTicket, {"v": 2}),
])
def test_the_schema_and_the_decoder_refuse_the_same_examples(
        cls: type, changes: dict[str, Any]) -> None:
    obj = {**VALID[cls], **changes}
    assert not _validator(cls).is_valid(obj)
    with pytest.raises(DecodeError):
        decode_fields(obj, cls)


def test_every_simulated_event_validates_against_its_json_schema() -> None:
    sim = Simulator(load_city(DATA_DIR / "city.json"), seed=3,
                    profile=CityDay(scans=6_000, loiter_reports=600, people=3_000,
                                    late_share=0.02))
    validators = {cls: _validator(cls) for cls in ALL_KINDS}
    seen: dict[type, int] = {cls: 0 for cls in ALL_KINDS}
    for _, topic, event in sim.stream(days=1.0):
        errors = list(validators[topic.event].iter_errors(event))
        assert not errors, (event, [e.message for e in errors])
        seen[topic.event] += 1
    assert all(n > 100 for n in seen.values()), seen
