"""Fault drills, small enough for the suite (``bench/drills.py`` runs them bigger).

Each state drill feeds the same seeded city workload (5,000 simulated events and 40
invalid messages) at a steady rate to real workers, injects one fault, and compares the
final Redis state with a clean run of the same messages (``store.dump``, made once per
session): every message applied, none twice, the state identical key for key.

- SIGKILL of the worker, twice, a new one started each time;
- redis-server stopped cleanly, or SIGKILLed, and started again;
- redis-server coming back with the state of a few seconds earlier (the AOF as a machine
  crash with ``appendfsync everysec`` can leave it): the worker must notice that Redis is
  behind and read again from the offsets stored there;
- the Kafka broker restarted;
- two workers in one group, one SIGSTOPped for longer than the session timeout (the group
  rebalances), then SIGCONTed.

Then the gateway restarted under 100 logged-in WebSocket clients while alerts flow (each
client must get every alert it may see exactly once, resuming from its last stream id),
and bad input at volume (the worker stays up, every invalid message is dead-lettered with
its reason, duplicates of valid events change nothing).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gridwatch import settings as settings_mod
from tests import drill

pytestmark = pytest.mark.integration

EVENTS = 5_000
INVALID = 40
SEED = 11
RATE = 500.0


def _workload() -> drill.Workload:
    return drill.city_workload(EVENTS, SEED, invalid=INVALID)


def _run(s: settings_mod.Settings, tmp_path: Path, fault: drill.Fault, *,
         rate: float = RATE, fault_at: float = 0.3) -> drill.Result:
    result = drill.state_drill(s, _workload(), fault, tmp_path, rate=rate, fault_at=fault_at,
                                seed=SEED, timeout=300)
    print(result.render())
    return result


@pytest.mark.timeout(600)
def test_kill9_of_the_worker_ends_in_the_state_of_a_clean_run(
        stack_settings: settings_mod.Settings, tmp_path: Path) -> None:
    result = _run(stack_settings, tmp_path, drill.kill_worker_fault(kills=2, spacing_s=3.0))
    assert result.ok, result.explain()


@pytest.mark.timeout(600)
def test_redis_clean_restart_ends_in_the_state_of_a_clean_run(
        stack_settings: settings_mod.Settings, tmp_path: Path) -> None:
    result = _run(stack_settings, tmp_path, drill.redis_fault("restart", down_s=3.0))
    assert result.ok, result.explain()


@pytest.mark.timeout(600)
def test_redis_sigkill_and_restart_ends_in_the_state_of_a_clean_run(
        stack_settings: settings_mod.Settings, tmp_path: Path) -> None:
    result = _run(stack_settings, tmp_path, drill.redis_fault("kill", down_s=3.0))
    assert result.ok, result.explain()


@pytest.mark.timeout(600)
def test_redis_back_with_older_state_is_caught_up_from_its_offsets(
        stack_settings: settings_mod.Settings, tmp_path: Path) -> None:
    result = _run(stack_settings, tmp_path, drill.redis_fault("loss", down_s=2.0, lose_s=3.0))
    assert result.ok, result.explain()


@pytest.mark.timeout(600)
def test_kafka_broker_restart_ends_in_the_state_of_a_clean_run(
        stack_settings: settings_mod.Settings, tmp_path: Path) -> None:
    result = _run(stack_settings, tmp_path, drill.kafka_fault(down_s=3.0))
    assert result.ok, result.explain()


@pytest.mark.timeout(600)
def test_a_paused_worker_rebalanced_away_and_woken_changes_nothing(
        stack_settings: settings_mod.Settings, tmp_path: Path) -> None:
    # 25 s is well past the group's 10 s session timeout; the feed outlasts the pause.
    result = _run(stack_settings, tmp_path, drill.pause_fault(25.0), rate=110.0, fault_at=0.2)
    assert result.ok, result.explain()


@pytest.mark.timeout(600)
def test_gateway_restart_under_100_clients_loses_and_repeats_no_alert(
        stack_settings: settings_mod.Settings, tmp_path: Path) -> None:
    result = drill.gateway_drill(stack_settings, tmp_path, clients=100, seconds=20.0,
                                  rate=200.0, red_every=8, timeout=240)
    print(result.render())
    assert result.ok, result.explain()


@pytest.mark.timeout(900)
def test_bad_input_at_volume_is_dead_lettered_and_changes_nothing_else(
        stack_settings: settings_mod.Settings, tmp_path: Path) -> None:
    result = drill.bad_input_drill(stack_settings, tmp_path, valid=4_000, bad=8_000,
                                    seed=7, timeout=600)
    print(result.render())
    assert result.ok, result.explain()
