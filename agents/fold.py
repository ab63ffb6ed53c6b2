"""Fold a batch of raw Kafka records into one state update (pure: no I/O).

The worker hands over what it consumed — topic, partition, offset and the raw value
of each record — with the offsets already applied and the event-time watermark of
each partition. ``fold_batch`` decodes every record, drops those already applied,
sends bad ones to the dead-letter list with their reason, maps points to grids in one
vectorised query and adds everything up into a :class:`BatchUpdate`: counter
increments per Redis key and field, the new offsets and watermarks, and the records
to publish. Applying that update is one atomic Redis script, so a batch is applied
entirely or not at all, and never twice.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from .. import keys
from ..batch import BatchUpdate, DeadLetter, RawRecord
from ..grid_index import GridIndex
from ..schemas.errors import DecodeError
from ..schemas.events import (
    DEFAULT_BOUNDS,
    Bounds,
    CheckpointScan,
    CrowdLoiter,
    Event,
    StationTicket,
    decode,
)
from ..streams.topics import INPUT_BY_NAME

SUMMARY_FIELD = {
    CheckpointScan: "checkpoint_scans",
    CrowdLoiter: "loiter_reports",
    StationTicket: "station_tickets",
}


def _late_prefix(ts: float, watermark: float, grace_s: float) -> str:
    return "late:" if ts < watermark - grace_s else ""


def fold_batch(
    records: Iterable[RawRecord],
    *,
    index: GridIndex,
    applied: Mapping[str, int],
    watermarks: Mapping[str, float],
    grace_s: float,
    seen: Collection[tuple[str, str]] = (),
    bounds: Bounds = DEFAULT_BOUNDS,
) -> BatchUpdate:
    """Fold consumed records into one :class:`BatchUpdate`.

    Args:
        records: the batch, in the order consumed (per partition, offsets ascending).
        index: the grid index.
        applied: last applied offset per partition field (absent: nothing applied).
        watermarks: event-time watermark per partition field (absent: none yet).
        grace_s: an event older than its partition's watermark minus this is late: it
            is counted under ``late:`` fields of its own hour instead of the regular ones.
        seen: (topic, event id) of events applied before (read from Redis): a message
            carrying one again is a duplicate; it moves the offset and is counted under
            ``duplicates``, nothing else. Repeats inside the batch are found here.
        bounds: the times accepted (years, and how far ahead of the wall clock); an
            event outside them is dead-lettered. A stored watermark ahead of what they
            allow (written before they existed) is taken at their limit.

    Returns:
        The update; ``update.empty`` when every record was applied before.
    """
    update = BatchUpdate()
    top = bounds.ts_hi
    # Not min(w, top): a stored watermark that is not a number (NaN) must become ``top``.
    wm = {p: (w if w <= top else top) for p, w in watermarks.items()}  # noqa: FURB136
    fresh: list[tuple[RawRecord, Event, str, float]] = []  # (record, event, late prefix, watermark)
    offsets = update.offsets
    field_of: dict[tuple[str, int], str] = {}
    batch_ids: set[tuple[str, str]] = set()
    duplicates = 0
    for rec in records:
        tp = (rec.topic, rec.partition)
        pfield = field_of.get(tp)
        if pfield is None:
            pfield = field_of[tp] = keys.partition_field(rec.topic, rec.partition)
        before = applied.get(pfield, -1)
        if rec.offset <= before:
            continue  # applied by an earlier run: at-least-once delivery made it twice
        prev = offsets.get(pfield)
        if prev is None:
            offsets[pfield] = (before, rec.offset)
        elif rec.offset > prev[1]:
            offsets[pfield] = (prev[0], rec.offset)
        topic = INPUT_BY_NAME.get(rec.topic)
        try:
            if topic is None:
                raise DecodeError(f"not an input topic: {rec.topic}")
            if rec.value is None:
                raise DecodeError("empty message (no value)")
            event = decode(rec.value, topic.event, bounds)
        except DecodeError as exc:
            update.deadletters.append(
                DeadLetter(rec.topic, rec.partition, rec.offset, exc.reason, exc.field,
                           rec.value or b""))
            continue
        ident = (rec.topic, event.event_id)
        if ident in seen or ident in batch_ids:
            duplicates += 1
            continue
        batch_ids.add(ident)
        # Event time: lateness is judged against this partition's own watermark, so the
        # outcome depends only on the partition's order, never on how partitions
        # interleave or which worker holds them.
        mark = wm.get(pfield, float("-inf"))
        prefix = _late_prefix(event.ts, mark, grace_s)
        if event.ts > mark:
            wm[pfield] = event.ts
        fresh.append((rec, event, prefix, mark))
    update.watermarks = {p: wm[p] for p in update.offsets if p in wm}

    located = [(i, e) for i, (_, e, _, _) in enumerate(fresh) if not isinstance(e, StationTicket)]
    grids = index.assign([e.lon for _, e in located], [e.lat for _, e in located])  # type: ignore[union-attr]
    grid_of: dict[int, str | None] = {i: g for (i, _), g in zip(located, grids)}

    incr = update.incr
    if duplicates:
        incr[(keys.SUMMARY, "duplicates")] += duplicates
    sadd = update.sadd
    for i, (rec, event, prefix, mark) in enumerate(fresh):
        kind = type(event)
        incr[(keys.SUMMARY, SUMMARY_FIELD[kind])] += 1
        seen_key = keys.seen_ids(rec.topic, int(event.ts // 3600), event.event_id)
        sadd[seen_key].add(event.event_id)
        update.expire[seen_key] = keys.SEEN_TTL_S
        grid = grid_of.get(i)
        update.events.append((rec, event, grid))
        if prefix:
            update.late += 1
            incr[(keys.SUMMARY, "late")] += 1
        if kind is StationTicket:
            _fold_ticket(update, event, prefix, mark)  # type: ignore[arg-type]
            continue
        if grid is None:
            incr[(keys.SUMMARY, "unassigned")] += 1
            grid = keys.UNASSIGNED
        hour_key = keys.grid_hour(grid, keys.hour_of(event.ts))
        total_key = keys.grid_total(grid)
        update.expire[hour_key] = keys.HOUR_TTL_S
        update.sadd[keys.GRIDS_SEEN].add(grid)
        if kind is CheckpointScan:
            name = f"scan:{event.code_color}:{event.direction}"  # type: ignore[union-attr]
            incr[(hour_key, prefix + name)] += 1
            incr[(total_key, name)] += 1
        else:
            incr[(hour_key, prefix + "loiter")] += 1
            incr[(hour_key, prefix + "loiter_people")] += event.people  # type: ignore[union-attr]
            incr[(total_key, "loiter")] += 1
        if prefix:
            incr[(total_key, "late")] += 1
    if update.deadletters:
        incr[(keys.SUMMARY, "deadletter")] += len(update.deadletters)
    return update


# Lead times (hours before arrival) kept apart, so the booking curve — how much of an
# hour's final count was booked N hours ahead — can be learned from the counters alone.
LEADS = (*range(25), 36, 48, 72, 168)


def lead_bucket(arrival_at: float, ts: float) -> int:
    """The largest lead bucket not above the ticket's lead time (hours)."""
    lead = max(0.0, (arrival_at - ts) / 3600.0)
    best = 0
    for b in LEADS:
        if b <= lead:
            best = b
    return best


