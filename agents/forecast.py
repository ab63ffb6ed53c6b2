"""Hour-level arrival forecasts for the next hours, with 80 % and 95 % intervals.

Model ("seasonal blend": seasonal mean x adaptive level, blended), chosen by backtests on real series
(pedestrians, flights, calls, bike rentals; see ``bench/bench_forecast.py``):

* base(t): mean of the same hour-of-week over the last ``WEEKS`` weeks, the
  highest and the lowest left out (a trimmed mean: robust to a one-off day, a
  holiday or a sensor fault, and steadier than a median on noisy counts), and
  to gaps;
* level: ratio of the actual total of the last ``LEVEL_HOURS`` hours to the base
  for those hours, damped; it follows a level shift (lockdown, holiday) within a
  day while the weekly shape comes from the weeks before;
* blend: base x level, the value a week ago, and the latest same hour of day
  shifted by the base's change, weighted to minimise the recent rolling-origin MAE
  (those weights, 70 %, mixed with equal weights, 30 %: chosen weights overfit);
  the value a week ago is not copied from an odd day (a day whose total was off its
  seasonal mean by more than ``ODD_DAY`` either way: a holiday, an outage, a
  schedule change): the seasonal mean stands in for it, so last week's holiday is not
  repeated this week;
* the same hour on the latest ``DAYTYPE_DAYS`` days of the same type (Monday to
  Friday, Saturday, Sunday) before the origin, odd days left out: a timetable or a
  working-day rhythm is better seen in last week's five weekdays than in four
  values of one weekday; times the level when the last day was odd (a lockdown);
* dates that were odd in past years (Christmas, New Year's Eve, a national day):
  on the same local calendar date, the median over the last ``YEARS`` years of the
  ratio actual/seasonal mean (1 in a year where that date was ordinary) multiplies
  the seasonal mean, so a holiday that comes back on its date is expected, not learnt again
  (there the level counts half, in log terms: both see the same holiday season);
  with a ``calendar`` ("CN"), days near the Spring Festival and the Dragon Boat and
  Mid-Autumn festivals, which move by weeks, are matched on their distance from them
  instead (:mod:`.calendars`);
* intervals: split-conformal, from the errors of the same forecast made at every
  hour of the last ``CALIB_DAYS`` days (rolling origin, never past the origin),
  divided by a scale that grows with the forecast, per hour ahead.

Day types and dates are local: the origin's UTC offset says where (naive
timestamps are UTC, so a naive local series with a naive origin is read as it is).

With less than two weeks of history the weekly season is replaced by the daily
one (same hour on recent days), and the forecast says so in ``notes``.
Bookings, when given, are blended in through a pickup model learned from their
history (see :class:`BookingsView`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np

from .. import calendars
from . import forecast_models as fm

WEEK = 168
DAY = 24
WEEKS = 10  # weeks in the seasonal mean
LEVEL_HOURS = 24  # hours behind the origin that set the level
LEVEL_DAMP = 0.8  # exponent on the level ratio: full ratios overshoot on noisy days
LEVEL_CLIP = (0.05, 8.0)
CALIB_DAYS = 42
MIN_HISTORY = 2 * WEEK  # below this: daily fallback
ODD_DAY = 1.3  # a day off its seasonal mean by more than this factor is not copied
DAYTYPE_DAYS = 5  # days of the same type in the day-type median
YEARS = 3  # past years looked at for dates that come back (holidays)
# Days a moving holiday's date differs from year to year, at most (the Spring Festival:
# 21 January to 20 February; Easter: 22 March to 25 April).
MOVING_DAYS = 40
RECENT = WEEKS * WEEK + CALIB_DAYS * DAY + LEVEL_HOURS + DAY  # hours the weekly part reads
# Hours of history read: the recent part, and for each past year the same stretch
# (its seasonal mean needs the weeks before it).
WINDOW = RECENT + YEARS * 366 * DAY + WEEKS * WEEK + DAY
BLEND_STRIDE = 6  # every 6th calibration origin chooses the blend weights
REPORT_FACTOR = 1.1  # a day the past years move by more than this is named in the forecast
BLEND_EQUAL = 0.3  # share of equal weights mixed into the chosen ones
VALID_DAYS = 28  # days of validation origins for the statistical candidates
VALID_STEP = 12  # hours between them: the forecast's hour and 12 hours before, each day
# A mix with the statistical candidates replaces the blend when its validation MAE is this
# much below the blend's; a smaller edge is too little to go by alone (one hour a day on
# 28 days: mixes won by 9-10 % there and lost the days after), so the forecast takes
# FLOOR_SHARE of such a mix and keeps the rest of the blend.
FLOOR_MARGIN = 0.08
FLOOR_SHARE = 0.5
# Slightly wider than nominal: the blend weights are chosen on the same errors, and
# errors drift, so nominal split-conformal quantiles under-cover (~74 % measured).
_Z = {"80": (0.075, 0.925), "95": (0.02, 0.98)}


@dataclass(frozen=True)
class BookingsView:
    """Seats already booked for the coming hours, and how bookings turned out before.

    ``booked_now``: arrival hour (tz-aware, on the hour) -> seats booked as of the
    origin (sold minus refunded). Hours not in the mapping use the history only.
    ``history``: ``(arrival_hour, lead_hours, booked_at_that_lead, final_actual)``
    for past hours; ``lead_hours`` = arrival hour minus snapshot time, in hours
    (the forecast for origin ``o`` uses lead ``hour - o``, 0 for the first hour).
    """

    booked_now: Mapping[datetime, float]
    history: Sequence[tuple[datetime, float, float, float]] = ()


@dataclass(frozen=True)
class Forecast:
    """Point forecast and 80 %/95 % intervals for consecutive hours from ``origin``."""

    origin: datetime
    hours: list[datetime]
    yhat: list[float]
    lo80: list[float]
    hi80: list[float]
    lo95: list[float]
    hi95: list[float]
    method: str
    notes: list[str] = field(default_factory=list)
    #: Local days of the horizon that past years call odd: ``{"day", "holiday",
    #: "offset", "factor"}`` (the holiday whose window holds the day and the day's
    #: distance from it, or None: the date itself; ``factor``: the day against a usual
    #: one, from the past years).
    holidays: list[dict[str, Any]] = field(default_factory=list)
    #: Local days of the horizon (``YYYY-MM-DD``) that are weekend days worked in place
    #: of a weekday off (调休), forecast as working days.
    workdays: list[str] = field(default_factory=list)
    #: Which model made ``yhat`` and why: ``{"chosen", "weights", "validation_mae",
    #: "origins"}`` (the weights of the seasonal blend and the statistical candidates,
    #: chosen on ``origins`` rolling origins before the forecast's, and each one's MAE
    #: there, the mix's as ``"chosen"``); empty when the blend had no rival.
    model: dict[str, Any] = field(default_factory=dict)

    def peaks(self, share: float = 0.40, factor: float = 1.5) -> list[dict[str, Any]]:
        """Hours that need more staff, busiest first, each with its share of the total.

        A peak is one of the busiest hours that together carry ``share`` of the
        total, or an hour above ``factor`` times the mean hour.
        """
        y = np.asarray(self.yhat, float)
        total = float(y.sum())
        if total <= 0 or y.size == 0:
            return []
        order = np.argsort(-y, kind="stable")
        cum = np.cumsum(y[order]) / total
        top = set(order[: int(np.searchsorted(cum, share) + 1)].tolist())
        mean = total / y.size
        top |= {i for i in range(y.size) if y[i] > factor * mean}
        out = []
        for i in sorted(top, key=lambda i: -y[i]):
            multiple = y[i] / mean
            out.append({
                "hour": _rfc3339(self.hours[i]),
                "yhat": round(float(y[i]), 1),
                "share": round(float(y[i] / total), 4),
                "hint": f"add staff: about {multiple:.1f}x the average hour",
            })
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: RFC 3339 strings, floats rounded to 0.1, plus ``peaks``."""
        def r(v: list[float]) -> list[float]:
            return [round(float(a), 1) for a in v]
        return {
            "origin": _rfc3339(self.origin),
            "hours": [_rfc3339(h) for h in self.hours],
            "yhat": r(self.yhat), "lo80": r(self.lo80), "hi80": r(self.hi80),
            "lo95": r(self.lo95), "hi95": r(self.hi95),
            "method": self.method, "notes": list(self.notes), "peaks": self.peaks(),
            "holidays": [dict(h) for h in self.holidays], "workdays": list(self.workdays),
            "model": dict(self.model),
        }


