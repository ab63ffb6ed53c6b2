"""The duty officer's feed: an escalation raises its own row, incidents are one row
acknowledged together, the order is what needs a human now, and every filter narrows it.

The escalation, order and filter tests write alert records into Redis (and their
changes into the alerts channel, as the worker does) for a gateway without a worker:
they are about the screen. The incident test runs the whole system: loiter reports to
Kafka, the real worker, the officer's one click through the gateway's command path.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import orjson
import pytest
from gridwatch.agents import lifecycle as lc
from gridwatch.agents.decide import incident_id
from gridwatch.agents.loiter import loiter_alert_id
from gridwatch.schemas.events import format_time
from gridwatch.schemas.records import Alert
from gridwatch.streams.topics import CROWD_LOITER
from gridwatch.ws.auth import User
from kafka import KafkaProducer
from playwright.sync_api import Page, expect

from gridwatch import keys
from gridwatch.city import load_grids

from .conftest import wait_until
from .test_cockpit import CHINA, login, point_in, stored

pytestmark = pytest.mark.browser
WALL = {"viewport": {"width": 1920, "height": 1080}, **CHINA}
NOW = time.time()


def make(aid: str, *, severity: str = "medium", kind: str = "loiter", grid: str = "G0001",
         age_s: float = 60, status: str = "new", level: int = 0, **more: Any) -> Alert:
    a = lc.raise_alert(id=aid, kind=kind, severity=severity, grid_id=grid, ts=NOW - age_s,
                       title=f"alert {aid}", title_zh=f"告警 {aid}")
    if status != "new":
        a = lc.ack(a, actor="li", role="duty_officer", ts=NOW - age_s + 1)
    if status in ("closed", "dismissed"):
        a = replace(a, status=status)
    return replace(a, escalation_level=level, **more)


def store_alerts(r: Any, *alerts: Alert) -> None:
    """As the worker stores them: the record and the indexes the snapshot reads."""
    for a in alerts:
        r.set(keys.alert(a.id), orjson.dumps(a.to_dict()))
        r.zadd(keys.ALERTS_ALL, {a.id: a.ts_raised})
        if a.status not in ("closed", "dismissed"):
            r.zadd(keys.ALERTS_OPEN, {a.id: a.ts_raised})


def announce(r: Any, a: Alert) -> None:
    """A changed alert on the alerts channel, as the worker announces it."""
    store_alerts(r, a)
    r.xadd(keys.CHAN_ALERTS, {"d": b'{"type":"alert","alert":' + orjson.dumps(a.to_dict()) + b"}"})


def rows(page: Page) -> list[str]:
    """The feed's top-level rows: alert ids, or ``incident:<id>``."""
    return page.evaluate("""() => [...document.querySelectorAll('#alerts > li')]
      .map((li) => li.dataset.id || (li.dataset.incident ? 'incident:' + li.dataset.incident : 'hint'))""")


