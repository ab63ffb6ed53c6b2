"""The gateway against the real Redis and Kafka, with real websockets clients.

The worker is simulated: records are written straight into the channel streams and
snapshot keys, as the contract says the worker does. The gateway runs as a process of
its own so a test can cut it (SIGKILL) and start it again. Kafka and Redis are the
test stack of ``conftest.py`` (started by the tests, on ports of their own).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from gridwatch.ws import users
from gridwatch.ws.auth import User
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from gridwatch import keys
from gridwatch import settings as settings_mod
from tests.drill import run_async

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class GatewayProcess:
    """``python -m gridwatch.ws.gateway`` on a free port."""

    def __init__(self, s: settings_mod.Settings, logdir: Path) -> None:
        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "GRIDWATCH_KAFKA": s.kafka, "GRIDWATCH_REDIS": s.redis,
                    "GRIDWATCH_GATEWAY": f"127.0.0.1:{self.port}",
                    "GRIDWATCH_WEB_ORIGIN": self.origin,
                    # the stack's home holds the command key the workers verify with
                    "GRIDWATCH_HOME": str(s.home)}
        self.log = logdir / "gateway.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "gridwatch.ws.gateway"], env=self.env,
                                     stdout=self.log.open("ab"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.origin}/healthz", timeout=1).read()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()  # one that never answered is not left running
        raise RuntimeError(f"gateway did not start: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM, and after 10 s SIGKILL to the process and any children it has."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


@pytest.fixture
def gw(stack_settings: settings_mod.Settings,
       tmp_path: Path) -> Iterator[tuple[GatewayProcess, redis.Redis]]:
    """A fresh gateway on the test stack, its Redis database emptied first."""
    s = stack_settings
    r = redis.Redis.from_url(s.redis)
    r.flushdb()
    g = GatewayProcess(s, tmp_path)
    g.start()
    try:
        yield g, r
    finally:
        g.stop()
        r.close()


@contextmanager
def gateways(s: settings_mod.Settings, tmp_path: Path, **redis_options: Any,
             ) -> Iterator[tuple[Callable[..., GatewayProcess], redis.Redis]]:
    """A starter of gateways with extra environment, and a client of their Redis
    (``redis_options``: e.g. ``decode_responses``), the database emptied first; at the
    end every gateway started is stopped and the client closed."""
    r = redis.Redis.from_url(s.redis, **redis_options)
    r.flushdb()
    started: list[GatewayProcess] = []

    def start(**env: str) -> GatewayProcess:
        g = GatewayProcess(s, tmp_path)
        g.env.update(env)
        g.start()
        started.append(g)
        return g

    try:
        yield start, r
    finally:
        for g in started:
            g.stop()
        r.close()


def redeem(g: GatewayProcess, token: str, **headers: str) -> Any:
    """POST a login token as the link's confirmation page does (the reply is open)."""
    body = urllib.parse.urlencode({"token": token}).encode()
    request = urllib.request.Request(f"{g.origin}/login", data=body, method="POST",
                                     headers={"Origin": g.origin, **headers})
    return urllib.request.urlopen(request, timeout=5)


def session_for(g: GatewayProcess, r: redis.Redis, user: User) -> str:
    """Log ``user`` in through the one-time link; returns the session token of the cookie."""
    token = users.add_user(r, user)
    with redeem(g, token) as reply:
        cookie = reply.headers["Set-Cookie"]
    return cookie.split(";", 1)[0].split("=", 1)[1]


def put_alert(r: redis.Redis, aid: str, grid: str, status: str = "new") -> str:
    rec = {"id": aid, "kind": "loiter", "severity": "high", "status": status, "grid_id": grid,
           "station_id": None, "ts_raised": time.time(), "ts_updated": time.time(),
           "title": f"alert {aid}", "title_zh": f"告警 {aid}", "task_id": None, "v": 1}
    r.set(keys.alert(aid), orjson.dumps(rec))
    r.zadd(keys.ALERTS_OPEN, {aid: rec["ts_raised"]})
    r.zadd(keys.alerts_by_grid(grid), {aid: rec["ts_raised"]})
    return r.xadd(keys.CHAN_ALERTS, {"d": orjson.dumps({"type": "alert", "alert": rec})},
                  maxlen=keys.CHAN_MAXLEN).decode()


