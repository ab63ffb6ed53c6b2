"""The three cockpit views in headless Chromium against the real system.

The closed loop runs end to end: the test stack's Kafka and Redis, a real ``gridwatch
worker`` process and the gateway. A simulated morning is sent to Kafka first, so the
map is coloured by real risk scores and the feed holds real alerts. Then a red-code
scan, published to Kafka with the current time, must appear on the duty officer's
screen within a second; the officer acknowledges and dispatches it, the grid worker
accepts, arrives and finishes the task, the officer sees the alert resolved and closes
it; a worker of another grid receives nothing of it. Every step goes through the UI
and the worker's command log, nothing is written into Redis by hand.
"""

from __future__ import annotations

import math
import re
import secrets
import sys
import time
from datetime import datetime, timedelta, timezone
from itertools import pairwise
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from gridwatch.agents.loiter import loiter_alert_id
from gridwatch.agents.rules import alert_id
from gridwatch.schemas.events import format_time
from gridwatch.streams.simulate import CST, CityDay, Simulator
from gridwatch.streams.topics import CHECKPOINT_SCANS, CROWD_LOITER
from gridwatch.ws import users
from gridwatch.ws.auth import User
from kafka import KafkaProducer
from playwright.sync_api import Page, expect
from shapely.geometry import shape

from gridwatch import keys, store
from gridwatch.city import load_city
from tests.integration.test_gateway import GatewayProcess

from .conftest import SCREENSHOTS, wait_until

pytestmark = pytest.mark.browser
CHINA = {"timezone_id": "Asia/Shanghai", "locale": "zh-CN"}  # the control room's clock
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, **CHINA}
MORNING_H = 9  # simulated hours, 00:00-09:00 of a simulated day, ending now
CITY = CityDay(scans=100_000, loiter_reports=4_000, people=40_000, red_share=0.004, yellow_share=0.01)


def login(page: Page, r: redis.Redis, origin: str, user: User) -> None:
    """Open a one-time login link, as a user does, confirm it, and wait for the view."""
    page.goto(f"{origin}/login?token={users.add_user(r, user)}")
    page.locator("#confirm").click()
    page.wait_for_url(f"{origin}/")
    expect(page.locator("#who")).to_contain_text(user.name)


def point_in(grids_path: str, grid_id: str) -> tuple[float, float]:
    doc = orjson.loads(Path(grids_path).read_bytes())
    feature = next(f for f in doc["features"] if f["properties"]["id"] == grid_id)
    p = shape(feature["geometry"]).representative_point()
    return round(p.x, 6), round(p.y, 6)


def simulate_morning(producer: KafkaProducer, city_path: str) -> int:
    """A simulated morning whose last event is now; returns how many events were sent."""
    start = datetime.now(CST) - timedelta(hours=MORNING_H)
    sim = Simulator(load_city(city_path), seed=11, start=start, profile=CITY)
    n = 0
    for _, topic, event in sim.stream(days=MORNING_H / 24):
        producer.send(topic.name, key=str(event[topic.key_field]).encode(),
                      value=orjson.dumps(event))
        n += 1
    producer.flush()
    return n


def applied(url: str) -> int:
    """Valid input events the worker has applied so far."""
    r = store.connect(url)
    try:
        s = store.summary(r)
    finally:
        r.close()
    return s["checkpoint_scans"] + s["loiter_reports"] + s["station_tickets"]


WATCH_ALERTS = """() => {
  // When each alert row first appears, on the page's own clock (epoch ms).
  window.seenAt = {};
  const list = document.getElementById('alerts');
  const note = () => list.querySelectorAll('li[data-id]').forEach((li) => {
    if (!(li.dataset.id in window.seenAt)) window.seenAt[li.dataset.id] = Date.now();
  });
  note();
  new MutationObserver(note).observe(list, { childList: true, subtree: true });
}"""


def record_frames(page: Page) -> list[str]:
    """Every WebSocket frame the page receives, as text."""
    frames: list[str] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(
        payload if isinstance(payload, str) else payload.decode(errors="replace"))))
    return frames


def map_drawn(page: Page) -> None:
    # Polled until true: the screen, the chart library or the chart's first option may
    # not be there yet, which is a "not yet", not an error.
    page.wait_for_function("""() => {
      const el = document.getElementById('map');
      const chart = el && window.echarts && echarts.getInstanceByDom(el);
      const option = chart && chart.getOption();
      const s = option && option.series;
      return Boolean(s && s.length && s[0].data && s[0].data.length > 0);
    }""")


def alert_status(page: Page, status: str, timeout: float = 15000) -> None:
    expect(page.locator(f'#alert-detail .info .status[data-status="{status}"]')).to_be_visible(
        timeout=timeout)


