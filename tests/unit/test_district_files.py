"""One loader for a district's files: the three ways a grids file may name its ids load
to the same grids, the cockpit's GeoJSON always carries ``properties.id``, and each kind
of file the loader cannot use is one ConfigError naming the file; the CLI, the worker
and the gateway print it as one line and exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from gridwatch.schemas.errors import ConfigError

from gridwatch.city import load_city, load_grids, read_grids
from gridwatch.settings import DATA_DIR

SQUARE = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}
RIGHT = {"type": "Polygon", "coordinates": [[[1, 0], [2, 0], [2, 1], [1, 1], [1, 0]]]}
BOWTIE = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}


def district(id_style: str) -> dict[str, Any]:
    """Two grids whose ids are written as ``id_style`` says."""
    features = []
    for gid, geom, name in (("N-1", SQUARE, "North 1"), ("N-2", RIGHT, "North 2")):
        props: dict[str, Any] = {"name": name, "workers": ["li"]}
        feature: dict[str, Any] = {"type": "Feature", "properties": props, "geometry": geom}
        if id_style == "id":
            props["id"] = gid
        elif id_style == "grid_id":
            props["grid_id"] = gid
        else:
            feature["id"] = gid
        features.append(feature)
    return {"type": "FeatureCollection", "features": features}


def write(tmp_path: Path, doc: Any, name: str = "grids.geojson") -> Path:
    path = tmp_path / name
    path.write_bytes(doc if isinstance(doc, bytes) else orjson.dumps(doc))
    return path


@pytest.mark.parametrize("style", ["id", "grid_id", "feature-id"])
def test_each_way_of_naming_the_id_loads_to_the_same_grids(style: str, tmp_path: Path) -> None:
    reference = load_grids(write(tmp_path, district("id"), "ref.geojson"))
    grids = load_grids(write(tmp_path, district(style)))
    assert [g.id for g in grids] == ["N-1", "N-2"]
    for got, want in zip(grids, reference):
        assert (got.id, got.name, got.name_zh, got.workers) == \
            (want.id, want.name, want.name_zh, want.workers)
        assert got.polygon.equals(want.polygon)


@pytest.mark.parametrize("style", ["id", "grid_id", "feature-id"])
def test_the_cockpit_geojson_names_every_grid_in_properties_id(style: str,
                                                               tmp_path: Path) -> None:
    doc = read_grids(write(tmp_path, district(style))).geojson
    assert doc["type"] == "FeatureCollection"
    assert [f["properties"]["id"] for f in doc["features"]] == ["N-1", "N-2"]
    assert [f["properties"]["name"] for f in doc["features"]] == ["North 1", "North 2"]
    assert doc["features"][0]["geometry"] == SQUARE
    orjson.dumps(doc)  # served as is


def test_a_numeric_id_is_read_as_text(tmp_path: Path) -> None:
    doc = district("feature-id")
    doc["features"][0]["id"], doc["features"][1]["id"] = 101, 102
    assert [g.id for g in load_grids(write(tmp_path, doc))] == ["101", "102"]


def test_the_bundled_files_load_unchanged() -> None:
    loaded = read_grids(DATA_DIR / "grids.geojson")
    raw = orjson.loads((DATA_DIR / "grids.geojson").read_bytes())
    assert [f["properties"]["id"] for f in loaded.geojson["features"]] == \
        [f["properties"]["id"] for f in raw["features"]]
    assert load_city(DATA_DIR / "city.json") == orjson.loads((DATA_DIR / "city.json").read_bytes())


def _one(props: dict[str, Any], geometry: Any = SQUARE) -> dict[str, Any]:
    return {"type": "FeatureCollection",
            "features": [{"type": "Feature", "properties": props, "geometry": geometry}]}


BAD_GRIDS: list[Any] = [
    pytest.param(b"{nope", "not JSON", id="not-json"),
    pytest.param({"type": "Feature", "properties": {"id": "a"}, "geometry": SQUARE},
                 "not a GeoJSON FeatureCollection", id="not-a-collection"),
    pytest.param(_one({"name": "x"}), "has no id", id="no-id"),
    pytest.param({"type": "FeatureCollection", "features": [_one({"id": "a"})["features"][0]] * 2},
                 "appears twice", id="duplicate-id"),
    pytest.param(_one({"id": "a"}, {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}),
                 "not a Polygon", id="line-geometry"),
    pytest.param(_one({"id": "a"}, BOWTIE), "invalid polygon", id="self-crossing-polygon"),
    pytest.param(_one({"id": "a b"}), "not a grid id", id="id-with-space"),
    pytest.param(_one({"id": "a|b"}), "not a grid id", id="id-with-bar"),
    pytest.param(_one({"id": {"x": 1}}), "not a grid id", id="id-an-object"),
    pytest.param(_one({"id": True}), "not a grid id", id="id-a-boolean"),
    pytest.param(_one({"id": "a", "workers": [{"w": 1}]}), "workers", id="worker-an-object"),
    pytest.param(_one({"id": "a", "name": ["x"]}), "name must be text", id="name-a-list"),
]


@pytest.mark.parametrize(("content", "says"), BAD_GRIDS)
def test_each_kind_of_bad_grids_file_is_one_clear_config_error(
        content: Any, says: str, tmp_path: Path) -> None:
    path = write(tmp_path, content)
    with pytest.raises(ConfigError) as info:
        read_grids(path)
    assert str(path) in str(info.value) and says in str(info.value)
    assert "\n" not in str(info.value)


def city() -> dict[str, Any]:
    return orjson.loads((DATA_DIR / "city.json").read_bytes())  # type: ignore[no-any-return]


def _without(section: str, field: str) -> dict[str, Any]:
    c = city()
    del c[section][0][field]
    return c


def _with(section: str, field: str, value: Any) -> dict[str, Any]:
    c = city()
    c[section][0][field] = value
    return c


def _dup_station() -> dict[str, Any]:
    c = city()
    c["stations"].append(dict(c["stations"][0]))
    return c


BAD_CITY: list[Any] = [
    pytest.param(b"[1,", "not JSON", id="not-json"),
    pytest.param([], "JSON object", id="a-list"),
    pytest.param({k: v for k, v in city().items() if k != "stations"}, "'stations'",
                 id="no-stations"),
    pytest.param({**city(), "cameras": {"a": 1}}, "'cameras'", id="cameras-not-a-list"),
    pytest.param(_without("checkpoints", "lat"), "missing field 'lat'", id="checkpoint-no-lat"),
    pytest.param(_with("cameras", "lon", "121.4"), "'lon' has the wrong type", id="lon-as-text"),
    pytest.param(_with("cameras", "lon", 500.0), "out of range", id="lon-out-of-range"),
    pytest.param(_with("workers", "grids", "G0001"), "wrong type", id="worker-grids-a-string"),
    pytest.param(_with("workers", "grids", [1]), "grid ids", id="worker-grids-numbers"),
    pytest.param(_with("stations", "name", 7), "'name' has the wrong type", id="station-name"),
    pytest.param(_dup_station(), "appears twice", id="duplicate-station"),
]


@pytest.mark.parametrize(("content", "says"), BAD_CITY)
def test_each_kind_of_bad_city_file_is_one_clear_config_error(
        content: Any, says: str, tmp_path: Path) -> None:
    path = write(tmp_path, content, "city.json")
    with pytest.raises(ConfigError) as info:
        load_city(path)
    assert str(path) in str(info.value) and says in str(info.value)


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gridwatch.cli", *args], capture_output=True,
                          text=True, timeout=60, env={**os.environ, **env}, check=False)


@pytest.mark.parametrize("command", [["worker"], ["gateway", "--port", "1"]])
def test_the_worker_and_gateway_refuse_to_start_on_a_bad_grids_file_in_one_line(
        command: list[str], tmp_path: Path) -> None:
    path = write(tmp_path, _one({"name": "no id"}))
    done = _cli(command, {"GRIDWATCH_GRIDS": str(path), "GRIDWATCH_REDIS": "redis://127.0.0.1:1/0"})
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    want = f"gridwatch: {path}: feature 0 has no id (an id or grid_id property, or a feature id)"
    assert done.stderr.strip().splitlines() == [want]


def test_the_gateway_refuses_to_start_on_a_bad_city_file_in_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, {"stations": []}, "city.json")
    done = _cli(["gateway", "--port", "1"], {"GRIDWATCH_CITY": str(path)})
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == f"gridwatch: {path}: missing field 'checkpoints' (a list)"


def test_simulate_refuses_a_bad_city_file_in_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, _with("checkpoints", "kind", None), "city.json")
    done = _cli(["simulate", "--out", str(tmp_path / "x.jsonl")], {"GRIDWATCH_CITY": str(path)})
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "missing field 'kind'" in done.stderr and len(done.stderr.strip().splitlines()) == 1
