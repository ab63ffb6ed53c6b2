"""The grid worker's phone (390x844) against a real gateway: my grids with their band,
score and open alerts on a small map of my grids only; each task with its place (a
``geo:`` link, never a map website) and its deadline counting down; no failed request
in the console. Records are written as the worker writes them (the channel streams and
the snapshot keys under the names gridwatch.keys gives them)."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from gridwatch.ws.auth import User
from playwright.sync_api import Page, expect
from shapely.geometry import Point, shape

from gridwatch import keys
from tests.integration.test_gateway import put_task

from .test_cockpit import PHONE, login

pytestmark = pytest.mark.browser
MINE = ("G0001", "G0002")
OTHER = "G0003"


def put_risk(r: redis.Redis, grid: str, score: float, band: str) -> None:
    r.set(keys.risk(grid), orjson.dumps({"grid_id": grid, "hour": 1, "score": score,
                                         "band": band, "contributions": []}))


def put_grid_delta(r: redis.Redis, grid: str, score: float, band: str) -> None:
    """A new score, as the worker writes it: the grid's record, then its delta."""
    put_risk(r, grid, score, band)
    delta = {"type": "grid", "grid_id": grid, "score": score, "band": band, "hour": 2}
    r.xadd(keys.CHAN_GRIDS, {"d": orjson.dumps(delta)}, maxlen=keys.CHAN_MAXLEN)


def put_alert(r: redis.Redis, aid: str, grid: str, *, status: str = "new",
              details: dict[str, Any] | None = None, title_zh: str = "") -> dict[str, Any]:
    now = time.time()
    rec = {"id": aid, "kind": "red_code", "severity": "high", "status": status, "grid_id": grid,
           "station_id": None, "ts_raised": now, "ts_updated": now, "title": f"alert {aid}",
           "title_zh": title_zh or f"告警 {aid}", "task_id": None, "details": details or {},
           "audit": [], "v": 1}
    r.set(keys.alert(aid), orjson.dumps(rec))
    r.zadd(keys.alerts_by_grid(grid), {aid: now})
    if status not in ("closed", "dismissed"):
        r.zadd(keys.ALERTS_OPEN, {aid: now})
    r.xadd(keys.CHAN_ALERTS, {"d": orjson.dumps({"type": "alert", "alert": rec})},
           maxlen=keys.CHAN_MAXLEN)
    return rec


def set_due(r: redis.Redis, tid: str, due_at: float) -> None:
    rec = orjson.loads(r.get(keys.task(tid)))  # type: ignore[arg-type]
    rec["due_at"] = due_at
    r.set(keys.task(tid), orjson.dumps(rec))


def polygon(grids_path: Path, grid: str) -> Any:
    doc = orjson.loads(grids_path.read_bytes())
    return shape(next(f for f in doc["features"] if f["properties"]["id"] == grid)["geometry"])


def watch_console(page: Page) -> list[str]:
    """Console errors and failed responses of the page, as text."""
    bad: list[str] = []
    page.on("console", lambda m: m.type == "error" and bad.append(f"{m.text} {m.location}"))
    page.on("response", lambda resp: resp.status >= 400 and bad.append(f"{resp.status} {resp.url}"))
    return bad


