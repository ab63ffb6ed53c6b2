"""No input stops the worker: extreme-but-well-formed events, records the code raises on,
and a feed clock pushed far ahead, against a real Kafka, a real Redis and real
``gridwatch worker`` processes.

- Ordinary scans with a handful of extremes mixed in (a year-1 test time with a +23:59
  offset, a year-9999 ts, a ts a day ahead, high-risk tickets with edge arrival times,
  loiter reports at and past the bounds, odd unicode ids): the worker stays up, every
  ordinary event is applied, and each extreme is applied or dead-lettered with a reason
  naming its field.
- A scan that makes deciding raise and a command that makes its transition raise (a
  fault injected into the worker process at start): each is dead-lettered with the
  exception, everything else applied, the counts show in ``/healthz`` and
  ``/metrics``; a restart does not meet them again.
- A watermark years ahead (stored before the decoders were bounded) and a year-9999
  event: the timers' clock stays at the wall clock (plus the skew), so a fresh alert is
  not escalated at once and no source looks silent.
"""

from __future__ import annotations

import socket
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from gridwatch.schemas.events import parse_time
from gridwatch.streams.topics import (
    CHECKPOINT_SCANS,
    COMMANDS,
    CROWD_LOITER,
    DEADLETTER,
    STATION_TICKETS,
)
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from gridwatch import command_keys, keys, store
from gridwatch import settings as settings_mod
from gridwatch.city import load_city
from gridwatch.signing import sign

from .conftest import Workers, wait_until

pytestmark = pytest.mark.integration

CITY = load_city(settings_mod.Settings().city)
NOW = time.time()


def _rfc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat()


def _scan(event_id: str, ts: float, i: int = 0, **extra: Any) -> dict[str, Any]:
    cp = CITY["checkpoints"][i % len(CITY["checkpoints"])]
    return {"event_id": event_id, "ts": _rfc(ts), "checkpoint_id": cp["id"], "lon": cp["lon"],
            "lat": cp["lat"], "person_ref": f"p-{i % 400}", "code_color": "green",
            "direction": "in" if i % 2 else "out", "last_negative_test_at": _rfc(ts - 3600),
            **extra}


def _ordinary(n: int, start: float) -> list[tuple[str, dict[str, Any]]]:
    return [(CHECKPOINT_SCANS, _scan(f"ord-{i}", start + i * 0.5, i)) for i in range(n)]


def _loiter(event_id: str, **extra: Any) -> dict[str, Any]:
    cam = CITY["cameras"][0]
    return {"event_id": event_id, "ts": _rfc(NOW - 600), "camera_id": cam["id"],
            "lon": cam["lon"], "lat": cam["lat"], "zone": cam["zone"], "people": 3,
            "dwell_s": 60.0, **extra}


def _ticket(event_id: str, **extra: Any) -> dict[str, Any]:
    return {"event_id": event_id, "ts": _rfc(NOW - 600), "station_id": "SHS",
            "train_no": f"G{event_id[-2:]}", "action": "sold",
            "arrival_at": _rfc(NOW + 7200), "origin": "Xi'an", "origin_risk": "high",
            "seats": 60, **extra}


