"""The readers on a real local Redis Cluster (3 masters): CLI, gateway, refreshers, dump.

The worker's apply script is not cluster-ready yet (its keys span slots), so the state
the readers read is written here directly with the cluster client, in the layout
``gridwatch.keys`` defines, and the same data on the single Redis of the test stack
where a test compares the two. Nothing is mocked: the cluster is the one of the
``redis_cluster`` fixture, the gateway and the CLI run as processes of their own with
``GRIDWATCH_REDIS_CLUSTER`` set.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from gridwatch.agents.forecast_refresh import ForecastRefresher
from gridwatch.agents.risk_refresh import RiskRefresher
from gridwatch.ws import users
from gridwatch.ws.auth import User
from redis.cluster import RedisCluster

from gridwatch import keys, redis_client, store
from gridwatch import settings as settings_mod
from gridwatch.risk import load_risk_config
from tests.drill import run_async

from .test_gateway import Client, GatewayProcess, put_alert, redeem, until

pytestmark = pytest.mark.integration

HOUR = 490_000  # an event-time hour (2025-11)
GRIDS = [f"G{i:04d}" for i in range(1, 41)]


def arun(main: Callable[[], Awaitable[Any]]) -> Any:
    """``run_async`` (a thread of its own), returning what ``main`` returned."""
    out: list[Any] = []

    async def keep() -> None:
        out.append(await main())

    run_async(keep)
    return out[0]


def _spread(client: RedisCluster, names: list[str]) -> set[int]:
    """The ports of the masters owning ``names`` (the test data really spans nodes)."""
    return {client.get_node_from_key(n).port for n in names}


def write_state(r: Any) -> None:
    """Grid hours and totals, versions, open tasks, alerts, a watermark: what the worker
    would have applied, written key by key (works on one server and on a cluster)."""
    pipe = r.pipeline(transaction=False)
    pipe.hset(keys.WATERMARKS, "0", repr(HOUR * 3600 + 1800.0))
    for n, grid in enumerate(GRIDS):
        for back in range(0, 30, 3):
            pipe.hset(keys.grid_hour(grid, HOUR - back), mapping={
                "scan:red:in": n % 4, "scan:yellow:out": back + 1, "scan:green:in": 50 + n,
                "stale": n % 2, "loiter_max": f"{float(n % 7)}", "cross_grid": 1})
        pipe.hset(keys.grid_hour(grid, HOUR - 168), mapping={"scan:green:in": 40})
        pipe.hset(keys.grid_total(grid), mapping={"scan:red:in": 10 * n, "loiter_max": "6.0"})
        pipe.hset(keys.GRID_HOUR, grid, HOUR)
        pipe.hset(keys.GRID_VERSION, grid, n + 1)
        pipe.sadd(keys.GRIDS_SEEN, grid)
        if n % 5 == 0:
            pipe.zadd(keys.tasks_open(grid), {f"t{n}": HOUR * 3600 - 600, f"u{n}": HOUR * 3600 + 9000})
    for i in range(12):
        alert = {"id": f"a{i}", "kind": "loiter", "severity": "high",
                 "status": "closed" if i % 4 == 0 else "new", "grid_id": GRIDS[i],
                 "station_id": None, "ts_raised": HOUR * 3600 + i, "ts_updated": HOUR * 3600 + i,
                 "title": f"alert {i}", "title_zh": f"告警 {i}", "task_id": None, "v": 1}
        pipe.set(keys.alert(alert["id"]), orjson.dumps(alert))
        pipe.zadd(keys.ALERTS_ALL, {alert["id"]: alert["ts_raised"]})
        pipe.zadd(keys.alerts_by_grid(alert["grid_id"]), {alert["id"]: alert["ts_raised"]})
        if alert["status"] != "closed":
            pipe.zadd(keys.ALERTS_OPEN, {alert["id"]: alert["ts_raised"]})
    pipe.hset(keys.SUMMARY, mapping={"checkpoint_scans": 123, "late": 4})
    pipe.execute()


def cli(s: settings_mod.Settings, *args: str) -> Any:
    env = {**os.environ, "GRIDWATCH_REDIS": s.redis, "GRIDWATCH_KAFKA": s.kafka,
           "GRIDWATCH_HOME": str(s.home),
           "GRIDWATCH_REDIS_CLUSTER": ",".join(s.redis_cluster)}
    if not s.redis_cluster:
        env.pop("GRIDWATCH_REDIS_CLUSTER")
    done = subprocess.run([sys.executable, "-m", "gridwatch.cli", *args, "--json"], env=env,
                          capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return orjson.loads(done.stdout)


def test_risk_refresher_dump_and_cli_reads_agree_with_one_server(
        redis_cluster: settings_mod.Settings) -> None:
    single_s = redis_cluster.with_(redis_cluster=())
    cluster = store.connect(redis_cluster)
    single = store.connect(single_s)
    assert isinstance(cluster, RedisCluster) and not redis_client.is_cluster(single)
    try:
        for r in (cluster, single):
            write_state(r)
        assert len(_spread(cluster, [keys.grid_hour(g, HOUR) for g in GRIDS])) == 3

        async def rows() -> tuple[list[Any], list[Any]]:
            ac = redis_client.async_client(redis_cluster)
            asg = redis_client.async_client(single_s)
            try:
                return (await RiskRefresher(ac, load_risk_config())._indicators(GRIDS),
                        await RiskRefresher(asg, load_risk_config())._indicators(GRIDS))
            finally:
                await ac.aclose()
                await asg.aclose()

        # The reads routed by slot give the very rows of one server.
        on_cluster, by_script = arun(rows)
        assert on_cluster == by_script and len(on_cluster) == len(GRIDS)
        assert on_cluster[5][2] == HOUR and on_cluster[5][12] == 1  # one task overdue

        async def both_refresh() -> tuple[int, int]:
            ac = redis_client.async_client(redis_cluster)
            asg = redis_client.async_client(single_s)
            try:
                return (await RiskRefresher(ac, load_risk_config()).refresh(GRIDS),
                        await RiskRefresher(asg, load_risk_config()).refresh(GRIDS))
            finally:
                await ac.aclose()
                await asg.aclose()

        assert arun(both_refresh) == (len(GRIDS), len(GRIDS))
        assert cluster.zcard(keys.RISK_RANK) == len(GRIDS)
        assert cluster.xlen(keys.CHAN_GRIDS) == len(GRIDS)

        # The materialised state is the same on both (scan of every master).
        dumped = store.dump(cluster)
        assert dumped == store.dump(single)
        assert len(dumped) > 10 * len(GRIDS) and keys.risk(GRIDS[0]) in dumped

        # The CLI with GRIDWATCH_REDIS_CLUSTER set reads what the single server says.
        top = cli(redis_cluster, "state", "top", "--limit", "5")
        assert top == cli(single_s, "state", "top", "--limit", "5") and len(top) == 5
        assert top[0]["score"] >= top[-1]["score"]
        grid = cli(redis_cluster, "state", "grid", GRIDS[3])
        assert grid == cli(single_s, "state", "grid", GRIDS[3])
        assert grid["total"] == {"scan:red:in": 30, "loiter_max": 6}
        assert grid["last_24h"]["scan:yellow:out"] == sum(b + 1 for b in range(0, 24, 3))
        assert grid["risk"]["grid_id"] == GRIDS[3]
        alerts = cli(redis_cluster, "alerts", "--status", "open")
        assert [a["id"] for a in alerts] == [f"a{i}" for i in range(11, -1, -1) if i % 4]
        assert cli(redis_cluster, "state", "summary")["checkpoint_scans"] == 123
    finally:
        cluster.close()
        single.close()


def test_risk_write_of_a_moved_grid_is_skipped_and_stays_marked(
        redis_cluster: settings_mod.Settings) -> None:
    async def run() -> tuple[int, set[bytes], list[Any], list[Any]]:
        ac = redis_client.async_client(redis_cluster)
        try:
            await ac.hset(keys.GRID_VERSION, mapping={"G0001": 3, "G0002": 7})
            await ac.sadd(keys.RISK_DIRTY, "G0001", "G0002")
            items = [[g, "3", keys.risk(g), orjson.dumps({"grid_id": g}).decode(), 1.5, "{}"]
                     for g in ("G0001", "G0002")]
            refresher = RiskRefresher(ac, load_risk_config())
            written = await refresher._put(items)
            return (written, await ac.smembers(keys.RISK_DIRTY),
                    await ac.mget_nonatomic([keys.risk("G0001"), keys.risk("G0002")]),
                    await ac.zrange(keys.RISK_RANK, 0, -1))
        finally:
            await ac.aclose()

    written, dirty, stored, rank = arun(run)
    # Scored for version 3: G0001 is at 3 (written, unmarked), G0002 moved on to 7.
    assert written == 1 and dirty == {b"G0002"}
    assert stored == [b'{"grid_id":"G0001"}', None] and rank == [b"G0001"]


def test_forecast_lease_and_refresh_on_the_cluster(
        redis_cluster: settings_mod.Settings) -> None:
    station = "SHS-C"
    origin = HOUR

    async def run() -> tuple[list[bool], dict[str, Any] | None, list[int]]:
        ac = redis_client.async_client(redis_cluster)
        try:
            pipe = ac.pipeline(transaction=False)
            for h in range(origin - 24 * 21, origin + 24):
                pipe.hset(keys.station_hour(station, h), mapping={"arrived": 100 + h % 24})
                pipe.zadd(keys.station_hours(station), {str(h): h})
            await pipe.execute()
            await ac.zadd(keys.station_revised(station), {str(origin - 5): origin - 5})
            one = ForecastRefresher(ac, owner="one", lease_s=30)
            two = ForecastRefresher(ac, owner="two", lease_s=30)
            held = [await one.holds(station), await two.holds(station), await one.holds(station)]
            record = await one.refresh(station, origin * 3600.0 + 60, force=True)
            revised = await one._take_revised(station)  # emptied by the refresh's history read
            return held, record, revised
        finally:
            await ac.aclose()

    held, record, revised = arun(run)
    assert held == [True, False, True]
    assert record is not None and revised == []
    r = store.connect(redis_cluster)
    try:
        assert r.get(keys.forecast_owner(station)) == "one"
        assert 0 < r.ttl(keys.forecast_owner(station)) <= 30
        assert orjson.loads(r.get(keys.forecast(station)))["hours"] == record["hours"]
        assert r.xlen(keys.CHAN_FORECASTS) == 1
        assert not r.exists(keys.station_revised(station))
    finally:
        r.close()


def test_users_sessions_and_the_gateway_on_the_cluster(
        redis_cluster: settings_mod.Settings, tmp_path: Path) -> None:
    raw = redis_client.sync_client(redis_cluster)  # bytes, as put_alert expects
    assert isinstance(raw, RedisCluster)
    g = GatewayProcess(redis_cluster, tmp_path)
    g.env["GRIDWATCH_REDIS_CLUSTER"] = ",".join(redis_cluster.redis_cluster)
    g.env["GRIDWATCH_REDIS"] = "redis://127.0.0.1:9/0"  # nothing there: the cluster serves
    try:
        put_alert(raw, "old", "G0001")
        token = users.add_user(raw, User("o1", "duty_officer"))
        g.start()
        with redeem(g, token) as reply:
            session = reply.headers["Set-Cookie"].split(";", 1)[0].split("=", 1)[1]
        assert [u.name for u in users.list_users(raw)] == ["o1"]
        assert [u["name"] for u in cli(redis_cluster, "user", "list")] == ["o1"]
        assert raw.scard(users.user_sessions("o1")) == 1

        async def main() -> None:
            c = Client(g, session).start()
            await until(lambda: len(c.snapshots) >= 2, timeout=15)
            snap = next(f for f in c.snapshots if f["ch"] == "alerts")
            assert [x["id"] for x in snap["items"]] == ["old"]
            sid = put_alert(raw, "new1", "G0002")
            await until(lambda: ("alerts", sid) in c.deltas, timeout=10)
            await c.stop()

        run_async(main)
        # Removing the user deletes its keys in every slot; the session is dead.
        assert users.remove_user(raw, "o1")
        assert not [k for k in raw.scan_iter(match="gw:session:*")]
        assert not raw.exists(keys.user("o1"), users.user_sessions("o1"))
    finally:
        g.stop()
        raw.close()
    log = g.log.read_text()
    assert "Traceback" not in log, log[-2000:]
