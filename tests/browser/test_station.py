"""The station manager's page against a real gateway: the arrivals line stops at now, last
week's hours beside it, the date on the axis, the CSV download holds the API's rows (and
the CLI's), and the selector switches station. The forecast records are hand-made (the
worker's own: tests/integration/test_forecast_live.py); the station hours and the feed's
event time are written under the names gridwatch.keys gives them."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from gridwatch.streams.simulate import CST
from gridwatch.streams.topics import STATION_TICKETS
from gridwatch.ws.auth import User
from playwright.sync_api import Page, expect

from gridwatch import keys, station_view

from .test_cockpit import login

pytestmark = pytest.mark.browser
PAST = station_view.PAST_HOURS


def put_forecast(r: redis.Redis, station: str, origin: datetime, scale: float) -> dict[str, Any]:
    hours = [(origin + timedelta(hours=i)).astimezone(CST).isoformat() for i in range(24)]
    yhat = [round(scale * (50 + 10 * ((i * 7) % 13)), 1) for i in range(24)]
    rec = {"v": 1, "station_id": station, "origin": hours[0], "hours": hours, "yhat": yhat,
           "lo80": [round(y * 0.85, 1) for y in yhat], "hi80": [round(y * 1.15, 1) for y in yhat],
           "lo95": [round(y * 0.75, 1) for y in yhat], "hi95": [round(y * 1.27, 1) for y in yhat],
           "booked": [int(y * 0.6) for y in yhat], "arrived": [0] * 24,
           "peaks": [{"hour": hours[3], "yhat": yhat[3], "share": 0.1, "hint": "add staff"}],
           "method": "seasonal", "notes": [], "holidays": [], "workdays": [],
           "made_at_event_time": origin.timestamp() + 60}
    r.set(keys.forecast(station), orjson.dumps(rec))
    return rec


def put_arrivals(r: redis.Redis, station: str, hours: dict[int, int]) -> None:
    for hour, n in hours.items():
        r.hset(keys.station_hour(station, hour), mapping={"arrived": n})


def setup_station(r: redis.Redis) -> tuple[dict[str, Any], dict[int, int], dict[int, int], float]:
    """A forecast from the current hour, the arrivals of the 12 hours before and of the
    current hour, last week's same hours, and the feed's event time a few minutes in."""
    origin = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    h0 = keys.hour_of(origin.timestamp())
    rec = put_forecast(r, "SHS", origin, 1.0)
    now_arrivals = {h0 + k: 300 + 5 * k for k in range(-PAST, 1)}
    week = {h0 - 168 + k: 90 + k for k in range(-PAST, 24)}
    put_arrivals(r, "SHS", {**now_arrivals, **week})
    now = origin.timestamp() + 25 * 60
    r.hset(keys.WATERMARKS, keys.partition_field(STATION_TICKETS, 0), now)
    return rec, now_arrivals, week, now


SERIES = """(name) => {
  const o = echarts.getInstanceByDom(document.querySelector('#chart')).getOption();
  const s = o.series.find((x) => x.name === name);
  return s ? s.data : null;
}"""


def series(page: Page, name: str) -> Any:
    return page.evaluate(SERIES, name)


def view_drawn(page: Page) -> None:
    """The gateway's view is drawn (its last-week line is there)."""
    page.wait_for_function(f"() => ({SERIES})('上周同时段') !== null")


