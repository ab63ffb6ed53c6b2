"""The officer's counters each carry their window; "today" is the district's day of the
feed's event time."""

from __future__ import annotations

import zoneinfo
from datetime import datetime

from gridwatch.ws import counters

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


def test_every_counter_has_a_window_and_none_is_unlabelled() -> None:
    m = counters.summary_message({"checkpoint_scans": 12, "late": 3, "duplicates": 1},
                                 open_alerts=4, alerts_today=2, alerts_last_hour=1,
                                 now=datetime(2026, 11, 23, 0, 30, tzinfo=SHANGHAI).timestamp(),
                                 tz=SHANGHAI)
    assert m["windows"] == counters.WINDOWS
    assert set(counters.WINDOWS.values()) == {"now", "last_hour", "today", "all_time"}
    assert m["windows"]["alerts_last_hour"] == "last_hour" and m["alerts_last_hour"] == 1
    assert m["event_ts"] == datetime(2026, 11, 23, 0, 30, tzinfo=SHANGHAI).timestamp()
    assert m["windows"]["open_alerts"] == "now" and m["windows"]["alerts_today"] == "today"
    assert all(m["windows"][k] == "all_time" for k in ("checkpoint_scans", "loiter_reports",
                                                       "station_tickets", "deadletter", "late"))
    assert (m["open_alerts"], m["alerts_today"], m["checkpoint_scans"], m["loiter_reports"]) == (4, 2, 12, 0)
    assert m["day"] == "2026-11-23"  # 00:30 in Shanghai, 16:30 the day before in UTC


def test_today_begins_at_the_districts_midnight() -> None:
    now = datetime(2026, 11, 23, 0, 30, tzinfo=SHANGHAI).timestamp()
    assert counters.day_start(now, SHANGHAI) == datetime(2026, 11, 23, tzinfo=SHANGHAI).timestamp()
    utc = zoneinfo.ZoneInfo("UTC")
    assert counters.day_start(now, utc) == datetime(2026, 11, 22, tzinfo=utc).timestamp()


def test_before_any_event_there_is_no_day_and_nothing_today() -> None:
    m = counters.summary_message({}, open_alerts=0, alerts_today=5, alerts_last_hour=5,
                                 now=None, tz=SHANGHAI)
    assert m["day"] is None and m["alerts_today"] == 0 and m["alerts_last_hour"] == 0
    assert m["event_ts"] is None
