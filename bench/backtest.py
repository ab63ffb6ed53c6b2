"""Rolling-origin backtest of the arrival forecaster against two standard baselines.

Input: a CSV with columns ``ts,count`` (hourly; RFC 3339 or ISO timestamps; gaps
allowed). The series is put on a regular hourly grid (gaps stay missing, never
zero; counts in the same hour are summed). Origins are the last ``origins`` points
``step`` hours apart, the last one ``horizon`` hours before the end; every model
sees only data strictly before each origin: our model the trailing ``TRAIN_HOURS``,
MSTL the trailing ``MSTL_HOURS`` (it is slow on long series), seasonal naive all.
Errors are scored on hours whose actual count is known.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timezone

import numpy as np
import pandas as pd
from gridwatch.agents.forecast import RECENT, WEEK, WINDOW, forecast_next

from gridwatch import calendars

TRAIN_HOURS = WINDOW  # trailing history handed to our model: all it reads (~3 years)
MSTL_HOURS = 8 * WEEK  # MSTL costs ~1 s per fit on 8 weeks; longer windows blow the budget
MODELS = ("model", "blend", "mstl", "naive168")  # blend: the seasonal blend alone


class BacktestError(ValueError):
    """The input cannot be backtested (unreadable CSV, bad columns, too short)."""


@dataclass
class Score:
    """Accuracy of one model over all scored forecast hours."""

    mae: float
    mase: float
    cover80: float
    cover95: float
    n: int


@dataclass
class BacktestReport:
    """Scores per model (``model``, ``blend``: the seasonal blend alone, ``mstl``,
    ``naive168``) and how the run was set up."""

    csv_path: str
    hours: int
    missing_hours: int
    horizon: int
    origins: list[str]
    scores: dict[str, Score]
    mase_scale: float
    seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def ratio_mstl(self) -> float:
        """Our MAE / MSTL MAE (below 0.90 meets the target)."""
        return self.scores["model"].mae / self.scores["mstl"].mae

    @property
    def ratio_floor(self) -> float:
        """Our MAE / the better of MSTL's and the seasonal blend's alone (at most 1.02
        meets the floor: never worse than the yardstick)."""
        return self.scores["model"].mae / min(self.scores["mstl"].mae, self.scores["blend"].mae)

    @property
    def ratio_naive(self) -> float:
        """Our MAE / weekly seasonal-naive MAE (below 0.80 meets the target)."""
        return self.scores["model"].mae / self.scores["naive168"].mae

    def format_report(self) -> str:
        """Readable table of the scores, ratios and window rule."""
        lines = [
            f"backtest of {self.csv_path}: {self.hours} hours ({self.missing_hours} missing), "
            f"{len(self.origins)} origins x {self.horizon} h, "
            f"{self.origins[0]} .. {self.origins[-1]}" if self.origins else "",
            f"{'model':<10}{'MAE':>10}{'MASE':>8}{'cover80':>9}{'cover95':>9}{'hours':>7}",
        ]
        for name in MODELS:
            s = self.scores[name]
            lines.append(f"{name:<10}{s.mae:>10.2f}{s.mase:>8.3f}{s.cover80:>9.1%}"
                         f"{s.cover95:>9.1%}{s.n:>7}")
        lines.append(f"MAE ratio model/mstl = {self.ratio_mstl:.3f}, "
                     f"model/naive168 = {self.ratio_naive:.3f}; "
                     f"MASE scale (in-sample weekly naive MAE) = {self.mase_scale:.2f}; "
                     f"{self.seconds:.1f} s")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _line(exc: Exception) -> str:
    """First line of an exception's text: pandas appends multi-line advice."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def read_series(csv_path: str) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """Read ``ts,count`` and return a regular hourly index with NaN for gaps."""
    try:
        df = pd.read_csv(csv_path)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise BacktestError(f"cannot read {csv_path}: {_line(exc)}") from exc
    if not {"ts", "count"} <= set(df.columns):
        raise BacktestError(f"{csv_path}: need columns ts,count, found {','.join(map(str, df.columns))}")
    if df.empty:
        raise BacktestError(f"{csv_path}: no rows")
    try:
        ts = pd.to_datetime(df["ts"], format="ISO8601")
    except (ValueError, TypeError):
        try:  # mixed UTC offsets: compare them on UTC
            ts = pd.to_datetime(df["ts"], format="ISO8601", utc=True)
        except (ValueError, TypeError) as exc:
            raise BacktestError(f"{csv_path}: bad timestamp in column ts: {_line(exc)}") from exc
    counts = pd.to_numeric(df["count"], errors="coerce")
    bad = counts.isna() & df["count"].notna()
    if bad.any():
        raise BacktestError(f"{csv_path}: non-numeric count on line {int(bad.idxmax()) + 2}")
    s = pd.Series(counts.to_numpy(float), index=pd.DatetimeIndex(ts).floor("h"))
    s = s.groupby(level=0).sum(min_count=1)
    full = pd.date_range(s.index.min(), s.index.max(), freq="h")
    return full, s.reindex(full).to_numpy(float)


