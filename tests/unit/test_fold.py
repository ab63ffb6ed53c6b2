"""fold_batch: a batch of raw Kafka records folded into one state update, without I/O."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
import pytest
from gridwatch.agents.fold import fold_batch
from gridwatch.schemas.events import format_time, parse_time
from gridwatch.streams.topics import (
    CHECKPOINT_SCANS,
    CROWD_LOITER,
    DEADLETTER,
    STATION_TICKETS,
)
from shapely.geometry import box

from gridwatch import keys
from gridwatch.batch import BatchUpdate, RawRecord
from gridwatch.city import Grid
from gridwatch.grid_index import GridIndex

# Two unit squares side by side; everything else is outside every grid.
INDEX = GridIndex([
    Grid("A", "A", "A", "s", ("w1",), box(0, 0, 1, 1)),
    Grid("B", "B", "B", "s", ("w2",), box(1, 0, 2, 1)),
])
IN_A = (0.5, 0.5)
IN_B = (1.5, 0.5)
OUTSIDE = (5.0, 5.0)

T0 = parse_time("2026-11-22T08:00:00Z")
H0 = keys.hour_of(T0)
GRACE = 600.0


def scan(ts: float, at: tuple[float, float] = IN_A, *, color: str = "green",
         direction: str = "in", n: int = 0) -> bytes:
    return orjson.dumps({
        "event_id": f"scan-{n}-{ts}", "ts": format_time(ts), "checkpoint_id": "cp-1",
        "lon": at[0], "lat": at[1], "person_ref": f"p{n}", "code_color": color,
        "direction": direction, "last_negative_test_at": None,
    })


def loiter(ts: float, at: tuple[float, float] = IN_A, *, people: int = 3, n: int = 0) -> bytes:
    return orjson.dumps({
        "event_id": f"loiter-{n}-{ts}", "ts": format_time(ts), "camera_id": "cam-1",
        "lon": at[0], "lat": at[1], "zone": "pharmacy:001", "people": people, "dwell_s": 60,
    })


def ticket(ts: float, arrival: float, *, action: str = "sold", seats: int = 1,
           risk: str = "low", station: str = "SHS", n: int = 0) -> bytes:
    return orjson.dumps({
        "event_id": f"ticket-{n}-{ts}", "ts": format_time(ts), "station_id": station,
        "train_no": "G1090", "action": action, "arrival_at": format_time(arrival),
        "origin": "Xi'an", "origin_risk": risk, "seats": seats,
    })


class Log:
    """Builds records with consecutive offsets per topic-partition, as Kafka would."""

    def __init__(self) -> None:
        self.next: Counter[tuple[str, int]] = Counter()

    def __call__(self, topic: str, value: bytes | None, partition: int = 0) -> RawRecord:
        offset = self.next[(topic, partition)]
        self.next[(topic, partition)] += 1
        return RawRecord(topic, partition, offset, value)


def fold(records: Iterable[RawRecord], *, applied: dict[str, int] | None = None,
         watermarks: dict[str, float] | None = None, grace_s: float = GRACE) -> BatchUpdate:
    return fold_batch(list(records), index=INDEX, applied=applied or {},
                      watermarks=watermarks or {}, grace_s=grace_s)


def incr(update: BatchUpdate) -> dict[tuple[str, str], int]:
    """The non-zero increments (what the apply script writes)."""
    return {k: n for k, n in update.incr.items() if n}


def pf(topic: str, partition: int = 0) -> str:
    return keys.partition_field(topic, partition)


# ---- counting --------------------------------------------------------------------------


def test_an_empty_batch_is_an_empty_update() -> None:
    update = fold([])
    assert update.empty
    assert incr(update) == {}
    assert update.watermarks == {}


def test_counts_per_kind_go_to_the_summary() -> None:
    log = Log()
    records = [
        log(CHECKPOINT_SCANS, scan(T0, n=1)),
        log(CHECKPOINT_SCANS, scan(T0 + 1, n=2)),
        log(CHECKPOINT_SCANS, scan(T0 + 2, n=3)),
        log(CROWD_LOITER, loiter(T0)),
        log(STATION_TICKETS, ticket(T0, T0 + 7200)),
        log(STATION_TICKETS, ticket(T0 + 5, T0 + 7200, n=2)),
    ]
    update = fold(records)
    got = incr(update)
    assert got[(keys.SUMMARY, "checkpoint_scans")] == 3
    assert got[(keys.SUMMARY, "loiter_reports")] == 1
    assert got[(keys.SUMMARY, "station_tickets")] == 2
    for name in ("unassigned", "deadletter", "late"):
        assert (keys.SUMMARY, name) not in got
    assert len(update.events) == 6
    assert update.late == 0


def test_scans_count_per_grid_hour_bucket_by_colour_and_direction_and_in_totals() -> None:
    log = Log()
    records = [
        log(CHECKPOINT_SCANS, scan(T0 + 10, IN_A, color="green", direction="in")),
        log(CHECKPOINT_SCANS, scan(T0 + 20, IN_A, color="green", direction="in")),
        log(CHECKPOINT_SCANS, scan(T0 + 30, IN_A, color="red", direction="out")),
        log(CHECKPOINT_SCANS, scan(T0 + 40, IN_B, color="green", direction="out")),
        log(CHECKPOINT_SCANS, scan(T0 + 3600 + 5, IN_A, color="yellow", direction="in")),
    ]
    update = fold(records)
    got = incr(update)
    a0, a1, b0 = keys.grid_hour("A", H0), keys.grid_hour("A", H0 + 1), keys.grid_hour("B", H0)
    assert got[(a0, "scan:green:in")] == 2
    assert got[(a0, "scan:red:out")] == 1
    assert got[(a1, "scan:yellow:in")] == 1
    assert (a1, "scan:green:in") not in got
    assert got[(b0, "scan:green:out")] == 1
    assert got[(keys.grid_total("A"), "scan:green:in")] == 2
    assert got[(keys.grid_total("A"), "scan:red:out")] == 1
    assert got[(keys.grid_total("A"), "scan:yellow:in")] == 1
    assert got[(keys.grid_total("B"), "scan:green:out")] == 1
    # Hour buckets expire; totals do not.
    hours = {k: v for k, v in update.expire.items() if keys.seen_topic(k) is None}
    assert hours == {a0: keys.HOUR_TTL_S, a1: keys.HOUR_TTL_S, b0: keys.HOUR_TTL_S}
    assert update.sadd[keys.GRIDS_SEEN] == {"A", "B"}
    assert [grid for _, _, grid in update.events] == ["A", "A", "A", "B", "A"]
    assert update.late == 0


def test_loiter_reports_count_reports_and_people() -> None:
    log = Log()
    update = fold([
        log(CROWD_LOITER, loiter(T0, IN_B, people=4)),
        log(CROWD_LOITER, loiter(T0 + 60, IN_B, people=7, n=1)),
    ])
    got = incr(update)
    hour = keys.grid_hour("B", H0)
    assert got[(hour, "loiter")] == 2
    assert got[(hour, "loiter_people")] == 11
    assert got[(keys.grid_total("B"), "loiter")] == 2
    assert (keys.grid_total("B"), "loiter_people") not in got


def test_a_point_outside_every_grid_is_counted_unassigned_never_lost() -> None:
    log = Log()
    update = fold([
        log(CHECKPOINT_SCANS, scan(T0, OUTSIDE)),
        log(CROWD_LOITER, loiter(T0, OUTSIDE, people=2)),
        log(CHECKPOINT_SCANS, scan(T0, IN_A, n=1)),
    ])
    got = incr(update)
    assert got[(keys.SUMMARY, "unassigned")] == 2
    assert got[(keys.SUMMARY, "checkpoint_scans")] == 2
    assert got[(keys.SUMMARY, "loiter_reports")] == 1
    pseudo = keys.grid_hour(keys.UNASSIGNED, H0)
    assert got[(pseudo, "scan:green:in")] == 1
    assert got[(pseudo, "loiter")] == 1
    assert got[(pseudo, "loiter_people")] == 2
    assert [grid for _, _, grid in update.events] == [None, None, "A"]


def test_a_point_on_the_shared_edge_goes_to_the_grid_listed_first() -> None:
    log = Log()
    update = fold([log(CHECKPOINT_SCANS, scan(T0, (1.0, 0.5)))])
    assert incr(update)[(keys.grid_hour("A", H0), "scan:green:in")] == 1


# ---- dead letters ---------------------------------------------------------------------


def test_bad_records_are_dead_lettered_with_reasons_and_still_advance_offsets() -> None:
    log = Log()
    good = log(CHECKPOINT_SCANS, scan(T0))
    bad_json = log(CHECKPOINT_SCANS, b"{not json")
    bad_field = log(CHECKPOINT_SCANS, scan(T0).replace(b'"green"', b'"purple"'))
    no_value = log(CROWD_LOITER, None)
    wrong_kind = log(CROWD_LOITER, scan(T0))  # a scan on the loiter topic
    stranger = log(DEADLETTER, b"{}")  # not an input topic
    update = fold([good, bad_json, bad_field, no_value, wrong_kind, stranger])

    reasons = {(d.topic, d.offset): d for d in update.deadletters}
    assert len(update.deadletters) == 5
    assert reasons[(CHECKPOINT_SCANS, 1)].reason.startswith("invalid JSON")
    assert reasons[(CHECKPOINT_SCANS, 1)].field is None
    assert reasons[(CHECKPOINT_SCANS, 2)].field == "code_color"
    assert reasons[(CHECKPOINT_SCANS, 2)].raw == bad_field.value
    assert "empty" in reasons[(CROWD_LOITER, 0)].reason
    assert reasons[(CROWD_LOITER, 1)].field is not None  # first unknown scan field
    assert "not an input topic" in reasons[(DEADLETTER, 0)].reason

    got = incr(update)
    assert got[(keys.SUMMARY, "deadletter")] == 5
    assert got[(keys.SUMMARY, "checkpoint_scans")] == 1
    assert (keys.SUMMARY, "loiter_reports") not in got
    # Offsets move past the bad records too: they are never read again.
    assert update.offsets == {
        pf(CHECKPOINT_SCANS): (-1, 2),
        pf(CROWD_LOITER): (-1, 1),
        pf(DEADLETTER): (-1, 0),
    }


def test_a_batch_of_only_bad_records_still_moves_its_offsets() -> None:
    log = Log()
    update = fold([log(CROWD_LOITER, b"\x00\x01"), log(CROWD_LOITER, b"[]")])
    assert not update.empty
    assert update.offsets == {pf(CROWD_LOITER): (-1, 1)}
    assert incr(update) == {(keys.SUMMARY, "deadletter"): 2}


def test_a_dead_letter_carries_its_source_and_a_bounded_copy_of_the_message() -> None:
    huge = b'{"event_id": "' + b"x" * 20_000 + b'"}'
    update = fold([RawRecord(CROWD_LOITER, 3, 41, huge)], applied={pf(CROWD_LOITER, 3): 40})
    (dl,) = update.deadletters
    out = dl.to_dict()
    assert out["v"] == 1
    assert out["source"] == {"topic": CROWD_LOITER, "partition": 3, "offset": 41}
    assert out["raw_bytes"] == len(huge)
    assert len(out["raw"]) == 2048
    assert out["reason"] == dl.reason and "16384" in dl.reason
    assert orjson.loads(orjson.dumps(out)) == out


# ---- offsets: each record once ----------------------------------------------------------


def test_offsets_record_the_one_before_and_the_last_in_the_batch() -> None:
    records = [RawRecord(CHECKPOINT_SCANS, 2, off, scan(T0 + off, n=off)) for off in (10, 11, 12)]
    update = fold(records, applied={pf(CHECKPOINT_SCANS, 2): 9})
    assert update.offsets == {pf(CHECKPOINT_SCANS, 2): (9, 12)}


def test_already_applied_offsets_are_skipped() -> None:
    records = [RawRecord(CHECKPOINT_SCANS, 0, off, scan(T0 + off, n=off)) for off in range(5)]
    update = fold(records, applied={pf(CHECKPOINT_SCANS): 2})
    assert incr(update)[(keys.SUMMARY, "checkpoint_scans")] == 2
    assert update.offsets == {pf(CHECKPOINT_SCANS): (2, 4)}
    assert [rec.offset for rec, _, _ in update.events] == [3, 4]


def test_replaying_the_same_records_gives_an_empty_update() -> None:
    log = Log()
    records = [
        log(CHECKPOINT_SCANS, scan(T0)),
        log(CROWD_LOITER, loiter(T0)),
        log(CROWD_LOITER, b"garbage"),
        log(STATION_TICKETS, ticket(T0, T0 + 3600)),
        log(CHECKPOINT_SCANS, scan(T0, IN_B), partition=1),
    ]
    first = fold(records)
    applied = {p: last for p, (_, last) in first.offsets.items()}
    again = fold(records, applied=applied, watermarks=first.watermarks)
    assert again.empty
    assert incr(again) == {}
    assert again.deadletters == [] and again.events == []
    assert again.expire == {} and not any(again.sadd.values())


def test_offsets_of_other_partitions_do_not_skip_records() -> None:
    records = [RawRecord(CHECKPOINT_SCANS, 1, 0, scan(T0))]
    update = fold(records, applied={pf(CHECKPOINT_SCANS, 0): 100, pf(CROWD_LOITER, 1): 100})
    assert incr(update)[(keys.SUMMARY, "checkpoint_scans")] == 1


# ---- event time: watermarks and late events ----------------------------------------------


def test_watermarks_are_kept_per_partition() -> None:
    update = fold([
        RawRecord(CHECKPOINT_SCANS, 0, 0, scan(T0 + 100)),
        RawRecord(CHECKPOINT_SCANS, 0, 1, scan(T0 + 50, n=1)),
        RawRecord(CHECKPOINT_SCANS, 1, 0, scan(T0 + 10)),
        RawRecord(CROWD_LOITER, 0, 0, loiter(T0 + 3000)),
    ])
    assert update.watermarks == {
        pf(CHECKPOINT_SCANS, 0): T0 + 100,
        pf(CHECKPOINT_SCANS, 1): T0 + 10,
        pf(CROWD_LOITER, 0): T0 + 3000,
    }


def test_a_watermark_never_moves_back() -> None:
    update = fold([RawRecord(CHECKPOINT_SCANS, 0, 5, scan(T0))],
                  watermarks={pf(CHECKPOINT_SCANS): T0 + 120})
    assert update.watermarks == {pf(CHECKPOINT_SCANS): T0 + 120}


def test_a_partition_ahead_elsewhere_does_not_make_another_partitions_events_late() -> None:
    update = fold([
        RawRecord(CHECKPOINT_SCANS, 0, 0, scan(T0 + 86400)),
        RawRecord(CHECKPOINT_SCANS, 1, 0, scan(T0)),
    ])
    assert update.late == 0


def _late_pair(delta: float) -> BatchUpdate:
    """The watermark is at T0 + 3599 s; a scan then arrives ``delta`` seconds older."""
    mark = T0 + 3599
    return fold([
        RawRecord(CHECKPOINT_SCANS, 0, 0, scan(mark)),
        RawRecord(CHECKPOINT_SCANS, 0, 1, scan(mark - delta, IN_B, color="red", n=1)),
    ])


def test_an_event_just_inside_the_grace_period_counts_normally() -> None:
    update = _late_pair(GRACE)  # exactly at the edge
    got = incr(update)
    assert update.late == 0
    assert (keys.SUMMARY, "late") not in got
    hour = keys.grid_hour("B", H0)
    assert got[(hour, "scan:red:in")] == 1
    assert not any(field.startswith("late:") for _, field in got)


def test_an_event_just_outside_the_grace_period_goes_to_late_fields() -> None:
    update = _late_pair(GRACE + 1)
    got = incr(update)
    assert update.late == 1
    assert got[(keys.SUMMARY, "late")] == 1
    hour = keys.grid_hour("B", keys.hour_of(T0 + 3599 - GRACE - 1))  # its own hour
    assert got[(hour, "late:scan:red:in")] == 1
    assert (hour, "scan:red:in") not in got
    # The all-time total still has it (totals have no hours to be late for) and a late count.
    assert got[(keys.grid_total("B"), "scan:red:in")] == 1
    assert got[(keys.grid_total("B"), "late")] == 1
    assert got[(keys.SUMMARY, "checkpoint_scans")] == 2


def test_a_late_loiter_report_goes_to_late_fields() -> None:
    update = fold([RawRecord(CROWD_LOITER, 0, 0, loiter(T0 - 3600, people=5))],
                  watermarks={pf(CROWD_LOITER): T0})
    got = incr(update)
    hour = keys.grid_hour("A", H0 - 1)
    assert got[(hour, "late:loiter")] == 1
    assert got[(hour, "late:loiter_people")] == 5
    assert (hour, "loiter") not in got
    assert got[(keys.SUMMARY, "late")] == 1


def test_lateness_depends_on_the_watermark_passed_in() -> None:
    record = RawRecord(CHECKPOINT_SCANS, 0, 7, scan(T0))
    on_time = fold([record], watermarks={pf(CHECKPOINT_SCANS): T0 + GRACE})
    late = fold([record], watermarks={pf(CHECKPOINT_SCANS): T0 + GRACE + 0.5})
    assert on_time.late == 0 and late.late == 1


def test_a_zero_grace_makes_any_older_event_late() -> None:
    update = fold([
        RawRecord(CHECKPOINT_SCANS, 0, 0, scan(T0 + 1)),
        RawRecord(CHECKPOINT_SCANS, 0, 1, scan(T0 + 1, n=1)),
        RawRecord(CHECKPOINT_SCANS, 0, 2, scan(T0, n=2)),
    ], grace_s=0)
    assert update.late == 1


# ---- station tickets -----------------------------------------------------------------------

ARRIVAL = T0 + 5 * 3600 + 1200  # 13:20Z
ARRIVAL_HOUR = keys.hour_of(ARRIVAL)
STATION_KEY = keys.station_hour("SHS", ARRIVAL_HOUR)


def test_tickets_fold_by_arrival_hour_with_sold_refunded_exited_and_high_risk() -> None:
    log = Log()
    update = fold([
        log(STATION_TICKETS, ticket(T0, ARRIVAL, action="sold", seats=3, risk="high", n=1)),
        log(STATION_TICKETS, ticket(T0 + 1, ARRIVAL, action="sold", seats=2, risk="low", n=2)),
        log(STATION_TICKETS, ticket(T0 + 2, ARRIVAL, action="refunded", seats=1, risk="high",
                                    n=3)),
        log(STATION_TICKETS, ticket(T0 + 3, ARRIVAL, action="refunded", seats=2, risk="medium",
                                    n=4)),
        log(STATION_TICKETS, ticket(ARRIVAL + 300, ARRIVAL, action="exited", seats=25, n=5)),
    ])
    got = incr(update)
    assert got[(STATION_KEY, "sold")] == 5
    assert got[(STATION_KEY, "refunded")] == 3
    assert got[(STATION_KEY, "booked")] == 2
    assert got[(STATION_KEY, "high_risk")] == 2
    assert got[(STATION_KEY, "arrived")] == 25
    assert got[(keys.SUMMARY, "station_tickets")] == 5
    assert update.expire[STATION_KEY] == keys.STATION_TTL_S
    assert update.zadd[keys.station_hours("SHS")] == {str(ARRIVAL_HOUR): ARRIVAL_HOUR}
    assert update.sadd[keys.STATIONS] == {"SHS"}
    # Tickets are not points: no grid, no unassigned count, no hour bucket of ts.
    assert [grid for _, _, grid in update.events] == [None] * 5
    assert (keys.SUMMARY, "unassigned") not in got
    assert keys.GRIDS_SEEN not in {k for k, v in update.sadd.items() if v}


def test_tickets_of_different_trains_hours_and_stations_stay_apart() -> None:
    log = Log()
    other = ARRIVAL + 3600
    update = fold([
        log(STATION_TICKETS, ticket(T0, ARRIVAL, seats=2)),
        log(STATION_TICKETS, ticket(T0, other, seats=5, n=1)),
        log(STATION_TICKETS, ticket(T0, ARRIVAL, seats=7, station="HZE", n=2)),
    ])
    got = incr(update)
    assert got[(STATION_KEY, "sold")] == 2
    assert got[(keys.station_hour("SHS", ARRIVAL_HOUR + 1), "sold")] == 5
    assert got[(keys.station_hour("HZE", ARRIVAL_HOUR), "sold")] == 7
    assert update.sadd[keys.STATIONS] == {"SHS", "HZE"}
    assert update.zadd[keys.station_hours("SHS")] == {
        str(ARRIVAL_HOUR): ARRIVAL_HOUR, str(ARRIVAL_HOUR + 1): ARRIVAL_HOUR + 1}


def test_a_late_ticket_still_changes_bookings_and_is_counted_late() -> None:
    update = fold([RawRecord(STATION_TICKETS, 0, 0, ticket(T0 - 7200, ARRIVAL, seats=4))],
                  watermarks={pf(STATION_TICKETS): T0})
    got = incr(update)
    assert got[(STATION_KEY, "sold")] == 4
    assert got[(STATION_KEY, "booked")] == 4
    assert got[(STATION_KEY, "late_messages")] == 1
    assert got[(keys.SUMMARY, "late")] == 1
    assert update.late == 1


def test_a_message_about_a_settled_hour_marks_it_revised() -> None:
    """An exit counted three days late changes an hour a live refresher keeps in memory:
    the hour is marked so that it is read again. Hours near the feed's time are not."""
    old = T0 - 3 * 86400
    late = RawRecord(STATION_TICKETS, 0, 0, ticket(old + 600, old, action="exited", seats=2))
    update = fold([late], watermarks={pf(STATION_TICKETS): T0})
    revised = keys.station_revised("SHS")
    assert dict(update.zadd[revised]) == {str(keys.hour_of(old)): keys.hour_of(old)}
    assert update.expire[revised] == keys.STATION_REVISED_TTL_S
    assert incr(update)[(keys.station_hour("SHS", keys.hour_of(old)), "arrived")] == 2
    recent = T0 - 30 * 3600  # inside the hours every refresh reads anyway
    for rec, marks in ((RawRecord(STATION_TICKETS, 0, 0, ticket(recent, recent, action="exited")),
                        {pf(STATION_TICKETS): T0}),
                       (RawRecord(STATION_TICKETS, 0, 0, ticket(T0, ARRIVAL)), {}),  # no watermark
                       (RawRecord(STATION_TICKETS, 0, 0, ticket(T0, ARRIVAL)),
                        {pf(STATION_TICKETS): T0})):
        assert not fold([rec], watermarks=marks).zadd.get(revised), rec


