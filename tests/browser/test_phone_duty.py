"""The phone's on-duty / off-duty switch against the real gateway, worker, Kafka and Redis:
off duty, a banner says no new tasks come and a dispatch of the worker's grid reaches no
phone (the alert stays with the officers, flagged); back on duty, the next dispatch's
task arrives. A command the worker refuses shows its reason; an offered task cannot be
accepted while off duty."""

from __future__ import annotations

import re
import time
from typing import Any

import orjson
import redis
from gridwatch.ws.auth import User
from playwright.sync_api import Page, expect

from gridwatch import keys
from tests.integration.conftest import wait_until
from tests.integration.test_alerts_e2e import Place, _raise_loiter, alert, gw, ok, task
from tests.integration.test_gateway import put_task

from .test_cockpit import PHONE, login, point_in
from .test_phone import watch_console

GRID, WORKER = "G0001", "w0001"  # the bundled district's grid and its only worker


def api_duty(page: Page) -> list[dict[str, Any]]:
    """``GET /api/duty`` as the page's user."""
    return page.evaluate("() => fetch('/api/duty').then((r) => r.json())")["duty"]  # type: ignore[no-any-return]


def test_off_duty_no_task_reaches_the_phone_back_on_duty_the_next_one_does(
        browser: Any, cockpit: Any) -> None:
    g, workers = cockpit
    s = workers.settings
    r = redis.Redis.from_url(s.redis)
    workers.start()
    page = browser.new_context(**PHONE).new_page()
    bad = watch_console(page)
    login(page, r, g.origin, User(WORKER, "grid_worker", grids=(GRID,)))

    # Never marked: on duty, read from the server; no banner.
    box, banner = page.locator("#duty"), page.locator("#off-duty")
    expect(box).to_have_attribute("data-known", "1")
    expect(box).to_have_attribute("data-duty", "on")
    expect(box.locator("#duty-switch")).to_have_attribute("aria-checked", "true")
    expect(box.locator(".duty-state")).to_have_text("在岗")
    expect(banner).to_be_hidden()

    # Off duty from the phone: the command's result is shown, the banner says so, the
    # server agrees (with who set it).
    box.locator("#duty-switch").click()
    expect(box.locator(".duty-result")).to_have_text("休息 · 已生效", timeout=15000)
    expect(box).to_have_attribute("data-duty", "off")
    expect(box).to_have_attribute("data-waiting", "0")
    expect(banner).to_be_visible()
    expect(banner).to_have_text("休息中：不会收到新任务")
    expect(box.locator(".duty-hint")).to_contain_text(WORKER)
    assert [(d["worker"], d["on"], d["actor"]) for d in api_duty(page)] == [(WORKER, False, WORKER)]
    assert orjson.loads(r.hget(keys.DUTY, WORKER))["on"] is False  # type: ignore[arg-type]

    # An officer dispatches an alert of the grid: no task is made, the alert is flagged.
    lon, lat = point_in(s.grids, GRID)
    aid = _raise_loiter(workers, Place(GRID, (WORKER,), lon, lat), camera="cam-duty-01")
    ok(workers, "alert", "ack", aid, "--actor", "wang")
    ran = gw(workers, "alert", "dispatch", aid, "--actor", "wang", "--json")
    assert ran.code == 1 and f"no worker of grid {GRID} is on duty" in ran.json()["reason"]
    kept = alert(r, aid)
    assert kept["status"] == "acknowledged" and kept["task_id"] is None
    assert kept["needs_officer"] == ran.json()["reason"]
    page.wait_for_timeout(1500)
    expect(page.locator("li.task")).to_have_count(0)
    assert f"tk-{aid}-" not in page.content()  # (the alert itself is in the grid's list)

    # A reload reads the state again: still off duty.
    page.reload()
    expect(box).to_have_attribute("data-known", "1")
    expect(box).to_have_attribute("data-duty", "off")
    expect(banner).to_be_visible()

    # Back on duty (in English this time): the banner goes, the next dispatch arrives.
    page.locator("#lang").click()
    expect(box.locator(".duty-state")).to_have_text("Off duty")
    expect(banner).to_have_text("Off duty: no new tasks")
    box.locator("#duty-switch").click()
    expect(box.locator(".duty-result")).to_have_text("Go on duty · Applied", timeout=15000)
    expect(box).to_have_attribute("data-duty", "on")
    expect(box.locator(".duty-state")).to_have_text("On duty")
    expect(banner).to_be_hidden()
    assert [(d["worker"], d["on"]) for d in api_duty(page)] == [(WORKER, True)]
    page.wait_for_timeout(1600)  # past the reload's first snapshot: what comes now is news

    out = ok(workers, "alert", "dispatch", aid, "--actor", "wang", "--json").json()
    assert out["alert"]["status"] == "dispatched" and out["alert"]["needs_officer"] is None
    tid = out["alert"]["task_id"]
    card = page.locator(f'li.task[data-id="{tid}"]')
    expect(card).to_be_visible(timeout=10000)
    expect(page.locator("#toast")).to_contain_text("New task")
    expect(card.locator(".off-duty-note")).to_have_count(0)
    card.locator('button[data-action="accept"]').click()
    wait_until(lambda: task(r, tid)["status"] == "accepted", timeout=15,
               what="the task to be accepted")
    expect(card.locator(".status")).to_have_text("Accepted")

    # A duty command the worker refuses shows its reason on the switch: a grid worker of
    # no grid of the district.
    stray = browser.new_context(**PHONE).new_page()
    login(stray, r, g.origin, User("w-nogrid", "grid_worker", grids=(GRID,)))
    sbox = stray.locator("#duty")
    expect(sbox).to_have_attribute("data-known", "1")
    sbox.locator("#duty-switch").click()
    expect(sbox.locator(".duty-result")).to_have_text(
        "休息 · 未成功: w-nogrid is not a worker of any grid", timeout=15000)
    expect(sbox).to_have_attribute("data-duty", "on")  # the server's state again
    expect(stray.locator("#off-duty")).to_be_hidden()
    assert r.hget(keys.DUTY, "w-nogrid") is None
    assert not bad, bad
    r.close()


