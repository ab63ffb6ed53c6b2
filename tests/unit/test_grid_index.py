"""GridIndex: which grid a point is in, vectorised per batch."""

from __future__ import annotations

import random

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Polygon, box

from gridwatch.city import Grid, load_grids
from gridwatch.grid_index import GridIndex
from gridwatch.settings import DATA_DIR


def grid(grid_id: str, polygon: Polygon, workers: tuple[str, ...] = ()) -> Grid:
    return Grid(grid_id, grid_id, grid_id, "street", workers, polygon)


SQUARES = GridIndex([
    grid("A", box(0, 0, 1, 1), ("w1",)),
    grid("B", box(1, 0, 2, 1), ("w1", "w2")),
    grid("C", box(0, 1, 2, 2)),
])


@pytest.fixture(scope="module")
def district() -> GridIndex:
    return GridIndex(load_grids(DATA_DIR / "grids.geojson"))


def brute_force(index: GridIndex, lon: float, lat: float) -> str | None:
    point = shapely.Point(lon, lat)
    for g in index.grids:
        if g.polygon.intersects(point):
            return g.id
    return None


def test_points_inside_go_to_their_grid_and_outside_to_none() -> None:
    assert SQUARES.assign([0.5, 1.5, 1.0, -0.5, 2.5], [0.5, 0.5, 1.5, 0.5, 2.5]) == [
        "A", "B", "C", None, None]


def test_an_empty_batch_gives_an_empty_answer() -> None:
    assert SQUARES.assign([], []) == []


def test_a_point_on_a_shared_edge_goes_to_the_grid_listed_first() -> None:
    assert SQUARES.assign([1.0], [0.5]) == ["A"]  # A | B
    assert SQUARES.assign([1.5], [1.0]) == ["B"]  # B below C
    assert SQUARES.assign([1.0], [1.0]) == ["A"]  # the corner of all three
    reordered = GridIndex([SQUARES.by_id["C"], SQUARES.by_id["B"], SQUARES.by_id["A"]])
    assert reordered.assign([1.0, 1.5, 1.0], [0.5, 1.0, 1.0]) == ["B", "C", "C"]


def test_a_point_on_the_outer_boundary_is_inside() -> None:
    assert SQUARES.assign([0.0, 2.0, 0.3], [0.0, 2.0, 0.0]) == ["A", "C", "A"]


def test_overlapping_grids_resolve_to_the_first_listed_whatever_the_tree_order() -> None:
    big = grid("big", box(0, 0, 10, 10))
    small = grid("small", box(4, 4, 5, 5))
    assert GridIndex([small, big]).assign([4.5, 8.0], [4.5, 8.0]) == ["small", "big"]
    assert GridIndex([big, small]).assign([4.5, 8.0], [4.5, 8.0]) == ["big", "big"]


def test_a_point_in_a_hole_is_outside_that_grid() -> None:
    ring = Polygon([(0, 0), (4, 0), (4, 4), (0, 4)], [[(1, 1), (3, 1), (3, 3), (1, 3)]])
    index = GridIndex([grid("ring", ring)])
    assert index.assign([2.0, 0.5], [2.0, 0.5]) == [None, "ring"]


def test_repeated_points_in_one_batch_are_each_assigned() -> None:
    lons = [0.5, 0.5, 1.5, 0.5, 1.0, 1.0]
    lats = [0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
    assert SQUARES.assign(lons, lats) == ["A", "A", "B", "A", "A", "A"]


def test_numpy_arrays_are_accepted() -> None:
    assert SQUARES.assign(np.array([0.5, 1.5]), np.array([0.5, 1.5])) == ["A", "C"]


def test_workers_of_a_grid() -> None:
    assert SQUARES.workers_of("B") == ("w1", "w2")
    assert SQUARES.workers_of("C") == ()
    assert SQUARES.workers_of("nope") == ()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(-0.5, 2.5), st.floats(-0.5, 2.5)), max_size=40))
def test_a_batch_answers_as_each_point_alone(points: list[tuple[float, float]]) -> None:
    lons = [p[0] for p in points]
    lats = [p[1] for p in points]
    together = SQUARES.assign(lons, lats)
    assert together == [SQUARES.assign([x], [y])[0] for x, y in points]
    assert together == [brute_force(SQUARES, x, y) for x, y in points]


def test_the_bundled_district_agrees_with_a_point_in_polygon_count(district: GridIndex) -> None:
    rng = random.Random(11)
    minx, miny, maxx, maxy = shapely.union_all([g.polygon for g in district.grids]).bounds
    # Points over the district's bounding box, a margin around it, and every vertex.
    lons = [rng.uniform(minx - 0.01, maxx + 0.01) for _ in range(3000)]
    lats = [rng.uniform(miny - 0.01, maxy + 0.01) for _ in range(3000)]
    for g in district.grids[:200]:
        x, y = g.polygon.exterior.coords[0]
        lons.append(x)
        lats.append(y)
    got = district.assign(lons, lats)
    want = [brute_force(district, x, y) for x, y in zip(lons, lats)]
    assert got == want
    assert None in got and len({g for g in got if g}) > 300


def test_shuffling_a_batch_only_shuffles_the_answer(district: GridIndex) -> None:
    rng = random.Random(5)
    cells = district.grids
    points = [(c.polygon.centroid.x, c.polygon.centroid.y) for c in rng.sample(cells, 400)]
    points += [(121.0, 31.0), (121.9, 31.9)]
    answer = dict(zip(points, district.assign([p[0] for p in points], [p[1] for p in points])))
    rng.shuffle(points)
    again = district.assign([p[0] for p in points], [p[1] for p in points])
    assert again == [answer[p] for p in points]
    assert answer[(121.0, 31.0)] is None
