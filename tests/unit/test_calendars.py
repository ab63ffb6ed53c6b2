"""Tests of the moving-holiday calendars."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from gridwatch import calendars


def test_names_are_checked() -> None:
    assert calendars.check(None) is None
    assert calendars.check("none") is None and calendars.check("") is None
    assert calendars.check(" cn ") == "CN"
    with pytest.raises(calendars.CalendarError, match="unknown holiday calendar 'lunar'"):
        calendars.check("lunar")


def test_the_spring_festival_falls_between_21_january_and_20_february() -> None:
    table = calendars.SPRING_FESTIVAL
    assert sorted(table) == list(range(2000, 2051))
    assert all(date(y, 1, 21) <= d <= date(y, 2, 20) for y, d in table.items())
    # A few known ones: 2020 (the Wuhan lockdown began two days before), 2024, 2026.
    assert table[2020] == date(2020, 1, 25)
    assert table[2024] == date(2024, 2, 10)
    assert table[2026] == date(2026, 2, 17)
    # Lunar years: consecutive festivals 354-384 days apart.
    gaps = np.diff([table[y].toordinal() for y in sorted(table)])
    assert gaps.min() >= 354 and gaps.max() <= 385


def days(*iso: str) -> np.ndarray:
    return np.array(iso, dtype="datetime64[D]")


def test_days_near_the_festival_are_matched_on_their_distance_from_it() -> None:
    then, mode = calendars.matched_days("CN", days("2025-01-26", "2025-02-28"), 1)
    # 3 days before the 2025 festival (29 January) -> 3 days before 10 February 2024.
    assert mode.tolist() == [1, 1]
    assert then.tolist() == [date(2024, 2, 7), date(2024, 3, 11)]  # 30 days after; 2024 leaps
    then, mode = calendars.matched_days("CN", days("2025-01-26"), 3)
    assert then.tolist() == [date(2022, 1, 29)]  # 2022's festival: 1 February


def test_a_date_in_a_past_festival_season_is_no_match_for_an_ordinary_day() -> None:
    # 10 March 2025 is 40 days after its festival; 10 March 2024 was 29 days after 2024's.
    _, mode = calendars.matched_days("CN", days("2025-03-10", "2025-07-15"), 1)
    assert mode.tolist() == [-1, 0]


def test_years_outside_the_table_fall_back_to_the_date() -> None:
    _, mode = calendars.matched_days("CN", days("2051-01-30", "2001-01-30"), 3)
    assert mode.tolist() == [0, 0]  # 2051 is not in the table; 1998 is not either


def test_the_dragon_boat_and_mid_autumn_festivals_fall_in_their_seasons() -> None:
    for table, first, last in ((calendars.DRAGON_BOAT, (5, 27), (6, 25)),
                               (calendars.MID_AUTUMN, (9, 7), (10, 8))):
        assert sorted(table) == list(range(2000, 2051))
        assert all(date(y, *first) <= d <= date(y, *last) for y, d in table.items())
        gaps = np.diff([table[y].toordinal() for y in sorted(table)])
        assert gaps.min() >= 354 and gaps.max() <= 385  # lunar years
    assert [calendars.DRAGON_BOAT[y] for y in (2023, 2024, 2025)] == [
        date(2023, 6, 22), date(2024, 6, 10), date(2025, 5, 31)]
    assert [calendars.MID_AUTUMN[y] for y in (2023, 2024, 2025)] == [
        date(2023, 9, 29), date(2024, 9, 17), date(2025, 10, 6)]


def test_days_near_the_dragon_boat_festival_are_matched_on_their_distance_from_it() -> None:
    then, mode = calendars.matched_days("CN", days("2025-05-31", "2025-06-02", "2025-05-20"), 1)
    assert mode.tolist() == [1, 1, 0]
    assert then[:2].tolist() == [date(2024, 6, 10), date(2024, 6, 12)]
    # 10 June 2025 is ordinary, but 10 June 2024 was the festival: no match that year.
    _, mode = calendars.matched_days("CN", days("2025-06-10"), 1)
    assert mode.tolist() == [-1]


def test_national_days_week_keeps_its_date_next_to_the_mid_autumn_festival() -> None:
    # 3 October 2025 is three days before that year's Mid-Autumn Festival (6 October),
    # and in National Day's week: matched on its date (3 October 2024), not the festival.
    _, mode = calendars.matched_days("CN", days("2025-10-03", "2025-10-06"), 1)
    assert mode.tolist() == [0, 0]
    # The festival of 2024 (17 September) against 2023's (29 September, outside the week).
    then, mode = calendars.matched_days("CN", days("2024-09-17"), 1)
    assert mode.tolist() == [1] and then.tolist() == [date(2023, 9, 29)]
    # The festival of 2026 (25 September): in 2025 it fell in National Day's week, so
    # that year is no match; in 2024 it is.
    _, mode = calendars.matched_days("CN", days("2026-09-25"), 1)
    assert mode.tolist() == [-1]
    then, mode = calendars.matched_days("CN", days("2026-09-25"), 2)
    assert mode.tolist() == [1] and then.tolist() == [date(2024, 9, 17)]


def test_a_country_of_the_holidays_package_is_a_calendar() -> None:
    assert calendars.check(" nz-auk ") == "NZ-AUK"
    assert calendars.check("GB") == "GB"
    with pytest.raises(calendars.CalendarError, match="unknown region 'ZZZ' of holiday calendar NZ"):
        calendars.check("NZ-ZZZ")
    with pytest.raises(calendars.CalendarError, match="a country code"):
        calendars.check("XX")


def test_a_countrys_moving_holidays_are_found_and_its_fixed_ones_left_on_their_date() -> None:
    names = {h.name: h for h in calendars.holidays_of("NZ-AUK")}
    # Easter, the Monday holidays and Matariki move; Christmas and Anzac Day do not.
    assert {"Good Friday", "Easter Monday", "Labour Day", "Matariki",
            "Sovereign's Birthday", "Auckland Anniversary Day"} <= set(names)
    assert not any("Christmas" in n or "Anzac" in n for n in names)
    assert names["Good Friday"].dates[2024] == date(2024, 3, 29)
    assert names["Good Friday"].dates[2025] == date(2025, 4, 18)
    # The sovereign's birthday keeps its place across the change of sovereign (2023).
    assert names["Sovereign's Birthday"].dates[2022] == date(2022, 6, 6)
    assert names["Sovereign's Birthday"].dates[2024] == date(2024, 6, 3)
    us = {h.name for h in calendars.holidays_of("US")}
    assert {"Thanksgiving Day", "Memorial Day", "Labor Day"} <= us
    assert "Independence Day" not in us
    # A country's holidays want two past years; the built-in festivals one.
    assert calendars.one_year_enough("CN") and not calendars.one_year_enough("NZ-AUK")


def test_days_around_easter_are_matched_on_their_distance_from_it() -> None:
    # Easter Saturday 2025 (19 April) and the Tuesday after (22 April): one year back,
    # the same days around Easter 2024 (30 March, 2 April).
    days = np.array(["2025-04-19", "2025-04-22", "2025-07-15"], dtype="datetime64[D]")
    then, mode = calendars.matched_days("NZ-AUK", days, 1)
    assert list(mode) == [1, 1, 0]
    assert list(then[:2]) == list(np.array(["2024-03-30", "2024-04-02"], dtype="datetime64[D]"))


def test_a_fixed_date_holiday_in_a_moving_ones_window_keeps_its_date() -> None:
    # Anzac Day 2025 (25 April) is four days after Easter Monday: matched on its date.
    then, mode = calendars.matched_days("NZ-AUK", np.array(["2025-04-25"], dtype="datetime64[D]"), 1)
    assert list(mode) == [0]
    # 21 April 2022, three days after Easter Monday: three years back that is Anzac Day
    # 2019 (Easter Monday 22 April), a holiday of its own: no match in that year.
    day = np.array(["2022-04-21"], dtype="datetime64[D]")
    assert list(calendars.matched_days("NZ-AUK", day, 3)[1]) == [-1]
    then, mode = calendars.matched_days("NZ-AUK", day, 1)  # 2021: 8 April, ordinary
    assert list(mode) == [1] and then[0] == np.datetime64("2021-04-08")


def test_chinas_make_up_working_days_are_listed() -> None:
    days = np.array(["2025-09-27", "2025-09-28", "2025-10-04", "2025-10-11", "2026-02-14"],
                    dtype="datetime64[D]")
    # 2025: Sunday 28 September and Saturday 11 October were worked for National Day's
    # week; 4 October was inside it; 2026: Saturday 14 February for the Spring Festival.
    assert calendars.is_workday("CN", days).tolist() == [False, True, False, True, True]
    listed = calendars.workdays("CN")
    weekday = (listed.astype(np.int64) + 3) % 7  # 0 = Monday
    assert listed.size > 100 and np.all(weekday >= 5)
    assert np.all(np.diff(listed.astype(np.int64)) > 0)
    assert not calendars.is_workday("NZ-AUK", days).any()  # a country without them
