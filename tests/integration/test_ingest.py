"""The platform's acceptance: events sent by a plain Kafka client end exactly in Redis.

A plain kafka-python producer (not gridwatch's publisher) sends 100,000 messages, about
1 % of them invalid in many ways. The state summary must equal the valid events sent
per kind, each grid's counts must equal an independent point-in-polygon count (ray
casting written here, not shapely), and every invalid message must be in the
dead-letter topic with a reason. A second test kills the worker with SIGKILL in the
middle and restarts it: nothing is missing and nothing is counted twice.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import orjson
import pytest
from gridwatch.streams.simulate import CityDay, Simulator
from gridwatch.streams.topics import DEADLETTER, INPUT_BY_NAME
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from gridwatch import keys, store
from gridwatch.city import load_city, load_grids

from .conftest import Workers, wait_until

pytestmark = pytest.mark.integration

SUMMARY_FIELD = {
    "gridwatch.checkpoint-scans": "checkpoint_scans",
    "gridwatch.crowd-loiter": "loiter_reports",
    "gridwatch.station-tickets": "station_tickets",
}


def _inside(lon: float, lat: float, ring: list[list[float]]) -> bool:
    """Even-odd ray casting: an independent point-in-polygon test."""
    inside = False
    j = len(ring) - 1
    for i in range(len(ring)):
        xi, yi = ring[i][0], ring[i][1]
        xj, yj = ring[j][0], ring[j][1]
        if (yi > lat) != (yj > lat) and lon < (xj - xi) * (lat - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


def _grid_of(lon: float, lat: float, polys: list[tuple[str, list[list[float]], tuple[float, float, float, float]]]) -> str | None:
    for grid_id, ring, (x0, y0, x1, y1) in polys:
        if x0 <= lon <= x1 and y0 <= lat <= y1 and _inside(lon, lat, ring):
            return grid_id
    return None


def _bad_messages(rng: random.Random, valid: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, bytes]]:
    """Invalid messages of many kinds, spread over the input topics."""
    topics = list(INPUT_BY_NAME)
    out: list[tuple[str, bytes]] = []
    for i in range(1000):
        topic, event = valid[rng.randrange(len(valid))]
        kind = i % 8
        broken = dict(event)
        if kind == 0:
            raw = bytes(rng.randrange(256) for _ in range(rng.randint(1, 60)))
        elif kind == 1:
            raw = orjson.dumps(event)[: rng.randint(1, 30)]
        elif kind == 2:
            broken["ts"] = "yesterday"
            raw = orjson.dumps(broken)
        elif kind == 3:
            broken["lon" if "lon" in broken else "seats"] = "east"
            raw = orjson.dumps(broken)
        elif kind == 4:
            broken["v"] = 2
            raw = orjson.dumps(broken)
        elif kind == 5:
            broken.pop("event_id")
            raw = orjson.dumps(broken)
        elif kind == 6:
            broken["zone" if "zone" in broken else "event_id"] = "x" * 5000
            raw = orjson.dumps(broken)
        else:
            raw = b"[1, 2, 3]"
        out.append((topics[i % 3] if kind in (0, 1, 7) else topic, raw))
    return out


def _send_plain(s: Any, messages: list[tuple[str, bytes, bytes | None]]) -> None:
    producer = KafkaProducer(bootstrap_servers=s.kafka, acks="all", linger_ms=5,
                             batch_size=256 * 1024)
    for topic, value, key in messages:
        producer.send(topic, value=value, key=key)
    producer.flush()
    producer.close()


def _workload(n_valid: int = 99_000, seed: int = 3) -> tuple[list[tuple[str, dict[str, Any]]], list[tuple[str, bytes]]]:
    from gridwatch import settings as settings_mod

    s = settings_mod.Settings()
    sim = Simulator(load_city(s.city), seed=seed, profile=CityDay(scans=110_000, loiter_reports=3_000))
    valid: list[tuple[str, dict[str, Any]]] = []
    for _, topic, event in sim.stream(days=1.0, history_days=2):
        valid.append((topic.name, event))
        if len(valid) >= n_valid:
            break
    rng = random.Random(seed)
    bad = _bad_messages(rng, valid)
    return valid, bad


def _expected(valid: list[tuple[str, dict[str, Any]]]) -> tuple[Counter[str], Counter[str], int]:
    from gridwatch import settings as settings_mod

    grids = load_grids(settings_mod.Settings().grids)
    polys = [(g.id, [list(c) for c in g.polygon.exterior.coords], g.polygon.bounds) for g in grids]
    kinds: Counter[str] = Counter()
    per_grid: Counter[str] = Counter()
    unassigned = 0
    cache: dict[tuple[float, float], str | None] = {}
    for topic, event in valid:
        kinds[SUMMARY_FIELD[topic]] += 1
        if "lon" in event:
            point = (event["lon"], event["lat"])
            if point not in cache:
                cache[point] = _grid_of(*point, polys)
            grid = cache[point]
            if grid is None:
                unassigned += 1
            else:
                per_grid[grid] += 1
    return kinds, per_grid, unassigned


def _messages(valid: list[tuple[str, dict[str, Any]]], bad: list[tuple[str, bytes]], seed: int) -> list[tuple[str, bytes, bytes | None]]:
    from gridwatch.streams.topics import INPUT_BY_NAME as T

    msgs: list[tuple[str, bytes, bytes | None]] = [
        (topic, orjson.dumps(event), str(event[T[topic].key_field]).encode())
        for topic, event in valid
    ]
    rng = random.Random(seed)
    for topic, raw in bad:
        msgs.insert(rng.randrange(len(msgs)), (topic, raw, None))
    return msgs


def _grid_totals(r: Any) -> Counter[str]:
    out: Counter[str] = Counter()
    for grid in r.smembers(keys.GRIDS_SEEN):
        if grid == keys.UNASSIGNED:
            continue
        total = r.hgetall(keys.grid_total(grid))
        out[grid] = sum(int(v) for k, v in total.items() if k != "late")
    return out


def _deadletters(s: Any, expected: int) -> list[dict[str, Any]]:
    consumer = KafkaConsumer(bootstrap_servers=s.kafka, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=5000)
    parts = [TopicPartition(DEADLETTER, p) for p in range(s.partitions)]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    out = []
    for msg in consumer:
        out.append(orjson.loads(msg.value))
        if len(out) >= expected * 2:
            break
    consumer.close()
    return out


def _check_final_state(s: Any, valid: list[tuple[str, dict[str, Any]]], bad: list[tuple[str, bytes]]) -> None:
    kinds, per_grid, unassigned = _expected(valid)
    r = store.connect(s.redis)
    summary = store.summary(r)
    for name, count in kinds.items():
        assert summary[name] == count, (name, summary)
    assert summary["unassigned"] == unassigned
    assert summary["deadletter"] == len(bad)
    totals = _grid_totals(r)
    assert totals == per_grid
    letters = _deadletters(s, len(bad))
    # At-least-once publishing may repeat a dead letter after a crash; each source
    # offset must be there, each with a reason.
    sources = {(d["source"]["topic"], d["source"]["partition"], d["source"]["offset"]) for d in letters}
    assert len(sources) == len(bad)
    assert all(d["reason"] for d in letters)
    r.close()


def test_plain_client_100k_events_end_exactly_in_redis(workers: Workers) -> None:
    s = workers.settings
    valid, bad = _workload()
    _send_plain(s, _messages(valid, bad, seed=5))
    workers.start()
    r = store.connect(s.redis)
    total = len(valid) + len(bad)

    def applied() -> bool:
        sm = store.summary(r)
        return sm["checkpoint_scans"] + sm["loiter_reports"] + sm["station_tickets"] + sm["deadletter"] >= total

    wait_until(applied, timeout=240, what=f"{total} messages applied")
    _check_final_state(s, valid, bad)


def test_kill9_mid_run_loses_nothing_and_counts_nothing_twice(workers: Workers) -> None:
    s = workers.settings
    valid, bad = _workload(seed=4)
    _send_plain(s, _messages(valid, bad, seed=6))
    proc = workers.start()
    r = store.connect(s.redis)
    total = len(valid) + len(bad)

    def seen() -> int:
        sm = store.summary(r)
        return sm["checkpoint_scans"] + sm["loiter_reports"] + sm["station_tickets"] + sm["deadletter"]

    wait_until(lambda: seen() >= total // 3, timeout=180, what="a third applied")
    workers.kill9(proc)
    at_kill = seen()
    assert at_kill < total, "the worker finished before it could be killed"
    workers.start()
    wait_until(lambda: seen() >= total, timeout=240, what="all messages applied after restart")
    _check_final_state(s, valid, bad)


def test_redis_going_back_in_time_is_read_again_from_its_offsets(workers: Workers) -> None:
    """Redis loses its newest writes under a running worker (as after a crash inside the
    AOF fsync second, or a restore from an older copy): the worker must notice that its
    batches no longer follow on from Redis's offsets and read those records again, so
    the end state has every event exactly once."""
    import redis as redis_lib

    s = workers.settings
    valid, bad = _workload(n_valid=30_000, seed=8)
    messages = _messages(valid, bad, seed=9)
    third = len(messages) // 3
    workers.start()
    r = store.connect(s.redis)
    raw = redis_lib.Redis.from_url(s.redis)

    def seen() -> int:
        sm = store.summary(r)
        return sm["checkpoint_scans"] + sm["loiter_reports"] + sm["station_tickets"] + sm["deadletter"]

    _send_plain(s, messages[:third])
    wait_until(lambda: seen() >= third, timeout=180, what="the first third applied")
    old = [(k, ttl, v) for k in raw.scan_iter(count=1000)
           for ttl, v in [(raw.pttl(k), raw.dump(k))] if v is not None]
    _send_plain(s, messages[third:2 * third])
    wait_until(lambda: seen() >= 2 * third, timeout=180, what="the second third applied")
    # Back to the copy taken after the first third: the second third is "lost".
    pipe = raw.pipeline(transaction=True)
    pipe.flushdb()
    for key, ttl, value in old:
        pipe.restore(key, max(ttl, 0), value, replace=True)
    pipe.execute()
    assert seen() == third
    _send_plain(s, messages[2 * third:])
    wait_until(lambda: seen() >= len(messages), timeout=240, what="every message applied again")
    _check_final_state(s, valid, bad)
    raw.close()
