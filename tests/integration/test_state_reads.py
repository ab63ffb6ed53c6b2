"""State reads agree with state writes, against the real Redis of the test stack.

Generated scans and loiter reports go through the worker's own path (fold, decide,
the records' writes and the atomic apply script of ``BatchApplier``), in random batches
and orders so late fields appear; then every reader is asked: ``queries.grid_state``
(what ``gridwatch state grid`` prints), the CLI's ``--json`` output itself, the risk
refresher's Lua reader and ``state top`` / ``queries.risk_of`` (what the gateway's
``/api/risk/`` serves), and ``queries.alerts`` for the loiter alerts' float details.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import subprocess
import sys
from collections import defaultdict
from typing import Any

import orjson
import pytest
import redis
from gridwatch.agents.fold import RawRecord
from gridwatch.agents.ingest import BatchApplier
from gridwatch.agents.risk_refresh import RiskRefresher
from gridwatch.agents.worker import decide_config
from gridwatch.schemas.events import format_time
from gridwatch.streams.topics import CHECKPOINT_SCANS, CROWD_LOITER
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.geometry import box

from gridwatch import cli, keys, queries
from gridwatch import settings as settings_mod
from gridwatch.city import Grid
from gridwatch.grid_index import GridIndex
from gridwatch.risk import load_risk_config
from gridwatch.store import AsyncStore
from tests import aio

pytestmark = pytest.mark.integration

BASE = 1_709_510_400.0  # 2024-03-04T00:00:00Z, an hour boundary
GRIDS = [Grid(f"T-{n}", f"Test {n}", f"测试{n}", "test", (f"w{n}",),
              box(121.39 + n * 0.01, 31.20, 121.40 + n * 0.01, 31.21)) for n in (1, 2)]
INDEX = GridIndex(GRIDS)


@st.composite
def events(draw: st.DrawFn) -> list[tuple[str, int, dict[str, Any]]]:
    """(topic, partition, event) in the order sent: scans and loiter reports over 30 hours."""
    out = []
    for n in range(draw(st.integers(1, 40))):
        grid = draw(st.sampled_from([0, 1]))
        lon, lat = 121.405 + grid * 0.01, 31.205
        ts = BASE + draw(st.floats(0, 30 * 3600 - 1, allow_nan=False))
        if draw(st.booleans()):
            event = {"event_id": f"s{n}", "ts": format_time(ts), "checkpoint_id": f"cp{grid}",
                     "lon": lon, "lat": lat, "person_ref": f"p{draw(st.integers(0, 3))}",
                     "code_color": draw(st.sampled_from(["green", "yellow", "red"])),
                     "direction": draw(st.sampled_from(["in", "out"])),
                     "last_negative_test_at": format_time(ts - draw(st.integers(1, 96)) * 3600)}
            topic = CHECKPOINT_SCANS
        else:
            cam = draw(st.integers(0, 2))
            event = {"event_id": f"l{n}", "ts": format_time(ts), "camera_id": f"cam{grid}{cam}",
                     "lon": lon, "lat": lat, "zone": f"pharmacy:{cam:03d}",
                     "people": draw(st.integers(1, 30)),
                     "dwell_s": round(draw(st.floats(0, 3000, allow_nan=False)), 1)}
            topic = CROWD_LOITER
        out.append((topic, draw(st.integers(0, 1)), event))
    return out


def apply_all(s: settings_mod.Settings, sent: list[tuple[str, int, dict[str, Any]]],
              cuts: list[int]) -> dict[str, Any]:
    """Send ``sent`` through the worker's batch path in batches cut at ``cuts``; returns
    what was written: counters and maxima per (key, field), and the last alert records."""
    offsets: dict[tuple[str, int], int] = defaultdict(int)
    records = []
    for topic, part, event in sent:
        records.append(RawRecord(topic, part, offsets[(topic, part)], orjson.dumps(event)))
        offsets[(topic, part)] += 1
    bounds = sorted({0, len(records), *(c % (len(records) + 1) for c in cuts)})
    written: dict[str, Any] = {"incr": defaultdict(int), "max": {}, "alerts": {}}

    async def run() -> None:
        store = AsyncStore(s.redis)
        try:
            applier = BatchApplier(s, store, INDEX, decide_config(s))
            for lo, hi in itertools.pairwise(bounds):
                update = await applier.prepare(records[lo:hi])
                if update.empty:
                    continue
                await applier.commit(update)
                for (key, name), n in update.incr.items():
                    written["incr"][(key, name)] += n
                for (key, name), v in update.hmax.items():
                    written["max"][(key, name)] = max(v, written["max"].get((key, name), v))
                decisions = getattr(update, "decisions", None)
                for alert in (decisions.alerts.values() if decisions else ()):
                    written["alerts"][alert.id] = alert.to_dict()
            await RiskRefresher(store.redis, load_risk_config()).refresh([g.id for g in GRIDS])
        finally:
            await store.close()

    aio.run(run())
    return written


def expected_hour(written: dict[str, Any], grid: str, hour: int) -> dict[str, Any]:
    key = keys.grid_hour(grid, hour)
    out: dict[str, Any] = {name: n for (k, name), n in written["incr"].items() if k == key}
    out.update({name: v for (k, name), v in written["max"].items() if k == key})
    return out


def expected_span(written: dict[str, Any], grid: str, hour: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for h in range(hour - 23, hour + 1):
        for name, value in expected_hour(written, grid, h).items():
            out[name] = max(out.get(name, value), value) if name == "loiter_max" \
                else out.get(name, 0) + value
    return out


def cli_json(s: settings_mod.Settings, *argv: str) -> Any:
    out = io.StringIO()
    env = {"GRIDWATCH_REDIS": s.redis, "GRIDWATCH_KAFKA": s.kafka, "GRIDWATCH_HOME": str(s.home)}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with contextlib.redirect_stdout(out):
            assert cli.main(list(argv)) == 0
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return orjson.loads(out.getvalue())


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(sent=events(), cuts=st.lists(st.integers(0, 40), max_size=4))
def test_every_reader_agrees_with_what_the_worker_wrote(
        stack_settings: settings_mod.Settings, sent: list[tuple[str, int, dict[str, Any]]],
        cuts: list[int]) -> None:
    s = stack_settings.with_(grace_s=600.0)
    r = redis.Redis.from_url(s.redis, decode_responses=True)
    try:
        r.flushdb()
        written = apply_all(s, sent, cuts)
        now = queries.now_hour(r)
        assert now is not None
        top = {row["grid_id"]: row for row in cli_json(s, "state", "top", "--json")}
        for grid in GRIDS:
            state = queries.grid_state(r, grid.id)
            assert state["current_hour"] == expected_hour(written, grid.id, now)
            assert state["last_24h"] == expected_span(written, grid.id, now)
            assert state["total"] == {name: n for (k, name), n in written["incr"].items()
                                      if k == keys.grid_total(grid.id)}
            # Whole numbers read back as whole numbers (loiter_max is stored as "11.0").
            for part in ("current_hour", "last_24h", "total"):
                assert all(type(v) is int for v in state[part].values()), state[part]
            # Independent of the writer: every scan and the largest crowd of each hour.
            mine = [e for t, _, e in sent if abs(e["lon"] - grid.polygon.centroid.x) < 0.004]
            scans = sum(v for k, v in state["total"].items() if k.startswith("scan:"))
            assert scans == sum(1 for e in mine if "checkpoint_id" in e)
            crowds = [e["people"] for e in mine if "people" in e and _hour(e) == now]
            assert state["current_hour"].get("loiter_max") == (max(crowds) if crowds else None)
            if not mine:
                continue

            printed = cli_json(s, "state", "grid", grid.id, "--json")
            assert {k: printed[k] for k in ("current_hour", "last_24h", "total")} == \
                {k: state[k] for k in ("current_hour", "last_24h", "total")}
            risk = queries.risk_of(r, grid.id)
            assert risk is not None and printed["risk"] == risk
            window = queries.grid_state(r, grid.id, hour=risk["hour"])["last_24h"]
            raw = {k: v["raw"] for k, v in risk["contributions"].items()}
            reds = sum(v for k, v in window.items() if k.split(":")[-3:-1] == ["scan", "red"])
            assert raw["red_scans"] == reds
            assert raw["largest_crowd"] == window.get("loiter_max", 0)
            assert raw["loiter_alerts"] == window.get("loiter_alerts", 0)
            assert top[grid.id]["score"] == risk["score"]
            # The loiter alerts' float details (dwell) read back as written.
            stored = {a["id"]: a for a in queries.alerts(r, grid=grid.id)}
            for alert_id, record in written["alerts"].items():
                if record["grid_id"] == grid.id:
                    assert stored[alert_id] == record
    finally:
        r.close()


def _hour(event: dict[str, Any]) -> int:
    from gridwatch.schemas.events import parse_time

    return keys.hour_of(parse_time(event["ts"]))


def test_state_grid_json_on_a_grid_with_loiter_reports(
        stack_settings: settings_mod.Settings) -> None:
    """Regression: the hour's loiter_max is stored as "11.0"; the CLI read it with int()."""
    r = redis.Redis.from_url(stack_settings.redis, decode_responses=True)
    r.flushdb()
    lon = 121.405
    sent = [(CROWD_LOITER, 0, {"event_id": f"l{n}", "ts": format_time(BASE + 600 * n),
                               "camera_id": "cam-1", "lon": lon, "lat": 31.205,
                               "zone": "pharmacy:001", "people": people, "dwell_s": 420.5})
            for n, people in enumerate([3, 11, 7])]
    apply_all(stack_settings, sent, [])
    assert r.hget(keys.grid_hour("T-1", keys.hour_of(BASE)), "loiter_max") == "11.0"
    env = {**os.environ, "GRIDWATCH_REDIS": stack_settings.redis,
           "GRIDWATCH_KAFKA": stack_settings.kafka, "GRIDWATCH_HOME": str(stack_settings.home)}
    done = subprocess.run([sys.executable, "-m", "gridwatch.cli", "state", "grid", "T-1", "--json"],
                          capture_output=True, text=True, env=env, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    state = orjson.loads(done.stdout)
    assert state["current_hour"]["loiter_max"] == 11
    assert state["last_24h"]["loiter_max"] == 11  # the largest, not a sum over hours
    assert state["current_hour"]["loiter"] == 3 and state["current_hour"]["loiter_people"] == 21
    r.close()
