"""The checks of a trace lookup and the parsing of traces and their audit (no servers)."""

from __future__ import annotations

import pytest

from gridwatch import trace_access
from gridwatch.trace_access import TraceRefused, check_actor, check_person, check_reason


@pytest.mark.parametrize("ref", ["9f3a0c5e21b7d4e8a6c1", "p-1", "a" * 200, "ab+/cd==", "ns:x_y.z"])
def test_person_references_as_upstream_sends_them_pass(ref: str) -> None:
    assert check_person(ref) == ref


@pytest.mark.parametrize(("ref", "code"), [
    (None, "person_required"), ("", "person_required"), (123, "person_required"),
    ("a" * 201, "person_too_long"), ("p\x00", "person_bad_chars"), ("p\n1", "person_bad_chars"),
    ("{core}", "person_bad_chars"), ("p*", "person_bad_chars"), ("p?", "person_bad_chars"),
    ("p[1]", "person_bad_chars"), ("p 1", "person_bad_chars"), ("\u202e", "person_bad_chars"),
    ("张三", "person_bad_chars"),
])
def test_hostile_person_references_are_refused_with_a_code(ref: object, code: str) -> None:
    with pytest.raises(TraceRefused) as exc:
        check_person(ref)
    assert exc.value.code == code


def test_reason_is_required_bounded_and_visible() -> None:
    assert check_reason(" 案件 118：\n 红码密接 ") == "案件 118： 红码密接"
    assert check_reason("x" * trace_access.REASON_MAX) == "x" * trace_access.REASON_MAX
    for value, code in [(None, "reason_required"), ("", "reason_required"), ("  \n", "reason_required"),
                        (5, "reason_required"), ("x" * (trace_access.REASON_MAX + 1), "reason_too_long"),
                        ("ok\u202egnp", "reason_bad_chars"), ("a\x07b", "reason_bad_chars")]:
        with pytest.raises(TraceRefused) as exc:
            check_reason(value)
        assert exc.value.code == code, value


def test_actor_names_are_checked() -> None:
    assert check_actor("wang") == "wang"
    for bad in ("", "a b", "x" * 65, "a\x00"):
        with pytest.raises(TraceRefused):
            check_actor(bad)


def test_trace_members_become_rows_and_odd_ones_stay_visible() -> None:
    rows = trace_access.parse_rows([(b"e1|CP1|G0001|in|green", 1_700_000_000.0),
                                    ("e2|CP2||out|red", 1_700_000_060.0),
                                    ("odd-member", 1_700_000_120.0)])
    assert rows[0] == {"ts": "2023-11-14T22:13:20+00:00", "checkpoint_id": "CP1", "grid_id": "G0001",
                       "direction": "in", "code_color": "green", "event_id": "e1"}
    assert rows[1]["grid_id"] is None and rows[1]["code_color"] == "red"
    assert rows[2]["checkpoint_id"] == "odd-member" and rows[2]["event_id"] == ""


def test_audit_entries_become_rows() -> None:
    fields = trace_access.audit_fields(actor="wang", role="duty_officer", person="p1",
                                       reason="case 1", rows=3, via="gateway")
    rows = trace_access.parse_audit([(b"1700000000000-0", {k.encode(): v.encode() for k, v in fields.items()})])
    assert rows == [{"id": "1700000000000-0", "at": "2023-11-14T22:13:20+00:00", "actor": "wang",
                     "role": "duty_officer", "person": "p1", "reason": "case 1", "rows": 3,
                     "via": "gateway"}]
