"""Property-based tests of bad input on the pure path: decode and fold a batch, and the
per-scan rules.

The decoders have their own properties in ``test_events.py`` (arbitrary bytes, text and
JSON values raise nothing but ``DecodeError``). Here the whole fold of a batch is driven
with valid simulated events mixed with random bytes, truncated JSON, fields replaced by
anything, unknown versions and huge fields:

- folding never raises; each record is either applied or dead-lettered, never both;
- exactly the records the decoder refuses are dead-lettered, each with a reason;
- a batch delivered again (at-least-once) changes nothing;
- a batch folded in two pieces counts what it counts in one.

And the rules: every scan gets the alert its colour and test age call for, and the
alert's id depends only on the rule and the event.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

import orjson
from gridwatch.agents.fold import RawRecord, fold_batch
from gridwatch.agents.rules import alert_id, evaluate_scan, load_rules
from gridwatch.schemas.errors import DecodeError
from gridwatch.schemas.events import CheckpointScan, decode, parse_time
from gridwatch.streams.simulate import CST, CityDay, Simulator
from gridwatch.streams.topics import INPUT_BY_NAME
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridwatch import keys
from gridwatch import settings as settings_mod
from gridwatch.city import load_city, load_grids
from gridwatch.grid_index import GridIndex

_S = settings_mod.Settings()
INDEX = GridIndex(load_grids(_S.grids))


def _sample() -> list[tuple[str, dict[str, Any]]]:
    sim = Simulator(load_city(_S.city), seed=5, start=datetime(2024, 3, 4, 7, tzinfo=CST),
                    profile=CityDay(scans=20_000, loiter_reports=2_000, arrivals=3_000))
    out: list[tuple[str, dict[str, Any]]] = []
    seen: set[str] = set()
    for _, topic, event in sim.stream(days=0.2):
        out.append((topic.name, event))
        seen.add(topic.name)
        if len(out) >= 400 and len(seen) == 3:
            break
    return out


VALID = _sample()
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


@st.composite
def bad_value(draw: st.DrawFn, event: dict[str, Any]) -> bytes:
    kind = draw(st.sampled_from(["bytes", "truncated", "field", "version", "huge", "object"]))
    if kind == "bytes":
        return draw(st.binary(min_size=0, max_size=120))
    whole = orjson.dumps(event)
    if kind == "truncated":
        return whole[: draw(st.integers(0, len(whole) - 1))]
    broken = dict(event)
    if kind == "field":
        broken[draw(st.sampled_from(sorted(event)))] = draw(JSON)
    elif kind == "version":
        broken["v"] = draw(JSON.filter(lambda v: not (v == 1 and not isinstance(v, bool))))
    elif kind == "huge":
        name = draw(st.sampled_from([f for f, v in event.items() if isinstance(v, str)]))
        broken[name] = "x" * draw(st.integers(201, 20_000))
    else:
        return orjson.dumps(draw(JSON.filter(lambda v: not isinstance(v, dict))))
    return orjson.dumps(broken)


@st.composite
def batches(draw: st.DrawFn) -> list[RawRecord]:
    """Records of the three input topics (two partitions each), offsets ascending per
    partition, valid and bad mixed; some valid ones appear twice (sent again)."""
    n = draw(st.integers(1, 40))
    next_offset: Counter[tuple[str, int]] = Counter()
    out: list[RawRecord] = []
    for _ in range(n):
        topic, event = VALID[draw(st.integers(0, len(VALID) - 1))]
        roll = draw(st.integers(0, 9))
        value = orjson.dumps(event) if roll < 5 else draw(bad_value(event))
        partition = draw(st.integers(0, 1))
        offset = next_offset[(topic, partition)]
        next_offset[(topic, partition)] += 1
        key = str(event[INPUT_BY_NAME[topic].key_field]).encode()
        out.append(RawRecord(topic, partition, offset, value, key))
    return out


def _refused(rec: RawRecord) -> bool:
    try:
        decode(rec.value, INPUT_BY_NAME[rec.topic].event)
    except DecodeError:
        return True
    return False


def _fold(records: list[RawRecord], applied: dict[str, int] | None = None,
          watermarks: dict[str, float] | None = None,
          seen: set[tuple[str, str]] | None = None) -> Any:
    return fold_batch(records, index=INDEX, applied=applied or {}, watermarks=watermarks or {},
                      grace_s=600.0, seen=seen or set())


def _seen(update: Any) -> set[tuple[str, str]]:
    """(topic, event id) an applied update records as seen, as Redis would keep them."""
    out = set()
    for k, ids in update.sadd.items():
        topic = keys.seen_topic(k)
        if topic is not None:
            out.update((topic, i) for i in ids)
    return out


def _counts(incr: dict[tuple[str, str], int]) -> dict[tuple[str, str], int]:
    return {k: v for k, v in incr.items() if v}


FOLD = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FOLD
@given(records=batches())
def test_every_record_is_applied_or_dead_lettered_with_its_reason(records: list[RawRecord]) -> None:
    update = _fold(records)
    refused = {(r.topic, r.partition, r.offset) for r in records if _refused(r)}
    lettered = [(d.topic, d.partition, d.offset) for d in update.deadletters]
    applied = [(r.topic, r.partition, r.offset) for r, _, _ in update.events]
    assert sorted(lettered) == sorted(refused)
    assert not set(lettered) & set(applied)
    duplicates = update.incr.get((keys.SUMMARY, "duplicates"), 0)
    assert len(lettered) + len(applied) + duplicates == len(records)
    # A duplicate is a valid event whose (topic, event id) came earlier in the batch.
    ids = [(r.topic, e.event_id) for r, e, _ in update.events]
    assert len(ids) == len(set(ids))
    valid = [r for r in records if not _refused(r)]
    assert duplicates == len(valid) - len({(r.topic, orjson.loads(r.value)["event_id"]) for r in valid})
    assert all(isinstance(d.reason, str) and d.reason for d in update.deadletters)
    assert all(len(d.to_dict()["raw"]) <= 2048 for d in update.deadletters)
    kinds = Counter(type(e).__name__ for _, e, _ in update.events)
    summary = {f: n for (k, f), n in update.incr.items() if k == keys.SUMMARY}
    assert sum(summary.get(f, 0) for f in ("checkpoint_scans", "loiter_reports",
                                           "station_tickets")) == sum(kinds.values())


@FOLD
@given(records=batches(), data=st.data())
def test_a_batch_delivered_again_changes_nothing(records: list[RawRecord], data: st.DataObject) -> None:
    first = _fold(records)
    applied = {p: last for p, (_, last) in first.offsets.items()}
    again = data.draw(st.lists(st.sampled_from(records), max_size=len(records)))
    again.sort(key=lambda r: (r.topic, r.partition, r.offset))
    update = _fold(again, applied, first.watermarks)
    assert update.empty and not update.events and not update.deadletters
    assert not _counts(update.incr)


@FOLD
@given(records=batches(), data=st.data())
def test_a_batch_folded_in_two_pieces_counts_the_same(records: list[RawRecord], data: st.DataObject) -> None:
    whole = _fold(records)
    cut = data.draw(st.integers(0, len(records)))
    one = _fold(records[:cut])
    applied = {p: last for p, (_, last) in one.offsets.items()}
    two = _fold(records[cut:], applied, one.watermarks, _seen(one))
    summed = Counter(_counts(one.incr))
    summed.update(_counts(two.incr))
    assert _counts(dict(summed)) == _counts(whole.incr)
    assert sorted(d.offset for d in one.deadletters + two.deadletters) == \
        sorted(d.offset for d in whole.deadletters)
    assert {**one.watermarks, **two.watermarks} == whole.watermarks


TABLE = load_rules()
T0 = parse_time("2026-11-22T10:00:00+08:00")
H = 3600.0


@settings(max_examples=300, deadline=None)
@given(color=st.sampled_from(["green", "yellow", "red"]),
       age_s=st.one_of(st.none(), st.floats(min_value=-24 * H, max_value=200 * H,
                                            allow_nan=False)),
       event_id=st.text(min_size=1, max_size=20), grid=st.sampled_from(["G0001", None]))
def test_each_scan_gets_the_alert_its_colour_and_test_age_call_for(
        color: str, age_s: float | None, event_id: str, grid: str | None) -> None:
    tested = None if age_s is None else T0 - age_s
    s = CheckpointScan(event_id=event_id, ts=T0, checkpoint_id="cp-1", lon=121.43, lat=31.18,
                       person_ref="p-1", code_color=color, direction="in",
                       last_negative_test_at=tested)
    version = TABLE.at(T0)
    hits = evaluate_scan(s, grid, TABLE)
    if color == "red":
        want = ("red_code", version.red_code)
    elif color == "yellow":
        want = ("yellow_code", version.yellow_code)
    elif age_s is None:
        want = ("stale_test", version.stale_test) if version.missing_test_is_stale else None
    else:
        # Exactly the limit is still valid; microsecond rounding decides only at the edge.
        assert tested is not None
        stale = round((T0 - tested) * 1e6) > round(version.stale_test_hours * H * 1e6)
        want = ("stale_test", version.stale_test) if stale else None
    if want is None or want[1] is None:
        assert hits == []
        return
    assert [(h.rule, h.severity) for h in hits] == [want]
    hit = hits[0]
    assert hit.alert_id == alert_id(want[0], event_id)
    assert hit.grid_id == grid and hit.ts == T0
    assert evaluate_scan(s, grid, TABLE) == hits  # the same scan again: the same alert