# ---- determinism ---------------------------------------------------------------------------


def _mixed_records() -> list[RawRecord]:
    """A few hundred records over three topics and two partitions each, some late, some bad,
    some outside every grid, in per-partition offset order."""
    log = Log()
    records: list[RawRecord] = []
    points = [IN_A, IN_B, OUTSIDE, (0.25, 0.75), (1.9, 0.1)]
    colors = ["green", "green", "yellow", "red"]
    for i in range(300):
        p = i % 2
        # Mostly moving forward in time; every 17th event 20 minutes old (late), every
        # 13th one 5 minutes old (inside the grace).
        ts = T0 + i * 20 - (1200 if i % 17 == 0 else 300 if i % 13 == 0 else 0)
        at = points[i % len(points)]
        if i % 23 == 0:
            records.append(log(CHECKPOINT_SCANS, b'{"broken', partition=p))
        elif i % 3 == 0:
            records.append(log(CROWD_LOITER, loiter(ts, at, people=1 + i % 5, n=i), partition=p))
        elif i % 7 == 0:
            action = ["sold", "sold", "refunded", "exited"][i % 4]
            records.append(log(STATION_TICKETS,
                               ticket(ts, T0 + 7200 + (i % 3) * 3600, action=action,
                                      seats=1 + i % 3, risk=["low", "high"][i % 2], n=i),
                               partition=p))
        else:
            records.append(log(CHECKPOINT_SCANS,
                               scan(ts, at, color=colors[i % 4], direction=["in", "out"][i % 2],
                                    n=i), partition=p))
    return records


