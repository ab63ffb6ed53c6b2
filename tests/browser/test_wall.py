"""The wall's furniture: a running clock, the feed's health, counters with their window,
trend charts of the last 24 hours, the ten riskiest grids with their reason, and sound
that waits for a gesture, differs by severity and mutes.

A gateway without a worker, over records written into Redis as the worker writes them.
"""

from __future__ import annotations

import re
import time
from typing import Any

import orjson
import pytest
from gridwatch.streams.topics import CHECKPOINT_SCANS
from gridwatch.ws.auth import User
from playwright.sync_api import expect

from gridwatch import keys
from gridwatch.risk import load_risk_config, score_grid

from .test_cockpit import login
from .test_feed import WALL, announce, make, store_alerts

pytestmark = pytest.mark.browser
MARK = keys.partition_field(CHECKPOINT_SCANS, 0)


def chart(page: Any, el: str) -> dict[str, Any]:
    """An ECharts chart's series: name -> data."""
    return page.evaluate(f"""() => Object.fromEntries(echarts.getInstanceByDom(
      document.getElementById('{el}')).getOption().series.map((s) => [s.name, s.data]))""")


def test_clock_health_counters_and_trends(browser: Any, gateway_only: Any) -> None:
    g, r, _ = gateway_only
    now = time.time()
    hour = keys.hour_of(now)
    r.hset(keys.WATERMARKS, MARK, now - 5)
    r.sadd(keys.GRIDS_SEEN, "G0001", "G0002")
    r.hset(keys.grid_hour("G0001", hour), mapping={"scan:red:in": 4, "scan:green:in": 30})
    r.hset(keys.grid_hour("G0002", hour), mapping={"late:scan:red:out": 1})
    r.hset(keys.grid_hour("G0001", hour - 3), mapping={"scan:yellow:in": 7})
    store_alerts(r, make("al-1", kind="red_code", age_s=60),
                 make("al-2", kind="loiter", age_s=2 * 3600 + 60),
                 make("al-3", kind="loiter", age_s=120, status="closed"))
    page = browser.new_context(**WALL).new_page()
    login(page, r, g.origin, User("o1", "duty_officer"))

    clock = page.locator("#clock")
    expect(clock).to_have_text(re.compile(r"^\d\d:\d\d:\d\d$"))
    first = clock.inner_text()
    expect(clock).not_to_have_text(first, timeout=3000)  # it runs

    health = page.locator("#health")
    expect(health).to_have_attribute("data-state", "ok")
    expect(health).to_contain_text("数据正常")
    expect(health).to_contain_text("最新事件")
    r.hset(keys.WATERMARKS, MARK, now - 400)  # the newest event is 400 s old: stalled
    r.hset(keys.SUMMARY, "checkpoint_scans", 1)
    expect(health).to_have_attribute("data-state", "stalled", timeout=8000)
    expect(health).to_contain_text("数据中断")

    hour_counter = page.locator('[data-counter="alerts_last_hour"]')
    expect(hour_counter.locator(".window")).to_have_text("近 1 小时")
    expect(hour_counter.locator("b")).to_have_text("2")  # al-1 and al-3, not al-2

    expect(page.locator("#trends")).to_have_attribute("data-hours", "24")
    scans = chart(page, "trend-scans")
    assert scans["红码"][-1] == 5 and scans["绿码"][-1] == 30
    assert scans["黄码"][-4] == 7 and sum(scans["黄码"]) == 7
    kinds = chart(page, "trend-kinds")
    assert kinds["红码"][-1] == 1 and kinds["人员聚集"][-1] == 1 and kinds["人员聚集"][-3] == 1
    opened = chart(page, "trend-open")["未关闭告警"]
    assert opened[-1] == 2 and opened[-3] == 1  # al-3 closed within its hour
    assert "近 24 小时" in page.evaluate("""() => echarts.getInstanceByDom(
      document.getElementById('trend-scans')).getOption().title[0].text""")
    page.click("#lang")
    expect(health).to_contain_text("Feed stalled")
    assert "Red" in chart(page, "trend-scans")


def test_top_ten_grids_with_their_main_reason(browser: Any, gateway_only: Any) -> None:
    g, r, _ = gateway_only
    config = load_risk_config()
    for i in range(12):
        grid = f"G{i + 1:04d}"
        inputs = {"red_scans": 12 - i} if i % 2 == 0 else {"loiter_alerts": 12 - i}
        rec = {"grid_id": grid, **score_grid(inputs, config).to_dict()}
        r.set(keys.risk(grid), orjson.dumps(rec))
        r.zadd(keys.RISK_RANK, {grid: rec["score"]})
    page = browser.new_context(**WALL).new_page()
    login(page, r, g.origin, User("o1", "duty_officer"))
    items = page.locator("#top-grids li[data-grid]")
    expect(items).to_have_count(10)
    best = r.zrevrange(keys.RISK_RANK, 0, 0)[0].decode()
    assert items.first.get_attribute("data-grid") == best
    expect(page.locator(f'#top-grids li[data-grid="{best}"] .reason')).to_contain_text("红码扫码")
    expect(page.locator('#top-grids li[data-grid="G0002"] .reason')).to_contain_text("人员聚集滞留")
    page.click('#top-grids li[data-grid="G0002"]')  # opens the grid's panel
    expect(page.locator("#grid-detail h2")).to_contain_text("G0002")
    page.click("#lang")
    expect(page.locator('#top-grids li[data-grid="G0002"] .reason')).to_contain_text("loitering crowds")


def test_sound_waits_for_a_gesture_differs_by_severity_and_mutes(browser: Any,
                                                                 gateway_only: Any) -> None:
    g, r, _ = gateway_only
    page = browser.new_context(**WALL).new_page()
    login(page, r, g.origin, User("o1", "duty_officer"))
    wall = page.locator("#wall")
    expect(wall).to_have_attribute("data-sound", "off")
    expect(page.locator("#sound-on")).to_be_visible()
    page.wait_for_function("() => window.gridwatch.view.live")  # past the snapshot
    announce(r, make("al-before", severity="high"))
    expect(page.locator('#alerts li[data-id="al-before"]')).to_be_visible()

    page.click("#sound-on")
    expect(wall).to_have_attribute("data-sound", "on")
    expect(page.locator("#sound-on")).to_be_hidden()
    for aid, sev in (("al-h", "high"), ("al-m", "medium"), ("al-l", "low")):
        announce(r, make(aid, severity=sev))
    expect(page.locator('#alerts li[data-id="al-l"]')).to_be_visible()
    page.click("#mute")
    expect(wall).to_have_attribute("data-sound", "muted")
    announce(r, make("al-quiet", severity="high"))
    expect(page.locator('#alerts li[data-id="al-quiet"]')).to_be_visible()
    played = page.evaluate("() => window.gridwatch.view.sounds.played")
    assert [(p["severity"], p["heard"]) for p in played] == [
        ("high", False), ("high", True), ("medium", True), ("low", True), ("high", False)]
    # Each severity its own pattern, none silent.
    patterns = page.evaluate("""async () => (await import('/sound.js')).PATTERNS""")
    assert len({orjson.dumps(p) for p in patterns.values()}) == 3
    page.reload()  # sound is off again until a gesture, and the mute is kept
    expect(wall).to_have_attribute("data-sound", "off")
    page.click("#sound-on")
    expect(wall).to_have_attribute("data-sound", "muted")
    page.click("#mute")
    expect(wall).to_have_attribute("data-sound", "on")