def officer_acts(page: Page, action: str, note: str = "") -> None:
    if note:
        page.fill("#note", note)
    page.click(f'#alert-detail button[data-action="{action}"]')


def stored(r: redis.Redis, key: str) -> dict[str, Any] | None:
    raw = r.get(key)
    return orjson.loads(raw) if raw else None


def test_closed_loop_from_kafka_to_every_screen(browser: Any, cockpit: Any,
                                                record_property: Any) -> None:
    g, workers = cockpit
    s = workers.settings
    r = redis.Redis.from_url(s.redis)
    workers.start()
    producer = KafkaProducer(bootstrap_servers=s.kafka, acks="all", linger_ms=5)

    # A morning of the simulated city, applied by the worker before anyone looks.
    sent = simulate_morning(producer, s.city)
    wait_until(lambda: applied(s.redis) >= sent, timeout=300, what=f"the worker to apply {sent} events")
    assert r.zcard(keys.ALERTS_OPEN) > 0

    officer = browser.new_context(viewport={"width": 1920, "height": 1080}, **CHINA).new_page()
    login(officer, r, g.origin, User("officer1", "duty_officer"))
    expect(officer.locator("#alerts li.alert").first).to_be_visible()
    map_drawn(officer)
    # Within a band the shade follows the score: a district that is all "general" still
    # shows where its risk gathers, and a higher score is never dimmer.
    scored = """() => echarts.getInstanceByDom(document.getElementById('map'))
      .getOption().series[0].data.filter((d) => d.value !== null)
      .map((d) => [d.value, d.itemStyle.areaColor])"""
    officer.wait_for_function(f"() => new Set(({scored})().map((d) => d[0])).size > 3",
                              timeout=30000)
    shades = officer.evaluate(scored)
    blues = sorted((score, float(colour.rsplit(",", 1)[1].rstrip(")")))
                   for score, colour in shades if colour.startswith("rgba(59,130,246,"))
    assert len({alpha for _, alpha in blues}) > 3, shades[:20]
    assert all(a <= b for (_, a), (_, b) in pairwise(blues))
    mine = browser.new_context(**PHONE).new_page()
    other = browser.new_context(**PHONE).new_page()
    other_frames = record_frames(other)
    login(mine, r, g.origin, User("w0001", "grid_worker", grids=("G0001",)))
    login(other, r, g.origin, User("w0002", "grid_worker", grids=("G0002",)))
    officer.evaluate(WATCH_ALERTS)
    officer.wait_for_timeout(1600)  # past the snapshot: what comes now is live

    # A red-code scan in grid G0001, sent to Kafka now.
    lon, lat = point_in(s.grids, "G0001")
    event_id = f"scan-e2e-{secrets.token_hex(6)}"
    scan = {"event_id": event_id, "ts": format_time(time.time()), "checkpoint_id": "cp-e2e-01",
            "lon": lon, "lat": lat, "person_ref": secrets.token_hex(10), "code_color": "red",
            "direction": "in", "last_negative_test_at": format_time(time.time() - 30 * 3600)}
    aid = alert_id("red_code", event_id)
    t_send = time.time()
    producer.send(CHECKPOINT_SCANS, key=scan["person_ref"].encode(), value=orjson.dumps(scan))
    producer.flush()
    row = officer.locator(f'#alerts li[data-id="{aid}"]')
    expect(row).to_be_visible(timeout=5000)
    latency = officer.evaluate(f"() => window.seenAt[{orjson.dumps(aid).decode()}]") / 1000 - t_send
    record_property("publish_to_screen_s", round(latency, 3))
    # A figure, not a pass mark (bench/bench_alert_latency.py measures it under load).
    print(f"\npublish -> officer's screen: {latency * 1000:.0f} ms", file=sys.stderr)
    expect(row).to_have_class("alert sev-high st-new")
    rec = stored(r, keys.alert(aid))
    assert rec and rec["grid_id"] == "G0001" and rec["kind"] == "red_code"

    # The officer acknowledges, then dispatches with a note.
    row.click()
    officer_acts(officer, "ack")
    alert_status(officer, "acknowledged")
    officer_acts(officer, "dispatch", "请网格员立即到卡口核查")
    alert_status(officer, "dispatched")
    tid = f"tk-{aid}-1"

    # The grid worker of G0001 gets the task, titled by its alert.
    card = mine.locator(f'li.task[data-id="{tid}"]')
    expect(card).to_be_visible(timeout=5000)
    expect(card).to_contain_text(rec["title_zh"])
    expect(card).to_contain_text("请网格员立即到卡口核查")
    card.locator('button[data-action="accept"]').click()
    wait_until(lambda: (stored(r, keys.task(tid)) or {}).get("status") == "accepted",
               timeout=10, what="the task to be accepted")
    expect(card.locator(".status")).to_have_text("已接单")
    card.locator('button[data-action="arrive"]').click()
    wait_until(lambda: (stored(r, keys.task(tid)) or {}).get("status") == "on_site",
               timeout=10, what="the worker to be on site")
    expect(card.locator('button[data-action="done"]')).to_be_visible()
    card.locator('button[data-action="done"]').click()
    card.locator("#text").fill("已核查，人员已按规定转运，卡口已消杀")
    card.locator('button[data-send="done"]').click()
    expect(card.locator(".status")).to_have_text("已完成", timeout=10000)

    # The officer sees the alert resolved (by the task) and closes it.
    alert_status(officer, "resolved")
    expect(officer.locator("#alert-detail .task-note")).to_contain_text("卡口已消杀")
    officer_acts(officer, "close")
    alert_status(officer, "closed")
    expect(row).to_have_class(re.compile(r"\bst-closed\b"))
    assert stored(r, keys.alert(aid))["status"] == "closed"  # type: ignore[index]

    # A second alert, a crowd outside a pharmacy in the same grid, dispatched again:
    # the worker's phone shows a new task above the finished one.
    report = {"event_id": f"cam-e2e-{secrets.token_hex(6)}", "ts": format_time(time.time()),
              "camera_id": "cam-e2e-01", "lon": lon, "lat": lat, "zone": "pharmacy:e2e",
              "people": 7, "dwell_s": 420}
    lid = loiter_alert_id(report["camera_id"], report["zone"], report["event_id"])
    producer.send(CROWD_LOITER, key=report["camera_id"].encode(), value=orjson.dumps(report))
    producer.flush()
    officer.locator(f'#alerts li[data-id="{lid}"]').click(timeout=5000)
    officer_acts(officer, "ack")
    alert_status(officer, "acknowledged")
    officer_acts(officer, "dispatch", "药店门口聚集，请现场劝导")
    alert_status(officer, "dispatched")
    expect(mine.locator(f'li.task[data-id="tk-{lid}-1"]')).to_be_visible(timeout=5000)
    expect(mine.locator("li.task")).to_have_count(2)
    assert mine.locator("li.task").first.get_attribute("data-id") == f"tk-{lid}-1"  # newest first

    # The worker of another grid received nothing of either.
    other.wait_for_timeout(500)
    expect(other.locator("li.task")).to_have_count(0)
    for secret in (aid, tid, lid, rec["title_zh"]):
        assert secret not in other.content()
        assert not [f for f in other_frames if secret in f]
    assert other_frames, "the other worker's page never got a frame"

    # The officer's grid panel explains G0001's colour in words, not indicator keys.
    officer.evaluate("() => window.gridwatch.view.selectGrid('G0001')")
    contrib = officer.locator("#grid-detail .contrib li")
    expect(contrib).to_have_count(9)
    expect(officer.locator('#grid-detail .contrib li[data-indicator="red_scans"]')).to_contain_text("红码扫码")
    assert "red_scans" not in officer.locator("#grid-detail").inner_text()

    # The phone's screenshot (the wall's: tests/browser/test_story.py, at the demo's peak).
    mine.evaluate("() => document.getElementById('toast').hidden = true")
    mine.wait_for_timeout(300)
    mine.screenshot(path=str(SCREENSHOTS / "worker.png"))

    # The banner shows a cut and a resume.
    officer.evaluate("() => window.gridwatch.link.ws.close()")
    expect(officer.locator("#banner")).to_have_attribute("data-state", "down")
    expect(officer.locator("#banner")).to_have_attribute("data-state", "resumed", timeout=10000)
    producer.close()
    r.close()


