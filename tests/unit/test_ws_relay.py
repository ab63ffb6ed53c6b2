"""ws/relay.py: one shared waiter reads the outcomes of every command in flight."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from gridwatch.ws.relay import Outcomes, result

from gridwatch import keys
from tests import aio


class Redis:
    """The one call the waiter makes, counted."""

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}
        self.mgets: list[list[str]] = []
        self.down = False

    async def mget(self, names: list[str]) -> list[Any]:
        if self.down:
            raise ConnectionError("redis away")
        self.mgets.append(list(names))
        return [self.values.get(n) for n in names]


def test_one_read_per_interval_answers_every_command_in_flight() -> None:
    async def scenario() -> None:
        r = Redis()
        outcomes = Outcomes(r, every=0.01)
        outcomes.start()
        waits = [asyncio.create_task(outcomes.wait(f"c{i}", timeout=2.0)) for i in range(50)]
        twice = asyncio.create_task(outcomes.wait("c7", timeout=2.0))  # the same id again
        await asyncio.sleep(0.05)
        assert r.mgets and all(len(m) == 50 for m in r.mgets)  # all ids, one call each time
        for i in range(50):
            r.values[keys.cmdresult(f"c{i}")] = orjson.dumps({"ok": i % 2 == 0, "reason": i})
        got = await asyncio.gather(*waits, twice)
        assert [g["reason"] for g in got] == [*range(50), 7]
        assert got[0]["ok"] and not got[1]["ok"]
        reads = len(r.mgets)
        await asyncio.sleep(0.05)
        assert len(r.mgets) == reads  # nothing awaited: no reads
        await outcomes.stop()

    aio.run(scenario())


def test_no_outcome_in_time_or_redis_away_is_none_and_the_waiter_keeps_going() -> None:
    async def scenario() -> None:
        r = Redis()
        outcomes = Outcomes(r, every=0.01)
        outcomes.start()
        assert await outcomes.wait("late", timeout=0.05) is None
        r.down = True
        assert await outcomes.wait("x", timeout=0.05) is None
        r.down = False
        r.values[keys.cmdresult("y")] = b'{"ok":true}'
        assert await outcomes.wait("y", timeout=1.0) == {"ok": True}
        await outcomes.stop()

    aio.run(scenario())


def test_a_cancelled_wait_leaves_nothing_behind() -> None:
    async def scenario() -> None:
        outcomes = Outcomes(Redis(), every=0.01)
        task = asyncio.create_task(outcomes.wait("gone", timeout=5.0))
        await asyncio.sleep(0.02)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert not outcomes._waiting
        await outcomes.stop()

    aio.run(scenario())


def test_a_result_frame_names_the_request() -> None:
    msg = {"op": "cmd", "req": 3, "action": "ack", "id": "a1"}
    assert orjson.loads(result(msg, ok=False, reason="forbidden")) == {
        "op": "result", "req": 3, "action": "ack", "id": "a1", "ok": False,
        "reason": "forbidden"}
