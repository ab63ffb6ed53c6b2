"""Cockpit commands through the gateway: checked, produced to Kafka, their outcome relayed.

A client's ``{"op":"cmd"}`` is answered with ``result`` frames tied to its ``req``: a
refusal (``ok: false`` and a reason), or ``state: "sent"`` once Kafka has it, then
``state: "applied"`` with the worker's outcome, or ``state: "pending"`` when none came
within :data:`RESULT_WAIT_S`. The rules are :mod:`.commands`' (no I/O); this module does
the I/O around them: the command budget per user, the target record's read, the
producer (connected in the background, retried while Kafka is away), and one shared
waiter for the worker's outcomes (:class:`Outcomes`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from gridwatch.streams.topics import COMMANDS, command_key
from websockets.asyncio.server import ServerConnection

from gridwatch import keys, redis_client
from gridwatch.settings import Settings
from gridwatch.signing import Keyring

from .commands import CommandError, check, command_record, parse
from .conn import Conn
from .handler import CLOSE_SESSION
from .hub import REDIS_ERRORS
from .limits import KeyedBuckets
from .metrics import Metrics

log = logging.getLogger("gridwatch.gateway")

RESULT_WAIT_S = 5.0  # how long a command's outcome is awaited from the worker
POLL_S = 0.1  # how often the outcomes of the commands in flight are read

Verdict = tuple[int, str]  # a close code and reason for a socket that must close
Recheck = Callable[[Conn, str | None], Awaitable[Verdict | None]]


def result(msg: dict[str, Any], **fields: Any) -> bytes:
    """A command reply, tied to the client's request id ``req``."""
    return orjson.dumps({"op": "result", "req": msg.get("req"), "action": msg.get("action"),
                         "id": msg.get("id"), **fields})


class Outcomes:
    """The worker's outcomes (``keys.cmdresult``) of every command in flight, for the
    whole gateway process: one task reads all the awaited keys in one ``MGET`` every
    :data:`POLL_S` while any is awaited, and resolves their waiters (not one polling
    loop per command)."""

    def __init__(self, r: Any, *, every: float = POLL_S) -> None:
        self.r = r
        self.every = every
        self._waiting: dict[str, set[asyncio.Future[dict[str, Any]]]] = {}
        self._work = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="command-outcomes")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def wait(self, command_id: str, *, timeout: float) -> dict[str, Any] | None:
        """The outcome of one command, or ``None`` when none came within ``timeout``."""
        if self._task is None:
            self.start()
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(command_id, set()).add(fut)
        self._work.set()
        try:
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            return None
        finally:
            waiters = self._waiting.get(command_id)
            if waiters is not None:
                waiters.discard(fut)
                if not waiters:
                    del self._waiting[command_id]

    async def _run(self) -> None:
        while True:
            await self._work.wait()
            ids = list(self._waiting)
            if not ids:
                self._work.clear()  # nothing awaited: sleep until a waiter comes
                continue
            try:
                raws = await redis_client.amget(self.r, [keys.cmdresult(i) for i in ids])
            except REDIS_ERRORS as exc:  # Redis away: the waiters time out as "pending"
                log.warning("reading command outcomes: %s", exc)
                raws = []
            for command_id, raw in zip(ids, raws):
                if raw:
                    self._resolve(command_id, raw)
            await asyncio.sleep(self.every)

    def _resolve(self, command_id: str, raw: bytes) -> None:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            log.warning("command %s: outcome not JSON", command_id)
            return
        for fut in self._waiting.pop(command_id, ()):
            if not fut.done():
                fut.set_result(body)