def _fold_ticket(update: BatchUpdate, ticket: StationTicket, prefix: str, mark: float) -> None:
    # Station hours are keyed by the *arrival* hour (what the manager plans for); a
    # late ticket message still changes bookings, so no late split here, only a count.
    hour = keys.hour_of(ticket.arrival_at)
    # An hour far behind the partition's event time may be one a live refresher keeps in
    # memory: it is marked so that the refresher reads it again (12 hours of margin for a
    # partition behind the others).
    if mark > float("-inf") and hour < keys.hour_of(mark) - keys.STATION_SETTLED_HOURS + 12:
        revised = keys.station_revised(ticket.station_id)
        update.zadd[revised][str(hour)] = hour
        update.expire[revised] = keys.STATION_REVISED_TTL_S
    key = keys.station_hour(ticket.station_id, hour)
    incr = update.incr
    if ticket.action != "exited":
        sign = 1 if ticket.action == "sold" else -1
        incr[(key, f"lead:{lead_bucket(ticket.arrival_at, ticket.ts)}")] += sign * ticket.seats
    if ticket.action == "sold":
        incr[(key, "sold")] += ticket.seats
        incr[(key, "booked")] += ticket.seats
        if ticket.origin_risk == "high":
            incr[(key, "high_risk")] += ticket.seats
    elif ticket.action == "refunded":
        incr[(key, "refunded")] += ticket.seats
        incr[(key, "booked")] -= ticket.seats
        if ticket.origin_risk == "high":
            incr[(key, "high_risk")] -= ticket.seats
    else:
        incr[(key, "arrived")] += ticket.seats
    if prefix:
        incr[(key, "late_messages")] += 1
    update.expire[key] = keys.STATION_TTL_S
    update.zadd[keys.station_hours(ticket.station_id)][str(hour)] = hour
    update.sadd[keys.STATIONS].add(ticket.station_id)
