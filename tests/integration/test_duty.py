"""On duty / off duty end to end: real Kafka, Redis and worker, commands through the CLI.

A grid with two workers: with one off duty the next task is offered only to the other;
with both off duty a dispatch makes no task and the alert stays with the officers,
flagged; going off duty with an offered task withdraws it when no one else is on duty.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from gridwatch.ws.auth import SESSION_COOKIE, User

from gridwatch import keys, store
from gridwatch import settings as settings_mod
from gridwatch.city import load_grids

from .conftest import Workers
from .test_alerts_e2e import T0, Place, _raise_loiter, alert, gw, ok, refused, task, trail
from .test_gateway import Client, GatewayProcess, run_async, session_for, until

pytestmark = pytest.mark.integration


def shared_grid() -> Place:
    """A grid of the bundled district with two workers who work no other grid."""
    grids = load_grids(settings_mod.Settings().grids)
    count: dict[str, int] = {}
    for g in grids:
        for w in g.workers:
            count[w] = count.get(w, 0) + 1
    for g in grids:
        if len(g.workers) == 2 and all(count[w] == 1 for w in g.workers):
            point = g.polygon.representative_point()
            return Place(g.id, tuple(g.workers), round(point.x, 6), round(point.y, 6))
    raise AssertionError("the district has no grid with two workers of its own")


def test_tasks_go_to_the_workers_on_duty_and_with_none_back_to_the_officers(
        workers: Workers) -> None:
    here = shared_grid()
    a, b = here.workers
    workers.start()
    r = store.connect(workers.settings.redis)

    # a worker may not set a colleague's duty; b goes off duty themself
    reason = refused(workers, "duty", "off", "--worker", a, "--actor", b, "--role", "grid_worker")
    assert reason == f"worker {b} may set only their own duty, not {a}'s"
    out = ok(workers, "duty", "off", "--worker", b, "--actor", b, "--json").json()
    assert out["ok"] is True and out["duty"]["on"] is False and out["duty"]["role"] == "grid_worker"
    assert "not a worker of any grid" in refused(workers, "duty", "off", "--worker", "nobody",
                                                  "--actor", "wang")

    first = _raise_loiter(workers, here, camera="cam-d-0101")
    ok(workers, "alert", "ack", first, "--actor", "wang")
    out = ok(workers, "alert", "dispatch", first, "--actor", "wang", "--json").json()
    offered = task(r, out["alert"]["task_id"])
    assert offered["workers"] == [a] and offered["status"] == "offered"
    assert r.zscore(keys.tasks_by_worker(b), offered["id"]) is None
    # an off-duty worker may not take it either
    reason = refused(workers, "task", "accept", offered["id"], "--actor", b, "--grids", here.grid)
    assert reason == f"task {offered['id']}: worker {b} is off duty; go on duty to accept it"

    # the officer sets a off duty too: the offered task has no one left, it is withdrawn
    # and its alert goes back to the officers
    out = ok(workers, "duty", "off", "--worker", a, "--actor", "wang", "--json").json()
    assert out["duty"]["role"] == "duty_officer" and out["tasks"] == [offered["id"]]
    assert task(r, offered["id"])["status"] == "cancelled"
    back = alert(r, first)
    assert back["status"] == "acknowledged" and "back with the officers" in back["needs_officer"]
    assert trail(back)[-1] == ("no_one_on_duty", "dispatched", "acknowledged", "system", "system")

    # all off duty: a dispatch offers no task, the alert stays with the officers
    second = _raise_loiter(workers, here, camera="cam-d-0102", ts=T0 + 120)
    ok(workers, "alert", "ack", second, "--actor", "wang")
    ran = gw(workers, "alert", "dispatch", second, "--actor", "wang", "--json")
    assert ran.code == 1
    out = ran.json()
    assert out["ok"] is False and out["task"] is None
    assert f"no worker of grid {here.grid} is on duty" in out["reason"]
    kept = alert(r, second)
    assert kept["status"] == "acknowledged" and kept["task_id"] is None
    assert kept["needs_officer"] == out["reason"]
    assert trail(kept)[-1] == ("no_one_on_duty", "acknowledged", "acknowledged", "system",
                               "system")
    assert not r.exists(keys.task(f"tk-{second}-1"))

    # the list shows both off duty, with who set it
    rows = {row["worker"]: row for row in ok(workers, "duty", "list", "--json").json()}
    assert (rows[a]["on"], rows[a]["actor"]) == (False, "wang")
    assert (rows[b]["on"], rows[b]["actor"]) == (False, b)
    text = ok(workers, "duty", "list").out
    assert f"{a}" in text and "off" in text

    # back on duty: the next dispatch reaches them, and the flag is cleared
    ok(workers, "duty", "on", "--worker", a, "--actor", a)
    out = ok(workers, "alert", "dispatch", second, "--actor", "wang", "--json").json()
    assert out["alert"]["status"] == "dispatched" and out["alert"]["needs_officer"] is None
    assert task(r, out["alert"]["task_id"])["workers"] == [a]
    stored = orjson.loads(r.hget(keys.DUTY, a))
    assert stored["on"] is True and stored["actor"] == a
    r.close()


def test_through_the_gateway_a_worker_sets_only_their_own_duty(
        workers: Workers, tmp_path: Path) -> None:
    """Each role against the real gateway and worker: a grid worker sets their own duty
    and no one else's, an officer anyone's, a station manager nobody's; ``/api/duty``
    answers each role with what it may see."""
    here = shared_grid()
    a, b = here.workers
    g = GatewayProcess(workers.settings, tmp_path)
    rr = redis.Redis.from_url(workers.settings.redis)
    try:
        workers.start()
        g.start()
        people = {
            "a": User(a, "grid_worker", grids=(here.grid,)),
            "b": User(b, "grid_worker", grids=(here.grid,)),
            "officer": User("o1", "duty_officer"),
            "manager": User("m1", "station_manager", stations=("SHS",)),
        }
        sessions = {k: session_for(g, rr, u) for k, u in people.items()}

        def send(who: str, target_id: str, action: str) -> dict[str, Any]:
            results: list[dict[str, Any]] = []

            async def main() -> None:
                c = Client(g, sessions[who]).start()
                c.results = results
                await until(lambda: c.ws is not None and bool(c.snapshots), timeout=20)
                await c.ws.send(orjson.dumps({"op": "cmd", "req": "r1", "target": "duty",
                                              "id": target_id, "action": action}).decode())
                await until(lambda: any(x.get("state") == "applied" or x.get("ok") is False
                                        for x in c.results), timeout=30)
                await c.stop()

            run_async(main)
            return next(x for x in results if x.get("state") == "applied" or x.get("ok") is False)

        def duty_of(name: str) -> dict[str, Any] | None:
            raw = rr.hget(keys.DUTY, name)
            return orjson.loads(raw) if raw else None

        assert send("a", a, "off_duty")["ok"] is True
        assert duty_of(a)["on"] is False and duty_of(a)["actor"] == a
        refused_ = send("a", b, "off_duty")
        assert (refused_["ok"], refused_["reason"]) == (False, "forbidden")
        assert duty_of(b) is None  # never reached the log
        assert send("officer", b, "off_duty")["ok"] is True
        assert duty_of(b)["actor"] == "o1" and duty_of(b)["role"] == "duty_officer"
        assert send("officer", "o1", "off_duty")["reason"] == "not_found"  # not a grid worker
        refused_ = send("manager", a, "on_duty")
        assert (refused_["ok"], refused_["reason"]) == (False, "forbidden")
        assert duty_of(a)["on"] is False

        def api(who: str) -> tuple[int, Any]:
            req = urllib.request.Request(f"{g.origin}/api/duty",
                                         headers={"Cookie": f"{SESSION_COOKIE}={sessions[who]}"})
            try:
                with urllib.request.urlopen(req, timeout=10) as rep:
                    return rep.status, orjson.loads(rep.read())
            except urllib.error.HTTPError as exc:
                return exc.code, None

        status, body = api("a")
        assert status == 200 and [(d["worker"], d["on"]) for d in body["duty"]] == [(a, False)]
        assert set(body) == {"duty"}  # no board: nobody else's duty for a grid worker
        status, body = api("officer")
        assert status == 200 and {d["worker"] for d in body["duty"]} == {a, b}
        # The board: both workers of the shared grid off duty, so no one is on duty there.
        assert here.grid in body["uncovered"]
        row = next(x for x in body["grids"] if x["grid_id"] == here.grid)
        assert (row["on"], row["off"]) == ([], sorted([a, b]))
        assert {p["worker"]: p["on"] for p in body["workers"] if p["worker"] in (a, b)} == {
            a: False, b: False}
        assert body["counts"]["uncovered"] == len(body["uncovered"])
        assert api("manager")[0] == 403
    finally:
        g.stop()
        rr.close()
