"""What a batch of new events decides, beyond counting (pure: no I/O).

Given the batch's events with their grids and a :class:`View` of the state they need
(each red-code person's recent visits, the latest loiter alert of each camera and
zone, each source's liveness state, the alerts that may be updated), ``decide``
runs the checkpoint rules, cross-grid detection, loiter folding, incident grouping,
feed liveness and escalation deadlines, and returns the records to write as
:class:`Decisions`. The worker loads the view, calls this, and applies the result
together with the batch's counters in one atomic step.

Incidents are grouped by fixed event-time windows per grid (``window_s``): an
incident is the set of a grid's alerts raised in one window, and it opens when the set
reaches ``min_alerts``. Unlike a sliding window this does not depend on the order in
which partitions are consumed, so a replay, a crash or a second worker gives the same
incidents.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from ..schemas.commands import INCIDENT_MIN_ALERTS, INCIDENT_WINDOW_S
from ..schemas.events import CheckpointScan, CrowdLoiter, Event, StationTicket, format_time
from ..schemas.records import Alert
from . import escalation, lifecycle, liveness, loiter, rules, silences
from .escalation import Deadline, EscalationConfig
from .liveness import LivenessConfig, SourceState
from .silences import Silence

# Event kinds that count as "loiter alerts" / "stale tests" in a grid's risk.
RISK_FIELDS = {"stale_test": "stale", "cross_grid": "cross_grid", "loiter": "loiter_alerts"}


@dataclass
class SourceSeen:
    """A source's messages in one batch: enough to update its liveness statistics."""

    kind: str
    grid_id: str | None
    first: float
    last: float
    count: int


def source_state(source_id: str, kind: str, grid_id: str | None, count: int, first: float,
                 last: float, config: LivenessConfig) -> SourceState:
    """A liveness state from the stored statistics: the mean gap stands for the gaps."""
    gaps: tuple[float, ...] = ()
    if count > config.min_gaps:
        mean = (last - first) / (count - 1)
        gaps = (mean,) * config.min_gaps
    return SourceState(source_id=source_id, kind=kind, grid_id=grid_id, last_ts=last,
                       gaps=gaps, count=count)


@dataclass(frozen=True)
class DecideConfig:
    """The rule tables and thresholds the decisions use."""

    rules: rules.RuleTable
    loiter: loiter.LoiterConfig
    escalation: EscalationConfig = field(default_factory=lambda: EscalationConfig(max_level=3))
    liveness: LivenessConfig = field(default_factory=LivenessConfig)
    incident_min_alerts: int = INCIDENT_MIN_ALERTS
    incident_window_s: float = INCIDENT_WINDOW_S
    visit_horizon_s: float = 72 * 3600.0
    station_high_risk_seats: int = 50


@dataclass
class View:
    """The state a batch's decisions read, loaded by the shell before deciding."""

    red_visits: dict[str, list[rules.Visit]] = field(default_factory=dict)
    loiter_latest: dict[str, Alert | None] = field(default_factory=dict)
    alerts: dict[str, Alert] = field(default_factory=dict)
    silent: dict[str, str] = field(default_factory=dict)  # source id -> open silent alert id
    train_high_risk: dict[str, int] = field(default_factory=dict)  # train key -> seats so far
    silences: dict[str, Silence] = field(default_factory=dict)  # the active ones, by id


@dataclass
class Decisions:
    """The records one batch writes (the last state of each, in batch order)."""

    alerts: dict[str, Alert] = field(default_factory=dict)
    new_alert_ids: list[str] = field(default_factory=list)
    loiter_latest: dict[str, str] = field(default_factory=dict)
    red_visits: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    traces: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    sources_seen: dict[str, SourceSeen] = field(default_factory=dict)
    silent_cleared: list[str] = field(default_factory=list)
    deadlines: dict[str, Deadline | None] = field(default_factory=dict)
    # (grid, window number) -> alert ids raised in it by this batch
    incidents: dict[tuple[str, int], list[str]] = field(default_factory=dict)
    # (grid, hour, risk field) -> increment; (grid, hour) -> largest crowd seen
    grid_counts: dict[tuple[str, int, str], int] = field(default_factory=dict)
    crowd_max: dict[tuple[str, int], int] = field(default_factory=dict)
    train_high_risk: dict[str, int] = field(default_factory=dict)  # train key -> increment
    # An alert whose raise moved (a late visit completed its cross-grid window earlier):
    # what its old place counted is taken back, (grid, hour, risk field) -> count,
    # (grid, window) -> ids leaving that incident, (grid, id) leaving that grid's index.
    uncount: dict[tuple[str, int, str], int] = field(default_factory=dict)
    incidents_left: dict[tuple[str, int], list[str]] = field(default_factory=dict)
    grid_index_left: list[tuple[str, str]] = field(default_factory=list)
    silenced: dict[str, list[str]] = field(default_factory=dict)  # silence id -> alert ids held


