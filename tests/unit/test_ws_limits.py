"""ws/limits.py: per-key token buckets and a time-to-live cache, both bounded."""

from __future__ import annotations

from gridwatch.ws.limits import KeyedBuckets, TtlCache


def test_one_bucket_per_key_shared_by_every_caller_of_that_key() -> None:
    b = KeyedBuckets(rate=1, burst=20)
    # Five sockets of one user drawing on the user's one bucket: 20 in all, not 100.
    taken = sum(b.take("o1", 0.0) for _socket in range(5) for _ in range(20))
    assert taken == 20
    assert b.exhausted("o1", 0.0) and not b.exhausted("o2", 0.0)
    assert b.take("o2", 0.0)  # another user is not limited by o1
    assert not b.exhausted("o1", 1.0) and b.take("o1", 1.0)  # one token a second back


def test_buckets_are_bounded_and_forget_the_least_recent() -> None:
    b = KeyedBuckets(rate=0, burst=1, size=3)
    for key in ("a", "b", "c", "d"):
        assert b.take(key, 0.0)
    assert len(b) == 3
    assert b.take("a", 0.0)  # "a" was dropped, so it starts afresh
    assert not b.take("d", 0.0)


def test_cache_expires_and_is_bounded() -> None:
    c: TtlCache[str] = TtlCache(ttl_s=10, size=2)
    c.put("a", "x", 0.0)
    assert c.get("a", 9.9) == "x" and c.get("a", 10.0) is None
    c.put("a", "x", 0.0)
    c.put("b", "y", 0.0)
    c.get("a", 1.0)  # a is now the most recent
    c.put("c", "z", 1.0)
    assert len(c) == 2 and c.get("b", 1.0) is None and c.get("a", 1.0) == "x"
    c.pop("a")
    c.pop("missing")
    assert c.get("a", 1.0) is None
