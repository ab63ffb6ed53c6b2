"""Tests of the pure arrival forecaster."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest
from gridwatch.agents.forecast import BookingsView, Forecast, forecast_next

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def blend_alone(*args: Any, **kwargs: Any) -> Forecast:
    """The seasonal blend's forecast, without the statistical candidates. The tests of
    days that past years or a calendar call special (holidays, festivals, make-up working
    days) use it: the candidates leave those hours to the blend
    (test_the_candidates_leave_a_festivals_hours_to_the_blend), and fitting them at every
    validation origin would take most of this file's time."""
    return forecast_next(*args, models=(), **kwargs)


def station(hours: int, seed: int = 0, level: float = 100.0) -> tuple[np.ndarray, np.ndarray]:
    """Hourly Poisson arrivals with a daily and a weekly rhythm."""
    rng = np.random.default_rng(seed)
    t = np.arange(hours)
    daily = 1 + 0.8 * np.sin(2 * np.pi * (t % 24 - 6) / 24)
    weekly = np.where((t // 24) % 7 >= 5, 0.6, 1.0)
    ts = np.array([T0 + timedelta(hours=int(i)) for i in t])
    return ts, rng.poisson(level * daily * weekly).astype(float)


def at(i: int) -> datetime:
    return T0 + timedelta(hours=i)


def check_shape(fc: Forecast, horizon: int) -> None:
    assert len(fc.hours) == len(fc.yhat) == horizon
    for name in ("lo95", "lo80", "yhat", "hi80", "hi95"):
        v = np.asarray(getattr(fc, name))
        assert v.shape == (horizon,) and np.all(np.isfinite(v)) and np.all(v >= 0)
    a = np.array([fc.lo95, fc.lo80, fc.yhat, fc.hi80, fc.hi95])
    assert np.all(np.diff(a, axis=0) >= -1e-9)
    assert fc.hours[0] == fc.origin
    assert all(b - a == timedelta(hours=1) for a, b in zip(fc.hours, fc.hours[1:]))


def test_shapes_order_and_json() -> None:
    ts, y = station(8 * 168)
    fc = forecast_next(ts, y, origin=at(8 * 168), horizon=24)
    check_shape(fc, 24)
    assert "weekly" in fc.method
    # The one note names the model and its validation error beside the others'.
    assert len(fc.notes) == 1 and fc.notes[0].startswith("model: "), fc.notes
    d = json.loads(json.dumps(fc.to_dict()))
    assert d["origin"] == "2024-02-26T00:00:00Z" and len(d["hi95"]) == 24
    peaks = fc.peaks()
    assert peaks and all(0 < p["share"] < 1 and p["hint"].startswith("add staff") for p in peaks)
    assert sum(p["share"] for p in peaks) >= 0.4 - 1e-9


def test_accurate_on_a_regular_series() -> None:
    ts, y = station(9 * 168, seed=1)
    o = 8 * 168
    fc = forecast_next(ts[:o], y[:o], origin=at(o))
    actual = y[o:o + 24]
    assert np.mean(np.abs(np.array(fc.yhat) - actual)) < 0.2 * actual.mean()


def test_short_history_falls_back_and_says_so() -> None:
    ts, y = station(5 * 24)
    fc = forecast_next(ts, y, origin=at(5 * 24), horizon=24)
    check_shape(fc, 24)
    assert "daily fallback" in fc.method
    assert any("less than 2 weeks" in n for n in fc.notes)
    assert abs(np.mean(fc.yhat) - y[-72:].mean()) < 0.3 * y[-72:].mean()


def test_no_history_gives_zeros_with_a_note() -> None:
    fc = forecast_next([], [], origin=T0, horizon=6)
    check_shape(fc, 6)
    assert fc.yhat == [0.0] * 6 and any("no history" in n for n in fc.notes)


def test_gaps_are_missing_not_zero() -> None:
    ts, y = station(8 * 168, seed=2)
    keep = np.random.default_rng(3).random(y.size) > 0.25
    full = forecast_next(ts, y, origin=at(8 * 168))
    gappy = forecast_next(ts[keep], y[keep], origin=at(8 * 168))
    check_shape(gappy, 24)
    assert abs(np.mean(gappy.yhat) / np.mean(full.yhat) - 1) < 0.1


def test_zero_hours_are_real_zeros() -> None:
    ts, y = station(8 * 168, seed=4)
    y[(np.arange(y.size) % 24) < 5] = 0.0  # closed at night
    fc = forecast_next(ts, y, origin=at(8 * 168))
    assert max(fc.yhat[:5]) < 1.0 and min(fc.yhat[8:20]) > 20


def test_level_shift_is_followed_within_a_day() -> None:
    ts, y = station(8 * 168, seed=5)
    y[-30:] = np.round(y[-30:] * 0.3)  # a lockdown 30 hours before the origin
    fc = forecast_next(ts, y, origin=at(8 * 168))
    _, normal = station(8 * 168 + 24, seed=5)
    ratio = np.sum(fc.yhat) / normal[-24:].sum()
    assert 0.2 < ratio < 0.55


def test_no_look_ahead() -> None:
    ts, y = station(9 * 168, seed=6)
    o = 8 * 168 + 7
    before = forecast_next(ts[:o], y[:o], origin=at(o))
    for cut in (o + 1, o + 30, y.size):
        after = forecast_next(ts[:cut], y[:cut], origin=at(o))
        assert after == before


def test_naive_inputs_are_utc_and_the_origin_offset_sets_local_days() -> None:
    ts, y = station(8 * 168)
    naive = np.array([t.replace(tzinfo=None) for t in ts])
    assert forecast_next(naive, y, origin=at(8 * 168)).yhat == forecast_next(ts, y, origin=at(8 * 168)).yhat
    # Day types and dates are the origin's local ones: a forecast made at +08:00 is the
    # one made on the same series written in local wall-clock time.
    tz = timezone(timedelta(hours=8))
    fc = forecast_next(ts, y, origin=at(8 * 168).astimezone(tz))
    local = forecast_next(ts + timedelta(hours=8), y, origin=at(8 * 168 + 8))
    assert fc.origin.utcoffset() == timedelta(hours=8) and fc.hours[0] == at(8 * 168)
    assert fc.yhat == local.yhat
    assert fc.yhat != forecast_next(ts, y, origin=at(8 * 168)).yhat


def booked_station(days: int, seed: int) -> tuple[np.ndarray, np.ndarray, dict[int, dict[int, float]]]:
    """Arrivals whose day-to-day swings are seen early in the bookings."""
    rng = np.random.default_rng(seed)
    t = np.arange(days * 24)
    day_factor = np.repeat(rng.lognormal(0.0, 0.3, days), 24)  # unknown from history alone
    mean = 80 * (1 + 0.8 * np.sin(2 * np.pi * (t % 24 - 6) / 24)) * day_factor
    y = rng.poisson(mean).astype(float)
    share = lambda lead: 0.8 - 0.02 * lead  # share booked by lead hours
    booked = {int(i): {lead: float(rng.binomial(int(y[i]), share(lead))) for lead in range(24)}
              for i in t}
    ts = np.array([at(int(i)) for i in t])
    return ts, y, booked


def test_bookings_improve_accuracy() -> None:
    ts, y, booked = booked_station(50, seed=7)
    err_with, err_without = [], []
    for o in range(43 * 24, 49 * 24, 24):
        hist = [(at(i), float(lead), booked[i][lead], y[i])
                for i in range(o - 21 * 24, o) for lead in range(24)]
        view = BookingsView(booked_now={at(o + i): booked[o + i][i] for i in range(24)},
                            history=hist)
        a = y[o:o + 24]
        with_b = forecast_next(ts[:o], y[:o], origin=at(o), bookings=view)
        without = forecast_next(ts[:o], y[:o], origin=at(o))
        check_shape(with_b, 24)
        assert "pickup" in with_b.method
        err_with.append(np.abs(a - with_b.yhat).mean())
        err_without.append(np.abs(a - without.yhat).mean())
    assert np.mean(err_with) < 0.7 * np.mean(err_without)


def test_bookings_without_history_are_ignored_with_a_note() -> None:
    ts, y = station(8 * 168)
    view = BookingsView(booked_now={at(8 * 168): 50.0})
    fc = forecast_next(ts, y, origin=at(8 * 168), bookings=view)
    assert any("bookings ignored" in n for n in fc.notes)
    assert fc.yhat == forecast_next(ts, y, origin=at(8 * 168)).yhat


@pytest.mark.parametrize("horizon", [1, 48])
def test_other_horizons(horizon: int) -> None:
    ts, y = station(8 * 168)
    check_shape(forecast_next(ts, y, origin=at(8 * 168), horizon=horizon), horizon)


def test_an_hour_or_a_day_of_history_still_forecasts() -> None:
    from datetime import datetime, timedelta, timezone

    from gridwatch.agents.forecast import forecast_next

    origin = datetime(2026, 11, 22, 6, tzinfo=timezone.utc)
    for hours in (1, 5, 30):
        ts = [origin - timedelta(hours=h) for h in range(1, hours + 1)]
        fc = forecast_next(ts, [3.0] * hours, origin=origin)
        assert len(fc.yhat) == 24
        assert all(lo <= y <= hi for lo, y, hi in zip(fc.lo95, fc.yhat, fc.hi95))
        assert any("less than 2 weeks" in n for n in fc.notes)


def schedule(hours: int, seed: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """A timetable-like series (departures per hour): each week repeats the last one,
    with a few services added or dropped; last week is the best guess for this week."""
    rng = np.random.default_rng(seed)
    week = rng.poisson(12 * (1 + np.sin(2 * np.pi * (np.arange(168) % 24 - 7) / 24)).clip(0.1))
    weeks = []
    for _ in range(hours // 168 + 1):
        week = np.maximum(week + rng.integers(-1, 2, 168) * (rng.random(168) < 0.2), 0)
        weeks.append(week.astype(float))
    y = np.concatenate(weeks)[:hours]
    return np.array([at(int(i)) for i in range(hours)]), y


def test_a_holiday_a_week_ago_is_not_repeated(monkeypatch: pytest.MonkeyPatch) -> None:
    import gridwatch.agents.forecast as fmod

    ts, y = schedule(9 * 168)
    o = 8 * 168
    normal = y[o:o + 24].sum()
    y = y.copy()
    y[o - 168:o - 144] = np.round(y[o - 168:o - 144] * 0.3)  # a holiday, one week before
    fc = forecast_next(ts[:o], y[:o], origin=at(o))
    err = np.abs(np.array(fc.yhat) - y[o:o + 24]).mean()
    assert abs(np.sum(fc.yhat) / normal - 1) < 0.1
    # Without the odd-day rule the blend copies last week's holiday.
    monkeypatch.setattr(fmod, "ODD_DAY", 1e9)
    copied = forecast_next(ts[:o], y[:o], origin=at(o))
    assert np.abs(np.array(copied.yhat) - y[o:o + 24]).mean() > 1.5 * err


def test_no_look_ahead_around_an_odd_day() -> None:
    # The odd-day test reads a day centred on an hour a week ago: data from after the
    # origin, odd or not, must not change the forecast.
    ts, y = schedule(9 * 168, seed=9)
    o = 8 * 168 + 5
    before = forecast_next(ts[:o], y[:o], origin=at(o))
    y2 = y.copy()
    y2[o:] = 0.0  # an outage starting at the origin
    for cut in (o + 1, o + 12, o + 30, y.size):
        assert forecast_next(ts[:cut], y2[:cut], origin=at(o)) == before
        assert forecast_next(ts[:cut], y[:cut], origin=at(o)) == before


def yearly_station(christmas: dict[int, float]) -> tuple[np.ndarray, np.ndarray, int]:
    """Three years and eight weeks of arrivals from 2021-11-01; on 25 December of the
    years in ``christmas`` the day carries that factor. Returns ts, y and the index of
    2024-12-25 00:00 (the origin)."""
    start = datetime(2021, 11, 1, tzinfo=timezone.utc)
    origin = datetime(2024, 12, 25, tzinfo=timezone.utc)
    hours = int((origin - start).total_seconds() // 3600)
    rng = np.random.default_rng(3)
    t = np.arange(hours + 24)
    mean = 100 * (1 + 0.8 * np.sin(2 * np.pi * (t % 24 - 6) / 24))
    ts = np.array([start + timedelta(hours=int(i)) for i in t])
    for year, factor in christmas.items():
        day = int((datetime(year, 12, 25, tzinfo=timezone.utc) - start).total_seconds() // 3600)
        mean[day:day + 24] *= factor
    return ts, rng.poisson(mean).astype(float), hours


def test_a_date_odd_in_past_years_is_expected_again() -> None:
    ts, y, o = yearly_station({2021: 0.2, 2022: 0.2, 2023: 0.2})
    normal = y[o - 24:o].sum()
    fc = blend_alone(ts[:o], y[:o], origin=ts[o])
    assert np.sum(fc.yhat) < 0.35 * normal
    # With only the recent weeks, the same day looks ordinary.
    recent = blend_alone(ts[o - 10 * 168:o], y[o - 10 * 168:o], origin=ts[o])
    assert np.sum(recent.yhat) > 0.8 * normal
    # Look-ahead: the forecast for the origin does not change with hours after it.
    assert blend_alone(ts, y, origin=ts[o]).yhat == fc.yhat


def test_the_forecast_names_the_days_past_years_call_odd() -> None:
    """The station manager sees why a day is forecast low: the date, or the holiday of a
    calendar and the day's distance from it, and how far past years put it off."""
    ts, y, o = yearly_station({2021: 0.2, 2022: 0.2, 2023: 0.2})
    fc = blend_alone(ts[:o], y[:o], origin=ts[o] - timedelta(hours=6))
    assert [(h["day"], h["holiday"], h["offset"]) for h in fc.holidays] == [
        ("2024-12-25", None, None)]
    assert 0.1 < fc.holidays[0]["factor"] < 0.35
    assert any(n.startswith("2024-12-25 (this date): past years put the day at 0.") for n in fc.notes)
    assert json.loads(json.dumps(fc.to_dict()))["holidays"] == fc.holidays
    ordinary = blend_alone(ts[:o - 7 * 24], y[:o - 7 * 24], origin=ts[o - 7 * 24])
    assert ordinary.holidays == [] and ordinary.to_dict()["holidays"] == []

    ts, y, origin = spring_festival_station()
    fc = blend_alone(ts, y, origin=origin + timedelta(hours=24), calendar="CN")
    assert [(h["day"], h["holiday"], h["offset"]) for h in fc.holidays] == [
        ("2025-01-30", "Spring Festival", 1)]
    assert fc.holidays[0]["factor"] < 0.35
    assert "2025-01-30 (Spring Festival, 1 day after)" in fc.notes[-1]
    # Without the calendar the festival's date was ordinary in past years: nothing named.
    assert blend_alone(ts, y, origin=origin + timedelta(hours=24)).holidays == []


def test_a_one_off_last_year_is_outvoted() -> None:
    ts, y, o = yearly_station({2023: 0.2})  # an outage on one 25 December only
    fc = blend_alone(ts[:o], y[:o], origin=ts[o])
    assert np.sum(fc.yhat) > 0.8 * y[o - 24:o].sum()


def test_one_known_year_does_not_make_a_date_come_back() -> None:
    """With only last year's 25 December in the history, it is not copied; with two
    known years that agree, it is."""
    ts, y, o = yearly_station({2022: 0.2, 2023: 0.2})
    normal = y[o - 24:o].sum()
    one_year = o - 400 * 24  # from late November 2023: only 2023's 25 December
    fc = blend_alone(ts[one_year:o], y[one_year:o], origin=ts[o])
    assert np.sum(fc.yhat) > 0.8 * normal
    two_years = o - 770 * 24  # from mid-November 2022
    fc = blend_alone(ts[two_years:o], y[two_years:o], origin=ts[o])
    assert np.sum(fc.yhat) < 0.35 * normal


def test_the_first_weeks_of_a_series_do_not_vote_for_their_date() -> None:
    """A station whose records begin on 1 December 2022, busier in its first half year:
    that first December has no seasonal mean of its own (only the series' overall one),
    so it does not make December a busy date; December 2023 was ordinary."""
    start = datetime(2022, 12, 1, tzinfo=timezone.utc)
    origin = datetime(2024, 12, 4, tzinfo=timezone.utc)
    hours = int((origin - start).total_seconds() // 3600)
    t = np.arange(hours + 24)
    ts = np.array([start + timedelta(hours=int(i)) for i in t])
    level = np.where(t < 182 * 24, 200.0, 100.0)
    y = np.random.default_rng(4).poisson(level * (1 + 0.8 * np.sin(2 * np.pi * (t % 24 - 6) / 24)))
    fc = blend_alone(ts[:hours], y[:hours].astype(float), origin=ts[hours])
    normal = y[hours - 7 * 24:hours - 6 * 24].sum()
    assert fc.holidays == [], fc.holidays
    assert abs(np.sum(fc.yhat) / normal - 1) < 0.1, np.sum(fc.yhat) / normal
    # The seasons behind an hour: three weeks in, three; at the origin, all ten.
    from gridwatch.agents import forecast as fmod
    x = np.full(fmod.WINDOW, np.nan)
    x[-hours:] = y[:hours]
    assert fmod._lagged_known(x, 168, 10, x.size)[-hours + 3 * 168] == 3
    assert fmod._lagged_known(x, 168, 10, x.size)[-1] == 10


def test_station_history_is_kept_as_long_as_the_forecaster_reads_it() -> None:
    from gridwatch.agents.forecast import history_spans

    from gridwatch import keys

    origin = 500_000  # an hour index
    oldest = min(lo for lo, _ in history_spans(origin))
    assert oldest < origin - 3 * 365 * 24  # the past years are read
    # With a calendar the past years' stretches are wider (holidays move by weeks).
    widest = min(lo for lo, _ in history_spans(origin, calendar="CN"))
    assert widest < oldest
    assert keys.STATION_TTL_S >= (origin - widest) * 3600


@pytest.mark.parametrize(("calendar", "tz_hours", "days", "origins"), [
    # The Spring Festival moves by up to a month: on 22 January 2023 the day matched a
    # year back (1 February 2022) is only 355 days before; in 2024 it is 384.
    ("CN", 8, (date(2020, 1, 25), date(2021, 2, 12), date(2022, 2, 1), date(2023, 1, 22),
               date(2024, 2, 10)),
     (datetime(2023, 1, 21), datetime(2023, 1, 25), datetime(2024, 2, 8))),
    # Easter: Good Friday 7 April 2023 against 15 April 2022 and 2 April 2021.
    ("NZ-AUK", 12, (date(2020, 4, 10), date(2021, 4, 2), date(2022, 4, 15), date(2023, 4, 7)),
     (datetime(2023, 4, 6), datetime(2023, 4, 7), datetime(2023, 4, 10))),
])
def test_the_history_a_live_forecast_fetches_holds_what_its_calendar_matches(
        calendar: str, tz_hours: int, days: tuple[date, ...], origins: tuple[datetime, ...]) -> None:
    """The live refresher fetches only :func:`history_spans`; a forecast from those hours
    is the forecast from the whole history, also where a moving holiday is matched on a
    past day far from the same date. (Not to the last digit: means over the whole window
    set small priors. Spans that miss a matched day are off by 8-240 % here.)"""
    from gridwatch.agents.forecast import history_spans

    tz = timezone(timedelta(hours=tz_hours))
    start = datetime(2019, 6, 1, tzinfo=tz)
    ts, y = station_with_days(start, datetime(2024, 6, 1, tzinfo=tz), days, factor=0.3,
                              length=3, seed=7)
    hours = np.array([int(t.timestamp() // 3600) for t in ts])
    for local in origins:
        origin = local.replace(tzinfo=tz)
        o = int(origin.timestamp() // 3600)
        keep = np.zeros(hours.size, bool)
        for lo, hi in history_spans(o, calendar=calendar):
            keep |= (hours >= lo) & (hours < hi)
        # The candidates read only the recent weeks: checked at the first origin; the
        # others, about the days matched in past years, run the blend alone.
        run = forecast_next if local == origins[0] else blend_alone
        full = run(ts[hours < o], y[hours < o], origin=origin, calendar=calendar)
        fetched = run(ts[keep], y[keep], origin=origin, calendar=calendar)
        assert np.allclose(fetched.yhat, full.yhat, rtol=0.01, atol=0.5), local
        assert np.allclose(fetched.hi80, full.hi80, rtol=0.01, atol=0.5), local


def spring_festival_station() -> tuple[np.ndarray, np.ndarray, datetime]:
    """Three years and three months of arrivals in China (+08:00) up to the 2025 Spring
    Festival (29 January); the festival's first week in 2022-2024 carries 20 % of the
    traffic. Returns ts, y (up to the origin) and the origin: 2025-01-29 00:00 local."""
    cst = timezone(timedelta(hours=8))
    origin = datetime(2025, 1, 29, tzinfo=cst)
    ts, y = station_with_days(datetime(2021, 10, 1, tzinfo=cst), origin,
                              (date(2022, 2, 1), date(2023, 1, 22), date(2024, 2, 10)),
                              factor=0.2, length=7, seed=4)
    return ts, y, origin


def station_with_days(start: datetime, origin: datetime, days: tuple[date, ...], *,
                      factor: float, length: int = 1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Hourly arrivals (a daily wave around 100) from ``start`` up to ``origin``, on
    ``start``'s clock; from each of ``days`` on, ``length`` days carry ``factor`` times
    the traffic."""
    t = np.arange(int((origin - start).total_seconds() // 3600))
    mean = 100 * (1 + 0.8 * np.sin(2 * np.pi * (t % 24 - 6) / 24))
    for first in days:
        day = int((datetime(first.year, first.month, first.day, tzinfo=start.tzinfo) - start)
                  .total_seconds() // 3600)
        mean[day:day + length * 24] *= factor
    ts = np.array([start + timedelta(hours=int(i)) for i in t])
    return ts, np.random.default_rng(seed).poisson(mean).astype(float)


def test_the_spring_festival_is_expected_on_its_lunar_date() -> None:
    ts, y, origin = spring_festival_station()
    normal = y[-24:].sum()
    fc = blend_alone(ts, y, origin=origin, calendar="CN")
    assert np.sum(fc.yhat) < 0.35 * normal
    # On calendar dates only, 29 January was ordinary in 2022-2024.
    plain = blend_alone(ts, y, origin=origin)
    assert np.sum(plain.yhat) > 0.8 * normal


def test_the_candidates_leave_a_festivals_hours_to_the_blend() -> None:
    """Why the tests of special days may run the blend alone: from noon the day before
    the Spring Festival, the statistical candidates take part in the forecast of the
    ordinary hours, and the festival's hours are the blend's to the last digit."""
    ts, y, festival = spring_festival_station()
    origin = festival - timedelta(hours=12)
    before = np.array([t < origin for t in ts])
    full = forecast_next(ts[before], y[before], origin=origin, calendar="CN")
    alone = blend_alone(ts[before], y[before], origin=origin, calendar="CN")
    assert full.model["weights"]["blend"] < 1, full.model
    assert [h["day"] for h in full.holidays] == ["2025-01-29"]
    assert np.allclose(full.yhat[12:], alone.yhat[12:], rtol=0, atol=1e-9)
    assert not np.allclose(full.yhat[:12], alone.yhat[:12], rtol=0, atol=1e-3)


def test_one_past_festival_is_enough_with_the_calendar() -> None:
    """Only the 2024 festival in the history: one year does not make a date come back,
    except a day the calendar matched on its festival."""
    ts, y, origin = spring_festival_station()
    since = int(np.searchsorted(ts, datetime(2023, 11, 1, tzinfo=origin.tzinfo)))
    ts, y = ts[since:], y[since:]
    normal = y[-24:].sum()
    assert np.sum(blend_alone(ts, y, origin=origin, calendar="CN").yhat) < 0.35 * normal
    assert np.sum(blend_alone(ts, y, origin=origin).yhat) > 0.8 * normal


def test_an_unknown_calendar_is_refused() -> None:
    ts, y = station(3 * 168)
    with pytest.raises(ValueError, match="unknown holiday calendar"):
        forecast_next(ts, y, origin=at(3 * 168), calendar="Gregorian")


def test_the_seasonal_mean_leaves_out_the_highest_and_the_lowest() -> None:
    from gridwatch.agents.forecast import _lagged_mean, _trimmed_mean_last

    rng = np.random.default_rng(3)
    stack = rng.poisson(20, (500, 10)).astype(float)
    stack[rng.random(stack.shape) < 0.3] = np.nan
    stack[0] = [1, 2, 3, 4, np.nan, np.nan, np.nan, np.nan, np.nan, 100]
    stack[1] = [5, 7, 6, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan]
    stack[2] = np.nan
    got = _trimmed_mean_last(stack)
    for row, value in zip(stack, got):
        known = np.sort(row[~np.isnan(row)])
        if known.size >= 4:
            assert value == pytest.approx(known[1:-1].mean())
        elif known.size:
            assert value == pytest.approx(np.median(known))  # too few to trim: the median
        else:
            assert np.isnan(value)
    assert got[0] == pytest.approx(3.0)  # 100 (a one-off) and 1 left out
    assert got[1] == pytest.approx(6.0)
    # Over ten weeks one hour-of-week value far off (a festival night) does not move the
    # seasonal mean, and the other weeks' values are all used.
    x = np.tile(np.arange(168.0), 10)
    x[3 * 168 + 5] = 5000.0
    x[6 * 168 + 7] = np.nan
    base = _lagged_mean(x, 168, 10, 10 * 168, 11 * 168)
    assert np.allclose(base, np.arange(168.0))


def test_the_dragon_boat_festival_is_expected_on_its_lunar_date() -> None:
    """A station where the Dragon Boat Festival's day brings 2.5 times the traffic, in
    2022-2024 (3 June, 22 June, 10 June); the 2025 festival is on 31 May."""
    cst = timezone(timedelta(hours=8))
    origin = datetime(2025, 5, 31, tzinfo=cst)
    ts, y = station_with_days(datetime(2021, 12, 1, tzinfo=cst), origin,
                              (date(2022, 6, 3), date(2023, 6, 22), date(2024, 6, 10)),
                              factor=2.5, seed=5)
    normal = y[-24:].sum()
    assert np.sum(blend_alone(ts, y, origin=origin, calendar="CN").yhat) > 1.8 * normal
    # On calendar dates only, 31 May was ordinary in 2022-2024.
    assert np.sum(blend_alone(ts, y, origin=origin).yhat) < 1.2 * normal


def test_easter_is_expected_around_its_date_with_a_countrys_calendar() -> None:
    """Auckland pedestrians: from Good Friday to Easter Monday the city is quiet (30 %), in
    2022-2024 (15-18 April, 7-10 April, 29 March-1 April). Good Friday 2025 is on 18 April,
    a date that was an ordinary day in two of those years."""
    nz = timezone(timedelta(hours=12))
    origin = datetime(2025, 4, 18, tzinfo=nz)
    ts, y = station_with_days(datetime(2021, 12, 1, tzinfo=nz), origin,
                              (date(2022, 4, 15), date(2023, 4, 7), date(2024, 3, 29)),
                              factor=0.3, length=4, seed=6)
    normal = y[-24:].sum()
    assert np.sum(blend_alone(ts, y, origin=origin, calendar="NZ-AUK").yhat) < 0.5 * normal
    # On calendar dates only, 18 April was a holiday in one past year: not enough.
    assert np.sum(blend_alone(ts, y, origin=origin).yhat) > 0.8 * normal


CST8 = timezone(timedelta(hours=8))
COMMUTE = np.array([0, 0, 0, 0, 0, 5, 40, 120, 200, 80, 40, 40, 60, 40, 40, 50, 90, 180, 150, 60,
                    30, 20, 10, 2], float)
LEISURE = np.array([0, 0, 0, 0, 0, 2, 5, 10, 30, 60, 80, 90, 90, 80, 70, 60, 50, 40, 30, 20, 10,
                    5, 2, 1], float)
LEISURE *= COMMUTE.sum() / LEISURE.sum()  # as many a day: no day looks odd by its total


def commuter_station(end: datetime, days: int = 480) -> tuple[list[datetime], np.ndarray]:
    """Poisson arrivals in China: a commuter rush on working days (the make-up weekend
    days among them), a midday crowd on the other weekend days."""
    from gridwatch import calendars

    start = end - timedelta(days=days)
    day = np.arange(np.datetime64(start.date()), np.datetime64(end.date()))
    weekday = (day.astype(np.int64) + 3) % 7
    working = (weekday < 5) | calendars.is_workday("CN", day)
    mean = np.where(working[:, None], COMMUTE, LEISURE).ravel()
    ts = [start + timedelta(hours=i) for i in range(mean.size)]
    return ts, np.random.default_rng(3).poisson(mean).astype(float)


def test_a_make_up_working_day_is_forecast_as_a_working_day() -> None:
    origin = datetime(2025, 9, 28, tzinfo=CST8)  # a Sunday worked before National Day's week
    ts, y = commuter_station(origin)
    with_calendar = blend_alone(ts, y, origin=origin, horizon=24, calendar="CN")
    plain = blend_alone(ts, y, origin=origin, horizon=24)
    assert np.abs(np.array(with_calendar.yhat) - COMMUTE).mean() < 12
    assert np.abs(np.array(plain.yhat) - COMMUTE).mean() > 25  # a Sunday's crowd
    assert with_calendar.yhat[8] > 150 > plain.yhat[8]
    assert any("2025-09-28" in n and "调休" in n for n in with_calendar.notes)
    assert with_calendar.workdays == ["2025-09-28"]
    assert json.loads(json.dumps(with_calendar.to_dict()))["workdays"] == ["2025-09-28"]
    assert not any("调休" in n for n in plain.notes) and plain.workdays == []


def test_the_weekend_after_a_make_up_day_is_a_weekend_again() -> None:
    # Saturday 11 October 2025 was worked; a week later the Saturday is an ordinary one,
    # and last Saturday's rush must not be copied into it.
    origin = datetime(2025, 10, 18, tzinfo=CST8)
    ts, y = commuter_station(origin)
    fc = blend_alone(ts, y, origin=origin, horizon=24, calendar="CN")
    assert np.abs(np.array(fc.yhat) - LEISURE).mean() < 8
    assert fc.yhat[8] < 60
    assert not any("调休" in n for n in fc.notes) and fc.workdays == []
    assert not any("known to" in n for n in fc.notes)


def test_a_year_without_listed_make_up_days_is_said() -> None:
    from gridwatch import calendars

    last = int(str(calendars.workdays("CN")[-1])[:4])
    origin = datetime(last + 1, 3, 2, tzinfo=CST8)
    ts, y = commuter_station(origin, days=120)
    fc = blend_alone(ts, y, origin=origin, horizon=24, calendar="CN")
    assert any(f"known to {last} only" in n for n in fc.notes), fc.notes
