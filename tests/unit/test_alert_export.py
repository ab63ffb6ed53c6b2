"""The alerts export's pure parts: reading a period, the rows, the formula guard."""

from __future__ import annotations

import csv
import io
import zoneinfo
from datetime import datetime, timezone

import pytest

from gridwatch import alert_export as ex

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


def test_a_date_is_the_districts_midnight_and_an_offset_wins() -> None:
    lo, hi = ex.parse_period("2024-05-01", "2024-05-02T08:00Z", SHANGHAI)
    assert lo == datetime(2024, 4, 30, 16, tzinfo=timezone.utc).timestamp()
    assert hi == datetime(2024, 5, 2, 8, tzinfo=timezone.utc).timestamp()
    lo, _ = ex.parse_period("2024-05-01T09:30", "2024-05-01T10:00", SHANGHAI)
    assert lo == datetime(2024, 5, 1, 1, 30, tzinfo=timezone.utc).timestamp()


@pytest.mark.parametrize(("start", "end", "says"), [
    ("", "2024-05-02", "from is missing"),
    ("2024-05-01", " ", "to is missing"),
    ("2024-13-01", "2024-05-02", "is not a date or time"),
    ("=1+1", "2024-05-02", "is not a date or time"),
    ("2024-05-02", "2024-05-01", "must be after"),
    ("2024-05-01", "2024-06-01T00:00:01", "longer than 31 days"),
])
def test_bad_periods_say_what_is_wrong(start: str, end: str, says: str) -> None:
    with pytest.raises(ex.PeriodError, match=says):
        ex.parse_period(start, end, SHANGHAI)


def test_31_days_is_allowed() -> None:
    lo, hi = ex.parse_period("2024-05-01", "2024-06-01", SHANGHAI)
    assert hi - lo == 31 * 86400


def alert(aid: str, audit: list[dict[str, object]], **extra: object) -> dict[str, object]:
    return {"id": aid, "kind": "loiter", "severity": "medium", "status": "new",
            "grid_id": "G1", "station_id": None, "ts_raised": 0.0, "title": "t",
            "title_zh": "标题", "task_id": None, "audit": audit, **extra}


def test_one_row_per_audit_entry_and_formulas_are_quoted() -> None:
    trail = [{"action": "raise", "from_state": None, "to_state": "new", "actor": "system",
              "role": "system", "ts": 0.0, "note": ""},
             {"action": "ack", "from_state": "new", "to_state": "acknowledged", "actor": "@me",
              "role": "duty_officer", "ts": 60.0, "note": "-1 person, =A1\t+"}]
    rows = ex.csv_rows([alert("a1", trail), alert("a2", [], title="\tx", title_zh="+y")])
    assert [r[ex.COLUMNS.index("audit_n")] for r in rows] == [1, 2, None]
    table = list(csv.DictReader(io.StringIO(ex.csv_text([alert("a1", trail),
                                                          alert("a2", [], title="\tx",
                                                                title_zh="+y")]))))
    assert table[1]["actor"] == "'@me" and table[1]["note"] == "'-1 person, =A1\t+"
    assert table[1]["at"] == "1970-01-01T00:01:00+00:00"
    assert table[2]["title"] == "'\tx" and table[2]["title_zh"] == "'+y"
    assert table[2]["action"] == "" and table[0]["from_state"] == ""
    assert list(table[0]) == list(ex.COLUMNS)
