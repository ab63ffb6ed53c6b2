"""What the worker retries and what it isolates, and the settings that bound input.

Only a service being away or busy is transient (retried, never dead-lettered); any
other exception while a batch is handled is a record the code cannot handle, isolated
and dead-lettered. Telling them apart by type (not by the module an exception comes
from) keeps a Redis script error from being retried for ever.
"""

from __future__ import annotations

import asyncio

import aiokafka.errors as aiokafka_errors
import kafka.errors as kafka_errors
import pytest
import redis.exceptions as redis_errors
from gridwatch.agents.ingest import _merge, _transient, internal_reason
from gridwatch.schemas.errors import ConfigError

from gridwatch import settings as settings_mod
from gridwatch.batch import BatchUpdate, DeadLetter, RawRecord


@pytest.mark.parametrize("exc", [
    redis_errors.ConnectionError("refused"), redis_errors.TimeoutError("slow"),
    redis_errors.BusyLoadingError("LOADING"), redis_errors.ReadOnlyError("READONLY"),
    redis_errors.ClusterDownError("CLUSTERDOWN"), redis_errors.TryAgainError("TRYAGAIN"),
    aiokafka_errors.KafkaConnectionError(), aiokafka_errors.NotLeaderForPartitionError(),
    aiokafka_errors.RequestTimedOutError(), aiokafka_errors.KafkaTimeoutError(),
    kafka_errors.KafkaConnectionError(), kafka_errors.KafkaTimeoutError(), OSError(104, "reset"),
    ConnectionResetError(),
    asyncio.TimeoutError(), TimeoutError(),
], ids=lambda e: type(e).__name__)
def test_a_service_away_or_busy_is_transient(exc: BaseException) -> None:
    assert _transient(exc)


@pytest.mark.parametrize("exc", [
    redis_errors.ResponseError("ERR user_script:12: attempt to compare nil"),
    redis_errors.DataError("bad value"), aiokafka_errors.MessageSizeTooLargeError(),
    aiokafka_errors.UnsupportedVersionError(), ValueError("year 0 is out of range"),
    OverflowError("timestamp out of range"), KeyError("x"), TypeError("nope"),
], ids=lambda e: type(e).__name__)
def test_a_fault_is_not_transient(exc: BaseException) -> None:
    assert not _transient(exc)


def test_the_reason_names_the_exception_type_and_message() -> None:
    assert internal_reason(ValueError("year 0 is out of range")) == \
        "internal error: ValueError: year 0 is out of range"
    assert len(internal_reason(ValueError("x" * 10_000))) < 400


def test_the_parts_of_a_bisected_batch_are_summed_for_the_observer() -> None:
    a, b, c = BatchUpdate(), BatchUpdate(), BatchUpdate()
    rec = RawRecord("t", 0, 5, b"{}")
    a.offsets["t:0"] = (-1, 4)
    a.late = 2
    b.offsets["t:0"] = (4, 5)
    b.deadletters.append(DeadLetter("t", 0, 5, "internal error: E: m", None, b"{}"))
    c.offsets["t:1"] = (9, 12)
    merged = _merge([a, b, c])
    assert merged.offsets == {"t:0": (-1, 5), "t:1": (9, 12)}
    assert merged.late == 2 and [d.offset for d in merged.deadletters] == [rec.offset]
    assert merged.decisions.new_alert_ids == []  # type: ignore[attr-defined]


def test_the_input_bounds_are_settings() -> None:
    s = settings_mod.load({"GRIDWATCH_TIME_MIN_YEAR": "2010", "GRIDWATCH_TIME_MAX_YEAR": "2050",
                           "GRIDWATCH_MAX_FUTURE_S": "86400"})
    assert (s.time_min_year, s.time_max_year, s.max_future_s) == (2010, 2050, 86400.0)
    base = settings_mod.load({})
    assert (base.time_min_year, base.time_max_year, base.max_future_s) == (2000, 2100, 300.0)
    for env in ({"GRIDWATCH_TIME_MIN_YEAR": "2101"}, {"GRIDWATCH_TIME_MAX_YEAR": "10000"},
                {"GRIDWATCH_MAX_FUTURE_S": "-1"}, {"GRIDWATCH_TIME_MIN_YEAR": "soon"}):
        with pytest.raises(ConfigError):
            settings_mod.load(env)
