"""Tests run coroutines through ``tests.aio.run``, never ``asyncio.run`` directly.

The browser tests keep an event loop running in the main thread for the rest of the
session (Playwright), and ``asyncio.run`` refuses to start while one runs: a test that
calls it passes alone and fails in the whole suite, after the browser tests.
"""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_no_test_calls_asyncio_run_directly() -> None:
    here = Path(__file__).resolve()
    offenders = [f"{path.relative_to(TESTS)}:{n}"
                 for path in sorted(TESTS.rglob("*.py"))
                 if path.name != "aio.py" and path.resolve() != here
                 for n, line in enumerate(path.read_text().splitlines(), 1)
                 if "asyncio.run(" in line.split("#")[0]]
    assert offenders == [], "use tests.aio.run: " + ", ".join(offenders)