def test_phone_shows_my_grids_tasks_with_place_and_countdown(browser: Any,
                                                             gateway_only: Any) -> None:
    g, r, s = gateway_only
    put_risk(r, "G0001", 72, "red")
    put_risk(r, "G0002", 31, "blue")
    put_risk(r, OTHER, 88, "red")
    spot = {"lon": 121.4321, "lat": 31.1987}
    put_alert(r, "a-tk1", "G0001", details=spot, title_zh="红码人员进入卡口")
    put_alert(r, "a-tk2", "G0002", status="closed")
    put_alert(r, "a-other", OTHER, title_zh="别的网格的告警")
    put_task(r, "tk1", "G0001", "w1")
    put_task(r, "tk2", "G0002", "w1")
    set_due(r, "tk1", time.time() + 2 * 3600)
    set_due(r, "tk2", time.time() - 125)

    page = browser.new_context(**PHONE).new_page()
    bad = watch_console(page)
    login(page, r, g.origin, User("w1", "grid_worker", grids=MINE))

    # My grids, with band and score, and the open alerts of each.
    rows = page.locator("#grid-list li.my-grid")
    expect(rows).to_have_count(2)
    g1 = page.locator('#grid-list li[data-grid="G0001"]')
    expect(g1).to_have_class(re.compile(r"\bband-red\b"))
    expect(g1.locator(".band")).to_contain_text("高风险")
    expect(g1.locator(".band")).to_contain_text("72")
    expect(g1.locator(".open-count")).to_have_attribute("data-open", "1")
    expect(page.locator('#grid-list li[data-grid="G0002"] .open-count')).to_have_attribute(
        "data-open", "0")  # its only alert is closed
    expect(page.locator("#grid-alerts li[data-id]")).to_have_count(1)
    expect(page.locator("#grid-alerts")).to_contain_text("红码人员进入卡口")

    # The small map holds my grids and nothing else, coloured by band.
    page.wait_for_function("""() => {
      const c = echarts.getInstanceByDom(document.getElementById('grid-map'));
      const s = c && c.getOption().series;
      return s && s.length && s[0].data.length > 0;
    }""")
    data = page.evaluate("""() => echarts.getInstanceByDom(document.getElementById('grid-map'))
      .getOption().series[0].data.map((d) => [d.name, d.value, d.itemStyle.areaColor])""")
    assert sorted(data) == [["G0001", 72, "#e5484d"], ["G0002", 31, "#3b82f6"]]
    served = page.evaluate("() => fetch('/api/grids.geojson').then((r) => r.json())")
    assert [f["properties"]["id"] for f in served["features"]] == list(MINE)
    for secret in (OTHER, "a-other", "别的网格的告警"):
        assert secret not in page.content()

    # A live score moves the grid's band.
    put_grid_delta(r, "G0001", 45, "yellow")
    expect(g1).to_have_class(re.compile(r"\bband-yellow\b"), timeout=5000)
    expect(g1.locator(".band")).to_contain_text("45")

    # Each task with its place: the alert's own spot, else a point inside the grid.
    card1 = page.locator('li.task[data-id="tk1"]')
    card2 = page.locator('li.task[data-id="tk2"]')
    expect(card1.locator("a.geo")).to_have_attribute(
        "href", f"geo:{spot['lat']:.6f},{spot['lon']:.6f}?q={spot['lat']:.6f},{spot['lon']:.6f}")
    expect(card1.locator(".coords")).to_have_text(f"{spot['lat']:.6f}, {spot['lon']:.6f}")
    href = card2.locator("a.geo").get_attribute("href") or ""
    m = re.fullmatch(r"geo:(-?[\d.]+),(-?[\d.]+)\?q=\1,\2", href)
    assert m, href
    assert polygon(s.grids, "G0002").contains(Point(float(m.group(2)), float(m.group(1))))
    # No link leaves the device for a map website.
    hrefs = page.eval_on_selector_all("a[href]", "els => els.map((e) => e.getAttribute('href'))")
    assert all(h.startswith(("geo:", "/")) for h in hrefs), hrefs

    # The deadline counts down; a passed one says by how much it is overdue.
    countdown = card1.locator(".countdown")
    expect(countdown).to_have_text(re.compile(r"^剩余 1:59:\d\d$"))
    first = countdown.inner_text()
    page.wait_for_timeout(1300)
    assert countdown.inner_text() != first
    expect(card2.locator(".countdown")).to_have_class(re.compile(r"\boverdue\b"))
    expect(card2.locator(".countdown")).to_have_text(re.compile(r"^已超时 0:0[2-3]:\d\d$"))

    # A reload (or an installed app opened again) shows the same view, not an empty one.
    page.reload()
    expect(rows).to_have_count(2)
    expect(g1).to_have_class(re.compile(r"\bband-yellow\b"))
    expect(page.locator("li.task")).to_have_count(2)
    expect(card1.locator("a.geo")).to_be_visible()
    page.wait_for_timeout(500)
    assert not bad, bad
    if os.environ.get("GRIDWATCH_SHOT_DIR"):  # a look at it (hand-made data)
        page.screenshot(path=str(Path(os.environ["GRIDWATCH_SHOT_DIR"]) / "phone.png"),
                        full_page=True)
