"""ws/channels.py, ws/policy.py and ws/commands.py: visibility, coalescing, resume bookkeeping, command rules."""

from __future__ import annotations

import pytest
from gridwatch.ws.auth import User
from gridwatch.ws.channels import (
    Outbox,
    Overflow,
    frame,
    needs_snapshot,
    newest,
    parse_id,
)
from gridwatch.ws.commands import CommandError, check, command_record, parse
from gridwatch.ws.policy import may_see, subscriptions, tags_of

OFFICER = User("o1", "duty_officer")
ADMIN = User("a1", "admin")
WORKER = User("w1", "grid_worker", grids=("G1",))
OTHER = User("w2", "grid_worker", grids=("G2",))
MANAGER = User("m1", "station_manager", stations=("SHS",))


def alert(grid: str | None, station: str | None = None) -> dict:
    return {"type": "alert", "alert": {"id": "a", "grid_id": grid, "station_id": station}}


def task(grid: str, workers: tuple[str, ...] = ()) -> dict:
    return {"type": "task", "task": {"id": "t", "grid_id": grid, "workers": list(workers),
                                     "assignee": None}}


def test_officers_and_admins_see_everything() -> None:
    for user in (OFFICER, ADMIN):
        assert may_see(user, "alerts", alert("G1"))
        assert may_see(user, "tasks", task("G2"))
        assert may_see(user, "grids", {"type": "grid", "grid_id": "G9"})
        assert may_see(user, "forecasts", {"type": "forecast", "forecast": {"station_id": "X"}})


def test_grid_worker_sees_only_own_grids() -> None:
    assert may_see(WORKER, "alerts", alert("G1"))
    assert not may_see(WORKER, "alerts", alert("G2"))
    assert not may_see(WORKER, "alerts", alert(None, "SHS"))
    assert may_see(WORKER, "tasks", task("G1"))
    assert not may_see(OTHER, "tasks", task("G1"))
    assert may_see(OTHER, "tasks", task("G1", workers=("w2",)))  # offered to them by name
    assert not may_see(WORKER, "forecasts", {"forecast": {"station_id": "SHS"}})
    assert may_see(WORKER, "grids", {"grid_id": "G1"})
    assert not may_see(WORKER, "grids", {"grid_id": "G2"})


def test_station_manager_sees_own_station_only() -> None:
    assert may_see(MANAGER, "forecasts", {"forecast": {"station_id": "SHS"}})
    assert not may_see(MANAGER, "forecasts", {"forecast": {"station_id": "HZ"}})
    assert may_see(MANAGER, "alerts", alert(None, "SHS"))
    assert not may_see(MANAGER, "alerts", alert("G1"))
    assert not may_see(MANAGER, "tasks", task("G1"))
    assert not may_see(MANAGER, "grids", {"grid_id": "G1"})


def test_tags_and_subscriptions_meet() -> None:
    assert tags_of("alerts", alert("G1", "SHS")) == {"all", "grid:G1", "station:SHS"}
    assert subscriptions(WORKER) == {"grid:G1", "user:w1"}
    assert subscriptions(OFFICER) == {"all"}


def test_frame_embeds_the_worker_bytes_untouched() -> None:
    assert frame("alerts", "1-0", b'{"x":1}') == b'{"ch":"alerts","id":"1-0","m":{"x":1}}'


def test_stream_ids_compare_numerically() -> None:
    assert parse_id("10-0") > parse_id("9-5")
    assert newest(["9-5", "10-0", "10-1", "2-0"]) == "10-1"


def test_resume_or_snapshot() -> None:
    assert needs_snapshot(None, "5-0")
    assert needs_snapshot("bad", "5-0")
    assert needs_snapshot("4-9", "5-0")  # trimmed away: entries after it may be lost
    assert not needs_snapshot("5-0", "5-0")
    assert not needs_snapshot("7-0", "5-0")
    assert not needs_snapshot("7-0", None)  # empty stream: nothing missed


