"""The gateway's shared side of Redis: one reader per channel fanning out to connections.

Each channel stream has exactly one ``XREAD BLOCK`` loop, whatever the number of
clients. An entry is decoded once (to find its tags), framed once, and the same bytes
are offered to every connection whose subscriptions meet the tags, through a tag
index, so fan-out costs O(recipients). The stream reads of a connecting client's replay
are here too (its snapshot is :mod:`.resume`'s).

Grid deltas are many (the worker rewrites every grid an event touched, every 100 ms)
and every officer wants all of them, so they are coalesced here, once for everyone:
the latest delta per grid is kept, and at most every ``grid_interval_s`` (at once when
the last flush is that old, so a burst from the worker goes out as it arrives) one
batch frame ``{"ch":"grids","id":<newest>,"ms":[delta, ...]}`` is built for all
officers (the same bytes for each) and one per grid worker with deltas of their grids.
A client gets at most one grid frame per interval, whatever the rate of deltas.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zoneinfo
from collections.abc import Iterable
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisClusterException

from gridwatch import keys, redis_client
from gridwatch.settings import Settings

from . import counters
from .channels import (
    CHANNELS,
    COALESCED,
    EVERYTHING,
    coalesce_key,
    frame,
    grid_batch_frame,
    parse_id,
)
from .conn import Conn
from .policy import tags_of

log = logging.getLogger("gridwatch.gateway")

Entry = tuple[str, bytes]  # stream id, the entry's JSON
# What a Redis blip raises (a cluster's slot map moving raises the last one).
REDIS_ERRORS = (OSError, aioredis.RedisError, RedisClusterException)


class Hub:
    """Shared channel readers, the tag index of connections, and snapshot reads."""

    def __init__(self, target: str | Settings, *, grid_ids: Iterable[str],
                 station_ids: Iterable[str], block_ms: int = 1000, count: int = 500,
                 pool_size: int = 32, grid_interval_s: float = 0.1) -> None:
        # A URL names one server; Settings may name a cluster (GRIDWATCH_REDIS_CLUSTER).
        self.settings = redis_client.settings_for(target)
        self.redis_url = self.settings.redis
        self.cluster = bool(self.settings.redis_cluster)
        self.r: Any
        if self.cluster:
            # One pool per master, grown on demand (redis-py's cluster has no blocking pool).
            self.r = redis_client.async_client(self.settings)
        else:
            # A bounded pool that makes callers wait for a free connection: a burst of
            # connecting clients (session checks, snapshots) must queue, not fail.
            self.r = aioredis.Redis(connection_pool=aioredis.BlockingConnectionPool.from_url(
                self.redis_url, max_connections=pool_size, timeout=30))
        self.grid_ids = tuple(grid_ids)
        self.station_ids = tuple(station_ids)
        self.tz = zoneinfo.ZoneInfo(self.settings.tz)  # "today" of the counters
        self.block_ms = block_ms
        self.count = count
        self.conns: set[Conn] = set()
        self.index: dict[str, set[Conn]] = {}
        self.position: dict[str, str] = {}
        self.sent_frames = 0
        self.grid_interval_s = grid_interval_s
        self._grids: dict[str, Entry] = {}  # grid -> its latest delta since the last flush
        self._grids_flushed = float("-inf")
        # Redis time (s) of the oldest entry offered since the gateway last wrote: for
        # the delivery-time metric.
        self.oldest_pending: float | None = None
        self._grids_timer: asyncio.TimerHandle | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._summary: bytes = b""
        # Set by stop(): redis-py can turn a cancellation that lands while it connects
        # into a ConnectionError, which the readers retry; they check this instead.
        self._stopping = False

    # ---- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Start one reader per channel from the stream's current end, and the summary poll."""
        for ch, key in CHANNELS.items():
            self.position[ch] = await self.last_id(ch) or "0-0"
            self._tasks.append(asyncio.create_task(self._read(ch, key), name=f"read:{ch}"))
        self._tasks.append(asyncio.create_task(self._poll_summary(), name="summary"))

    async def stop(self) -> None:
        self._stopping = True
        if self._grids_timer is not None:
            self._grids_timer.cancel()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.r.aclose()

    def register(self, conn: Conn) -> None:
        self.conns.add(conn)
        for tag in conn.subs:
            self.index.setdefault(tag, set()).add(conn)

    def unregister(self, conn: Conn) -> None:
        self.conns.discard(conn)
        for tag in conn.subs:
            members = self.index.get(tag)
            if members is not None:
                members.discard(conn)
                if not members:
                    del self.index[tag]

    # ---- live fan-out ------------------------------------------------------------

    def dispatch(self, channel: str, entries: list[Entry]) -> None:
        """Offer each entry, framed once, to every connection that may see it (grid
        deltas: keep the latest per grid for the next :meth:`flush_grids`)."""
        for stream_id, data in entries:
            try:
                msg = orjson.loads(data)
            except orjson.JSONDecodeError:
                log.warning("%s %s: not JSON, skipped", channel, stream_id)
                continue
            if channel == COALESCED:
                grid = coalesce_key(channel, msg) or ""
                self._grids.pop(grid, None)  # re-inserted last: the dict stays in stream order
                self._grids[grid] = (stream_id, data)
                self._schedule_grids()
                continue
            out = frame(channel, stream_id, data)
            key = coalesce_key(channel, msg)
            seen: set[Conn] = set()
            for tag in tags_of(channel, msg):
                for conn in tuple(self.index.get(tag, ())):
                    if conn not in seen and channel in conn.chans:
                        seen.add(conn)
                        conn.offer(channel, stream_id, out, key)
            if seen:
                self._offered(stream_id)

    def flush_grids(self) -> None:
        """Send the grid deltas kept since the last flush: one shared batch frame to
        every officer, one frame of their own grids' deltas to each grid worker."""
        if not self._grids:
            return
        kept, self._grids = self._grids, {}
        newest = next(reversed(kept.values()))[0]
        everyone = [c for c in self.index.get(EVERYTHING, ()) if COALESCED in c.chans]
        if everyone:
            shared = grid_batch_frame(newest, [d for _, d in kept.values()])
            for conn in everyone:
                conn.offer(COALESCED, newest, shared, None)
        own: dict[Conn, list[Entry]] = {}
        for grid, entry in kept.items():
            for conn in self.index.get(f"grid:{grid}", ()):
                if EVERYTHING not in conn.subs and COALESCED in conn.chans:
                    own.setdefault(conn, []).append(entry)
        for conn, mine in own.items():
            last = mine[-1][0]
            conn.offer(COALESCED, last, grid_batch_frame(last, [d for _, d in mine]), None)
        if everyone or own:
            self._offered(next(iter(kept.values()))[0])

    def _offered(self, stream_id: str) -> None:
        if self.oldest_pending is None:
            with contextlib.suppress(ValueError):
                self.oldest_pending = parse_id(stream_id)[0] / 1000

    def _schedule_grids(self) -> None:
        # At once when the last flush is an interval old (the worker writes its deltas in
        # bursts, so a burst goes out as it arrives), else when the interval is up.
        if self._grids_timer is not None:
            return
        loop = asyncio.get_running_loop()
        wait = self._grids_flushed + self.grid_interval_s - loop.time()
        self._grids_timer = loop.call_later(max(0.0, wait), self._flush_grids_now)

    def _flush_grids_now(self) -> None:
        self._grids_timer = None
        self._grids_flushed = asyncio.get_running_loop().time()
        try:
            self.flush_grids()
        except Exception:  # one bad flush must not stop the deltas
            log.exception("flushing grid deltas")

    async def _read(self, channel: str, key: str) -> None:
        # Its own client: XREAD BLOCK holds a connection for the whole wait. One stream
        # per XREAD, so on a cluster it goes to the master of that stream's slot.
        r = redis_client.async_client(self.settings)
        try:
            while not self._stopping:
                try:
                    reply = await r.xread({key: self.position[channel]}, block=self.block_ms,
                                          count=self.count)
                except REDIS_ERRORS as exc:
                    if self._stopping:
                        break
                    log.warning("reading %s: %s; retrying", key, exc)
                    await asyncio.sleep(1.0)
                    continue
                for _, items in reply or ():
                    entries = [(sid.decode(), fields.get(b"d", b"null")) for sid, fields in items]
                    if entries:
                        self.position[channel] = entries[-1][0]
                        self.dispatch(channel, entries)
        finally:
            await r.aclose()

    async def _poll_summary(self) -> None:
        # The counters are a hash, not a channel: poll it once for everyone, send changes.
        while not self._stopping:
            try:
                frm = await self.summary_frame()
                if frm != self._summary:
                    self._summary = frm
                    for conn in tuple(self.index.get("all", ())):
                        if not conn.syncing:
                            conn.send_raw(frm)
            except REDIS_ERRORS as exc:
                if self._stopping:
                    break
                log.warning("summary: %s", exc)
            await asyncio.sleep(2.0)

    # ---- stream reads for one connecting client -----------------------------------

    async def first_id(self, channel: str) -> str | None:
        got = await self.r.xrange(CHANNELS[channel], count=1)
        return got[0][0].decode() if got else None

    async def last_id(self, channel: str) -> str | None:
        got = await self.r.xrevrange(CHANNELS[channel], count=1)
        return got[0][0].decode() if got else None

    async def replay(self, channel: str, after: str, *, limit: int) -> list[Entry] | None:
        """Entries after ``after``, oldest first; ``None`` when more than ``limit``."""
        got = await self.r.xrange(CHANNELS[channel], min=f"({after}", count=limit + 1)
        if len(got) > limit:
            return None
        return [(sid.decode(), fields.get(b"d", b"null")) for sid, fields in got]

    async def summary_frame(self) -> bytes:
        """The officer's counters, each with its window (:mod:`.counters`)."""
        raw = await self.r.hgetall(keys.SUMMARY)
        totals = {k.decode(): int(v) for k, v in raw.items()}
        marks = [float(v) for v in await self.r.hvals(keys.WATERMARKS)]
        now = max(marks) if marks else None
        today = hour = 0
        if now is not None:
            today = int(await self.r.zcount(keys.ALERTS_ALL, counters.day_start(now, self.tz), "+inf"))
            hour = int(await self.r.zcount(keys.ALERTS_ALL, now - 3600, "+inf"))
        message = counters.summary_message(totals, open_alerts=int(await self.r.zcard(keys.ALERTS_OPEN)),
                                           alerts_today=today, alerts_last_hour=hour, now=now,
                                           tz=self.tz)
        return orjson.dumps({"ch": "summary", "m": message})
