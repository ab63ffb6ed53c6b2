"""Fault drills: each ends with a PASS/FAIL verdict computed from the data.

    python bench/drills.py DRILL [--slot N] [--events N] [--rate R] ...

DRILL is one of:

  kill-worker      SIGKILL the worker twice mid-feed, a new one started each time
  redis-restart    redis-server stopped cleanly (SIGTERM) and started again
  redis-kill       redis-server SIGKILLed and started again
  redis-loss       redis-server comes back with the state of a few seconds earlier (as a
                   machine crash with appendfsync everysec leaves it): the worker must
                   re-read what Redis lost
  kafka-restart    the broker stopped and started again mid-feed
  worker-pause     two workers in one group, one SIGSTOPped for 120 s, then SIGCONT
  gateway-restart  100 WebSocket clients, alerts flowing, the gateway restarted
  bad-input        100,000 bad messages mixed into valid traffic
  all              every drill above, in turn

The state drills feed a seeded simulated city day at a steady rate into a stack of their
own, inject the fault once about a third of it is sent, and compare the final Redis state
(``store.dump``) with a clean run of the same messages: every message applied, nothing
twice, the state identical key for key. Figures: messages, max lag (sent but not yet
applied), how long after the fault processing resumed and the lag was back to its level
before the fault, the longest stall. Exit code 0 when every drill run passes, 1 if not.

The stack: Kafka 19292+10N, Redis 16579+N, data under ``.local/bench-stack-N`` (``--slot
N``, default ``GRIDWATCH_BENCH_SLOT`` or 0); workers run with timers and the metrics port
off; logs under ``.local/drills/``. ``--down`` stops the stack at the end.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import _stack  # bench/_stack.py, beside this file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout: tests.drill
from gridwatch import settings as settings_mod
from gridwatch import stack
from tests import drill as _drill
from tests.drill import note

STATE_DRILLS = ("kill-worker", "redis-restart", "redis-kill", "redis-loss", "kafka-restart",
                "worker-pause")
ALL = (*STATE_DRILLS, "gateway-restart", "bad-input")


def slot_settings(slot: int, **extra: str) -> settings_mod.Settings:
    """The bench stack of ``slot`` (``_stack.slot_settings``), all partitions at 8."""
    return _stack.slot_settings(slot, GRIDWATCH_PARTITIONS="8", **extra)


def stack_up(s: settings_mod.Settings) -> None:
    _stack.share_jars(s.home)
    stack.up(s, log=lambda msg: note(f"stack: {msg}"))


def run_one(name: str, args: argparse.Namespace, logdir: Path) -> _drill.Result:
    s = slot_settings(args.slot)
    if name == "bad-input":
        return _drill.bad_input_drill(s, logdir, valid=args.valid, bad=args.bad, seed=args.seed)
    if name == "gateway-restart":
        return _drill.gateway_drill(s, logdir, clients=args.clients, seconds=args.seconds,
                                    rate=args.gateway_rate, hard=args.hard, seed=args.seed)
    events, rate = args.events, args.rate
    if name == "kill-worker":
        fault = _drill.kill_worker_fault(kills=args.kills)
    elif name.startswith("redis-"):
        fault = _drill.redis_fault(name.split("-", 1)[1], down_s=args.down_s)
    elif name == "kafka-restart":
        fault = _drill.kafka_fault(down_s=args.down_s, hard=args.hard)
    elif name == "worker-pause":
        fault = _drill.pause_fault(args.pause)
        # Feed long enough to outlast the pause, so the whole pause happens under load
        # (at no more than --pause-rate, to keep the clean run short).
        rate = min(rate, args.pause_rate)
        events = max(events, int(rate * (args.pause / (1 - args.fault_at) + 20)))
    else:
        raise SystemExit(f"unknown drill {name!r}; one of {', '.join(ALL)} or all")
    workload = _drill.city_workload(events, args.seed, invalid=args.invalid)
    return _drill.state_drill(s, workload, fault, logdir, rate=rate, fault_at=args.fault_at,
                              seed=args.seed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("drill", choices=(*ALL, "all"))
    parser.add_argument("--slot", type=int, default=int(os.environ.get("GRIDWATCH_BENCH_SLOT", "0")),
                        help="stack slot: Kafka 19292+10N, Redis 16579+N")
    parser.add_argument("--events", type=int, default=40_000, help="valid events fed (state drills)")
    parser.add_argument("--invalid", type=int, default=200, help="invalid messages mixed in (state drills)")
    parser.add_argument("--rate", type=float, default=800.0, help="messages sent a second")
    parser.add_argument("--gateway-rate", type=float, default=300.0,
                        help="gateway-restart: scans a second, every 10th red (an alert each); "
                             "a client that misses more than the gateway replays (1,000 entries) "
                             "gets a fresh snapshot instead")
    parser.add_argument("--fault-at", type=float, default=0.35, help="share of the feed sent before the fault")
    parser.add_argument("--kills", type=int, default=2, help="kill-worker: how many SIGKILLs")
    parser.add_argument("--down-s", type=float, default=5.0, help="seconds Redis or Kafka stays down")
    parser.add_argument("--hard", action="store_true", help="kafka-restart, gateway-restart: SIGKILL, not SIGTERM")
    parser.add_argument("--pause", type=float, default=120.0, help="worker-pause: seconds SIGSTOPped")
    parser.add_argument("--pause-rate", type=float, default=400.0,
                        help="worker-pause: highest feed rate (the feed outlasts the pause)")
    parser.add_argument("--clients", type=int, default=100, help="gateway-restart: WebSocket clients")
    parser.add_argument("--seconds", type=float, default=40.0, help="gateway-restart: seconds of feed")
    parser.add_argument("--valid", type=int, default=50_000, help="bad-input: valid events")
    parser.add_argument("--bad", type=int, default=100_000, help="bad-input: bad messages")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--down", action="store_true", help="stop the drill stack at the end")
    args = parser.parse_args(argv)

    s = slot_settings(args.slot)
    stack_up(s)
    from gridwatch.settings import Settings  # noqa: F401 - the package must import
    logdir = _drill.ROOT / ".local" / "drills" / time.strftime("%Y%m%d-%H%M%S")
    names = ALL if args.drill == "all" else (args.drill,)
    results = []
    try:
        for name in names:
            note(f"drill {name} on {s.kafka} / {s.redis}; logs {logdir}")
            try:
                res = run_one(name, args, logdir)
            except Exception as exc:  # noqa: BLE001 - a drill that cannot run fails
                res = _drill.Result(name)
                res.check("the drill ran", False, f"{type(exc).__name__}: {exc}")
            results.append(res)
            print(res.render(), flush=True)
    finally:
        if args.down:
            stack.down(s, log=note)
    if len(results) > 1:
        print("\n" + "  ".join(f"{r.drill}: {'PASS' if r.ok else 'FAIL'}" for r in results))
    return 0 if results and all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