def test_an_offered_task_cannot_be_accepted_while_off_duty(browser: Any,
                                                            gateway_only: Any) -> None:
    g, r, _ = gateway_only
    put_task(r, "tk1", GRID, "w1")
    r.hset(keys.DUTY, "w1", orjson.dumps({"worker": "w1", "on": False, "ts": time.time(),
                                          "actor": "o1", "role": "duty_officer", "note": ""}))
    page = browser.new_context(**PHONE).new_page()
    login(page, r, g.origin, User("w1", "grid_worker", grids=(GRID,)))
    box = page.locator("#duty")
    expect(box).to_have_attribute("data-duty", "off")
    expect(box.locator("#duty-switch")).to_have_attribute("aria-checked", "false")
    expect(box.locator(".duty-hint")).to_have_text(re.compile(r"^\d\d:\d\d 起 · o1$"))
    expect(page.locator("#off-duty")).to_be_visible()
    card = page.locator('li.task[data-id="tk1"]')
    expect(card.locator(".status")).to_have_text("待接单")
    expect(card.locator(".off-duty-note")).to_have_text("休息中不能接单：上岗后才能接单")
    expect(card.locator('button[data-action="accept"]')).to_have_count(0)
    expect(card.locator('button[data-action="reject"]')).to_be_visible()

    # Put back on duty by an officer and read again after a reconnect: accept is offered.
    r.hdel(keys.DUTY, "w1")
    page.evaluate("() => window.gridwatch.link.ws.close()")
    expect(page.locator("#banner")).to_have_attribute("data-state", "resumed", timeout=10000)
    expect(box).to_have_attribute("data-duty", "on")
    expect(page.locator("#off-duty")).to_be_hidden()
    expect(card.locator('button[data-action="accept"]')).to_be_visible()
    expect(card.locator(".off-duty-note")).to_have_count(0)
