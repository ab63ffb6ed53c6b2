"""The statistical candidates (MSTL, weekly exponential smoothing) weighed against the
seasonal blend on rolling origins: chosen where they are better, not where they are not."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from gridwatch.agents import forecast as fmod
from gridwatch.agents import forecast_models as fm
from gridwatch.agents.forecast import forecast_next

pytest.importorskip("statsforecast")

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
DAYS = 150


def smooth_trend(days: int = DAYS, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A smooth aggregate: thousands an hour, a strong daily cycle, a weekend dip, and a
    level that grows by half over the last ten weeks (slowly, day by day)."""
    rng = np.random.default_rng(seed)
    t = np.arange(days * 24)
    daily = 1 + 0.6 * np.sin(2 * np.pi * (t % 24 - 8) / 24)
    weekly = np.where((t // 24 + 0) % 7 >= 5, 0.85, 1.0)  # 2024-01-01 was a Monday
    level = 2000 * (1 + 0.5 * np.clip((t - (days - 70) * 24) / (70 * 24), 0, None))
    y = rng.normal(level * daily * weekly, 0.01 * level)
    ts = (np.datetime64("2024-01-01T00", "h") + t).astype("datetime64[s]")
    return ts, np.maximum(y, 0.0)


def origins(n: int, k: int) -> list[int]:
    """The last ``k`` daily origins with a day after them."""
    return [n - 24 * i for i in range(k, 0, -1)]


def test_on_a_smooth_series_with_a_trend_a_candidate_is_chosen_and_is_as_good_as_the_best() -> None:
    ts, y = smooth_trend()
    errors: dict[str, list[float]] = {"model": [], "blend": [], "mstl": [], "ses168": []}
    cover = []
    for o in origins(y.size, 6):
        at = T0 + timedelta(hours=o)
        fc = forecast_next(ts[:o], y[:o], origin=at)
        actual = y[o:o + 24]
        assert fc.model["weights"].get("blend", 0.0) < 1.0, fc.notes
        # The notes name the mix and its validation error beside each candidate's.
        assert fc.notes[0].startswith(f"model: {fc.model['chosen']}, weighed on 56 rolling"), fc.notes
        assert "MSTL(24,168)" in fc.model["chosen"]
        assert f"MAE {fc.model['validation_mae']['chosen']:.1f} there" in fc.notes[0]
        assert fc.model["validation_mae"]["chosen"] < fc.model["validation_mae"]["blend"]
        errors["model"].append(np.abs(actual - fc.yhat).mean())
        blend = forecast_next(ts[:o], y[:o], origin=at, models=())
        assert blend.model == {} and "seasonal blend" in blend.method
        errors["blend"].append(np.abs(actual - blend.yhat).mean())
        for name in ("mstl", "ses168"):
            errors[name].append(np.abs(actual - fm.forecast(name, y[:o], 24)).mean())
        cover.append(np.mean((actual >= fc.lo80) & (actual <= fc.hi80)))
    mae = {k: float(np.mean(v)) for k, v in errors.items()}
    best = min(v for k, v in mae.items() if k != "model")
    assert mae["model"] <= 1.02 * best, mae
    # The blend alone lags the trend: the mix is better than it here.
    assert mae["model"] < mae["blend"], mae


def test_intervals_of_a_chosen_candidate_stay_calibrated() -> None:
    ts, y = smooth_trend(seed=5)
    inside, width = [], []
    for o in origins(y.size, 10):
        fc = forecast_next(ts[:o], y[:o], origin=T0 + timedelta(hours=o))
        assert fc.model["weights"].get("blend", 0.0) < 1.0
        actual = y[o:o + 24]
        inside.append((actual >= fc.lo80) & (actual <= fc.hi80))
        width.append(np.mean(np.array(fc.hi80) - np.array(fc.lo80)) / np.mean(actual))
    assert 0.7 <= np.mean(inside) <= 0.92, np.mean(inside)
    # Not calibrated by being wide: the mix's own errors, a few per cent of the level.
    assert np.mean(width) < 0.15


def weekly_counts(noise: bool) -> tuple[np.ndarray, np.ndarray]:
    """Counts around a steady weekly rhythm (Poisson noise, or none): the blend's home
    ground."""
    rng = np.random.default_rng(0)
    t = np.arange(13 * 168)
    daily = 1 + 0.8 * np.sin(2 * np.pi * (t % 24 - 6) / 24)
    mean = 100 * daily * np.where((t // 24) % 7 >= 5, 0.6, 1.0)
    y = rng.poisson(mean).astype(float) if noise else np.round(mean)
    return (np.datetime64("2024-01-01T00", "h") + t).astype("datetime64[s]"), y


def test_where_no_mix_beats_the_blend_it_stands_alone() -> None:
    ts, y = weekly_counts(noise=False)  # every week the same: the blend is exact
    o = y.size - 24
    fc = forecast_next(ts[:o], y[:o], origin=T0 + timedelta(hours=o))
    alone = forecast_next(ts[:o], y[:o], origin=T0 + timedelta(hours=o), models=())
    assert fc.model["weights"] == {"blend": 1.0}, fc.notes
    assert fc.yhat == alone.yhat and fc.lo80 == alone.lo80 and fc.hi95 == alone.hi95
    assert fc.notes[0].startswith("model: seasonal blend, weighed on 56 rolling origins "
                                  "(every 12 hours over the last 28 days)"), fc.notes
    assert "of it is taken" not in fc.notes[0]


def test_a_mix_not_clearly_better_than_the_blend_is_taken_in_part_and_the_notes_say_why() -> None:
    ts, y = weekly_counts(noise=True)
    o = y.size - 24
    fc = forecast_next(ts[:o], y[:o], origin=T0 + timedelta(hours=o))
    alone = forecast_next(ts[:o], y[:o], origin=T0 + timedelta(hours=o), models=())
    d = fc.to_dict()["model"]
    w = d["weights"]
    # Noise: some mix edges past the blend on the validation days, by far less than the
    # margin, so the blend keeps at least half the weight.
    assert 1 - fmod.FLOOR_SHARE <= w["blend"] < 1, fc.notes
    note = fc.notes[0]
    assert f"is not 8% better than the blend: {fmod.FLOOR_SHARE:.0%} of it is taken" in note
    assert "MSTL(24,168)" in note and "weekly seasonal exponential smoothing" in note
    assert set(d["validation_mae"]) == {"chosen", "blend", "mstl", "ses168"}
    assert d["validation_mae"]["chosen"] <= d["validation_mae"]["blend"]
    assert d["origins"] == fmod.VALID_DAYS * 24 // fmod.VALID_STEP and d["days"] == fmod.VALID_DAYS
    # Mostly the blend: the forecast stays close to the blend's own.
    gap = np.abs(np.array(fc.yhat) - np.array(alone.yhat)).mean() / np.mean(alone.yhat)
    assert 0 < gap < 0.05, gap


def test_a_level_shift_on_the_last_day_leaves_it_to_the_blend() -> None:
    ts, y = smooth_trend()
    o = y.size - 24
    y = y.copy()
    y[o - 30:] *= 0.3  # a lockdown from 30 hours before the origin
    fc = forecast_next(ts[:o], y[:o], origin=T0 + timedelta(hours=o))
    assert fc.model["weights"] == {"blend": 1.0}
    assert "level shift" in fc.notes[0]
    usual = forecast_next(ts[:o - 48], y[:o - 48], origin=T0 + timedelta(hours=o - 48))
    assert np.sum(fc.yhat) < 0.55 * np.sum(usual.yhat)


def test_candidate_fits_are_kept_between_forecasts() -> None:
    ts, y = smooth_trend()
    o = y.size - 24
    forecast_next(ts[:o], y[:o], origin=T0 + timedelta(hours=o))
    fits = fm.stats["fits"]
    again = forecast_next(ts[:o], y[:o], origin=T0 + timedelta(hours=o))
    assert fm.stats["fits"] == fits  # the same hours: nothing fitted again
    # 12 hours later: the new origin is fitted, the validation origins (every 12 hours
    # back) were fitted before.
    step = fmod.VALID_STEP
    forecast_next(ts[:o + step], y[:o + step], origin=T0 + timedelta(hours=o + step))
    assert fm.stats["fits"] - fits <= len(fm.available())
    assert again.model


def test_without_statsforecast_the_blend_stands_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    ts, y = smooth_trend()
    o = y.size - 24
    monkeypatch.setattr(fm, "_fitters", {})
    fc = forecast_next(ts[:o], y[:o], origin=T0 + timedelta(hours=o))
    assert fc.model == {} and fc.method == "seasonal blend (weekly)"
    assert not any(n.startswith("model:") for n in fc.notes)


def test_odd_days_are_taken_out_before_a_candidate_is_fitted() -> None:
    _, y = smooth_trend()
    seg = y[-8 * 168:].copy()
    seg[-5 * 24:-4 * 24] *= 0.2  # a holiday five days ago
    clean = fmod._without_odd_days(seg, 0)
    assert np.allclose(clean[:-5 * 24], seg[:-5 * 24]) and np.allclose(clean[-4 * 24:], seg[-4 * 24:])
    assert abs(clean[-5 * 24:-4 * 24].sum() / (seg[-5 * 24:-4 * 24].sum() / 0.2) - 1) < 0.1
    # The trend is not an odd day: the latest days are kept as they are.
    assert np.array_equal(fmod._without_odd_days(y[-8 * 168:], 0), y[-8 * 168:])
