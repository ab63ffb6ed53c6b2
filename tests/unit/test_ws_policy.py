"""ws/policy.py: one rule of who sees what, whichever path a record takes to the user."""

from __future__ import annotations

import itertools

import pytest
from gridwatch.ws.auth import User
from gridwatch.ws.channels import CHANNELS
from gridwatch.ws.policy import (
    channels_for,
    may_see,
    may_see_grid,
    owns,
    scope,
    subscriptions,
    tags_of,
)

USERS = (
    User("o1", "duty_officer"),
    User("a1", "admin"),
    User("w1", "grid_worker", grids=("G1", "G3")),
    User("w2", "grid_worker", grids=("G2",)),
    User("m1", "station_manager", stations=("SHS",)),
)
GRIDS = ("G1", "G2", "G3", None)
STATIONS = ("SHS", "HZ", None)


def messages(channel: str) -> list[dict]:
    out: list[dict] = []
    for grid, station, workers, assignee in itertools.product(
            GRIDS, STATIONS, ((), ("w2",), ("w1", "w2")), (None, "w1")):
        body = {"id": "x", "grid_id": grid, "station_id": station}
        if channel == "alerts":
            out.append({"type": "alert", "alert": body})
        elif channel == "tasks":
            out.append({"type": "task", "task": {**body, "workers": list(workers),
                                                 "assignee": assignee}})
        elif channel == "grids":
            out.append({"type": "grid", "grid_id": grid})
        else:
            out.append({"type": "forecast", "forecast": {"station_id": station}})
    return out


@pytest.mark.parametrize("channel", list(CHANNELS))
def test_the_live_tag_index_delivers_exactly_what_may_see_allows(channel: str) -> None:
    # The hub sends a live frame to a connection when the channel is one of its user's
    # and their subscriptions meet the message's tags: may_see, worked out in advance.
    for user, msg in itertools.product(USERS, messages(channel)):
        live = channel in channels_for(user) and not subscriptions(user).isdisjoint(
            tags_of(channel, msg))
        assert live == may_see(user, channel, msg), (user, msg)


def test_a_grid_state_is_readable_by_officers_and_its_own_workers_only() -> None:
    for user, grid in itertools.product(USERS, ("G1", "G2", "G3")):
        old_rule = not (user.role == "station_manager" or (
            user.role == "grid_worker" and grid not in user.grids))
        assert may_see_grid(user, grid) == old_rule, (user, grid)


def test_a_worker_acts_on_records_of_their_grids_or_offered_to_them_by_name() -> None:
    worker = USERS[2]
    assert owns(worker, {"grid_id": "G1"}) and owns(worker, {"grid_id": "G3"})
    assert not owns(worker, {"grid_id": "G2"})
    assert owns(worker, {"grid_id": "G2", "workers": ["w1"]})
    assert not owns(worker, {"grid_id": "G2", "assignee": "w1"})  # shown, not theirs
    assert may_see(worker, "tasks", {"task": {"grid_id": "G2", "assignee": "w1"}})
    for user in (USERS[0], USERS[1], USERS[4]):  # their rights are the contract's
        assert owns(user, {"grid_id": "G2"})


def test_a_snapshot_reads_only_the_indexes_of_the_users_own_grids_stations_and_tasks() -> None:
    assert scope(USERS[0]) == scope(USERS[1])
    assert scope(USERS[0]).grids is None and scope(USERS[0]).stations is None
    assert scope(USERS[0]).worker is None
    w = scope(USERS[2])
    assert w.grids == ("G1", "G3") and w.worker == "w1" and w.stations is None
    m = scope(USERS[4])
    assert m.stations == ("SHS",) and m.grids is None and m.worker is None
