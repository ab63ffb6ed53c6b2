"""Browser fixtures: Debian's Chromium driven by Playwright, a gateway on the local stack."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from gridwatch import settings as settings_mod

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from test_gateway import GatewayProcess

ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
    # Stops Chromium's own calls to the internet; pages use 127.0.0.1, never localhost.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--autoplay-policy=no-user-gesture-required",
]
DB = 8  # a Redis database of its own
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_type_launch_args, "executable_path": "/usr/bin/chromium", "args": ARGS}


@pytest.fixture
def cockpit(tmp_path: Path) -> Iterator[tuple[GatewayProcess, redis.Redis, settings_mod.Settings]]:
    """A fresh gateway on the running local stack and its (emptied) Redis database."""
    base = settings_mod.load()
    s = base.with_(redis=base.redis.rsplit("/", 1)[0] + f"/{DB}")
    r = redis.Redis.from_url(s.redis)
    try:
        r.ping()
    except redis.ConnectionError:
        pytest.skip("the local stack is not running (gridwatch stack up)")
    r.flushdb()
    g = GatewayProcess(s, tmp_path)
    g.start()
    try:
        yield g, r, s
    finally:
        g.stop()
        r.close()