def incident_id(grid_id: str, window: int) -> str:
    """The id of a grid's incident for one grouping window."""
    return "in-" + hashlib.sha1(f"{grid_id}|{window}".encode()).hexdigest()[:12]


def red_visits(events: Sequence[tuple[Event, str | None]]) -> dict[str, list[rules.Visit]]:
    """The batch's red-code scans as cross-grid visits, per person."""
    out: dict[str, list[rules.Visit]] = {}
    for event, grid in events:
        if isinstance(event, CheckpointScan) and event.code_color == "red":
            out.setdefault(event.person_ref, []).append(
                rules.Visit(event.ts, grid, event.event_id, event.checkpoint_id))
    return out


def cross_grid(view: View, new: dict[str, list[rules.Visit]],
               config: DecideConfig) -> dict[str, rules.CrossGrid]:
    """The cross-grid alerts the batch's visits may change, from the stored visits and
    the new ones alone (see :func:`.rules.cross_grid_periods`)."""
    out: dict[str, rules.CrossGrid] = {}
    for person in sorted(new):
        visits = [*view.red_visits.get(person, ()), *new[person]]
        out.update(rules.cross_grid_periods(person, visits, [v.ts for v in new[person]],
                                            config.rules))
    return out


def candidate_alert_ids(events: Sequence[tuple[Event, str | None]], view: View,
                        config: DecideConfig) -> set[str]:
    """Alert ids this batch may update, so the shell can load them before deciding.

    Cross-grid ids depend on the visits, which ``view.red_visits`` holds already.
    """
    ids = set(cross_grid(view, red_visits(events), config))
    ids.update(view.silent.values())
    return ids


