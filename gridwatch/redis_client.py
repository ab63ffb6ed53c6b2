"""The one place a Redis client is built: a single server or a Redis Cluster.

``GRIDWATCH_REDIS_CLUSTER`` (``settings.redis_cluster``) selects cluster mode: the seed
nodes are handed to redis-py's ``RedisCluster``, which learns the slot map from them and
routes each command to the master owning its key. Without it, ``GRIDWATCH_REDIS`` names
one server. The credentials and TLS of ``GRIDWATCH_REDIS`` apply to the cluster nodes too.

In cluster mode a script's keys must hash to one slot (share a ``{hash tag}``), a
pipeline runs scripts by ``EVALSHA`` only, and a transaction stays within one slot:
callers that need those write their keys with a common tag (``gridwatch.keys``).
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import ClusterNode, RedisCluster

from .keys import slot_tag
from .settings import Settings

SyncClient = redis.Redis | RedisCluster
AsyncClient = aioredis.Redis | AsyncRedisCluster


def cluster_nodes(settings: Settings) -> list[tuple[str, int]]:
    """The seed nodes as (host, port) pairs (empty: one server, not a cluster)."""
    nodes = []
    for node in settings.redis_cluster:
        host, _, port = node.strip().rpartition(":")
        nodes.append((host.strip("[]"), int(port)))
    return nodes


def _url_options(url: str) -> dict[str, Any]:
    """Username, password and TLS from the single-server URL, for the cluster's nodes."""
    parts = urlsplit(url)
    options: dict[str, Any] = {}
    if parts.username:
        options["username"] = unquote(parts.username)
    if parts.password:
        options["password"] = unquote(parts.password)
    if parts.scheme == "rediss":
        options["ssl"] = True
    return options


def sync_client(settings: Settings, *, decode_responses: bool = False,
                **options: Any) -> SyncClient:
    """A blocking client: ``RedisCluster`` when cluster seeds are set, else ``Redis``.

    Args:
        decode_responses: return ``str`` instead of ``bytes`` (as the caller uses today).
        options: passed on to redis-py (timeouts and the like).
    """
    seeds = cluster_nodes(settings)
    if seeds:
        return RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in seeds],
            decode_responses=decode_responses, **_url_options(settings.redis), **options)
    return redis.Redis.from_url(settings.redis, decode_responses=decode_responses, **options)


def async_client(settings: Settings, *, decode_responses: bool = False,
                 **options: Any) -> AsyncClient:
    """An asyncio client: ``redis.asyncio.RedisCluster`` when cluster seeds are set, else
    ``redis.asyncio.Redis``. Close it with ``await client.aclose()``."""
    seeds = cluster_nodes(settings)
    if seeds:
        return AsyncRedisCluster(
            startup_nodes=[AsyncClusterNode(host, port) for host, port in seeds],
            decode_responses=decode_responses, **_url_options(settings.redis), **options)
    return aioredis.Redis.from_url(settings.redis, decode_responses=decode_responses, **options)


def is_cluster(client: Any) -> bool:
    """True for a cluster client (callers that pipeline scripts must group by slot)."""
    return isinstance(client, (RedisCluster, AsyncRedisCluster))


def settings_for(target: str | Settings) -> Settings:
    """Settings from what older callers pass: a ``redis://`` URL names one server (never a
    cluster, whatever the environment says); a :class:`Settings` is used as it is."""
    if isinstance(target, Settings):
        return target
    return Settings(redis=target, redis_cluster=())


def mget(client: SyncClient, names: list[str]) -> list[Any]:
    """MGET of keys in any slots: one MGET on one server, split by slot on a cluster."""
    if not names:
        return []
    if is_cluster(client):
        return client.mget_nonatomic(names)
    return client.mget(names)


async def amget(client: AsyncClient, names: list[str]) -> list[Any]:
    """:func:`mget` for asyncio clients."""
    if not names:
        return []
    if is_cluster(client):
        return await client.mget_nonatomic(names)
    return await client.mget(names)


