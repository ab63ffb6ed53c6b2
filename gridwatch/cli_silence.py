"""CLI for silences: ``gridwatch silence add | list | end``.

``gridwatch silence add --grid G3 --for 2h --reason "drill" --actor wang`` mutes every
alert of grid G3 for two hours: alerts raised meanwhile are kept as ``silenced`` (out
of the live feed, not escalated) and are new again when the silence ends. The command
goes through the ``gridwatch.commands`` log, as the cockpit's do; what the worker
refuses (an unknown grid, a silence too long) is printed and the exit status is 1.
"""

from __future__ import annotations

import argparse
import uuid
from typing import Any

import orjson

from . import keys
from .agents.silences import parse_duration
from .schemas import commands as contract
from .schemas.errors import GridwatchError
from .schemas.events import format_time
from .settings import Settings


def _left(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def cmd_add(args: argparse.Namespace, s: Settings) -> int:
    from .cli_ops import _control_room_now, report, send_command

    match = [(m, getattr(args, m)) for m in contract.SILENCE_MATCH if getattr(args, m)]
    if len(match) != 1:
        raise GridwatchError("silence add: give exactly one of --grid, --source, --kind")
    if not (args.reason or "").strip():
        raise GridwatchError("silence add: --reason is required (it is kept in the audit)")
    try:
        for_s = parse_duration(args.for_)
    except ValueError as exc:
        raise GridwatchError(f"silence add: {exc}") from None
    command_id = str(uuid.uuid4())
    (name, value), = match
    command = {
        "v": 1, "command_id": command_id, "target": "silence",
        "id": contract.silence_id_of(command_id), "action": "silence", "actor": args.actor,
        "role": args.role, "grids": [], "note": args.reason.strip(),
        "ts": format_time(args.at if args.at is not None else _control_room_now(s)),
        "params": {name: value, "for_s": for_s},
    }

    def done(outcome: dict[str, Any]) -> str:
        sil = outcome["silence"]
        return (f"silence {sil['id']}: {sil['match']} {sil['value']} until "
                f"{format_time(sil['ends_at'])}")

    return report(send_command(s, command), args.json, done)


def cmd_end(args: argparse.Namespace, s: Settings) -> int:
    from .cli_ops import _control_room_now, report, send_command

    command = {
        "v": 1, "command_id": str(uuid.uuid4()), "target": "silence", "id": args.id,
        "action": "end_silence", "actor": args.actor, "role": args.role, "grids": [],
        "note": args.note or "",
        "ts": format_time(args.at if args.at is not None else _control_room_now(s)),
    }
    return report(send_command(s, command), args.json, lambda outcome: (
        f"silence {args.id}: ended; {len(outcome.get('reopened') or [])} alerts reopened"))


def active(r: Any) -> list[dict[str, Any]]:
    """The active silences, soonest end first, each with ``held`` (alerts held so far)."""
    rows = sorted((orjson.loads(v) for v in r.hgetall(keys.SILENCES_ACTIVE).values()),
                  key=lambda row: (row["ends_at"], row["id"]))
    for row in rows:
        row["held"] = int(r.scard(keys.silence_alerts(row["id"])))
    return rows


def cmd_list(args: argparse.Namespace, s: Settings) -> int:
    from . import queries
    from .cli_ops import read_store, show_rows

    rows, now = read_store(s, lambda r: (active(r), queries.event_now(r)))
    if not rows and not args.json:
        print("no active silence")
    show_rows(rows, args.json, lambda row: f"{row['id']}  {row['match']:6s} {row['value']:14s} "
              f"{_left(row['ends_at'] - now)} left  held {row['held']:<4d} by {row['actor']}: "
              f"{row['reason']}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``silence add | list | end``."""
    p = sub.add_parser("silence", help="mute a grid, a source or a kind of alert for a while")
    verbs = p.add_subparsers(dest="verb", required=True)
    officer = list(contract.PERSON_ROLES)  # the worker refuses the others, with the reason
    a = verbs.add_parser("add", help="set a silence (at most "
                         f"{contract.SILENCE_MAX_S / 3600:g} h)")
    a.add_argument("--grid")
    a.add_argument("--source", help="a camera or checkpoint id")
    a.add_argument("--kind", help="an alert kind (loiter, red_code, silent_source, ...)")
    a.add_argument("--for", dest="for_", required=True, metavar="DURATION",
                   help="e.g. 30m, 2h, 1d")
    a.add_argument("--reason", required=True)
    a.add_argument("--actor", required=True, help="who sets it (recorded in the audit)")
    a.add_argument("--role", default="duty_officer", choices=officer)
    a.add_argument("--at", type=float, help=argparse.SUPPRESS)
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_add)
    e = verbs.add_parser("end", help="end a silence now: the alerts it holds reopen")
    e.add_argument("id")
    e.add_argument("--actor", required=True)
    e.add_argument("--role", default="duty_officer", choices=officer)
    e.add_argument("--note")
    e.add_argument("--at", type=float, help=argparse.SUPPRESS)
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_end)
    ls = verbs.add_parser("list", help="the active silences and their time left")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)