# (topic, event, expected): "applied", or the field its dead letter must name.
EXTREMES: list[tuple[str, dict[str, Any], str]] = [
    (CHECKPOINT_SCANS, _scan("x-year1-test", NOW - 500, 3, code_color="green",
                             last_negative_test_at="0001-01-01T00:00:00+23:59"),
     "last_negative_test_at"),
    (CHECKPOINT_SCANS, {**_scan("x-year9999", 0, 4), "ts": "9999-12-31T23:59:59-23:59"}, "ts"),
    (CHECKPOINT_SCANS, _scan("x-day-ahead", NOW + 86400, 5), "ts"),
    (CHECKPOINT_SCANS, _scan("x-edge-2000", parse_time("2000-01-01T00:00:00Z"), 6,
                             last_negative_test_at="2000-01-01T00:00:00+00:00"), "applied"),
    (CHECKPOINT_SCANS, _scan("x-stale-2000", NOW - 400, 7, code_color="green",
                             last_negative_test_at="2000-01-01T00:00:00.000000001-23:59"),
     "applied"),
    (CHECKPOINT_SCANS, _scan("x-corner", NOW - 300, 8, lon=180, lat=-90, code_color="red"),
     "applied"),
    (CHECKPOINT_SCANS, _scan("x-😀\u202e\u200d\x00中文", NOW - 200, 9,
                             person_ref="\u202e" * 200), "applied"),
    (CHECKPOINT_SCANS, _scan("x-pipe|id", NOW - 200, 10), "event_id"),
    (CHECKPOINT_SCANS, _scan("x-lon-huge", NOW - 200, 11, lon=1e300), "lon"),
    (STATION_TICKETS, _ticket("x-t1", seats=10_000, arrival_at="2100-12-31T23:59:59+00:00"),
     "applied"),
    (STATION_TICKETS, _ticket("x-t2", arrival_at="0001-01-01T00:00:00+23:59"), "arrival_at"),
    (STATION_TICKETS, _ticket("x-t3", seats=10**18), "seats"),
    (CROWD_LOITER, _loiter("x-l1", people=10_000, dwell_s=7 * 86400), "applied"),
    (CROWD_LOITER, _loiter("x-l2", people=10**18), "people"),
    (CROWD_LOITER, _loiter("x-l3", dwell_s=1e300), "dwell_s"),
]


def _send(s: settings_mod.Settings, messages: list[tuple[str, dict[str, Any]]]) -> None:
    producer = KafkaProducer(bootstrap_servers=s.kafka, acks="all", linger_ms=5)
    for topic, event in messages:
        producer.send(topic, key=str(event.get("event_id", event.get("command_id"))).encode(),
                      value=orjson.dumps(event))
    producer.flush()
    producer.close()


def _deadletters(s: settings_mod.Settings) -> dict[str, dict[str, Any]]:
    """Dead letters by the id (event or command) of the record they carry."""
    consumer = KafkaConsumer(bootstrap_servers=s.kafka, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=4000)
    parts = [TopicPartition(DEADLETTER, p) for p in range(s.partitions)]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    out = {}
    for msg in consumer:
        letter = orjson.loads(msg.value)
        raw = orjson.loads(letter["raw"])
        out[raw.get("event_id") or raw.get("command_id")] = letter
    consumer.close()
    return out


