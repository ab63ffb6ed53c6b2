"""Trace lookups through the real gateway and the CLI, against the real Redis.

A person's trace is written into Redis as the worker writes it (``keys.trace``, members
``event_id|checkpoint|grid|direction|colour``, score = event time); the lookup must hand
back exactly those rows, refuse without a reason or to the wrong role, refuse hostile
person references with a 400 (never a Redis error), audit every lookup it answers, and
stop a user scraping traces with a 429.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from gridwatch.ws.auth import User

from gridwatch import cli, keys
from gridwatch import settings as settings_mod
from tests.integration.test_gateway import GatewayProcess, gateways, session_for

pytestmark = pytest.mark.integration

NOW = 1_760_000_000.0  # the feed's event time in these tests
PERSON = "9f3a0c5e21b7d4e8a6c1"


@pytest.fixture
def start_gw(stack_settings: settings_mod.Settings,
             tmp_path: Path) -> Iterator[tuple[Callable[..., GatewayProcess], redis.Redis]]:
    """Start a gateway with extra environment (its Redis database emptied first; the
    client reads text)."""
    with gateways(stack_settings, tmp_path, decode_responses=True) as started:
        yield started


def put_trace(r: redis.Redis, person: str) -> None:
    """Scans of ``person`` as the worker stores them: four within 14 days, one older."""
    r.hset(keys.WATERMARKS, "gridwatch.checkpoint-scans:0", NOW)
    r.zadd(keys.trace(person), {
        "e1|CP0001|G0001|in|green": NOW - 3600,
        "e2|CP0001|G0001|out|green": NOW - 1800,
        "e3|CP0107|G0042|in|yellow": NOW - 5 * 86400,
        "e4|CP0300||in|red": NOW - 13 * 86400,
        "e0|CP0009|G0002|in|green": NOW - 20 * 86400,  # past the 14 days
    })


def held(r: redis.Redis, person: str, days: float = 14) -> list[dict[str, Any]]:
    """What Redis holds of ``person``'s last ``days``, newest first, read independently."""
    out = []
    for member, ts in r.zrevrangebyscore(keys.trace(person), "+inf", NOW - days * 86400,
                                         withscores=True):
        event_id, checkpoint, grid, direction, color = member.split("|")
        out.append((ts, event_id, checkpoint, grid or None, direction, color))
    return out