def test_an_escalation_raises_its_own_row_and_adds_none(browser: Any, gateway_only: Any) -> None:
    g, r, _ = gateway_only
    quiet = make("al-quiet", severity="medium", age_s=600)
    loud = make("al-loud", severity="high", age_s=60)
    about = make("al-about", severity="low", age_s=900)
    # A separate escalation alert stored before escalations raised the alert they are
    # about: its level shows on that alert, and it is no row of its own.
    old = make("es-ack-1-al-about", kind="escalation", severity="low", age_s=300, level=1,
               source_ids={"alert_id": "al-about"})
    store_alerts(r, quiet, loud, about, old)
    page = g_page(browser, g, r)
    expect(page.locator('#alerts li[data-id="al-loud"]')).to_be_visible()
    assert rows(page) == ["al-about", "al-loud", "al-quiet"]
    expect(page.locator('#alerts li[data-id="al-about"] .esc')).to_have_text("升级 L1")
    page.click("#sound-on")
    expect(page.locator("#wall")).to_have_attribute("data-sound", "on")
    page.wait_for_function("() => window.gridwatch.view.live")  # past the snapshot

    # The worker raises al-quiet to level 2 (it writes the same alert again).
    announce(r, replace(quiet, escalation_level=2, escalated_at=NOW, ts_updated=NOW + 1))
    row = page.locator('#alerts li[data-id="al-quiet"]')
    expect(row.locator(".esc")).to_have_text("升级 L2")
    expect(row).to_have_class("alert sev-medium st-new escalated")
    assert rows(page) == ["al-quiet", "al-about", "al-loud"]  # moved up, nothing added
    expect(page.locator("#alerts li[data-id]")).to_have_count(3)
    played = page.evaluate("() => window.gridwatch.view.sounds.played")
    assert [(p["severity"], p["escalated"], p["heard"]) for p in played] == [("medium", True, True)]
    # Acknowledged, it drops below the unacknowledged ones and keeps its level shown.
    announce(r, replace(lc.ack(quiet, actor="li", role="duty_officer", ts=NOW + 2),
                        escalation_level=2))
    expect(row).to_have_class("alert sev-medium st-acknowledged")
    assert rows(page) == ["al-about", "al-loud", "al-quiet"]
    expect(row.locator(".esc")).to_have_text("升级 L2")


def g_page(browser: Any, g: Any, r: Any, name: str = "o1") -> Page:
    page = browser.new_context(**WALL).new_page()
    login(page, r, g.origin, User(name, "duty_officer"))
    return page


def test_the_feed_is_ordered_by_need_and_each_filter_narrows_it(browser: Any,
                                                                 gateway_only: Any) -> None:
    g, r, s = gateway_only
    grids = {x.id: x for x in load_grids(s.grids)}
    a, b = "G0001", next(x for x in grids if grids[x].street != grids["G0001"].street)
    store_alerts(
        r,
        make("al-low-new", severity="low", age_s=30, grid=a),
        make("al-high-old", severity="high", age_s=3000, grid=b, kind="red_code"),
        make("al-high-new", severity="high", age_s=100, grid=a, kind="red_code"),
        make("al-esc", severity="low", age_s=4000, grid=b, level=1),
        make("al-acked-high", severity="high", age_s=10, grid=a, status="acknowledged"),
        make("al-acked-low", severity="low", age_s=5, grid=b, status="acknowledged"),
    )
    r.zadd(keys.ALERTS_OPEN, {"al-closed": NOW})  # a closed one arrives live below
    page = g_page(browser, g, r)
    expect(page.locator('#alerts li[data-id="al-esc"]')).to_be_visible()
    order = ["al-esc", "al-high-new", "al-high-old", "al-low-new", "al-acked-high",
             "al-acked-low"]
    assert rows(page) == order
    page.wait_for_function("() => window.gridwatch.view.live")  # past the snapshot
    announce(r, make("al-closed", severity="high", age_s=1, grid=a, status="closed"))
    expect(page.locator('#alerts li[data-id="al-closed"]')).to_be_visible()
    assert rows(page) == [*order, "al-closed"]

    def shown() -> set[str]:
        return set(rows(page))

    page.select_option("#f-kind", "red_code")
    expect(page.locator("#alerts li[data-id]")).to_have_count(2)
    assert shown() == {"al-high-old", "al-high-new"}
    page.select_option("#f-kind", "")
    page.select_option("#f-status", "new")
    expect(page.locator("#alerts li[data-id]")).to_have_count(4)
    assert shown() == {"al-esc", "al-high-new", "al-high-old", "al-low-new"}
    page.select_option("#f-status", "open")
    expect(page.locator("#alerts li[data-id]")).to_have_count(6)
    assert "al-closed" not in shown()
    page.select_option("#f-status", "acknowledged")
    expect(page.locator("#alerts li[data-id]")).to_have_count(2)
    page.select_option("#f-status", "")
    page.select_option("#f-street", grids[b].street)
    expect(page.locator("#alerts li[data-id]")).to_have_count(3)
    assert shown() == {"al-esc", "al-high-old", "al-acked-low"}
    page.select_option("#f-street", "")
    # A grid from its panel: only its alerts, until the chip is clicked away.
    page.evaluate(f"() => window.gridwatch.view.selectGrid('{a}')")
    page.click("#grid-detail [data-filter-grid]")
    expect(page.locator("#f-grid")).to_be_visible()
    expect(page.locator("#alerts li[data-id]")).to_have_count(4)
    assert shown() == {"al-low-new", "al-high-new", "al-acked-high", "al-closed"}
    page.click("#f-grid")
    expect(page.locator("#alerts li[data-id]")).to_have_count(7)
    # Search by grid id, then by the grid's Chinese name.
    page.fill("#f-q", b.lower())
    expect(page.locator("#alerts li[data-id]")).to_have_count(3)
    page.fill("#f-q", grids[a].name_zh)
    expect(page.locator("#alerts li[data-id]")).to_have_count(4)
    assert shown() == {"al-low-new", "al-high-new", "al-acked-high", "al-closed"}
    page.fill("#f-q", "no such grid")
    expect(page.locator("#alerts li.hint")).to_be_visible()
    page.fill("#f-q", "")
    page.click("#lang")
    expect(page.locator("#f-kind option").first).to_have_text("All kinds")
    expect(page.locator('#f-kind option[value="red_code"]')).to_have_text("Red code")