def _fold_in_batches(records: Sequence[RawRecord], sizes: Iterable[int]) -> tuple[
        Counter[tuple[str, str]], dict[str, int], dict[str, float], list[Any], int]:
    """Fold batch after batch as the worker does, carrying offsets and watermarks over."""
    applied: dict[str, int] = {}
    marks: dict[str, float] = {}
    total: Counter[tuple[str, str]] = Counter()
    dead: list[Any] = []
    late = 0
    at = 0
    for size in sizes:
        batch = records[at:at + size]
        at += size
        update = fold(batch, applied=applied, watermarks=marks)
        total.update(update.incr)
        for p, (_, last) in update.offsets.items():
            applied[p] = last
        marks.update(update.watermarks)
        dead.extend((d.topic, d.partition, d.offset, d.reason) for d in update.deadletters)
        late += update.late
    assert at >= len(records)
    return +total, applied, marks, sorted(dead), late


def test_two_different_batch_splits_give_the_same_summed_increments() -> None:
    records = _mixed_records()
    whole = _fold_in_batches(records, [len(records)])
    small = _fold_in_batches(records, [1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 200])
    sevens = _fold_in_batches(records, [7] * 50)
    assert whole[0] == small[0] == sevens[0]
    assert whole[1:] == small[1:] == sevens[1:]
    # The mix exercised every path.
    increments, _, _, dead, late = whole
    assert late > 0 and dead
    assert increments[(keys.SUMMARY, "unassigned")] > 0
    assert any(f.startswith("late:") for _, f in increments)
    assert increments[(keys.SUMMARY, "station_tickets")] > 0