def _processed(r: redis.Redis) -> int:
    sm = store.summary(r)
    return (sm["checkpoint_scans"] + sm["loiter_reports"] + sm["station_tickets"]
            + sm["deadletter"] + sm["duplicates"])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(port: int, path: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
        return reply.read()  # type: ignore[no-any-return]


def _health(port: int) -> dict[str, Any]:
    try:
        return orjson.loads(_get(port, "/healthz"))  # type: ignore[no-any-return]
    except urllib.error.HTTPError as exc:  # 503 still carries the report
        return orjson.loads(exc.read())  # type: ignore[no-any-return]


def test_extreme_events_among_ordinary_ones_never_stop_the_worker(
        workers: Workers, monkeypatch: pytest.MonkeyPatch) -> None:
    s = workers.settings
    port = _free_port()
    monkeypatch.setenv("GRIDWATCH_WORKER_HTTP", f"127.0.0.1:{port}")
    ordinary = _ordinary(2_000, NOW - 3 * 3600)
    messages = list(ordinary)
    for k, (topic, event, _) in enumerate(EXTREMES):  # spread through the ordinary ones
        messages.insert(100 + k * 120, (topic, event))
    _send(s, messages)
    proc = workers.start()
    r = store.connect(s.redis)
    wait_until(lambda: _processed(r) >= len(messages), timeout=120,
               what="every message applied or dead-lettered")
    time.sleep(1.0)
    assert proc.poll() is None, "the worker must still be running"
    summary = store.summary(r)
    applied = [e for _, e, expect in EXTREMES if expect == "applied"]
    dead = {e["event_id"]: expect for _, e, expect in EXTREMES if expect != "applied"}
    scans_applied = len(ordinary) + sum(1 for t, e, x in EXTREMES
                                        if t == CHECKPOINT_SCANS and x == "applied")
    assert summary["checkpoint_scans"] == scans_applied
    assert summary["station_tickets"] == 1 and summary["loiter_reports"] == 1
    assert summary["deadletter"] == len(dead)
    letters = _deadletters(s)
    assert set(letters) == set(dead)
    for event_id, field in dead.items():
        letter = letters[event_id]
        assert letter["field"] == field and letter["reason"].startswith(f"{field}:"), letter
    assert len(applied) + len(dead) == len(EXTREMES)
    # The edge-time ticket crossed the seat threshold: its alert is written, with its
    # arrival formatted.
    raised = [orjson.loads(r.get(keys.alert(a))) for a in r.zrange(keys.ALERTS_ALL, 0, -1)]
    station = [a for a in raised if a["kind"] == "station_high_risk"]
    assert station and "2100-12-31" in station[0]["title"]
    health = _health(port)
    assert health["redis"] and health["poison"] == 0 and health["deadletter"] == len(dead)
    r.close()


INJECT = '''
import os

_poison_event = os.environ.get("GRIDWATCH_TEST_POISON_EVENT")
_poison_actor = os.environ.get("GRIDWATCH_TEST_POISON_ACTOR")
if _poison_event or _poison_actor:
    from gridwatch.agents import lifecycle, rules

    _scan, _apply = rules.evaluate_scan, lifecycle.apply

    def evaluate_scan(scan, *args, **kwargs):
        if scan.event_id == _poison_event:
            raise ValueError(f"injected fault for {scan.event_id}")
        return _scan(scan, *args, **kwargs)

    def apply(*args, **kwargs):
        if kwargs.get("actor") == _poison_actor:
            raise KeyError("injected fault for a command")
        return _apply(*args, **kwargs)

    rules.evaluate_scan, lifecycle.apply = evaluate_scan, apply
'''


def _command(command_id: str, alert_id: str, actor: str) -> dict[str, Any]:
    return {"command_id": command_id, "target": "alert", "id": alert_id, "action": "ack",
            "actor": actor, "role": "duty_officer", "ts": _rfc(time.time())}


def _result(r: redis.Redis, command_id: str) -> dict[str, Any] | None:
    raw = r.get(keys.cmdresult(command_id))
    return orjson.loads(raw) if raw else None


def test_a_record_that_makes_the_code_raise_is_dead_lettered_and_the_rest_applied(
        workers: Workers, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    s = workers.settings
    port = _free_port()
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(INJECT)
    monkeypatch.setenv("PYTHONPATH", str(inject))
    monkeypatch.setenv("GRIDWATCH_TEST_POISON_EVENT", "ord-777")
    monkeypatch.setenv("GRIDWATCH_TEST_POISON_ACTOR", "poison-actor")
    monkeypatch.setenv("GRIDWATCH_WORKER_HTTP", f"127.0.0.1:{port}")
    messages = _ordinary(1_500, NOW - 3 * 3600)
    red = _scan("red-1", NOW - 60, 1, code_color="red")
    messages.append((CHECKPOINT_SCANS, red))
    _send(s, messages)
    proc = workers.start()
    r = store.connect(s.redis)
    wait_until(lambda: _processed(r) >= len(messages), timeout=120,
               what="every message applied or dead-lettered")
    summary = store.summary(r)
    assert summary["checkpoint_scans"] == len(messages) - 1
    assert summary["deadletter"] == 1
    assert r.hgetall(keys.OFFSETS), "the poison record's offset is applied with the rest"
    # the alert of the red scan (same batch as the poison record) was raised
    alert_ids = [a for a in r.zrange(keys.ALERTS_ALL, 0, -1)
                 if orjson.loads(r.get(keys.alert(a)))["kind"] == "red_code"]
    assert len(alert_ids) == 1
    # commands: the one whose transition raises is dead-lettered, the next one applied
    # Commands are signed with the stack's key, as the CLI and the gateway sign them.
    ring = command_keys.keyring(s)
    _send(s, [(COMMANDS, sign(_command("cmd-poison", alert_ids[0], "poison-actor"), ring))])
    year1 = {**_command("cmd-year1", alert_ids[0], "wang"), "ts": "0001-01-01T00:00:00+23:59"}
    _send(s, [(COMMANDS, sign(year1, ring))])
    _send(s, [(COMMANDS, sign(_command("cmd-ok", alert_ids[0], "wang"), ring))])
    wait_until(lambda: _result(r, "cmd-ok") is not None, timeout=60, what="the second command")
    poisoned = _result(r, "cmd-poison")
    assert poisoned is not None and poisoned["ok"] is False
    assert poisoned["reason"].startswith("internal error: KeyError")
    assert _result(r, "cmd-ok")["ok"] is True  # type: ignore[index]
    assert orjson.loads(r.get(keys.alert(alert_ids[0])))["status"] == "acknowledged"
    letters = _deadletters(s)
    assert letters["ord-777"]["reason"] == \
        "internal error: ValueError: injected fault for ord-777"
    assert letters["cmd-poison"]["reason"].startswith("internal error: KeyError")
    assert letters["cmd-year1"]["field"] == "ts"  # a command's clock out of the years
    assert store.summary(r)["deadletter"] == 3
    health = _health(port)
    assert health["poison"] == 1 and health["command_poison"] == 1
    assert proc.poll() is None
    metrics = _get(port, "/metrics").decode()
    assert 'gridwatch_poison_records_total{stage="ingest"} 1.0' in metrics
    assert 'gridwatch_poison_records_total{stage="commands"} 1.0' in metrics
    # A restart (without the fault) starts after the dead-lettered offsets: nothing is
    # met again, nothing counted twice.
    workers.stop_all()
    monkeypatch.delenv("PYTHONPATH")
    summary, offsets = store.summary(r), r.hgetall(keys.OFFSETS)
    workers.start()
    wait_until(lambda: _health(port).get("redis") is True if _up(port) else False,
               timeout=60, what="the restarted worker's health")
    time.sleep(3)
    assert store.summary(r) == summary
    assert r.hgetall(keys.OFFSETS) == offsets
    assert _result(r, "cmd-poison") == poisoned
    r.close()


def _up(port: int) -> bool:
    try:
        _health(port)
        return True
    except OSError:
        return False


def test_a_far_future_watermark_and_event_do_not_move_the_feed_clock(
        workers: Workers, monkeypatch: pytest.MonkeyPatch) -> None:
    s = workers.settings
    monkeypatch.setenv("GRIDWATCH_MAX_FUTURE_S", "30")
    monkeypatch.setenv("GRIDWATCH_WORKER_HTTP", "0")
    r = store.connect(s.redis)
    far = parse_time("9999-06-01T00:00:00Z")
    # as a worker before the decoders were bounded would have left it
    for p in range(s.partitions):
        r.hset(keys.WATERMARKS, keys.partition_field(CHECKPOINT_SCANS, p), repr(far))
    # and on a partition no event comes to, so nothing folds it back: only the timers'
    # own clamp keeps their clock
    idle = keys.partition_field(CROWD_LOITER, 0)
    r.hset(keys.WATERMARKS, idle, repr(far))
    red = _scan("red-now", time.time() - 5, 2, code_color="red")
    # recent events: within the grace of the wall clock, late only against a far one
    messages = [*_ordinary(200, time.time() - 300), (CHECKPOINT_SCANS, red),
                (CHECKPOINT_SCANS, {**_scan("x-9999", 0, 3), "ts": "9999-12-31T23:59:59Z"})]
    _send(s, messages)
    workers.start()
    wait_until(lambda: _processed(r) >= len(messages), timeout=120,
               what="every message applied or dead-lettered")
    assert store.summary(r)["checkpoint_scans"] == len(messages) - 1
    assert store.summary(r)["late"] == 0, "no event is late against a far-future watermark"
    # The timers fire every 2 s and look at sources on their first round.
    time.sleep(8)
    alerts = [orjson.loads(r.get(keys.alert(a))) for a in r.zrange(keys.ALERTS_ALL, 0, -1)]
    kinds = sorted(a["kind"] for a in alerts)
    assert kinds == ["red_code"], kinds  # no escalation, no silent source
    due = r.zrange(keys.DEADLINES, 0, -1, withscores=True)
    assert due and all(score > time.time() for _, score in due)
    marks = {k: float(v) for k, v in r.hgetall(keys.WATERMARKS).items()}
    assert float(marks.pop(idle)) == far
    assert max(marks.values()) <= time.time() + 30 + 5, "the stored watermarks are brought back"
    r.close()
