"""Structured logs: one JSON object per line, and the setting that chooses them."""

from __future__ import annotations

import logging
import logging.config

import orjson
import pytest
from gridwatch.schemas.errors import ConfigError

from gridwatch import logs
from gridwatch import settings as settings_mod


def _record(msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            import sys

            exc_info = sys.exc_info()
    return logging.LogRecord("gridwatch.ingest", logging.WARNING, __file__, 1, msg, args, exc_info)


def test_a_json_line_has_the_message_level_logger_and_time() -> None:
    line = logs.JsonFormatter().format(_record("applied %d events in %s", 2000, "12 ms"))
    out = orjson.loads(line)
    assert out["msg"] == "applied 2000 events in 12 ms"
    assert out["level"] == "warning"
    assert out["logger"] == "gridwatch.ingest"
    assert out["ts"].endswith("+00:00") and "T" in out["ts"]
    assert "\n" not in line


def test_an_exception_is_kept_in_the_same_line() -> None:
    line = logs.JsonFormatter().format(_record("failed", exc=True))
    assert "\n" not in line
    assert "ValueError: boom" in orjson.loads(line)["exc"]


def test_the_dict_config_writes_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    logging.config.dictConfig(logs.config("json", "info"))
    try:
        logging.getLogger("gridwatch.test").info("hello %s", "district")
        err = capsys.readouterr().err.strip().splitlines()
        assert orjson.loads(err[-1])["msg"] == "hello district"
    finally:
        logging.config.dictConfig(logs.config("text", "warning"))


def test_the_log_format_setting() -> None:
    assert settings_mod.load({}).log_format == "text"
    assert settings_mod.load({"GRIDWATCH_LOG_FORMAT": "JSON"}).log_format == "json"
    with pytest.raises(ConfigError, match="GRIDWATCH_LOG_FORMAT"):
        settings_mod.load({"GRIDWATCH_LOG_FORMAT": "xml"})
