"""Bounded, time-keyed tables for the gateway: per-key rate limits and a short-lived cache.

A limit kept per user (shared by all of that user's sockets) or per remote address
(unauthenticated requests) must not grow without bound when a flood brings new keys:
both tables here hold at most ``size`` keys and drop the least recently used one. No
I/O; the time is an argument, so the tests need no clock.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

from .auth import TokenBucket

V = TypeVar("V")


class KeyedBuckets:
    """One :class:`TokenBucket` per key (user name, remote address), at most ``size`` keys.

    >>> b = KeyedBuckets(rate=1, burst=2, size=10)
    >>> [b.take("u", 0.0), b.take("u", 0.0), b.take("u", 0.0), b.take("v", 0.0)]
    [True, True, False, True]
    """

    def __init__(self, *, rate: float, burst: float, size: int = 10_000) -> None:
        self.rate, self.burst, self.size = rate, burst, size
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def _bucket(self, key: str, now: float) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(rate=self.rate, burst=self.burst, now=now)
            while len(self._buckets) > self.size:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket

    def take(self, key: str, now: float) -> bool:
        """Spend one token of ``key``'s bucket; ``False`` means over the limit."""
        return self._bucket(key, now).take(now)

    def exhausted(self, key: str, now: float) -> bool:
        """Whether ``key`` has no token left now (spends nothing)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return False
        return min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate) < 1.0

    def __len__(self) -> int:
        return len(self._buckets)


class TtlCache(Generic[V]):
    """A value per key, trusted for ``ttl_s`` seconds, at most ``size`` keys (LRU).

    >>> c: TtlCache[str] = TtlCache(ttl_s=10, size=2)
    >>> c.put("a", "x", now=0.0); c.get("a", now=5.0), c.get("a", now=11.0)
    ('x', None)
    """

    def __init__(self, *, ttl_s: float, size: int = 10_000) -> None:
        self.ttl_s, self.size = ttl_s, size
        self._items: OrderedDict[str, tuple[V, float]] = OrderedDict()

    def get(self, key: str, now: float) -> V | None:
        """The value of ``key`` if stored less than ``ttl_s`` ago, else ``None``."""
        hit = self._items.get(key)
        if hit is None:
            return None
        if now - hit[1] >= self.ttl_s:
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return hit[0]

    def put(self, key: str, value: V, now: float) -> None:
        self._items[key] = (value, now)
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def pop(self, key: str) -> None:
        self._items.pop(key, None)

    def __len__(self) -> int:
        return len(self._items)