# Replies after which a call is sent the routed way: the slot moved, the master is away
# (redis-py retries and learns the new slot map), or it has not got the script yet
# (redis-py's script call loads it).
_REROUTE = (redis.exceptions.NoScriptError, redis.exceptions.MovedError,
            redis.exceptions.AskError, redis.exceptions.SlotNotCoveredError,
            redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


class SlotRouter:
    """Runs scripts whose keys share one slot: on a cluster each call goes straight to
    the master holding its slot, found from the hash tag of its first key (a tag's slot
    computed once, the master read from redis-py's slot map each time). redis-py would
    route the call itself by hashing every key it declares (a CRC16 in Python per key:
    most of what a cluster added to the worker's cost). On one server, plain calls.
    """

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self.cluster = is_cluster(client)
        self._slots: dict[str, int] = {}

    def node(self, key: str) -> Any:
        """The master of ``key``'s slot (cluster only)."""
        tag = slot_tag(key)
        slot = self._slots.get(tag) if tag is not None else None
        if slot is None:
            slot = self.client.keyslot(key)  # type: ignore[union-attr]
            if tag is not None:
                self._slots[tag] = slot
        return self.client.nodes_manager.get_node_from_slot(slot)  # type: ignore[union-attr]

    async def script(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        """``script(keys=keys, args=args)`` (a script registered on the client)."""
        if not self.cluster:
            return await script(keys=keys, args=args)
        try:
            return await self.client.execute_command(
                "EVALSHA", script.sha, len(keys), *keys, *args,
                target_nodes=self.node(keys[0]))
        except _REROUTE:
            return await script(keys=keys, args=args)

    async def each(self, sha: str, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
        """``EVALSHA sha`` once per (keys, args) call, each call's keys within one slot:
        one pipelined round trip per master, the masters at once. Returns the replies
        in order, a call that Redis refused as its exception (``NoScriptError``,
        ``MovedError``, a script's error); a connection that fails raises.

        On a cluster the calls go to each master as one packed write on one of its
        connections (what redis-py's cluster pipeline does, without routing and wrapping
        each command again: ~40 us a call in Python, the largest part of what a cluster
        added to a batch's apply).
        """
        if not self.cluster:  # one server: one pipeline
            return await self._routed(sha, calls, range(len(calls)), [None] * len(calls))
        nodes: dict[str, Any] = {}
        by_node: dict[str, list[int]] = {}
        for i, (call_keys, _) in enumerate(calls):
            node = self.node(call_keys[0])
            nodes[node.name] = node
            by_node.setdefault(node.name, []).append(i)
        out: list[Any] = [None] * len(calls)

        async def send(name: str, members: list[int]) -> None:
            node = nodes[name]
            conn = node.acquire_connection()
            try:
                await conn.send_packed_command(conn.pack_commands(
                    [("EVALSHA", sha, len(calls[i][0]), *calls[i][0], *calls[i][1])
                     for i in members]))
                for i in members:
                    try:
                        out[i] = await conn.read_response()
                    except redis.exceptions.ResponseError as exc:
                        out[i] = exc
            except BaseException:
                await conn.disconnect()  # replies may be left unread: a fresh socket next
                raise
            finally:
                node.release(conn)

        try:
            await asyncio.gather(*(send(name, members) for name, members in by_node.items()))
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
            # A master away or failed over: the routed way (redis-py's retries and slot
            # map refresh). Calls that already ran run again: callers' calls are
            # idempotent (the apply's parts are marked, the reads only read).
            return await self._routed(sha, calls, range(len(calls)), out)
        moved = [i for i, r in enumerate(out)
                 if isinstance(r, (redis.exceptions.MovedError, redis.exceptions.AskError))]
        return await self._routed(sha, calls, moved, out) if moved else out

    async def _routed(self, sha: str, calls: list[tuple[list[str], list[Any]]],
                      which: Any, out: list[Any]) -> list[Any]:
        """Send ``which`` of ``calls`` through one redis-py pipeline (on a cluster, its
        cluster pipeline: it follows MOVED and ASK, and learns the new slot map); their
        replies replace ``out``'s."""
        which = list(which)
        pipe = self.client.pipeline(transaction=False)
        for i in which:
            pipe.evalsha(sha, len(calls[i][0]), *calls[i][0], *calls[i][1])
        for i, reply in zip(which, await pipe.execute(raise_on_error=False)):
            out[i] = reply
        return out

    async def scripts(self, script: Any, calls: list[list[str]]) -> list[Any]:
        """One script over several key lists (each within one slot): one round trip per
        master; the replies in order. A master without the script gets it and the calls
        are sent again; any other error is raised."""
        for attempt in range(2):
            replies = await self.each(script.sha, [(call_keys, []) for call_keys in calls])
            if not any(isinstance(r, redis.exceptions.NoScriptError) for r in replies):
                break
            if attempt == 0:
                await self.client.script_load(script.script)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return list(replies)
