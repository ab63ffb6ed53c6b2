"""The demo's day in figures (``python -m gridwatch.story``): open alerts with and without
the crew, the bands at the outbreak's peak, on the morning up to the peak hour's end at
5 % of the demo's scans."""

from __future__ import annotations

import re

import pytest

from gridwatch import story

ARGS = ["--hours", "7", "--scale", "0.05", "--history-days", "0"]


@pytest.fixture(scope="module")
def printed() -> str:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert story.main(ARGS) == 0
    return out.getvalue()


def rows(text: str) -> list[tuple[str, int, int, int, int, int, int, int]]:
    out = []
    for line in text.splitlines():
        m = re.fullmatch(r"(\d\d:00)" + r"\s+(\d+)" * 7, line)
        if m:
            out.append((m[1], *(int(x) for x in m.groups()[1:])))  # type: ignore[arg-type]
    return out


def test_one_row_per_hour_of_the_morning(printed: str) -> None:
    assert [r[0] for r in rows(printed)] == [f"{h:02d}:00" for h in range(8, 15)], printed


def test_the_crew_keeps_the_open_alerts_down_and_nobody_closes_any_without_it(printed: str) -> None:
    table = rows(printed)
    for _, raised, open_, escalated, yours, raised_alone, open_alone, escalated_alone in table:
        assert open_alone == raised_alone  # nobody acts: every alert raised is still open
        assert escalated_alone <= open_alone and escalated <= open_ <= raised
        assert yours <= open_
    last = table[-1]
    assert last[2] < last[5] / 2, printed  # the crew closes most of what is raised
    assert last[6] > 0.8 * last[5]  # without it most have waited past a deadline
    assert re.search(r"crew commands applied [\d,]+, refused 0$", printed.strip()), printed


def test_the_map_at_the_peak_has_its_few_red_and_yellow_grids(printed: str) -> None:
    peaks = re.findall(r"bands at the peak, 13:00-14:00, (with crew|without crew): "
                       r"red (\d+) \(([\d.]+) %\), yellow (\d+) \([\d.]+ %\), "
                       r"blue (\d+) \([\d.]+ %\)", printed)
    assert [p[0] for p in peaks] == ["with crew", "without crew"], printed
    for _, red, _share, yellow, blue in peaks:
        assert int(red) >= 1 and 1 <= int(red) + int(yellow) <= 6
        assert int(red) + int(yellow) + int(blue) == 800


def test_bad_arguments_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        story.main(["--hours", "0"])
    assert "--hours must be in (0, 48]" in capsys.readouterr().err
