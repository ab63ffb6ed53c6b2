"""The duty officer's top bar: every counter says its window (now, today, all time)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from gridwatch.streams.simulate import CST
from gridwatch.streams.topics import CHECKPOINT_SCANS
from gridwatch.ws.auth import User
from playwright.sync_api import expect

from gridwatch import keys

from .test_cockpit import CHINA, login

pytestmark = pytest.mark.browser


def test_each_counter_says_its_window(browser: Any, gateway_only: Any) -> None:
    g, r, _ = gateway_only
    now = datetime.now(CST).replace(hour=10, minute=0, second=0, microsecond=0)
    midnight = now.replace(hour=0)
    r.hset(keys.SUMMARY, mapping={"checkpoint_scans": 1234, "loiter_reports": 56})
    r.hset(keys.WATERMARKS, keys.partition_field(CHECKPOINT_SCANS, 0), now.timestamp())
    # Raised today (twice) and yesterday (once); one of today's still open.
    r.zadd(keys.ALERTS_ALL, {"al-a": (midnight + timedelta(hours=1)).timestamp(),
                             "al-b": (midnight + timedelta(hours=9)).timestamp(),
                             "al-c": (midnight - timedelta(hours=2)).timestamp()})
    r.zadd(keys.ALERTS_OPEN, {"al-b": (midnight + timedelta(hours=9)).timestamp()})
    page = browser.new_context(viewport={"width": 1920, "height": 1080}, **CHINA).new_page()
    login(page, r, g.origin, User("o1", "duty_officer"))
    bar = page.locator("#counters")
    today = bar.locator('[data-counter="alerts_today"]')
    expect(today.locator("b")).to_have_text("2")
    expect(today.locator(".window")).to_have_text(f"今日 {now:%m-%d}")
    expect(bar.locator('[data-counter="open_alerts"] .window')).to_have_text("当前")
    expect(bar.locator('[data-counter="checkpoint_scans"] b')).to_have_text("1,234")
    expect(bar.locator('[data-counter="checkpoint_scans"] .window')).to_have_text("累计")
    # No counter without its window.
    count = bar.locator(".counter").count()
    assert count >= 8
    expect(bar.locator(".counter .window")).to_have_count(count)
    page.click("#lang")
    expect(bar.locator('[data-counter="checkpoint_scans"] .window')).to_have_text("all time")
    expect(today.locator(".window")).to_have_text(f"today, {now:%m-%d}")
