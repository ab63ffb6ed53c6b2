"""The three cockpit views in headless Chromium against a real gateway, Redis and Kafka.

Each role logs in through a one-time link. The worker side is simulated by writing the
records and channel entries it would write; the officer's dispatch is asserted on the
``gridwatch.commands`` topic. When the worker applies commands, the same test can go on
to wait for the task on the grid worker's page (see ``WORKER_APPLIES_COMMANDS``).
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
import redis
from conftest import SCREENSHOTS
from gridwatch.streams.topics import COMMANDS
from gridwatch.ws.auth import User
from kafka import KafkaConsumer, TopicPartition
from playwright.sync_api import Page, expect

from gridwatch import keys, users

pytestmark = pytest.mark.browser
WORKER_APPLIES_COMMANDS = False  # the worker's command agent is not in yet


def publish(r: redis.Redis, channel: str, msg: dict[str, Any]) -> str:
    return r.xadd(channel, {"d": orjson.dumps(msg)}, maxlen=keys.CHAN_MAXLEN).decode()


def alert(r: redis.Redis, aid: str, grid: str, severity: str = "high", age_s: float = 0) -> dict:
    now = time.time() - age_s
    rec = {"id": aid, "kind": "loiter", "severity": severity, "status": "new", "grid_id": grid,
           "station_id": None, "ts_raised": now, "ts_updated": now,
           "title": f"People lingering outside pharmacy ({grid})",
           "title_zh": f"药店门口人员聚集（{grid}）", "source_ids": {}, "details": {},
           "incident_id": None, "escalation_level": 0, "audit": [], "handover": [],
           "task_id": None, "v": 1}
    r.set(keys.alert(aid), orjson.dumps(rec))
    r.zadd(keys.ALERTS_OPEN, {aid: now})
    r.zadd(keys.alerts_by_grid(grid), {aid: now})
    publish(r, keys.CHAN_ALERTS, {"type": "alert", "alert": rec})
    return rec


def task(r: redis.Redis, tid: str, alert_rec: dict, worker: str) -> dict:
    now = time.time()
    rec = {"id": tid, "alert_id": alert_rec["id"], "grid_id": alert_rec["grid_id"],
           "workers": [worker], "status": "offered", "assignee": None, "ts_created": now,
           "ts_updated": now, "due_at": now + 7200, "note": "请核查药店门口聚集情况", "audit": [],
           "v": 1}
    r.set(keys.task(tid), orjson.dumps(rec))
    r.zadd(keys.tasks_by_worker(worker), {tid: now})
    publish(r, keys.CHAN_TASKS, {"type": "task", "task": rec})
    return rec


def risk(r: redis.Redis, n: int = 800) -> None:
    """A believable risk map: a few red and yellow grids, most blue, some without data."""
    for i in range(1, n + 1):
        if i % 9 == 0:
            continue  # no data yet: grey
        score = 15 + 70 * abs(math.sin(i * 0.37)) ** 3
        band = "red" if score >= 60 else "yellow" if score >= 40 else "blue"
        rec = {"grid_id": f"G{i:04d}", "score": round(score, 1), "band": band, "ts": time.time(),
               "contributions": {"red_scans": {"raw": 3, "normalised": 0.6, "weight": 20,
                                               "points": round(score * 0.5, 1)},
                                 "loiter_alerts": {"raw": 2, "normalised": 0.4, "weight": 15,
                                                   "points": round(score * 0.3, 1)},
                                 "open_tasks": {"raw": 1, "normalised": 0.2, "weight": 10,
                                                "points": round(score * 0.2, 1)}}}
        r.set(keys.risk(rec["grid_id"]), orjson.dumps(rec))
    r.hset(keys.SUMMARY, mapping={"checkpoint_scans": 431_220, "loiter_reports": 1_312,
                                  "station_tickets": 5_048, "unassigned": 37, "late": 12,
                                  "deadletter": 3})


def login(page: Page, r: redis.Redis, g: Any, user: User) -> None:
    page.goto(f"{g.origin}/login?token={users.add_user(r, user)}")
    page.wait_for_url(f"{g.origin}/")
    expect(page.locator("#who")).to_contain_text(user.name)


def commands_consumer(s: Any) -> KafkaConsumer:
    consumer = KafkaConsumer(bootstrap_servers=s.kafka, enable_auto_commit=False,
                             consumer_timeout_ms=500)
    parts = [TopicPartition(COMMANDS, p) for p in consumer.partitions_for_topic(COMMANDS) or ()]
    consumer.assign(parts)
    consumer.seek_to_end(*parts)
    for p in parts:
        consumer.position(p)  # resolve the end now, before the command is produced
    return consumer


def wait_command(consumer: KafkaConsumer, target_id: str, timeout: float = 15) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for rec in consumer:
            cmd = orjson.loads(rec.value)
            if cmd["id"] == target_id:
                assert rec.key == target_id.encode()
                return cmd
    raise AssertionError(f"no command for {target_id} on {COMMANDS}")


def test_officer_sees_alert_within_a_second_and_dispatches(browser: Any, cockpit: Any) -> None:
    g, r, s = cockpit
    risk(r)
    for i, sev in enumerate(["medium", "low", "high", "medium", "low"]):
        alert(r, f"old{i}", f"G{10 + 37 * i:04d}", sev, age_s=600 * (i + 1))
    page = browser.new_page(viewport={"width": 1920, "height": 1080})
    login(page, r, g, User("officer1", "duty_officer"))
    expect(page.locator("#alerts li.alert")).to_have_count(5)
    consumer = commands_consumer(s)
    page.wait_for_timeout(1600)  # past the snapshot: the new alert counts as live

    alert(r, "a-live", "G0001")
    t0 = time.monotonic()
    row = page.locator('#alerts li[data-id="a-live"]')
    expect(row).to_be_visible(timeout=1000)
    assert time.monotonic() - t0 < 1.0
    expect(row).to_have_class("alert sev-high st-new")

    row.click()
    page.fill("#note", "请网格员立即核查")
    page.click('#alert-detail button[data-action="dispatch"]')
    cmd = wait_command(consumer, "a-live")
    assert cmd == {**cmd, "target": "alert", "action": "dispatch", "actor": "officer1",
                   "role": "duty_officer", "note": "请网格员立即核查", "v": 1}
    expect(page.locator("#toast")).to_be_visible()
    page.evaluate("() => window.gridwatch.view.selectGrid('G0003')")
    expect(page.locator("#grid-detail .contrib li")).to_have_count(3)
    page.evaluate("() => document.getElementById('toast').hidden = true")
    page.wait_for_timeout(800)  # the map draws after the GeoJSON arrives
    page.screenshot(path=str(SCREENSHOTS / "officer.png"))

    # The banner shows a cut and a resume.
    page.evaluate("() => window.gridwatch.link.ws.close()")
    expect(page.locator("#banner")).to_have_attribute("data-state", "down")
    expect(page.locator("#banner")).to_have_attribute("data-state", "resumed", timeout=10000)


def test_worker_sees_own_task_other_worker_nothing(browser: Any, cockpit: Any) -> None:
    g, r, s = cockpit
    phone = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
    mine = browser.new_context(**phone).new_page()
    other = browser.new_context(**phone).new_page()
    login(mine, r, g, User("w0001", "grid_worker", grids=("G0001",)))
    login(other, r, g, User("w0002", "grid_worker", grids=("G0002",)))
    rec = alert(r, "a1", "G0001")
    task(r, "tk-a1-1", rec, "w0001")
    card = mine.locator('li.task[data-id="tk-a1-1"]')
    expect(card).to_be_visible(timeout=2000)
    expect(card).to_contain_text("药店门口人员聚集")
    consumer = commands_consumer(s)
    card.locator('button[data-action="accept"]').click()
    cmd = wait_command(consumer, "tk-a1-1")
    assert cmd["action"] == "accept" and cmd["actor"] == "w0001" and cmd["grids"] == ["G0001"]
    rec2 = alert(r, "a2", "G0001", "medium", age_s=1200)
    task(r, "tk-a2-1", rec2, "w0001")
    expect(mine.locator("li.task")).to_have_count(2)
    mine.wait_for_timeout(300)
    mine.evaluate("() => document.getElementById('toast').hidden = true")
    mine.screenshot(path=str(SCREENSHOTS / "worker.png"))

    other.wait_for_timeout(500)
    expect(other.locator("li.task")).to_have_count(0)
    assert "tk-a1-1" not in other.content()
    if WORKER_APPLIES_COMMANDS:
        expect(card).to_contain_text("已接单", timeout=10000)


def test_station_manager_chart(browser: Any, cockpit: Any) -> None:
    g, r, s = cockpit
    origin = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    hours = [origin + timedelta(hours=h) for h in range(24)]
    local = [(h.astimezone().hour) for h in hours]
    yhat = [round(60 + 420 * math.exp(-((lh - 9.5) / 1.3) ** 2)
                  + 380 * math.exp(-((lh - 12.5) / 1.2) ** 2) + 90 * math.exp(-((lh - 18) / 2) ** 2), 1)
            for lh in local]
    total = sum(yhat)
    top = sorted(range(24), key=lambda i: -yhat[i])[:4]
    fc = {"station_id": "SHS", "origin": origin.isoformat(), "hours": [h.isoformat() for h in hours],
          "yhat": yhat, "lo80": [y * 0.85 for y in yhat], "hi80": [y * 1.15 for y in yhat],
          "lo95": [y * 0.75 for y in yhat], "hi95": [y * 1.27 for y in yhat],
          "booked": [round(y * 0.7) for y in yhat],
          "arrived": [round(y * 1.05) if i < 5 else None for i, y in enumerate(yhat)],
          "peaks": [{"hour": hours[i].isoformat(), "yhat": yhat[i], "share": yhat[i] / total,
                     "hint": "add staff"} for i in top],
          "method": "seasonal", "notes": []}
    r.set(keys.forecast("SHS"), orjson.dumps(fc))
    page = browser.new_page(viewport={"width": 1600, "height": 900})
    login(page, r, g, User("m1", "station_manager", stations=("SHS",)))
    expect(page.locator("#peaks tr")).to_have_count(6)
    page.wait_for_timeout(500)
    page.screenshot(path=str(SCREENSHOTS / "station.png"))
    page.click("#lang")
    expect(page.locator("#peaks")).to_contain_text("Share of day")


def test_no_valid_token_is_refused(browser: Any, cockpit: Any) -> None:
    g, r, s = cockpit
    page = browser.new_page()
    reply = page.goto(f"{g.origin}/login?token=forged.secret")
    assert reply is not None and reply.status == 401
    page.goto(f"{g.origin}/")
    page.wait_for_url(f"{g.origin}/signin.html")
    code = page.evaluate("""() => new Promise((done) => {
        const ws = new WebSocket(`ws://${location.host}/ws`);
        ws.onopen = () => done('open');
        ws.onclose = (ev) => done(ev.code);
    })""")
    assert code == 1006  # refused during the handshake (HTTP 401)
    api = page.request.get(f"{g.origin}/api/me")
    assert api.status == 401
