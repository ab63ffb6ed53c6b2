"""gridwatch.heap: the start-up heap frozen, the thresholds set (and put back after)."""

from __future__ import annotations

import gc

from gridwatch import heap


def test_tune_freezes_what_is_alive_and_sets_the_thresholds() -> None:
    before = gc.get_threshold()
    kept = [[i] for i in range(100)]  # containers alive at "start-up": tracked
    try:
        heap.tune()
        assert gc.get_threshold() == heap.THRESHOLDS
        assert gc.get_freeze_count() >= len(kept)
        # frozen: no longer in any generation a collection walks
        assert not any(x is kept[0] for x in gc.get_objects())
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
