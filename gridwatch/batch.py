"""What one batch changes: the records it consumed, its dead letters, and its writes.

:class:`BatchUpdate` is what the worker's pure steps fill (``gridwatch.agents.fold``,
``decide``, ``records_io``) and what :mod:`gridwatch.store` applies in one atomic step,
so it lives below both: plain data, no I/O.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .schemas.events import Event


class RawRecord(NamedTuple):
    """One consumed Kafka record."""

    topic: str
    partition: int
    offset: int
    value: bytes | None
    key: bytes | None = None


@dataclass(frozen=True)
class DeadLetter:
    """A message that could not be applied, with the reason (``gridwatch.deadletter``)."""

    topic: str
    partition: int
    offset: int
    reason: str
    field: str | None
    raw: bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": 1,
            "source": {"topic": self.topic, "partition": self.partition, "offset": self.offset},
            "reason": self.reason,
            "field": self.field,
            # Enough of the message to look at; never the whole of a huge one.
            "raw": self.raw[:2048].decode("utf-8", "replace"),
            "raw_bytes": len(self.raw),
        }


@dataclass
class BatchUpdate:
    """Everything one batch changes, ready for one atomic apply."""

    # partition field -> (offset applied before this batch, last offset in it)
    offsets: dict[str, tuple[int, int]] = field(default_factory=dict)
    watermarks: dict[str, float] = field(default_factory=dict)
    incr: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    expire: dict[str, int] = field(default_factory=dict)
    sadd: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    zadd: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    deadletters: list[DeadLetter] = field(default_factory=list)
    events: list[tuple[RawRecord, Event, str | None]] = field(default_factory=list)
    late: int = 0
    # Record writes decided for the batch (alerts, traces, ...), applied in the same step.
    cas: dict[str, int] = field(default_factory=dict)  # key -> version it was read at
    # cas keys whose version lives in a key of its own that expires with the record
    # (keys.version_of) rather than in keys.VERSIONS: key -> TTL in seconds
    cas_ttl: dict[str, int] = field(default_factory=dict)
    sets: dict[str, tuple[bytes, int | None]] = field(default_factory=dict)  # value, TTL
    dels: set[str] = field(default_factory=set)
    hset: dict[tuple[str, str], str] = field(default_factory=dict)
    hdel: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    hmax: dict[tuple[str, str], float] = field(default_factory=dict)
    hmin: dict[tuple[str, str], float] = field(default_factory=dict)
    zrem: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    ztrim: dict[str, float] = field(default_factory=dict)  # drop members scored below
    # drop members scored more than this below the key's own newest member (so what is
    # kept depends on the members alone, not on how they were batched)
    zkeep: dict[str, float] = field(default_factory=dict)
    srem: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    # counters taken back: (key, field) -> (n, whole): the field is removed at zero, and
    # with ``whole`` the key (a record whose count is its existence)
    hdecr: dict[tuple[str, str], tuple[int, bool]] = field(default_factory=dict)
    streams: list[tuple[str, int, bytes]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.offsets
