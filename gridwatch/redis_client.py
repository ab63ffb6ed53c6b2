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

from typing import Any
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import ClusterNode, RedisCluster

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