def put_task(r: redis.Redis, tid: str, grid: str, worker: str) -> str:
    rec = {"id": tid, "alert_id": "a-" + tid, "grid_id": grid, "workers": [worker],
           "status": "offered", "assignee": None, "ts_created": time.time(),
           "ts_updated": time.time(), "due_at": time.time() + 7200, "note": "", "audit": [], "v": 1}
    r.set(keys.task(tid), orjson.dumps(rec))
    r.zadd(keys.tasks_by_worker(worker), {tid: rec["ts_created"]})
    return r.xadd(keys.CHAN_TASKS, {"d": orjson.dumps({"type": "task", "task": rec})},
                  maxlen=keys.CHAN_MAXLEN).decode()


class Client:
    """A cockpit client that records every channel delta and resumes after a cut."""

    def __init__(self, g: GatewayProcess, session: str) -> None:
        self.g, self.session = g, session
        self.last: dict[str, str] = {}
        self.deltas: list[tuple[str, str]] = []
        self.snapshots: list[dict[str, Any]] = []
        self.results: list[dict[str, Any]] = []
        self.grid_deltas: list[dict[str, Any]] = []  # live grid deltas, as received
        self.ws: Any = None
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        while True:
            try:
                async with connect(f"ws://127.0.0.1:{self.g.port}/ws",
                                   additional_headers={"Authorization": f"Bearer {self.session}",
                                                       "Origin": self.g.origin}) as ws:
                    self.ws = ws
                    await ws.send(orjson.dumps({"op": "hello", "last": self.last}).decode())
                    async for raw in ws:
                        self.take(orjson.loads(raw))
            except (OSError, ConnectionClosed, InvalidStatus):
                self.ws = None
                await asyncio.sleep(0.2)

    def take(self, f: dict[str, Any]) -> None:
        if f.get("op") == "result":
            self.results.append(f)
        elif f.get("snapshot"):
            self.snapshots.append(f)
            self.last[f["ch"]] = f["id"]
        elif "id" in f and "ch" in f:
            self.deltas.append((f["ch"], f["id"]))
            self.last[f["ch"]] = f["id"]
            if f["ch"] == "grids":
                self.grid_deltas.extend(f.get("ms") or [f["m"]])

    def start(self) -> Client:
        self.task = asyncio.create_task(self.run())
        return self

    async def stop(self) -> None:
        assert self.task
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def until(check: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.02)


def test_refusals(gw: tuple[GatewayProcess, redis.Redis]) -> None:
    g, r = gw
    session = session_for(g, r, User("o1", "duty_officer"))

    async def main() -> None:
        with pytest.raises(InvalidStatus) as no_auth:
            async with connect(f"ws://127.0.0.1:{g.port}/ws"):
                pass
        assert no_auth.value.response.status_code == 401
        with pytest.raises(InvalidStatus) as bad:
            async with connect(f"ws://127.0.0.1:{g.port}/ws?session=forged.token"):
                pass
        assert bad.value.response.status_code == 401
        with pytest.raises(InvalidStatus) as foreign:
            async with connect(f"ws://127.0.0.1:{g.port}/ws",
                               additional_headers={"Authorization": f"Bearer {session}",
                                                   "Origin": "http://evil.example"}):
                pass
        assert foreign.value.response.status_code == 403

    run_async(main)
    with pytest.raises(urllib.error.HTTPError) as page:
        urllib.request.urlopen(f"{g.origin}/app.js", timeout=5)
    assert page.value.code == 401
    assert urllib.request.urlopen(f"{g.origin}/healthz", timeout=5).status == 200


def test_login_link_works_once(gw: tuple[GatewayProcess, redis.Redis]) -> None:
    g, r = gw
    token = users.add_user(r, User("o2", "duty_officer"))
    assert redeem(g, token).status == 200
    with pytest.raises(urllib.error.HTTPError) as again:
        redeem(g, token)
    assert again.value.code == 401


