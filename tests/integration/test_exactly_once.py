"""Effectively-once state: crashes and a shared consumer group change nothing.

A seeded simulated city day of more than 200,000 events (about 1 % of them sent late
and out of order, a quarter of those past the 10-minute grace period) plus a few
hundred invalid messages is pre-loaded into the input topics with a plain
kafka-python producer. One worker applies it in one clean pass; ``store.dump()`` of
that run is the reference. Then the same messages are applied again from empty
topics and an empty Redis:

- by one worker that is killed with SIGKILL at seeded random points and restarted;
- by two workers of one consumer group sharing the partitions, either of which is
  killed at seeded random points and restarted.

Both must end in a state identical to the reference, key for key and value for value.
Escalation and liveness timers are off (``GRIDWATCH_TIMERS=0``): they follow the
wall clock, the state under test follows the feed's clock.
"""

from __future__ import annotations

import random
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from gridwatch.schemas.events import parse_time
from gridwatch.streams.simulate import CST, CityDay, Simulator
from gridwatch.streams.topics import CHECKPOINT_SCANS
from kafka import KafkaProducer

from gridwatch import keys, store
from gridwatch import settings as settings_mod
from gridwatch.city import load_city
from tests import drill
from tests.drill import dump_diff
from tests.drill import progress as _progress

from .conftest import Workers, _reset_topics, wait_until

pytestmark = pytest.mark.integration

SEED = 11
START = datetime(2024, 3, 4, tzinfo=CST)  # a Monday; a fixed day keeps the events fixed
# Scaled up so one simulated day holds more than 200,000 events; late_share raised
# from 0.3 % to 1 % so there are thousands of late ones, inside and past the grace.
PROFILE = CityDay(scans=215_000, loiter_reports=5_000, late_share=0.01)
INVALID = 600
GRACE_S = 600.0
KILLS = 4

Message = tuple[str, bytes, bytes]  # topic, value, key


@dataclass(frozen=True)
class Workload:
    messages: list[Message]
    valid: int
    invalid: int
    late_in_grace: int  # sent after a newer event of its topic, within the grace
    late_past_grace: int  # sent more than the grace after a newer event of its topic


class TimerlessWorkers(Workers):
    """Workers with the escalation and liveness timers off."""

    def env(self) -> dict[str, str]:
        return {**super().env(), "GRIDWATCH_TIMERS": "0"}


def _note(text: str) -> None:
    """A progress line on stderr (shown with ``pytest -s``)."""
    print(f"[exactly-once {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def _invalid(rng: random.Random, valid: list[tuple[str, dict[str, Any]]]) -> list[Message]:
    """Broken messages of several kinds. Each has a key, so it lands on the same
    partition in every run (a key-less message would go to a random partition and make
    the stored offsets differ between runs)."""
    out: list[Message] = []
    for i in range(INVALID):
        topic, event = valid[rng.randrange(len(valid))]
        broken = dict(event)
        kind = i % 6
        if kind == 0:
            raw = bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))
        elif kind == 1:
            raw = orjson.dumps(event)[: rng.randint(1, 30)]
        elif kind == 2:
            broken["ts"] = "yesterday"
            raw = orjson.dumps(broken)
        elif kind == 3:
            broken["v"] = 2
            raw = orjson.dumps(broken)
        elif kind == 4:
            broken.pop("event_id")
            raw = orjson.dumps(broken)
        else:
            raw = b'["not", "an", "event"]'
        out.append((topic, raw, f"invalid-{i}".encode()))
    return out


_WORKLOAD: list[Workload] = []


def workload() -> Workload:
    """The messages of both runs (built once per session: the simulator takes seconds)."""
    if _WORKLOAD:
        return _WORKLOAD[0]
    sim = Simulator(load_city(settings_mod.Settings().city), seed=SEED, start=START,
                    profile=PROFILE)
    valid: list[tuple[str, dict[str, Any]]] = []
    newest: dict[str, float] = {}
    in_grace = past_grace = 0
    messages: list[Message] = []
    for _, topic, event in sim.stream(days=1.0):
        key = str(event[topic.key_field]).encode()
        ts = parse_time(event["ts"])
        behind = newest.get(topic.name, ts) - ts
        if behind > GRACE_S:
            past_grace += 1
        elif behind > 0:
            in_grace += 1
        newest[topic.name] = max(ts, newest.get(topic.name, ts))
        valid.append((topic.name, event))
        messages.append((topic.name, orjson.dumps(event), key))
    rng = random.Random(SEED)
    for msg in _invalid(rng, valid):
        messages.insert(rng.randrange(len(messages)), msg)
    _WORKLOAD.append(Workload(messages, len(valid), INVALID, in_grace, past_grace))
    _note(f"workload: {len(valid):,} valid events ({in_grace:,} late within the grace, "
          f"{past_grace:,} past it) and {INVALID} invalid messages")
    return _WORKLOAD[0]


