"""The officer's held alerts, silences, duty badge and export, in the browser.

A silence set from the silences panel holds a new alert of its grid out of the live
feed, and the alert comes back when the silence is ended from the panel; an alert
shelved from its row leaves the feed (the real worker applies each command, through the
gateway's command path). Over records written into Redis as the worker writes them: the
held chip counts and shows the held alerts, a "no one on duty" badge marks an alert
with ``needs_officer``, and the export link downloads the alerts ``/api/alerts`` counts.
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
import redis
from gridwatch.agents.loiter import loiter_alert_id
from gridwatch.schemas import commands as contract
from gridwatch.schemas.events import format_time
from gridwatch.streams.topics import CROWD_LOITER
from kafka import KafkaProducer
from playwright.sync_api import expect

from gridwatch import keys

from .conftest import wait_until
from .test_cockpit import point_in, stored
from .test_feed import g_page, make, rows, store_alerts

pytestmark = pytest.mark.browser
GRID = "G0001"


def test_a_silence_from_the_panel_holds_an_alert_and_shelving_takes_one_out(
        browser: Any, cockpit: Any) -> None:
    g, workers = cockpit
    s = workers.settings
    r = redis.Redis.from_url(s.redis)
    workers.start()
    page = g_page(browser, g, r)
    panel = page.locator("#silences")
    expect(panel.locator(".sil-list li.hint")).to_have_text("当前无静默")
    # The durations offered stop at the contract's longest silence.
    offered = [int(v) for v in panel.locator('select[name="for"] option').evaluate_all(
        "(os) => os.map((o) => o.value)")]
    assert max(offered) == contract.SILENCE_MAX_S and 3600 in offered

    # An empty reason is not sent: nothing is set.
    panel.locator('input[name="value"]').fill(GRID)
    panel.locator('button[type="submit"]').click()
    time.sleep(0.5)
    assert r.hlen(keys.SILENCES_ACTIVE) == 0

    panel.locator('select[name="match"]').select_option("grid")
    panel.locator('select[name="for"]').select_option("3600")
    panel.locator('input[name="reason"]').fill("camera maintenance")
    panel.locator('button[type="submit"]').click()
    row = panel.locator(".sil-list li[data-silence]")
    expect(row).to_have_count(1, timeout=15000)
    expect(row).to_contain_text(GRID)
    expect(row.locator(".left")).to_contain_text("剩余 0h59m")
    sid = row.get_attribute("data-silence")
    rec = stored(r, keys.silence(sid))
    assert rec and (rec["match"], rec["value"], rec["actor"]) == ("grid", GRID, "o1")
    assert rec["reason"] == "camera maintenance"
    assert rec["ends_at"] - rec["starts_at"] == 3600

    # A crowd in the silenced grid: stored silenced, never a row of the live feed.
    lon, lat = point_in(s.grids, GRID)
    now = time.time()
    report = {"event_id": f"cam-held-{int(now)}", "ts": format_time(now), "camera_id": "cam-held",
              "lon": lon, "lat": lat, "zone": "pharmacy:held", "people": 6, "dwell_s": 400}
    producer = KafkaProducer(bootstrap_servers=s.kafka, acks="all")
    producer.send(CROWD_LOITER, key=b"cam-held", value=orjson.dumps(report))
    producer.flush()
    producer.close()
    aid = loiter_alert_id("cam-held", "pharmacy:held", report["event_id"])
    wait_until(lambda: (stored(r, keys.alert(aid)) or {}).get("status") == "silenced",
               timeout=30, what="the alert held by the silence")
    expect(page.locator("#held")).to_have_attribute("data-count", "1", timeout=10000)
    expect(page.locator("#held")).to_have_text("暂缓：1")
    assert aid not in rows(page)
    panel.locator(".sil-list").get_by_text("已静默 1 条").wait_for(timeout=20000)

    # Ended from the panel: the alert is new again, back in the feed.
    row.locator("[data-end]").click()
    feed_row = page.locator(f'#alerts li[data-id="{aid}"]')
    expect(feed_row).to_have_class("alert sev-medium st-new", timeout=15000)
    expect(panel.locator(".sil-list li[data-silence]")).to_have_count(0, timeout=10000)
    expect(page.locator("#held")).to_have_attribute("data-count", "0")
    assert stored(r, keys.alert(aid))["audit"][-1]["actor"] == "o1"

    # Shelved from its row for 30 minutes: out of the live feed, held until then.
    feed_row.locator("[data-shelve]").click()
    dialog = page.locator("#shelve-dialog")
    expect(dialog).to_be_visible()
    dialog.locator('button[type="submit"]').click()  # no reason: the dialog stays
    expect(dialog).to_be_visible()
    dialog.locator('input[name="reason"]').fill("nuisance camera")
    dialog.locator('select[name="for"]').select_option("1800")
    dialog.locator('button[type="submit"]').click()
    expect(dialog).to_have_count(0)
    expect(feed_row).to_have_count(0, timeout=15000)
    shelved = stored(r, keys.alert(aid))
    last = shelved["audit"][-1]
    assert shelved["status"] == "shelved"
    assert (last["action"], last["actor"]) == ("shelve", "o1")
    assert last["note"].startswith("nuisance camera")
    assert shelved["held_until"] == pytest.approx(last["ts"] + 1800)
    # The held chip shows it (alone), and hides it again.
    page.click("#held")
    expect(feed_row).to_have_class("alert sev-medium st-shelved")
    page.click("#held")
    expect(feed_row).to_have_count(0)
    r.close()


def test_held_chip_duty_badge_and_export(browser: Any, gateway_only: Any) -> None:
    g, r, s = gateway_only
    off = "no grid worker of G0001 is on duty (w1 off duty since 08:00)"
    store_alerts(
        r,
        make("al-new", age_s=60),
        make("al-nd", age_s=120, status="acknowledged", needs_officer=off),
        replace(make("al-sil", age_s=30), status="silenced", silence_id="si-000000000001"),
        replace(make("al-shelf", age_s=40), status="shelved", held_until=time.time() + 600),
    )
    page = g_page(browser, g, r)
    expect(page.locator('#alerts li[data-id="al-new"]')).to_be_visible()
    assert sorted(rows(page)) == ["al-nd", "al-new"]
    held = page.locator("#held")
    expect(held).to_have_text("暂缓：2")
    held.click()
    expect(page.locator("#alerts li[data-id]")).to_have_count(2)
    assert sorted(rows(page)) == ["al-shelf", "al-sil"]
    held.click()
    expect(page.locator("#alerts li[data-id]")).to_have_count(2)
    assert sorted(rows(page)) == ["al-nd", "al-new"]

    # The duty badge, with the worker's words; a shelve button on new alerts only.
    badge = page.locator('#alerts li[data-id="al-nd"] .no-duty')
    expect(badge).to_have_text("无人值班")
    expect(badge).to_have_attribute("title", off)
    expect(page.locator('#alerts li[data-id="al-new"] .no-duty')).to_have_count(0)
    expect(page.locator('#alerts li[data-id="al-new"] [data-shelve]')).to_have_count(1)
    expect(page.locator('#alerts li[data-id="al-nd"] [data-shelve]')).to_have_count(0)
    page.click("#lang")
    expect(badge).to_have_text("No one on duty")
    expect(held).to_have_text("held: 2")

    # The export: today's alerts, the rows /api/alerts counts (one CSV line per audit entry).
    today = datetime.now(ZoneInfo(s.tz)).date()
    day, tomorrow = today.isoformat(), (today + timedelta(days=1)).isoformat()
    link = page.locator("#export")
    expect(link).to_have_attribute("href", f"/api/alerts.csv?from={day}&to={tomorrow}")
    with page.expect_download() as got:
        link.click()
    lines = list(csv.DictReader(io.StringIO(got.value.path().read_text(encoding="utf-8"))))
    listed = page.request.get(f"{g.origin}/api/alerts?from={day}&to={tomorrow}").json()
    assert listed["count"] == 4
    assert len({x["alert_id"] for x in lines}) == listed["count"]
    assert len(lines) == sum(max(1, len(a["audit"])) for a in listed["alerts"])
    # Another period: the link follows the dates chosen.
    page.fill("#x-from", "2024-03-01")
    page.fill("#x-to", "2024-03-02")
    expect(link).to_have_attribute("href", "/api/alerts.csv?from=2024-03-01&to=2024-03-03")
