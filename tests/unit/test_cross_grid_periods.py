"""Cross-grid alerts as a function of a person's visits alone.

Whatever order a person's red-code visits arrive in (an unkeyed producer spreads them
over partitions, which a worker interleaves as it likes) and however they are batched,
folding each batch's outcomes into the alerts kept so far ends in the alerts computed
from all the visits at once.
"""

from __future__ import annotations

import itertools
import random

from gridwatch.agents.rules import RuleTable, Visit, cross_grid_periods, load_rules
from hypothesis import given, settings
from hypothesis import strategies as st

H = 3600.0
T0 = 1_764_000_000.0
TABLE: RuleTable = load_rules()
WINDOW = TABLE.versions[-1].cross_grid_window_hours * H


def _visits(draw_times: list[float], grids: list[str | None]) -> list[Visit]:
    return [Visit(T0 + t, g, f"e{i}", f"cp{i % 3}")
            for i, (t, g) in enumerate(zip(draw_times, grids))]


def _fold(visits: list[Visit], cuts: list[int]) -> dict[str, object]:
    """Arrive in ``visits``' order, in batches cut at ``cuts``; keep the newest outcome
    of each alert (what the store holds)."""
    kept: dict[str, object] = {}
    seen: list[Visit] = []
    bounds = sorted({0, len(visits), *(c % (len(visits) + 1) for c in cuts)})
    for lo, hi in itertools.pairwise(bounds):
        batch = visits[lo:hi]
        seen += batch
        horizon = min(v.ts for v in batch) - TABLE.visit_horizon_s()
        stored = [v for v in seen if v.ts >= horizon]
        kept.update(cross_grid_periods("p-1", stored, [v.ts for v in batch], TABLE))
    return kept


@settings(max_examples=300, deadline=None)
@given(times=st.lists(st.floats(0, 4 * 86400), min_size=1, max_size=14),
       grids=st.lists(st.sampled_from(["G1", "G2", "G3", None]), min_size=14, max_size=14),
       seed=st.integers(0, 10**6), cuts=st.lists(st.integers(0, 20), max_size=5))
def test_any_order_and_batching_gives_the_alerts_of_all_visits_at_once(
        times: list[float], grids: list[str | None], seed: int, cuts: list[int]) -> None:
    visits = _visits([round(t) for t in times], grids)
    at_once = cross_grid_periods("p-1", visits, [v.ts for v in visits], TABLE)
    shuffled = list(visits)
    random.Random(seed).shuffle(shuffled)
    assert _fold(shuffled, cuts) == at_once
    assert _fold(sorted(visits, key=lambda v: v.ts), []) == at_once


def test_two_grids_within_the_window_raise_one_alert_at_the_second_visit() -> None:
    visits = _visits([0, 3 * H], ["G1", "G2"])
    [out] = cross_grid_periods("p-1", visits, [v.ts for v in visits], TABLE).values()
    assert out.raised.grid_id == "G2" and out.raised.ts == T0 + 3 * H
    assert out.raised.source_ids == {"checkpoint_id": "cp1", "event_id": "e1", "person_ref": "p-1"}
    assert out.latest.details["grids"] == ["G1", "G2"] and out.latest.details["visits"] == 2


def test_the_window_is_inclusive_and_no_longer() -> None:
    exact = _visits([0, WINDOW], ["G1", "G2"])
    assert cross_grid_periods("p-1", exact, [v.ts for v in exact], TABLE)
    apart = _visits([0, WINDOW + 1], ["G1", "G2"])
    assert not cross_grid_periods("p-1", apart, [v.ts for v in apart], TABLE)
    one_grid = _visits([0, H, 2 * H], ["G1", "G1", None])
    assert not cross_grid_periods("p-1", one_grid, [v.ts for v in one_grid], TABLE)


def test_a_late_visit_moves_the_raise_earlier_and_never_takes_an_alert_back() -> None:
    first = _visits([5 * H, 6 * H], ["G2", "G3"])
    [(aid, before)] = cross_grid_periods("p-1", first, [v.ts for v in first], TABLE).items()
    late = Visit(T0 + 4 * H, "G1", "late", "cp9")
    after = cross_grid_periods("p-1", [*first, late], [late.ts], TABLE)
    assert aid in after
    assert before.raised.ts == T0 + 6 * H and after[aid].raised.ts == T0 + 5 * H
    assert after[aid].raised.grid_id == "G2"
    assert after[aid].latest.details["grids"] == ["G1", "G2", "G3"]
