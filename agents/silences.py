"""Silences: an officer mutes a grid, a source or a kind of alert for a bounded time.

Pure: no I/O. A :class:`Silence` matches the alerts of one grid, one source (a camera
or checkpoint named in the alert's ``source_ids``) or one kind, from when it is set
until it ends: at ``ends_at`` (the timers, in event time) or earlier by an officer's
``end_silence``. An alert raised while a silence matches it is kept, counted and
audited, but held: its status is ``silenced`` (:func:`hold`), it is left out of the
live feed, not escalated and not dispatched. When the silence ends, each alert it still
holds is new again (:func:`reopen`), and its acknowledgement escalation starts then;
an alert that another silence still matches moves to that one instead (:func:`release`).

Every step is audited: the silence keeps who set it, when and why, and who ended it;
each alert held gets a ``silence`` entry in the name of the officer who set the
silence, and a ``reopen`` entry when it comes back.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..schemas.commands import SILENCE_MATCH, SILENCE_MAX_S
from ..schemas.errors import TransitionRefused
from ..schemas.records import Alert, AuditEntry
from . import lifecycle
from .lifecycle import SYSTEM_ACTOR, when

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_S = {"": 60.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str, *, max_s: float = SILENCE_MAX_S) -> float:
    """``"90m"``, ``"2h"``, ``"1.5h"``, ``"45"`` (minutes), ``"30s"``, ``"1d"`` in seconds.

    Raises:
        ValueError: not a duration, zero, or longer than ``max_s``.
    """
    found = _DURATION.match(text or "")
    if not found:
        raise ValueError(f"duration {text!r}: write it as 30m, 2h or 1d")
    seconds = float(found.group(1)) * _UNIT_S[found.group(2)]
    if not 0 < seconds <= max_s:
        raise ValueError(f"duration {text!r}: must be more than 0 and at most "
                         f"{max_s / 3600:g} h")
    return seconds


@dataclass(frozen=True)
class Silence:
    """One silence.

    Attributes:
        id: ``si-<command id>`` (a replay of the command log makes the same silence).
        match: ``"grid"``, ``"source"`` or ``"kind"``; ``value`` is what it matches.
        starts_at, ends_at: the time it was set and the time it ends by itself.
        reason: why (required), actor and role: who set it.
        ended_at: when it ended (by time or by an officer), else ``None``.
        audit: ``silence`` when set, ``end_silence`` when ended, oldest first.
    """

    id: str
    match: str
    value: str
    starts_at: float
    ends_at: float
    reason: str
    actor: str
    role: str
    ended_at: float | None = None
    audit: tuple[AuditEntry, ...] = ()

    @property
    def active(self) -> bool:
        return self.ended_at is None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data, with ``"v": 1``."""
        return {"v": 1, "id": self.id, "match": self.match, "value": self.value,
                "starts_at": self.starts_at, "ends_at": self.ends_at, "reason": self.reason,
                "actor": self.actor, "role": self.role, "ended_at": self.ended_at,
                "audit": [e.to_dict(versioned=False) for e in self.audit]}

    @classmethod
    def from_dict(cls, data: Any) -> Silence:
        """Decode :meth:`to_dict` output.

        Raises:
            ValueError: a field is missing or of the wrong type.
        """
        if not isinstance(data, dict) or data.get("v", 1) != 1:
            raise ValueError("Silence: expected a version 1 object")
        try:
            return cls(str(data["id"]), str(data["match"]), str(data["value"]),
                       float(data["starts_at"]), float(data["ends_at"]), str(data["reason"]),
                       str(data["actor"]), str(data["role"]),
                       None if data["ended_at"] is None else float(data["ended_at"]),
                       tuple(AuditEntry.from_dict(e) for e in data["audit"]))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"Silence: bad or missing field ({exc})") from None


def new_silence(silence_id: str, *, match: str, value: str, for_s: float, reason: str,
                actor: str, role: str, ts: float, grids: Collection[str] = (),
                kinds: Collection[str] = (), max_s: float = SILENCE_MAX_S) -> Silence:
    """A silence set by ``actor`` at ``ts`` for ``for_s`` seconds.

    Args:
        grids: the district's grid ids (a grid silence must name one); empty: unchecked.
        kinds: the alert kinds raised (a kind silence must name one); empty: unchecked.

    Raises:
        TransitionRefused: an unknown match or grid or kind, no reason, a bad duration.
    """
    if match not in SILENCE_MATCH:
        raise TransitionRefused(f"silence: match one of {', '.join(SILENCE_MATCH)}, "
                                f"not {match!r}")
    if not value.strip():
        raise TransitionRefused(f"silence: name the {match} to silence")
    if match == "grid" and grids and value not in grids:
        raise TransitionRefused(f"silence: unknown grid {value!r}")
    if match == "kind" and kinds and value not in kinds:
        raise TransitionRefused(f"silence: unknown alert kind {value!r}; kinds: "
                                f"{', '.join(sorted(kinds))}")
    if not reason.strip():
        raise TransitionRefused("silence: a silence needs a reason")
    if not (isinstance(for_s, (int, float)) and math.isfinite(for_s) and 0 < for_s <= max_s):
        raise TransitionRefused(f"silence: the duration must be more than 0 and at most "
                                f"{max_s / 3600:g} h")
    entry = AuditEntry("silence", None, "active", actor, role, ts,
                       f"{match} {value} until {when(ts + for_s)}: {reason.strip()}")
    return Silence(silence_id, match, value, ts, ts + for_s, reason.strip(), actor, role,
                   audit=(entry,))