def _hour(ts: float) -> int:
    return int(ts // 3600)


class _Batch:
    """Accumulates one batch's decisions."""

    def __init__(self, view: View, config: DecideConfig, workers_of: Callable[[str], Sequence[str]]) -> None:
        self.view = view
        self.config = config
        self.workers_of = workers_of
        self.out = Decisions()

    def alert(self, alert_id: str) -> Alert | None:
        return self.out.alerts.get(alert_id) or self.view.alerts.get(alert_id)

    def store(self, alert: Alert, *, new: bool) -> None:
        if new and alert.status == "new":
            alert = hold_if_silenced(alert, self.view.silences, self.out.silenced)
        self.out.alerts[alert.id] = alert
        if new:
            self.out.new_alert_ids.append(alert.id)
            if alert.grid_id:
                window = int(alert.ts_raised // self.config.incident_window_s)
                self.out.incidents.setdefault((alert.grid_id, window), []).append(alert.id)
                alert = replace(alert, incident_id=incident_id(alert.grid_id, window))
                self.out.alerts[alert.id] = alert
                name = RISK_FIELDS.get(alert.kind)
                if name:
                    key = (alert.grid_id, _hour(alert.ts_raised), name)
                    self.out.grid_counts[key] = self.out.grid_counts.get(key, 0) + 1
        self.out.deadlines[alert.id] = escalation.next_deadline(alert, None, self.config.escalation)

    def hit(self, h: rules.RuleHit) -> None:
        existing = self.alert(h.alert_id)
        if existing is None:
            self.store(lifecycle.raise_alert(
                id=h.alert_id, kind=h.rule, severity=h.severity, grid_id=h.grid_id, ts=h.ts,
                title=h.title, title_zh=h.title_zh, source_ids=dict(h.source_ids),
                details=dict(h.details)), new=True)
        else:
            # A later scan of the same episode: newer details, same record and history.
            updated = replace(existing, details=dict(h.details), ts_updated=max(existing.ts_updated, h.ts),
                              title=h.title, title_zh=h.title_zh)
            self.out.alerts[existing.id] = updated

    def scan(self, scan: CheckpointScan, grid: str | None) -> None:
        member = f"{scan.event_id}|{scan.checkpoint_id}|{grid or ''}|{scan.direction}|{scan.code_color}"
        self.out.traces.setdefault(scan.person_ref, []).append((member, scan.ts))
        for h in rules.evaluate_scan(scan, grid, self.config.rules):
            self.hit(h)
        if scan.code_color == "red":
            # Cross-grid alerts are decided once the batch's visits are all known
            # (:meth:`cross_grid`), from the visits alone, in any arrival order.
            self.out.red_visits.setdefault(scan.person_ref, []).append(
                (f"{grid or ''}|{scan.event_id}|{scan.checkpoint_id}", scan.ts))
        self.source(scan.checkpoint_id, "checkpoint", grid, scan.ts)

    def cross_grid(self, outcome: rules.CrossGrid) -> None:
        """Raise, update or move one person's cross-grid alert of one period."""
        raised, latest = outcome.raised, outcome.latest
        existing = self.alert(raised.alert_id)
        if existing is None:
            alert = lifecycle.raise_alert(
                id=raised.alert_id, kind=raised.rule, severity=raised.severity,
                grid_id=raised.grid_id, ts=raised.ts, title=raised.title,
                title_zh=raised.title_zh, source_ids=dict(raised.source_ids),
                details=dict(raised.details))
            self.store(replace(alert, title=latest.title, title_zh=latest.title_zh,
                               details=dict(latest.details),
                               ts_updated=max(alert.ts_updated, latest.ts)), new=True)
            return
        entry = existing.audit[0] if existing.audit else None
        if (existing.grid_id, existing.ts_raised) != (raised.grid_id, raised.ts) or (
                entry is not None and entry.action == "raise" and entry.note != raised.title):
            existing = self._move(existing, raised)
        self.out.alerts[existing.id] = replace(
            existing, title=latest.title, title_zh=latest.title_zh, details=dict(latest.details),
            source_ids=dict(raised.source_ids), ts_updated=max(existing.ts_updated, latest.ts))

    def _move(self, alert: Alert, raised: rules.RuleHit) -> Alert:
        """The alert raised at another visit than it was: its raise entry, grid, time,
        incident, counters and first deadline follow (what the old place counted is
        taken back)."""
        old_grid, old_ts = alert.grid_id, alert.ts_raised
        audit = alert.audit
        if audit and audit[0].action == "raise":
            audit = (replace(audit[0], ts=raised.ts, note=raised.title), *audit[1:])
        moved = replace(alert, grid_id=raised.grid_id, ts_raised=raised.ts, audit=audit)
        window_s = self.config.incident_window_s
        name = RISK_FIELDS.get(alert.kind)
        new_grid, ts = raised.grid_id, raised.ts
        old_place = (old_grid, int(old_ts // window_s)) if old_grid else None
        new_place = (new_grid, int(ts // window_s)) if new_grid else None
        if old_place != new_place:
            if old_place:
                self.out.incidents_left.setdefault(old_place, []).append(alert.id)
            if new_place:
                self.out.incidents.setdefault(new_place, []).append(alert.id)
            moved = replace(moved, incident_id=incident_id(*new_place) if new_place else None)
        old_count = (old_grid, _hour(old_ts), name) if old_grid and name else None
        new_count = (new_grid, _hour(ts), name) if new_grid and name else None
        if old_count != new_count:
            if old_count:
                self.out.uncount[old_count] = self.out.uncount.get(old_count, 0) + 1
            if new_count:
                self.out.grid_counts[new_count] = self.out.grid_counts.get(new_count, 0) + 1
        if old_grid and old_grid != new_grid:
            self.out.grid_index_left.append((old_grid, alert.id))
        if moved.status == "new" and moved.escalation_level == 0:
            self.out.deadlines[moved.id] = escalation.next_deadline(
                moved, None, self.config.escalation)
        self.out.alerts[moved.id] = moved
        return moved

    def report(self, report: CrowdLoiter, grid: str | None) -> None:
        key = loiter.loiter_key(report)
        latest = self.view.loiter_latest.get(key)
        if latest is not None:
            latest = self.out.alerts.get(latest.id, latest)
        decision = loiter.fold_report(latest, report, grid, self.config.loiter)
        if decision.alert is not None:
            self.store(decision.alert, new=decision.is_new)
            self.view.loiter_latest[key] = decision.alert
            self.out.loiter_latest[key] = decision.alert.id
        if grid:
            k = (grid, _hour(report.ts))
            self.out.crowd_max[k] = max(self.out.crowd_max.get(k, 0), report.people)
        self.source(report.camera_id, "camera", grid, report.ts)

    def source(self, source_id: str, kind: str, grid: str | None, ts: float) -> None:
        # Liveness statistics are commutative (count, first, last), so batches of any
        # partition, on any worker, can add to them without reading them first.
        seen = self.out.sources_seen.get(source_id)
        if seen is None:
            self.out.sources_seen[source_id] = SourceSeen(kind, grid, ts, ts, 1)
        else:
            seen.first = min(seen.first, ts)
            seen.last = max(seen.last, ts)
            seen.count += 1
        silent_id = self.view.silent.pop(source_id, None)
        if silent_id:
            alert = self.alert(silent_id)
            if alert is not None:
                recovered, _ = liveness.recover(alert, None, ts)
                self.out.alerts[recovered.id] = recovered
                self.out.deadlines[recovered.id] = None
            self.out.silent_cleared.append(source_id)


def hold_if_silenced(alert: Alert, active: dict[str, Silence],
                     held: dict[str, list[str]]) -> Alert:
    """A new alert as raised: ``silenced`` (its id noted in ``held`` under the silence)
    when an active silence matches it, else unchanged."""
    silence = silences.first_match(active.values(), alert)
    if silence is None:
        return alert
    held.setdefault(silence.id, []).append(alert.id)
    return silences.hold(alert, silence)


def train_key(ticket: StationTicket) -> str:
    """The identity of a train's arrival at a station."""
    return f"{ticket.station_id}|{ticket.train_no}|{int(ticket.arrival_at)}"


def _ticket(batch: _Batch, ticket: StationTicket) -> None:
    """Bookings from high-risk origins: when a train's seats pass the threshold, the
    station's staff are alerted to screen at the gate (once per train arrival)."""
    if ticket.origin_risk != "high" or ticket.action == "exited":
        return
    key = train_key(ticket)
    delta = ticket.seats if ticket.action == "sold" else -ticket.seats
    before = batch.view.train_high_risk.get(key, 0)
    after = before + delta
    batch.view.train_high_risk[key] = after
    batch.out.train_high_risk[key] = batch.out.train_high_risk.get(key, 0) + delta
    limit = batch.config.station_high_risk_seats
    if before < limit <= after:
        alert_id = rules.alert_id("station_high_risk", key)
        if batch.alert(alert_id) is None:
            at = format_time(ticket.arrival_at)
            batch.store(lifecycle.raise_alert(
                id=alert_id, kind="station_high_risk", severity="medium", grid_id=None,
                ts=ticket.ts, station_id=ticket.station_id,
                title=f"Train {ticket.train_no} arriving {at} carries {after} passengers from "
                      f"high-risk {ticket.origin}: screen at the gate",
                title_zh=f"{at}到站的{ticket.train_no}次列车有{after}名来自高风险地区"
                         f"{ticket.origin}的旅客，请在出站口加强查验",
                source_ids={"station_id": ticket.station_id, "train_no": ticket.train_no,
                            "event_id": ticket.event_id},
                details={"arrival_at": ticket.arrival_at, "origin": ticket.origin,
                         "high_risk_seats": after, "threshold": limit}), new=True)


def decide(events: Sequence[tuple[Event, str | None]], view: View, config: DecideConfig, *,
           workers_of: Callable[[str], Sequence[str]] = lambda g: ()) -> Decisions:
    """Decide what a batch's new events raise, fold and update.

    Args:
        events: the batch's new events with their grids, in the order consumed.
        view: the state they need; it is updated in place as the batch goes.
        config: rule tables and thresholds.
        workers_of: the grid workers of a grid (for records that name them).
    """
    batch = _Batch(view, config, workers_of)
    for event, grid in events:
        if isinstance(event, CheckpointScan):
            batch.scan(event, grid)
        elif isinstance(event, CrowdLoiter):
            batch.report(event, grid)
        elif isinstance(event, StationTicket):
            _ticket(batch, event)
    for outcome in cross_grid(view, red_visits(events), config).values():
        batch.cross_grid(outcome)
    return batch.out

