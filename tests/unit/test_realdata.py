"""Tests of the real-data loaders' own logic, on small files the tests write."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench import realdata


def test_event_counts_fill_quiet_hours_with_zeros() -> None:
    hours = pd.Series(pd.to_datetime(["2024-01-01 10:00", "2024-01-01 10:00", "2024-01-01 13:00"]))
    ts, y = realdata._event_counts(hours)
    assert ts.tolist() == list(np.arange("2024-01-01T10", "2024-01-01T14", dtype="datetime64[h]")
                               .astype("datetime64[s]"))
    assert y.tolist() == [2.0, 0.0, 0.0, 1.0]


def test_flight_departures_count_one_airport_and_cut_the_lone_first_minute_of_july(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "flights.parquet"
    pd.DataFrame({
        "date": pd.to_datetime(["2001-06-30 22:05", "2001-06-30 22:50", "2001-06-30 23:10",
                                "2001-06-30 22:30", "2001-07-01 00:00"]),
        "origin": ["ORD", "ORD", "ORD", "ATL", "ORD"],
    }).to_parquet(path)
    monkeypatch.setattr(realdata, "_vega_datasets_file", lambda name: str(path))
    ts, y = realdata.us_flight_departures("ORD")
    assert [str(t) for t in ts] == ["2001-06-30T22:00:00", "2001-06-30T23:00:00"]
    assert y.tolist() == [2.0, 1.0]
    with pytest.raises(ValueError, match="no departures from an airport named 'XYZ'"):
        realdata.us_flight_departures("XYZ")


def test_a_missing_npm_data_package_says_how_to_install_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(realdata.os.path, "exists", lambda p: False)
    with pytest.raises(ImportError, match="npm install --no-save vega-datasets"):
        realdata._vega_datasets_file("flights-3m.parquet")
    # ``available`` leaves out a series whose package is missing instead of failing.
    assert realdata.available({"x": lambda: realdata.us_flight_departures("ORD")}) == {}