def test_station_manager_chart(browser: Any, gateway_only: Any) -> None:
    """The station view draws a forecast record (a hand-made one: this test is about the
    drawing; the refresher's own records: tests/integration/test_forecast_live.py)."""
    g, r, _ = gateway_only
    origin = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    hours = [origin + timedelta(hours=h) for h in range(24)]
    local = [h.astimezone(CST).hour for h in hours]
    yhat = [round(60 + 420 * math.exp(-((lh - 9.5) / 1.3) ** 2)
                  + 380 * math.exp(-((lh - 12.5) / 1.2) ** 2) + 90 * math.exp(-((lh - 18) / 2) ** 2), 1)
            for lh in local]
    total = sum(yhat)
    top = sorted(range(24), key=lambda i: -yhat[i])[:4]
    # As the refresher writes them: on the station's clock (+08:00).
    stamps = [h.astimezone(CST).isoformat() for h in hours]
    fc = {"station_id": "SHS", "origin": origin.astimezone(CST).isoformat(), "hours": stamps,
          "yhat": yhat, "lo80": [y * 0.85 for y in yhat], "hi80": [y * 1.15 for y in yhat],
          "lo95": [y * 0.75 for y in yhat], "hi95": [y * 1.27 for y in yhat],
          "booked": [round(y * 0.7) for y in yhat],
          "arrived": [round(y * 1.05) if i < 5 else None for i, y in enumerate(yhat)],
          "peaks": [{"hour": stamps[i], "yhat": yhat[i], "share": yhat[i] / total,
                     "hint": "add staff"} for i in top],
          "method": "seasonal", "notes": [],
          "holidays": [{"day": "2025-01-27", "holiday": "Spring Festival", "offset": -2,
                        "factor": 0.64}], "workdays": ["2025-01-26"]}
    r.set(keys.forecast("SHS"), orjson.dumps(fc))
    # A screen on another clock (UTC) still shows the station's hours.
    page = browser.new_context(viewport={"width": 1600, "height": 900},
                               timezone_id="UTC").new_page()
    login(page, r, g.origin, User("m1", "station_manager", stations=("SHS",)))
    expect(page.locator("#peaks tr")).to_have_count(6)
    first = local[top[0]]
    expect(page.locator("#peaks tr").nth(1).locator("td").first).to_have_text(
        f"{first:02d}:00–{(first + 1) % 24:02d}:00")
    # The forecast's hours follow the hours of arrivals before it, each with its date.
    # (A chart without its first option yet is waited for, not an error.)
    page.wait_for_function("""() => {
      const c = echarts.getInstanceByDom(document.querySelector('#chart'));
      const o = c && c.getOption();
      return !!(o && o.xAxis && o.xAxis[0].data.length > 24);
    }""")
    labels = page.evaluate("""() => echarts.getInstanceByDom(document.querySelector('#chart'))
      .getOption().xAxis[0].data""")
    days = [h.astimezone(CST).strftime("%m-%d") for h in hours]
    assert labels[-24:] == [f"{d} {h:02d}:00" for d, h in zip(days, local)]
    # The days past years call odd are named, in the user's language, and the weekend
    # days worked in place of a weekday off.
    expect(page.locator("#holidays li")).to_have_text(["01-27 春节 前 2 天：往年同期约为平日的 0.64 倍",
                                                       "01-26 调休上班：按工作日预测"])
    page.click("#lang")
    expect(page.locator("#peaks")).to_contain_text("Share of day")
    expect(page.locator("#holidays li")).to_have_text(
        ["01-27 (Spring Festival 2 d before): past years put the day at 0.64x a usual one",
         "01-26: a weekend day worked in place of a weekday off, forecast as a working day"])
    # No screenshot from here: a hand-made record is not real data.


