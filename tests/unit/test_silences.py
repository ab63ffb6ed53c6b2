"""Silences and shelving: what a silence matches, holding and reopening alerts, the
shelf limit, and no escalation while an alert is held (pure, no servers)."""

from __future__ import annotations

from dataclasses import replace

import orjson
import pytest
from gridwatch.agents import escalation
from gridwatch.agents import lifecycle as lc
from gridwatch.agents import silences as si
from gridwatch.agents.commands import decode_command, shelf_time
from gridwatch.agents.decide import hold_if_silenced
from gridwatch.agents.escalation import EscalationConfig
from gridwatch.schemas import commands as contract
from gridwatch.schemas.errors import TransitionRefused
from gridwatch.schemas.events import parse_time
from gridwatch.schemas.records import Alert
from gridwatch.ws.auth import User
from gridwatch.ws.commands import CommandError, check, command_record, parse

T0 = parse_time("2026-11-22T08:00:00+08:00")
OFFICER = {"actor": "wang", "role": "duty_officer"}
CONFIG = EscalationConfig()


def alert(*, id: str = "al-1", grid: str | None = "G1", kind: str = "loiter",
          ts: float = T0 + 60, source: str = "cam-7") -> Alert:
    return lc.raise_alert(id=id, kind=kind, severity="high", grid_id=grid, ts=ts,
                          title="crowd", title_zh="聚集", source_ids={"camera_id": source})


def silence(match: str = "grid", value: str = "G1", *, sid: str = "si-1",
            for_s: float = 2 * 3600, ts: float = T0) -> si.Silence:
    return si.new_silence(sid, match=match, value=value, for_s=for_s, reason="drill",
                          ts=ts, grids={"G1", "G2"}, kinds={"loiter", "red_code"}, **OFFICER)


@pytest.mark.parametrize(("text", "seconds"), [("30m", 1800), ("2h", 7200), ("1.5h", 5400),
                                               ("45", 2700), ("90s", 90), ("1d", 86400)])
def test_durations(text: str, seconds: float) -> None:
    assert si.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "2x", "-1h", "0m", "25h", "2 hours", "nan"])
