"""The README's wall-screen pictures: the demo's day at its outbreak's peak, in Chinese and
in English.

The demo's live day (seed 1, with its outbreak, :mod:`gridwatch.streams.outbreak`) from
07:00 to the end of the peak hour, 14:00, at 5 % of the demo's scans, is sent to Kafka
and applied by a real ``gridwatch worker``; the officer's wall screen (1920x1080) then
shows the map in its bands (the outbreak's grids red and yellow, the rest blue), zoomed
to the street as a user roams it, and the feed holding the outbreak's alerts. Nobody
acts on them (no crew here), so they are new and escalated, as in ``gridwatch demo
--no-crew``. The day is the latest one whose 14:00
(China time) has passed, and the browser's clock is set to its 14:00, so the wall's
clock and the feed's health read as they did live.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest
import redis
from gridwatch.streams.outbreak import plan
from gridwatch.streams.simulate import CST, CityDay, Simulator
from gridwatch.ws.auth import User
from kafka import KafkaProducer
from playwright.sync_api import Page, expect

from gridwatch import keys, store
from gridwatch.city import load_city, load_grids
from gridwatch.risk import RED_AT, YELLOW_AT

from .conftest import SCREENSHOTS, wait_until
from .test_cockpit import login, map_drawn, point_in

pytestmark = pytest.mark.browser
WALL = {"viewport": {"width": 1920, "height": 1080}, "timezone_id": "Asia/Shanghai",
        "locale": "zh-CN"}
SCALE = 0.05  # of the demo's scans: the map's bands are the same (python -m gridwatch.story)
PEAK_END_H = 14  # the outbreak peaks about 13:30: the peak hour ends at 14:00


def the_day() -> datetime:
    """07:00 China time of the latest day whose peak hour is over."""
    now = datetime.now(CST)
    day = now if now.hour >= PEAK_END_H else now - timedelta(days=1)
    return day.replace(hour=7, minute=0, second=0, microsecond=0)


def bands_on_map(page: Page) -> dict[str, int]:
    """Grids per band as the map draws them, by score (grey ones without a score: blue)."""
    scores = page.evaluate("""() => echarts.getInstanceByDom(document.getElementById('map'))
      .getOption().series[0].data.map((d) => d.value)""")
    red = sum(1 for s in scores if s is not None and s >= RED_AT)
    yellow = sum(1 for s in scores if s is not None and YELLOW_AT <= s < RED_AT)
    return {"red": red, "yellow": yellow, "blue": len(scores) - red - yellow}


def test_the_wall_at_the_outbreaks_peak_in_both_languages(browser: Any, cockpit: Any) -> None:
    g, workers = cockpit
    s = workers.settings
    r = redis.Redis.from_url(s.redis)
    workers.start()
    city = load_city(s.city)
    story = plan(load_grids(s.grids), city, seed=1, avoid=city["workers"][0]["grids"])
    assert story is not None
    start = the_day()
    base = CityDay()
    profile = CityDay(scans=int(base.scans * SCALE), loiter_reports=int(base.loiter_reports * 0.2))
    sim = Simulator(city, seed=1, start=start, profile=profile, local_days=True, outbreak=story)
    producer = KafkaProducer(bootstrap_servers=s.kafka, acks="all", linger_ms=5)
    sent = 0
    for _, topic, event in sim.stream(days=(PEAK_END_H - 7) / 24):
        producer.send(topic.name, key=str(event[topic.key_field]).encode(),
                      value=orjson.dumps(event))
        sent += 1
    producer.flush()
    producer.close()

    def applied() -> int:
        text = store.connect(s.redis)  # the summary is read with decoded replies
        try:
            t = store.summary(text)
        finally:
            text.close()
        return t["checkpoint_scans"] + t["loiter_reports"] + t["station_tickets"]

    wait_until(lambda: applied() >= sent, timeout=240, what=f"the worker to apply {sent} events")
    # The outbreak's core grid is scored red once the peak hour is applied.
    wait_until(lambda: orjson.loads(r.get(keys.risk(story.grids[0])) or b"{}").get("band") == "red",
               timeout=60, what=f"{story.grids[0]} to be scored red")
    outbreak_alerts = [i.decode() for i in r.zrange(keys.ALERTS_ALL, 0, -1)
                       if (raw := r.get(keys.alert(i.decode())))
                       and orjson.loads(raw)["grid_id"] in story.grids]
    assert len(outbreak_alerts) >= 10

    context = browser.new_context(**WALL)
    context.clock.install(time=start + timedelta(hours=PEAK_END_H - 7))
    page = context.new_page()
    login(page, r, g.origin, User("officer-demo", "duty_officer"))
    map_drawn(page)
    page.wait_for_function(f"""() => {{
      const el = document.getElementById('map');
      const chart = el && window.echarts && echarts.getInstanceByDom(el);
      const option = chart && chart.getOption();
      const s = option && option.series;
      return Boolean(s && s.length && s[0].data
                     && s[0].data.some((d) => d.value !== null && d.value >= {RED_AT}));
    }}""", timeout=30000)
    bands = bands_on_map(page)
    assert bands["red"] >= 1 and 1 <= bands["red"] + bands["yellow"] <= 6, bands
    assert bands["blue"] >= 0.9 * sum(bands.values()), bands
    rows = page.locator("#alerts li.alert")
    expect(rows.first).to_be_visible()
    shown = set(page.eval_on_selector_all("#alerts li[data-id]", "els => els.map((e) => e.dataset.id)"))
    assert shown & set(outbreak_alerts), "the feed shows none of the outbreak's alerts"
    expect(page.locator("#health")).to_have_attribute("data-state", "ok")
    page.evaluate(f"() => window.gridwatch.view.selectGrid({orjson.dumps(story.grids[0]).decode()})")
    expect(page.locator("#grid-detail .contrib li")).to_have_count(9)
    # The map zoomed to the street, as an officer would (it roams): the outbreak's grids
    # are a few of 800.
    page.evaluate("""(c) => echarts.getInstanceByDom(document.getElementById('map'))
      .setOption({ series: [{ zoom: 4, center: c }] })""", list(point_in(s.grids, story.grids[0])))

    def shoot(language: str) -> None:
        page.evaluate("() => { const t = document.getElementById('toast'); if (t) t.hidden = true; }")
        page.wait_for_timeout(1200)  # the map redraws at most once a second
        page.screenshot(path=str(SCREENSHOTS / f"officer-{language}.png"))

    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator("#lang")).to_have_text("English")
    expect(page.locator(".map .legend")).to_contain_text("高风险")
    shoot("zh")
    page.click("#lang")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("#lang")).to_have_text("中文")
    expect(page.locator(".map .legend")).to_contain_text("High risk")
    expect(page.locator("#grid-detail")).to_contain_text(story.grids[0])
    shoot("en")
    context.close()
    r.close()
