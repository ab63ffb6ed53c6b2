"""The apply script does exactly what a batch's update says, on the test stack's Redis.

Random updates of every kind of write (counters, fields, keep-the-larger/smaller fields,
sets and sorted sets larger than one call's chunk, removals, trims, records with and
without TTL, deletions, expiries, channel entries) go once through ``AsyncStore.apply``
(one script call, grouped by key) and once through plain redis-py commands, one per
field or member, in the order the update lists them, into another database. The two
databases must hold the same keys, values and TTLs; a stale offset or record version
must change nothing.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
import redis

from gridwatch import keys
from gridwatch import settings as settings_mod
from gridwatch.batch import BatchUpdate
from gridwatch.store import ApplyConflict, AsyncStore
from tests import aio

pytestmark = pytest.mark.integration


def _update(rng: random.Random, round_: int) -> BatchUpdate:
    u = BatchUpdate()
    u.offsets = {f"in:{p}": (round_ * 100 - 1, round_ * 100 + 99) for p in range(2)}
    u.watermarks = {f"in:{p}": 1_764_000_000.25 + round_ * 60 + p for p in range(2)}
    # keys without a tag, in the core slot and in shards (each its own part on a cluster)
    hashes = ["gw:t:h:0", "gw:t:h:1", keys.CORE + "t:h:2", keys.shard_prefix("a") + "t:h:3",
              keys.shard_prefix("b") + "t:h:4", keys.shard_prefix("c") + "t:h:5"]
    for _ in range(rng.randrange(50, 400)):
        u.incr[(rng.choice(hashes), f"f{rng.randrange(40)}")] += rng.randrange(-3, 9)
    for _ in range(rng.randrange(1, 60)):
        u.hset[(rng.choice(hashes), f"s{rng.randrange(30)}")] = f"v{rng.randrange(1000)}"
    for _ in range(rng.randrange(0, 10)):
        u.hdel[rng.choice(hashes)].add(f"s{rng.randrange(30)}")
    # more than one chunk (500 pairs) on one key, and values that tie the stored ones
    for i in range(rng.choice([3, 700])):
        u.hmax[(hashes[0], f"m{i}")] = float(rng.randrange(0, 50)) + 0.5
        u.hmin[(hashes[1], f"m{i}")] = float(rng.randrange(0, 50)) - 0.25
    for k in range(3):
        for _ in range(rng.choice([1, 20, 1200])):
            u.sadd[f"gw:t:s:{k}"].add(f"id-{rng.randrange(5000)}")
        u.expire[f"gw:t:s:{k}"] = 3600 + k
    for k in range(3):
        zkey = f"gw:t:z:{k}" if k == 0 else f"{keys.shard_prefix(str(k))}t:z:{k}"
        for _ in range(rng.choice([1, 30, 1100])):
            u.zadd[zkey][f"m{rng.randrange(3000)}"] = 1_764_000_000 + rng.randrange(100_000)
        if rng.random() < 0.5:
            u.zrem[zkey].update(f"m{rng.randrange(3000)}" for _ in range(5))
        if rng.random() < 0.5:
            u.ztrim[zkey] = 1_764_000_000 + rng.randrange(100_000) + 0.5
    for i in range(rng.randrange(0, 6)):
        u.sets[f"gw:t:rec:{round_}:{i}"] = (b'{"n":%d}' % i, rng.choice([None, 600]))
    if round_ and rng.random() < 0.7:
        u.dels.add(f"gw:t:rec:{round_ - 1}:0")
    u.cas = {f"gw:t:rec:{round_}:0": 0}
    u.streams.append(("gw:t:chan", 100, b'{"round":%d}' % round_))
    return u


def _reference(r: redis.Redis, u: BatchUpdate) -> None:
    """What the update means, one plain command per field or member."""
    for f, (_, last) in u.offsets.items():
        r.hset(keys.OFFSETS, f, str(last))
    for f, w in u.watermarks.items():
        r.hset(keys.WATERMARKS, f, repr(float(w)))
    for (k, f), n in u.incr.items():
        r.hincrby(k, f, n)
    for (k, f), v in u.hset.items():
        r.hset(k, f, v)
    for k, fields in u.hdel.items():
        for f in fields:
            r.hdel(k, f)
    for table, larger in ((u.hmax, True), (u.hmin, False)):
        for (k, f), v in table.items():
            cur = r.hget(k, f)
            if cur is None or (v > float(cur) if larger else v < float(cur)):
                r.hset(k, f, repr(float(v)))
    for k, members in u.sadd.items():
        for m in members:
            r.sadd(k, m)
    for k, members in u.zadd.items():
        for m, score in members.items():
            r.zadd(k, {m: score})
    for k, members in u.zrem.items():
        for m in members:
            r.zrem(k, m)
    for k, v in u.ztrim.items():
        r.zremrangebyscore(k, "-inf", f"({v!r}")
    for k, (data, ttl) in u.sets.items():
        r.set(k, data, ex=ttl)
    for k in u.dels:
        r.delete(k)
    for k, ttl in u.expire.items():
        r.expire(k, ttl)
    for k in u.cas:
        r.hincrby(keys.VERSIONS, k, 1)
    for k, maxlen, data in u.streams:
        r.xadd(k, {"d": data}, maxlen=maxlen, approximate=True)


def _bookkeeping(name: str) -> bool:
    """The apply's own keys (the pending set, the applied offsets), not the update's."""
    return name == keys.PENDING or ":applied" in name


def _contents(r: Any, skip: Callable[[str], bool] = lambda name: False) -> dict[str, Any]:
    """Every key of ``r`` (one server, or every master of a cluster) but those ``skip``
    names: its value and whether it has a time to live."""
    out: dict[str, Any] = {}
    for key in sorted(set(r.scan_iter(count=1000))):
        name = key.decode()
        if skip(name):
            continue
        kind = r.type(key)
        ttl = r.ttl(key)
        if kind == b"hash":
            value: Any = r.hgetall(key)
        elif kind == b"set":
            value = sorted(r.smembers(key))
        elif kind == b"zset":
            value = r.zrange(key, 0, -1, withscores=True)
        elif kind == b"stream":
            value = [fields for _, fields in r.xrange(key)]
        else:
            value = r.get(key)
        out[name] = (value, ttl > 0)
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_script_writes_what_the_update_says(clean_stack: settings_mod.Settings,
                                                seed: int) -> None:
    rng = random.Random(seed)
    url = clean_stack.redis
    other = url.rsplit("/", 1)[0] + "/1"
    ref = redis.Redis.from_url(other)
    ref.flushdb()
    updates = [_update(rng, round_) for round_ in range(4)]
    stale = _update(rng, 1)  # folded against offsets that have moved since

    async def apply_all() -> tuple[dict[str, Any], dict[str, Any]]:
        store = AsyncStore(url)
        plain = redis.Redis.from_url(url)
        try:
            for u in updates:
                await store.apply(u)
                _reference(ref, u)
            before = _contents(plain)
            with pytest.raises(ApplyConflict):
                await store.apply(stale)
            return before, _contents(plain)
        finally:
            await store.close()
            plain.close()

    try:
        got, after_stale = aio.run(apply_all())
        want = _contents(ref)
        assert got.keys() == want.keys()
        for key in want:
            assert got[key] == want[key], key
        assert len(got["gw:t:z:0"][0]) > 0 and len(got["gw:t:h:0"][0]) > 3
        assert after_stale == got  # the stale batch changed nothing
    finally:
        ref.flushdb()
        ref.close()


@pytest.mark.parametrize("seed", [1, 2])
def test_on_a_cluster_the_slots_parts_write_what_the_update_says(
        redis_cluster: settings_mod.Settings, stack_settings: settings_mod.Settings,
        seed: int) -> None:
    """The same updates through a 3-master cluster (one script per slot) leave what one
    server's plain commands leave; a stale batch changes nothing."""
    from gridwatch import redis_client

    rng = random.Random(seed)
    ref = redis.Redis.from_url(stack_settings.redis)
    updates = [_update(rng, round_) for round_ in range(4)]
    stale = _update(rng, 1)

    async def apply_all() -> tuple[int, int]:
        store = AsyncStore(redis_cluster)
        assert store.cluster
        try:
            for u in updates:
                await store.apply(u)
                _reference(ref, u)
            with pytest.raises(ApplyConflict):
                await store.apply(stale)
            return store.stats["parts"], store.stats["parts_skipped"]
        finally:
            await store.close()

    c = redis_client.sync_client(redis_cluster)
    try:
        parts, skipped = aio.run(apply_all())
        assert parts > 4 * 6 and skipped == 0  # many slots per batch, each applied once
        got, want = _contents(c, skip=_bookkeeping), _contents(ref)
        assert got.keys() == want.keys()
        for key in want:
            assert got[key] == want[key], key
        assert not c.hgetall(keys.PENDING)
    finally:
        c.close()
        ref.close()


