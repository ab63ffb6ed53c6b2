"""The trace lookup panel against a real gateway: without a reason the gateway's refusal
is shown and nothing is audited; with one the person's scans fill the table, and the
lookup appears in the admin's audit view (and nowhere for an officer). The trace is
written into Redis as the worker writes it (``keys.trace``)."""

from __future__ import annotations

from typing import Any

import pytest
from gridwatch.ws.auth import User
from playwright.sync_api import expect

from gridwatch import keys

from .conftest import SCREENSHOTS
from .test_cockpit import login

pytestmark = pytest.mark.browser
PERSON = "9f3a0c5e21b7d4e8a6c1"
WALL = {"viewport": {"width": 1600, "height": 900}, "timezone_id": "Asia/Shanghai",
        "locale": "zh-CN"}


def test_lookup_needs_a_reason_shows_rows_and_is_in_the_admin_audit(browser: Any,
                                                                     gateway_only: Any) -> None:
    g, r, _ = gateway_only
    now = 1_760_000_000.0
    r.hset(keys.WATERMARKS, "gridwatch.checkpoint-scans:0", now)
    r.zadd(keys.trace(PERSON), {"e1|CP0001|G0001|in|green": now - 3600,
                                "e2|CP0001|G0001|out|green": now - 1800,
                                "e3|CP0107|G0042|in|red": now - 5 * 86400,
                                "e0|CP0009|G0002|in|green": now - 20 * 86400})

    officer = browser.new_context(**WALL).new_page()
    login(officer, r, g.origin, User("wang", "duty_officer"))
    officer.locator("#trace-open").click()
    panel = officer.locator("#trace")
    expect(panel).to_be_visible()
    expect(officer.locator("#trace-audit")).to_be_hidden()  # the audit is for admins

    officer.locator("#trace-person").fill(PERSON)
    officer.locator("#trace-submit").click()
    expect(officer.locator("#trace-msg")).to_have_text("请填写查询事由")
    expect(officer.locator("#trace-rows")).to_be_hidden()
    assert r.xlen(keys.TRACE_AUDIT) == 0

    officer.locator("#trace-reason").fill("案件 118：红码密接排查")
    officer.locator("#trace-submit").click()
    rows = officer.locator("#trace-rows tbody tr")
    expect(rows).to_have_count(3)
    expect(officer.locator("#trace-msg")).to_be_hidden()
    expect(rows.nth(0)).to_contain_text("CP0001")
    expect(rows.nth(0)).to_contain_text("出")
    expect(rows.nth(2)).to_contain_text("G0042")
    expect(rows.nth(2)).to_contain_text("红码")
    expect(officer.locator("#trace-summary")).to_contain_text("3 条记录")
    assert r.xlen(keys.TRACE_AUDIT) == 1
    # A hostile reference is refused with the gateway's reason, in the user's language.
    officer.locator("#lang").click()
    officer.locator("#trace-person").fill("{core}*")
    officer.locator("#trace-submit").click()
    expect(officer.locator("#trace-msg")).to_contain_text("only letters, digits")
    assert r.xlen(keys.TRACE_AUDIT) == 1

    admin = browser.new_context(**WALL).new_page()
    login(admin, r, g.origin, User("li", "admin"))
    admin.locator("#trace-open").click()
    audit = admin.locator("#trace-audit-rows tbody tr")
    expect(audit).to_have_count(1)
    expect(audit.nth(0)).to_contain_text("wang")
    expect(audit.nth(0)).to_contain_text(PERSON)
    expect(audit.nth(0)).to_contain_text("案件 118：红码密接排查")
    # The admin's own lookup joins the list at the top.
    admin.locator("#trace-person").fill(PERSON)
    admin.locator("#trace-reason").fill("复核")
    admin.locator("#trace-submit").click()
    expect(admin.locator("#trace-rows tbody tr")).to_have_count(3)
    expect(audit).to_have_count(2)
    expect(audit.nth(0)).to_contain_text("li")
    admin.screenshot(path=str(SCREENSHOTS / "trace.png"))

    # Neither a grid worker nor a station manager gets the panel.
    worker = browser.new_context(**WALL).new_page()
    login(worker, r, g.origin, User("w0577", "grid_worker", grids=("G0001",)))
    worker.wait_for_load_state("networkidle")
    expect(worker.locator("#trace-open")).to_have_count(0)
