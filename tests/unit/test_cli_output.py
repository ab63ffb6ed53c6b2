"""What the duty room's CLI prints, to the byte: the lists (``alerts``, ``tasks``, ``trace``,
``trace audit``, ``duty list``, ``silence list``, ``alerts export``) and the outcome of a
command (``alert``, ``duty``, ``silence add|end``), as text and as ``--json``.

The reads are the query modules' own (tested against Redis elsewhere); here they return
fixed rows, and the connection records that it was closed.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gridwatch import alert_export, cli, cli_ops, cli_silence, keys, queries, store, trace_access

T = 1795824000.0  # 2026-11-28T00:00:00+00:00


class Connection:
    """What the CLI holds between connect and close: the duty hash, and whether closed."""

    def __init__(self) -> None:
        self.closed = False

    def hgetall(self, key: str) -> dict[bytes, bytes]:
        assert key == keys.DUTY
        return {b"w2": orjson.dumps({"worker": "w2", "on": False, "ts": T + 60,
                                     "role": "duty_officer", "actor": "wang"}),
                b"w1": orjson.dumps({"worker": "w1", "on": True, "ts": T,
                                     "role": "grid_worker", "actor": "w1"})}

    def close(self) -> None:
        self.closed = True


ALERTS = [{"ts_raised": T + 120, "severity": "high", "status": "new", "grid_id": "G3",
           "id": "al-2", "title": "red code at CP7"},
          {"ts_raised": T, "severity": "low", "status": "acknowledged", "grid_id": None,
           "id": "al-1", "title": "camera c9 silent"}]
TASKS = [{"ts_created": T + 30, "status": "offered", "grid_id": "G3", "id": "t-1"}]
AUDIT = [{"at": "2026-11-28T08:05:00+08:00", "actor": "chen", "via": "cli",
          "person": "p-1234", "rows": 3, "reason": "case 9"},
         {"at": "2026-11-28T08:01:00+08:00", "actor": "li", "via": "gateway",
          "person": "p-99", "rows": None, "reason": "check"}]
TRACE = [{"ts": "2026-11-28T07:40:00+08:00", "checkpoint_id": "CP7", "grid_id": "G3",
          "direction": "in", "code_color": "green"},
         {"ts": "2026-11-28T07:10:00+08:00", "checkpoint_id": "CP12", "grid_id": None,
          "direction": "out", "code_color": "red"}]
SILENCES = [{"id": "sil-1", "match": "grid", "value": "G3", "ends_at": T + 5400, "held": 2,
             "actor": "wang", "reason": "drill"}]


@pytest.fixture
def conns(monkeypatch: pytest.MonkeyPatch) -> list[Connection]:
    made: list[Connection] = []

    def connect(_s: Any) -> Connection:
        made.append(Connection())
        return made[-1]

    monkeypatch.setenv("GRIDWATCH_TZ", "Asia/Shanghai")  # the export's clock
    monkeypatch.setattr(store, "connect", connect)
    monkeypatch.setattr(queries, "alerts", lambda r, **kw: list(ALERTS))
    monkeypatch.setattr(queries, "tasks", lambda r, **kw: list(TASKS))
    monkeypatch.setattr(queries, "event_now", lambda r: T)
    monkeypatch.setattr(trace_access, "audit", lambda r, **kw: list(AUDIT))
    monkeypatch.setattr(trace_access, "lookup", lambda r, **kw: list(TRACE))
    monkeypatch.setattr(cli_silence, "active", lambda r: [dict(row) for row in SILENCES])
    monkeypatch.setattr(alert_export, "read", lambda r, lo, hi: [])
    return made


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


LISTS = {
    ("alerts",): (
        ("2026-11-28T00:02:00+00:00  high   new          G3     al-2  red code at CP7\n"
         "2026-11-28T00:00:00+00:00  low    acknowledged -      al-1  camera c9 silent\n"),
        "", ALERTS),
    ("tasks", "--worker", "w1"): (
        "2026-11-28T00:00:30+00:00  offered   G3     t-1\n", "", TASKS),
    ("trace", "audit"): (
        ("2026-11-28T08:05:00+08:00  chen         cli     p-1234                   3 rows  case 9\n"
         "2026-11-28T08:01:00+08:00  li           gateway p-99                     ? rows  check\n"),
        "", AUDIT),
    ("trace", "p-1234", "--reason", "case 9", "--actor", "chen"): (
        ("2026-11-28T07:40:00+08:00  CP7      G3     in  green\n"
         "2026-11-28T07:10:00+08:00  CP12     -      out red\n"), "", TRACE),
    ("duty", "list"): (
        ("w1           on   since 2026-11-28T00:00:00+00:00  by grid_worker w1\n"
         "w2           off  since 2026-11-28T00:01:00+00:00  by duty_officer wang\n"), "",
        [{"worker": "w1", "on": True, "ts": T, "role": "grid_worker", "actor": "w1"},
         {"worker": "w2", "on": False, "ts": T + 60, "role": "duty_officer", "actor": "wang"}]),
    ("silence", "list"): (
        "sil-1  grid   G3             1h30m left  held 2    by wang: drill\n", "", SILENCES),
}


@pytest.mark.parametrize("argv", list(LISTS), ids=" ".join)
def test_a_list_prints_its_lines_or_its_json_and_closes_the_connection(
        argv: tuple[str, ...], conns: list[Connection], capsys: pytest.CaptureFixture[str]) -> None:
    out, err, rows = LISTS[argv]
    assert run(capsys, *argv) == (0, out, err)
    assert run(capsys, *argv, "--json") == (0, orjson.dumps(rows, option=orjson.OPT_INDENT_2)
                                            .decode() + "\n", "")
    assert conns and all(c.closed for c in conns)


def test_an_empty_list_says_so_where_it_did(conns: list[Connection], capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Connection, "hgetall", lambda self, key: {})
    monkeypatch.setattr(cli_silence, "active", lambda r: [])
    monkeypatch.setattr(queries, "alerts", lambda r, **kw: [])
    assert run(capsys, "duty", "list") == (0, "", "no worker has marked their duty (all on duty)\n")
    assert run(capsys, "silence", "list") == (0, "no active silence\n", "")
    assert run(capsys, "alerts") == (0, "", "")
    assert run(capsys, "duty", "list", "--json") == (0, "[]\n", "")
    assert run(capsys, "silence", "list", "--json") == (0, "[]\n", "")
    assert all(c.closed for c in conns)


def test_bad_input_is_a_clear_error_and_the_connection_is_closed(
        conns: list[Connection], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert run(capsys, "alerts", "--since", "soon") == (
        2, "", "gridwatch: 'soon': expected a span like 30m, 6h or 14d\n")
    assert run(capsys, "trace", "audit", "--since", "7 days") == (
        2, "", "gridwatch: '7 days': expected a span like 30m, 6h or 14d\n")
    assert run(capsys, "alerts", "export", "--from", "2026-11-28", "--to", "2026-11-27") == (
        2, "", ("gridwatch: bad period: to (2026-11-27T00:00:00+08:00) must be after from "
                "(2026-11-28T00:00:00+08:00)\n"))

    def refuse(r: Any, **kw: Any) -> list[dict[str, Any]]:
        raise trace_access.TraceRefused("no_reason", "a reason is required")

    monkeypatch.setattr(trace_access, "lookup", refuse)
    assert run(capsys, "trace", "p-1", "--reason", " ", "--actor", "chen") == (
        2, "", "gridwatch: a reason is required (gridwatch trace PERSON_REF --reason TEXT)\n")
    assert len(conns) == 4 and all(c.closed for c in conns)


def test_the_export_writes_its_csv_to_stdout_or_to_a_file(
        conns: list[Connection], capsys: pytest.CaptureFixture[str], tmp_path: Any) -> None:
    header = ",".join(alert_export.COLUMNS) + "\n"
    period = ("--from", "2026-11-28", "--to", "2026-11-29")
    assert run(capsys, "alerts", "export", *period) == (0, header, "")
    out = tmp_path / "a.csv"
    assert run(capsys, "alerts", "export", *period, "--out", str(out)) == (
        0, "", (f"{out}: 0 alerts raised from 2026-11-27T16:00:00+00:00 to "
                "2026-11-28T16:00:00+00:00\n"))
    assert out.read_text(encoding="utf-8") == header
    assert all(c.closed for c in conns)


OUTCOMES = {
    ("alert", "ack", "al-2", "--actor", "wang"): (
        {"ok": True, "alert": {"status": "acknowledged"}},
        "alert al-2: ack done; status acknowledged\n"),
    ("incident", "ack", "in-1", "--actor", "wang"): (
        {"ok": True, "acknowledged": ["al-1", "al-2"]},
        "incident in-1: ack done; 2 alerts: al-1 al-2\n"),
    ("duty", "off", "--worker", "w1", "--actor", "w1"): (
        {"ok": True, "tasks": ["t-1", "t-2"]}, "w1: off duty; tasks re-offered: t-1, t-2\n"),
    ("duty", "on", "--worker", "w1", "--actor", "w1"): ({"ok": True}, "w1: on duty\n"),
    ("silence", "add", "--grid", "G3", "--for", "90m", "--reason", "drill", "--actor", "wang"): (
        {"ok": True, "silence": {"id": "sil-1", "match": "grid", "value": "G3",
                                 "ends_at": T + 5400}},
        "silence sil-1: grid G3 until 2026-11-28T01:30:00+00:00\n"),
    ("silence", "end", "sil-1", "--actor", "wang"): (
        {"ok": True, "reopened": ["al-1"]}, "silence sil-1: ended; 1 alerts reopened\n"),
}


@pytest.mark.parametrize("argv", list(OUTCOMES), ids=lambda a: " ".join(a[:2]))
def test_a_command_prints_its_outcome_or_the_refusal(
        argv: tuple[str, ...], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    outcome, line = OUTCOMES[argv]
    sent: list[dict[str, Any]] = []
    answer: dict[str, Any] = outcome

    def send(_s: Any, command: dict[str, Any]) -> dict[str, Any]:
        sent.append(command)
        return answer

    monkeypatch.setattr(cli_ops, "send_command", send)
    at = ("--at", str(T))
    assert run(capsys, *argv, *at) == (0, line, "")
    assert sent[-1]["ts"] == "2026-11-28T00:00:00+00:00" and sent[-1]["actor"] == argv[-1]
    assert run(capsys, *argv, *at, "--json") == (
        0, orjson.dumps(outcome, option=orjson.OPT_INDENT_2).decode() + "\n", "")
    answer = {"ok": False, "reason": "not allowed"}
    assert run(capsys, *argv, *at) == (1, "", "gridwatch: refused: not allowed\n")
    assert run(capsys, *argv, *at, "--json") == (
        1, '{\n  "ok": false,\n  "reason": "not allowed"\n}\n', "")
