"""The gateway under hostile and changing conditions, against the real Redis and Kafka.

Each test runs a real gateway process (settings through its environment) and real
websockets clients: bad-secret floods, existence probes, one user's many sockets,
malformed frames, rights changed or a user removed under an open socket, login links
opened by a link preview, and the cookie over https.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
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
from tests.integration.test_gateway import (
    GatewayProcess,
    gateways,
    put_alert,
    put_task,
    redeem,
    run_async,
    session_for,
)

pytestmark = pytest.mark.integration

Start = Callable[..., GatewayProcess]


@pytest.fixture
def start_gw(stack_settings: settings_mod.Settings, tmp_path: Path) -> Iterator[tuple[Start, redis.Redis]]:
    """Start a gateway with extra environment (its Redis database emptied first)."""
    with gateways(stack_settings, tmp_path) as started:
        yield started


def get(url: str, **headers: str) -> tuple[int, bytes, Any]:
    """Status, body and headers of a GET (errors included)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as rep:
            return rep.status, rep.read(), rep.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers


def checks(g: GatewayProcess) -> dict[str, float]:
    """The gateway's count of real (uncached) session checks, by outcome."""
    _, text, _ = get(f"{g.origin}/metrics")
    return {m[0]: float(m[1]) for m in re.findall(
        r'^gridwatch_ws_session_checks_total\{outcome="(\w+)"\} (\S+)$', text.decode(), re.MULTILINE)}


def socket(g: GatewayProcess, session: str) -> Any:
    return connect(f"ws://127.0.0.1:{g.port}/ws", max_size=2**22,
                   additional_headers={"Authorization": f"Bearer {session}", "Origin": g.origin})


async def frames_until(ws: Any, done: Callable[[dict[str, Any]], bool],
                       timeout: float = 10.0) -> list[dict[str, Any]]:
    """Frames received until one satisfies ``done`` (included)."""
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while True:
            f = orjson.loads(await ws.recv())
            seen.append(f)
            if done(f):
                return seen


def run(main: Callable[[], Any]) -> Any:
    """``run_async`` that hands back what ``main`` returns."""
    box: list[Any] = []

    async def keep() -> None:
        box.append(await main())

    run_async(keep)
    return box[0]


