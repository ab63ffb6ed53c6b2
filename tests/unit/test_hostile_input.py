"""Hostile but well-formed input on the pure path: decode -> fold -> decide -> the
records and the apply script's argument.

``test_bad_input_properties.py`` mixes broken messages into simulated traffic; here every
message is valid JSON of the right shape, with extreme values in every field: times at
the calendar's edges with offsets up to +-23:59, far in the future, fractions of nine
digits; integers near 10^18 and floats near 1e300 where numbers go; text of odd unicode
(controls, joiners, right-to-left marks, emoji, separators gridwatch uses in keys)
up to and past the size limit. Each record must be either applied (and the batch's
decisions and writes made without an exception) or dead-lettered with a reason naming
its field, never raise.
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from gridwatch.agents import loiter, rules
from gridwatch.agents.decide import DecideConfig, View, decide
from gridwatch.agents.fold import RawRecord, fold_batch
from gridwatch.agents.records_io import add_decisions, mark_grids
from gridwatch.agents.timers import clamp_now
from gridwatch.schemas.errors import DecodeError
from gridwatch.schemas.events import (
    DEFAULT_BOUNDS,
    Bounds,
    CheckpointScan,
    CrowdLoiter,
    StationTicket,
    decode,
    format_time,
    parse_time,
)
from gridwatch.streams.topics import INPUT_BY_NAME
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridwatch import keys
from gridwatch import settings as settings_mod
from gridwatch.city import load_grids
from gridwatch.grid_index import GridIndex
from gridwatch.store import encode_update

_S = settings_mod.Settings()
INDEX = GridIndex(load_grids(_S.grids))
TABLE = rules.load_rules()
CONFIG = DecideConfig(rules=TABLE, loiter=loiter.load_config(),
                      visit_horizon_s=TABLE.visit_horizon_s(600.0))
NOW = time.time()
BOUNDS = Bounds(_S.time_min_year, _S.time_max_year, NOW, _S.max_future_s)
TOPIC = {topic.event: name for name, topic in INPUT_BY_NAME.items()}

# ---- extreme values --------------------------------------------------------------------


@st.composite
def offsets(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        return draw(st.sampled_from(["Z", "z", "+00:00", "-00:00", "+23:59", "-23:59", "+14:00"]))
    sign = draw(st.sampled_from("+-"))
    return f"{sign}{draw(st.integers(0, 23)):02d}:{draw(st.integers(0, 59)):02d}"


@st.composite
def calendar_times(draw: st.DrawFn) -> str:
    """Any RFC 3339 time of any year 0001-9999 (some days invalid: refused, fine)."""
    year = draw(st.sampled_from([1, 2, 1969, 1970, 1999, 2000, 2100, 2101, 9998, 9999])
                | st.integers(1, 9999))
    month, day = draw(st.integers(1, 12)), draw(st.integers(1, 31))
    hms = (draw(st.integers(0, 23)), draw(st.integers(0, 59)), draw(st.integers(0, 59)))
    frac = draw(st.sampled_from(["", ".0", ".999", ".999999", ".999999999", ".5"]))
    sep = draw(st.sampled_from("Tt "))
    return (f"{year:04d}-{month:02d}-{day:02d}{sep}{hms[0]:02d}:{hms[1]:02d}:{hms[2]:02d}"
            f"{frac}{draw(offsets())}")


def _rfc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat()


# Times around now and the clock's skew: just inside, just beyond, days and years ahead.
NEAR_NOW = st.sampled_from([-86400 * 400, -600, 0, 60, 299, 301, 3600, 86400 * 30,
                            86400 * 365 * 50]).map(lambda d: _rfc(NOW + d))
TIMES = calendar_times() | NEAR_NOW
EDGE_NUMBERS = st.sampled_from([0, -0.0, 1, -1, 10**18, -(10**18), 2**63 - 1, -(2**63), 1e300,
                                -1e300, 5e-324, 1e-300, 180, -180, 90, -90, 180.0000001,
                                10_000, 10_001, 7 * 86400, 7 * 86400 + 0.5])
NUMBERS = EDGE_NUMBERS | st.floats(allow_nan=False, allow_infinity=False) | st.integers(
    -(2**63), 2**63 - 1)
ODD = ["|", ":", "\x00", "\u200d", "\u202e", "\ufeff", "👩\u200d👩\u200d👧", "\n", "\"", "\\",
       "{}", "%s", "𝕏" * 3, "中文"]
TEXTS = (st.text(min_size=1, max_size=200)
         | st.lists(st.sampled_from(ODD), min_size=1, max_size=60).map("".join)
         | st.sampled_from(["x" * 200, "x" * 201, "字" * 200, "😀" * 200, "😀" * 201, "|" * 200]))


def _scan(draw: st.DrawFn) -> dict[str, Any]:
    return {"event_id": draw(TEXTS), "ts": draw(TIMES), "checkpoint_id": draw(TEXTS),
            "lon": draw(NUMBERS), "lat": draw(NUMBERS), "person_ref": draw(TEXTS),
            "code_color": draw(st.sampled_from(["green", "yellow", "red"])),
            "direction": draw(st.sampled_from(["in", "out"])),
            "last_negative_test_at": draw(st.none() | TIMES)}


def _loiter(draw: st.DrawFn) -> dict[str, Any]:
    return {"event_id": draw(TEXTS), "ts": draw(TIMES), "camera_id": draw(TEXTS),
            "lon": draw(NUMBERS), "lat": draw(NUMBERS), "zone": draw(TEXTS),
            "people": draw(NUMBERS), "dwell_s": draw(NUMBERS)}


def _ticket(draw: st.DrawFn) -> dict[str, Any]:
    return {"event_id": draw(TEXTS), "ts": draw(TIMES), "station_id": draw(TEXTS),
            "train_no": draw(TEXTS),
            "action": draw(st.sampled_from(["sold", "refunded", "exited"])),
            "arrival_at": draw(TIMES), "origin": draw(TEXTS),
            "origin_risk": draw(st.sampled_from(["low", "medium", "high"])),
            "seats": draw(NUMBERS)}


MAKERS = {CheckpointScan: _scan, CrowdLoiter: _loiter, StationTicket: _ticket}
# Where the points are real: a share of the events land in the district's grids.
LONLAT = [(g.polygon.representative_point().x, g.polygon.representative_point().y)
          for g in load_grids(_S.grids)[:5]]


@st.composite
def hostile_event(draw: st.DrawFn) -> tuple[type, dict[str, Any]]:
    cls = draw(st.sampled_from(list(MAKERS)))
    event = MAKERS[cls](draw)
    if "lon" in event and draw(st.booleans()):
        event["lon"], event["lat"] = draw(st.sampled_from(LONLAT))
    if cls is StationTicket and draw(st.booleans()):
        event["origin_risk"], event["action"] = "high", "sold"  # towards the seat alert
    if draw(st.integers(0, 3)) == 0:
        # the rest sane, so the extremes that pass reach the rules
        event["ts"] = _rfc(NOW - draw(st.integers(0, 86400 * 300)))
    return cls, event


@st.composite
def hostile_batches(draw: st.DrawFn) -> list[RawRecord]:
    out = []
    for offset, (cls, event) in enumerate(draw(st.lists(hostile_event(), min_size=1,
                                                          max_size=12))):
        out.append(RawRecord(TOPIC[cls], 0, offset, orjson.dumps(event), None))
    return out


def _through_the_pure_path(records: list[RawRecord]) -> Any:
    update = fold_batch(records, index=INDEX, applied={}, watermarks={}, grace_s=600.0,
                        bounds=BOUNDS)
    events = [(event, grid) for _, event, grid in update.events]
    decisions = decide(events, View(), CONFIG, workers_of=INDEX.workers_of)
    add_decisions(update, decisions, {}, visit_horizon_s=CONFIG.visit_horizon_s,
                  trace_s=14 * 86400.0)
    mark_grids(update)
    encode_update(update)  # the apply script's argument: serialisable
    return update


HOSTILE = settings(max_examples=120, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@HOSTILE
@given(records=hostile_batches())
def test_every_extreme_event_is_processed_or_dead_lettered_with_its_reason(
        records: list[RawRecord]) -> None:
    update = _through_the_pure_path(records)
    applied = {r.offset for r, _, _ in update.events}
    lettered = {d.offset: d for d in update.deadletters}
    assert not applied & set(lettered)
    duplicates = update.incr.get((keys.SUMMARY, "duplicates"), 0)
    assert len(applied) + len(lettered) + duplicates == len(records)
    for d in lettered.values():
        assert d.reason and not d.reason.startswith("internal error")
    for _, event, _ in update.events:  # what passes is within the bounds
        assert BOUNDS.lo <= event.ts <= NOW + _S.max_future_s
        for name in ("last_negative_test_at", "arrival_at"):
            value = getattr(event, name, None)
            assert value is None or BOUNDS.lo <= value < BOUNDS.hi
        for name in ("lon", "lat", "dwell_s"):
            assert math.isfinite(getattr(event, name, 0.0))
    assert all(w <= NOW + _S.max_future_s for w in update.watermarks.values())


@HOSTILE
@given(cls_event=hostile_event())
def test_a_refused_time_names_its_field(cls_event: tuple[type, dict[str, Any]]) -> None:
    cls, event = cls_event
    try:
        decoded = decode(orjson.dumps(event), cls, BOUNDS)
    except DecodeError as exc:
        assert exc.field is None or exc.field in event
        assert exc.reason.startswith(f"{exc.field}:") if exc.field else exc.reason
        return
    assert format_time(decoded.ts)  # anything decoded formats


@pytest.mark.parametrize("field,value,reason", [
    ("last_negative_test_at", "0001-01-01T00:00:00+23:59", "within the years 2000-2100"),
    ("ts", "9999-12-31T23:59:59-23:59", "within the years 2000-2100"),
    ("ts", "1999-12-31T23:59:59Z", "within the years 2000-2100"),
])
def test_the_reported_edge_times_are_refused_naming_the_field(field: str, value: str,
                                                             reason: str) -> None:
    scan = {"event_id": "e", "ts": _rfc(NOW - 60), "checkpoint_id": "cp", "lon": 120.0,
            "lat": 30.0, "person_ref": "p", "code_color": "green", "direction": "in",
            "last_negative_test_at": _rfc(NOW - 3600), field: value}
    with pytest.raises(DecodeError) as info:
        decode(orjson.dumps(scan), CheckpointScan, BOUNDS)
    assert info.value.field == field and reason in info.value.reason


def test_ts_ahead_of_the_clock_beyond_the_skew_is_refused_and_within_it_accepted() -> None:
    ticket = {"event_id": "t", "station_id": "st", "train_no": "G1", "action": "sold",
              "arrival_at": "2100-12-31T23:59:59+00:00", "origin": "o",
              "origin_risk": "high", "seats": 10_000}
    ok = decode(orjson.dumps({**ticket, "ts": _rfc(NOW + 290)}), StationTicket, BOUNDS)
    assert ok.ts == pytest.approx(NOW + 290)
    with pytest.raises(DecodeError) as info:
        decode(orjson.dumps({**ticket, "ts": _rfc(NOW + 400)}), StationTicket, BOUNDS)
    assert info.value.field == "ts" and "ahead of the clock" in info.value.reason
    # without a clock (tools), only the calendar is checked
    assert decode(orjson.dumps({**ticket, "ts": _rfc(NOW + 400)}), StationTicket).ts > NOW


def test_the_fast_scan_path_refuses_what_the_bounds_refuse() -> None:
    scan = {"event_id": "e", "ts": _rfc(NOW + 86400), "checkpoint_id": "cp", "lon": 120.0,
            "lat": 30.0, "person_ref": "p", "code_color": "red", "direction": "in",
            "last_negative_test_at": None}
    with pytest.raises(DecodeError):
        decode(orjson.dumps(scan), CheckpointScan, BOUNDS)
    assert decode(orjson.dumps({**scan, "ts": _rfc(NOW)}), CheckpointScan, BOUNDS).ts \
        == pytest.approx(NOW)


# A stored watermark that is not a number is clamped too (min() would keep the NaN, and
# with it no event would ever be late nor move the watermark again).
@pytest.mark.parametrize("far", [parse_time("9999-01-01T00:00:00Z"), float("nan")],
                         ids=["far-ahead", "nan"])
def test_a_stored_watermark_far_ahead_is_taken_at_the_clock_limit(far: float) -> None:
    scan = {"event_id": "e", "ts": _rfc(NOW - 60), "checkpoint_id": "cp", "lon": 120.0,
            "lat": 30.0, "person_ref": "p", "code_color": "green", "direction": "in",
            "last_negative_test_at": None}
    field = f"{TOPIC[CheckpointScan]}:0"
    update = fold_batch([RawRecord(TOPIC[CheckpointScan], 0, 0, orjson.dumps(scan))],
                        index=INDEX, applied={}, watermarks={field: far}, grace_s=600.0,
                        bounds=BOUNDS)
    assert update.late == 0, "an event a minute old is not late against a clamped watermark"
    assert update.watermarks[field] == BOUNDS.ts_hi
    assert not BOUNDS.ts_hi >= far  # far ahead, or not a number


def test_the_feed_clock_is_kept_to_the_wall_clock() -> None:
    assert clamp_now(NOW + 10**9, NOW, 300.0) == NOW + 300.0
    assert clamp_now(NOW - 5, NOW, 300.0) == NOW - 5
    assert clamp_now(float("nan"), NOW, 300.0) == NOW
    assert clamp_now(NOW + 10**9, NOW, None) == NOW + 10**9


def test_formatting_never_raises_on_any_float() -> None:
    from gridwatch.agents.lifecycle import when

    for value in (-1e300, 1e300, float("inf"), float("-inf"), float("nan"),
                  parse_time("0001-01-01T00:00:00+23:59"), -62135596800.0 - 86400):
        assert format_time(value) and when(value)
    assert DEFAULT_BOUNDS.lo > parse_time("0001-01-01T00:00:00+23:59")
    assert format_time(DEFAULT_BOUNDS.lo).startswith("0001-01-01")
    assert when(DEFAULT_BOUNDS.hi - 1 - timedelta(hours=9).total_seconds())