def call(g: GatewayProcess, path: str, session: str | None, body: Any = None, *,
         raw: bytes | None = None, origin: str | None = None) -> tuple[int, Any, Any]:
    """A GET (no body) or a POST of JSON to the gateway: status, parsed body, headers."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    headers = {"Origin": origin or g.origin}
    if session:
        headers["Authorization"] = f"Bearer {session}"
    if data is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(f"{g.origin}{path}", data=data, headers=headers,
                                     method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            status, text, hdrs = reply.status, reply.read(), reply.headers
    except urllib.error.HTTPError as exc:
        status, text, hdrs = exc.code, exc.read(), exc.headers
    try:
        return status, json.loads(text), hdrs
    except ValueError:
        return status, text.decode(), hdrs


def sessions(g: GatewayProcess, r: redis.Redis) -> dict[str, str]:
    """A session of each role."""
    return {
        "officer": session_for(g, r, User("wang", "duty_officer")),
        "admin": session_for(g, r, User("li", "admin")),
        "worker": session_for(g, r, User("w0577", "grid_worker", grids=("G0001",))),
        "manager": session_for(g, r, User("zhao", "station_manager", stations=("SHS",))),
    }


def test_lookup_needs_a_reason_returns_what_redis_holds_and_is_audited(start_gw: Any) -> None:
    start, r = start_gw
    g = start()
    s = sessions(g, r)
    put_trace(r, PERSON)

    for body in ({"person": PERSON}, {"person": PERSON, "reason": ""},
                 {"person": PERSON, "reason": "   "}, {"person": PERSON, "reason": None}):
        status, reply, _ = call(g, "/api/trace", s["officer"], body)
        assert status == 400 and reply["error"] == "reason_required", (body, reply)
    status, reply, _ = call(g, "/api/trace", s["officer"], {"person": PERSON, "reason": "x" * 301})
    assert status == 400 and reply["error"] == "reason_too_long"
    assert r.xlen(keys.TRACE_AUDIT) == 0  # refusals read nothing and audit nothing

    status, reply, _ = call(g, "/api/trace", s["officer"],
                            {"person": PERSON, "reason": "case 2024-118: contact of a red code"})
    assert status == 200, reply
    got = [(datetime.fromisoformat(row["ts"]).timestamp(), row["event_id"], row["checkpoint_id"], row["grid_id"], row["direction"],
            row["code_color"]) for row in reply["rows"]]
    assert got == held(r, PERSON)
    assert [row["event_id"] for row in reply["rows"]] == ["e2", "e1", "e3", "e4"]  # not e0
    assert reply["truncated"] is False

    entries = r.xrange(keys.TRACE_AUDIT)
    assert len(entries) == 1
    fields = entries[0][1]
    assert fields == {"actor": "wang", "role": "duty_officer", "person": PERSON,
                      "reason": "case 2024-118: contact of a red code", "rows": "4",
                      "via": "gateway"}
    assert abs(int(entries[0][0].split("-")[0]) / 1000 - time.time()) < 30

    # An admin looks up too, and reads both entries back, newest first.
    status, reply, _ = call(g, "/api/trace", s["admin"], {"person": "nobody-1", "reason": "check"})
    assert status == 200 and reply["rows"] == []
    status, audit, _ = call(g, "/api/trace/audit?since=1h", s["admin"])
    assert status == 200
    assert [(a["actor"], a["person"], a["reason"], a["rows"]) for a in audit["rows"]] == [
        ("li", "nobody-1", "check", 0), ("wang", PERSON, "case 2024-118: contact of a red code", 4)]


def test_only_officers_and_admins_look_up_and_only_admins_read_the_audit(start_gw: Any) -> None:
    start, r = start_gw
    g = start()
    s = sessions(g, r)
    put_trace(r, PERSON)
    for who in ("worker", "manager"):
        status, reply, _ = call(g, "/api/trace", s[who], {"person": PERSON, "reason": "curious"})
        assert status == 403 and reply["error"] == "forbidden", who
    for who in ("worker", "manager", "officer"):
        status, reply, _ = call(g, "/api/trace/audit", s[who])
        assert status == 403, who
    assert r.xlen(keys.TRACE_AUDIT) == 0
    # No session: 401; a cross-site page riding on a session: 403; a GET lookup: 405.
    assert call(g, "/api/trace", None, {"person": PERSON, "reason": "x"})[0] == 401
    assert call(g, "/api/trace/audit", None)[0] == 401
    status, reply, _ = call(g, "/api/trace", s["officer"], {"person": PERSON, "reason": "x"},
                            origin="http://evil.example")
    assert status == 403 and reply["error"] == "origin"
    assert call(g, "/api/trace", s["officer"])[0] == 405
    assert r.xlen(keys.TRACE_AUDIT) == 0
    # /api/me tells the page what the user may do.
    assert call(g, "/api/me", s["officer"])[1]["trace"]["lookup"] is True
    assert call(g, "/api/me", s["officer"])[1]["trace"]["audit"] is False
    assert call(g, "/api/me", s["admin"])[1]["trace"]["audit"] is True
    assert call(g, "/api/me", s["worker"])[1]["trace"]["lookup"] is False


@pytest.mark.parametrize(("person", "code"), [
    ("a" * 201, "person_too_long"), ("p\x00x", "person_bad_chars"), ("p\r\nx", "person_bad_chars"),
    ("{core}", "person_bad_chars"), ("}{", "person_bad_chars"), ("*", "person_bad_chars"),
    ("p?", "person_bad_chars"), ("[a-z]*", "person_bad_chars"), ("", "person_required"),
    (["p1"], "person_required"), ({"$ne": 1}, "person_required"), ("\u202e" * 10, "person_bad_chars"),
])
def test_hostile_person_references_get_400(start_gw: Any, person: Any, code: str) -> None:
    start, r = start_gw
    g = start()
    officer = session_for(g, r, User("wang", "duty_officer"))
    status, reply, _ = call(g, "/api/trace", officer, {"person": person, "reason": "probe"})
    assert status == 400 and reply["error"] == code, reply
    assert r.xlen(keys.TRACE_AUDIT) == 0
    for raw in (b"not json", b"[1,2]", b'"p1"', b"\xff\xfe"):
        status, reply, _ = call(g, "/api/trace", officer, raw=raw)
        assert status == 400 and reply["error"] == "bad_body", raw
    # The gateway still answers after all of it.
    assert call(g, "/api/trace", officer, {"person": "p-1", "reason": "ok"})[0] == 200


def test_a_user_scraping_traces_gets_429_others_do_not(start_gw: Any) -> None:
    start, r = start_gw
    g = start(GRIDWATCH_TRACE_BURST="3", GRIDWATCH_TRACE_LOOKUPS="1")
    officer = session_for(g, r, User("wang", "duty_officer"))
    other = session_for(g, r, User("liu", "duty_officer"))
    statuses = [call(g, "/api/trace", officer, {"person": f"p-{i}", "reason": "sweep"})
                for i in range(5)]
    assert [s for s, _, _ in statuses] == [200, 200, 200, 429, 429]
    _, reply, headers = statuses[3]
    assert reply["error"] == "rate_limited" and int(headers["Retry-After"]) > 0
    assert r.xlen(keys.TRACE_AUDIT) == 3  # a refused lookup reads and audits nothing
    assert call(g, "/api/trace", other, {"person": "p-9", "reason": "case 7"})[0] == 200


def test_cli_lookup_needs_a_reason_and_is_audited(stack_settings: settings_mod.Settings,
                                                   capsys: Any, monkeypatch: Any) -> None:
    r = redis.Redis.from_url(stack_settings.redis, decode_responses=True)
    r.flushdb()
    put_trace(r, PERSON)
    monkeypatch.setenv("GRIDWATCH_REDIS", stack_settings.redis)
    assert cli.main(["trace", PERSON, "--json"]) != 0
    assert "reason" in capsys.readouterr().err
    assert cli.main(["trace", "p{x}", "--reason", "r", "--json"]) != 0
    assert r.xlen(keys.TRACE_AUDIT) == 0

    capsys.readouterr()
    assert cli.main(["trace", PERSON, "--reason", "case 9", "--actor", "chen", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["event_id"] for row in rows] == [h[1] for h in held(r, PERSON)]
    assert cli.main(["trace", "audit", "--since", "1h", "--json"]) == 0
    audit = json.loads(capsys.readouterr().out)
    assert [(a["actor"], a["person"], a["reason"], a["rows"], a["via"]) for a in audit] == [
        ("chen", PERSON, "case 9", 4, "cli")]
    r.close()
