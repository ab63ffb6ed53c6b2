"""The ``gridwatch`` command: one entry point for the stack, workers, producers and queries.

Every sub-command builds the settings once (:func:`gridwatch.settings.load`) and exits
with a one-line error and a non-zero code when something is wrong, never a traceback
for an expected failure.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from . import settings as settings_mod
from .schemas.errors import GridwatchError

Handler = Callable[[argparse.Namespace, settings_mod.Settings], int]


def emit(obj: Any, *, as_json: bool) -> None:
    """Print a result as JSON (``--json``) or as readable lines."""
    if as_json:
        sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode() + "\n")
    elif isinstance(obj, dict):
        width = max((len(str(k)) for k in obj), default=0)
        for key, value in obj.items():
            if isinstance(value, (dict, list)):
                value = orjson.dumps(value).decode()
            print(f"{str(key).ljust(width)}  {value}")
    else:
        print(obj)


# ---- stack ---------------------------------------------------------------------------


def cmd_stack(args: argparse.Namespace, s: settings_mod.Settings) -> int:
    from . import stack

    if args.action == "up":
        stack.up(s, brokers=args.brokers, redis_cluster=args.redis_cluster)
    elif args.action == "down":
        stack.down(s)
    elif args.action == "status":
        st = stack.status(s)
        emit(st, as_json=args.json)
        return 0 if st["kafka_up"] and st["redis_up"] and st.get("redis_cluster_up", True) else 1
    elif args.action == "reset":
        if not args.yes:
            print("gridwatch: reset wipes every topic and all state; add --yes", file=sys.stderr)
            return 2
        stack.reset(s)
    elif args.action == "fetch":
        stack.fetch_kafka(stack.Paths(s.home))
    elif args.action == "topics":
        from .streams.admin import ensure_topics

        created = ensure_topics(s)
        print(f"topics created: {', '.join(created) or 'none (all present)'}")
    return 0


# ---- worker, producers ---------------------------------------------------------------


def cmd_worker(args: argparse.Namespace, s: settings_mod.Settings) -> int:
    from .agents.worker import run
    from .city import load_grids

    load_grids(s.grids)  # a grids file it cannot use: one line and exit 2, before faust starts
    run(s, loglevel=args.loglevel)
    return 0


def cmd_publish(args: argparse.Namespace, s: settings_mod.Settings) -> int:
    from .streams.producer import publish_file, stderr_progress

    try:
        report = publish_file(s, args.topic, Path(args.file),
                              progress=stderr_progress("sent") if sys.stderr.isatty() else None)
    except KeyError as exc:
        raise GridwatchError(str(exc.args[0])) from None
    except OSError as exc:
        raise GridwatchError(f"cannot read {args.file}: {exc.strerror}") from None
    if args.json:
        emit(report.to_dict(), as_json=True)
    else:
        print(f"sent {report.sent}, rejected {report.rejected}")
        for line, reason in report.reasons[:20]:
            print(f"  line {line}: {reason}", file=sys.stderr)
    return 0 if report.rejected == 0 else 3


def cmd_simulate(args: argparse.Namespace, s: settings_mod.Settings) -> int:
    from .city import load_city
    from .streams import clients
    from .streams.producer import paced, send_events, stderr_progress
    from .streams.simulate import CST, CityDay, Simulator

    start = None
    if args.start:
        start = datetime.fromisoformat(args.start)
        if start.tzinfo is None:
            start = start.replace(tzinfo=CST)
    base = CityDay()
    profile = CityDay(scans=int(base.scans * args.scale),
                      loiter_reports=int(base.loiter_reports * max(args.scale, 0.2)),
                      people=max(1000, int(base.people * min(args.scale, 1.0))))
    # Days are China's calendar days: a start at 07:00 begins the live part there,
    # with the morning peak still at 09:00.
    city = load_city(s.city)
    story = None
    if args.story:
        from .city import load_grids
        from .streams.outbreak import plan

        story = plan(load_grids(s.grids), city, seed=args.seed)
    sim = Simulator(city, seed=args.seed, start=start, profile=profile, local_days=True,
                    outbreak=story)
    items = sim.stream(days=args.days, history_days=args.history_days)
    if args.out:
        n = 0
        with open(args.out, "wb") as fh:
            for _, topic, event in items:
                fh.write(orjson.dumps({"topic": topic.name, "event": event}) + b"\n")
                n += 1
        print(f"wrote {n} events to {args.out}")
        return 0
    producer = clients.producer(s)
    try:
        sent = send_events(producer, paced(items, speed=args.speed), rate=args.rate,
                           progress=stderr_progress("simulated events sent"))
    finally:
        producer.close()
    print(f"\nsent {sent} events", file=sys.stderr)
    return 0


# ---- state ---------------------------------------------------------------------------


def cmd_state(args: argparse.Namespace, s: settings_mod.Settings) -> int:
    from . import keys, store

    r = store.connect(s)
    try:
        if args.what == "summary":
            emit(store.summary(r), as_json=args.json)
        elif args.what == "grid":
            if not args.id:
                raise GridwatchError("state grid needs a GRID_ID")
            from . import queries

            try:
                state = queries.grid_state(r, args.id)
            except ValueError as exc:  # a corrupted counter: say which, no traceback
                raise GridwatchError(f"state grid {args.id}: {exc}") from None
            if not state["total"] and not r.sismember(keys.GRIDS_SEEN, args.id):
                from .city import load_grids

                if args.id not in {g.id for g in load_grids(s.grids)}:
                    raise GridwatchError(f"unknown grid {args.id!r}")
            state["risk"] = queries.risk_of(r, args.id)
            if not args.json and state["risk"]:
                from .risk import RiskScore, explain

                state["why"] = explain(RiskScore.from_dict(state["risk"]), lang=args.lang)
            emit(state, as_json=args.json)
        elif args.what == "top":
            from . import queries

            if args.by != "risk":
                raise GridwatchError("state top: only --by risk is known")
            rows = queries.top(r, limit=args.limit)
            if args.json:
                emit(rows, as_json=True)
            else:
                for row in rows:
                    print(f"{row['grid_id']:8s} {row['score']:5.1f} {row['band']}")
        elif args.what == "dump":
            emit(store.dump(r), as_json=True)
    finally:
        r.close()
    return 0


# ---- city, schemas, gateway, demo ----------------------------------------------------


def cmd_city(args: argparse.Namespace, s: settings_mod.Settings) -> int:
    from . import city

    geo, c = city.generate(grids=args.grids, seed=args.seed)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    city.write(geo, c, out / "grids.geojson", out / "city.json")
    print(f"wrote {len(geo['features'])} grids and the city file to {out}")
    return 0


def cmd_schemas(args: argparse.Namespace, s: settings_mod.Settings) -> int:
    from .schemas.export import write_all

    for path in write_all(Path(args.dir)):
        print(path)
    return 0


def cmd_gateway(args: argparse.Namespace, s: settings_mod.Settings) -> int:
    # The gateway reads the district's files at start: a file it cannot use is a
    # ConfigError, printed by main() as one line.
    s = s.with_(gateway_host=args.host or s.gateway_host, gateway_port=args.port or s.gateway_port)
    procs = s.gateway_procs if args.procs is None else args.procs
    if procs < 1:
        raise GridwatchError(f"--procs {procs}: must be at least 1")
    if procs == 1:  # one process, serving itself: no supervisor
        from .ws.gateway import run

        run(s)
        return 0
    from .ws import procs as procs_mod

    return procs_mod.run(s, procs)


def cmd_forecast(args: argparse.Namespace, s: settings_mod.Settings) -> int:
    if args.target == "backtest":
        raise GridwatchError("the forecaster's backtest is a benchmark: from a checkout, "
                             "python bench/backtest.py --csv FILE (docs/forecast.md)")
    from . import keys, station_view, store

    r = store.connect(s)
    try:
        raw = r.get(keys.forecast(args.target))
        if raw is None:
            raise GridwatchError(f"no forecast for station {args.target!r} yet "
                                 "(a worker makes one once the station's tickets arrive)")
        record = orjson.loads(raw)
        if args.csv or "--csv" in args.rest:
            # The rows of the station page's download: arrivals up to the feed's time,
            # last week's same hours.
            rows = station_view.read_rows(r, args.target, station_view.hours_to_read(record))
            view = station_view.build(record, rows,
                                      station_view.event_now(r.hvals(keys.WATERMARKS), record))
            sys.stdout.write(station_view.csv_text(view))
            return 0
    finally:
        r.close()
    if args.json or "--json" in args.rest:
        emit(record, as_json=True)
    else:
        print(f"{record['station_id']}: next 24 h from {record['origin']} ({record['method']})")
        for h, y, lo, hi, b in zip(record["hours"], record["yhat"], record["lo80"], record["hi80"],
                                   record["booked"]):
            print(f"  {h}  {y:7.0f}  [{lo:6.0f} - {hi:6.0f}] 80%   booked {b}")
        for peak in record.get("peaks", []):
            print(f"  peak {peak['hour']}: {peak['share']:.0%} of the day; {peak['hint']}")
        for note in record.get("notes", []):
            print(f"  note: {note}")
    return 0


def cmd_demo(args: argparse.Namespace, s: settings_mod.Settings) -> int:
    from .demo import run

    return run(s, speed=args.speed, seed=args.seed, days=args.days, scale=args.scale,
               fresh=args.fresh, crew=args.crew)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gridwatch", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("stack", help="start, stop, inspect or wipe the local Kafka + Redis")
    p.add_argument("action", choices=["up", "down", "status", "reset", "fetch", "topics"],
                   help="topics: create missing topics on GRIDWATCH_KAFKA (deployments)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--yes", action="store_true", help="confirm `reset`")
    p.add_argument("--brokers", type=int, default=None, metavar="N",
                   help="`up`: N Kafka nodes, topics replicated min(3, N) times "
                        "(default: as many as run, else 1)")
    p.add_argument("--redis-cluster", type=int, default=None, metavar="N",
                   help="`up`: also a Redis Cluster of N masters, N >= 3 "
                        "(default: the one that runs, else none)")
    p.set_defaults(func=cmd_stack)

    p = sub.add_parser("worker", help="run a faust worker (join the consumer group)")
    p.add_argument("--loglevel", default="info")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("publish", help="validate and send a JSON Lines file of events")
    p.add_argument("topic", help="input topic (or: scans, loiter, tickets)")
    p.add_argument("file")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("simulate", help="send a seeded, realistic city day")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--days", type=float, default=1.0)
    p.add_argument("--history-days", type=int, default=0,
                   help="station history (tickets and exits) sent first, days")
    p.add_argument("--start", help="where the live part begins, ISO (default yesterday 00:00 +08:00); "
                        "the days keep China's calendar hours whatever the start")
    p.add_argument("--speed", type=float, default=None,
                   help="simulated seconds per real second (default: as fast as possible)")
    p.add_argument("--rate", type=float, default=None, help="at most this many events/s")
    p.add_argument("--scale", type=float, default=1.0, help="city busyness (1.0 = ~430k events/day)")
    p.add_argument("--out", help="write JSON Lines here instead of sending")
    p.add_argument("--no-story", dest="story", action="store_false",
                   help="leave out the first live day's outbreak (a few grids of one street)")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("state", help="read live state from Redis")
    p.add_argument("what", choices=["summary", "grid", "top", "dump"])
    p.add_argument("id", nargs="?")
    p.add_argument("--by", default="risk")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--lang", default="en", choices=["en", "zh"])
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_state)

    p = sub.add_parser("city", help="generate a simulated district (grids + city file)")
    p.add_argument("action", choices=["generate"])
    p.add_argument("--grids", type=int, default=800)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=cmd_city)

    p = sub.add_parser("schemas", help="write the JSON Schema files of the v1 events")
    p.add_argument("action", choices=["export"])
    p.add_argument("dir")
    p.set_defaults(func=cmd_schemas)

    p = sub.add_parser("gateway", help="run the WebSocket gateway and cockpit")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--procs", type=int, default=None, metavar="N",
                   help="N processes sharing the port (SO_REUSEPORT), restarted if one dies "
                        "(default: GRIDWATCH_GATEWAY_PROCS, else the number of cores)")
    p.set_defaults(func=cmd_gateway)

    p = sub.add_parser("forecast", help="a station's latest forecast",
                       description="gridwatch forecast STATION_ID [--json | --csv]")
    p.add_argument("target", help="a station id")
    p.add_argument("--json", action="store_true")
    p.add_argument("--csv", action="store_true",
                   help="the forecast hours as CSV (forecast, intervals, booked, arrivals so far, "
                        "last week's same hours): the station page's download")
    p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_forecast)

    from .cli_ops import add_parsers as add_ops_parsers
    from .cli_silence import add_parser as add_silence_parser
    from .cli_users import add_parser as add_user_parser

    add_user_parser(sub)
    add_ops_parsers(sub)
    add_silence_parser(sub)

    p = sub.add_parser("demo", help="stack + worker + gateway + simulated city, in one go")
    p.add_argument("--speed", type=float, default=60.0, help="simulated seconds per second")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--days", type=float, default=1.0)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--fresh", action="store_true",
                   help="wipe the local stack's data first (topics, messages, Redis state)")
    p.add_argument("--no-crew", dest="crew", action="store_false",
                   help="no simulated duty desk and field crew: every alert waits for you")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        s = settings_mod.load()
        return int(args.func(args, s) or 0)
    except GridwatchError as exc:
        print(f"gridwatch: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
