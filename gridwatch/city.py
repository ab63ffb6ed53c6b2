"""The simulated district: grids, grid workers, checkpoints, cameras and a station.

``generate()`` builds a seeded, reproducible district shaped like an inner-city
district of Shanghai (about 9 x 9 km, 13 sub-districts/streets, ~800 grids drawn as
a relaxed Voronoi tessellation). ``gridwatch city generate`` writes it to
``gridwatch/data/grids.geojson`` and ``city.json``; the bundled copies were made by it
with the default seed, so the demo and tests run on the same city.

``read_grids`` / ``load_grids`` / ``load_city`` read any district of the same format, and
every component reads the files through them: a district brings its own GeoJSON (a
FeatureCollection of Polygons whose id is an ``id`` or ``grid_id`` property or the
feature id, with optional ``name``, ``name_zh``, ``street`` and ``workers``). A file
they cannot use is one :class:`ConfigError` naming the file and what is wrong.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import shapely
import shapely.validation
from shapely.geometry import MultiPoint, MultiPolygon, Polygon, mapping, shape

from .schemas.errors import ConfigError

STREETS = [
    ("tianping", "天平"), ("hunan", "湖南"), ("xietu", "斜土"), ("fenglin", "枫林"),
    ("changqiao", "长桥"), ("tianlin", "田林"), ("hongmei", "虹梅"), ("kangjian", "康健"),
    ("xujiahui", "徐家汇"), ("lingyun", "凌云"), ("longhua", "龙华"),
    ("caohejing", "漕河泾"), ("huajing", "华泾"),
]
# A rough district outline (lon, lat), clockwise.
OUTLINE = [
    (121.405, 31.215), (121.430, 31.222), (121.462, 31.219), (121.478, 31.205),
    (121.474, 31.178), (121.468, 31.150), (121.452, 31.132), (121.425, 31.128),
    (121.408, 31.142), (121.398, 31.170), (121.400, 31.195),
]


@dataclass(frozen=True)
class Grid:
    """One grid: a polygon of the district owned by one or more grid workers."""

    id: str
    name: str
    name_zh: str
    street: str
    workers: tuple[str, ...]
    polygon: Polygon | MultiPolygon


def _relaxed_cells(boundary: Polygon, n: int, rng: random.Random, rounds: int = 2) -> list[Polygon]:
    minx, miny, maxx, maxy = boundary.bounds
    points: list[tuple[float, float]] = []
    while len(points) < n:
        p = (rng.uniform(minx, maxx), rng.uniform(miny, maxy))
        if boundary.contains(shapely.Point(p)):
            points.append(p)
    cells: list[Polygon] = []
    for _ in range(rounds + 1):
        # ordered=True returns the regions in the order of the points (GEOS >= 3.12),
        # so no point has to search every region.
        regions = shapely.voronoi_polygons(MultiPoint(points), extend_to=boundary.envelope,
                                           ordered=True)
        by_point = [region.intersection(boundary) for region in regions.geoms]
        cells = [c if isinstance(c, Polygon) else max(c.geoms, key=lambda g: g.area)
                 for c in by_point]
        points = [(c.centroid.x, c.centroid.y) for c in cells]  # Lloyd relaxation
    return cells


def generate(*, grids: int = 800, seed: int = 7) -> tuple[dict[str, Any], dict[str, Any]]:
    """Build a district: (grids GeoJSON FeatureCollection, city dict).

    Args:
        grids: how many grids to cut the district into.
        seed: the random seed; the same seed gives the same district.
    """
    rng = random.Random(seed)
    boundary = Polygon(OUTLINE)
    cells = _relaxed_cells(boundary, grids, rng)
    cells.sort(key=lambda c: (-round(c.centroid.y, 3), c.centroid.x))  # north-west first
    centre = boundary.centroid
    # Thirteen street centres on a ring around the middle; each grid joins the nearest.
    street_seeds = [
        (centre.x + 0.032 * math.cos(2 * math.pi * i / 13),
         centre.y + 0.035 * math.sin(2 * math.pi * i / 13))
        for i in range(13)
    ]
    features = []
    workers: dict[str, list[str]] = {}
    worker_no = 0
    street_counts: dict[str, int] = {}
    for i, cell in enumerate(cells):
        c = cell.centroid
        s = min(range(13), key=lambda k: (street_seeds[k][0] - c.x) ** 2 + (street_seeds[k][1] - c.y) ** 2)
        street, street_zh = STREETS[s]
        street_counts[street] = street_counts.get(street, 0) + 1
        grid_id = f"G{i + 1:04d}"
        owners = []
        # Most grids have their own worker, about a third share a second one, and some
        # workers look after two neighbouring grids (as in Nanhai's 1,042 grids).
        if worker_no and rng.random() < 0.15:
            owners.append(f"w{worker_no:04d}")
        else:
            worker_no += 1
            owners.append(f"w{worker_no:04d}")
        if rng.random() < 0.35:
            worker_no += 1
            owners.append(f"w{worker_no:04d}")
        for w in owners:
            workers.setdefault(w, []).append(grid_id)
        rounded = shapely.set_precision(cell, 1e-6)
        features.append({
            "type": "Feature",
            "properties": {
                "id": grid_id,
                "name": f"{street.title()} grid {street_counts[street]}",
                "name_zh": f"{street_zh}街道第{street_counts[street]}网格",
                "street": street,
                "workers": owners,
            },
            "geometry": mapping(rounded),
        })
    geojson = {"type": "FeatureCollection", "name": "gridwatch-district", "features": features}

    def inside_point(poly: Polygon) -> tuple[float, float]:
        minx, miny, maxx, maxy = poly.bounds
        while True:
            p = (round(rng.uniform(minx, maxx), 6), round(rng.uniform(miny, maxy), 6))
            if poly.contains(shapely.Point(p)):
                return p

    checkpoints = []
    for i, cell in enumerate(rng.sample(cells, k=min(len(cells), 320))):
        lon, lat = inside_point(cell)
        checkpoints.append({"id": f"cp-{i + 1:04d}", "kind": "gate", "lon": lon, "lat": lat})
    # Road checkpoints on the district's edge: some stand just outside every grid.
    ring = boundary.exterior
    for j in range(24):
        p = ring.interpolate(j / 24, normalized=True)
        out = 0.0015 if j % 3 == 0 else -0.0008
        lon = round(p.x + (out if p.x > centre.x else -out), 6)
        checkpoints.append({"id": f"cp-r{j + 1:02d}", "kind": "road", "lon": lon,
                            "lat": round(p.y, 6)})
    cameras = []
    for i, cell in enumerate(rng.sample(cells, k=min(len(cells), 90))):
        lon, lat = inside_point(cell)
        zone = f"pharmacy:{i + 1:03d}" if i < 60 else f"market:{i - 59:03d}"
        cameras.append({"id": f"cam-{i + 1:04d}", "lon": lon, "lat": lat, "zone": zone})
    station_cell = min(cells, key=lambda c: c.centroid.distance(shapely.Point(121.430, 31.155)))
    slon, slat = inside_point(station_cell)
    city = {
        "name": "gridwatch simulated district",
        "name_zh": "模拟城区",
        "seed": seed,
        "checkpoints": checkpoints,
        "cameras": cameras,
        "stations": [{
            "id": "SHS", "name": "South Station", "name_zh": "南站", "lon": slon, "lat": slat,
            "daily_arrivals": 5000,
        }],
        "workers": [{"id": w, "grids": g} for w, g in sorted(workers.items())],
    }
    return geojson, city


@dataclass(frozen=True)
class GridsFile:
    """A district's grids as loaded: the grids, and the GeoJSON the cockpit is served.

    ``geojson`` is the file's FeatureCollection normalised: every feature carries its
    grid id as ``properties.id`` (and as the feature id), with ``name`` and ``name_zh``
    filled in, whichever of ``id``, ``grid_id`` or the feature id the file used.
    """

    grids: list[Grid]
    geojson: dict[str, Any]


# A grid id becomes part of Redis keys, channel names and "|"-separated trace members.
_GRID_ID = re.compile(r"^[^\s|]{1,64}$")


def _read_json(path: Path, what: str) -> Any:
    try:
        return orjson.loads(Path(path).read_bytes())
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{what} {path}: not JSON ({exc})") from None


def _grid_id(feature: dict[str, Any], props: dict[str, Any]) -> object:
    for value in (props.get("id"), props.get("grid_id"), feature.get("id")):
        if value is not None and value != "":
            return value
    return None


def _geometry(path: Path, grid_id: str, raw: object) -> Polygon | MultiPolygon:
    try:
        geom = shape(raw)  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001 - shapely raises many kinds for bad input
        raise ConfigError(f"{path}: grid {grid_id} has no valid geometry ({exc})") from None
    if geom.geom_type not in ("Polygon", "MultiPolygon") or geom.is_empty:
        raise ConfigError(f"{path}: grid {grid_id}: geometry is a {geom.geom_type}, "
                          "not a Polygon or MultiPolygon")
    if not geom.is_valid:
        why = shapely.validation.explain_validity(geom)
        raise ConfigError(f"{path}: grid {grid_id}: invalid polygon ({why})")
    return geom  # type: ignore[return-value]


def read_grids(path: Path) -> GridsFile:
    """Read a grids GeoJSON FeatureCollection of Polygons or MultiPolygons.

    A feature's id is its ``id`` property, else its ``grid_id`` property, else the
    feature's own ``id``: a string (no spaces or ``|``, at most 64 characters) or a whole
    number. Every component (worker, gateway, CLI, tools) reads the grids through here.

    Raises:
        ConfigError: the file is missing, not JSON, not a FeatureCollection, or a feature
            lacks an id, repeats one, or has no valid polygon; the message names the
            file and the feature.
    """
    doc = _read_json(path, "grids GeoJSON")
    features = doc.get("features") if isinstance(doc, dict) else None
    if not isinstance(features, list) or doc.get("type", "FeatureCollection") != "FeatureCollection":
        raise ConfigError(f"{path}: not a GeoJSON FeatureCollection (no features list)")
    grids: list[Grid] = []
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for n, feature in enumerate(features):
        if not isinstance(feature, dict):
            raise ConfigError(f"{path}: feature {n} is not an object")
        props = feature.get("properties") or {}
        if not isinstance(props, dict):
            raise ConfigError(f"{path}: feature {n}: properties must be an object")
        raw_id = _grid_id(feature, props)
        if raw_id is None:
            raise ConfigError(f"{path}: feature {n} has no id (an id or grid_id property, "
                              "or a feature id)")
        if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)) \
                or not _GRID_ID.match(str(raw_id)):
            raise ConfigError(f"{path}: feature {n}: id {str(raw_id)[:80]!r} is not a grid id "
                              "(text without spaces or '|', at most 64 characters, or a number)")
        grid_id = str(raw_id)
        if grid_id in seen:
            raise ConfigError(f"{path}: grid id {grid_id} appears twice")
        seen.add(grid_id)
        geom = _geometry(path, grid_id, feature.get("geometry"))
        workers = props.get("workers", [])
        if isinstance(workers, str) or not isinstance(workers, list) \
                or not all(isinstance(w, (str, int)) and not isinstance(w, bool) for w in workers):
            raise ConfigError(f"{path}: grid {grid_id}: workers must be a list of ids")
        for name in ("name", "name_zh", "street"):
            if not isinstance(props.get(name, ""), (str, int, float)):
                raise ConfigError(f"{path}: grid {grid_id}: {name} must be text")
        grid = Grid(
            id=grid_id,
            name=str(props.get("name", grid_id)),
            name_zh=str(props.get("name_zh", props.get("name", grid_id))),
            street=str(props.get("street", "")),
            workers=tuple(str(w) for w in workers),
            polygon=geom,
        )
        grids.append(grid)
        out.append({"type": "Feature", "id": grid_id,
                    "properties": {**props, "id": grid_id, "name": grid.name,
                                   "name_zh": grid.name_zh, "street": grid.street,
                                   "workers": list(grid.workers)},
                    "geometry": feature["geometry"]})
    if not grids:
        raise ConfigError(f"{path}: no grids")
    geojson = {k: v for k, v in doc.items() if k not in ("features",)}
    geojson.update(type="FeatureCollection", features=out)
    return GridsFile(grids=grids, geojson=geojson)


def load_grids(path: Path) -> list[Grid]:
    """The grids of a grids GeoJSON file (see :func:`read_grids`).

    Raises:
        ConfigError: the file cannot be used; the message names it and what is wrong.
    """
    return read_grids(path).grids


# What the simulator, the demo, the crew and the gateway read of a city file; each list
# may be empty, but its items must carry these fields with these types.
_NUMBER = (int, float)
CITY_LISTS: dict[str, dict[str, tuple[type, ...]]] = {
    "checkpoints": {"id": (str,), "kind": (str,), "lon": _NUMBER, "lat": _NUMBER},
    "cameras": {"id": (str,), "lon": _NUMBER, "lat": _NUMBER, "zone": (str,)},
    "stations": {"id": (str,), "lon": _NUMBER, "lat": _NUMBER},
    "workers": {"id": (str,), "grids": (list,)},
}
_OPTIONAL = {"stations": {"name": (str,), "name_zh": (str,), "daily_arrivals": _NUMBER}}


def _check_item(path: Path, section: str, n: int, item: object) -> str:
    if not isinstance(item, dict):
        raise ConfigError(f"{path}: {section}[{n}] is not an object")
    for name, kinds in CITY_LISTS[section].items():
        value = item.get(name)
        if value is None:
            raise ConfigError(f"{path}: {section}[{n}]: missing field {name!r}")
        if isinstance(value, bool) or not isinstance(value, kinds) or value == "":
            raise ConfigError(f"{path}: {section}[{n}]: {name!r} has the wrong type")
    for name, kinds in _OPTIONAL.get(section, {}).items():
        value = item.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, kinds)):
            raise ConfigError(f"{path}: {section}[{n}]: {name!r} has the wrong type")
    if section == "workers" and not all(isinstance(g, str) and g for g in item["grids"]):
        raise ConfigError(f"{path}: {section}[{n}]: grids must be a list of grid ids")
    if "lon" in item and not (-180 <= item["lon"] <= 180 and -90 <= item["lat"] <= 90):
        raise ConfigError(f"{path}: {section}[{n}]: lon/lat out of range")
    return str(item["id"])


def load_city(path: Path) -> dict[str, Any]:
    """Read and check the city file (checkpoints, cameras, stations, workers).

    Raises:
        ConfigError: the file is missing or not JSON, a section is missing or not a
            list, an item lacks a field or has one of the wrong type, or an id repeats;
            the message names the file and the item.
    """
    city = _read_json(path, "city file")
    if not isinstance(city, dict):
        raise ConfigError(f"{path}: the city file must be a JSON object")
    for section in CITY_LISTS:
        items = city.get(section)
        if not isinstance(items, list):
            raise ConfigError(f"{path}: missing field {section!r} (a list)")
        seen: set[str] = set()
        for n, item in enumerate(items):
            item_id = _check_item(path, section, n, item)
            if item_id in seen:
                raise ConfigError(f"{path}: {section}: id {item_id} appears twice")
            seen.add(item_id)
    return city


def write(geojson: dict[str, Any], city: dict[str, Any], grids_path: Path, city_path: Path) -> None:
    """Write a generated district to disk."""
    grids_path.write_bytes(orjson.dumps(geojson))
    city_path.write_bytes(orjson.dumps(city, option=orjson.OPT_INDENT_2))
