"""Feed liveness scenarios: learned and configured intervals, silence, coming back."""

from __future__ import annotations

import pytest
from gridwatch.agents import lifecycle as lc
from gridwatch.agents.liveness import (
    GAP_WINDOW,
    LivenessConfig,
    SourceState,
    check,
    expected_interval,
    observe,
    recover,
)
from gridwatch.schemas.errors import ConfigError

T0 = 1_795_000_000.0
CONFIG = LivenessConfig()


def fed(times: list[float], source: str = "cp-1", kind: str = "checkpoint") -> SourceState:
    state = SourceState(source, kind, "G-12")
    for t in times:
        state = observe(state, T0 + t)
    return state


def test_a_source_never_seen_is_not_silent() -> None:
    assert check(SourceState("cp-1", "checkpoint"), T0 + 10**6, CONFIG) is None


def test_interval_is_learned_from_the_median_gap() -> None:
    state = fed([0, 120, 240, 360, 480, 600])  # every 2 minutes
    assert state.gaps == (120.0,) * 5 and state.count == 6
    assert expected_interval(state, CONFIG) == (360.0, "learned")  # 3 x 2 min
    assert check(state, T0 + 600 + 360, CONFIG) is None
    alert = check(state, T0 + 600 + 361, CONFIG)
    assert alert is not None
    assert (alert.kind, alert.status, alert.severity, alert.grid_id) == (
        "silent_source", "new", "medium", "G-12")
    assert alert.ts_raised == T0 + 960
    assert alert.source_ids == {"checkpoint_id": "cp-1"}
    assert alert.details["basis"] == "learned" and alert.details["expected_s"] == 360.0
    assert alert.title.startswith("Checkpoint cp-1 silent since ")
    assert alert.title.endswith("(expected every 6 min)")


def test_one_long_outage_does_not_teach_it_to_wait_forever() -> None:
    state = fed([0, 60, 120, 180, 240, 300, 300 + 86_400, 300 + 86_460])
    assert expected_interval(state, CONFIG)[0] == CONFIG.floor_s  # median stays 60 s -> floor


def test_floor_default_and_configured_override() -> None:
    busy = fed([0, 1, 2, 3, 4, 5])
    assert expected_interval(busy, CONFIG) == (300.0, "learned")  # floor
    young = fed([0, 100])
    assert expected_interval(young, CONFIG) == (3600.0, "default")
    config = LivenessConfig(overrides_s={"cp-1": 900.0})
    assert expected_interval(young, config) == (900.0, "configured")
    assert check(young, T0 + 100 + 901, config) is not None


def test_the_same_silence_gives_the_same_alert_and_a_new_silence_a_new_one() -> None:
    state = fed([0, 120, 240, 360, 480, 600])
    first = check(state, T0 + 2000, CONFIG)
    later = check(state, T0 + 9000, CONFIG)
    assert first is not None and first == later
    state = observe(state, T0 + 9100)
    assert check(state, T0 + 9101, CONFIG) is None
    another = check(state, T0 + 20_000, CONFIG)
    assert another is not None and another.id != first.id


def test_a_source_that_comes_back_closes_its_alert() -> None:
    state = fed([0, 120, 240, 360, 480, 600], source="cam-7", kind="camera")
    alert = check(state, T0 + 2000, CONFIG)
    assert alert is not None and alert.source_ids == {"camera_id": "cam-7"}
    acked = lc.ack(alert, actor="wang", role="duty_officer", ts=T0 + 2100)
    closed, task = recover(acked, None, T0 + 2200)
    assert closed.status == "closed" and task is None
    assert closed.audit[-1].action == "auto_close" and closed.audit[-1].actor == "system"
    assert closed.audit[-1].note.startswith("source sent data again at ")
    assert recover(closed, None, T0 + 2300) == (closed, None)  # twice changes nothing


def test_a_dispatched_silent_alert_cancels_its_task_on_recovery() -> None:
    alert = check(fed([0, 120, 240, 360, 480, 600]), T0 + 2000, CONFIG)
    assert alert is not None
    alert = lc.ack(alert, actor="wang", role="duty_officer", ts=T0 + 2001)
    alert, task = lc.dispatch(alert, workers=["li"], actor="wang", role="duty_officer",
                              ts=T0 + 2002)
    closed, cancelled = recover(alert, task, T0 + 2100)
    assert closed.status == "closed" and cancelled is not None
    assert cancelled.status == "cancelled"


def test_late_and_duplicate_messages_teach_no_gap() -> None:
    state = fed([0, 100, 50, 100])
    assert state.gaps == (100.0,) and state.last_ts == T0 + 100 and state.count == 4
    many = fed([float(i) for i in range(GAP_WINDOW + 10)])
    assert len(many.gaps) == GAP_WINDOW


def test_state_round_trip_and_config_errors() -> None:
    state = fed([0, 120, 240])
    assert SourceState.from_dict(state.to_dict()) == state
    with pytest.raises(ValueError, match="SourceState"):
        SourceState.from_dict({**state.to_dict(), "kind": "drone"})
    config = LivenessConfig.from_dict({"factor": 4, "overrides_s": {"cp-9": 60},
                                       "default_s": {"camera": 600}})
    assert config.factor == 4.0 and config.overrides_s == {"cp-9": 60.0}
    assert config.default_s == {"checkpoint": 3600.0, "camera": 600.0}
    for data, message in [({"factor": 0}, "factor"), ({"min_gaps": 0}, "min_gaps"),
                          ({"severity": "urgent"}, "severity"), ({"x": 1}, "unknown key 'x'")]:
        with pytest.raises(ConfigError, match=message):
            LivenessConfig.from_dict(data)