def test_an_incident_is_one_row_that_expands_and_is_acknowledged_together(
        browser: Any, cockpit: Any) -> None:
    g, workers = cockpit
    s = workers.settings
    r = __import__("redis").Redis.from_url(s.redis)
    workers.start()
    page = g_page(browser, g, r)
    expect(page.locator("#alerts li.hint")).to_be_visible()
    # Three crowds in one grid within one 10-minute window: one incident.
    lon, lat = point_in(s.grids, "G0001")
    start = int(time.time() // 600) * 600
    producer = KafkaProducer(bootstrap_servers=s.kafka, acks="all")
    ids = []
    for n in range(3):
        report = {"event_id": f"cam-inc-{n}-{int(start)}", "ts": format_time(start + 1 + n),
                  "camera_id": f"cam-inc-{n}", "lon": lon, "lat": lat, "zone": f"pharmacy:{n}",
                  "people": 6, "dwell_s": 400}
        producer.send(CROWD_LOITER, key=report["camera_id"].encode(), value=orjson.dumps(report))
        ids.append(loiter_alert_id(report["camera_id"], report["zone"], report["event_id"]))
    producer.flush()
    producer.close()
    incident = incident_id("G0001", start // 600)
    row = page.locator(f'#alerts li[data-incident="{incident}"]')
    expect(row).to_be_visible(timeout=30000)
    expect(row).to_contain_text("3 条告警合并")
    expect(page.locator("#alerts li[data-id]")).to_have_count(0)  # inside, folded
    row.locator("[data-expand]").click()
    expect(row.locator("li[data-id]")).to_have_count(3)
    assert {row.locator("li[data-id]").nth(i).get_attribute("data-id") for i in range(3)} == set(ids)
    row.locator("[data-incident-ack]").click()
    expect(row.locator("li.st-acknowledged")).to_have_count(3, timeout=15000)
    expect(row.locator("[data-incident-ack]")).to_have_count(0)
    for aid in ids:
        rec = stored(r, keys.alert(aid))
        assert rec and rec["status"] == "acknowledged"
        assert rec["audit"][-1]["actor"] == "o1"
        assert rec["audit"][-1]["note"] == f"incident {incident}"
    # Collapsed again, the row stays one row.
    row.locator("[data-expand]").click()
    expect(row.locator("li[data-id]")).to_have_count(0)
    wait_until(lambda: len(rows(page)) == 1, timeout=5, what="one row")
    r.close()