def test_alerts_go_out_at_once_in_order() -> None:
    box = Outbox()
    for i in range(3):
        box.push("alerts", f"{i + 1}-0", f"a{i}".encode())
    assert box.due(0.0) == 0.0
    assert box.take(0.0) == [b"a0", b"a1", b"a2"]
    assert box.due(0.0) is None


def test_grid_deltas_coalesce_latest_wins_at_most_every_interval() -> None:
    box = Outbox(grid_interval_s=0.1)
    box.push("grids", "1-0", b"g1-old", key="G1")
    box.push("grids", "2-0", b"g2", key="G2")
    box.push("grids", "3-0", b"g1-new", key="G1")
    assert box.take(10.0) == [b"g2", b"g1-new"]  # ordered by stream id
    box.push("grids", "4-0", b"g1-newer", key="G1")
    assert box.take(10.05) == []  # within the interval: held back
    assert box.due(10.05) == pytest.approx(0.05)
    assert box.take(10.11) == [b"g1-newer"]


def test_ten_updates_a_second_at_most() -> None:
    box = Outbox(grid_interval_s=0.1)
    flushes = 0
    for step in range(1000):  # 1,000 deltas over one second
        now = step / 1000
        box.push("grids", f"{step + 1}-0", b"x", key=f"G{step % 7}")
        if box.take(now):
            flushes += 1
    assert flushes <= 11


def test_cursor_drops_duplicates_and_keeps_order_across_resume() -> None:
    box = Outbox()
    box.seek("alerts", "5-0")  # the client said it saw up to 5-0
    replay = [("6-0", b"6"), ("7-0", b"7")]
    live = [("7-0", b"7"), ("8-0", b"8")]  # the live reader overlaps the replay
    sent = [d for sid, d in replay + live if box.push("alerts", sid, d)]
    assert sent == [b"6", b"7", b"8"]
    assert box.take(0.0) == [b"6", b"7", b"8"]
    assert not box.push("alerts", "4-0", b"4")


def test_bounded_queue_overflows() -> None:
    box = Outbox(limit=3)
    for i in range(3):
        box.push("tasks", f"{i + 1}-0", b"t")
    with pytest.raises(Overflow):
        box.push("tasks", "9-0", b"t")
    with pytest.raises(Overflow):
        box.push_raw(b"x")


def test_commands_follow_roles_and_grids() -> None:
    ack = parse({"target": "alert", "id": "a1", "action": "ack"})
    check(OFFICER, ack, {"id": "a1"})
    for user in (WORKER, MANAGER):
        with pytest.raises(CommandError, match="forbidden"):
            check(user, ack, {"id": "a1"})
    accept = parse({"target": "task", "id": "t1", "action": "accept"})
    check(WORKER, accept, {"grid_id": "G1", "workers": ["w1"]})
    # Another grid's task and an unknown id get the same answer: no existence oracle.
    with pytest.raises(CommandError) as theirs:
        check(OTHER, accept, {"grid_id": "G1", "workers": ["w1"]})
    with pytest.raises(CommandError) as unknown:
        check(OTHER, accept, None)
    assert theirs.value.reason == unknown.value.reason == "not_found"
    with pytest.raises(CommandError, match="not_found"):
        check(WORKER, accept, None)
    dispatch = parse({"target": "alert", "id": "a1", "action": "dispatch"})
    with pytest.raises(CommandError, match="forbidden"):
        check(MANAGER, dispatch, {"id": "a1"})


def test_command_parsing() -> None:
    with pytest.raises(CommandError, match="bad_action"):
        parse({"target": "alert", "id": "a", "action": "accept"})
    with pytest.raises(CommandError, match="note_required"):
        parse({"target": "task", "id": "t", "action": "reject", "note": "  "})
    with pytest.raises(CommandError, match="bad_command_id"):
        parse({"target": "task", "id": "t", "action": "done", "command_id": "x; drop"})
    cmd = parse({"target": "task", "id": "t", "action": "done", "note": " fixed "})
    rec = command_record(WORKER, cmd, now=0.0)
    assert rec["note"] == "fixed" and rec["actor"] == "w1" and rec["grids"] == ["G1"]
    assert rec["ts"] == "1970-01-01T00:00:00.000+00:00" and rec["v"] == 1
