"""The garbage collector of a long-running process (worker, gateway), tuned once at start.

CPython's cyclic collector runs a young collection every 700 net allocations and a full
one, over every object alive, every ~100 young ones. A worker allocates a few hundred
objects per event (decoded records, fold and decision tables, Redis payloads) that are
nearly all freed by reference counting, yet each full collection walked the whole heap:
the grid index, the rule tables, faust's and aiokafka's machinery, ~90,000 objects
made at start-up. Measured on 60,000 simulated events (``bench/bench_ingest.py``): 12
full collections took 0.78 s, about 13 us per event.

:func:`tune` moves everything alive at start-up out of the collector's sight
(``gc.freeze``: those objects live as long as the process) and collects less often; the
collections that remain are a few milliseconds. Memory is unchanged in practice: cyclic
garbage waits a little longer, the rest is freed by reference counting as before.
"""

from __future__ import annotations

import gc

# Young collection after 20,000 net allocations (default 700); a middle one every 20
# young; a full one every 40 middle ones (and only when the long-lived objects grew by a
# quarter, CPython's own rule).
THRESHOLDS = (20_000, 20, 40)


def tune() -> None:
    """Freeze the start-up heap and set :data:`THRESHOLDS`; call once the process has
    built what it keeps (and again is harmless)."""
    gc.collect()  # what start-up left as garbage is not frozen with the rest
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
