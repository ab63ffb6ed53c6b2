"""The live refresher's memory of a station's settled hours (no servers: the cache's
bookkeeping; the refresher against a real Redis is in tests/integration)."""

from __future__ import annotations

import itertools
import random

from gridwatch.agents.forecast import merge_spans
from gridwatch.agents.forecast_refresh import (
    BOOKING_HOURS,
    HistoryCache,
    _intersect,
    _subtract,
)


def _hours(spans: list[tuple[int, int]]) -> set[int]:
    return {h for lo, hi in spans for h in range(lo, hi)}


def test_span_arithmetic_matches_sets() -> None:
    rng = random.Random(3)
    for _ in range(300):
        a = merge_spans([(lo, lo + rng.randint(0, 12)) for lo in rng.sample(range(60), 4)])
        b = merge_spans([(lo, lo + rng.randint(0, 12)) for lo in rng.sample(range(60), 4)])
        assert _hours(_intersect(a, b)) == _hours(a) & _hours(b)
        assert _hours(_subtract(a, b)) == _hours(a) - _hours(b)
        merged = merge_spans(a + b)
        assert _hours(merged) == _hours(a) | _hours(b)
        assert all(x[1] < y[0] for x, y in itertools.pairwise(merged))  # disjoint, not touching


def test_cache_reads_only_new_hours_and_forgets_old_ones() -> None:
    cache = HistoryCache(filled_at=1000)
    spans = [(100, 200), (500, 1000)]
    read, keep = cache.plan(spans, settled=952)
    assert read == keep == [(100, 200), (500, 952)]
    found = {h: {"arrived": h, "lead:3": 1} for h in (150, 600, 951)}
    cache.update(keep, read, found, origin=1000)
    assert set(cache.rows) == {150, 600, 951}
    # An hour on: each stretch moved by an hour; only the new hours are read.
    read, keep = cache.plan([(101, 201), (501, 1001)], settled=953)
    assert read == [(200, 201), (952, 953)]
    cache.update(keep, read, {952: {"arrived": 5}}, origin=1001)
    assert cache.covered == [(101, 201), (501, 953)]
    assert set(cache.rows) == {150, 600, 951, 952}
    read, keep = cache.plan([(151, 201), (601, 1001)], settled=953)
    cache.update(keep, read, {}, origin=1001)
    assert set(cache.rows) == {951, 952}  # 150 and 600 fell out of the spans


def test_old_hours_keep_arrivals_only() -> None:
    origin = 10_000
    old, recent = origin - BOOKING_HOURS - 5, origin - 100
    cache = HistoryCache(filled_at=origin)
    read, keep = cache.plan([(old - 10, origin)], settled=origin - 48)
    cache.update(keep, read, {old: {"arrived": 7, "lead:0": 3, "booked": 9},
                              old + 1: {"booked": 2},
                              recent: {"arrived": 4, "lead:0": 3}}, origin)
    assert cache.rows[old] == {"arrived": 7}
    assert cache.rows[old + 1] == {}  # recorded (the history starts there), no arrivals
    assert cache.rows[recent] == {"arrived": 4, "lead:0": 3}


def test_revised_hours_are_read_again() -> None:
    cache = HistoryCache(filled_at=1000)
    read, keep = cache.plan([(500, 1000)], settled=952)
    cache.update(keep, read, {600: {"arrived": 1}, 700: {"arrived": 2}}, origin=1000)
    cache.forget([600, 601, 650])  # changed since they were read
    assert 600 not in cache.rows and cache.rows[700] == {"arrived": 2}
    read, keep = cache.plan([(500, 1000)], settled=952)
    assert read == [(600, 602), (650, 651)]
    cache.update(keep, read, {600: {"arrived": 9}}, origin=1000)
    assert cache.rows[600] == {"arrived": 9} and cache.covered == [(500, 952)]
