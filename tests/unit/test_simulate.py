"""The simulated city day: reproducible, realistic enough, and always valid v1 events."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import orjson
import pytest
from gridwatch.schemas.errors import DecodeError
from gridwatch.schemas.events import decode, parse_time
from gridwatch.streams.simulate import CST, CityDay, Simulator
from gridwatch.streams.topics import CHECKPOINT_SCANS, CROWD_LOITER, STATION_TICKETS

from gridwatch.city import load_city
from gridwatch.settings import DATA_DIR

CITY = load_city(DATA_DIR / "city.json")
MONDAY = datetime(2026, 11, 23, tzinfo=CST)
SMALL = CityDay(scans=50_000, loiter_reports=2_000, people=8_000)
GRACE_S = 600.0


def simulator(seed: int = 1, profile: CityDay = SMALL) -> Simulator:
    return Simulator(CITY, seed=seed, start=MONDAY, profile=profile)


def wire(sim: Simulator, **stream_args: Any) -> Iterator[bytes]:
    """Each (send time, topic, event) as the exact bytes a producer would get."""
    for send_at, topic, event in sim.stream(**stream_args):
        yield orjson.dumps([send_at, topic.name, event])


def digest(lines: Iterator[bytes]) -> tuple[str, int]:
    h = hashlib.sha256()
    n = 0
    for line in lines:
        h.update(line)
        h.update(b"\n")
        n += 1
    return h.hexdigest(), n


@pytest.fixture(scope="module")
def day_stream() -> list[tuple[float, str, dict[str, Any]]]:
    return [(at, topic.name, event) for at, topic, event in simulator().stream(days=1.0)]


# ---- reproducible ------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_events_byte_for_byte() -> None:
    first = digest(wire(simulator(seed=4), days=1.0, history_days=1))
    second = digest(wire(simulator(seed=4), days=1.0, history_days=1))
    assert first == second
    assert first[1] > 50_000


def test_another_seed_gives_other_events() -> None:
    a = list(wire(simulator(seed=4), days=0.25))
    b = list(wire(simulator(seed=5), days=0.25))
    assert a != b
    # Not just the ids: the content differs too.
    strip = [orjson.loads(x)[2] for x in a[:500]], [orjson.loads(x)[2] for x in b[:500]]
    for events in strip:
        for e in events:
            e.pop("event_id")
    assert strip[0] != strip[1]


def test_the_same_seed_and_start_give_the_same_district_day_whatever_else_ran() -> None:
    sim = simulator(seed=9)
    list(sim.stream(days=0.1))  # uses the instance first
    again = simulator(seed=9).day(0, station_only=True)
    assert [(ts, name, {k: v for k, v in e.items() if k != "event_id"})
            for ts, name, e in sim.day(0, station_only=True)] == [
        (ts, name, {k: v for k, v in e.items() if k != "event_id"}) for ts, name, e in again]


# ---- valid -------------------------------------------------------------------------------


def test_every_event_decodes_with_the_strict_decoder(
        day_stream: list[tuple[float, str, dict[str, Any]]]) -> None:
    from gridwatch.streams.topics import INPUT_BY_NAME

    kinds: Counter[str] = Counter()
    for _, name, event in day_stream:
        try:
            decoded = decode(orjson.dumps(event), INPUT_BY_NAME[name].event)
        except DecodeError as exc:  # pragma: no cover - the failure message is the point
            pytest.fail(f"{name} event does not decode: {exc.reason}: {event}")
        kinds[type(decoded).KIND] += 1
    assert set(kinds) == {"checkpoint_scan", "crowd_loiter", "station_ticket"}


def test_event_ids_are_unique(day_stream: list[tuple[float, str, dict[str, Any]]]) -> None:
    ids = [e["event_id"] for _, _, e in day_stream]
    assert len(ids) == len(set(ids))


def test_the_stream_is_sent_in_time_order(
        day_stream: list[tuple[float, str, dict[str, Any]]]) -> None:
    sends = [at for at, _, _ in day_stream]
    assert sends == sorted(sends)
    assert MONDAY.timestamp() <= sends[0] and sends[-1] < MONDAY.timestamp() + 86400 + 1800


def test_the_volumes_follow_the_profile(
        day_stream: list[tuple[float, str, dict[str, Any]]]) -> None:
    per_topic = Counter(name for _, name, _ in day_stream)
    assert 0.9 * SMALL.scans < per_topic[CHECKPOINT_SCANS] < 1.1 * SMALL.scans
    assert 0.9 * SMALL.loiter_reports < per_topic[CROWD_LOITER] < 1.2 * SMALL.loiter_reports
    assert per_topic[STATION_TICKETS] > 1_000


def test_scans_have_a_daily_rhythm(day_stream: list[tuple[float, str, dict[str, Any]]]) -> None:
    by_hour = Counter(datetime.fromtimestamp(parse_time(e["ts"]), CST).hour
                      for _, name, e in day_stream if name == CHECKPOINT_SCANS)
    assert by_hour[8] > 5 * by_hour[3]
    assert by_hour[18] > 5 * by_hour[3]
    assert by_hour[8] > by_hour[13] and by_hour[18] > by_hour[13]


# ---- codes, tests, late events ----------------------------------------------------------


def test_a_few_red_and_yellow_codes_and_some_stale_tests(
        day_stream: list[tuple[float, str, dict[str, Any]]]) -> None:
    scans = [e for _, name, e in day_stream if name == CHECKPOINT_SCANS]
    colors = Counter(e["code_color"] for e in scans)
    n = len(scans)
    assert 0.5 * SMALL.red_share * n < colors["red"] < 1.5 * SMALL.red_share * n
    assert 0.5 * SMALL.yellow_share * n < colors["yellow"] < 1.5 * SMALL.yellow_share * n
    assert colors["green"] > 0.9 * n
    stale = [e for e in scans if e["code_color"] == "green" and e["last_negative_test_at"]
             and parse_time(e["ts"]) - parse_time(e["last_negative_test_at"]) > 48 * 3600]
    expected = SMALL.stale_share * colors["green"]
    assert 0.5 * expected < len(stale) < 1.5 * expected
    # Nobody else has a test older than 48 hours.
    fresh = [e for e in scans if e not in stale and e["last_negative_test_at"]]
    assert all(parse_time(e["ts"]) - parse_time(e["last_negative_test_at"]) <= 48 * 3600
               for e in fresh[:5000])


def test_red_code_people_move_across_checkpoints(
        day_stream: list[tuple[float, str, dict[str, Any]]]) -> None:
    checkpoints: dict[str, set[str]] = {}
    for _, name, e in day_stream:
        if name == CHECKPOINT_SCANS and e["code_color"] == "red":
            checkpoints.setdefault(e["person_ref"], set()).add(e["checkpoint_id"])
    assert checkpoints
    assert max(len(c) for c in checkpoints.values()) >= 2


def test_some_events_arrive_late_some_beyond_the_grace_period(
        day_stream: list[tuple[float, str, dict[str, Any]]]) -> None:
    delays = [at - parse_time(e["ts"]) for at, name, e in day_stream
              if name != STATION_TICKETS]
    late = [d for d in delays if d > 1.0]  # the wire time keeps whole seconds
    within = [d for d in late if d <= GRACE_S]
    beyond = [d for d in late if d > GRACE_S]
    expected = SMALL.late_share * len(delays)
    assert 0.5 * expected < len(late) < 1.5 * expected
    assert within and beyond
    assert len(within) > len(beyond)
    assert max(late) <= 1800 + 1


def test_loitering_clusters_at_several_pharmacies_at_once(
        day_stream: list[tuple[float, str, dict[str, Any]]]) -> None:
    cameras_by_half_hour: dict[int, set[str]] = {}
    for _, name, e in day_stream:
        if name == CROWD_LOITER and e["zone"].startswith("pharmacy") and e["people"] >= 6:
            slot = int(parse_time(e["ts"]) // 1800)
            cameras_by_half_hour.setdefault(slot, set()).add(e["camera_id"])
    assert max(len(c) for c in cameras_by_half_hour.values()) >= 4


# ---- the station -------------------------------------------------------------------------


def _arrivals(sim: Simulator, day: int) -> Counter[int]:
    """Passengers who exited at the station on ``day``, by arrival hour (China time)."""
    by_hour: Counter[int] = Counter()
    for _, _, e in sim.day(day, station_only=True):
        if e["action"] == "exited":
            by_hour[datetime.fromtimestamp(parse_time(e["arrival_at"]), CST).hour] += e["seats"]
    return by_hour


def test_about_5000_arrivals_a_day_with_09_and_12_holding_about_40_percent() -> None:
    sim = simulator(seed=2)
    totals = []
    for day in range(7):
        by_hour = _arrivals(sim, day)
        total = sum(by_hour.values())
        totals.append(total)
        assert 3_500 < total < 6_500, (day, total)
        share = (by_hour[9] + by_hour[12]) / total
        assert 0.35 <= share <= 0.45, (day, share)
        assert by_hour[9] > 2 * by_hour[10] and by_hour[12] > 2 * by_hour[11]
        assert all(by_hour[h] == 0 for h in range(6))
    assert 4_000 < sum(totals) / 7 < 6_000


def test_tickets_are_sold_before_the_train_and_exits_happen_at_arrival() -> None:
    events = [e for _, _, e in simulator(seed=3).day(0, station_only=True)]
    actions = Counter(e["action"] for e in events)
    assert actions["sold"] > actions["exited"] > 0
    assert 0 < actions["refunded"] < actions["sold"] * 0.1
    leads = []
    for e in events:
        ts, arrival = parse_time(e["ts"]), parse_time(e["arrival_at"])
        if e["action"] == "exited":
            assert arrival <= ts <= arrival + 11 * 60
        else:
            assert ts < arrival
            leads.append(arrival - ts)
    # Sold in the days and hours before: some within a day, some days ahead.
    assert min(leads) < 3600
    assert any(lead > 3 * 86400 for lead in leads)
    assert all(e["origin_risk"] in {"low", "medium", "high"} for e in events)


def test_station_history_comes_first_and_only_has_tickets() -> None:
    sim = simulator(seed=6)
    start = MONDAY.timestamp()
    before = []
    for at, topic, e in sim.stream(days=0.05, history_days=2):
        if at >= start:
            break
        before.append((topic.name, e))
    assert before
    assert {name for name, _ in before} == {STATION_TICKETS}


def test_local_days_keep_the_peaks_at_their_local_hours_whatever_the_start() -> None:
    seven = MONDAY.replace(hour=7)
    sim = Simulator(CITY, seed=4, start=seven, profile=SMALL, local_days=True)
    live = list(sim.stream(days=1))
    assert live and min(at for at, _, _ in live) >= seven.timestamp()
    exits = Counter(datetime.fromtimestamp(parse_time(e["ts"]), CST).hour
                    for _, topic, e in live if topic.name == STATION_TICKETS and e["action"] == "exited")
    # The busiest local hours are 09 and 12, as on a day simulated from midnight.
    assert {h for h, _ in exits.most_common(2)} == {9, 12}
    # With history asked for, the start day's ticket events before 07:00 come first,
    # and only those; without it, nothing before the start.
    early = [(at, topic.name) for at, topic, _ in
             Simulator(CITY, seed=4, start=seven, profile=SMALL, local_days=True).stream(days=0.01, history_days=1)
             if MONDAY.timestamp() <= at < seven.timestamp()]
    assert early and {name for _, name in early} == {STATION_TICKETS}
    # Without local days, a simulated day begins at the start: the peaks move with it.
    shifted = Counter(datetime.fromtimestamp(parse_time(e["ts"]), CST).hour
                      for _, topic, e in Simulator(CITY, seed=4, start=seven, profile=SMALL).stream(days=1)
                      if topic.name == STATION_TICKETS and e["action"] == "exited")
    assert {h for h, _ in shifted.most_common(2)} == {16, 19}


def test_the_simulate_command_keeps_local_hours_when_it_starts_at_seven(tmp_path: Any) -> None:
    from gridwatch.cli import main

    out = tmp_path / "day.jsonl"
    assert main(["simulate", "--start", "2026-11-23T07:00:00+08:00", "--days", "1",
                 "--scale", "0.05", "--out", str(out)]) == 0
    rows = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    seven = MONDAY.replace(hour=7).timestamp()
    assert rows and min(parse_time(r["event"]["ts"]) for r in rows
                        if r["topic"] != STATION_TICKETS) >= seven
    exits = Counter(datetime.fromtimestamp(parse_time(r["event"]["ts"]), CST).hour for r in rows
                    if r["topic"] == STATION_TICKETS and r["event"]["action"] == "exited")
    assert {h for h, _ in exits.most_common(2)} == {9, 12}
