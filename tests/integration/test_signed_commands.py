"""The trust boundary of the command log, and a district's own grids file, end to end.

A command written straight to ``gridwatch.commands`` unsigned, signed with a wrong or
unknown key, or altered after signing is dead-lettered with its reason by a real
worker and changes nothing; the same action through ``gridwatch alert`` (signed with
the stack's key) is applied. The gateway and ``gridwatch state grid`` start and answer
on a grids file whose ids are ``grid_id`` properties or feature ids.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from gridwatch.streams.topics import COMMANDS, DEADLETTER, command_key
from gridwatch.ws.auth import SESSION_COOKIE, User
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from gridwatch import command_keys, keys, store
from gridwatch import settings as settings_mod
from gridwatch.settings import DATA_DIR
from gridwatch.signing import Keyring, sign

from .conftest import Workers, wait_until
from .test_alerts_e2e import T0, Feed, ok, places, trail, wait_alert
from .test_gateway import Client, GatewayProcess, run_async, session_for, until

pytestmark = pytest.mark.integration


def deadletters(s: settings_mod.Settings, expected: int) -> list[dict[str, Any]]:
    consumer = KafkaConsumer(bootstrap_servers=s.kafka, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=5000)
    parts = [TopicPartition(DEADLETTER, p) for p in range(s.partitions)]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    out = [orjson.loads(m.value) for m in consumer]
    consumer.close()
    assert len(out) == expected, out
    return out


def test_unsigned_or_badly_signed_commands_are_dead_lettered_and_change_nothing(
        workers: Workers) -> None:
    s = workers.settings
    (here,) = places(1)
    feed = Feed(s)
    first = feed.loiter(here, camera="cam-sig-1", zone="pharmacy:s01", people=9, dwell_s=400,
                        ts=T0 + 10)
    feed.close()
    workers.start()
    r = store.connect(s.redis)
    from gridwatch.agents.loiter import loiter_alert_id

    alert_id = loiter_alert_id("cam-sig-1", "pharmacy:s01", first)
    before = wait_alert(r, alert_id)
    assert before["status"] == "new"

    ring = command_keys.keyring(s)  # the stack's own key, as the CLI and workers use it
    kid = ring.ids[0]

    def command(actor: str) -> dict[str, Any]:
        return {"v": 1, "command_id": str(uuid.uuid4()), "target": "alert", "id": alert_id,
                "action": "dismiss", "actor": actor, "role": "admin", "grids": [],
                "note": "not real", "ts": "2026-11-02T08:30:00.000+08:00"}

    forged = [
        ("sig: missing", command("mallory")),
        ("does not match", sign(command("mallory"), Keyring.parse(f"{kid}:{'x' * 40}"))),
        ("unknown key id", sign(command("mallory"), Keyring.parse(f"stolen:{'y' * 40}"))),
        ("does not match", {**sign(command("wang"), ring), "actor": "mallory"}),
    ]
    producer = KafkaProducer(bootstrap_servers=s.kafka, acks="all")
    for _, cmd in forged:
        producer.send(COMMANDS, key=command_key("alert", alert_id), value=orjson.dumps(cmd))
    producer.flush()
    producer.close()

    wait_until(lambda: store.summary(r)["deadletter"] >= len(forged), timeout=90,
               what="the forged commands dead-lettered")
    letters = deadletters(s, len(forged))
    by_command = {orjson.loads(d["raw"])["command_id"]: d for d in letters}
    for says, cmd in forged:
        letter = by_command[cmd["command_id"]]
        assert letter["source"]["topic"] == COMMANDS
        assert letter["field"] == "sig" and says in letter["reason"], letter
        assert r.get(keys.cmdresult(cmd["command_id"])) is None  # no outcome either
    after = wait_alert(r, alert_id)
    assert after == before  # the alert did not move: no dismissal, no audit entry

    # The same kind of action through the CLI is signed with the stack's key and applied.
    ok(workers, "alert", "ack", alert_id, "--actor", "wang")
    acked = wait_alert(r, alert_id)
    assert acked["status"] == "acknowledged"
    assert trail(acked)[-1][2:] == ("acknowledged", "wang", "duty_officer")
    assert store.summary(r)["deadletter"] == len(forged)
    r.close()


def district_file(tmp_path: Path, style: str) -> Path:
    """The bundled district rewritten to name its grids by ``grid_id`` or feature id."""
    doc = orjson.loads((DATA_DIR / "grids.geojson").read_bytes())
    for f in doc["features"]:
        gid = f["properties"].pop("id")
        if style == "grid_id":
            f["properties"]["grid_id"] = gid
        else:
            f["id"] = gid
    path = tmp_path / f"district-{style}.geojson"
    path.write_bytes(orjson.dumps(doc))
    return path


@pytest.mark.parametrize("style", ["grid_id", "feature-id"])
def test_gateway_and_state_grid_on_a_district_file_of_its_own(
        style: str, stack_settings: settings_mod.Settings, tmp_path: Path) -> None:
    s = stack_settings
    path = district_file(tmp_path, style)
    r = redis.Redis.from_url(s.redis)
    r.flushdb()
    g = GatewayProcess(s, tmp_path)
    g.env["GRIDWATCH_GRIDS"] = str(path)
    g.start()  # it used to die at start with KeyError: 'id'
    try:
        session = session_for(g, r, User("o1", "duty_officer"))
        req = urllib.request.Request(f"{g.origin}/api/grids.geojson",
                                     headers={"Cookie": f"{SESSION_COOKIE}={session}"})
        with urllib.request.urlopen(req, timeout=5) as reply:
            served = orjson.loads(reply.read())
    finally:
        g.stop()
        r.close()
    bundled = orjson.loads((DATA_DIR / "grids.geojson").read_bytes())
    assert [f["properties"]["id"] for f in served["features"]] == \
        [f["properties"]["id"] for f in bundled["features"]]
    assert served["features"][0]["properties"]["name"] == bundled["features"][0]["properties"]["name"]

    env = {"GRIDWATCH_REDIS": s.redis, "GRIDWATCH_KAFKA": s.kafka, "GRIDWATCH_HOME": str(s.home),
           "GRIDWATCH_GRIDS": str(path)}

    def state(grid: str) -> subprocess.CompletedProcess[str]:
        import os

        return subprocess.run([sys.executable, "-m", "gridwatch.cli", "state", "grid", grid,
                               "--json"], capture_output=True, text=True, timeout=60,
                              env={**os.environ, **env}, check=False)

    known = state("G0001")  # nothing seen in it yet: known from the grids file alone
    assert known.returncode == 0, known.stderr
    assert orjson.loads(known.stdout)["grid_id"] == "G0001"
    unknown = state("G9999")
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == "gridwatch: unknown grid 'G9999'"


class DistrictWorkers(Workers):
    """Workers reading a district file of their own."""

    grids = ""

    def env(self) -> dict[str, str]:
        return {**super().env(), "GRIDWATCH_GRIDS": self.grids}


def test_a_cockpit_command_is_signed_by_the_gateway_and_applied_by_the_worker(
        clean_stack: settings_mod.Settings, tmp_path: Path) -> None:
    """Gateway and worker on a grids file with grid_id properties: the officer's ack goes
    through the gateway (signed there) and the worker applies it."""
    s = clean_stack
    path = district_file(tmp_path, "grid_id")
    w = DistrictWorkers(s, tmp_path)
    w.grids = str(path)
    (here,) = places(1)
    feed = Feed(s)
    first = feed.loiter(here, camera="cam-gw-1", zone="pharmacy:g01", people=9, dwell_s=400,
                        ts=T0 + 10)
    feed.close()
    g = GatewayProcess(s, tmp_path)
    g.env["GRIDWATCH_GRIDS"] = str(path)
    r = store.connect(s.redis)
    try:
        w.start()
        g.start()
        from gridwatch.agents.loiter import loiter_alert_id

        alert_id = loiter_alert_id("cam-gw-1", "pharmacy:g01", first)
        assert wait_alert(r, alert_id)["grid_id"] == here.grid  # the worker found its grid
        rr = redis.Redis.from_url(s.redis)
        session = session_for(g, rr, User("o1", "duty_officer"))
        rr.close()

        results: list[dict[str, Any]] = []

        async def main() -> None:
            c = Client(g, session).start()
            c.results = results
            await until(lambda: c.ws is not None and bool(c.snapshots), timeout=20)
            await c.ws.send(orjson.dumps({"op": "cmd", "req": "r1", "target": "alert",
                                          "id": alert_id, "action": "ack"}).decode())
            await until(lambda: any(x.get("state") == "applied" for x in c.results), timeout=30)
            await c.stop()

        run_async(main)  # returns nothing: the results are gathered in the list
        applied = next(x for x in results if x.get("state") == "applied")
        assert applied["ok"] is True, results
        acked = wait_alert(r, alert_id)
        assert acked["status"] == "acknowledged"
        assert trail(acked)[-1][2:] == ("acknowledged", "o1", "duty_officer")
        assert store.summary(r)["deadletter"] == 0
    finally:
        g.stop()
        w.stop_all()
        r.close()
