"""The channels, their frames, how a connection's outgoing messages are queued, and resume.

No I/O here. The gateway's shared readers turn every channel entry into one encoded
frame; who receives it is :mod:`.policy`'s. Each connection owns an :class:`Outbox`:
alerts, tasks and forecasts go out in order at once, replayed grid deltas are coalesced
(latest per grid wins, flushed at most every ``grid_interval_s``; live ones arrive
already coalesced, in one batch frame per interval, from the hub), a per-channel cursor
drops anything already sent, and the bound tells the gateway when a client is too slow.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from gridwatch import keys

CHANNELS: dict[str, str] = {
    "alerts": keys.CHAN_ALERTS,
    "tasks": keys.CHAN_TASKS,
    "grids": keys.CHAN_GRIDS,
    "forecasts": keys.CHAN_FORECASTS,
}
COALESCED = "grids"  # the one channel whose deltas are "latest per grid wins"
EVERYTHING = "all"  # the tag every message carries; officers and admins subscribe to it

StreamId = tuple[int, int]


@lru_cache(maxsize=8192)  # a live entry's id is parsed once for all its recipients
def parse_id(stream_id: str | bytes) -> StreamId:
    """A Redis stream id ``"<ms>-<seq>"`` as a comparable pair.

    Raises:
        ValueError: not a stream id.
    """
    text = stream_id.decode() if isinstance(stream_id, bytes) else stream_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def frame(channel: str, stream_id: str, data: bytes) -> bytes:
    """The wire frame of one channel entry, built once and sent to every recipient.

    ``data`` is the entry's JSON exactly as the worker wrote it: no decode and re-encode.
    """
    return b'{"ch":"' + channel.encode() + b'","id":"' + stream_id.encode() + b'","m":' + data + b"}"


def grid_batch_frame(stream_id: str, deltas: list[bytes]) -> bytes:
    """One frame carrying several grid deltas (latest per grid, oldest first); ``id`` is
    the newest one's stream id, so resuming from it misses none of the grids' states."""
    return b'{"ch":"grids","id":"' + stream_id.encode() + b'","ms":[' + b",".join(deltas) + b"]}"


def coalesce_key(channel: str, msg: Mapping[str, Any]) -> str | None:
    """The key under which a delta replaces an older pending one, or ``None``."""
    if channel == COALESCED:
        return str(msg.get("grid_id") or "")
    return None


def needs_snapshot(last_seen: str | None, first_in_stream: str | None) -> bool:
    """Whether a client resuming from ``last_seen`` must get the channel's snapshot.

    A client with no id, or whose id is older than the first entry still kept in the
    bounded stream (the entries after it may have been trimmed), gets the snapshot; any
    other gets every entry after its id, replayed.
    """
    if last_seen is None:
        return True
    try:
        seen = parse_id(last_seen)
    except ValueError:
        return True
    if first_in_stream is None:
        return False
    return seen < parse_id(first_in_stream)


class Overflow(Exception):
    """The connection's queue is full: the client reads too slowly."""


@dataclass
class Outbox:
    """One connection's outgoing frames.

    Args:
        limit: most frames that may wait; one more raises :class:`Overflow`.
        grid_interval_s: grid deltas are flushed at most this often.
    """

    limit: int = 2000
    grid_interval_s: float = 0.1
    cursors: dict[str, StreamId] = field(default_factory=dict)
    _now: deque[bytes] = field(default_factory=deque)
    _grids: dict[str, tuple[StreamId, bytes]] = field(default_factory=dict)
    _grid_flushed: float = float("-inf")

    def __len__(self) -> int:
        return len(self._now) + len(self._grids)

    def seek(self, channel: str, stream_id: str) -> None:
        """Mark everything of ``channel`` up to ``stream_id`` as already delivered."""
        self.cursors[channel] = parse_id(stream_id)

    def push(self, channel: str, stream_id: str, data: bytes, key: str | None = None) -> bool:
        """Queue a channel frame unless it was already delivered.

        Returns:
            ``False`` when the frame is at or before the channel's cursor (a duplicate).

        Raises:
            Overflow: the queue is full.
        """
        sid = parse_id(stream_id)
        if sid <= self.cursors.get(channel, (-1, -1)):
            return False
        self.cursors[channel] = sid
        if key is not None:
            if key not in self._grids and len(self) >= self.limit:
                raise Overflow(f"{len(self)} frames waiting")
            self._grids[key] = (sid, data)
            return True
        if len(self) >= self.limit:
            raise Overflow(f"{len(self)} frames waiting")
        self._now.append(data)
        return True

    def push_raw(self, data: bytes) -> None:
        """Queue a frame outside any channel (a snapshot, a command result).

        Raises:
            Overflow: the queue is full.
        """
        if len(self) >= self.limit:
            raise Overflow(f"{len(self)} frames waiting")
        self._now.append(data)

    def due(self, now: float) -> float | None:
        """Seconds until something may be sent (0: now), or ``None`` when empty."""
        if self._now:
            return 0.0
        if self._grids:
            return max(0.0, self._grid_flushed + self.grid_interval_s - now)
        return None

    def take(self, now: float) -> list[bytes]:
        """The frames to send now, in order; grid deltas only if their interval passed.

        Coalesced grid deltas go out sorted by stream id, so the newest id a client holds
        always covers everything older it did not get (it got a later state instead).
        """
        out = list(self._now)
        self._now.clear()
        if self._grids and now - self._grid_flushed >= self.grid_interval_s:
            out.extend(d for _, d in sorted(self._grids.values(), key=lambda v: v[0]))
            self._grids.clear()
            self._grid_flushed = now
        return out


def newest(ids: Iterable[str]) -> str | None:
    """The newest of some stream ids, or ``None``."""
    best: str | None = None
    for i in ids:
        if best is None or parse_id(i) > parse_id(best):
            best = i
    return best
