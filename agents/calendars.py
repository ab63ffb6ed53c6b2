"""Holidays that move against the Gregorian calendar, for the forecaster's past years.

The forecaster expects a date that was odd in past years (a holiday) to be odd again,
matching past years on the same calendar date. A holiday that follows the lunar
calendar moves by up to a month from year to year, so near it past years are matched on
the days from the holiday instead: 3 days before the Spring Festival this year is
compared with 3 days before it in each past year.

``CN``: the Spring Festival (first day of the lunar year, 春节) and the travel season
around it (春运, about 15 days before to 25 after; the window here is wider, 20 before
and 30 after, so that its edges are matched too). Dates from 2000 to 2050.
"""

from __future__ import annotations

from datetime import date
from functools import cache

import numpy as np

_SPRING_FESTIVAL = """
2000-02-05 2001-01-24 2002-02-12 2003-02-01 2004-01-22 2005-02-09 2006-01-29 2007-02-18
2008-02-07 2009-01-26 2010-02-14 2011-02-03 2012-01-23 2013-02-10 2014-01-31 2015-02-19
2016-02-08 2017-01-28 2018-02-16 2019-02-05 2020-01-25 2021-02-12 2022-02-01 2023-01-22
2024-02-10 2025-01-29 2026-02-17 2027-02-06 2028-01-26 2029-02-13 2030-02-03 2031-01-23
2032-02-11 2033-01-31 2034-02-19 2035-02-08 2036-01-28 2037-02-15 2038-02-04 2039-01-24
2040-02-12 2041-02-01 2042-01-22 2043-02-10 2044-01-30 2045-02-17 2046-02-06 2047-01-26
2048-02-14 2049-02-02 2050-01-23
"""

#: Year -> the Spring Festival's date.
SPRING_FESTIVAL: dict[int, date] = {
    d.year: d for d in (date.fromisoformat(s) for s in _SPRING_FESTIVAL.split())
}

#: Calendar name -> (anchor dates by year, days before, days after).
CALENDARS: dict[str, tuple[dict[int, date], int, int]] = {
    "CN": (SPRING_FESTIVAL, 20, 30),
}


class CalendarError(ValueError):
    """An unknown calendar name."""


def check(name: str | None) -> str | None:
    """``name`` itself if it is a known calendar or empty/"none" (-> None); else an error."""
    if name is None or name.strip().lower() in ("", "none"):
        return None
    if name.strip().upper() not in CALENDARS:
        raise CalendarError(f"unknown holiday calendar {name!r}: use one of "
                            f"{', '.join(sorted(CALENDARS))} or none")
    return name.strip().upper()


@cache  # read on every forecast; the table never changes
def anchors(name: str) -> tuple[np.ndarray, np.ndarray, int, int]:
    """``(years, anchor days as datetime64[D], days before, days after)`` of a calendar."""
    table, before, after = CALENDARS[name]
    years = np.array(sorted(table), np.int64)
    days = np.array([table[int(y)].isoformat() for y in years], dtype="datetime64[D]")
    return years, days, before, after


def matched_days(name: str, day: np.ndarray, years_back: int) -> tuple[np.ndarray, np.ndarray]:
    """For local days ``day`` (datetime64[D]): the day ``years_back`` years earlier that
    matches it by the moving holiday, and whether the holiday decides it.

    Returns ``(then, mode)``: ``mode`` is 1 where ``day`` is within the holiday's window
    (``then`` = the same offset from that year's holiday), -1 where ``day`` is outside
    it but its same calendar date ``years_back`` years earlier was inside that year's
    window (no match: the caller leaves that year out), 0 elsewhere (``then`` is not
    set: the caller matches on the calendar date). Years outside the table are 0.
    """
    years, days, before, after = anchors(name)
    year = day.astype("datetime64[Y]").astype(np.int64) + 1970
    then = np.zeros(day.shape, dtype="datetime64[D]")
    mode = np.zeros(day.shape, np.int8)
    pos = np.searchsorted(years, year)
    known = (pos < years.size) & (years[np.minimum(pos, years.size - 1)] == year)
    past_pos = pos - years_back
    known &= past_pos >= 0
    if not np.any(known):
        return then, mode
    anchor = days[np.minimum(pos, years.size - 1)]
    past_anchor = days[np.clip(past_pos, 0, years.size - 1)]
    offset = (day - anchor).astype(np.int64)
    inside = known & (offset >= -before) & (offset <= after)
    then = np.where(inside, past_anchor + offset, then)
    mode[inside] = 1
    # Outside this year's window: is the same calendar date inside the past year's?
    month = day.astype("datetime64[M]")
    same_m = month - 12 * years_back
    same = same_m.astype("datetime64[D]") + (day - month.astype("datetime64[D]"))
    past_offset = (same - past_anchor).astype(np.int64)
    mode[known & ~inside & (past_offset >= -before) & (past_offset <= after)] = -1
    return then, mode
