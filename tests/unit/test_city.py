"""The simulated district: generated reproducibly, grids that tile without overlap, and a
grids loader that refuses broken files with ConfigError."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import shapely
from gridwatch.schemas.errors import ConfigError
from shapely.geometry import shape

from gridwatch.city import Grid, generate, load_city, load_grids, write
from gridwatch.grid_index import GridIndex
from gridwatch.settings import DATA_DIR

SQUARE = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}


@pytest.fixture(scope="module")
def small() -> tuple[dict[str, Any], dict[str, Any]]:
    return generate(grids=150, seed=3)


def grids_of(geojson: dict[str, Any], tmp_path: Path) -> list[Grid]:
    path = tmp_path / "grids.geojson"
    path.write_bytes(orjson.dumps(geojson))
    return load_grids(path)


# ---- generate -----------------------------------------------------------------------------


def test_generate_is_deterministic_for_a_seed(small: tuple[dict[str, Any], dict[str, Any]]) -> None:
    again = generate(grids=150, seed=3)
    assert orjson.dumps(again[0]) == orjson.dumps(small[0])
    assert orjson.dumps(again[1]) == orjson.dumps(small[1])


def test_another_seed_gives_another_district(small: tuple[dict[str, Any], dict[str, Any]]) -> None:
    other = generate(grids=150, seed=4)
    assert other[0]["features"][0]["geometry"] != small[0]["features"][0]["geometry"]
    assert other[1]["checkpoints"] != small[1]["checkpoints"]


def test_the_bundled_district_is_what_generate_makes_with_the_default_seed() -> None:
    geojson, city = generate()  # grids=800, seed=7
    assert orjson.dumps(geojson) == (DATA_DIR / "grids.geojson").read_bytes()
    assert city == load_city(DATA_DIR / "city.json")


def test_the_requested_number_of_grids_with_unique_ids_and_owners(
        small: tuple[dict[str, Any], dict[str, Any]], tmp_path: Path) -> None:
    geojson, city = small
    grids = grids_of(geojson, tmp_path)
    assert len(grids) == 150
    assert len({g.id for g in grids}) == 150
    assert all(g.workers for g in grids)
    owned = {grid for w in city["workers"] for grid in w["grids"]}
    assert owned == {g.id for g in grids}
    assert len({g.street for g in grids}) > 5


def _assert_tiles(grids: list[Grid]) -> None:
    polygons = [g.polygon for g in grids]
    assert all(p.is_valid and not p.is_empty for p in polygons)
    union = shapely.union_all(polygons)
    total = sum(p.area for p in polygons)
    assert union.area == pytest.approx(total, rel=1e-6)  # no overlap between grids
    # And no pair overlaps by more than rounding (shared edges only).
    tree = shapely.STRtree(polygons)
    left, right = tree.query(polygons, predicate="intersects")
    for i, j in zip(left.tolist(), right.tolist()):
        if i < j:
            assert polygons[i].intersection(polygons[j]).area < 1e-10, (grids[i].id, grids[j].id)


def test_generated_grids_do_not_overlap(
        small: tuple[dict[str, Any], dict[str, Any]], tmp_path: Path) -> None:
    _assert_tiles(grids_of(small[0], tmp_path))


def test_the_bundled_grids_do_not_overlap() -> None:
    grids = load_grids(DATA_DIR / "grids.geojson")
    assert 700 <= len(grids) <= 1200
    _assert_tiles(grids)


@pytest.mark.parametrize("which", ["generated", "bundled"])
def test_every_gate_checkpoint_and_camera_is_inside_a_grid(
        which: str, small: tuple[dict[str, Any], dict[str, Any]], tmp_path: Path) -> None:
    if which == "generated":
        grids, city = grids_of(small[0], tmp_path), small[1]
    else:
        grids, city = load_grids(DATA_DIR / "grids.geojson"), load_city(DATA_DIR / "city.json")
    index = GridIndex(grids)
    gates = [c for c in city["checkpoints"] if c["kind"] == "gate"]
    assert gates
    assert None not in index.assign([c["lon"] for c in gates], [c["lat"] for c in gates])
    cams = city["cameras"]
    assert None not in index.assign([c["lon"] for c in cams], [c["lat"] for c in cams])
    station = city["stations"][0]
    assert index.assign([station["lon"]], [station["lat"]]) != [None]
    # Some road checkpoints stand outside every grid, for the "unassigned" path.
    roads = [c for c in city["checkpoints"] if c["kind"] == "road"]
    assert None in index.assign([c["lon"] for c in roads], [c["lat"] for c in roads])


def test_write_then_load_gives_the_same_district(
        small: tuple[dict[str, Any], dict[str, Any]], tmp_path: Path) -> None:
    write(small[0], small[1], tmp_path / "g.geojson", tmp_path / "c.json")
    grids = load_grids(tmp_path / "g.geojson")
    assert [g.id for g in grids] == [f["properties"]["id"] for f in small[0]["features"]]
    assert grids[0].polygon.equals(shape(small[0]["features"][0]["geometry"]))
    assert load_city(tmp_path / "c.json") == small[1]


# ---- load_grids ---------------------------------------------------------------------------


def feature(props: Any = None, geometry: Any = SQUARE) -> dict[str, Any]:
    return {"type": "Feature", "properties": {"id": "a"} if props is None else props,
            "geometry": geometry}


def collection(*features: Any) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": list(features)}


def test_a_district_of_its_own_loads_with_its_properties(tmp_path: Path) -> None:
    grids = grids_of(collection(
        feature({"id": "N-1", "name": "North 1", "workers": ["li", "wang"]}),
        {"type": "Feature", "id": "N-2", "properties": {},
         "geometry": {"type": "Polygon", "coordinates": [[[1, 0], [2, 0], [2, 1], [1, 0]]]}},
    ), tmp_path)
    assert [g.id for g in grids] == ["N-1", "N-2"]
    assert grids[0].name == "North 1" and grids[0].workers == ("li", "wang")
    assert grids[1].name == "N-2" and grids[1].workers == ()


def test_a_multipolygon_grid_is_accepted(tmp_path: Path) -> None:
    multi = {"type": "MultiPolygon", "coordinates": [
        [[[0, 0], [3, 0], [3, 3], [0, 3], [0, 0]]],
        [[[5, 5], [6, 5], [6, 6], [5, 6], [5, 5]]],
    ]}
    (grid,) = grids_of(collection(feature(geometry=multi)), tmp_path)
    assert GridIndex([grid]).assign([1.0], [1.0]) == ["a"]


def test_a_point_in_the_smaller_part_of_a_multipolygon_grid_is_in_that_grid(
        tmp_path: Path) -> None:
    multi = {"type": "MultiPolygon", "coordinates": [
        [[[0, 0], [3, 0], [3, 3], [0, 3], [0, 0]]],
        [[[5, 5], [6, 5], [6, 6], [5, 6], [5, 5]]],
    ]}
    (grid,) = grids_of(collection(feature(geometry=multi)), tmp_path)
    assert GridIndex([grid]).assign([5.5], [5.5]) == ["a"]


def test_a_file_with_the_grid_id_property_of_the_issue_loads(tmp_path: Path) -> None:
    (grid,) = grids_of(collection(feature({"grid_id": "G-7", "name": "Seven",
                                           "workers": ["w1"]})), tmp_path)
    assert grid.id == "G-7"


def _write(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "grids.geojson"
    path.write_bytes(content)
    return path


BROKEN: list[Any] = [
    pytest.param(None, id="missing-file"),
    pytest.param(b"", id="empty-file"),
    pytest.param(b'{"type": "FeatureCollection", "features": [', id="truncated-json"),
    pytest.param(orjson.dumps(collection()), id="no-features"),
    pytest.param(orjson.dumps({"type": "FeatureCollection"}), id="features-absent"),
    pytest.param(orjson.dumps(collection(feature({}))), id="feature-without-id"),
    pytest.param(orjson.dumps(collection(feature(), feature())), id="duplicate-id"),
    pytest.param(orjson.dumps(collection(feature(geometry={"type": "Point",
                                                           "coordinates": [0, 0]}))),
                 id="point-geometry"),
    pytest.param(orjson.dumps([feature()]), id="top-level-list"),
    pytest.param(orjson.dumps(collection({"type": "Feature", "properties": {"id": "a"}})),
                 id="feature-without-geometry"),
    pytest.param(orjson.dumps(collection(feature(geometry=None))), id="null-geometry"),
    pytest.param(orjson.dumps(collection(feature(geometry={"type": "Polygon",
                                                           "coordinates": "x"}))),
                 id="coordinates-not-a-list"),
    pytest.param(orjson.dumps(collection(feature(geometry={
        "type": "Polygon", "coordinates": [[[0, 0], [1, 0]]]}))),
                 id="ring-of-two-points"),
    pytest.param(orjson.dumps(collection(feature(geometry={"type": "Blob",
                                                           "coordinates": []}))),
                 id="unknown-geometry-type"),
    pytest.param(orjson.dumps(collection("not a feature")), id="feature-not-an-object"),
    pytest.param(orjson.dumps({"type": "FeatureCollection", "features": {"a": 1}}),
                 id="features-not-a-list"),
    pytest.param(orjson.dumps(collection(feature([1]))), id="properties-not-an-object"),
]


@pytest.mark.parametrize("content", BROKEN)
def test_a_broken_grids_file_is_refused_with_config_error(
        content: bytes | None, tmp_path: Path) -> None:
    path = tmp_path / "absent.geojson" if content is None else _write(tmp_path, content)
    with pytest.raises(ConfigError) as info:
        load_grids(path)
    assert str(path) in str(info.value)


def test_workers_given_as_a_string_are_refused_not_split_into_characters(
        tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        grids_of(collection(feature({"id": "a", "workers": "w0001"})), tmp_path)
    assert "workers" in str(info.value)


def test_load_city_refuses_a_broken_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_city(tmp_path / "absent.json")
    with pytest.raises(ConfigError):
        load_city(_write(tmp_path, b"{not json"))