def test_replaying_an_overlapping_window_adds_nothing_twice() -> None:
    records = _mixed_records()
    once = _fold_in_batches(records, [len(records)])[0]
    # Deliver the first 150, then (after a "restart") everything again from offset 0.
    applied: dict[str, int] = {}
    marks: dict[str, float] = {}
    total: Counter[tuple[str, str]] = Counter()
    for batch in (records[:150], records):
        update = fold(batch, applied=applied, watermarks=marks)
        total.update(update.incr)
        for p, (_, last) in update.offsets.items():
            applied[p] = last
        marks.update(update.watermarks)
    assert +total == once


@pytest.mark.parametrize("order", ["forward", "partitions-swapped"])
def test_interleaving_of_partitions_does_not_change_the_result(order: str) -> None:
    records = _mixed_records()
    reference = _fold_in_batches(records, [len(records)])[0]
    if order == "partitions-swapped":
        # Same per-partition order, partitions concatenated instead of interleaved.
        records = sorted(records, key=lambda r: (r.partition, r.topic, r.offset))
    assert _fold_in_batches(records, [len(records)])[0] == reference


def test_gaps_name_the_partitions_that_do_not_follow_on_from_redis() -> None:
    from gridwatch.agents.ingest import gaps

    t = "gridwatch.checkpoint-scans"
    recs = [RawRecord(t, 0, 5, b"{}"), RawRecord(t, 0, 6, b"{}"),
            RawRecord(t, 1, 0, b"{}"), RawRecord(t, 2, 9, b"{}"), RawRecord(t, 3, 3, b"{}")]
    applied = {f"{t}:0": 4, f"{t}:2": 3, f"{t}:3": 7}
    # 0 follows on (4 -> 5); 1 starts at 0 with nothing applied; 2 skips 4..8;
    # 3 is behind (already applied records are skipped by the fold, not a gap).
    assert gaps(recs, applied) == {f"{t}:2": 4}
    assert gaps([RawRecord(t, 1, 2, b"{}")], {}) == {f"{t}:1": 0}