def matches(silence: Silence, alert: Alert) -> bool:
    """Whether ``silence`` mutes ``alert`` (raised before the silence ends)."""
    if not silence.active or alert.ts_raised >= silence.ends_at:
        return False
    if silence.match == "grid":
        return alert.grid_id == silence.value
    if silence.match == "kind":
        return alert.kind == silence.value
    return silence.value in alert.source_ids.values()


def first_match(silences: Iterable[Silence], alert: Alert) -> Silence | None:
    """The matching silence that lasts longest (ties: the lowest id), or ``None``."""
    found = [s for s in silences if matches(s, alert)]
    return max(found, key=lambda s: (s.ends_at, [-ord(c) for c in s.id])) if found else None


def hold(alert: Alert, silence: Silence) -> Alert:
    """A new alert raised under ``silence``: ``silenced`` until the silence ends, audited
    in the name of the officer who set it, with the silence's reason."""
    note = (f"silence {silence.id} by {silence.actor} on {silence.match} {silence.value} "
            f"until {when(silence.ends_at)}: {silence.reason}")
    held = lifecycle._step_alert(alert, "silence", actor=silence.actor, role=silence.role,
                                 ts=alert.ts_updated, note=note)
    return replace(held, held_until=silence.ends_at, silence_id=silence.id)


def reopen(alert: Alert, silence: Silence, *, actor: str, role: str, ts: float) -> Alert:
    """A silenced alert new again because ``silence`` ended at ``ts`` (``actor``: the
    officer who ended it, or the system at its end time)."""
    note = f"silence {silence.id} ended" + ("" if actor == SYSTEM_ACTOR else f" by {actor}")
    out = lifecycle._step_alert(alert, "reopen", actor=actor, role=role, ts=ts, note=note)
    return replace(out, held_until=None, silence_id=None)


def end(silence: Silence, *, actor: str, role: str, ts: float, note: str = "") -> Silence:
    """The silence ended at ``ts``: by itself (the system at ``ends_at``) or early.

    Raises:
        TransitionRefused: it has ended already (saying who ended it, and when).
    """
    if not silence.active:
        last = silence.audit[-1] if silence.audit else None
        by = f" by {last.actor} at {when(last.ts)}" if last else ""
        raise TransitionRefused(f"silence {silence.id} has ended already{by}")
    text = note.strip() or ("its time ended" if actor == SYSTEM_ACTOR else "ended early")
    entry = AuditEntry("end_silence", "active", "ended", actor, role, ts, text)
    return replace(silence, ended_at=ts, audit=(*silence.audit, entry))


@dataclass
class Release:
    """What ending a silence does to the alerts it held."""

    reopened: list[Alert] = field(default_factory=list)
    moved: dict[str, list[Alert]] = field(default_factory=dict)  # silence id -> alerts


def release(ended: Silence, held: Iterable[Alert], others: Mapping[str, Silence], *,
            actor: str, role: str, ts: float) -> Release:
    """The alerts ``ended`` held: each still ``silenced`` by it is reopened, or moved to
    another active silence that matches it (the one lasting longest). Alerts that moved
    on (dismissed, closed) are left as they are."""
    out = Release()
    rest = [s for s in others.values() if s.active and s.id != ended.id]
    for alert in held:
        if alert.status != "silenced" or alert.silence_id != ended.id:
            continue
        other = next((s for s in sorted(rest, key=lambda s: (-s.ends_at, s.id))
                      if s.active and _matches_now(s, alert)), None)
        if other is not None:
            moved = replace(alert, held_until=other.ends_at, silence_id=other.id)
            out.moved.setdefault(other.id, []).append(moved)
        else:
            out.reopened.append(reopen(alert, ended, actor=actor, role=role, ts=ts))
    return out


def _matches_now(silence: Silence, alert: Alert) -> bool:
    """Like :func:`matches`, whenever the alert was raised (it is held now)."""
    return matches(silence, replace(alert, ts_raised=min(alert.ts_raised, silence.starts_at)))
