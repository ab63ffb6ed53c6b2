"""gridwatch.keys: the channel envelope, built and read in one place."""

from __future__ import annotations

import orjson

from gridwatch import keys


def test_a_channel_message_wraps_a_record_and_gives_it_back() -> None:
    record = orjson.dumps({"id": "al-1", "title": 'a "quoted" }{ title'})
    message = keys.channel_message("alert", record)
    assert orjson.loads(message) == {"type": "alert", "alert": orjson.loads(record)}
    assert keys.channel_record("alert", message) == record
    assert keys.channel_record("task", message) is None
