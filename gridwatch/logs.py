"""Log lines for people (text) or for a log pipeline (JSON, one object per line).

``GRIDWATCH_LOG_FORMAT=json`` makes the worker and the gateway write each record as
``{"ts": ..., "level": ..., "logger": ..., "msg": ..., "process": ...}`` plus the
exception text when there is one, so Loki, Elasticsearch or ``jq`` can read them
without parsing free text.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

import orjson

TEXT_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(
                timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "process": record.process,
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


def formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def config(log_format: str, level: str = "INFO") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for one process writing to stderr."""
    fmt: dict[str, Any] = ({"()": f"{__name__}.JsonFormatter"} if log_format == "json"
                           else {"format": TEXT_FORMAT})
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": fmt},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "main",
                                "stream": "ext://sys.stderr"}},
        "root": {"level": level.upper(), "handlers": ["stderr"]},
    }


def setup(log_format: str, level: int = logging.INFO) -> None:
    """Configure the root logger of a plain (non-faust) process."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(log_format))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