def _rfc3339(d: datetime) -> str:
    return d.isoformat().replace("+00:00", "Z")


def _hour_index(values: Any) -> np.ndarray:
    """Timestamps (datetimes, strings or datetime64; naive means UTC) -> int64 hours."""
    if isinstance(values, list) and values and all(type(v) is datetime for v in values):
        # Years of hours from a live store: their POSIX seconds, without datetime64 parsing.
        secs = np.fromiter((v.timestamp() if v.tzinfo is not None else
                            v.replace(tzinfo=timezone.utc).timestamp() for v in values),
                           float, len(values))
        return np.floor_divide(secs, 3600).astype(np.int64)
    arr = np.asarray(values)
    if arr.dtype.kind != "M":
        arr = np.array([_to_utc(v).replace(tzinfo=None) if isinstance(v, datetime) else v
                        for v in arr.tolist()], dtype="datetime64[s]")
    return arr.astype("datetime64[h]").astype(np.int64)


def _to_utc(d: datetime) -> datetime:
    return d.replace(tzinfo=timezone.utc) if d.tzinfo is None else d.astimezone(timezone.utc)


def _day_type(hours: np.ndarray) -> np.ndarray:
    """0 for Monday to Friday, 1 for Saturday, 2 for Sunday, per local hour index."""
    dow = (hours // DAY + 3) % 7  # 0 = Monday: 1970-01-01 was a Thursday
    return np.maximum(dow - 4, 0)


def _nanmedian_last(stack: np.ndarray) -> np.ndarray:
    """Median over the last axis ignoring NaN (NaN where all are NaN).

    Sorting puts NaN last, so the median is read at the middle of the known values;
    several times faster than ``np.nanmedian``, which goes through masked arrays.
    """
    s = np.sort(stack, axis=-1)
    cnt = (~np.isnan(s)).sum(axis=-1)
    lo = np.take_along_axis(s, np.maximum((cnt - 1) // 2, 0)[..., None], -1)[..., 0]
    hi = np.take_along_axis(s, np.maximum(cnt // 2, 0)[..., None], -1)[..., 0]
    return np.where(cnt > 0, (lo + hi) / 2, np.nan)


def _trimmed_mean_last(stack: np.ndarray) -> np.ndarray:
    """Mean over the last axis of the known values less the highest and the lowest
    (NaN ignored); the median where fewer than four are known.

    A median of eight or ten noisy counts wastes most of them (on Gaussian noise it is
    about as good as a mean of two thirds as many); leaving out the extremes keeps the
    robustness to a one-off day. Sums, not a sort: this runs over years of hours.
    """
    known = ~np.isnan(stack)
    cnt = known.sum(axis=-1)
    total = np.where(known, stack, 0.0).sum(axis=-1)
    top = np.where(known, stack, -np.inf).max(axis=-1)
    bottom = np.where(known, stack, np.inf).min(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (total - top - bottom) / (cnt - 2)
    few = cnt < 4
    if few.any():
        out[few] = _nanmedian_last(stack[few])
    return out


def _lagged_mean(x: np.ndarray, lag: int, count: int, start: int, stop: int) -> np.ndarray:
    """Trimmed mean (:func:`_trimmed_mean_last`) of x[t - lag*k], k=1..count, for t in
    [start, stop); NaN where none is known."""
    n = stop - start
    stack = np.full((count, n), np.nan)
    for k in range(1, count + 1):
        lo = start - lag * k
        src_lo, src_hi = max(lo, 0), min(lo + n, x.size)
        if src_hi > src_lo:
            stack[k - 1, src_lo - lo: src_hi - lo] = x[src_lo:src_hi]
    return _trimmed_mean_last(stack.T)


def _lagged_known(x: np.ndarray, lag: int, count: int, stop: int) -> np.ndarray:
    """How many of x[t - lag*k], k=1..count, are known, for t in [0, stop)."""
    known = ~np.isnan(x)
    out = np.zeros(stop, np.int16)
    for k in range(1, count + 1):
        if lag * k < stop:
            out[lag * k:] += known[:stop - lag * k]
    return out


def _level(x: np.ndarray, base: np.ndarray, origins: np.ndarray, hours: int) -> np.ndarray:
    """Damped ratio actual/base over the ``hours`` before each origin (1 where unknown)."""
    ok = ~(np.isnan(x) | np.isnan(base))
    cx = np.concatenate([[0.0], np.cumsum(np.where(ok, x, 0.0))])
    cb = np.concatenate([[0.0], np.cumsum(np.where(ok, base, 0.0))])
    lo = np.maximum(origins - hours, 0)
    sx, sb = cx[origins] - cx[lo], cb[origins] - cb[lo]
    # A small prior pulls the ratio to 1 when the window holds little volume.
    prior = 0.02 * np.nanmean(base) * hours if np.any(ok) else 1.0
    ratio = (sx + prior) / (sb + prior)
    return np.clip(ratio, *LEVEL_CLIP) ** LEVEL_DAMP


def _odd_hours(x: np.ndarray, base: np.ndarray) -> np.ndarray:
    """True where the 24 hours centred on t hold more than ``ODD_DAY`` times, or less
    than 1/``ODD_DAY`` of, the seasonal mean's total (over hours known in both)."""
    ok = ~np.isnan(x)
    cx = np.concatenate([[0.0], np.cumsum(np.where(ok, x, 0.0))])
    cb = np.concatenate([[0.0], np.cumsum(np.where(ok, base, 0.0))])
    t = np.arange(x.size)
    lo, hi = np.maximum(t - DAY // 2, 0), np.minimum(t + DAY // 2, x.size)
    # A small prior keeps quiet days (a few counts) from looking odd.
    prior = 0.05 * DAY * (float(np.mean(base)) if base.size else 1.0) + 1.0
    ratio = (cx[hi] - cx[lo] + prior) / (cb[hi] - cb[lo] + prior)
    return np.abs(np.log(ratio)) > np.log(ODD_DAY)


def _year_ratio(x: np.ndarray, base: np.ndarray, odd: np.ndarray, local0: int,
                start: int, stop: int, calendar: str | None = None,
                grounded: np.ndarray | None = None) -> np.ndarray:
    """Factor on the seasonal mean for hours 0..stop-1 (1 before ``start``).

    For hour t: over the last :data:`YEARS` years, the same local calendar date and
    hour (29 February falls back to the 28th), the ratio actual/seasonal mean where that
    day was odd, 1 where it was ordinary, nothing where unknown; the median of those,
    once at least two years are known (one is enough on a day the calendar matched on
    its holiday). A date odd in most years (Christmas) is expected again; a one-off
    (an outage last year) is outvoted once there are three years. ``local0``: the
    local hour index of ``x[0]``. Only hours at least a year before t are read. With a
    ``calendar`` (:mod:`.calendars`), days near a holiday that moves (the Spring,
    Dragon Boat and Mid-Autumn festivals) are matched on the days from that holiday
    instead of the date. ``grounded``: where the seasonal mean of a past hour stands on
    enough seasons to vote (all of ``x`` by default).
    """
    out = np.ones(stop)
    if stop <= start or not np.any(~np.isnan(x)):
        return out
    local = np.arange(start, stop) + local0
    day, hod = (local // DAY).astype("datetime64[D]"), local % DAY
    year, month = day.astype("datetime64[Y]"), day.astype("datetime64[M]")
    month_of_year = (month - year.astype("datetime64[M]")).astype(np.int64)
    day_of_month = (day - month.astype("datetime64[D]")).astype(np.int64)
    prior = 0.05 * float(np.nanmean(x)) + 1.0  # keeps quiet hours' ratios near 1
    votes = np.full((local.size, YEARS), np.nan)
    by_holiday = np.zeros(local.size, bool)  # matched on a calendar's holiday in some year
    if calendar is not None:
        one_year = calendars.one_year_enough(calendar)
        days = np.arange(day[0], day[-1] + 1)  # matched once per day: its hours share it
        day_pos = (day - day[0]).astype(np.int64)
    for k in range(1, YEARS + 1):
        m = (year - k).astype("datetime64[M]") + month_of_year
        days_in_month = ((m + 1).astype("datetime64[D]") - m.astype("datetime64[D]")).astype(np.int64)
        then = m.astype("datetime64[D]") + np.minimum(day_of_month, days_in_month - 1)
        usable = np.ones(local.size, bool)
        if calendar is not None:
            moved, mode = calendars.matched_days(calendar, days, k)
            moved, mode = moved[day_pos], mode[day_pos]
            then = np.where(mode == 1, moved, then)
            usable = mode != -1  # its date fell in that year's holiday season: no match
            by_holiday |= (mode == 1) & one_year
        tk = then.astype(np.int64) * DAY + hod - local0
        inside = (tk >= 0) & (tk < x.size) & usable
        tk = np.clip(tk, 0, x.size - 1)
        if grounded is not None:
            inside &= grounded[tk]
        ratio = np.where(odd[tk], (x[tk] + prior) / (base[tk] + prior), 1.0)
        votes[:, k - 1] = np.where(inside & ~np.isnan(x[tk]), ratio, np.nan)
    # One year alone does not make a date come back: its quirks (late shopping hours
    # on a weekday that is a Friday this year, a one-off surge) would be copied whole.
    # A day a built-in calendar matched on its festival is the exception: that it recurs
    # is known (a country's holidays still want two years: see calendars.one_year_enough).
    known = np.sum(~np.isnan(votes), axis=1)
    med = np.where((known >= 2) | ((known == 1) & by_holiday), _nanmedian_last(votes), np.nan)
    out[start:] = np.where(np.isnan(med), 1.0, med)
    return out


def _day_type_median(x: np.ndarray, skip: np.ndarray, idx: np.ndarray,
                     types: np.ndarray) -> np.ndarray:
    """For each target hour in ``idx`` (rows: origins, columns: hours ahead): the
    median of the same hour on the latest :data:`DAYTYPE_DAYS` days of its type
    before the row's origin, within two weeks, leaving out hours in ``skip`` (odd
    days). ``types``: day type per hour.

    Origins are consecutive hours, so hour ``j`` ahead may read days ``j // 24 + 1``
    and more back, whatever the row: the medians are made once per target hour and
    per such first day, not per row.
    """
    n = x.size
    lo, hi = int(idx.min()), int(idx.max()) + 1
    t = np.arange(lo, hi)
    want = types[t]
    out = np.full(idx.shape, np.nan)
    steps = np.arange(idx.shape[1])
    for first in np.unique(steps // DAY + 1):
        stack = np.full((t.size, 14), np.nan)
        taken = np.zeros(t.size, np.int8)
        for k in range(first, first + 14):
            src = t - DAY * k
            take = (src >= 0) & (types[np.maximum(src, 0)] == want) & (taken < DAYTYPE_DAYS)
            taken += take
            src = np.clip(src, 0, n - 1)
            stack[:, k - first] = np.where(take & ~skip[src], x[src], np.nan)
        cols = steps // DAY + 1 == first
        out[:, cols] = _nanmedian_last(stack)[idx[:, cols] - lo]
    return out


def _point_paths(x: np.ndarray, horizon: int, lag: int, count: int, origins: np.ndarray,
                 local0: int = 0, calendar: str | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Combined forecasts for t = o..o+horizon-1 per origin (rows); plus base on 0..n+h
    and the past years' factor in it (1 on ordinary dates).

    Candidates: the seasonal mean (times the past years' factor on odd dates)
    times the recent level; the value one season ago (the seasonal mean where that
    day was odd); the latest same hour of day, shifted by the seasonal mean's change; with the
    weekly season, the day-type median. On a date odd in past years only the first
    and third stand.
    Their weights (a 0.1 grid on the simplex) minimise the MAE over the calibration
    origins, all but the last row, so a schedule-like series leans on the season ago
    and a noisy one on the seasonal mean; 30 % equal weights are mixed in.
    """
    n = x.size
    # Weekend days worked in place of a weekday off (调休): kept out of the weekend's
    # seasonal means, and given the working days' one.
    makeup = _makeup_hours(calendar, local0, n + horizon) if lag == WEEK else None
    seen = x if makeup is None else np.where(makeup[:n], np.nan, x)
    base = _lagged_mean(seen, lag, count, 0, n + horizon)
    # Where under half the seasons behind an hour are known (the first weeks of a
    # series), its seasonal mean is a guess: a past year's ratio there is no vote.
    grounded = _lagged_known(seen, lag, count, n) >= count // 2
    fallback = np.nanmean(x) if np.any(~np.isnan(x)) else 0.0
    base = np.where(np.isnan(base), fallback, base)
    if makeup is not None:
        base = _working_day_base(base, makeup, local0)
    else:
        makeup = np.zeros(n + horizon, bool)
    odd = _odd_hours(x, base[:n])
    if lag == WEEK:
        yearly = _year_ratio(x, base, odd, local0, int(origins[0]), n + horizon, calendar,
                             grounded)
        base = base * yearly
    else:
        yearly = np.ones(n + horizon)
    special = yearly != 1.0
    level = _level(x, base[:n], origins, LEVEL_HOURS if lag == WEEK else DAY)[:, None]
    steps = np.arange(horizon)[None, :]
    idx = origins[:, None] + steps
    xp = np.concatenate([x, np.full(horizon, np.nan)])
    c1 = base[idx]
    ago = idx - lag * (steps // lag + 1)  # long horizons reuse older seasons
    c2 = xp[ago]
    if lag == WEEK:
        # ago + 12 <= origin - 133: the odd-day test only reads hours before each origin.
        c2 = np.where(odd[ago] | special[idx] | makeup[ago] | makeup[idx],
                      np.nan, c2)  # NaN: the seasonal mean stands in
    back = DAY * (steps // DAY + 1)  # the latest same hour of day before the origin
    # Additive reshaping: a ratio explodes when the older seasonal value is near zero.
    c3 = xp[idx - back] + (base[idx] - base[idx - back]) * level
    # On a date the past years call odd, the level (the last day against the seasonal mean)
    # and the past years' factor both see the same holiday season: the level is halved
    # in log terms there, so it is not counted twice.
    c1 = c1 * np.where(special[idx], np.sqrt(level), level)
    raw = [c1, c2, c3]
    if lag == WEEK:
        types = np.where(makeup, 0, _day_type(np.arange(local0, local0 + n + horizon))).astype(np.int8)
        c4 = _day_type_median(x, odd | special[:n], idx, types)
        shifted = np.where(np.abs(np.log(level)) > np.log(ODD_DAY), level, 1.0)
        raw.append(np.where(special[idx], np.nan, c4 * shifted))
    cands = [np.where(np.isnan(c), c1, c) for c in raw]
    # Mixed with equal weights: weights chosen on the calibration days overfit them a little.
    weights = (1 - BLEND_EQUAL) * _blend_weights(cands, xp[idx[:-1]]) + BLEND_EQUAL / len(cands)
    combined = sum(w * c for w, c in zip(weights, cands))
    return np.maximum(combined, 0.0), base, yearly


def _makeup_hours(calendar: str | None, local0: int, size: int) -> np.ndarray | None:
    """True on the hours (local hour index ``local0`` on) of weekend days the calendar
    makes working days (:func:`.calendars.is_workday`); None if there are none."""
    if calendar is None:
        return None
    days = (np.arange(size) + local0) // DAY
    listed = calendars.is_workday(calendar, np.arange(days[0], days[-1] + 1).astype("datetime64[D]"))
    return listed[days - days[0]] if listed.any() else None


def _working_day_base(base: np.ndarray, makeup: np.ndarray, local0: int) -> np.ndarray:
    """``base`` with each make-up day's hours set to the mean of the same hour on Monday
    to Friday of that week (their seasonal means: a usual working day's profile)."""
    t = np.flatnonzero(makeup)
    dow = ((t + local0) // DAY + 3) % 7  # 0 = Monday
    src = t[None, :] - DAY * (dow[None, :] - np.arange(5)[:, None])
    got = np.where(src >= 0, base[np.maximum(src, 0)], np.nan)
    out = base.copy()
    known = ~np.isnan(got)
    out[t] = np.where(known.any(axis=0),
                      np.where(known, got, 0.0).sum(axis=0) / np.maximum(known.sum(axis=0), 1), base[t])
    return out


def _simplex(parts: int) -> np.ndarray:
    """Every weight vector of ``parts`` entries in steps of 0.1 that sums to 1."""
    rows = [r for r in np.ndindex(*(11,) * (parts - 1)) if sum(r) <= 10]
    return np.array([(*r, 10 - sum(r)) for r in rows], float) / 10.0


_GRIDS = {k: _simplex(k) for k in (3, 4)}
_GRIDS32 = {k: g.astype(np.float32) for k, g in _GRIDS.items()}


def _blend_weights(cands: list[np.ndarray], actual: np.ndarray) -> np.ndarray:
    """Simplex weights minimising MAE on rows with known actuals (the seasonal mean alone if none)."""
    # Every BLEND_STRIDE-th origin: neighbouring origins share most targets.
    actual = actual[::BLEND_STRIDE]
    ok = ~np.isnan(actual)
    if ok.sum() < DAY:
        return np.eye(len(cands))[0]
    grid, grid32 = _GRIDS[len(cands)], _GRIDS32[len(cands)]
    # The blend's error is the weighted sum of the candidates' errors (weights sum to
    # 1): one matrix product, in slices of weight rows small enough that BLAS keeps
    # to one thread (threads cost more than they save on a busy 2-core machine).
    d = np.stack([(c[:-1][::BLEND_STRIDE][ok] - actual[ok]) for c in cands]).astype(np.float32)
    total = np.empty((grid32.shape[0], d.shape[1]), np.float32)
    rows = max(1, 150_000 // (d.size or 1))
    for i in range(0, grid32.shape[0], rows):
        np.dot(grid32[i:i + rows], d, out=total[i:i + rows])
    return grid[int(np.argmin(np.abs(total, out=total).sum(axis=1)))]


def _scale(y: np.ndarray, typical: float) -> np.ndarray:
    """Error scale: proportional to the forecast, floored so that quiet hours get width."""
    return np.maximum(y, 0.0) + 0.05 * typical + 1.0


def history_spans(origin_hour: int, horizon: int = 24,
                  calendar: str | None = None) -> list[tuple[int, int]]:
    """Hour ranges ``[lo, hi)`` (hour indices, like ``origin_hour``) that a forecast
    from ``origin_hour`` reads: the recent weeks, and the same stretch in each past
    year, wider by :data:`MOVING_DAYS` either way with a ``calendar`` (a moving holiday
    is matched on a past day up to a month from the same date). A caller that keeps a
    long history fetches just these."""
    spans = [(origin_hour - RECENT, origin_hour)]
    margin = MOVING_DAYS * DAY if calendar is not None else 0
    for k in range(YEARS, 0, -1):
        lo = origin_hour - CALIB_DAYS * DAY - k * 366 * DAY - WEEKS * WEEK - 2 * DAY - margin
        hi = origin_hour + horizon - k * 365 * DAY + 2 * DAY + margin
        spans.append((lo, min(hi, origin_hour)))
    return merge_spans(spans)


def merge_spans(spans: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """``[lo, hi)`` spans sorted, empty ones dropped, joined where they meet or overlap."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(s for s in spans if s[1] > s[0]):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def forecast_next(ts: Sequence[Any] | np.ndarray, counts: Sequence[float] | np.ndarray, *,
                  origin: datetime, horizon: int = 24,
                  bookings: BookingsView | None = None,
                  calendar: str | None = None,
                  models: Sequence[str] | None = None) -> Forecast:
    """Forecast the ``horizon`` hours from ``origin`` from hourly counts before it.

    ``ts``/``counts``: hourly history (any order; missing hours are gaps, zeros are
    real zeros); points at or after ``origin`` are ignored, so there is no
    look-ahead. Naive timestamps are taken as UTC. ``origin`` is floored to the hour.
    ``calendar``: a holiday calendar of :mod:`.calendars` ("CN": the Spring Festival,
    the Dragon Boat and Mid-Autumn festivals) whose moving holidays are matched across
    past years, and whose make-up working days (weekend days worked, 调休) are forecast
    as working days; None: calendar dates only.
    ``models``: the statistical candidates weighed against the seasonal blend
    (:data:`.forecast_models.CANDIDATES`, all by default; ``()`` for the blend alone).
    """
    calendar = calendars.check(calendar)
    origin_utc = _to_utc(origin).replace(minute=0, second=0, microsecond=0)
    o = _hour_index([origin_utc])[0]
    h_idx = _hour_index(ts)
    y = np.asarray(counts, dtype=float)
    keep = (h_idx < o) & (h_idx >= o - WINDOW) & np.isfinite(y)
    x = np.full(WINDOW, np.nan)
    x[h_idx[keep] - (o - WINDOW)] = np.maximum(y[keep], 0.0)

    notes: list[str] = []
    seen = np.flatnonzero(~np.isnan(x))
    span = WINDOW - seen[0] if seen.size else 0
    if span >= MIN_HISTORY:
        lag, count, method = WEEK, WEEKS, "seasonal blend (weekly)"
    else:
        lag, count, method = DAY, 7, "seasonal blend (daily fallback)"
        notes.append(f"less than 2 weeks of history ({span} h): fell back to the daily "
                     "profile (same hour on recent days) x recent level")
    if not seen.size:
        notes.append("no history: forecast is zero")

    # Rolling origins: every hour of the calibration days, and the real one last.
    first = max(int(seen[0]) + lag, WINDOW - CALIB_DAYS * DAY) if seen.size else WINDOW
    # Under one season of history there is nothing to calibrate on, but the real
    # origin is always forecast.
    origins = np.arange(min(first, WINDOW), WINDOW + 1)
    # Day types and calendar dates are local: the origin's UTC offset says where.
    offset = int((origin.utcoffset() or timedelta(0)).total_seconds() // 3600)
    paths, base, yearly = _point_paths(x, horizon, lag, count, origins, o - WINDOW + offset,
                                       calendar)
    yhat = paths[-1]
    rivals = fm.available() if models is None else tuple(m for m in models if m in fm.available())
    floor = None
    if lag == WEEK and rivals:
        floor = _floor(x, paths, origins, base, yearly, horizon, rivals,
                       _makeup_hours(calendar, o - WINDOW + offset, WINDOW + horizon),
                       o - WINDOW + offset)
    if floor is not None:
        yhat = floor["yhat"]
        if floor["weights"].get("blend", 0.0) < 1.0:
            method = method.replace("seasonal blend", floor["chosen"], 1)
        notes.append(floor["note"])
    holidays = _odd_days(base[WINDOW:WINDOW + horizon], yearly[WINDOW:WINDOW + horizon],
                         o + offset, calendar)
    for h in holidays:
        what, k = h["holiday"] or "this date", h["offset"]
        if k:
            what += f", {abs(k)} day{'s' if abs(k) > 1 else ''} {'before' if k < 0 else 'after'}"
        notes.append(f"{h['day']} ({what}): past years put the day at {h['factor']:.2f}x a "
                     "usual one")
    workdays: list[str] = []
    if lag == WEEK and calendar is not None:
        days = np.unique((o + offset + np.arange(horizon)) // DAY).astype("datetime64[D]")
        workdays = [str(d) for d in days[calendars.is_workday(calendar, days)]]
        notes.extend(f"{d}: a working day in place of a weekday off (调休): forecast from the "
                     "working days' profile" for d in workdays)
        listed = calendars.workdays(calendar)
        last_year = int(str(listed[-1])[:4]) if listed.size else None
        if last_year is not None and int(str(days[-1])[:4]) > last_year:
            notes.append(f"weekend days worked in place of a weekday off are known to {last_year} "
                         "only (package holidays): later ones are forecast as weekends")

    typical = float(np.nanmean(x)) if seen.size else 1.0
    if floor is not None and floor["weights"].get("blend", 0.0) < 1.0:
        # The intervals of the model chosen: quantiles of its own validation errors.
        q = _conformal_pooled(floor["actual"], floor["paths"], typical, horizon)
    else:
        q = _conformal(x, paths[:-1], origins[:-1], horizon, typical)
    if q is None:
        notes.append("too little history for calibrated intervals: using wide defaults")
        q = {"80": (np.full(horizon, -0.5), np.full(horizon, 0.6)),
             "95": (np.full(horizon, -0.8), np.full(horizon, 1.2))}

    hours_utc = [origin_utc + timedelta(hours=i) for i in range(horizon)]
    if bookings is not None and bookings.booked_now:
        yhat, shrink, note = _with_bookings(base, o - WINDOW, hours_utc, yhat, bookings)
        notes.append(note)
        q = {k: (lo * shrink, hi * shrink) for k, (lo, hi) in q.items()}
        method += " + bookings pickup"

    s = _scale(yhat, typical)
    bands = {k: (np.maximum(yhat + lo * s, 0.0), np.maximum(yhat + hi * s, 0.0))
             for k, (lo, hi) in q.items()}
    lo80, hi80 = np.minimum(bands["80"][0], yhat), np.maximum(bands["80"][1], yhat)
    lo95, hi95 = np.minimum(bands["95"][0], lo80), np.maximum(bands["95"][1], hi80)
    tz = origin.tzinfo or timezone.utc
    return Forecast(
        origin=origin_utc.astimezone(tz), hours=[h.astimezone(tz) for h in hours_utc],
        yhat=yhat.tolist(), lo80=lo80.tolist(), hi80=hi80.tolist(),
        lo95=lo95.tolist(), hi95=hi95.tolist(), method=method, notes=notes,
        holidays=holidays, workdays=workdays,
        model={k: floor[k] for k in ("chosen", "weights", "validation_mae", "origins",
                                     "days")}
        if floor is not None else {})


def _without_odd_days(seg: np.ndarray, local0: int) -> np.ndarray:
    """``seg`` (hourly, NaN in gaps; ``local0``: the local hour index of its first) with
    the hours of each odd local day replaced by their reference: the median of the same
    hour of the week up to three weeks either way inside ``seg``. A day is odd when the
    ratio of its total to its reference's (over the hours known in both) is off the
    median ratio of the days within three of it by more than :data:`ODD_DAY` either
    way: a trend moves the ratios of all the days around, an odd day its own, so a
    series with a trend keeps its latest days."""
    size = seg.size
    stack = np.full((6, size), np.nan)
    for j, k in enumerate((-3, -2, -1, 1, 2, 3)):
        sh = k * WEEK
        if abs(sh) < size:
            if sh > 0:
                stack[j, :size - sh] = seg[sh:]
            else:
                stack[j, -sh:] = seg[:size + sh]
    ref = _nanmedian_last(stack.T)
    both = ~np.isnan(seg) & ~np.isnan(ref)
    day = (np.arange(size) + local0) // DAY
    day -= day[0]
    got = np.bincount(day, np.where(both, seg, 0.0))
    want = np.bincount(day, np.where(both, ref, 0.0))
    prior = 0.05 * DAY * (float(np.nanmean(seg)) if both.any() else 1.0) + 1.0
    ratio = np.log((got + prior) / (want + prior))
    # Against the ratios of the days around it: a trend moves them all, an odd day one.
    near = np.full((ratio.size, 7), np.nan)
    for j in range(-3, 4):
        near[max(-j, 0):ratio.size - max(j, 0), j + 3] = ratio[max(j, 0):ratio.size + min(j, 0)]
    odd_day = np.abs(ratio - _nanmedian_last(near)) > np.log(ODD_DAY)
    odd = odd_day[day] & ~np.isnan(ref)
    return np.where(odd, ref, seg) if odd.any() else seg


def _floor(x: np.ndarray, paths: np.ndarray, origins: np.ndarray, base: np.ndarray,
           yearly: np.ndarray, horizon: int, rivals: Sequence[str],
           makeup: np.ndarray | None, local0: int) -> dict[str, Any] | None:
    """Weigh the seasonal blend against the statistical candidates (``rivals``, see
    :mod:`.forecast_models`) on rolling origins before the forecast's.

    The origins are every :data:`VALID_STEP` hours back from the forecast's over the last
    :data:`VALID_DAYS` days (their blend forecasts are rows of ``paths``, made from hours
    before each of them); each candidate is fitted on the hours before each origin.
    Weights on a 0.1 grid over the candidates minimise the MAE over those origins' hours;
    unless that MAE is more than :data:`FLOOR_MARGIN` below the blend's, the forecast takes
    :data:`FLOOR_SHARE` of that mix and the rest of the blend. Hours that past years or the
    calendar call special (a holiday, a weekend day worked) stay the blend's, which
    knows them; so does the whole forecast when the last day came in off the mix's
    forecast of it by more than :data:`ODD_DAY` (a level shift the validation days did
    not see, which the blend follows within a day). None when no candidate can be fitted at every
    origin (too little history).
    """
    n = x.size
    keep = yearly != 1.0  # the blend's own hours
    if makeup is not None:
        keep = keep | makeup
    every = VALID_DAYS * DAY // VALID_STEP
    val = [n - VALID_STEP * k for k in range(every, 0, -1)]
    val = [v for v in val if v >= origins[0]]
    if len(val) < every // 2 or n - DAY not in val:
        return None
    # Each candidate is fitted on the hours before each origin with its odd days (a
    # holiday, an outage) replaced by their neighbours: see _without_odd_days.
    clean = []
    for v in [*val, n]:
        lo = max(v - fm.FIT_HOURS, 0)
        clean.append(_without_odd_days(x[lo:v], local0 + lo))
    names = list(rivals)
    got: dict[str, list[np.ndarray]] = {m: [] for m in names}
    for m in list(names):
        for seg in clean:
            f = fm.forecast(m, seg, horizon)
            if f is None:
                names.remove(m)
                break
            got[m].append(f)
    if not names:
        return None
    xp = np.concatenate([x, np.full(horizon, np.nan)])
    rows = np.array(val) - origins[0]
    idx = np.array([*val, n])[:, None] + np.arange(horizon)[None, :]
    blend = np.vstack([paths[rows], paths[-1:]])
    cands = [np.where(keep[idx], blend, np.stack(got[m])) for m in names] + [blend]
    labels = [*names, "blend"]
    actual = xp[idx[:-1]]
    ok = ~np.isnan(actual)
    if ok.sum() < DAY:
        return None
    d = np.stack([c[:-1][ok] - actual[ok] for c in cands])
    grid = _simplex(len(cands)) if len(cands) > 1 else np.ones((1, 1))
    mae = np.abs(grid @ d).mean(axis=1)
    # Among mixes as good as the best, the one with the most of the blend.
    tied = mae <= mae.min() * (1 + 1e-9) + 1e-12
    w = grid[int(np.argmax(np.where(tied, grid[:, -1], -1.0)))]
    best = None
    if w[-1] < 1 and mae.min() > (1 - FLOOR_MARGIN) * float(np.abs(d[-1]).mean()):
        best = (_mix_label(labels, w), float(mae.min()))
        # Not clearly better than the blend: part of the way to it.
        w = (1 - FLOOR_SHARE) * np.eye(len(cands))[-1] + FLOOR_SHARE * w
    single = {lab: float(np.abs(dd).mean()) for lab, dd in zip(labels, d)}
    mixed = sum(wi * c for wi, c in zip(w, cands))
    # The last day against the mix's forecast of it, made a day before (a validation
    # origin): off by more than ODD_DAY, the level moved after the
    # validation days and the blend, which follows the last day, goes alone.
    day_ago = val.index(n - DAY)
    last = ok[day_ago]
    prior = 0.05 * DAY * float(np.nanmean(base[:n])) + 1.0
    level = (float(actual[day_ago][last].sum()) + prior) / (float(mixed[day_ago][last].sum()) + prior)
    shifted = bool(last.sum() >= DAY // 2 and abs(np.log(level)) > np.log(ODD_DAY)) and w[-1] < 1
    if shifted:
        w = np.eye(len(cands))[-1]
        mixed = blend.copy()
    weights = {lab: round(float(wi), 2) for lab, wi in zip(labels, w) if wi > 0}
    chosen = _mix_label(labels, w)
    # Rounded as the record keeps them, so that the note and the record agree.
    mix_mae = round(float(np.abs(mixed[:-1][ok] - actual[ok]).mean()), 2)
    single = {k: round(v, 2) for k, v in single.items()}
    others = ", ".join(f"{fm.LABELS[k]} {single[k]:.1f}" for k in ("blend", *names))
    days = -(-(n - val[0]) // DAY)
    why = (f"model: {chosen}, weighed on {len(val)} rolling origins (every {VALID_STEP} hours "
           f"over the last {days} days): MAE {mix_mae:.1f} there against {others}")
    if best is not None:
        why += (f"; the best mix, {best[0]} (MAE {best[1]:.1f}), is not {FLOOR_MARGIN:.0%} "
                "better than the blend")
        if not shifted:
            why += f": {FLOOR_SHARE:.0%} of it is taken"
    if shifted:
        why += (f"; the last day came in at {level:.2f}x its forecast, a level shift that the "
                "blend follows within a day: the blend alone")
    return {"yhat": np.maximum(mixed[-1], 0.0), "chosen": chosen, "weights": weights,
            "validation_mae": {"chosen": round(mix_mae, 2),
                               **{k: round(v, 2) for k, v in single.items()}},
            "origins": len(val), "days": days, "note": why, "paths": mixed[:-1], "actual": actual}


def _mix_label(labels: Sequence[str], w: np.ndarray) -> str:
    """``"MSTL(24,168) 60% + seasonal blend 40%"``, heaviest first; one name alone."""
    weights = {lab: float(wi) for lab, wi in zip(labels, w) if wi > 0}
    order = sorted(weights, key=lambda k: -weights[k])
    if len(order) == 1:
        return fm.LABELS[order[0]]
    return " + ".join(f"{fm.LABELS[k]} {weights[k]:.0%}" for k in order)


def _conformal_pooled(actual: np.ndarray, paths: np.ndarray, typical: float, horizon: int
                      ) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """As :func:`_conformal`, from the validation origins' errors of the model chosen:
    there are fewer origins (days, not hours), so the hours ahead are pooled in blocks of
    8 (all of them where a block has fewer than 60 errors)."""
    err = (actual - paths) / _scale(paths, typical)
    blocks = np.arange(horizon) // 8
    if min(np.count_nonzero(~np.isnan(err[:, blocks == b])) for b in np.unique(blocks)) < 60:
        blocks = np.zeros(horizon, int)
    qs = {k: (np.empty(horizon), np.empty(horizon)) for k in _Z}
    for blk in np.unique(blocks):
        pooled = err[:, blocks == blk].ravel()
        pooled = pooled[~np.isnan(pooled)]
        if pooled.size < 30:
            return None
        vals = np.quantile(pooled, [p for k in _Z for p in _Z[k]])
        for j, k in enumerate(_Z):
            qs[k][0][blocks == blk], qs[k][1][blocks == blk] = vals[2 * j], vals[2 * j + 1]
    return qs


def _odd_days(base: np.ndarray, yearly: np.ndarray, local0: int,
              calendar: str | None) -> list[dict[str, Any]]:
    """The local days of the forecast hours (``local0``: the local hour index of the
    first) where the past years' factor moved the seasonal mean's total by more than
    :data:`REPORT_FACTOR` either way: the day's factor (that total with the factor against
    without it) and the holiday whose window holds the day, if a calendar matched it."""
    out: list[dict[str, Any]] = []
    days = (local0 + np.arange(base.size)) // DAY
    for d in np.unique(days):
        hours = days == d
        if np.all(yearly[hours] == 1.0):
            continue
        usual = float(np.sum(base[hours] / yearly[hours]))
        factor = float(np.sum(base[hours])) / usual if usual > 0 else float(np.mean(yearly[hours]))
        if abs(np.log(max(factor, 1e-6))) < np.log(REPORT_FACTOR):
            continue  # an odd hour or two, not an odd day
        day = np.datetime64(int(d), "D")
        near = calendars.holiday_near(calendar, day) if calendar else None
        out.append({"day": str(day), "holiday": near[0] if near else None,
                    "offset": near[1] if near else None, "factor": round(factor, 2)})
    return out


def _conformal(x: np.ndarray, paths: np.ndarray, origins: np.ndarray, horizon: int,
               typical: float) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """Quantiles of scaled rolling-origin errors per hour ahead (pooled over 4-hour blocks)."""
    if origins.size < 2 * DAY:
        return None
    idx = origins[:, None] + np.arange(horizon)[None, :]
    inside = idx < x.size
    actual = np.where(inside, x[np.minimum(idx, x.size - 1)], np.nan)
    err = (actual - paths) / _scale(paths, typical)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    # Leads in blocks of 4: neighbouring leads behave alike, pooling steadies the tails.
    blocks = np.arange(horizon) // 4
    qs = {k: (np.empty(horizon), np.empty(horizon)) for k in _Z}
    for blk in np.unique(blocks):
        pooled = err[:, blocks == blk].ravel()
        pooled = pooled[~np.isnan(pooled)]
        if pooled.size < 30:
            return None
        vals = np.quantile(pooled, [p for k in _Z for p in _Z[k]])
        for j, k in enumerate(_Z):
            qs[k][0][blocks == blk], qs[k][1][blocks == blk] = vals[2 * j], vals[2 * j + 1]
    out.update(qs)
    return out


def _with_bookings(base: np.ndarray, x0: int, hours: list[datetime], yhat: np.ndarray,
                   bv: BookingsView) -> tuple[np.ndarray, float, str]:
    """Blend the history forecast with a pickup forecast (booked now / usual booked share).

    Per lead bucket, the usual share of the final count booked by that lead and the
    blend weight (least squares of pickup vs seasonal mean on past hours, clipped
    to [0, 1]) are learned from ``bv.history``. Returns the forecast, the factor on
    the interval widths (the blend's MAE over the seasonal mean's) and a note.
    """
    hist = [r for r in bv.history if math.isfinite(r[2]) and math.isfinite(r[3])]
    if len(hist) < 20:
        return yhat, 1.0, "bookings ignored: fewer than 20 past hours to learn the pickup from"
    hh = _hour_index([r[0] for r in hist]) - x0
    lead, booked, final = (np.array([r[k] for r in hist], float) for k in (1, 2, 3))
    inside = (hh >= 0) & (hh < base.size)
    seasonal = np.where(inside, base[np.clip(hh, 0, base.size - 1)], np.nan)
    now = {_to_utc(k): float(v) for k, v in bv.booked_now.items()}
    out = yhat.copy()
    err_blend = err_seasonal = 0.0
    for i, hour in enumerate(hours):
        if hour not in now:
            continue
        k = int(np.searchsorted(_LEAD_BUCKETS, i, side="right") - 1)  # hour i has lead i
        sel = (lead >= _LEAD_BUCKETS[k]) & (lead < _LEAD_BUCKETS[k + 1])
        if sel.sum() < 10 or booked[sel].sum() <= 0:
            continue
        share = booked[sel].sum() / max(final[sel].sum(), 1e-9)
        ok = sel & ~np.isnan(seasonal)
        w = 0.5
        if ok.sum() >= 10:
            pick, sv, fv = booked[ok] / share, seasonal[ok], final[ok]
            d = pick - sv
            w = float(np.clip(np.dot(fv - sv, d) / max(np.dot(d, d), 1e-9), 0.0, 1.0))
            err_blend += np.abs(fv - (w * pick + (1 - w) * sv)).sum()
            err_seasonal += np.abs(fv - sv).sum()
        # Seats already booked are a floor: those passengers are coming.
        out[i] = max(w * now[hour] / share + (1 - w) * yhat[i], now[hour])
    shrink = float(np.clip(err_blend / err_seasonal, 0.3, 1.0)) if err_seasonal > 0 else 1.0
    return out, shrink, f"bookings blended by a pickup model (interval widths x{shrink:.2f})"


_LEAD_BUCKETS = np.array([0, 3, 6, 12, 24, 48, 10**6], float)