def test_station_line_stops_at_now_with_last_week_and_the_date_on_the_axis(
        browser: Any, gateway_only: Any) -> None:
    g, r, _ = gateway_only
    rec, now_arrivals, week, _ = setup_station(r)
    page = browser.new_context(viewport={"width": 1600, "height": 900}, timezone_id="UTC").new_page()
    login(page, r, g.origin, User("m1", "station_manager", stations=("SHS",)))
    view_drawn(page)
    arrived = series(page, "实际到达")
    assert len(arrived) == PAST + 24
    assert arrived[:PAST + 1] == list(now_arrivals.values())  # the past hours and this one
    assert arrived[PAST + 1:] == [None] * 23  # nothing drawn for the hours to come
    assert series(page, "上周同时段") == list(week.values())
    forecast = series(page, "预测")
    assert forecast[:PAST] == [None] * PAST and forecast[PAST:] == rec["yhat"]
    # The date is on the axis: under the first hour and under midnight, on the station's clock.
    x = page.evaluate("""() => {
      const a = echarts.getInstanceByDom(document.querySelector('#chart')).getOption().xAxis[0];
      return { data: a.data, first: a.axisLabel.formatter(a.data[0], 0),
               second: a.axisLabel.formatter(a.data[1], 1) };
    }""")
    start = datetime.fromisoformat(rec["hours"][0]) - timedelta(hours=PAST)
    assert x["data"][0] == start.strftime("%m-%d %H:00")
    assert x["first"] == start.strftime("%H:00\n%m-%d")
    assert "\n" not in x["second"] or x["data"][1].endswith("00:00")
    assert x["data"][PAST] == datetime.fromisoformat(rec["hours"][0]).strftime("%m-%d %H:00")
    # The "now" mark is at the current hour.
    mark = page.evaluate("""() => echarts.getInstanceByDom(document.querySelector('#chart'))
      .getOption().series.find((s) => s.name === '实际到达').markLine.data[0].xAxis""")
    assert mark == x["data"][PAST]
    if os.environ.get("GRIDWATCH_SHOT_DIR"):  # a look at it; not the README's (hand-made data)
        page.screenshot(path=str(Path(os.environ["GRIDWATCH_SHOT_DIR"]) / "station-view.png"))


def test_the_csv_download_holds_the_apis_forecast_rows_and_the_clis(
        browser: Any, gateway_only: Any) -> None:
    g, r, s = gateway_only
    setup_station(r)
    context = browser.new_context(viewport={"width": 1600, "height": 900}, accept_downloads=True)
    page = context.new_page()
    login(page, r, g.origin, User("m1", "station_manager", stations=("SHS",)))
    view_drawn(page)
    with page.expect_download() as got:
        page.click("#csv")
    download = got.value
    assert download.suggested_filename.startswith("forecast-SHS-")
    text = Path(download.path()).read_text()
    api = page.request.get(f"{g.origin}/api/forecast/SHS").json()
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == list(station_view.COLUMNS)
    start = api["forecast_from"]
    want = [[api["hours"][i], *(api[c][i] for c in station_view.COLUMNS[1:])]
            for i in range(start, len(api["hours"]))]

    def value(cell: str) -> Any:
        return None if cell == "" else float(cell)

    got_rows = [[row[0], *(value(c) for c in row[1:])] for row in rows[1:]]
    assert got_rows == want and len(want) == 24
    assert [row[7] for row in rows[1:3]] != ["", ""] and rows[-1][7] == ""  # arrivals up to now
    # The CLI's CSV is the same file.
    env = {**os.environ, "GRIDWATCH_REDIS": s.redis, "GRIDWATCH_KAFKA": s.kafka,
           "GRIDWATCH_HOME": str(s.home)}
    done = subprocess.run([sys.executable, "-m", "gridwatch.cli", "forecast", "SHS", "--csv"],
                          env=env, capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout == text
    # A station that is not the manager's is not served.
    assert page.request.get(f"{g.origin}/api/forecast/XHS.csv").status == 404


def test_the_selector_switches_station(browser: Any, gateway_only: Any) -> None:
    g, r, _ = gateway_only
    setup_station(r)
    origin = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    other = put_forecast(r, "XHS", origin, 3.0)
    page = browser.new_context(viewport={"width": 1600, "height": 900}).new_page()
    login(page, r, g.origin, User("m2", "station_manager", stations=("SHS", "XHS")))
    pick = page.locator("#pick")
    expect(pick).to_be_visible()
    expect(pick.locator("option")).to_have_count(2)
    view_drawn(page)
    assert series(page, "预测")[PAST:] != other["yhat"]
    pick.select_option("XHS")
    page.wait_for_function(f"""(want) => {{ const d = ({SERIES})('预测');
      return d && d.length === want.length && d.every((v, i) => v === want[i]); }}""",
                           arg=[None] * PAST + other["yhat"])
    expect(page.locator("#csv")).to_have_attribute("href", "/api/forecast/XHS.csv")
    expect(page.locator("#peaks tr").nth(1).locator("td").nth(1)).to_have_text(str(round(other["yhat"][3])))
    pick.select_option("SHS")
    expect(page.locator("#csv")).to_have_attribute("href", "/api/forecast/SHS.csv")
