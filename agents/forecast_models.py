"""Statistical candidates beside the seasonal blend, from ``statsforecast``.

* ``mstl``: MSTL with daily and weekly seasons (24, 168), its trend forecast by
  ``AutoETS`` (statsforecast's default), fitted on the last :data:`FIT_HOURS` hours
  (gaps interpolated, as the backtest's MSTL yardstick). The STL smoothers step over
  points (``seasonal_jump`` 1, ``trend_jump`` and ``low_pass_jump`` 10: linear
  interpolation between fitted points), which makes a fit about four times faster for
  a forecast that differs in the second decimal.
* ``ses168``: seasonal exponential smoothing with a weekly season (one smoothing
  constant per hour of the week, optimised), on the same hours.

A candidate's forecast from a stretch of hours depends on those hours only, so it is
kept (:data:`CACHE_SIZE` forecasts, least recently used dropped) keyed by the
candidate, the horizon and the stretch's bytes: the validation origins of a forecast
(the same hour on the days before) are the origins of earlier forecasts, whose fits are
reused, so a forecast made every hour fits each candidate about once.
"""

from __future__ import annotations

import hashlib
import warnings
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

FIT_HOURS = 8 * 168  # hours a candidate is fitted on (as the MSTL yardstick)
MIN_HOURS = 4 * 168  # fewer known hours before a validation origin: no candidate there
CACHE_SIZE = 100_000  # forecasts kept (24 floats each; 0.45 KiB each with its key)

#: Candidate names -> what the notes and the station view call them.
LABELS = {
    "blend": "seasonal blend",
    "mstl": "MSTL(24,168)",
    "ses168": "weekly seasonal exponential smoothing",
}
CANDIDATES = ("mstl", "ses168")  # beside the blend

_cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
_fitters: dict[str, Callable[[np.ndarray, int], np.ndarray]] | None = None
_import_error: str | None = None
stats = {"fits": 0, "hits": 0}


def _load() -> dict[str, Callable[[np.ndarray, int], np.ndarray]]:
    """The candidates' fit functions; empty if statsforecast cannot be imported."""
    global _fitters, _import_error
    if _fitters is not None:
        return _fitters
    try:
        from statsforecast.models import (
            MSTL,
            SeasonalExponentialSmoothingOptimized,
        )
    except ImportError as exc:  # the blend stands alone
        _import_error = str(exc)
        _fitters = {}
        return _fitters
    jumps = {"seasonal_jump": 1, "trend_jump": 10, "low_pass_jump": 10}

    def mstl(y: np.ndarray, h: int) -> np.ndarray:
        return MSTL(season_length=[24, 168], stl_kwargs=jumps).forecast(y=y, h=h)["mean"]

    def ses168(y: np.ndarray, h: int) -> np.ndarray:
        return SeasonalExponentialSmoothingOptimized(season_length=168).forecast(y=y, h=h)["mean"]

    _fitters = {"mstl": mstl, "ses168": ses168}
    return _fitters


def available() -> tuple[str, ...]:
    """Candidates that can be fitted here (none without statsforecast)."""
    return tuple(c for c in CANDIDATES if c in _load())


def unavailable_reason() -> str | None:
    """Why no candidate can be fitted, or None."""
    _load()
    return _import_error


def _interpolate(y: np.ndarray) -> np.ndarray:
    """Gaps filled linearly (ends: the nearest known value), as the MSTL yardstick."""
    bad = np.isnan(y)
    if not bad.any():
        return y
    t = np.arange(y.size)
    return np.interp(t, t[~bad], y[~bad])


def forecast(name: str, history: np.ndarray, horizon: int) -> np.ndarray | None:
    """Candidate ``name``'s forecast for the ``horizon`` hours after ``history`` (hourly,
    NaN in gaps; its last :data:`FIT_HOURS` are used), never negative; None if too few
    hours are known or the fit fails."""
    y = np.asarray(history[-FIT_HOURS:], float)
    if np.count_nonzero(~np.isnan(y)) < MIN_HOURS:
        return None
    key = hashlib.blake2b(name.encode() + horizon.to_bytes(4, "little") + y.tobytes(),
                          digest_size=20).digest()
    got = _cache.get(key)
    if got is not None:
        _cache.move_to_end(key)
        stats["hits"] += 1
        return got
    fit = _load().get(name)
    if fit is None:
        return None
    y = _interpolate(y)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            out = np.maximum(np.asarray(fit(y, horizon), float), 0.0)
    except (ValueError, ArithmeticError, np.linalg.LinAlgError):  # no fit: it sits this one out
        out = None
    if out is None or out.shape != (horizon,) or not np.all(np.isfinite(out)):
        return None
    stats["fits"] += 1
    _cache[key] = out
    if len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)
    return out


def clear_cache() -> None:
    """Forget every kept forecast (benchmarks of a cold start)."""
    _cache.clear()
