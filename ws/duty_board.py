"""Who is on duty, grid by grid: the officers' duty board (``GET /api/duty``). No I/O.

The grids and their workers are the district's (the grids file's ``workers``); the duty
records are those the worker stores (``keys.DUTY``), as :mod:`gridwatch.agents.duty`
reads them: a worker never marked is on duty. A grid with none of its workers on duty
(or with no worker at all) is *uncovered*: a dispatch there makes no task and the alert
comes back to the officers, flagged ``needs_officer``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def is_on(records: Mapping[str, Mapping[str, Any]], worker: str) -> bool:
    """Whether ``worker`` is on duty (never marked: on), as the worker decides it."""
    record = records.get(worker)
    return record is None or record.get("on") is not False


def build(grids: Iterable[tuple[str, Iterable[str]]],
          records: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The board: per grid (in the district's order) its workers on and off duty, the
    uncovered grids, every worker of the district with their duty, and the counts.

    Args:
        grids: ``(grid id, its workers)`` for each grid of the district.
        records: the stored duty records by worker name.

    Returns:
        ``{"grids": [{"grid_id", "on", "off"}], "uncovered": [grid ids],
        "workers": [{"worker", "on", "grids", "ts", "actor", "role"}],
        "counts": {"grids", "uncovered", "on", "off"}}``; a worker's ``ts``, ``actor``
        and ``role`` are ``None`` when they never marked their duty.
    """
    rows: list[dict[str, Any]] = []
    uncovered: list[str] = []
    of: dict[str, list[str]] = {}
    for grid_id, workers in grids:
        names = sorted(set(workers))
        on = [w for w in names if is_on(records, w)]
        rows.append({"grid_id": grid_id, "on": on, "off": [w for w in names if w not in on]})
        if not on:
            uncovered.append(grid_id)
        for w in names:
            of.setdefault(w, []).append(grid_id)
    people = []
    for name in sorted(of):
        rec = records.get(name) or {}
        people.append({"worker": name, "on": is_on(records, name), "grids": of[name],
                       "ts": rec.get("ts"), "actor": rec.get("actor"), "role": rec.get("role")})
    on_count = sum(1 for p in people if p["on"])
    return {"grids": rows, "uncovered": uncovered, "workers": people,
            "counts": {"grids": len(rows), "uncovered": len(uncovered), "on": on_count,
                       "off": len(people) - on_count}}
