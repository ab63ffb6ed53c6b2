"""The topic catalogue: every Kafka topic gridwatch reads or writes, in one place.

Topics are always created explicitly (``gridwatch stack up`` and the compose
``topics`` service call :func:`ensure_topics`); the broker's auto-creation is off, so a
topic with another partition count can never appear behind faust's back.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..schemas.events import CheckpointScan, CrowdLoiter, StationTicket

CHECKPOINT_SCANS = "gridwatch.checkpoint-scans"
CROWD_LOITER = "gridwatch.crowd-loiter"
STATION_TICKETS = "gridwatch.station-tickets"
COMMANDS = "gridwatch.commands"
DEADLETTER = "gridwatch.deadletter"
ALERTS = "gridwatch.alerts"
TASKS = "gridwatch.tasks"
FORECASTS = "gridwatch.forecasts"


@dataclass(frozen=True)
class InputTopic:
    """An input topic: its name, the event it carries and the field producers key by.

    Keying by ``key_field`` keeps every event of one person / camera / station on one
    partition, so the rules that look at a person's or a camera's history see its
    events in order.
    """

    name: str
    event: type
    key_field: str


INPUTS: tuple[InputTopic, ...] = (
    InputTopic(CHECKPOINT_SCANS, CheckpointScan, "person_ref"),
    InputTopic(CROWD_LOITER, CrowdLoiter, "camera_id"),
    InputTopic(STATION_TICKETS, StationTicket, "station_id"),
)
INPUT_BY_NAME = {t.name: t for t in INPUTS}
OUTPUTS: tuple[str, ...] = (ALERTS, TASKS, FORECASTS)

# Short names the CLI accepts for `gridwatch publish TOPIC FILE`.
ALIASES = {
    "checkpoint-scans": CHECKPOINT_SCANS,
    "scans": CHECKPOINT_SCANS,
    "crowd-loiter": CROWD_LOITER,
    "loiter": CROWD_LOITER,
    "station-tickets": STATION_TICKETS,
    "tickets": STATION_TICKETS,
}


def command_key(target: str, target_id: str) -> bytes:
    """The key of a command: its alert's id, also for a task (``tk-<alert id>-<n>``).

    Every command of one alert's loop — ack, dispatch, the task's accept, arrive, done —
    then lands on one partition of ``gridwatch.commands`` and is applied in the order
    it was sent, also when the log is replayed.
    """
    if target == "task" and target_id.startswith("tk-") and "-" in target_id[3:]:
        return target_id[3:].rsplit("-", 1)[0].encode()
    return target_id.encode()


def all_topics(partitions: int) -> dict[str, int]:
    """Every topic with its partition count (commands and dead letters included)."""
    topics = {t.name: partitions for t in INPUTS}
    topics.update({name: partitions for name in OUTPUTS})
    topics[COMMANDS] = partitions
    topics[DEADLETTER] = partitions
    return topics


def resolve(name: str) -> InputTopic:
    """Find an input topic by its full name or a short alias.

    Raises:
        KeyError: with the list of known names.
    """
    full = ALIASES.get(name, name)
    if full not in INPUT_BY_NAME:
        known = ", ".join(sorted([*INPUT_BY_NAME, *ALIASES]))
        raise KeyError(f"unknown input topic {name!r}; known: {known}")
    return INPUT_BY_NAME[full]


def replication_for(brokers: int) -> tuple[int, int]:
    """(replication factor, min.insync.replicas) for a cluster of ``brokers``: three
    copies at most, and a write needs two of them once there are three."""
    rf = max(1, min(3, brokers))
    return rf, (2 if rf >= 3 else 1)