def test_no_valid_token_is_refused(browser: Any, gateway_only: Any) -> None:
    g, r, _ = gateway_only
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
    assert page.request.get(f"{g.origin}/api/risk/G0001").status == 401
    # Opening a link (a chat app's preview does) spends nothing; its button's POST does,
    # once.
    token = users.add_user(r, User("o9", "duty_officer"))
    assert page.request.get(f"{g.origin}/login?token={token}").status == 200
    assert page.request.get(f"{g.origin}/login?token={token}").status == 200
    assert page.request.post(f"{g.origin}/login", form={"token": token}).status == 200
    assert page.request.post(f"{g.origin}/login", form={"token": token}).status == 401
    assert page.request.get(f"{g.origin}/login?token={token}").status == 401


def test_a_role_change_reloads_the_open_cockpit_into_the_new_view(
        browser: Any, stack_settings: Any, tmp_path: Path) -> None:
    """The gateway closes the socket of a user whose rights changed (4403); the page
    loads again and shows the view of the new role; a removed user is sent to sign in."""
    r = redis.Redis.from_url(stack_settings.redis)
    r.flushdb()
    g = GatewayProcess(stack_settings, tmp_path)
    g.env["GRIDWATCH_SESSION_RECHECK"] = "0.5"
    g.start()
    try:
        page = browser.new_page()
        login(page, r, g.origin, User("o1", "duty_officer"))
        expect(page.locator("body")).to_have_attribute("data-role", "duty_officer")
        users.add_user(r, User("o1", "station_manager", stations=("SHS",)))
        expect(page.locator("body")).to_have_attribute("data-role", "station_manager",
                                                       timeout=15_000)
        page.wait_for_function("() => window.gridwatch && window.gridwatch.link.online()")
        users.remove_user(r, "o1")
        page.wait_for_function("() => !window.gridwatch.link.online()", timeout=15_000)
        page.reload()
        page.wait_for_url(f"{g.origin}/signin.html")
    finally:
        g.stop()
        r.close()