def flood(url: str, n: int, workers: int, **headers: str) -> list[int]:
    """``n`` GETs from ``workers`` threads; their statuses."""
    out: list[int] = []
    lock = threading.Lock()

    def one(k: int) -> None:
        for _ in range(k):
            status, _, _ = get(url, **headers)
            with lock:
                out.append(status)

    threads = [threading.Thread(target=one, args=(n // workers,)) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_a_bad_secret_flood_is_checked_once_and_healthz_answers(start_gw: Any) -> None:
    start, r = start_gw
    g = start()
    session = session_for(g, r, User("o1", "duty_officer"))
    forged = session.split(".")[0] + ".wrong-secret-of-the-right-length-000000000000"
    before = checks(g).get("refused", 0.0)
    statuses: list[int] = []
    hammer = threading.Thread(target=lambda: statuses.extend(
        flood(f"{g.origin}/api/me", 300, 6, Authorization=f"Bearer {forged}")))
    hammer.start()
    health = [get(f"{g.origin}/healthz")[0] for _ in range(20)]
    hammer.join()
    assert health == [200] * 20
    assert len(statuses) == 300 and set(statuses) <= {401, 429}
    assert statuses.count(429) > 200  # the address spent its failure budget (30)
    # One real check for the one bad token: the rest were answered from memory.
    assert checks(g).get("refused", 0.0) - before == 1
    # Many different bad tokens from that address now: its budget is spent, so (but for
    # the one token a second it earns back) they are refused before any check.
    t0 = time.monotonic()
    distinct = [get(f"{g.origin}/api/me", Authorization=f"Bearer x{i}.forged")[0]
                for i in range(100)]
    earned = 1 + (time.monotonic() - t0) * 1.0 + 1
    assert distinct.count(429) >= 100 - earned
    assert checks(g).get("refused", 0.0) - before <= earned


def test_distinct_bad_tokens_spend_the_address_budget(start_gw: Any) -> None:
    start, r = start_gw
    g = start(GRIDWATCH_AUTH_FAIL_BURST="10", GRIDWATCH_AUTH_FAIL_RATE="0.5")
    users.add_user(r, User("o1", "duty_officer"))
    t0 = time.monotonic()
    statuses = [get(f"{g.origin}/api/me", Authorization=f"Bearer id{i}.forged")[0]
                for i in range(60)]
    allowed = 10 + 0.5 * (time.monotonic() - t0) + 1
    assert statuses.count(401) <= allowed and statuses.count(429) >= 60 - allowed
    assert checks(g).get("refused", 0.0) <= allowed
    # A login POST from that address is refused before any check too.
    with pytest.raises(urllib.error.HTTPError) as limited:
        redeem(g, users.new_login(r, "o1"))
    assert limited.value.code == 429


def test_unknown_and_foreign_ids_get_identical_answers(start_gw: Any) -> None:
    start, r = start_gw
    g = start()
    put_task(r, "t1", "G0001", "w0001")
    w2 = session_for(g, r, User("w0002", "grid_worker", grids=("G0002",)))

    async def main() -> list[dict[str, Any]]:
        async with socket(g, w2) as ws:
            await ws.send('{"op":"hello","last":{}}')
            out = []
            for tid in ("t1", "no-such-task"):
                await ws.send(orjson.dumps({"op": "cmd", "req": "r", "target": "task",
                                            "id": tid, "action": "accept"}).decode())
                got = await frames_until(ws, lambda f: f.get("op") == "result")
                out.append({k: v for k, v in got[-1].items() if k != "id"})
            return out

    foreign, unknown = run(main)
    assert foreign == unknown == {"op": "result", "req": "r", "action": "accept", "ok": False,
                                  "reason": "not_found"}
    # The risk read of another grid answers as that of a grid that does not exist.
    bearer = {"Authorization": f"Bearer {w2}"}
    assert get(f"{g.origin}/api/risk/G0001", **bearer)[:2] == \
        get(f"{g.origin}/api/risk/G9999", **bearer)[:2]


def test_five_sockets_of_one_user_share_one_budget_and_the_cap(start_gw: Any) -> None:
    start, r = start_gw
    g = start(GRIDWATCH_CMD_RATE="1", GRIDWATCH_CMD_BURST="20", GRIDWATCH_USER_SOCKETS="5")
    officer = session_for(g, r, User("o1", "duty_officer"))

    async def main() -> tuple[list[str], float]:
        sockets = [await socket(g, officer) for _ in range(5)]
        await asyncio.sleep(0.3)
        with pytest.raises(InvalidStatus) as sixth:
            async with socket(g, officer):
                pass
        assert sixth.value.response.status_code == 429
        for ws in sockets:
            await ws.send('{"op":"hello","last":{}}')
        t0 = time.monotonic()
        for i in range(20):
            for ws in sockets:
                await ws.send(orjson.dumps({"op": "cmd", "req": f"r{i}", "target": "alert",
                                            "id": f"none{i}", "action": "ack"}).decode())
        reasons: list[str] = []
        for ws in sockets:
            got: list[dict[str, Any]] = []
            while len(got) < 20:
                f = (await frames_until(ws, lambda f: f.get("op") == "result"))[-1]
                got.append(f)
            reasons += [f["reason"] for f in got]
        elapsed = time.monotonic() - t0
        for ws in sockets:
            await ws.close()
        return reasons, elapsed

    reasons, elapsed = run(main)
    assert len(reasons) == 100
    through = [x for x in reasons if x != "rate_limited"]
    assert set(through) == {"not_found"}
    assert 20 <= len(through) <= 20 + elapsed * 1 + 1  # one burst for the user, not five


def test_malformed_frames_get_an_error_and_the_socket_stays_usable(start_gw: Any) -> None:
    start, r = start_gw
    g = start()
    put_alert(r, "a1", "G0001")
    officer = session_for(g, r, User("o1", "duty_officer"))
    bad: list[tuple[str | bytes, str]] = [
        ("not json", "not_json"),
        ("[1, 2]", "not_an_object"),
        ('{"op": 7}', "unknown_op"),
        ('{"op": "launch"}', "unknown_op"),
        ('{"op": "ping", "req": {"a": 1}}', "bad_req"),
        ('{"op": "cmd", "req": "x", "target": "alert", "id": 5, "action": "ack"}', "bad_id"),
        ('{"op": "cmd", "target": "alert", "id": "a1", "action": "ack", "evil": 1}',
         "unknown_field"),
        ('{"op": "hello", "last": {"alerts": "x-y"}}', "bad_last"),
        (b"\x00\x01binary", "binary_frame"),
        ('{"op": "ping", "pad": "' + "x" * 100_000 + '"}', "frame_too_large"),
    ]

    async def main() -> None:
        async with socket(g, officer) as ws:
            await ws.send('{"op":"hello","last":[1]}')  # it used to kill the handler
            first = await frames_until(ws, lambda f: f.get("op") == "error")
            assert first[-1]["reason"] == "bad_last"
            await frames_until(ws, lambda f: f.get("ch") == "alerts" and f.get("snapshot"))
            for raw, reason in bad:
                await ws.send(raw)
                got = await frames_until(ws, lambda f: f.get("op") == "error")
                assert got[-1]["reason"] == reason, (raw[:60], got[-1])
            await ws.send('{"op":"ping"}')
            await frames_until(ws, lambda f: f.get("op") == "pong")
            await ws.send(orjson.dumps({"op": "cmd", "req": "ok", "target": "alert",
                                        "id": "missing", "action": "ack"}).decode())
            got = await frames_until(ws, lambda f: f.get("op") == "result")
            assert got[-1]["reason"] == "not_found"

    run_async(main)
    assert g.proc is not None and g.proc.poll() is None
    assert "Traceback" not in g.log.read_text()


async def closed_with(ws: Any, timeout: float = 10.0) -> tuple[int | None, str]:
    """The close code and reason of a socket, once the gateway closes it."""
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv()
    rcvd = closed.value.rcvd
    return (rcvd.code, rcvd.reason) if rcvd else (None, "")


def test_changed_rights_and_removal_close_open_sockets(start_gw: Any) -> None:
    start, r = start_gw
    g = start(GRIDWATCH_SESSION_RECHECK="0.3")
    worker = User("w0001", "grid_worker", grids=("G0001",))
    officer = User("o1", "duty_officer")
    ws_w, ws_o = session_for(g, r, worker), session_for(g, r, officer)

    async def main() -> None:
        async with socket(g, ws_w) as a, socket(g, ws_o) as b:
            for ws in (a, b):
                await ws.send('{"op":"hello","last":{}}')
                await frames_until(ws, lambda f: f.get("op") == "welcome")
            users.add_user(r, User("w0001", "grid_worker", grids=("G0002",)))
            users.add_user(r, User("o1", "station_manager", stations=("SHS",)))
            assert (await closed_with(a))[0] == 4403
            assert (await closed_with(b))[0] == 4403
        # Reconnecting gives the new rights; removing the user closes with 4401.
        async with socket(g, ws_w) as a:
            welcome = await frames_until(a, lambda f: f.get("op") == "welcome")
            assert welcome[-1]["user"]["grids"] == ["G0002"]
            await a.send('{"op":"hello","last":{}}')
            users.remove_user(r, "w0001")
            assert (await closed_with(a))[0] == 4401

    run_async(main)


def test_a_command_is_checked_against_the_rights_stored_now(start_gw: Any) -> None:
    start, r = start_gw
    g = start(GRIDWATCH_SESSION_RECHECK="3600")  # no periodic re-check during the test
    put_task(r, "t1", "G0001", "nobody")
    session = session_for(g, r, User("w0001", "grid_worker", grids=("G0001",)))

    async def main() -> None:
        async with socket(g, session) as ws:
            await ws.send('{"op":"hello","last":{}}')
            await frames_until(ws, lambda f: f.get("ch") == "tasks" and f.get("snapshot"))
            users.add_user(r, User("w0001", "grid_worker", grids=("G0002",)))
            await ws.send(orjson.dumps({"op": "cmd", "req": "c", "target": "task", "id": "t1",
                                        "action": "accept"}).decode())
            got = await frames_until(ws, lambda f: f.get("op") == "result")
            assert got[-1]["ok"] is False and got[-1]["reason"] == "rights_changed"
            assert (await closed_with(ws))[0] == 4403

    run_async(main)


def test_the_walls_district_figures_are_for_those_who_see_everything(start_gw: Any) -> None:
    # The trends and the riskiest grids span the whole district: a grid worker or a
    # station manager may not read them, nor anyone without a session; an officer may.
    start, r = start_gw
    g = start()
    r.hset(keys.WATERMARKS, "gridwatch.checkpoint-scans:0", time.time())
    for path in ("/api/trends", "/api/top"):
        assert get(f"{g.origin}{path}")[0] == 401
        for who in (User("w0001", "grid_worker", grids=("G0001",)),
                    User("m1", "station_manager", stations=("SHS",))):
            bearer = {"Authorization": f"Bearer {session_for(g, r, who)}"}
            status, body, _ = get(f"{g.origin}{path}", **bearer)
            assert (status, body) == (403, b"forbidden\n"), (who.role, path)
        for who in (User("o1", "duty_officer"), User("a1", "admin")):
            bearer = {"Authorization": f"Bearer {session_for(g, r, who)}"}
            status, body, _ = get(f"{g.origin}{path}", **bearer)
            assert status == 200, (who.role, path)
            assert orjson.loads(body)["hours" if path == "/api/trends" else "grids"] is not None
