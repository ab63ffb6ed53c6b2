"""The gateway, the worker and the CLI accept and refuse the same commands: those of the
command contract (schemas/commands.py), for every action and role."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest
from gridwatch.agents import lifecycle as lc
from gridwatch.agents.commands import decode_command
from gridwatch.schemas import commands as contract
from gridwatch.schemas.errors import DecodeError, TransitionRefused
from gridwatch.schemas.events import parse_time
from gridwatch.schemas.records import Alert, Task
from gridwatch.ws.auth import User
from gridwatch.ws.commands import CommandError, check, parse

from gridwatch.cli import build_parser

T0 = parse_time("2026-11-22T08:00:00+08:00")
GRID = "G1"
NAME = "u1"  # the actor of every command; the task is offered to them
# Every action that exists anywhere: the contract's, the tables' own (the system's and
# the effects) and one that exists nowhere, each tried on both targets.
ACTIONS = sorted({*contract.ALERT_ACTIONS, *contract.TASK_ACTIONS,
                  *(a for _, a in contract.ALERT_TABLE), *(a for _, a in contract.TASK_TABLE),
                  "raise", "bogus"})
ROLES = [*contract.PERSON_ROLES, "system", "root"]
# The targets with a life-cycle table; silences: test_silences.py, duty: test_duty.py.
RECORDS = [t for t in contract.TARGETS if t not in ("silence", "duty")]
CASES = list(itertools.product(RECORDS, ACTIONS, ROLES))


def user(role: str) -> User:
    return User(NAME, role, grids=(GRID,) if role == "grid_worker" else (),
                stations=("SHS",) if role == "station_manager" else ())


def record(target: str, action: str, role: str, note: str) -> dict[str, Any]:
    return {"v": 1, "command_id": "8c1f6a0e-6f0a-4c53-9a51-0c6a2f7d1e11", "target": target,
            "id": "x-1", "action": action, "actor": NAME, "role": role,
            "grids": [GRID] if role == "grid_worker" else [], "note": note,
            "ts": "2026-11-22T00:05:00.000+00:00"}


def records_where(target: str, action: str) -> tuple[Alert, Task | None]:
    """An alert (and its task) in the first state the table allows ``action`` from."""
    officer: dict[str, Any] = {"actor": "wang", "role": "duty_officer"}
    worker: dict[str, Any] = {"actor": NAME, "role": "grid_worker", "grids": {GRID}}
    table = contract.ALERT_TABLE if target == "alert" else contract.TASK_TABLE
    want = next((s for s, a in table if a == action), "new")  # handover: in any state
    alert = lc.raise_alert(id="al-1", kind="loiter", severity="high", grid_id=GRID, ts=T0,
                           title="crowd", title_zh="聚集")
    if want == "new":
        return alert, None
    if want == "shelved":
        return lc.shelve(alert, ts=T0 + 1, note="nuisance", **officer), None
    alert = lc.ack(alert, ts=T0 + 1, **officer)
    if want == "acknowledged":
        return alert, None
    if want == "resolved":
        return lc.resolve(alert, ts=T0 + 2, note="by phone", **officer)
    alert, task = lc.dispatch(alert, workers=[NAME], ts=T0 + 2, **officer)
    if want in ("dispatched", "offered"):
        return alert, task
    task = lc.accept(task, ts=T0 + 3, **worker)
    if want == "accepted":
        return alert, task
    assert want == "on_site", want
    return alert, lc.arrive(task, ts=T0 + 4, **worker)


def gateway_accepts(target: str, action: str, role: str, note: str = "a note") -> bool:
    try:
        cmd = parse({"target": target, "id": "x-1", "action": action, "note": note})
        who = user(role)
    except CommandError as exc:
        assert exc.reason in ("bad_action", "note_required")
        return False
    except ValueError:  # not a role a user can have
        return False
    visible = {"id": "x-1", "grid_id": GRID, "workers": [NAME]}
    try:
        check(who, cmd, visible)
    except CommandError as exc:
        assert exc.reason == "forbidden"  # the record is theirs to see: never not_found
        return False
    return True


def worker_decodes(target: str, action: str, role: str, note: str = "a note") -> bool:
    try:
        decode_command(orjson.dumps(record(target, action, role, note)))
    except DecodeError as exc:
        assert exc.field in ("action", "role")
        return False
    return True


def worker_applies(target: str, action: str, role: str, note: str = "a note") -> bool:
    """Decoded, and applied by the life cycle to a record in a state that allows it."""
    if not worker_decodes(target, action, role, note):
        return False
    cmd = decode_command(orjson.dumps(record(target, action, role, note)))
    alert, task = records_where(target, action)
    try:
        if target == "incident":  # the worker's path for an incident's one command
            if action != "ack":
                return False
            lc.ack_incident(cmd.id, [alert], actor=cmd.actor, role=cmd.role, ts=cmd.ts,
                            note=cmd.note)
            return True
        lc.apply(cmd.target, cmd.action, alert, task, actor=cmd.actor, role=cmd.role,
                 ts=cmd.ts, note=cmd.note, grids=cmd.grids, workers=[NAME])
    except TransitionRefused:
        return False
    return True


def cli_parses(target: str, action: str, role: str) -> bool:
    try:
        build_parser().parse_args([target, action, "x-1", "--actor", NAME, "--role", role,
                                   "--note", "a note"])
    except SystemExit:
        return False
    return True


@pytest.mark.parametrize(("target", "action", "role"), CASES)
def test_the_gateway_and_the_worker_accept_exactly_the_contracts_commands(
        target: str, action: str, role: str) -> None:
    allowed = role in contract.roles_for(target, action)
    assert gateway_accepts(target, action, role) is allowed
    assert worker_applies(target, action, role) is allowed


@pytest.mark.parametrize(("target", "action", "role"), CASES)
def test_the_cli_sends_what_the_worker_decodes(target: str, action: str, role: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    # The CLI sends any known action with any role: the worker refuses a role not
    # allowed, with the reason, as it does for a command from the gateway.
    known = action in contract.actions_for(target) and role in contract.PERSON_ROLES
    assert cli_parses(target, action, role) is known
    assert worker_decodes(target, action, role) is known
    capsys.readouterr()  # argparse's usage lines


NOTED = [(t, a) for t in RECORDS for a in contract.actions_for(t)]


@pytest.mark.parametrize(("target", "action"), NOTED)
@pytest.mark.parametrize("note", ["", "   "])
def test_the_gateway_and_the_worker_require_the_same_notes(target: str, action: str,
                                                           note: str) -> None:
    role = min(contract.roles_for(target, action))
    needed = contract.needs_note(target, action)
    assert gateway_accepts(target, action, role, note) is not needed
    assert worker_applies(target, action, role, note) is not needed
    if needed:
        with pytest.raises(CommandError, match="note_required"):
            parse({"target": target, "id": "x-1", "action": action, "note": note})


def test_every_contract_command_is_one_the_worker_can_apply() -> None:
    for target in RECORDS:
        for action in contract.actions_for(target):
            role = min(contract.roles_for(target, action))
            assert worker_applies(target, action, role), (target, action)
