"""The story of the simulated live day: an outbreak in a few neighbouring grids of one
street, and the risk bands it gives when the day goes through the real decision code."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

import pytest
from gridwatch.agents.replay import demo_outbreak, hourly_bands
from gridwatch.schemas.events import parse_time
from gridwatch.streams.outbreak import Outbreak, clock, plan
from gridwatch.streams.simulate import CST, CityDay, Simulator

from gridwatch.city import load_city, load_grids
from gridwatch.grid_index import GridIndex
from gridwatch.settings import DATA_DIR

CITY = load_city(DATA_DIR / "city.json")
GRIDS = load_grids(DATA_DIR / "grids.geojson")
INDEX = GridIndex(GRIDS)
BY_ID = {g.id: g for g in GRIDS}
SEVEN = datetime(2026, 11, 23, 7, tzinfo=CST)  # the demo's live day starts at 07:00
SMALL = CityDay(scans=40_000, loiter_reports=1_500, people=8_000)


@pytest.fixture(scope="module")
def story() -> Outbreak:
    found = demo_outbreak(CITY, seed=1)
    assert found is not None
    return found


def test_the_outbreak_is_a_few_neighbouring_grids_of_one_street(story: Outbreak) -> None:
    assert 3 <= len(story.grids) <= 4
    core = BY_ID[story.grids[0]]
    assert {BY_ID[g].street for g in story.grids} == {story.street} == {core.street}
    for g in story.grids[1:]:
        assert BY_ID[g].polygon.intersects(core.polygon), g
    assert story.weights[0] == max(story.weights)
    # Never in the grids of the demo's own grid worker (those are left to the user).
    assert not set(story.grids) & set(CITY["workers"][0]["grids"])
    # Its pharmacies are pharmacy cameras of the same street; its slow worker owns the core.
    assert story.pharmacies and all(c["zone"].startswith("pharmacy") for c in story.pharmacies)
    cams = INDEX.assign([c["lon"] for c in story.pharmacies], [c["lat"] for c in story.pharmacies])
    assert {BY_ID[g].street for g in cams if g} == {story.street}
    assert story.slow_workers and all(story.grids[0] in w["grids"] for w in CITY["workers"]
                                      if w["id"] in story.slow_workers)


def test_the_same_seed_picks_the_same_place_and_another_seed_may_not() -> None:
    assert plan(GRIDS, CITY, seed=1) == plan(GRIDS, CITY, seed=1)
    places = {plan(GRIDS, CITY, seed=s).grids[0] for s in range(1, 8)}  # type: ignore[union-attr]
    assert len(places) > 1
    first = plan(GRIDS, CITY, seed=1)
    assert first is not None
    assert first.grids[0] not in plan(GRIDS, CITY, seed=1, avoid=[first.grids[0]]).grids  # type: ignore[union-attr]


def test_hours_of_the_story_read_as_a_clock() -> None:
    assert (clock(8.5), clock(13.5), clock(0.0), clock(23.99)) == ("08:30", "13:30", "00:00", "23:59")


def _day(outbreak: Outbreak | None) -> list[tuple[str, dict[str, Any]]]:
    sim = Simulator(CITY, seed=3, start=SEVEN, profile=SMALL, local_days=True, outbreak=outbreak)
    return [(name, e) for _, name, e in sim.day(0)]


def test_the_rest_of_the_city_keeps_its_events_with_the_story(story: Outbreak) -> None:
    without = _day(None)
    with_story = _day(story)
    ids = {e["event_id"] for _, e in without}
    assert [x for x in with_story if x[1]["event_id"] in ids] == without
    extra = [(name, e) for name, e in with_story if e["event_id"] not in ids]
    assert len(extra) > 200
    # The story's events are in its grids (scans at their gates) and its pharmacies,
    # between its onset and its fading, most of them in the core grid.
    grids = INDEX.assign([e["lon"] for _, e in extra], [e["lat"] for _, e in extra])
    scans = Counter(g for (name, e), g in zip(extra, grids) if "code_color" in e)
    assert set(scans) <= set(story.grids) and scans.most_common(1)[0][0] == story.grids[0]
    cams = {e["camera_id"] for _, e in extra if "camera_id" in e}
    assert cams == {c["id"] for c in story.pharmacies}
    midnight = SEVEN.replace(hour=0).timestamp()
    hours = [(parse_time(e["ts"]) - midnight) / 3600 for _, e in extra]
    assert story.onset_h <= min(hours) and max(hours) <= story.peak_h + story.fade_h + 0.5
    colours = Counter(e.get("code_color") for _, e in extra)
    assert colours["red"] > 40 and colours["yellow"] > colours["red"]
    # The same seed, the same story, byte for byte.
    assert _day(story) == with_story


def test_at_the_peak_of_the_demo_day_most_grids_are_blue_a_few_yellow_one_or_two_red(
        story: Outbreak) -> None:
    """The demo's live day (07:00, seed 1, the demo's city) through fold, decide and the
    risk score: the bands a district's model gives on a day with one cluster."""
    sim = Simulator(CITY, seed=1, start=SEVEN, local_days=True, outbreak=story)
    peak_end = SEVEN.replace(hour=0).timestamp() / 3600 + story.peak_h + 0.5
    bands: dict[int, dict[str, int]] = {}
    at_peak: dict[str, Any] = {}
    for hour, counts, scores in hourly_bands(sim.stream(days=(peak_end * 3600 - SEVEN.timestamp()) / 86400)):
        bands[hour] = counts
        at_peak = scores
    grids = len(GRIDS)
    peak = bands[max(bands)]
    assert peak["blue"] >= 0.9 * grids
    assert peak["yellow"] >= 1
    assert 1 <= peak["red"] <= 3
    # The colour is the story's: every grid out of blue is one of its grids, and its core
    # is red.
    hot = {g for g, s in at_peak.items() if s.band != "blue"}
    assert hot <= set(story.grids)
    assert at_peak[story.grids[0]].band == "red"
    # Before the outbreak the city is blue: no yellow from the ordinary day's noise.
    first = bands[min(bands)]
    assert first["blue"] == grids
