"""The same records end in the same state however the partitions interleave.

A producer that does not key scans by person spreads one person's scans over
partitions; a worker (or two, or one restarted after a crash) takes the partitions'
records in whatever interleaving its fetches give. Each partition keeps its own order.
Here one set of scans — red-code people crossing grids over three days, some of their
visits arriving late by hours, among green and yellow scans — is split over two
partitions and applied through the worker's batch path (fold, decide, the records'
writes, the atomic apply) into the test stack's real Redis in several interleavings and
batchings; the materialised state (``store.dump``: counters, traces, visits, alerts,
incidents, indexes) must be identical every time.
"""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest
from gridwatch.agents.fold import RawRecord
from gridwatch.agents.ingest import BatchApplier
from gridwatch.agents.worker import decide_config
from gridwatch.schemas.events import format_time
from gridwatch.streams.topics import CHECKPOINT_SCANS
from shapely.geometry import box

from gridwatch import keys, store
from gridwatch import settings as settings_mod
from gridwatch.city import Grid
from gridwatch.grid_index import GridIndex
from gridwatch.store import AsyncStore
from tests import aio

pytestmark = pytest.mark.integration

BASE = 1_764_000_000.0
GRIDS = [Grid(f"I-{n}", f"Interleave {n}", f"交错{n}", "test", (f"w{n}",),
              box(121.39 + n * 0.01, 31.20, 121.40 + n * 0.01, 31.21)) for n in (1, 2, 3)]


def _partitions(seed: int) -> list[list[bytes]]:
    """Two partitions of scans; within each, a few arrive hours after newer ones."""
    rng = random.Random(seed)
    parts: list[list[tuple[float, bytes]]] = [[], []]
    for i in range(260):
        person = f"p{rng.randrange(8)}"
        g = rng.randrange(len(GRIDS))
        ts = BASE + rng.uniform(0, 3 * 86400)
        color = rng.choice(["red", "red", "yellow", "green"])
        event = {"event_id": f"s{i}", "ts": format_time(ts), "checkpoint_id": f"cp{g}{i % 2}",
                 "lon": 121.395 + (g + 1) * 0.01, "lat": 31.205, "person_ref": person,
                 "code_color": color, "direction": rng.choice(["in", "out"]),
                 "last_negative_test_at": format_time(ts - rng.randrange(1, 96) * 3600)}
        parts[rng.randrange(2)].append((ts, orjson.dumps(event)))
    out = []
    for part in parts:
        part.sort(key=lambda x: x[0])
        # a few late ones: moved up to 5 hours' worth of scans further along
        for _ in range(len(part) // 10):
            i = rng.randrange(len(part))
            j = min(len(part) - 1, i + rng.randrange(1, 15))
            part.insert(j, part.pop(i))
        out.append([raw for _, raw in part])
    return out


def _interleave(parts: list[list[bytes]], rng: random.Random, how: str) -> list[RawRecord]:
    records = [[RawRecord(CHECKPOINT_SCANS, p, o, raw) for o, raw in enumerate(part)]
               for p, part in enumerate(parts)]
    if how == "first-then-second":
        return records[0] + records[1]
    if how == "second-then-first":
        return records[1] + records[0]
    merged, heads = [], [0, 0]
    while heads[0] < len(records[0]) or heads[1] < len(records[1]):
        p = rng.randrange(2)
        if heads[p] >= len(records[p]):
            p = 1 - p
        take = rng.randrange(1, 30)
        merged += records[p][heads[p]:heads[p] + take]
        heads[p] = min(len(records[p]), heads[p] + take)
    return merged


def _apply(s: settings_mod.Settings, records: list[RawRecord], rng: random.Random) -> dict[str, Any]:
    """Apply the records in random batches to the Redis of ``s`` (its cluster when it
    names one) and dump the state."""
    r = store.connect(s)
    if s.redis_cluster:
        r.flushdb(target_nodes="primaries")
    else:
        r.flushdb()

    async def run() -> None:
        st = AsyncStore(s)
        try:
            applier = BatchApplier(s, st, GridIndex(GRIDS), decide_config(s))
            i = 0
            while i < len(records):
                n = rng.randrange(1, 60)
                update = await applier.prepare(records[i:i + n])
                if not update.empty:
                    await applier.commit(update)
                i += n
        finally:
            await st.close()

    aio.run(run())
    try:
        return store.dump(r)
    finally:
        r.close()


@pytest.mark.parametrize("seed", [11, 12])
def test_any_interleaving_of_the_partitions_ends_in_one_state(
        clean_stack: settings_mod.Settings, seed: int) -> None:
    parts = _partitions(seed)
    rng = random.Random(seed)
    dumps = {how: _apply(clean_stack, _interleave(parts, rng, how), rng)
             for how in ("first-then-second", "second-then-first", "random-1", "random-2")}
    reference = dumps.pop("first-then-second")
    crossings = [k for k in reference if k.startswith(keys.alert(""))
                 and '"kind":"cross_grid"' in str(reference[k])]
    assert len(crossings) >= 3, "the workload raised too few cross-grid alerts to test"
    for how, dump in dumps.items():
        assert dump.keys() == reference.keys(), how
        diff = [k for k in reference if dump[k] != reference[k]]
        assert not diff, (how, diff[:5], [(reference[k], dump[k]) for k in diff[:2]])


def test_on_a_cluster_the_state_equals_the_one_server_state(
        clean_stack: settings_mod.Settings, redis_cluster: settings_mod.Settings) -> None:
    """The same records applied on a 3-master Redis Cluster (the batch split by slot)
    and on one server, each in its own interleaving and batching: one state."""
    parts = _partitions(13)
    rng = random.Random(13)
    one = _apply(clean_stack, _interleave(parts, rng, "random-1"), rng)
    cluster = _apply(redis_cluster, _interleave(parts, rng, "random-2"), rng)
    assert any(k.startswith(keys.alert("")) and '"kind":"cross_grid"' in str(v)
               for k, v in one.items())
    assert cluster.keys() == one.keys()
    diff = [k for k in one if cluster[k] != one[k]]
    assert not diff, (diff[:5], [(one[k], cluster[k]) for k in diff[:2]])