def test_bad_durations_say_how_to_write_one(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        si.parse_duration(text)


@pytest.mark.parametrize(("kw", "reason"), [
    ({"match": "grid", "value": "G9"}, "unknown grid 'G9'"),
    ({"match": "kind", "value": "fire"}, "unknown alert kind 'fire'"),
    ({"match": "camera", "value": "cam-7"}, "match one of grid, source, kind"),
    ({"match": "grid", "value": " "}, "name the grid"),
    ({"match": "grid", "value": "G1", "reason": "  "}, "needs a reason"),
    ({"match": "grid", "value": "G1", "for_s": 24 * 3600 + 1}, "at most 24 h"),
    ({"match": "grid", "value": "G1", "for_s": float("nan")}, "at most 24 h"),
    ({"match": "grid", "value": "G1", "for_s": 0}, "more than 0"),
])
def test_a_bad_silence_is_refused_with_a_reason(kw: dict, reason: str) -> None:
    args = {"for_s": 3600.0, "reason": "drill", **kw}
    with pytest.raises(TransitionRefused, match=reason):
        si.new_silence("si-1", ts=T0, grids={"G1"}, kinds={"loiter"}, **OFFICER, **args)


def test_a_silence_matches_its_grid_source_or_kind_until_it_ends() -> None:
    assert si.matches(silence("grid", "G1"), alert())
    assert not si.matches(silence("grid", "G2"), alert())
    assert si.matches(silence("source", "cam-7"), alert())
    assert not si.matches(silence("source", "cam-8"), alert())
    assert si.matches(silence("kind", "loiter"), alert())
    assert not si.matches(silence("kind", "red_code"), alert())
    assert not si.matches(silence("grid", "G1"), alert(ts=T0 + 2 * 3600))  # after its end
    ended = si.end(silence(), ts=T0 + 10, **OFFICER)
    assert not si.matches(ended, alert())


def test_an_alert_raised_under_a_silence_is_held_and_audited() -> None:
    held: dict[str, list[str]] = {}
    s = silence()
    out = hold_if_silenced(alert(), {s.id: s}, held)
    assert out.status == "silenced" and out.silence_id == s.id and out.held_until == s.ends_at
    assert held == {s.id: ["al-1"]}
    entry = out.audit[-1]
    assert (entry.action, entry.from_state, entry.to_state) == ("silence", "new", "silenced")
    assert entry.actor == "wang" and "drill" in entry.note and s.id in entry.note
    assert escalation.next_deadline(out, None, CONFIG) is None  # not escalated
    other = alert(grid="G2")
    assert hold_if_silenced(other, {s.id: s}, held) is other  # another grid: as raised


def test_officers_cannot_ack_or_dispatch_a_silenced_alert() -> None:
    out = si.hold(alert(), silence())
    with pytest.raises(TransitionRefused, match="it is silenced"):
        lc.ack(out, ts=T0 + 70, **OFFICER)
    with pytest.raises(TransitionRefused):
        lc.dispatch(out, workers=["li"], ts=T0 + 70, **OFFICER)


def test_ending_a_silence_reopens_what_it_held_and_escalation_counts_from_then() -> None:
    s = silence()
    held = si.hold(alert(), s)
    ended = si.end(s, ts=T0 + 3600, **OFFICER)
    assert ended.audit[-1].action == "end_silence" and ended.audit[-1].actor == "wang"
    out = si.release(ended, [held], {}, ts=T0 + 3600, **OFFICER)
    (back,) = out.reopened
    assert back.status == "new" and back.silence_id is None and back.held_until is None
    assert back.audit[-1].action == "reopen" and back.audit[-1].ts == T0 + 3600
    deadline = escalation.next_deadline(back, None, CONFIG)
    assert deadline is not None and deadline.kind == "ack"
    assert deadline.due_at == T0 + 3600 + CONFIG.ack_s["high"]  # from the reopening
    with pytest.raises(TransitionRefused, match="ended already by wang"):
        si.end(ended, ts=T0 + 3700, **OFFICER)


def test_an_alert_another_silence_still_matches_moves_to_it() -> None:
    grid, kind = silence("grid", "G1", sid="si-a"), silence("kind", "loiter", sid="si-b",
                                                             for_s=4 * 3600)
    held = si.hold(alert(), grid)
    gone = si.hold(alert(id="al-2"), grid)
    gone = lc.dismiss(gone, ts=T0 + 100, note="false alarm", **OFFICER)[0]
    ended = si.end(grid, actor="system", role="system", ts=grid.ends_at)
    out = si.release(ended, [held, gone], {kind.id: kind, grid.id: grid}, actor="system",
                     role="system", ts=grid.ends_at)
    assert out.reopened == [] and [a.id for a in out.moved["si-b"]] == ["al-1"]
    assert out.moved["si-b"][0].held_until == kind.ends_at
    alone = si.release(ended, [held], {}, actor="system", role="system", ts=grid.ends_at)
    assert alone.reopened[0].audit[-1].actor == "system"


def test_shelving_is_bounded_audited_and_stops_escalation() -> None:
    a = alert()
    with pytest.raises(TransitionRefused, match="at most 8 h"):
        lc.shelve(a, ts=T0 + 70, note="nuisance", for_s=8 * 3600 + 1, **OFFICER)
    with pytest.raises(TransitionRefused, match="needs a note"):
        lc.shelve(a, ts=T0 + 70, note=" ", for_s=3600, **OFFICER)
    with pytest.raises(TransitionRefused, match="only a duty officer or admin"):
        lc.shelve(a, ts=T0 + 70, note="x", actor="li", role="grid_worker")
    shelved = lc.shelve(a, ts=T0 + 70, note="nuisance", for_s=3600, **OFFICER)
    assert shelved.status == "shelved" and shelved.held_until == T0 + 70 + 3600
    assert shelved.audit[-1].actor == "wang" and "nuisance" in shelved.audit[-1].note
    deadline = escalation.next_deadline(shelved, None, CONFIG)
    assert deadline is not None and deadline.kind == "shelf"
    assert deadline.due_at == T0 + 3670
    assert escalation.fire(deadline, shelved, None, T0 + 9999, CONFIG) == (None, None)
    assert escalation.Deadline.from_dict(deadline.to_dict()) == deadline
    back = lc.unshelve(shelved, ts=deadline.due_at)
    assert back.status == "new" and back.held_until is None and back.audit[-1].role == "system"
    again = escalation.next_deadline(back, None, CONFIG)
    assert again is not None and again.due_at == T0 + 3670 + CONFIG.ack_s["high"]
    acked = lc.ack(a, ts=T0 + 70, **OFFICER)
    with pytest.raises(TransitionRefused, match="cannot shelve"):
        lc.shelve(acked, ts=T0 + 80, note="x", **OFFICER)


def test_an_officer_unshelves_early_audited_with_who_and_when() -> None:
    shelved = lc.shelve(alert(), ts=T0 + 70, note="nuisance", for_s=4 * 3600, **OFFICER)
    back = lc.apply("alert", "unshelve", shelved, None, actor="zhao", role="duty_officer",
                    ts=T0 + 600, note="")[0]
    assert (back.status, back.held_until, back.ts_updated) == ("new", None, T0 + 600)
    entry = back.audit[-1]
    assert (entry.action, entry.from_state, entry.to_state) == ("unshelve", "shelved", "new")
    assert (entry.actor, entry.role, entry.ts) == ("zhao", "duty_officer", T0 + 600)
    # No note given: the trail does not claim the shelf time ran out.
    assert entry.note == "taken off the shelf early"
    assert lc.unshelve(shelved, ts=T0 + 600, note=" ", actor="zhao",
                       role="admin").audit[-1].note == "taken off the shelf early"
    assert lc.unshelve(shelved, ts=T0 + 600, note="camera fixed", actor="zhao",
                       role="admin").audit[-1].note == "camera fixed"
    # Watched again from now: its ack chain counts from the unshelving, not the shelf end.
    deadline = escalation.next_deadline(back, None, CONFIG)
    assert deadline is not None and deadline.kind == "ack"
    assert deadline.due_at == T0 + 600 + CONFIG.ack_s["high"]


@pytest.mark.parametrize("role", ["grid_worker", "station_manager"])
def test_only_an_officer_or_admin_unshelves(role: str) -> None:
    shelved = lc.shelve(alert(), ts=T0 + 70, note="nuisance", for_s=3600, **OFFICER)
    with pytest.raises(TransitionRefused, match="only a duty officer or admin"):
        lc.unshelve(shelved, ts=T0 + 100, actor="li", role=role)


def test_unshelve_is_refused_on_an_alert_not_shelved() -> None:
    with pytest.raises(TransitionRefused, match="cannot unshelve"):
        lc.unshelve(alert(), ts=T0 + 100, **OFFICER)
    silenced = hold_if_silenced(alert(), {"si-1": silence()}, {})
    assert silenced.status == "silenced"
    with pytest.raises(TransitionRefused, match="cannot unshelve"):
        lc.unshelve(silenced, ts=T0 + 100, **OFFICER)
    shelved = lc.shelve(alert(), ts=T0 + 70, note="x", for_s=60, **OFFICER)
    done = lc.dismiss(shelved, None, ts=T0 + 80, note="false alarm", **OFFICER)[0]
    with pytest.raises(TransitionRefused, match="unshelve"):
        lc.unshelve(done, ts=T0 + 100, **OFFICER)


def test_an_unshelve_command_decodes_and_the_gateway_checks_it() -> None:
    record = {"v": 1, "command_id": "c-1", "target": "alert", "id": "al-1",
              "action": "unshelve", "actor": "wang", "role": "duty_officer", "grids": [],
              "ts": "2026-11-22T08:10:00+08:00"}
    cmd = decode_command(orjson.dumps(record))
    assert (cmd.target, cmd.action, cmd.note, shelf_time(cmd)) == ("alert", "unshelve", "", {})
    # No reason needed (ending a hold early), unlike shelving.
    assert not contract.needs_note("alert", "unshelve") and contract.needs_note("alert", "shelve")
    parsed = parse({"target": "alert", "id": "al-1", "action": "unshelve"})
    assert (parsed["action"], parsed["note"]) == ("unshelve", "")
    visible = {"id": "al-1", "grid_id": "G1"}
    check(user("duty_officer"), parsed, visible)
    out = command_record(user("duty_officer"), parsed, now=T0)
    assert (out["actor"], out["role"], out["action"]) == ("u1", "duty_officer", "unshelve")
    for role in ("grid_worker", "station_manager"):
        with pytest.raises(CommandError, match="forbidden"):
            check(user(role), parsed, visible)
    with pytest.raises(CommandError, match="not_found"):
        check(user("duty_officer"), parsed, None)
    for bad, reason in (({"id": ""}, "bad_id"), ({"note": 5}, "bad_note"),
                        ({"params": {"for_s": float("inf")}}, "bad_params"),
                        ({"action": "unshelf"}, "bad_action")):
        with pytest.raises(CommandError, match=reason):
            parse({"target": "alert", "id": "al-1", "action": "unshelve", **bad})
    for bad_field, value in (("action", "unshelf"), ("role", "system")):
        with pytest.raises(Exception, match=bad_field):
            decode_command(orjson.dumps({**record, bad_field: value}))


def test_a_stale_ack_deadline_fires_nothing_on_a_shelved_alert() -> None:
    a = alert()
    ack_deadline = escalation.next_deadline(a, None, CONFIG)
    assert ack_deadline is not None
    shelved = lc.shelve(a, ts=T0 + 70, note="nuisance", for_s=3600, **OFFICER)
    assert escalation.fire(ack_deadline, shelved, None, T0 + 9999, CONFIG) == (None, None)


def test_held_alerts_round_trip_and_old_records_decode() -> None:
    shelved = lc.shelve(alert(), ts=T0 + 70, note="nuisance", for_s=60, **OFFICER)
    assert Alert.from_dict(orjson.loads(orjson.dumps(shelved.to_dict()))) == shelved
    old = alert().to_dict()
    del old["held_until"], old["silence_id"]
    assert Alert.from_dict(old) == alert()
    s = silence()
    assert si.Silence.from_dict(orjson.loads(orjson.dumps(s.to_dict()))) == s


# ---- the command contract for silences and shelving ------------------------------------

def user(role: str) -> User:
    return User("u1", role, grids=("G1",) if role == "grid_worker" else (),
                stations=("SHS",) if role == "station_manager" else ())


@pytest.mark.parametrize("role", contract.PERSON_ROLES)
@pytest.mark.parametrize(("target", "action"), [("silence", "silence"),
                                                ("silence", "end_silence"),
                                                ("alert", "shelve"), ("alert", "unshelve")])
def test_only_officers_may_silence_or_shelve(role: str, target: str, action: str) -> None:
    cmd = parse({"target": target, "id": "x-1", "action": action, "note": "why",
                 "params": {"grid": "G1", "for_s": 3600}})
    visible = {"id": "x-1", "grid_id": "G1"}
    if role in ("duty_officer", "admin"):
        check(user(role), cmd, visible)
    else:
        with pytest.raises(CommandError, match="forbidden"):
            check(user(role), cmd, visible)


def test_the_gateway_names_a_new_silence_and_passes_its_params_to_the_worker() -> None:
    cmd = parse({"target": "silence", "id": "anything", "action": "silence", "note": "drill",
                 "command_id": "8c1f6a0e-6f0a-4c53-9a51-0c6a2f7d1e11",
                 "params": {"grid": "G1", "for_s": 3600}})
    assert cmd["id"] == "si-8c1f6a0e6f0a" == contract.silence_id_of(cmd["command_id"])
    record = command_record(user("duty_officer"), cmd, now=T0)
    decoded = decode_command(orjson.dumps(record))
    assert decoded.params == {"grid": "G1", "for_s": 3600}
    with pytest.raises(CommandError, match="note_required"):
        parse({"target": "silence", "id": "x", "action": "silence", "note": " "})
    for bad in ([1], {"a": {"b": 1}}, {"for_s": float("inf")}, {str(i): i for i in range(9)}):
        with pytest.raises(CommandError, match="bad_params"):
            parse({"target": "silence", "id": "x", "action": "silence", "note": "n",
                   "params": bad})


def test_a_shelve_command_carries_its_shelf_time() -> None:
    record = command_record(user("duty_officer"), parse(
        {"target": "alert", "id": "al-1", "action": "shelve", "note": "nuisance",
         "params": {"for_s": 600}}), now=T0)
    cmd = decode_command(orjson.dumps(record))
    assert shelf_time(cmd) == {"for_s": 600.0}
    bad = replace(cmd, params={"for_s": "ten"})
    with pytest.raises(TransitionRefused, match="number of seconds"):
        shelf_time(bad)
    out, _ = lc.apply("alert", "shelve", alert(), None, note="n", ts=T0 + 70,
                      **shelf_time(cmd), **OFFICER)
    assert out.held_until == T0 + 70 + 600