def test_on_a_cluster_a_batch_left_half_applied_is_completed_once(
        redis_cluster: settings_mod.Settings, stack_settings: settings_mod.Settings) -> None:
    """A worker that dies after its stage leaves its batch pending: the partition refuses
    the next batch until a reload completes it; a late second run of the same parts (the
    dead worker's last packets, another worker's reload) is skipped slot by slot."""
    from gridwatch import redis_client

    rng = random.Random(7)
    ref = redis.Redis.from_url(stack_settings.redis)
    first, second = _update(rng, 0), _update(rng, 1)

    async def crash_and_complete() -> dict[str, int]:
        dead, other = AsyncStore(redis_cluster), AsyncStore(redis_cluster)
        try:
            bid, staged = await dead.stage(first)  # ... and dies here
            assert staged and (await other.redis.hget(keys.PENDING, f"b:{bid}"))
            with pytest.raises(ApplyConflict, match="pending"):
                await other.apply(second)
            # half of the parts arrive before the worker's death
            await dead.apply_parts(staged[: len(staged) // 2])
            assert await other.complete_pending() == 1
            await dead.apply_parts(staged)  # late, after the completion: all skipped
            await other.apply(second)
            return {"completed_skipped": other.stats["parts_skipped"],
                    "late_skipped": dead.stats["parts_skipped"], "parts": len(staged)}
        finally:
            await dead.close()
            await other.close()

    c = redis_client.sync_client(redis_cluster)
    try:
        got_stats = aio.run(crash_and_complete())
        n = got_stats["parts"]
        assert got_stats["completed_skipped"] == n // 2
        assert got_stats["late_skipped"] == n  # its first half was applied, not skipped
        _reference(ref, first)
        _reference(ref, second)
        got, want = _contents(c, skip=_bookkeeping), _contents(ref)
        assert got.keys() == want.keys()
        for key in want:
            assert got[key] == want[key], key
        assert not c.hgetall(keys.PENDING)
    finally:
        c.close()
        ref.close()


def test_on_a_cluster_a_part_refused_for_good_is_counted_and_holds_nothing_up(
        redis_cluster: settings_mod.Settings) -> None:
    """A key of another type written by hand makes its slot refuse its part: the batch's
    other parts apply, the refusal is counted, and the partition takes its next batch."""
    from gridwatch import redis_client

    damaged = keys.shard_prefix("x") + "t:h:damaged"
    healthy = keys.shard_prefix("y") + "t:h:healthy"
    c = redis_client.sync_client(redis_cluster)
    c.set(damaged, "not a hash")

    def batch(n: int) -> BatchUpdate:
        u = BatchUpdate()
        u.offsets = {"in:0": (n - 1, n)}
        u.incr[(damaged, "f")] += 1
        u.incr[(healthy, "f")] += 1
        u.incr[(keys.SUMMARY, "checkpoint_scans")] += 1
        return u

    async def run() -> dict[str, int]:
        st = AsyncStore(redis_cluster)
        try:
            await st.apply(batch(0))
            await st.apply(batch(1))  # not refused as pending: the first was unstaged
            return st.stats
        finally:
            await st.close()

    try:
        stats = aio.run(run())
        assert stats["parts_failed"] == 2
        assert c.hget(healthy, "f") == b"2" and c.get(damaged) == b"not a hash"
        assert c.hget(keys.SUMMARY, "apply_errors") == b"2"
        assert c.hget(keys.OFFSETS, "in:0") == b"1" and not c.hgetall(keys.PENDING)
    finally:
        c.close()
