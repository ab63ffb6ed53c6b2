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
from gridwatch.streams.topics import COMMANDS
from gridwatch.ws.auth import User
from kafka import KafkaConsumer
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
      const o = c && c.getOption();
      const s = o && o.series;
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


# Records every Notification the page constructs, and lets the test put the page in the
# background: document.visibilityState reads window.__testHidden.
SPY = """(() => {
  window.__shown = [];
  const Real = window.Notification;
  if (Real) {
    class Spy extends Real {
      constructor(title, options) {
        window.__shown.push({ title, body: options && options.body, tag: options && options.tag });
        super(title, options);
      }
    }
    Object.defineProperty(Spy, "permission", { get: () => Real.permission });
    Spy.requestPermission = (...a) => Real.requestPermission(...a);
    window.Notification = Spy;
  }
  window.__testHidden = false;
  Object.defineProperty(Document.prototype, "visibilityState",
    { configurable: true, get: () => (window.__testHidden ? "hidden" : "visible") });
  Object.defineProperty(Document.prototype, "hidden",
    { configurable: true, get: () => window.__testHidden });
})()"""

HIDE = """() => { window.__testHidden = true; document.dispatchEvent(new Event('visibilitychange')); }"""


def test_a_task_arriving_in_the_background_notifies(browser: Any, gateway_only: Any) -> None:
    g, r, _ = gateway_only
    put_alert(r, "a-tk9", "G0001", details={"lon": 121.43, "lat": 31.2},
              title_zh="药店门口人员聚集")
    context = browser.new_context(**PHONE)
    context.grant_permissions(["notifications"], origin=g.origin)
    context.add_init_script(SPY)
    page = context.new_page()
    login(page, r, g.origin, User("w1", "grid_worker", grids=("G0001",)))
    expect(page.locator("#notify")).to_have_attribute("data-permission", "granted")
    expect(page.locator("#notify")).to_contain_text("新任务通知已开启")
    page.wait_for_timeout(1800)  # past the first snapshot: what comes now is news

    # In front: the page's own toast, no system notification.
    put_task(r, "tk8", "G0001", "w1")
    expect(page.locator('li.task[data-id="tk8"]')).to_be_visible(timeout=5000)
    expect(page.locator("#toast")).to_contain_text("新任务")
    assert page.evaluate("() => window.__shown") == []

    # In the background: a notification with the task's text, tagged by the task.
    page.evaluate(HIDE)
    assert page.evaluate("() => document.visibilityState") == "hidden"
    put_task(r, "tk9", "G0001", "w1")
    page.wait_for_function("() => window.__shown.length > 0", timeout=5000)
    shown = page.evaluate("() => window.__shown")
    assert len(shown) == 1
    assert shown[0]["tag"] == "tk9"
    assert shown[0]["title"] == "新任务 · 长桥街道第1网格"
    assert "药店门口人员聚集" in shown[0]["body"]


def test_the_allow_control_asks_only_when_not_yet_decided(browser: Any,
                                                           gateway_only: Any) -> None:
    g, r, _ = gateway_only
    page = browser.new_context(**PHONE).new_page()
    login(page, r, g.origin, User("w1", "grid_worker", grids=("G0001",)))
    box = page.locator("#notify")
    expect(box).to_have_attribute("data-permission", "default")
    expect(box.locator("#notify-allow")).to_have_text("开启新任务通知")
    expect(box.locator("#notify-allow")).to_be_visible()

    # Blocked in the browser's settings: no button (it could do nothing), but the way out.
    blocked = browser.new_context(**PHONE)
    blocked.add_init_script("""Object.defineProperty(Notification, "permission",
      { configurable: true, get: () => "denied" })""")
    page = blocked.new_page()
    login(page, r, g.origin, User("w2", "grid_worker", grids=("G0001",)))
    box = page.locator("#notify")
    expect(box).to_have_attribute("data-permission", "denied")
    expect(box.locator("#notify-allow")).to_have_count(0)
    expect(box).to_contain_text("请在浏览器的网站设置中允许通知")


SHELL_CACHED = """async () => {
  const out = [];
  for (const name of await caches.keys()) {
    for (const req of await (await caches.open(name)).keys()) out.push(new URL(req.url).pathname + new URL(req.url).search);
  }
  return out;
}"""


def test_installed_shell_opens_offline_and_the_queued_command_goes_out(
        browser: Any, gateway_only: Any) -> None:
    g, r, s = gateway_only
    put_task(r, "tk5", "G0001", "w1")
    page = browser.new_context(**PHONE).new_page()
    login(page, r, g.origin, User("w1", "grid_worker", grids=("G0001",)))
    card = page.locator('li.task[data-id="tk5"]')
    expect(card).to_be_visible()

    # Installable: a manifest with its icons, and a service worker controlling the page.
    manifest = page.evaluate("""async () => {
      const href = document.querySelector('link[rel=manifest]').href;
      const m = await (await fetch(href)).json();
      const icons = await Promise.all(m.icons.map(async (i) => {
        const res = await fetch(i.src); return [i.src, res.status, res.headers.get('content-type')];
      }));
      return { m, icons };
    }""")
    assert manifest["m"]["start_url"] == "/" and manifest["m"]["display"] == "standalone"
    assert ["/icon-512.png", 200, "image/png"] in manifest["icons"]
    page.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=10000)

    # The gateway goes away; the worker accepts the task all the same: it waits queued.
    g.stop()
    expect(page.locator("#banner")).to_have_attribute("data-state", "down", timeout=5000)
    card.locator('button[data-action="accept"]').click()
    expect(card.locator(".queued")).to_be_visible()
    queued = page.evaluate("() => JSON.parse(localStorage.getItem('gw.queue'))")
    assert [(c["id"], c["action"]) for c in queued] == [("tk5", "accept")]

    # Opened again with no network: the shell comes from the cache, the queue is kept.
    page.reload()
    expect(page.locator("#banner")).to_have_attribute("data-state", "down", timeout=5000)
    assert page.evaluate("() => JSON.parse(localStorage.getItem('gw.queue')).length") == 1

    # Back online: the page comes up by itself and the queued command goes out once.
    g.start()
    expect(page.locator('li.task[data-id="tk5"]')).to_be_visible(timeout=15000)
    page.wait_for_function("() => JSON.parse(localStorage.getItem('gw.queue')).length === 0",
                           timeout=10000)
    consumer = KafkaConsumer(COMMANDS, bootstrap_servers=s.kafka, auto_offset_reset="earliest",
                             consumer_timeout_ms=3000)
    sent = [orjson.loads(m.value) for m in consumer]
    consumer.close()
    assert [c.get("action") for c in sent if c.get("command_id") == queued[0]["command_id"]] \
        == ["accept"]

    # The cache holds the shell's files only: no API reply, no login link, no token.
    cached = page.evaluate(SHELL_CACHED)
    assert "/" in cached and "/worker.js" in cached
    assert not [u for u in cached if u.startswith(("/api/", "/login", "/logout", "/ws"))
                or "?" in u or "token" in u], cached