def test_a_batch_folded_ahead_is_used_only_against_the_offsets_it_expected() -> None:
    from gridwatch.agents.ingest import Prefolded

    t = "gridwatch.checkpoint-scans"
    update = BatchUpdate()
    update.offsets[f"{t}:0"] = (9, 20)
    pre = Prefolded(update, generation=3)
    assert pre.fits(3, {f"{t}:0": 9})
    assert not pre.fits(4, {f"{t}:0": 9}), "offsets were read again since"
    assert not pre.fits(3, {f"{t}:0": 12}), "the batch before it was not applied as expected"
    assert not pre.fits(3, {}), "nothing applied at all"
    assert pre.take() is update
    assert not pre.fits(3, {f"{t}:0": 9}), "an update is used once: deciding adds to it"


def test_a_message_sent_again_is_a_duplicate_that_changes_only_its_offset() -> None:
    log = Log()
    t = "gridwatch.checkpoint-scans"
    first = fold([log(t, scan(T0, n=1)), log(t, scan(T0 + 1, n=2)), log(t, scan(T0, n=1))])
    assert [e.event_id for _, e, _ in first.events] == [f"scan-1-{T0}", f"scan-2-{T0 + 1}"]
    assert first.incr[(keys.SUMMARY, "duplicates")] == 1
    assert first.incr[(keys.SUMMARY, "checkpoint_scans")] == 2
    assert first.offsets[pf(t)] == (-1, 2)
    for event_id in (f"scan-1-{T0}", f"scan-2-{T0 + 1}"):
        assert event_id in first.sadd[keys.seen_ids(t, H0, event_id)]
        assert first.expire[keys.seen_ids(t, H0, event_id)] == keys.SEEN_TTL_S
    assert sum(len(ids) for k, ids in first.sadd.items() if keys.seen_topic(k) == t) == 2
    # The same event in a later batch, known from Redis: only the offset moves.
    again = fold_batch([log(t, scan(T0 + 1, n=2))], index=INDEX, applied={pf(t): 2},
                       watermarks=first.watermarks, grace_s=GRACE, seen={(t, f"scan-2-{T0 + 1}")})
    assert again.offsets[pf(t)] == (2, 3)
    assert not again.events
    assert incr(again) == {(keys.SUMMARY, "duplicates"): 1}
    # The same id on another topic is another event.
    other = fold([log("gridwatch.crowd-loiter", loiter(T0, n=1)), log(t, scan(T0, n=1))])
    assert len(other.events) == 2
