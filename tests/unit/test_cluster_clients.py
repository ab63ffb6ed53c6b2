"""Which client each reader builds (one server or a cluster), and the risk rows that the
cluster's pipelined reads assemble. No server is needed: redis-py connects lazily."""

from __future__ import annotations

import pytest
import redis
import redis.asyncio as aioredis
from gridwatch.agents import risk_rows
from gridwatch.agents.forecast_refresh import ForecastRefresher
from gridwatch.agents.risk_refresh import RiskRefresher
from gridwatch.ws.hub import Hub
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

from gridwatch import keys, redis_client, store
from gridwatch import settings as settings_mod
from gridwatch.risk import load_risk_config
from tests import aio

CLUSTER_ENV = {"GRIDWATCH_REDIS": "redis://:pw@127.0.0.1:6390/0",
               "GRIDWATCH_REDIS_CLUSTER": "127.0.0.1:17001,127.0.0.1:17002"}


def test_a_url_names_one_server_whatever_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in CLUSTER_ENV.items():
        monkeypatch.setenv(name, value)
    s = redis_client.settings_for("redis://127.0.0.1:6391/2")
    assert s.redis == "redis://127.0.0.1:6391/2" and s.redis_cluster == ()
    r = store.connect("redis://127.0.0.1:6391/2")
    try:
        assert type(r) is redis.Redis and r.connection_pool.connection_kwargs["db"] == 2
        assert r.connection_pool.connection_kwargs["decode_responses"] is True
    finally:
        r.close()
    loaded = settings_mod.load(CLUSTER_ENV)
    assert redis_client.settings_for(loaded) is loaded


def test_settings_with_cluster_seeds_give_cluster_clients_to_store_and_hub() -> None:
    s = settings_mod.load(CLUSTER_ENV)

    async def build() -> None:
        st = store.AsyncStore(s)
        assert isinstance(st.redis, AsyncRedisCluster)
        hub = Hub(s, grid_ids=["G0001"], station_ids=[])
        assert hub.cluster and isinstance(hub.r, AsyncRedisCluster)
        assert RiskRefresher(st.redis, load_risk_config()).cluster
        ForecastRefresher(st.redis)  # its one-key lease script registers on a cluster too
        await hub.r.aclose()
        await st.close()

    aio.run(build())


def test_one_server_keeps_the_bounded_blocking_pool_and_the_scripts() -> None:
    s = settings_mod.load({"GRIDWATCH_REDIS": "redis://127.0.0.1:6392/0"})

    async def build() -> None:
        hub = Hub(s, grid_ids=[], station_ids=[], pool_size=7)
        assert not hub.cluster
        pool = hub.r.connection_pool
        assert isinstance(pool, aioredis.BlockingConnectionPool) and pool.max_connections == 7
        st = store.AsyncStore(s.redis)
        assert type(st.redis) is aioredis.Redis
        assert not RiskRefresher(st.redis, load_risk_config()).cluster
        await hub.r.aclose()
        await st.close()

    aio.run(build())


def test_risk_rows_from_pipelined_replies_match_the_scripts_arithmetic() -> None:
    empty = [None] * len(risk_rows.FIELDS)
    busy = [b"2", b"1", None, b"1", b"3", None, None, None, b"1", b"2", b"1", b"11.0"]
    hours = [empty] * 22 + [busy, [b"1", None, None, None, None, None, None, None,
                                   None, None, None, b"4.5"]]
    now = {b"scan:red:in": b"3", b"scan:green:out": b"5", b"late:scan:red:out": b"1",
           b"stale": b"9", b"loiter_max": b"11.0"}
    week = {"scan:green:in": "4"}
    row = risk_rows.row_of("G7", "12", 1000, hours, now, week, 3, 1)
    assert row == ["G7", "12", 1000, 5, 3, 1, 2, 1, 11, 9, 4, 3, 1]
    assert all(type(v) is int for v in row[3:])  # as cjson encodes whole numbers
    assert risk_rows.row_of("G8", "0", 0, [empty] * 24, {}, {}, 0, 0)[3:] == [0] * 10
    half = risk_rows.row_of("G9", "1", 5, [empty] * 23 + [[*[None] * 11, b"2.5"]],
                               {}, {}, 0, 0)
    assert half[8] == 2.5


def test_one_server_mget_is_one_command_and_empty_asks_nothing() -> None:
    class Single:
        def __init__(self) -> None:
            self.calls: list[list[str]] = []

        def mget(self, names: list[str]) -> list[str]:
            self.calls.append(names)
            return [n.upper() for n in names]

    single = Single()
    assert redis_client.mget(single, []) == [] and single.calls == []  # type: ignore[arg-type]
    names = [keys.alert("a"), keys.risk("G1")]
    assert redis_client.mget(single, names) == [n.upper() for n in names]  # type: ignore[arg-type]
    assert single.calls == [names]