def test_snapshot_deltas_visibility_and_commands(gw: tuple[GatewayProcess, redis.Redis]) -> None:
    g, r = gw
    put_alert(r, "old", "G0001")
    officer = session_for(g, r, User("o1", "duty_officer"))
    w1 = session_for(g, r, User("w0001", "grid_worker", grids=("G0001",)))
    w2 = session_for(g, r, User("w0002", "grid_worker", grids=("G0002",)))

    async def main() -> None:
        o, a, b = (Client(g, s).start() for s in (officer, w1, w2))
        await until(lambda: all(len(c.snapshots) >= 2 for c in (o, a, b)))
        snap = next(f for f in o.snapshots if f["ch"] == "alerts")
        assert [x["id"] for x in snap["items"]] == ["old"]
        assert not [x for f in b.snapshots if f["ch"] == "alerts" for x in f["items"]]
        s1 = put_alert(r, "a1", "G0001")
        s2 = put_task(r, "t1", "G0001", "w0001")
        await until(lambda: len(o.deltas) == 2 and len(a.deltas) == 2)
        assert o.deltas == [("alerts", s1), ("tasks", s2)] == a.deltas
        await asyncio.sleep(0.3)
        assert b.deltas == []  # the other grid's worker sees nothing of it
        # An officer's dispatch goes to Kafka; a worker cannot act on another grid's task.
        await o.ws.send(orjson.dumps({"op": "cmd", "req": "r1", "target": "alert", "id": "a1",
                                      "action": "dispatch", "note": "go"}).decode())
        await b.ws.send(orjson.dumps({"op": "cmd", "req": "r2", "target": "task", "id": "t1",
                                      "action": "accept"}).decode())
        await until(lambda: o.results and b.results, timeout=20)
        assert o.results[0]["state"] == "sent", o.results
        # Another grid's task is answered as an unknown id would be: no existence oracle.
        assert b.results[0] == {**b.results[0], "ok": False, "reason": "not_found"}
        for c in (o, a, b):
            await c.stop()

    run_async(main)


def test_resume_after_reconnect_gets_exactly_the_missed(gw: tuple[GatewayProcess, redis.Redis]) -> None:
    g, r = gw
    officer = session_for(g, r, User("o1", "duty_officer"))

    async def main() -> None:
        c = Client(g, officer).start()
        await until(lambda: len(c.snapshots) == 4)
        seen = [put_alert(r, f"a{i}", "G0001") for i in range(3)]
        await until(lambda: len(c.deltas) == 3)
        await c.stop()
        missed = [put_alert(r, f"b{i}", "G0002") for i in range(5)]
        c.start()
        await until(lambda: len(c.deltas) == 8)
        await asyncio.sleep(0.3)
        assert c.deltas == [("alerts", i) for i in seen + missed]
        assert len(c.snapshots) == 4  # resumed, no second snapshot
        await c.stop()

    run_async(main)


def test_gateway_cut_and_restart_loses_and_repeats_nothing(
        gw: tuple[GatewayProcess, redis.Redis]) -> None:
    g, r = gw
    people = [User("o1", "duty_officer"), User("w0001", "grid_worker", grids=("G0001",)),
              User("w0002", "grid_worker", grids=("G0002",))]
    sessions = [session_for(g, r, u) for u in people]

    def expected(user: User, log: list[tuple[str, str, str]]) -> list[tuple[str, str]]:
        # In order within each channel; the channels' readers interleave freely.
        return sorted(((ch, sid) for ch, sid, grid in log
                       if user.role == "duty_officer" or grid in user.grids),
                      key=lambda e: e[0])

    def got(c: Client) -> list[tuple[str, str]]:
        return sorted(c.deltas, key=lambda e: e[0])

    async def main() -> None:
        clients = [Client(g, s).start() for s in sessions]
        await until(lambda: all(c.snapshots for c in clients))
        await asyncio.sleep(0.5)
        log: list[tuple[str, str, str]] = []

        def burst(tag: str, n: int) -> None:
            for i in range(n):
                grid = ("G0001", "G0002")[i % 2]
                log.append(("alerts", put_alert(r, f"{tag}{i}", grid), grid))
                log.append(("tasks", put_task(r, f"t{tag}{i}", grid, "w" + grid[1:]), grid))

        burst("before", 10)
        await until(lambda: all(got(c) == expected(u, log) for c, u in zip(clients, people)))
        g.kill()  # cut: no goodbye to anyone
        burst("during", 10)
        await asyncio.sleep(0.5)
        g.start()
        burst("after", 10)
        await until(lambda: all(got(c) == expected(u, log) for c, u in zip(clients, people)),
                    timeout=20)
        await asyncio.sleep(0.5)
        for c, u in zip(clients, people):
            assert got(c) == expected(u, log)
            assert len(set(c.deltas)) == len(c.deltas)
            await c.stop()

    run_async(main)


def put_grid(r: redis.Redis, grid: str, score: float) -> str:
    delta = {"type": "grid", "grid_id": grid, "score": score, "band": "low", "hour": 1}
    return r.xadd(keys.CHAN_GRIDS, {"d": orjson.dumps(delta)}, maxlen=keys.CHAN_MAXLEN).decode()


