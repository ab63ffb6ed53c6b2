"""CLI for the duty room: traces, alerts, tasks and the commands that move them.

``gridwatch trace PERSON_REF --reason TEXT`` reads a person's trace and writes who
looked, whom, why and how many rows to the trace audit (``gridwatch trace audit``).

``gridwatch alert ack ID --actor wang`` (or ``gridwatch incident ack ID``: each new alert
of the incident) sends a command to the ``gridwatch.commands``
log (the same path the cockpit uses), waits for the worker's outcome and exits 1 with
the reason when the transition is refused.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import orjson

from . import alert_export, queries, store, trace_access
from .schemas import commands as contract
from .schemas.errors import GridwatchError
from .schemas.events import format_time
from .settings import Settings

T = TypeVar("T")


def _emit(obj: Any, as_json: bool) -> None:
    from .cli import emit

    emit(obj, as_json=as_json)


def read_store(s: Settings, query: Callable[[Any], T], *,
               bad: type[Exception] | tuple[type[Exception], ...] = (), say: str = "{}") -> T:
    """``query(r)`` on a Redis connection of its own, closed after; an exception of a
    ``bad`` type (the person's input refused: a span, a period) is raised again as a
    :class:`GridwatchError` whose text is ``say`` with the exception's."""
    r = store.connect(s)
    try:
        return query(r)
    except bad as exc:
        raise GridwatchError(say.format(exc)) from None
    finally:
        r.close()


def show_rows(rows: list[dict[str, Any]], as_json: bool,
              line: Callable[[dict[str, Any]], str]) -> None:
    """Print ``rows`` as JSON (``--json``), or one ``line(row)`` each."""
    if as_json:
        _emit(rows, True)
    else:
        for row in rows:
            print(line(row))


def report(outcome: dict[str, Any], as_json: bool, done: Callable[[dict[str, Any]], str]) -> int:
    """Print a command's outcome: as JSON (``--json``), ``done(outcome)`` when it was
    carried out, else the worker's reason on stderr. The exit status: 0 done, 1 refused."""
    if as_json:
        _emit(outcome, True)
    elif outcome.get("ok"):
        print(done(outcome))
    else:
        print(f"gridwatch: refused: {outcome.get('reason')}", file=sys.stderr)
    return 0 if outcome.get("ok") else 1


def send_command(settings: Settings, command: dict[str, Any], *, timeout: float = 30.0) -> dict[str, Any]:
    """Sign one command with this host's command key, send it and wait for its outcome.

    Raises:
        ConfigError: the command keys are malformed or unreadable.
        GridwatchError: no outcome within ``timeout`` (is a worker running? does it
            share this host's command key?).
    """
    from .command_keys import keyring
    from .signing import sign
    from .streams import clients
    from .streams.topics import COMMANDS, command_key

    command = sign(command, keyring(settings))
    producer = clients.producer(settings)
    try:
        key = command_key(command["target"], command["id"])
        producer.send(COMMANDS, key=key, value=orjson.dumps(command)).get(timeout=15)
    finally:
        producer.close()

    async def wait() -> dict[str, Any] | None:
        from .agents.commands import wait_result
        from .redis_client import async_client

        r = async_client(settings)
        try:
            return await wait_result(r, command["command_id"], timeout=timeout)
        finally:
            await r.aclose()

    outcome = asyncio.run(wait())
    if outcome is None:
        raise GridwatchError(f"no outcome within {timeout:.0f} s: is `gridwatch worker` running, "
                             "with the same command keys?")
    return outcome


def _control_room_now(s: Settings) -> float:
    """Wall time, or the feed's event time when it runs ahead (a simulated day at speed).

    The command is stamped once, here, so a replay of the command log gives the same
    audit trail and deadlines.
    """
    return read_store(s, lambda r: max(time.time(), queries.event_now(r)))


def cmd_transition(args: argparse.Namespace, s: Settings) -> int:
    command = {
        "v": 1, "command_id": str(uuid.uuid4()), "target": args.target, "id": args.id,
        "action": args.action, "actor": args.actor, "role": args.role,
        "grids": [g for g in (args.grids or "").split(",") if g], "note": args.note or "",
        "ts": format_time(args.at if args.at is not None else _control_room_now(s)),
    }
    if getattr(args, "for_", None):
        from .agents.silences import parse_duration

        try:
            command["params"] = {"for_s": parse_duration(args.for_, max_s=contract.SHELVE_MAX_S)}
        except ValueError as exc:
            raise GridwatchError(f"{args.action}: {exc}") from None

    def done(outcome: dict[str, Any]) -> str:
        if args.target == "incident":
            acked = outcome.get("acknowledged") or []
            return f"incident {args.id}: {args.action} done; {len(acked)} alerts: {' '.join(acked)}"
        record = outcome.get("task") if args.target == "task" else outcome.get("alert")
        return (f"{args.target} {args.id}: {args.action} done; "
                f"status {record['status'] if record else '?'}")

    return report(send_command(s, command), args.json, done)


def cmd_duty(args: argparse.Namespace, s: Settings) -> int:
    """``gridwatch duty on|off --worker NAME --actor NAME`` sets a grid worker's duty (a
    command, as from the phone); ``gridwatch duty list`` shows every marked worker's."""
    if args.change == "list":
        from . import keys

        rows = read_store(s, lambda r: [orjson.loads(v)
                                        for _, v in sorted(r.hgetall(keys.DUTY).items())])
        show_rows(rows, args.json, lambda row: f"{row['worker']:12s} "
                  f"{'on' if row['on'] else 'off':3s}  since {format_time(row['ts'])}  "
                  f"by {row['role']} {row['actor']}")
        if not rows and not args.json:
            print("no worker has marked their duty (all on duty)", file=sys.stderr)
        return 0
    if not args.worker or not args.actor:
        raise GridwatchError("duty on|off needs --worker and --actor")
    role = args.role or ("grid_worker" if args.actor == args.worker else "duty_officer")
    command = {
        "v": 1, "command_id": str(uuid.uuid4()), "target": "duty", "id": args.worker,
        "action": f"{args.change}_duty", "actor": args.actor, "role": role, "grids": [],
        "note": args.note or "",
        "ts": format_time(args.at if args.at is not None else _control_room_now(s)),
    }

    def done(outcome: dict[str, Any]) -> str:
        moved = outcome.get("tasks") or []
        return f"{args.worker}: {args.change} duty" + (f"; tasks re-offered: {', '.join(moved)}"
                                                        if moved else "")

    return report(send_command(s, command), args.json, done)


def cmd_alerts_export(args: argparse.Namespace, s: Settings) -> int:
    """``gridwatch alerts export --from .. --to .. [--out FILE]``: the rows of the
    officer's download (``/api/alerts.csv``), from :mod:`.alert_export`."""
    import zoneinfo

    def export(r: Any) -> tuple[float, float, list[dict[str, Any]], str]:
        lo, hi = alert_export.parse_period(args.start or "", args.end or "",
                                           zoneinfo.ZoneInfo(s.tz))
        alerts = alert_export.read(r, lo, hi)
        return lo, hi, alerts, alert_export.csv_text(alerts)

    lo, hi, alerts, text = read_store(s, export, bad=alert_export.PeriodError, say="bad period: {}")
    if args.out:
        with open(args.out, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        print(f"{args.out}: {len(alerts)} alerts raised from {format_time(lo)} to "
              f"{format_time(hi)}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_alerts(args: argparse.Namespace, s: Settings) -> int:
    if args.export:
        return cmd_alerts_export(args, s)
    if args.start or args.end or args.out:
        raise GridwatchError("--from, --to and --out go with `gridwatch alerts export`")

    def query(r: Any) -> list[dict[str, Any]]:
        since = queries.parse_span(args.since) if args.since else None
        return queries.alerts(r, status=args.status, grid=args.grid, since_s=since, limit=args.limit)

    show_rows(read_store(s, query, bad=ValueError), args.json,
              lambda a: f"{format_time(a['ts_raised'])}  {a['severity']:6s} {a['status']:12s} "
              f"{a['grid_id'] or '-':6s} {a['id']}  {a['title']}")
    return 0


def cmd_tasks(args: argparse.Namespace, s: Settings) -> int:
    show_rows(read_store(s, lambda r: queries.tasks(r, worker=args.worker)), args.json,
              lambda t: f"{format_time(t['ts_created'])}  {t['status']:9s} {t['grid_id']:6s} "
              f"{t['id']}")
    return 0


def cmd_trace(args: argparse.Namespace, s: Settings) -> int:
    """``gridwatch trace PERSON_REF --reason ...`` (audited), or ``gridwatch trace audit``."""
    if args.person_ref == "audit":
        return _trace_audit(args, s)
    if args.since:
        raise GridwatchError("--since lists the audit: gridwatch trace audit --since 7d")
    actor = args.actor or _os_user()
    rows = read_store(s, lambda r: trace_access.lookup(r, actor=actor, role="cli",
                                                       person=args.person_ref,
                                                       reason=args.reason, via="cli",
                                                       days=args.days or s.trace_days),
                      bad=trace_access.TraceRefused,
                      say="{} (gridwatch trace PERSON_REF --reason TEXT)")
    show_rows(rows, args.json, lambda row: f"{row['ts']}  {row['checkpoint_id']:8s} "
              f"{row['grid_id'] or '-':6s} {row['direction']:3s} {row['code_color']}")
    return 0


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a bare container)
        return f"uid-{os.getuid()}"


def _trace_audit(args: argparse.Namespace, s: Settings) -> int:
    if args.reason or args.actor or args.days:
        raise GridwatchError("gridwatch trace audit takes --since, --limit and --json only")

    def query(r: Any) -> list[dict[str, Any]]:
        since = queries.parse_span(args.since) if args.since else None
        return trace_access.audit(r, since_s=since, limit=args.limit)

    show_rows(read_store(s, query, bad=ValueError), args.json,
              lambda row: f"{row['at']}  {row['actor']:12s} {row['via']:7s} {row['person']:20s} "
              f"{row['rows'] if row['rows'] is not None else '?':>5} rows  {row['reason']}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``alert``, ``task``, ``incident``, ``alerts``, ``tasks`` and ``trace``."""
    for target in contract.TARGETS:
        if target in ("silence", "duty"):  # their own parsers: cli_silence.py, cli_duty
            continue
        p = sub.add_parser(target, help="acknowledge every new alert of an incident"
                           if target == "incident" else f"move a {target} through its life cycle")
        p.add_argument("action", choices=contract.actions_for(target))
        p.add_argument("id")
        p.add_argument("--actor", required=True, help="who does it (recorded in the audit)")
        p.add_argument("--role", default="grid_worker" if target == "task" else "duty_officer",
                       choices=contract.PERSON_ROLES)
        p.add_argument("--grids", help="the actor's grids (grid workers), comma separated")
        noted = [a for a in contract.actions_for(target) if contract.needs_note(target, a)]
        p.add_argument("--note", help=f"a note (required to {', '.join(noted)})")
        if target == "alert":
            p.add_argument("--for", dest="for_", metavar="DURATION", help="how long to shelve (e.g. 2h, at most "
                           f"{contract.SHELVE_MAX_S / 3600:g} h)")
        p.add_argument("--at", type=float, help=argparse.SUPPRESS)
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=cmd_transition, target=target)

    p = sub.add_parser("duty", help="set a grid worker on or off duty, or list who is",
                       description="gridwatch duty on|off --worker NAME --actor NAME | "
                       "gridwatch duty list")
    p.add_argument("change", choices=["on", "off", "list"])
    p.add_argument("--worker", help="the grid worker (on, off)")
    p.add_argument("--actor", help="who sets it: the worker, or an officer or admin")
    p.add_argument("--role", choices=sorted(contract.roles_for("duty", "on_duty")),
                   help="the actor's role (default: grid_worker for oneself, else duty_officer)")
    p.add_argument("--note")
    p.add_argument("--at", type=float, help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_duty)

    p = sub.add_parser("alerts", help="list alerts (newest first), or `alerts export` a period",
                       description="gridwatch alerts [--status ..] [--grid ..] [--since ..] | "
                       "gridwatch alerts export --from 2024-05-01 --to 2024-05-02 [--out FILE]")
    p.add_argument("export", nargs="?", choices=["export"],
                   help="the alerts raised in [--from, --to) with their audit trails, as CSV")
    p.add_argument("--from", dest="start", help="export: a date or time (the district's clock "
                   "unless it has an offset)")
    p.add_argument("--to", dest="end", help="export: the period ends just before it "
                   f"(at most {alert_export.MAX_DAYS} days after --from)")
    p.add_argument("--out", help="export: write the CSV to this file (default: stdout)")
    p.add_argument("--status", help="open, or one status (new, acknowledged, ...)")
    p.add_argument("--grid")
    p.add_argument("--since", help="e.g. 1h, 6h, 24h (event time)")
    p.add_argument("--limit", type=int, default=200)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_alerts)

    p = sub.add_parser("tasks", help="a grid worker's tasks (newest first)")
    p.add_argument("--worker", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_tasks)

    p = sub.add_parser("trace", help="where a person scanned in the last 14 days (audited); "
                                     "`trace audit`: who looked up whom")
    p.add_argument("person_ref", help="the person reference, or `audit` to list the lookups")
    p.add_argument("--reason", help="why you look (required; kept in the audit)")
    p.add_argument("--actor", help="who looks (recorded in the audit; default: the OS user)")
    p.add_argument("--days", type=float)
    p.add_argument("--since", help="audit: e.g. 24h, 7d (wall time)")
    p.add_argument("--limit", type=int, default=200, help="audit: at most this many rows")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_trace)
