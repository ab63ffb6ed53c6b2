"""A simulated duty desk and field crew for ``gridwatch demo``.

In a control room the duty officers acknowledge alerts within minutes and the grid
workers take the tasks they are sent; in a demo with nobody at the desk every alert
stays new and escalates, level after level, and the feed fills with escalated alerts. The
crew plays the people the demo's users are not: a duty desk that acknowledges each
alert after a few simulated minutes (about one in ten late, so escalations still
happen), dispatches what needs a visit (red codes, crowds, cross-grid movements) and
resolves the rest with a note, and grid workers who accept, arrive and finish their
tasks; the desk then closes the loop. It acts through the same command log as the
cockpit (``gridwatch.commands``), so every step is in the records' audit under the
actors ``desk-sim`` and the workers' ids, and a refused step (a person acted first)
is only a refusal.

The grids of the demo's own grid worker are left to the people trying the demo: their
alerts wait for the duty officer, their tasks for the grid worker's phone. Workers
named ``slow`` (in the demo, those of the outbreak's core grid) take every task they are
offered only after the accept deadline has passed, so its alert escalates.

:func:`plan` is pure (records and the time in, commands out); :func:`run` is the loop.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from .agents.escalation import EscalationConfig
from .schemas import commands as contract
from .schemas.events import format_time
from .settings import Settings

DESK = "desk-sim"
#: Kinds that need someone on the spot: dispatched to the grid's workers.
VISIT = frozenset({"red_code", "loiter", "cross_grid"})
#: Seconds (event time) to acknowledge, by severity: well inside the escalation
#: deadlines (5, 15 and 60 minutes).
ACK_S = {"high": (60.0, 240.0), "medium": (120.0, 600.0), "low": (300.0, 1800.0)}
ESCALATION = EscalationConfig()  # the worker's acknowledgement deadlines
LATE_SHARE = 0.1  # acknowledged after the deadline: escalations still happen
NEXT_S = {"dispatch": (60.0, 300.0), "resolve": (120.0, 900.0), "close": (60.0, 600.0),
          "accept": (60.0, 400.0), "arrive": (300.0, 1200.0), "done": (300.0, 1500.0)}
RESOLVE_NOTE = {
    "yellow_code": "called the person: test booked",
    "stale_test": "reminder sent to test within 24 h",
    "silent_source": "device restarted by the vendor",
    "station_high_risk": "gate screening arranged with the station",
    "escalation": "handled with the alert it is about",  # separate ones stored before
}
DONE_NOTE = {"red_code": "person escorted to the testing point",
             "loiter": "crowd dispersed", "cross_grid": "movement checked, person at home"}


def _uniform(key: str, lo: float, hi: float) -> float:
    """A value in [lo, hi) fixed by ``key``: the same record in the same state always
    waits as long, whichever tick looks at it."""
    h = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")
    return lo + (hi - lo) * (h / 2.0**64)


@dataclass
class Crew:
    """The simulated people: ``workers`` (id -> grids) of the city; alerts and tasks of
    the grids in ``leave`` are left alone."""

    workers: Mapping[str, tuple[str, ...]]
    leave: frozenset[str] = frozenset()
    seed: int = 1
    slow: frozenset[str] = frozenset()  # workers who accept after the accept deadline
    resend_s: float = 30.0  # wall seconds before a command that changed nothing is sent again
    sent: dict[str, float] = field(default_factory=dict)  # "id:status" -> wall time sent

    def _wait(self, record: Mapping[str, Any], step: str, lo: float, hi: float) -> float:
        return _uniform(f"{self.seed}:{record['id']}:{record['status']}:{step}", lo, hi)

    def _ack_wait(self, alert: Mapping[str, Any]) -> float:
        severity = alert.get("severity", "low")
        if _uniform(f"{self.seed}:{alert['id']}:late", 0.0, 1.0) < LATE_SHARE:
            deadline = ESCALATION.ack_s.get(severity, ESCALATION.ack_s["low"])
            return self._wait(alert, "ack", 1.1 * deadline, 1.6 * deadline)
        return self._wait(alert, "ack", *ACK_S.get(severity, ACK_S["low"]))

    def plan(self, alerts: Iterable[Mapping[str, Any]], tasks: Mapping[str, Mapping[str, Any]],
             now: float, wall: float | None = None) -> list[dict[str, Any]]:
        """The commands due at event time ``now`` for these open alerts and the tasks
        of the dispatched ones (by task id); each record state is acted on once, again
        only if it is still in that state ``resend_s`` later (``wall``: monotonic
        seconds; a lost command)."""
        wall = time.monotonic() if wall is None else wall
        out: list[dict[str, Any]] = []
        live: set[str] = set()
        for alert in alerts:
            if alert.get("grid_id") in self.leave:
                continue
            step = self._alert_step(alert)
            if step is not None:
                action, wait, note = step
                if self._due(alert, now, wait, live, wall):
                    out.append(self._command("alert", alert["id"], action, DESK,
                                             "duty_officer", (), note, now))
            task = tasks.get(alert.get("task_id") or "")
            if alert.get("status") == "dispatched" and task is not None:
                command = self._task_step(task, alert, now, live, wall)
                if command is not None:
                    out.append(command)
        # Forget what was sent for records that have moved on (or gone).
        for key in [k for k in self.sent if k not in live]:
            del self.sent[key]
        return out

    def _due(self, record: Mapping[str, Any], now: float, wait: float, live: set[str],
             wall: float) -> bool:
        key = f"{record['id']}:{record['status']}"
        live.add(key)
        if now < float(record["ts_updated"]) + wait:
            return False
        if key in self.sent and wall - self.sent[key] < self.resend_s:
            return False
        self.sent[key] = wall
        return True

    def _alert_step(self, alert: Mapping[str, Any]) -> tuple[str, float, str] | None:
        status, kind = alert.get("status"), alert.get("kind", "")
        if status == "new":
            return "ack", self._ack_wait(alert), ""
        if status == "acknowledged":
            if kind in VISIT and alert.get("grid_id"):
                return ("dispatch", self._wait(alert, "dispatch", *NEXT_S["dispatch"]),
                        "please check on the spot")
            return ("resolve", self._wait(alert, "resolve", *NEXT_S["resolve"]),
                    RESOLVE_NOTE.get(kind, "handled by phone"))
        if status == "resolved":
            return "close", self._wait(alert, "close", *NEXT_S["close"]), "loop closed"
        return None

    def _task_step(self, task: Mapping[str, Any], alert: Mapping[str, Any], now: float,
                   live: set[str], wall: float) -> dict[str, Any] | None:
        status = task.get("status")
        action = dict(contract.TASK_HAPPY_PATH).get(status or "")
        if action is None:
            return None
        worker = task.get("assignee") or next(
            (w for w in task.get("workers", ()) if w in self.workers), None)
        if worker is None:
            return None
        lo, hi = NEXT_S[action]
        if action == "accept" and worker in self.slow:
            lo, hi = 1.2 * ESCALATION.accept_s, 2.5 * ESCALATION.accept_s
        if not self._due(task, now, self._wait(task, action, lo, hi), live, wall):
            return None
        note = DONE_NOTE.get(alert.get("kind", ""), "checked") if action == "done" else ""
        return self._command("task", task["id"], action, worker, "grid_worker",
                             self.workers[worker], note, now)

    @staticmethod
    def _command(target: str, rid: str, action: str, actor: str, role: str,
                 grids: Iterable[str], note: str, now: float) -> dict[str, Any]:
        return {"v": 1, "command_id": str(uuid.uuid4()), "target": target, "id": rid,
                "action": action, "actor": actor, "role": role, "grids": list(grids),
                "note": note, "ts": format_time(now)}


def from_city(city: Mapping[str, Any], *, leave_worker: str | None, seed: int = 1,
              slow: Iterable[str] = ()) -> Crew:
    """The crew of a city: every grid worker but ``leave_worker``, whose grids are left
    to the people trying the demo; the workers in ``slow`` accept their tasks late."""
    workers = {w["id"]: tuple(w["grids"]) for w in city["workers"] if w["id"] != leave_worker}
    leave = frozenset(g for w in city["workers"] if w["id"] == leave_worker for g in w["grids"])
    return Crew(workers=workers, leave=leave, seed=seed, slow=frozenset(slow) & set(workers))


def run(settings: Settings, crew: Crew, stop: threading.Event, acted: list[int],
        interval: float = 1.0) -> None:
    """Every ``interval`` seconds until ``stop``: read the open alerts and their tasks,
    send the due commands. A failed round (Kafka or Redis restarting) is retried on the
    next; the crew never stops the demo."""
    from . import keys, queries, store
    from .command_keys import keyring
    from .redis_client import mget
    from .signing import sign
    from .streams import clients
    from .streams.topics import COMMANDS, command_key

    ring = keyring(settings)  # the crew acts through the command log, signed like the CLI
    r = store.connect(settings)
    producer = clients.producer(settings)
    try:
        while not stop.wait(interval):
            try:
                now = queries.event_now(r)
                alerts = queries.alerts(r, status="open", limit=20_000)
                ids = [a["task_id"] for a in alerts if a.get("status") == "dispatched"
                       and a.get("task_id")]
                raws = mget(r, [keys.task(i) for i in ids])
                tasks = {i: orjson.loads(raw) for i, raw in zip(ids, raws) if raw}
                for command in crew.plan(alerts, tasks, now):
                    producer.send(COMMANDS, key=command_key(command["target"], command["id"]),
                                  value=orjson.dumps(sign(command, ring)))
                    acted[0] += 1
                producer.flush(timeout=10)
            except Exception:  # noqa: BLE001 - the stack restarting: try again next round
                time.sleep(interval)
    finally:
        producer.close(timeout=5)
        r.close()
