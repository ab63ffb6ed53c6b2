"""The alerts export against the real gateway and the CLI: the alerts raised in a period
with their audit trails, as JSON and as CSV (``/api/alerts``, ``/api/alerts.csv``) and
from ``gridwatch alerts export``; the CSV's rows are the JSON's alerts and trails, the
CLI's file is the download's bytes; officers and admins only; a clear 400 for a bad
period; no cell a spreadsheet would run as a formula."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from gridwatch.schemas.events import format_time
from gridwatch.ws.auth import SESSION_COOKIE, User

from gridwatch import keys

from .test_gateway import GatewayProcess, gw, session_for  # noqa: F401 - gw is a fixture

pytestmark = pytest.mark.integration
DAY_START = datetime.fromisoformat("2024-05-01T00:00:00+08:00").timestamp()
DAY_END = DAY_START + 86400


def entry(action: str, frm: str | None, to: str, actor: str, role: str, ts: float,
          note: str = "") -> dict[str, Any]:
    return {"action": action, "from_state": frm, "to_state": to, "actor": actor, "role": role,
            "ts": ts, "note": note}


def put(r: redis.Redis, aid: str, ts: float, audit: list[dict[str, Any]], *,
        title: str = "", status: str = "closed") -> None:
    rec = {"id": aid, "kind": "red_code", "severity": "high", "status": status,
           "grid_id": "G0001", "station_id": None, "ts_raised": ts, "ts_updated": ts,
           "title": title or f"alert {aid}", "title_zh": f"告警 {aid}", "task_id": None,
           "escalation_level": 0, "details": {}, "audit": audit, "v": 1}
    r.set(keys.alert(aid), orjson.dumps(rec))
    r.zadd(keys.ALERTS_ALL, {aid: ts})


def seed(r: redis.Redis) -> None:
    t = DAY_START
    put(r, "al-before", t - 1, [entry("raise", None, "new", "system", "system", t - 1)])
    put(r, "al-1", t, [
        entry("raise", None, "new", "system", "system", t),
        entry("ack", "new", "acknowledged", "wang", "duty_officer", t + 60, "看到了"),
        entry("dispatch", "acknowledged", "dispatched", "wang", "duty_officer", t + 90,
              "=HYPERLINK(\"http://x\",\"click\")"),
        entry("close", "dispatched", "closed", "li", "duty_officer", DAY_END + 3600, "@SUM(A1)"),
    ], title="+cmd|' /C calc'!A0")
    put(r, "al-2", t + 7200, [], title="-2+3", status="new")
    put(r, "al-3", DAY_END - 0.5, [entry("raise", None, "new", "system", "system", DAY_END - 0.5,
                                         "line one\nline two, with \"quotes\"")])
    put(r, "al-after", DAY_END, [entry("raise", None, "new", "system", "system", DAY_END)])


def get(g: GatewayProcess, session: str | None, path: str, **query: str) -> tuple[int, Any, bytes]:
    url = f"{g.origin}{path}?{urllib.parse.urlencode(query)}"
    headers = {"Cookie": f"{SESSION_COOKIE}={session}"} if session else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as rep:
            return rep.status, rep.headers, rep.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def expected_rows(alerts: list[dict[str, Any]]) -> list[dict[str, str]]:
    """What the CSV must hold, from the JSON (one row per audit entry, formulas quoted)."""
    def cell(v: Any) -> str:
        text = "" if v is None else str(v)
        return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text

    rows = []
    for a in alerts:
        head = {"alert_id": a["id"], "status": a["status"], "grid_id": cell(a["grid_id"]),
                "raised_at": format_time(a["ts_raised"]), "title": cell(a["title"])}
        trail = a["audit"] or [None]
        for n, e in enumerate(trail, 1):
            rows.append({**head, "audit_n": str(n) if e else "",
                         "at": format_time(e["ts"]) if e else "",
                         "action": e["action"] if e else "", "actor": e["actor"] if e else "",
                         "role": e["role"] if e else "", "note": cell(e["note"]) if e else ""})
    return rows


def test_officers_export_the_period_as_json_and_as_the_same_csv(
        gw: tuple[GatewayProcess, redis.Redis], tmp_path: Path) -> None:  # noqa: F811
    g, r = gw
    seed(r)
    officer = session_for(g, r, User("o1", "duty_officer"))
    period = {"from": "2024-05-01T00:00:00+08:00", "to": "2024-05-02T00:00:00+08:00"}
    status, _, body = get(g, officer, "/api/alerts", **period)
    assert status == 200
    doc = orjson.loads(body)
    assert [a["id"] for a in doc["alerts"]] == ["al-1", "al-2", "al-3"]  # [from, to)
    assert doc["count"] == 3 and doc["from"] == format_time(DAY_START)
    # A bare date is the district's day (Asia/Shanghai): the same period.
    assert orjson.loads(get(g, officer, "/api/alerts", **{"from": "2024-05-01",
                                                          "to": "2024-05-02"})[2]) == doc

    status, headers, raw = get(g, officer, "/api/alerts.csv", **period)
    assert status == 200
    assert headers["Content-Type"] == "text/csv; charset=utf-8"
    assert headers["Content-Disposition"].startswith('attachment; filename="alerts-')
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["Cache-Control"] == "no-store"
    table = list(csv.DictReader(io.StringIO(raw.decode())))
    want = expected_rows(doc["alerts"])
    assert [{k: row[k] for k in want[0]} for row in table] == want
    assert len(table) == 4 + 1 + 1  # al-1's trail, al-2 without one, al-3's
    assert table[2]["note"] == "'=HYPERLINK(\"http://x\",\"click\")"
    assert table[3]["note"] == "'@SUM(A1)" and table[3]["at"] == format_time(DAY_END + 3600)
    assert table[0]["title"].startswith("'+cmd") and table[4]["title"] == "'-2+3"
    assert table[5]["note"] == "line one\nline two, with \"quotes\""
    for row in csv.reader(io.StringIO(raw.decode())):
        assert not [c for c in row if c[:1] in ("=", "+", "-", "@")], row

    # The CLI writes the same bytes, to a file or to stdout.
    out = tmp_path / "alerts.csv"
    cli = [sys.executable, "-m", "gridwatch.cli", "alerts", "export",
           "--from", period["from"], "--to", period["to"]]
    done = subprocess.run([*cli, "--out", str(out)], check=False, env=g.env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == raw
    assert b"3 alerts" in done.stderr
    assert subprocess.run(cli, check=False, env=g.env, capture_output=True, timeout=60).stdout == raw

    admin = session_for(g, r, User("ad1", "admin"))
    assert get(g, admin, "/api/alerts.csv", **period)[2] == raw


def test_only_officers_and_admins_export(gw: tuple[GatewayProcess, redis.Redis]) -> None:  # noqa: F811
    g, r = gw
    seed(r)
    period = {"from": "2024-05-01", "to": "2024-05-02"}
    worker = session_for(g, r, User("w0001", "grid_worker", grids=("G0001",)))
    manager = session_for(g, r, User("m1", "station_manager", stations=("SHS",)))
    for session in (worker, manager):
        for path in ("/api/alerts", "/api/alerts.csv"):
            status, _, body = get(g, session, path, **period)
            assert status == 403, (path, status)
            assert b"al-1" not in body
    assert get(g, None, "/api/alerts.csv", **period)[0] == 401


@pytest.mark.parametrize(("query", "says"), [
    ({"to": "2024-05-02"}, b"from is missing"),
    ({"from": "2024-05-01"}, b"to is missing"),
    ({"from": "yesterday", "to": "2024-05-02"}, b"'yesterday' is not a date or time"),
    ({"from": "2024-05-02", "to": "2024-05-01"}, b"must be after"),
    ({"from": "2024-05-01", "to": "2024-05-01"}, b"must be after"),
    ({"from": "2024-01-01", "to": "2024-03-01"}, b"longer than 31 days"),
])
def test_a_bad_period_is_a_clear_400(gw: tuple[GatewayProcess, redis.Redis],  # noqa: F811
                                     query: dict[str, str], says: bytes) -> None:
    g, r = gw
    officer = session_for(g, r, User("o1", "duty_officer"))
    for path in ("/api/alerts", "/api/alerts.csv"):
        status, _, body = get(g, officer, path, **query)
        assert status == 400 and body.startswith(b"bad period: ") and says in body, body
    cli = subprocess.run([sys.executable, "-m", "gridwatch.cli", "alerts", "export",
                          *[a for k, v in query.items() for a in (f"--{k}", v)]],
                         check=False, env=g.env, capture_output=True, timeout=60)
    assert cli.returncode != 0 and says in cli.stderr and not cli.stdout