class Relay:
    """The commands of every socket of one gateway process, and its Kafka producer."""

    def __init__(self, settings: Settings, r: Any, metrics: Metrics, *,
                 keyring: Keyring | None, recheck: Recheck) -> None:
        self.settings = settings
        self.r = r
        self.metrics = metrics
        self.keyring = keyring  # signs the commands it produces
        self.recheck = recheck  # why the socket must close now, if it must
        # Shared by all of a user's sockets: more sockets buy no more commands.
        self.budgets = KeyedBuckets(rate=settings.cmd_rate, burst=settings.cmd_burst)
        self.outcomes = Outcomes(r)
        self.producer: Any = None
        self._connect: asyncio.Task[None] | None = None

    def submit(self, ws: ServerConnection, conn: Conn, token: str | None,
               msg: dict[str, Any]) -> asyncio.Task[None] | None:
        """Take one command off the user's budget and run it in its own task (``None``:
        over the budget, refused)."""
        if not self.budgets.take(conn.user.name, time.monotonic()):
            self.metrics.commands.labels("rate_limited").inc()
            conn.send_raw(result(msg, ok=False, reason="rate_limited"))
            return None
        return asyncio.create_task(self.run(ws, conn, token, msg))

    async def run(self, ws: ServerConnection, conn: Conn, token: str | None,
                  msg: dict[str, Any]) -> None:
        """Check a command against the user's rights as stored now, produce it to Kafka,
        then relay the worker's outcome."""
        user = conn.user
        verdict: Verdict | None = None
        try:
            cmd = parse(msg)
            verdict = await self.recheck(conn, token)
            if verdict is not None:
                raise CommandError("session_ended" if verdict[0] == CLOSE_SESSION
                                   else "rights_changed")
            rkey = {"alert": keys.alert, "task": keys.task, "duty": keys.user}[cmd["target"]]
            raw = await self.r.get(rkey(cmd["id"]))
            check(user, cmd, orjson.loads(raw) if raw else None)
        except CommandError as exc:
            self.metrics.commands.labels(exc.reason).inc()
            conn.send_raw(result(msg, ok=False, reason=exc.reason))
            if verdict is not None:  # the refusal first, then the close that says why
                await asyncio.sleep(0.2)
                await ws.close(*verdict)
            return
        # The command happens "now" on the control room's clock: the feed's event time
        # when it runs ahead of the wall clock (a simulated day at speed). Stamped here,
        # once, so a replay of the command log applies it exactly as the first time.
        marks = [float(v) for v in await self.r.hvals(keys.WATERMARKS)]
        record = command_record(user, cmd, now=max([time.time(), *marks]), keyring=self.keyring)
        try:
            if self.producer is None:
                raise ConnectionError("no Kafka producer")
            await self.producer.send_and_wait(COMMANDS, orjson.dumps(record),
                                              key=command_key(cmd["target"], cmd["id"]))
        except Exception as exc:  # noqa: BLE001 - any broker failure: the client must hear of it
            log.warning("command %s not produced: %s", cmd["command_id"], exc)
            self.metrics.commands.labels("kafka_unavailable").inc()
            conn.send_raw(result(msg, ok=False, reason="kafka_unavailable"))
            return
        self.metrics.commands.labels("sent").inc()
        conn.send_raw(result(msg, state="sent", command_id=cmd["command_id"]))
        body = await self.outcomes.wait(cmd["command_id"], timeout=RESULT_WAIT_S)
        if body is None:
            conn.send_raw(result(msg, state="pending", command_id=cmd["command_id"]))
        else:
            conn.send_raw(result(msg, state="applied", command_id=cmd["command_id"],
                                 ok=bool(body.get("ok")), reason=body.get("reason")))

    # ---- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        """Connect the producer in the background; start the outcome waiter."""
        self._connect = asyncio.create_task(self._start_producer(), name="kafka-producer")
        self.outcomes.start()

    async def stop(self) -> None:
        if self._connect is not None:
            self._connect.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connect
        await self.outcomes.stop()
        if self.producer is not None:
            await self.producer.stop()

    async def _start_producer(self) -> None:
        """Connect the command producer, retrying while Kafka is away."""
        from gridwatch.streams import clients

        while self.producer is None:
            producer = clients.async_producer(self.settings, client_id="gridwatch-gateway")
            try:
                await producer.start()
                self.producer = producer
            except asyncio.CancelledError:  # the gateway stops while it connects
                with contextlib.suppress(Exception):
                    await producer.stop()
                raise
            except Exception as exc:  # noqa: BLE001 - broker down: aiokafka raises several kinds
                log.warning("Kafka not reachable (%s); retrying", exc)
                with contextlib.suppress(Exception):
                    await producer.stop()
                await asyncio.sleep(2.0)