def test_grid_deltas_arrive_batched_latest_per_grid_own_grids_only(
        gw: tuple[GatewayProcess, redis.Redis]) -> None:
    g, r = gw
    officer = session_for(g, r, User("o1", "duty_officer"))
    worker = session_for(g, r, User("w0001", "grid_worker", grids=("G0001",)))

    def latest(c: Client) -> dict[str, float]:
        return {d["grid_id"]: d["score"] for d in c.grid_deltas}

    async def main() -> None:
        o, w = Client(g, officer).start(), Client(g, worker).start()
        await until(lambda: len(o.snapshots) == 4 and len(w.snapshots) == 3)
        for i in range(50):  # a burst, as the worker's risk refresh writes it
            put_grid(r, "G0001", float(i))
            put_grid(r, "G0002", 100.0 + i)
        last = put_grid(r, "G0001", 99.0)
        await until(lambda: latest(o) == {"G0001": 99.0, "G0002": 149.0}
                    and latest(w) == {"G0001": 99.0})
        assert {d["grid_id"] for d in w.grid_deltas} == {"G0001"}
        # Fewer frames than deltas, and the newest frame's id is the resume point.
        assert len([x for x in o.deltas if x[0] == "grids"]) < 101
        assert o.last["grids"] == last
        for c in (o, w):
            await c.stop()

    run_async(main)


def test_a_taken_port_is_a_clear_error_and_the_gateway_exits(
        stack_settings: settings_mod.Settings, tmp_path: Path) -> None:
    """The port already in use: exit 2, naming the address, rather than hang (it used to
    hang, its Redis readers retrying a cancellation redis-py had turned into an error)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "GRIDWATCH_KAFKA": stack_settings.kafka,
               "GRIDWATCH_REDIS": stack_settings.redis}
        done = subprocess.run([sys.executable, "-m", "gridwatch.cli", "gateway", "--host",
                               "127.0.0.1", "--port", str(port)], env=env, capture_output=True,
                              timeout=60, check=False)
        assert done.returncode == 2, done.stderr.decode()[-2000:]
        assert f"cannot listen on 127.0.0.1:{port}" in done.stderr.decode()


def test_the_gateway_stops_on_sigterm_soon_after_it_starts(
        stack_settings: settings_mod.Settings, tmp_path: Path) -> None:
    g = GatewayProcess(stack_settings, tmp_path)
    g.start()
    assert g.proc is not None
    g.proc.terminate()
    assert g.proc.wait(15) == 0


def test_a_grid_worker_cannot_silence_shelve_or_unshelve_and_only_officers_list_silences(
        gw: tuple[GatewayProcess, redis.Redis]) -> None:
    g, r = gw
    put_alert(r, "a1", "G0001")
    officer = session_for(g, r, User("o1", "duty_officer"))
    worker = session_for(g, r, User("w0001", "grid_worker", grids=("G0001",)))

    async def main() -> None:
        o, w = Client(g, officer).start(), Client(g, worker).start()
        await until(lambda: all(len(c.snapshots) >= 2 for c in (o, w)), timeout=15)
        for req, body in (("s1", {"target": "silence", "id": "new", "action": "silence",
                                  "note": "drill", "params": {"grid": "G0001", "for_s": 600}}),
                          ("s2", {"target": "alert", "id": "a1", "action": "shelve",
                                  "note": "nuisance", "params": {"for_s": 600}}),
                          ("s3", {"target": "silence", "id": "si-x", "action": "end_silence"}),
                          ("s4", {"target": "alert", "id": "a1", "action": "unshelve"})):
            await w.ws.send(orjson.dumps({"op": "cmd", "req": req, **body}).decode())
        await until(lambda: len(w.results) == 4, timeout=20)
        assert {x["req"]: (x["ok"], x["reason"]) for x in w.results} == {
            "s1": (False, "forbidden"), "s2": (False, "forbidden"), "s3": (False, "forbidden"),
            "s4": (False, "forbidden")}
        # The officer's silence goes to the log (no worker runs here: sent, then pending).
        await o.ws.send(orjson.dumps({"op": "cmd", "req": "o1", "target": "silence",
                                      "id": "new", "action": "silence", "note": "drill",
                                      "params": {"grid": "G0001", "for_s": 600}}).decode())
        await until(lambda: o.results, timeout=20)
        assert o.results[0]["state"] == "sent", o.results
        for c in (o, w):
            await c.stop()

    run_async(main)
    for session, status in ((worker, 403), (officer, 200)):
        request = urllib.request.Request(f"{g.origin}/api/silences",
                                         headers={"Cookie": f"gw_session={session}"})
        try:
            with urllib.request.urlopen(request, timeout=5) as reply:
                got, body = reply.status, orjson.loads(reply.read())
        except urllib.error.HTTPError as exc:
            got, body = exc.code, None
        assert got == status
        if body is not None:
            assert body["silences"] == [] and body["now"] > 0
