"""The officers' duty board (``ws/duty_board.py``): who is on duty per grid, and the
grids where no one is (a dispatch there comes back to the officers)."""

from __future__ import annotations

import pytest
from gridwatch.agents import duty as worker_duty
from gridwatch.schemas.records import Duty
from gridwatch.ws import duty_board


def rec(worker: str, on: bool, actor: str | None = None) -> dict[str, object]:
    return {"worker": worker, "on": on, "ts": 1000.0, "actor": actor or worker,
            "role": "grid_worker", "note": ""}


GRIDS = [("G1", ["a"]), ("G2", ["b", "a"]), ("G3", ["c", "d"]), ("G4", [])]


def test_per_grid_on_and_off_and_the_uncovered_grids() -> None:
    board = duty_board.build(GRIDS, {"a": rec("a", False), "c": rec("c", True),
                                     "d": rec("d", False, actor="o1")})
    assert board["grids"] == [
        {"grid_id": "G1", "on": [], "off": ["a"]},
        {"grid_id": "G2", "on": ["b"], "off": ["a"]},
        {"grid_id": "G3", "on": ["c"], "off": ["d"]},
        {"grid_id": "G4", "on": [], "off": []},
    ]
    # G1: its only worker is off; G4 has no worker at all: both come back to the officers.
    assert board["uncovered"] == ["G1", "G4"]
    people = {p["worker"]: p for p in board["workers"]}
    assert [p["worker"] for p in board["workers"]] == ["a", "b", "c", "d"]
    assert people["a"]["grids"] == ["G1", "G2"] and people["a"]["on"] is False
    assert people["b"] == {"worker": "b", "on": True, "grids": ["G2"], "ts": None,
                           "actor": None, "role": None}  # never marked: on duty
    assert (people["d"]["on"], people["d"]["actor"]) == (False, "o1")
    assert board["counts"] == {"grids": 4, "uncovered": 2, "on": 2, "off": 2}


def test_no_record_at_all_every_grid_with_a_worker_is_covered() -> None:
    board = duty_board.build(GRIDS[:3], {})
    assert board["uncovered"] == [] and board["counts"]["off"] == 0


def test_a_marked_worker_of_no_grid_is_not_on_the_board() -> None:
    board = duty_board.build([("G1", ["a"])], {"zz": rec("zz", False)})
    assert [p["worker"] for p in board["workers"]] == ["a"]
    assert board["counts"] == {"grids": 1, "uncovered": 0, "on": 1, "off": 0}


@pytest.mark.parametrize("stored", [None, True, False])
def test_on_duty_as_the_worker_decides_it(stored: bool | None) -> None:
    records = {} if stored is None else {"a": rec("a", stored)}
    duties = {} if stored is None else {"a": Duty.from_dict(records["a"])}
    assert duty_board.is_on(records, "a") is worker_duty.is_on(duties, "a")
