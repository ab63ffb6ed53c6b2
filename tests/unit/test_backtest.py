"""Tests of the rolling-origin backtest harness (``bench/backtest.py``) and its CLI."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.backtest import BacktestError, main, run_backtest
from gridwatch import cli

ROOT = Path(__file__).resolve().parents[2]


def write_series(path: Path, hours: int, seed: int = 0, drop: float = 0.0) -> Path:
    rng = np.random.default_rng(seed)
    t = np.arange(hours)
    mean = 50 * (1 + 0.8 * np.sin(2 * np.pi * (t % 24 - 6) / 24)) * np.where((t // 24) % 7 >= 5, 0.6, 1)
    ts = pd.date_range("2024-03-01T00:00:00Z", periods=hours, freq="h")
    df = pd.DataFrame({"ts": ts.strftime("%Y-%m-%dT%H:%M:%SZ"), "count": rng.poisson(mean)})
    if drop:
        df = df[rng.random(hours) > drop]
    df.to_csv(path, index=False)
    return path


def test_backtest_writes_rows_and_scores(tmp_path: Path) -> None:
    src = write_series(tmp_path / "in.csv", 5 * 168, drop=0.05)
    out = tmp_path / "out.csv"
    calls: list[tuple[int, int]] = []
    rep = run_backtest(str(src), horizon=24, origins=3, step=24, out_path=str(out),
                       progress=lambda d, n: calls.append((d, n)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    with open(out) as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["origin", "ts", "yhat", "lo80", "hi80", "lo95", "hi95"]
    assert len(rows) == 3 * 24
    # The last origin is `horizon` hours before the end; origins are `step` apart.
    assert rows[-1]["ts"] == "2024-04-04T23:00:00Z" and rows[-1]["origin"] == "2024-04-04T00:00:00Z"
    assert rows[0]["origin"] == "2024-04-02T00:00:00Z"
    for r in rows:
        v = [float(r[k]) for k in ("lo95", "lo80", "yhat", "hi80", "hi95")]
        assert v == sorted(v) and v[0] >= 0
    assert set(rep.scores) == {"model", "blend", "mstl", "naive168"}
    for s in rep.scores.values():
        assert s.mae > 0 and s.mase > 0 and 0 <= s.cover80 <= s.cover95 <= 1 and s.n > 60
    assert rep.ratio_mstl > 0 and rep.ratio_naive > 0
    text = rep.format_report()
    assert "mstl" in text and "naive168" in text and "MAE ratio" in text


def test_no_look_ahead_in_the_backtest(tmp_path: Path) -> None:
    src = write_series(tmp_path / "in.csv", 5 * 168, seed=1)
    run_backtest(str(src), origins=2, out_path=str(tmp_path / "a.csv"))
    df = pd.read_csv(src)
    df.iloc[-10:, 1] = 10**6  # change the last hours: only the last origin may move
    df.to_csv(src, index=False)
    run_backtest(str(src), origins=2, out_path=str(tmp_path / "b.csv"))
    a, b = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv")
    pd.testing.assert_frame_equal(a.iloc[:24], b.iloc[:24])
    pd.testing.assert_frame_equal(a.iloc[24:], b.iloc[24:])  # last origin is before the change


@pytest.mark.parametrize("content, message", [
    ("when,count\n2024-01-01T00:00:00Z,3\n", "need columns ts,count"),
    ("ts,count\nyesterday,3\n", "bad timestamp"),
    ("ts,count\n2024-01-01T00:00:00Z,many\n", "non-numeric count"),
    ("ts,count\n2024-01-01T00:00:00Z,3\n", "too short"),
    ("ts,count\n", "no rows"),
])
def test_bad_csv_is_a_clear_error(tmp_path: Path, content: str, message: str,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "bad.csv"
    src.write_text(content)
    with pytest.raises(BacktestError, match=message):
        run_backtest(str(src))
    assert main(["--csv", str(src)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    assert main(["--csv", str(tmp_path / "nope.csv")]) == 2


def test_cli_prints_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = write_series(tmp_path / "in.csv", 4 * 168, seed=2)
    out = tmp_path / "out.csv"
    assert main(["--csv", str(src), "--origins", "2", "--horizon", "12", "--step", "12",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "MAE" in text and "model" in text
    assert len(pd.read_csv(out)) == 2 * 12


def test_cli_takes_a_holiday_calendar(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = write_series(tmp_path / "in.csv", 4 * 168, seed=2)
    assert main(["--csv", str(src), "--origins", "2", "--calendar", "CN"]) == 0
    assert "MAE" in capsys.readouterr().out
    assert main(["--csv", str(src), "--origins", "2", "--calendar", "lunar"]) == 2
    assert "unknown holiday calendar 'lunar'" in capsys.readouterr().err


def test_the_cli_points_to_the_benchmark(capsys: pytest.CaptureFixture[str]) -> None:
    # The backtest left the CLI for bench/: the old command says where it went, and
    # touches no server.
    assert cli.main(["forecast", "backtest", "--csv", "series.csv"]) == 2
    assert "python bench/backtest.py --csv FILE" in capsys.readouterr().err


def test_the_backtest_runs_as_a_script(tmp_path: Path) -> None:
    src = write_series(tmp_path / "in.csv", 4 * 168, seed=2)
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "backtest.py"), "--csv", str(src),
                           "--origins", "1", "--horizon", "12"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert "MAE" in done.stdout
