"""ws/frames.py and ws/form.py: every client frame checked by type; a form body's size."""

from __future__ import annotations

import orjson
import pytest
from gridwatch.ws.form import MAX_BODY, body_size
from gridwatch.ws.frames import MAX_FRAME, FrameError, error_frame, parse_frame


@pytest.mark.parametrize(("raw", "reason"), [
    (b"binary", "binary_frame"),
    ("x" * (MAX_FRAME + 1), "frame_too_large"),
    ("{", "not_json"),
    ("", "not_json"),
    ("[]", "not_an_object"),
    ("null", "not_an_object"),
    ('"hello"', "not_an_object"),
    ("{}", "unknown_op"),
    ('{"op": ["hello"]}', "unknown_op"),
    ('{"op": "HELLO"}', "unknown_op"),
    ('{"op": "ping", "req": true}', "bad_req"),
    ('{"op": "ping", "req": 1e300}', "bad_req"),
    ('{"op": "ping", "req": "' + "r" * 101 + '"}', "bad_req"),
    ('{"op": "ping", "extra": 1}', "unknown_field"),
    ('{"op": "hello", "last": [1]}', "bad_last"),
    ('{"op": "hello", "last": "0-0"}', "bad_last"),
    ('{"op": "hello", "last": {"alerts": 5}}', "bad_last"),
    ('{"op": "hello", "last": {"alerts": "abc"}}', "bad_last"),
    ('{"op": "hello", "last": {"alerts": "1-2-3"}}', "bad_last"),
    ('{"op": "hello", "last": {"alerts": "-1-0"}}', "bad_last"),
    ('{"op": "hello", "last": {"secrets": "1-0"}}', "bad_last"),
    ('{"op": "cmd", "target": ["alert"], "id": "a", "action": "ack"}', "bad_target"),
    ('{"op": "cmd", "target": "alert", "id": {"$gt": ""}, "action": "ack"}', "bad_id"),
    ('{"op": "cmd", "target": "alert", "id": "a", "action": "ack", "note": 3}', "bad_note"),
    ('{"op": "cmd", "target": "alert", "id": "a", "action": "ack", "command_id": 1}',
     "bad_command_id"),
])
def test_bad_frames_are_refused_with_a_reason(raw: str | bytes, reason: str) -> None:
    with pytest.raises(FrameError) as refused:
        parse_frame(raw)
    assert refused.value.reason == reason


def test_good_frames_pass_checked() -> None:
    assert parse_frame('{"op":"hello","last":{"alerts":"12-0","grids":"7"}}') == {
        "op": "hello", "last": {"alerts": "12-0", "grids": "7"}, "req": None}
    assert parse_frame('{"op":"hello"}')["last"] == {}
    assert parse_frame('{"op":"ping","req":7}') == {"op": "ping", "req": 7}
    cmd = {"op": "cmd", "req": "r1", "target": "task", "id": "t1", "action": "accept",
           "note": "", "command_id": None}
    assert parse_frame(orjson.dumps(cmd).decode()) == cmd


def test_the_error_frame_keeps_a_valid_request_id() -> None:
    with pytest.raises(FrameError) as refused:
        parse_frame('{"op": "cmd", "req": "r9", "target": "alert", "id": 1, "action": "ack"}')
    assert refused.value.req == "r9"
    assert orjson.loads(error_frame(refused.value.reason, refused.value.req)) == {
        "op": "error", "reason": "bad_id", "req": "r9"}


def test_a_form_body_only_on_post_and_small() -> None:
    assert body_size("GET", []) == 0
    assert body_size("GET", [b"0"]) == 0
    assert body_size("POST", [b" 42\r\n"]) == 42
    assert body_size("POST", [b"42", b"42"]) == 42
    for method, lengths in (("GET", [b"5"]), ("POST", [b"1", b"2"]), ("POST", [b"-1"]),
                            ("POST", [b"0x10"]), ("POST", [str(MAX_BODY + 1).encode()])):
        with pytest.raises(ValueError):
            body_size(method, lengths)
