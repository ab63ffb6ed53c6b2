"""Who sees what: which alerts, tasks, grids and forecasts a user may see. No I/O.

Every path that hands a user records asks here: the live fan-out (the hub's tag index
is :func:`subscriptions` against :func:`tags_of`, limited to :func:`channels_for`:
:func:`may_see` worked out once per connection instead of once per message), the
snapshot and the replay of a connecting client (:func:`may_see` per record, read from
the indexes :func:`scope` narrows to), the ``/api/*`` routes (:func:`may_see_grid`, and
:func:`sees_district` for the wall's trends and top grids), the command check
(:func:`owns`) and the alerts export (:func:`may_export_alerts`).

* Duty officers and admins see everything.
* A grid worker sees the alerts, tasks and grid states of their grids, and the tasks
  offered to them by name (or assigned to them).
* A station manager sees the alerts and forecasts of their stations, nothing else.
* Only duty officers and admins export the alerts of a period (every grid's, with the
  notes of whoever handled them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gridwatch.schemas.commands import OFFICERS

from .auth import User
from .channels import CHANNELS, EVERYTHING


def tags_of(channel: str, msg: Mapping[str, Any]) -> frozenset[str]:
    """The tags of one channel message: ``all``, ``grid:G``, ``station:S``, ``user:U``."""
    tags = {EVERYTHING}
    body: Mapping[str, Any] = msg
    if channel == "alerts":
        body = msg.get("alert") or msg
    elif channel == "tasks":
        body = msg.get("task") or msg
        tags.update(f"user:{w}" for w in body.get("workers") or ())
        if body.get("assignee"):
            tags.add(f"user:{body['assignee']}")
    elif channel == "forecasts":
        body = msg.get("forecast") or msg
    if channel != "forecasts" and body.get("grid_id"):
        tags.add(f"grid:{body['grid_id']}")
    if channel in ("alerts", "forecasts") and body.get("station_id"):
        tags.add(f"station:{body['station_id']}")
    return frozenset(tags)


def subscriptions(user: User) -> frozenset[str]:
    """The tags a user receives.

    Duty officers and admins see everything; a grid worker the alerts, tasks and grid
    states of their grids and the tasks offered to them; a station manager the
    forecasts and alerts of their stations.
    """
    if user.role in OFFICERS:
        return frozenset({EVERYTHING})
    if user.role == "grid_worker":
        return frozenset({*(f"grid:{g}" for g in user.grids), f"user:{user.name}"})
    if user.role == "station_manager":
        return frozenset(f"station:{s}" for s in user.stations)
    return frozenset()


def channels_for(user: User) -> tuple[str, ...]:
    """The channels a user's view uses (the others are never sent to them)."""
    if user.role == "grid_worker":
        return ("alerts", "tasks", "grids")
    if user.role == "station_manager":
        return ("alerts", "forecasts")
    return tuple(CHANNELS)


def may_see(user: User, channel: str, msg: Mapping[str, Any]) -> bool:
    """Whether ``user`` may receive one message of ``channel``."""
    if channel not in channels_for(user):
        return False
    if channel == "tasks" and user.role == "station_manager":
        return False
    return not subscriptions(user).isdisjoint(tags_of(channel, msg))


def sees_district(user: User) -> bool:
    """Whether ``user`` may read the district-wide figures (the counters, the trends and
    the riskiest grids): only those who see everything, as the summary frame goes."""
    return EVERYTHING in subscriptions(user)


def may_see_grid(user: User, grid: str) -> bool:
    """Whether ``user`` may read one grid's state (its risk record)."""
    return may_see(user, "grids", {"grid_id": grid})


def may_export_alerts(user: User) -> bool:
    """Whether ``user`` may download the alerts of a period with their audit trails."""
    return user.role in ("duty_officer", "admin")


def owns(user: User, record: Mapping[str, Any]) -> bool:
    """Whether a grid worker may act on an alert or task record: one of their grids, or
    offered to them by name. (Narrower than :func:`may_see` for tasks: a task only
    *assigned* to a worker outside their grids is shown to them, not theirs to act on.)
    Other roles' rights are the command contract's, not the record's."""
    if user.role != "grid_worker":
        return True
    return record.get("grid_id") in user.grids or user.name in (record.get("workers") or ())


@dataclass(frozen=True)
class Scope:
    """Which stored indexes hold a user's records (``None``: not narrowed that way).

    Only a narrowing for the reads: every record read is still checked with
    :func:`may_see`.
    """

    grids: tuple[str, ...] | None  # a grid worker's grids
    stations: tuple[str, ...] | None  # a station manager's stations
    worker: str | None  # a grid worker's name (their tasks)


def scope(user: User) -> Scope:
    """Where a snapshot for ``user`` reads from."""
    worker = user.role == "grid_worker"
    return Scope(grids=user.grids if worker else None,
                 stations=user.stations if user.role == "station_manager" else None,
                 worker=user.name if worker else None)