def _naive168(x: np.ndarray, o: int, horizon: int) -> dict[str, np.ndarray]:
    """Weekly seasonal naive with empirical-quantile intervals from the window's errors."""
    t = np.arange(o, o + horizon)
    lag = WEEK * ((t - o) // WEEK + 1)  # horizons past a week reuse older weeks
    yhat = x[t - lag].copy()
    for extra in (1, 2):  # a gap a week ago: try two and three weeks ago
        miss = np.isnan(yhat)
        yhat[miss] = x[np.maximum(t - lag - extra * WEEK, 0)][miss]
    mean = np.nanmean(x[:o]) if np.any(~np.isnan(x[:o])) else 0.0
    yhat = np.where(np.isnan(yhat), mean, yhat)
    err = x[WEEK:o] - x[: o - WEEK]
    err = err[~np.isnan(err)]
    out = {"yhat": yhat}
    for lvl, (a, b) in {"80": (0.10, 0.90), "95": (0.025, 0.975)}.items():
        qa, qb = np.quantile(err, [a, b]) if err.size else (0.0, 0.0)
        out[f"lo{lvl}"], out[f"hi{lvl}"] = yhat + qa, yhat + qb
    return out


def _mstl(x: np.ndarray, horizon: int) -> dict[str, np.ndarray]:
    """statsforecast MSTL(24, 168) with its own 80/95 % intervals; gaps interpolated."""
    from statsforecast.models import MSTL

    y = pd.Series(x).interpolate(limit_direction="both").to_numpy(float)
    y = np.nan_to_num(y)
    seasons = [s for s in (24, WEEK) if y.size >= 2 * s]
    if not seasons:
        m = float(y.mean()) if y.size else 0.0
        return {k: np.full(horizon, m) for k in ("yhat", "lo80", "hi80", "lo95", "hi95")}
    f = MSTL(season_length=seasons).forecast(y=y, h=horizon, level=[80, 95])
    return {"yhat": f["mean"], "lo80": f["lo-80"], "hi80": f["hi-80"],
            "lo95": f["lo-95"], "hi95": f["hi-95"]}


def run_backtest(csv_path: str, *, horizon: int = 24, origins: int = 28, step: int = 24,
                 out_path: str | None = None,
                 progress: Callable[[int, int], None] | None = None,
                 calendar: str | None = None) -> BacktestReport:
    """Backtest the model and the two baselines; write our forecasts to ``out_path``.

    ``calendar``: the model's holiday calendar (see :mod:`.calendars`), none by default.
    """
    if horizon < 1 or origins < 1 or step < 1:
        raise BacktestError("horizon, origins and step must be positive")
    try:
        calendar = calendars.check(calendar)
    except calendars.CalendarError as exc:
        raise BacktestError(str(exc)) from None
    started = time.perf_counter()
    index, x = read_series(csv_path)
    n = x.size
    last = n - horizon
    starts = [last - step * i for i in range(origins - 1, -1, -1)]
    if starts[0] < 2 * horizon or np.all(np.isnan(x[: starts[0]])):
        raise BacktestError(f"{csv_path}: {n} hours is too short for {origins} origins "
                            f"{step} h apart with horizon {horizon}")
    train = x[: starts[0]]
    diffs = np.abs(train[WEEK:] - train[:-WEEK]) if train.size > WEEK else np.array([])
    diffs = diffs[~np.isnan(diffs)]
    scale = float(diffs.mean()) if diffs.size and diffs.mean() > 0 else float("nan")

    stamps = index.to_numpy(dtype="datetime64[s]")
    aware = index.tz is not None
    errs: dict[str, list[np.ndarray]] = {m: [] for m in MODELS}
    rows: list[list[str | float]] = []
    for done, o in enumerate(starts, 1):
        lo = max(o - TRAIN_HOURS, 0)
        window, ts_w = x[lo:o], stamps[lo:o]
        origin = pd.Timestamp(stamps[o]).to_pydatetime().replace(tzinfo=timezone.utc)
        if aware:  # the model's day types and dates are the input's local ones
            origin = origin.astimezone(index.tz)
        fc = forecast_next(ts_w, window, origin=origin, horizon=horizon, calendar=calendar)
        ours = {k: np.asarray(getattr(fc, k)) for k in ("yhat", "lo80", "hi80", "lo95", "hi95")}
        alone = forecast_next(ts_w, window, origin=origin, horizon=horizon, calendar=calendar,
                              models=()) if fc.model else fc
        blend = {k: np.asarray(getattr(alone, k)) for k in ("yhat", "lo80", "hi80", "lo95", "hi95")}
        preds = {"model": ours, "blend": blend, "mstl": _mstl(x[max(o - MSTL_HOURS, 0):o], horizon),
                 "naive168": _naive168(x[:o], o, horizon)}
        actual = x[o: o + horizon]
        for m, p in preds.items():
            p = {k: np.maximum(v, 0.0) for k, v in p.items()}  # counts are never negative
            errs[m].append(np.stack([actual, p["yhat"], p["lo80"], p["hi80"],
                                     p["lo95"], p["hi95"]]))
        o_txt = _stamp(stamps[o], index, aware)
        for i in range(horizon):
            rows.append([o_txt, _stamp(stamps[o + i], index, aware)]
                        + [round(float(ours[k][i]), 3) for k in ("yhat", "lo80", "hi80",
                                                                 "lo95", "hi95")])
        if progress is not None:
            progress(done, len(starts))

    if out_path:
        with open(out_path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["origin", "ts", "yhat", "lo80", "hi80", "lo95", "hi95"])
            w.writerows(rows)
    scores = {m: _score(np.concatenate(errs[m], axis=1), scale) for m in MODELS}
    notes = [(f"windows: our model sees the {TRAIN_HOURS // 24} days before each origin "
              f"(the last {RECENT // 24} and the same dates in past years), MSTL is fitted on the last {MSTL_HOURS // WEEK} "
              "weeks (gaps interpolated), seasonal naive uses all history"),
             f"model: {fc.method}; holiday calendar: {calendar or 'none (dates only)'}"]
    return BacktestReport(
        csv_path=str(csv_path), hours=n, missing_hours=int(np.isnan(x).sum()),
        horizon=horizon, origins=[_stamp(stamps[o], index, aware) for o in starts],
        scores=scores, mase_scale=scale, seconds=time.perf_counter() - started, notes=notes)


def _stamp(t: np.datetime64, index: pd.DatetimeIndex, aware: bool) -> str:
    """RFC 3339 in the input's zone when it had one, naive ISO otherwise."""
    ts = pd.Timestamp(t)
    if aware:
        return ts.tz_localize("UTC").tz_convert(index.tz).isoformat().replace("+00:00", "Z")
    return ts.isoformat()


def _score(a: np.ndarray, scale: float) -> Score:
    actual, yhat, lo80, hi80, lo95, hi95 = a
    ok = ~np.isnan(actual)
    if not ok.any():
        return Score(float("nan"), float("nan"), float("nan"), float("nan"), 0)
    act = actual[ok]
    mae = float(np.mean(np.abs(act - yhat[ok])))
    return Score(mae=mae, mase=mae / scale,
                 cover80=float(np.mean((act >= lo80[ok]) & (act <= hi80[ok]))),
                 cover95=float(np.mean((act >= lo95[ok]) & (act <= hi95[ok]))), n=int(ok.sum()))


def main(argv: Sequence[str] | None = None) -> int:
    """``python bench/backtest.py --csv FILE [--horizon --origins --step --out --calendar]``."""
    p = argparse.ArgumentParser(prog="bench/backtest.py",
                                description="Rolling-origin backtest of the arrival forecaster.")
    p.add_argument("--csv", required=True, help="input CSV with columns ts,count")
    p.add_argument("--horizon", type=int, default=24)
    p.add_argument("--origins", type=int, default=28)
    p.add_argument("--step", type=int, default=24)
    p.add_argument("--out", default=None, help="write one row per forecast hour here")
    p.add_argument("--calendar", default="none",
                   help="holidays that move, matched across past years: CN (the lunar festivals), "
                        "a country code of the 'holidays' package with an optional region "
                        "(NZ-AUK, US-MN, GB: Easter, Monday holidays, Thanksgiving) or none (default)")
    args = p.parse_args(argv)
    t0 = time.perf_counter()

    def show(done: int, total: int) -> None:
        # Only long runs report progress, so short ones keep stderr clean.
        if time.perf_counter() - t0 > 2.0:
            print(f"\rbacktest: {done}/{total} origins", end="\n" if done == total else "",
                  file=sys.stderr, flush=True)

    try:
        report = run_backtest(args.csv, horizon=args.horizon, origins=args.origins,
                              step=args.step, out_path=args.out, progress=show,
                              calendar=args.calendar)
    except BacktestError as exc:
        print(f"error: {_line(exc)}", file=sys.stderr)
        return 2
    print(report.format_report())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