def _send(s: settings_mod.Settings, messages: list[Message]) -> None:
    # Idempotent producer (kafka-python's default): each partition gets the messages
    # in the order sent, once, in every run.
    producer = KafkaProducer(bootstrap_servers=s.kafka, acks="all", linger_ms=5,
                             batch_size=256 * 1024)
    for topic, value, key in messages:
        producer.send(topic, value=value, key=key)
    producer.flush()
    producer.close()
    _note(f"sent {len(messages):,} messages")


def _wait_applied_and_quiet(r: redis.Redis, total: int) -> None:
    """Wait until every message is applied and the risk refresher has gone quiet
    (its channel stream and the stored offsets unchanged over three looks, and no grid
    waiting for its score)."""
    wait_until(lambda: _progress(r) >= total, timeout=900, what=f"{total} messages applied")
    looks: list[tuple[Any, ...]] = []

    def quiet() -> bool:
        last = r.xinfo_stream(keys.CHAN_GRIDS)["last-generated-id"] if r.exists(keys.CHAN_GRIDS) else None
        looks.append((last, tuple(sorted(r.hgetall(keys.OFFSETS).items())), _progress(r)))
        time.sleep(0.75)
        return (len(looks) >= 3 and looks[-1] == looks[-2] == looks[-3]
                and not r.scard(keys.RISK_DIRTY))

    wait_until(quiet, timeout=120, what="the risk refresher to finish")
    _note(f"all {total:,} messages applied, risk refresher quiet")


def _reset(s: settings_mod.Settings) -> settings_mod.Settings:
    """Empty topics, an empty Redis database and a new consumer group."""
    _reset_topics(s)
    r = redis.Redis.from_url(s.redis)
    r.flushdb()
    r.close()
    return s.with_(group=f"gridwatch-test-{uuid.uuid4().hex[:8]}")


def _assert_same_state(reference: dict[str, Any], r: redis.Redis) -> None:
    actual = store.dump(r)
    _note(f"dump: {len(actual):,} keys (reference {len(reference):,})")
    assert actual.keys() == reference.keys(), dump_diff(reference, actual)
    assert actual == reference, dump_diff(reference, actual)


_REFERENCE: list[dict[str, Any]] = []


def reference(s: settings_mod.Settings, logdir: Path) -> dict[str, Any]:
    """The dump of one clean pass of one worker over the workload (made once per
    session, on the empty stack ``s``; the caller resets the stack afterwards)."""
    if _REFERENCE:
        return _REFERENCE[0]
    w = workload()
    _send(s, w.messages)
    logdir.mkdir(parents=True, exist_ok=True)
    workers = TimerlessWorkers(s, logdir)
    r = store.connect(s.redis)
    try:
        workers.start()
        _wait_applied_and_quiet(r, len(w.messages))
        sm = store.summary(r)
        dump = store.dump(r)
    finally:
        workers.stop_all()
        r.close()
    # The workload holds what it claims, and one clean pass applied all of it.
    assert w.valid >= 200_000
    assert w.late_in_grace > 200 and w.late_past_grace > 200, (w.late_in_grace, w.late_past_grace)
    assert sm["deadletter"] == w.invalid
    assert sm["checkpoint_scans"] + sm["loiter_reports"] + sm["station_tickets"] == w.valid
    assert sm["late"] >= w.late_past_grace // 2, sm
    assert any(k.startswith(keys.alert("")) for k in dump), "the day raised no alerts"
    assert any(k.startswith(keys.RISK_PREFIX) for k in dump), "no risk scores were written"
    _REFERENCE.append(dump)
    return dump


def _run_with_kills(s: settings_mod.Settings, logdir: Path, *, n_workers: int, seed: int,
                    send: bool = True, broker_restart: bool = False) -> redis.Redis:
    """Apply the workload with ``n_workers`` in one group, SIGKILL one of them (chosen
    at random) at each of ``KILLS`` random points of progress and start a new one in
    its place (with ``broker_restart``, the Kafka broker is also stopped and started
    again after the second kill), then wait for the end. ``send=False``: the topics
    already hold the messages. Returns a client of the stack's Redis (of its Redis
    Cluster when ``s`` names one)."""
    w = workload()
    total = len(w.messages)
    if send:
        _send(s, w.messages)
    rng = random.Random(seed)
    points = sorted(rng.uniform(0.05, 0.9) for _ in range(KILLS))
    logdir.mkdir(parents=True, exist_ok=True)
    workers = TimerlessWorkers(s, logdir)
    r = store.connect(s)  # the cluster's client when ``s`` names one
    try:
        live = [workers.start() for _ in range(n_workers)]
        for point in points:
            target = int(point * total)
            wait_until(lambda target=target: _progress(r) >= target, timeout=600,
                       what=f"{point:.0%} of the messages applied")
            time.sleep(rng.uniform(0.0, 0.4))  # land anywhere inside a batch's cycle
            victim = live.pop(rng.randrange(len(live)))
            workers.kill9(victim)
            at_kill = _progress(r)
            _note(f"SIGKILL worker pid {victim.pid} at {at_kill:,} of {total:,} applied")
            assert at_kill < total, "the workers finished before they could be killed"
            live.append(workers.start())
            if broker_restart and point == points[1]:
                pid = drill.stop_kafka(s)
                time.sleep(2.0)
                drill.start_stack_part(s.with_(redis_cluster=()))  # the broker only
                drill.wait_for_leaders(s)
                _note(f"Kafka broker (pid {pid}) stopped and started again")
        _wait_applied_and_quiet(r, total)
        assert _progress(r) == total
    finally:
        workers.stop_all()
    return r


