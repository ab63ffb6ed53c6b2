"""Browser fixtures: Debian's Chromium driven by Playwright, a gateway on the test stack.

The stack (Kafka and Redis on ports of their own), the per-test cleaning and the real
``gridwatch worker`` processes are the integration fixtures, shared from
``tests/integration/conftest.py``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from gridwatch import settings as settings_mod
from tests.integration.conftest import (  # noqa: F401 - fixtures used by the browser tests
    Workers,
    clean_stack,
    stack_settings,
    wait_until,
    workers,
)
from tests.integration.test_gateway import GatewayProcess

ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
    # Stops Chromium's own calls to the internet; pages use 127.0.0.1, never localhost.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--autoplay-policy=no-user-gesture-required",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_type_launch_args, "executable_path": "/usr/bin/chromium", "args": ARGS}


def _stop(g: GatewayProcess) -> None:
    """Stop the gateway, also one that never answered at start; SIGKILL if it lingers."""
    try:
        g.stop()
    except subprocess.TimeoutExpired:
        g.kill()


@pytest.fixture
def cockpit(workers: Workers,  # noqa: F811 - the integration fixture imported above
            tmp_path: Path) -> Iterator[tuple[GatewayProcess, Workers]]:
    """The whole system: clean topics and Redis, worker processes (started by the test)
    and a fresh gateway."""
    g = GatewayProcess(workers.settings, tmp_path)
    try:
        g.start()
        yield g, workers
    finally:
        _stop(g)


@pytest.fixture
def gateway_only(stack_settings: settings_mod.Settings,  # noqa: F811 - imported fixture
                 tmp_path: Path) -> Iterator[tuple[GatewayProcess, redis.Redis, settings_mod.Settings]]:
    """A fresh gateway on the test stack and its emptied Redis database, no worker."""
    r = redis.Redis.from_url(stack_settings.redis)
    r.flushdb()
    g = GatewayProcess(stack_settings, tmp_path)
    try:
        g.start()
        yield g, r, stack_settings
    finally:
        _stop(g)
        r.close()
