"""The station view of a forecast record: arrivals up to now only, last week's same
hours, and the CSV rows the page's download and the CLI share."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from typing import Any

from gridwatch.streams.simulate import CST

from gridwatch import keys, station_view

ORIGIN = datetime(2026, 11, 23, 9, tzinfo=CST)
H0 = keys.hour_of(ORIGIN.timestamp())


def record(n: int = 24) -> dict[str, Any]:
    hours = [(ORIGIN + timedelta(hours=i)).isoformat() for i in range(n)]
    yhat = [100.0 + i for i in range(n)]
    return {"v": 1, "station_id": "SHS", "origin": hours[0], "hours": hours, "yhat": yhat,
            "lo80": [y - 10 for y in yhat], "hi80": [y + 10 for y in yhat],
            "lo95": [y - 20 for y in yhat], "hi95": [y + 20 for y in yhat],
            "booked": [50] * n, "arrived": [7] + [0] * (n - 1), "peaks": [], "method": "seasonal",
            "notes": [], "holidays": [], "workdays": [], "made_at_event_time": ORIGIN.timestamp() + 600}


def test_arrivals_stop_at_the_hour_of_now_and_the_past_hours_come_before() -> None:
    rows = {H0 + k: {"arrived": str(10 + k)} for k in range(-12, 3)}
    now = ORIGIN.timestamp() + 2 * 3600 + 5  # 11:00:05, the third forecast hour
    v = station_view.build(record(), rows, now)
    past = station_view.PAST_HOURS
    assert len(v["hours"]) == past + 24 and v["forecast_from"] == past
    assert v["hours"][0] == (ORIGIN - timedelta(hours=past)).isoformat()  # the record's clock
    assert v["hours"][past] == ORIGIN.isoformat()
    assert v["now_index"] == past + 2
    assert v["arrived"][:past + 3] == [10 + k for k in range(-12, 3)]
    assert v["arrived"][past + 3:] == [None] * 21  # no zeros through the hours to come
    assert v["yhat"][:past] == [None] * past and v["yhat"][past:] == record()["yhat"]
    assert v["now"] == "2026-11-23T11:00:05+08:00"
    # No record of last week at all: unknown, not zero.
    assert v["last_week"] == [None] * (past + 24)
    # The record's other fields pass through.
    assert (v["method"], v["origin"], v["made_at_event_time"]) == (
        "seasonal", ORIGIN.isoformat(), ORIGIN.timestamp() + 600)


def test_last_week_is_the_same_hours_168_hours_earlier_missing_hours_zero() -> None:
    rows = {H0 - 168 + k: {"arrived": str(200 + k)} for k in range(0, 24, 2)}
    v = station_view.build(record(), rows, ORIGIN.timestamp())
    past = station_view.PAST_HOURS
    assert v["last_week"][past:] == [200 + k if k % 2 == 0 else 0 for k in range(24)]
    assert v["last_week"][:past] == [0] * past
    needed = station_view.hours_to_read(record())
    assert H0 - 168 in needed and H0 - past in needed and H0 + 23 in needed
    assert len(needed) == 2 * (past + 24)


def test_the_csv_rows_are_the_forecast_hours_of_the_view() -> None:
    rows = {H0: {"arrived": "31"}, H0 - 168: {"arrived": "40"}}
    v = station_view.build(record(), rows, ORIGIN.timestamp() + 60)
    parsed = list(csv.reader(io.StringIO(station_view.csv_text(v))))
    assert parsed[0] == list(station_view.COLUMNS)
    assert len(parsed) == 1 + 24
    first, second = parsed[1], parsed[2]
    assert first == [ORIGIN.isoformat(), "100.0", "90.0", "110.0", "80.0", "120.0", "50", "31", "40"]
    assert second[7] == "" and second[8] == "0"  # not arrived yet; last week had none
    assert station_view.csv_rows(v)[5] == [v["hours"][v["forecast_from"] + 5],
                                           *(v[c][v["forecast_from"] + 5] for c in station_view.COLUMNS[1:])]


def test_without_watermarks_now_is_when_the_record_was_made() -> None:
    assert station_view.event_now([], record()) == ORIGIN.timestamp() + 600
    assert station_view.event_now([b"5.0", "7.5"], record()) == 7.5
