"""Run a coroutine to completion from a synchronous test.

``asyncio.run`` refuses to start while an event loop runs in the calling thread, and the
browser tests' Playwright keeps one running in the main thread for the whole session, so
a test that runs after them gets a loop of its own in a worker thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coro)`` in a thread of its own; returns its result or raises."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()
