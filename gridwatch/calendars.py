"""Holidays that move against the Gregorian calendar, for the forecaster's past years.

The forecaster expects a date that was odd in past years (a holiday) to be odd again,
matching past years on the same calendar date. A holiday that follows the lunar
calendar moves by up to a month from year to year, so near it past years are matched on
the days from the holiday instead: 3 days before the Spring Festival this year is
compared with 3 days before it in each past year.

``CN`` (dates from 2000 to 2050, from the lunar calendar):

* the Spring Festival (first day of the lunar year, 春节) and the travel season around
  it (春运, about 15 days before to 25 after; the window here is wider, 20 before and 30
  after, so that its edges are matched too);
* the Dragon Boat Festival (端午, 5th day of the 5th month; late May to late June) and
  the Mid-Autumn Festival (中秋, 15th day of the 8th month; 8 September to 6 October),
  each a three-day break with the journeys either side: 4 days before to 4 after.
  National Day's week (1-7 October) has a fixed date and stays matched on it, also when
  the Mid-Autumn Festival falls next to or inside it; a past day matched by the
  Mid-Autumn Festival that fell in that week is no match.
* the make-up working days (调休): a weekend day worked in exchange for a weekday off
  next to a holiday, which the forecaster treats as a working day (:func:`workdays`).

Any other country, with a region where its holidays differ (``NZ-AUK``, ``AU-VIC``,
``US-MN``, ``GB``), from the package ``holidays``: each public holiday whose date moves
from year to year (Easter, a Monday holiday, Thanksgiving, Matariki) is matched on the
days from it, from 3 days before (the long weekend's Friday, the Monday of
Thanksgiving's week) to 4 after. Holidays on a fixed date keep their date, also inside
such a window (Anzac Day, 25 April, can fall four days after Easter Monday), and a match
that lands on one is none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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

_DRAGON_BOAT = """
2000-06-06 2001-06-25 2002-06-15 2003-06-04 2004-06-22 2005-06-11 2006-05-31 2007-06-19
2008-06-08 2009-05-28 2010-06-16 2011-06-06 2012-06-23 2013-06-12 2014-06-02 2015-06-20
2016-06-09 2017-05-30 2018-06-18 2019-06-07 2020-06-25 2021-06-14 2022-06-03 2023-06-22
2024-06-10 2025-05-31 2026-06-19 2027-06-09 2028-05-28 2029-06-16 2030-06-05 2031-06-24
2032-06-12 2033-06-01 2034-06-20 2035-06-10 2036-05-30 2037-06-18 2038-06-07 2039-05-27
2040-06-14 2041-06-03 2042-06-22 2043-06-11 2044-05-31 2045-06-19 2046-06-08 2047-05-29
2048-06-15 2049-06-04 2050-06-23
"""

_MID_AUTUMN = """
2000-09-12 2001-10-01 2002-09-21 2003-09-11 2004-09-28 2005-09-18 2006-10-06 2007-09-25
2008-09-14 2009-10-03 2010-09-22 2011-09-12 2012-09-30 2013-09-19 2014-09-08 2015-09-27
2016-09-15 2017-10-04 2018-09-24 2019-09-13 2020-10-01 2021-09-21 2022-09-10 2023-09-29
2024-09-17 2025-10-06 2026-09-25 2027-09-15 2028-10-03 2029-09-22 2030-09-12 2031-10-01
2032-09-19 2033-09-08 2034-09-27 2035-09-16 2036-10-04 2037-09-24 2038-09-13 2039-10-02
2040-09-20 2041-09-10 2042-09-28 2043-09-17 2044-10-05 2045-09-25 2046-09-15 2047-10-04
2048-09-22 2049-09-11 2050-09-30
"""


def _table(text: str) -> dict[int, date]:
    return {d.year: d for d in (date.fromisoformat(s) for s in text.split())}


#: Year -> the Spring Festival's date.
SPRING_FESTIVAL: dict[int, date] = _table(_SPRING_FESTIVAL)
#: Year -> the Dragon Boat Festival's date.
DRAGON_BOAT: dict[int, date] = _table(_DRAGON_BOAT)
#: Year -> the Mid-Autumn Festival's date.
MID_AUTUMN: dict[int, date] = _table(_MID_AUTUMN)


@dataclass(frozen=True)
class Moving:
    """A holiday that moves: its date by year, the days around it matched on their
    distance from it, and ``fixed`` (month, first day, last day) spans of a fixed-date
    holiday that stay matched on their date."""

    name: str
    dates: dict[int, date] = field(repr=False)
    before: int
    after: int
    fixed: tuple[tuple[int, int, int], ...] = ()


#: Calendar name -> its moving holidays; where windows overlap, the first decides.
CALENDARS: dict[str, tuple[Moving, ...]] = {
    "CN": (
        Moving("Spring Festival", SPRING_FESTIVAL, 20, 30),
        Moving("Dragon Boat Festival", DRAGON_BOAT, 4, 4),
        Moving("Mid-Autumn Festival", MID_AUTUMN, 4, 4, fixed=((10, 1, 7),)),
    ),
}


#: Years a country's holidays are listed for, and the days matched around each.
COUNTRY_YEARS = range(2000, 2051)
COUNTRY_BEFORE, COUNTRY_AFTER = 3, 4


class CalendarError(ValueError):
    """An unknown calendar name."""


def _supported() -> dict[str, list[str]]:
    import holidays

    return holidays.list_supported_countries()


def check(name: str | None) -> str | None:
    """``name`` itself (upper case) if it is a known calendar: a built-in one (``CN``) or
    a country code of the package ``holidays``, with a region after a dash where that
    country has them (``NZ-AUK``); None for empty or "none"; else a :class:`CalendarError`."""
    if name is None or name.strip().lower() in ("", "none"):
        return None
    key = name.strip().upper()
    if key in CALENDARS:
        return key
    country, _, region = key.partition("-")
    regions = _supported().get(country)
    if regions is None:
        raise CalendarError(f"unknown holiday calendar {name!r}: use {', '.join(sorted(CALENDARS))}, "
                            "a country code (NZ, GB, US-MN, AU-VIC: a region after a dash) or none")
    if region and region not in {r.upper() for r in regions}:
        raise CalendarError(f"unknown region {region!r} of holiday calendar {country}: use one of "
                            f"{', '.join(regions) or 'none (this country has no regions)'}")
    return key


def _normal_name(name: str) -> str:
    # The sovereign's birthday keeps its day when the sovereign changes.
    return name.replace("King's", "Sovereign's").replace("Queen's", "Sovereign's")


@cache  # built once per calendar: a country's holidays over 51 years take ~0.1 s
def holidays_of(name: str) -> tuple[Moving, ...]:
    """The moving holidays of a calendar: the built-in table, or those of a country of
    the package ``holidays`` whose first date in a year is not the same in most years."""
    if name in CALENDARS:
        return CALENDARS[name]
    import holidays

    country, _, region = name.partition("-")
    regions = {r.upper(): r for r in _supported()[country]}
    found = holidays.country_holidays(country, subdiv=regions.get(region) if region else None,
                                      years=COUNTRY_YEARS)
    first: dict[str, dict[int, date]] = {}
    for day, names in sorted(found.items()):
        for one in names.split("; "):
            if "observed" in one.lower() or "substitute" in one.lower():
                continue  # a fixed-date holiday's weekday stand-in
            first.setdefault(_normal_name(one), {}).setdefault(day.year, day)
    moving, fixed = [], set()
    for one, dates in sorted(first.items()):
        counts: dict[tuple[int, int], int] = {}
        for d in dates.values():
            counts[(d.month, d.day)] = counts.get((d.month, d.day), 0) + 1
        usual = max(counts, key=counts.__getitem__)
        if len(dates) >= 2 and 2 * counts[usual] < len(dates):
            moving.append((one, dates))
        else:
            fixed.add((usual[0], usual[1], usual[1]))
    # A fixed-date holiday in a moving one's window (Anzac Day, 25 April, four days after
    # an Easter Monday) keeps its date, and a match that lands on one is none.
    spans = tuple(sorted(fixed))
    return tuple(Moving(one, dates, COUNTRY_BEFORE, COUNTRY_AFTER, spans) for one, dates in moving)


def one_year_enough(name: str) -> bool:
    """Whether one past year matched on a holiday is enough to expect it again.

    True for the built-in calendars: their festivals bring whole seasons (the Spring
    Festival's travel weeks) that come back every year. A country's holidays are days off
    that one past year may have met in a lockdown or a one-off event; there, as on plain
    dates, two past years are wanted (on the Auckland series chosen on: 0.92 of the error
    without the calendar with two, 0.93 with one, which lost on two of the seven)."""
    return name in CALENDARS


@cache  # read on every forecast; the package's lists never change
def workdays(name: str) -> np.ndarray:
    """Weekend days that are working days in a calendar (sorted datetime64[D]): China's
    make-up working days (调休), a Saturday or a Sunday worked in exchange for a weekday
    off next to a holiday. From the package ``holidays``, which lists them year by year
    as they are announced (for China, 2001-2026 in this version); empty for a country
    without them."""
    import holidays

    country, _, region = ("CN" if name in CALENDARS else name).partition("-")
    regions = {r.upper(): r for r in _supported().get(country, ())}
    found = holidays.country_holidays(country, subdiv=regions.get(region) if region else None,
                                      years=COUNTRY_YEARS)
    days = sorted(getattr(found, "weekend_workdays", ()) or ())
    return np.array([d.isoformat() for d in days], dtype="datetime64[D]")


def is_workday(name: str, day: np.ndarray) -> np.ndarray:
    """Per local day (datetime64[D]): True where the calendar makes a weekend day a
    working day (:func:`workdays`)."""
    listed = workdays(name)
    if not listed.size:
        return np.zeros(day.shape, bool)
    pos = np.clip(np.searchsorted(listed, day), 0, listed.size - 1)
    return listed[pos] == day


@cache  # read on every forecast; the tables never change
def anchors(name: str, which: int = 0) -> tuple[np.ndarray, np.ndarray, int, int]:
    """``(years, anchor days as datetime64[D], days before, days after)`` of the
    ``which``-th moving holiday of a calendar."""
    h = holidays_of(name)[which]
    years = np.array(sorted(h.dates), np.int64)
    days = np.array([h.dates[int(y)].isoformat() for y in years], dtype="datetime64[D]")
    return years, days, h.before, h.after


def holiday_near(name: str, day: np.datetime64) -> tuple[str, int] | None:
    """The nearest moving holiday of a calendar whose window holds ``day`` and the day's
    distance from it in days (Easter Saturday: Good Friday +1); None if none does or the
    day is a fixed-date holiday's."""
    best: tuple[str, int] | None = None
    for which, h in enumerate(holidays_of(name)):
        if h.fixed and _in_fixed(np.array([day], "datetime64[D]"), h.fixed)[0]:
            return None
        years, days, before, after = anchors(name, which)
        year = int(day.astype("datetime64[Y]").astype(np.int64)) + 1970
        pos = int(np.searchsorted(years, year))
        if pos < years.size and years[pos] == year:
            offset = int((day - days[pos]).astype(np.int64))
            if -before <= offset <= after and (best is None or abs(offset) < abs(best[1])):
                best = (h.name, offset)
    return best


def _in_fixed(day: np.ndarray, spans: tuple[tuple[int, int, int], ...]) -> np.ndarray:
    month = day.astype("datetime64[M]")
    m = month.astype(np.int64) % 12 + 1
    d = (day - month.astype("datetime64[D]")).astype(np.int64) + 1
    table = np.zeros(13 * 32, bool)  # (month, day) -> in a span
    for mm, first, last in spans:
        table[mm * 32 + first: mm * 32 + last + 1] = True
    return table[m * 32 + d]


def matched_days(name: str, day: np.ndarray, years_back: int) -> tuple[np.ndarray, np.ndarray]:
    """For local days ``day`` (datetime64[D]): the day ``years_back`` years earlier that
    matches it by the calendar's moving holidays, and whether a holiday decides it.

    Returns ``(then, mode)``: ``mode`` is 1 where ``day`` is within a holiday's window
    (``then`` = the same offset from that year's holiday), -1 where there is no match
    for that year (``day`` is outside every window but its same calendar date
    ``years_back`` years earlier was inside that year's window, or the match fell on a
    fixed-date holiday's day: the caller leaves that year out), 0 elsewhere (``then`` is
    not set: the caller matches on the calendar date). Years outside the tables are 0.
    """
    then = np.zeros(day.shape, dtype="datetime64[D]")
    mode = np.zeros(day.shape, np.int8)
    fixed_now: dict[tuple[tuple[int, int, int], ...], np.ndarray] = {}  # a country's are shared
    for which, h in enumerate(holidays_of(name)):
        t, m = _matched_one(name, which, day, years_back)
        if h.fixed:
            # A fixed-date holiday's days keep their date; a match landing on one is none.
            if h.fixed not in fixed_now:
                fixed_now[h.fixed] = _in_fixed(day, h.fixed)
            m = np.where(fixed_now[h.fixed], 0, m).astype(np.int8)
            m[(m == 1) & _in_fixed(t, h.fixed)] = -1
        take = (mode == 0) & (m != 0)  # the first holiday whose window says so decides
        take |= (mode == -1) & (m == 1)
        then = np.where(take & (m == 1), t, then)
        mode = np.where(take, m, mode).astype(np.int8)
    return then, mode


def _matched_one(name: str, which: int, day: np.ndarray,
                 years_back: int) -> tuple[np.ndarray, np.ndarray]:
    years, days, before, after = anchors(name, which)
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