@pytest.mark.timeout(1800)
def test_sigkill_at_random_points_ends_in_the_state_of_a_clean_pass(
        clean_stack: settings_mod.Settings, tmp_path: Path) -> None:
    ref = reference(clean_stack, tmp_path / "reference")
    s = _reset(clean_stack)
    r = _run_with_kills(s, tmp_path / "killed", n_workers=1, seed=101)
    try:
        _assert_same_state(ref, r)
    finally:
        r.close()


@pytest.mark.timeout(1800)
def test_two_workers_sharing_partitions_killed_at_random_end_in_the_same_state(
        clean_stack: settings_mod.Settings, tmp_path: Path) -> None:
    s = clean_stack
    if not _REFERENCE:
        reference(s, tmp_path / "reference")
        s = _reset(s)
    r = _run_with_kills(s, tmp_path / "shared", n_workers=2, seed=202)
    try:
        _assert_same_state(_REFERENCE[0], r)
    finally:
        r.close()


@pytest.mark.timeout(1800)
def test_unkeyed_scans_killed_and_a_broker_restart_end_in_the_state_of_a_clean_pass(
        clean_stack: settings_mod.Settings, tmp_path: Path) -> None:
    """A producer that does not key scans by person (kafka-python's default partitioner
    then picks partitions itself): one person's scans land on several partitions, which
    the workers interleave as their fetches go. Sent once; a clean pass of one worker and
    a pass of two workers with SIGKILLs and a broker restart read the same partitions
    and must end in the same state (cross-grid alerts included)."""
    s = clean_stack
    w = workload()
    messages = [(topic, value, None if topic == CHECKPOINT_SCANS else key)
                for topic, value, key in w.messages]
    _send(s, messages)  # type: ignore[arg-type]
    workers = TimerlessWorkers(s, tmp_path / "clean")
    (tmp_path / "clean").mkdir()
    r = store.connect(s.redis)
    try:
        workers.start()
        _wait_applied_and_quiet(r, len(messages))
        clean = store.dump(r)
    finally:
        workers.stop_all()
    assert any(k.startswith(keys.alert("")) and '"cross_grid"' in str(v) for k, v in clean.items())
    r.flushdb()
    r.close()
    s = s.with_(group=f"gridwatch-test-{uuid.uuid4().hex[:8]}")
    r = _run_with_kills(s, tmp_path / "killed", n_workers=2, seed=303, send=False,
                        broker_restart=True)
    try:
        _assert_same_state(clean, r)
    finally:
        r.close()


@pytest.mark.timeout(1800)
def test_on_a_redis_cluster_unkeyed_scans_killed_and_a_broker_restart_end_in_the_one_server_state(
        clean_stack: settings_mod.Settings, redis_cluster: settings_mod.Settings,
        tmp_path: Path) -> None:
    """The state path on a 3-master Redis Cluster: unkeyed scans, two workers SIGKILLed
    at random points (between a batch's slots, too) and a broker restart end in the
    state one worker leaves on one server, key for key."""
    s = clean_stack
    w = workload()
    messages = [(topic, value, None if topic == CHECKPOINT_SCANS else key)
                for topic, value, key in w.messages]
    _send(s, messages)  # type: ignore[arg-type]
    (tmp_path / "clean").mkdir()
    workers = TimerlessWorkers(s, tmp_path / "clean")
    r = store.connect(s.redis)
    try:
        workers.start()
        _wait_applied_and_quiet(r, len(messages))
        one_server = store.dump(r)
    finally:
        workers.stop_all()
        r.close()
    c = _run_with_kills(redis_cluster.with_(group=f"gridwatch-test-{uuid.uuid4().hex[:8]}"),
                        tmp_path / "cluster", n_workers=2, seed=404, send=False,
                        broker_restart=True)
    try:
        assert not c.hgetall(keys.PENDING), "a batch was left pending"
        _assert_same_state(one_server, c)
    finally:
        c.close()
