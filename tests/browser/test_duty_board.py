"""The officer's duty board and unshelving from a row, against the real gateway, worker,
Kafka and Redis.

A grid worker switches off duty on the phone: the officer's wall counts the grid as one
with no one on duty, and its board lists it; back on duty, the board shows them on duty
there, while a grid whose worker an officer set off duty stays listed. A grid worker's
own ``/api/duty`` never carries the board or anyone else's duty. An alert shelved by an
officer is taken off the shelf from its row in the held list: it is back in the live feed,
new, and its audit trail names the officer who unshelved it.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
import redis
from gridwatch.ws.auth import User
from playwright.sync_api import Page, expect

from gridwatch import keys
from gridwatch.city import load_grids
from tests.integration.conftest import wait_until
from tests.integration.test_alerts_e2e import Place, _raise_loiter, alert, ok

from .test_cockpit import PHONE, login, point_in
from .test_feed import g_page, rows
from .test_phone import watch_console

pytestmark = pytest.mark.browser
GRID, WORKER = "G0001", "w0001"  # the bundled district's grid and its only worker
BOARD_WAIT_MS = 25000  # the board is read every 10 s


def lone_grid(grids_path: Any, other_than: str) -> tuple[str, str]:
    """Another grid with a single worker who works no other grid: (grid, worker)."""
    grids = load_grids(grids_path)
    count: dict[str, int] = {}
    for g in grids:
        for w in g.workers:
            count[w] = count.get(w, 0) + 1
    return next((g.id, g.workers[0]) for g in grids
                if g.id != other_than and len(g.workers) == 1 and count[g.workers[0]] == 1)


def duty_reply(page: Page) -> tuple[int, Any]:
    """``GET /api/duty`` as the page's user: (status, JSON body or None)."""
    got = page.evaluate("""() => fetch('/api/duty', {cache: 'no-store'}).then(async (r) =>
        [r.status, r.ok ? await r.json() : null])""")
    return got[0], got[1]


def test_the_duty_board_shows_who_is_on_duty_and_the_grids_with_no_one(
        browser: Any, cockpit: Any) -> None:
    g, workers = cockpit
    s = workers.settings
    r = redis.Redis.from_url(s.redis)
    workers.start()
    other_grid, other_worker = lone_grid(s.grids, GRID)
    officer = g_page(browser, g, r)
    bad = watch_console(officer)
    chip = officer.locator("#duty-board")
    # No one marked: every grid with a worker is covered.
    expect(chip).to_have_attribute("data-uncovered", "0", timeout=10000)
    expect(chip).to_have_text("值班表")

    # The worker goes off duty from the phone: their grid has no one on duty.
    phone = browser.new_context(**PHONE).new_page()
    login(phone, r, g.origin, User(WORKER, "grid_worker", grids=(GRID,)))
    phone.locator("#duty-switch").click()
    expect(phone.locator("#duty")).to_have_attribute("data-duty", "off", timeout=15000)
    expect(phone.locator("#duty .duty-result")).to_have_text("休息 · 已生效", timeout=15000)
    expect(chip).to_have_attribute("data-uncovered", "1", timeout=BOARD_WAIT_MS)
    expect(chip).to_have_text("值班表 · 1 个网格无人值班")
    chip.click()
    dialog = officer.locator("#duty-dialog")
    expect(dialog).to_be_visible()
    uncovered = dialog.locator(".duty-uncovered li[data-grid]")
    expect(uncovered).to_have_count(1)
    expect(uncovered).to_have_attribute("data-grid", GRID)
    expect(uncovered).to_contain_text(f"休息中: {WORKER}")
    expect(dialog.locator('.duty-sum [data-count="uncovered"]')).to_have_text("无人值班网格 1 个")
    dialog.locator('input[name="q"]').fill(WORKER)  # the worker's grids, by name
    row = dialog.locator(f'.duty-grids tr[data-grid="{GRID}"]')
    expect(dialog.locator(".duty-grids tr[data-grid]")).to_have_count(1)
    expect(row.locator(".on")).to_have_text("无人值班")
    expect(row.locator(".off")).to_have_text(WORKER)
    expect(row).to_have_class("uncovered")

    # A grid worker's own list is theirs alone: no board, no one else's duty, even with
    # others marked (the officer sets another grid's only worker off duty).
    ok(workers, "duty", "off", "--worker", other_worker, "--actor", "o1")
    status, mine = duty_reply(phone)
    assert status == 200 and set(mine) == {"duty"}
    assert [(d["worker"], d["on"]) for d in mine["duty"]] == [(WORKER, False)]
    status, board = duty_reply(officer)
    assert status == 200 and board["uncovered"] == sorted([GRID, other_grid])
    assert {d["worker"] for d in board["duty"]} == {WORKER, other_worker}

    # Back on duty from the phone: on the board as on duty in their grid (the dialog,
    # left open, follows); the other grid still has no one, and is listed.
    phone.locator("#duty-switch").click()
    expect(phone.locator("#duty")).to_have_attribute("data-duty", "on", timeout=15000)
    expect(row.locator(".on")).to_have_text(WORKER, timeout=BOARD_WAIT_MS)
    expect(row.locator(".off")).to_have_text("")
    expect(row).not_to_have_class("uncovered")
    # Since when, and who set it (the worker themself).
    expect(row.locator(f'.on [data-worker="{WORKER}"]')).to_have_attribute(
        "title", re.compile(rf"^{WORKER} · \d\d:\d\d 起 · {WORKER}$"))
    expect(uncovered).to_have_count(1)
    expect(uncovered).to_have_attribute("data-grid", other_grid)
    expect(uncovered).to_contain_text(f"休息中: {other_worker}")
    expect(chip).to_have_attribute("data-uncovered", "1")
    dialog.locator('input[name="q"]').fill(other_worker)
    other = dialog.locator(f'.duty-grids tr[data-grid="{other_grid}"]')
    expect(other.locator(".on")).to_have_text("无人值班")
    expect(other.locator(f'.off [data-worker="{other_worker}"]')).to_have_attribute(
        "title", re.compile(rf"^{other_worker} · \d\d:\d\d 起 · o1$"))  # set by o1

    # Closed, and in English too (the filter is kept).
    dialog.locator(".cancel").click()
    expect(dialog).to_have_count(0)
    officer.click("#lang")
    expect(chip).to_have_text("Duty roster · uncovered grids: 1")
    chip.click()
    expect(dialog.locator('.duty-sum [data-count="uncovered"]')).to_have_text("Grids with no one on duty: 1")
    expect(dialog.locator('input[name="q"]')).to_have_value(other_worker)
    expect(other.locator(".on")).to_have_text("No one on duty")
    dialog.locator(".cancel").click()
    expect(dialog).to_have_count(0)
    assert not bad, bad
    r.close()


