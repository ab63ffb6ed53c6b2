"""Bringing a connecting client up to date: per channel, the entries it missed (a replay)
or the channel's current records (a snapshot); then live frames.

The client's ``hello`` names, per channel, the last stream id it holds. When the entries
after it are still in the bounded stream and not too many, they are replayed; otherwise
the client gets a snapshot whose ``id`` is its new resume point. Either way only what
:mod:`.policy` lets the user see is sent.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from gridwatch import keys, redis_client

from .auth import User
from .channels import coalesce_key, frame, needs_snapshot
from .conn import Conn
from .hub import Hub
from .policy import may_see, scope


async def sync(hub: Hub, conn: Conn, last: dict[str, str], *, limit: int) -> None:
    """Per channel, replay what the client missed (at most ``limit`` entries) or send a
    snapshot; then the summary (to those who see it) and go live."""
    for ch in conn.chans:
        seen = last.get(ch)
        entries = None
        if not needs_snapshot(seen, await hub.first_id(ch)) and seen is not None:
            entries = await hub.replay(ch, seen, limit=limit)
        if entries is None:
            head = await hub.last_id(ch) or "0-0"
            items = await snapshot(hub.r, ch, conn.user, grid_ids=hub.grid_ids,
                                   station_ids=hub.station_ids)
            conn.send_raw(snapshot_frame(ch, head, items))
            conn.outbox.seek(ch, head)
        else:
            assert seen is not None
            conn.outbox.seek(ch, seen)
            for sid, data in entries:
                with contextlib.suppress(orjson.JSONDecodeError):
                    msg = orjson.loads(data)
                    if may_see(conn.user, ch, msg):
                        conn.deliver(ch, sid, frame(ch, sid, data), coalesce_key(ch, msg))
    if "all" in conn.subs:
        conn.send_raw(await hub.summary_frame())
    conn.go_live()


async def _mget(r: Any, names: list[str]) -> list[bytes]:
    out: list[bytes] = []
    for i in range(0, len(names), 500):
        # On a cluster the keys are in many slots: MGET split by slot (not atomic).
        out.extend(v for v in await redis_client.amget(r, names[i:i + 500]) if v)
    return out


async def snapshot(r: Any, channel: str, user: User, *, grid_ids: Iterable[str],
                   station_ids: Iterable[str]) -> list[bytes]:
    """The current records of ``channel`` that ``user`` may see, as stored JSON."""
    wrap: Callable[[Any], dict[str, Any]]
    mine = scope(user)
    if channel == "alerts":
        if mine.grids is not None:
            ids = [i for g in mine.grids
                   for i in await r.zrevrange(keys.alerts_by_grid(g), 0, 199)]
        else:
            ids = await r.zrevrange(keys.ALERTS_OPEN, 0, 999)
        raws = await _mget(r, [keys.alert(i.decode()) for i in ids])
        wrap = lambda rec: {"alert": rec}
    elif channel == "tasks":
        if mine.worker is not None:
            ids = await r.zrevrange(keys.tasks_by_worker(mine.worker), 0, 199)
            names = [keys.task(i.decode()) for i in ids]
        else:
            alerts = await _mget(r, [keys.alert(i.decode()) for i in
                                     await r.zrevrange(keys.ALERTS_OPEN, 0, 999)])
            names = [keys.task(t) for t in
                     (orjson.loads(a).get("task_id") for a in alerts) if t]
        raws = await _mget(r, names)
        wrap = lambda rec: {"task": rec}
    elif channel == "grids":
        grids = mine.grids if mine.grids is not None else tuple(grid_ids)
        raws = await _mget(r, [keys.risk(g) for g in grids])
        wrap = lambda rec: rec
    else:
        known = {m.decode() for m in await r.smembers(keys.STATIONS)}
        stations = mine.stations if mine.stations is not None else \
            sorted(known | set(station_ids))
        raws = await _mget(r, [keys.forecast(s) for s in stations])
        wrap = lambda rec: {"forecast": rec}
    keep = []
    for raw in raws:
        try:
            if may_see(user, channel, wrap(orjson.loads(raw))):
                keep.append(raw)
        except orjson.JSONDecodeError:
            continue
    return keep


def snapshot_frame(channel: str, stream_id: str, items: list[bytes]) -> bytes:
    """One frame replacing a channel's state on the client; ``id`` is its resume point."""
    return (b'{"ch":"' + channel.encode() + b'","snapshot":true,"id":"' + stream_id.encode()
            + b'","items":[' + b",".join(items) + b"]}")