def test_an_officer_unshelves_an_alert_from_its_row_and_it_is_back_in_the_feed(
        browser: Any, cockpit: Any) -> None:
    g, workers = cockpit
    s = workers.settings
    r = redis.Redis.from_url(s.redis)
    workers.start()
    lon, lat = point_in(s.grids, GRID)
    aid = _raise_loiter(workers, Place(GRID, (WORKER,), lon, lat), camera="cam-unshelf",
                        ts=time.time() - 5)
    ok(workers, "alert", "shelve", aid, "--actor", "zhao", "--note", "nuisance", "--for", "1h")
    shelved = alert(r, aid)
    assert shelved["status"] == "shelved"
    page = g_page(browser, g, r)
    bad = watch_console(page)
    held = page.locator("#held")
    expect(held).to_have_attribute("data-count", "1", timeout=10000)
    assert aid not in rows(page)

    # In the held list the shelved alert's row offers "unshelve" (and says until when).
    held.click()
    row = page.locator(f'#alerts li[data-id="{aid}"]')
    expect(row).to_have_class("alert sev-medium st-shelved")
    button = row.locator("[data-unshelve]")
    expect(button).to_have_text("取消搁置")
    expect(button).to_have_attribute("title", "搁置至 " + page.evaluate(
        "(t) => new Intl.DateTimeFormat('zh-CN', {hour: '2-digit', minute: '2-digit'})"
        ".format(new Date(t * 1000))", shelved["held_until"]))
    button.click()
    expect(row).to_have_count(0, timeout=15000)  # out of the held list...
    expect(held).to_have_attribute("data-count", "0")
    held.click()
    expect(row).to_have_class("alert sev-medium st-new")  # ...back in the live feed, new
    expect(row.locator("[data-shelve]")).to_have_count(1)

    # Audited like the shelving: who and when, through the worker's command path.
    back = alert(r, aid)
    last = back["audit"][-1]
    assert (back["status"], back["held_until"]) == ("new", None)
    assert (last["action"], last["from_state"], last["to_state"]) == ("unshelve", "shelved", "new")
    assert (last["actor"], last["role"]) == ("o1", "duty_officer")
    assert last["note"] == "taken off the shelf early"
    assert shelved["audit"][-1]["ts"] < last["ts"] <= time.time() + 1
    # Watched for its acknowledgement again, from now: no longer the shelf's end.
    wait_until(lambda: (r.zscore(keys.DEADLINES, aid) or 0) < shelved["held_until"],
               timeout=10, what="the ack deadline replacing the shelf's")
    row.click()
    trail = page.locator("#alert-detail .audit li").last
    expect(trail).to_contain_text("o1 取消搁置 taken off the shelf early")
    assert not bad, bad
    r.close()
