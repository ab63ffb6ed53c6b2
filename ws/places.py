"""The district's grids as each user may see them (``/api/grids.geojson``). No I/O.

Duty officers and admins get the whole district, the bytes built once at start. A grid
worker gets only the grids :func:`.policy.may_see_grid` lets them see, each with a
``center`` property: ``[lon, lat]``, a point inside the polygon (not its centroid, which
may fall outside a bent grid), where the phone's map app is opened when a task's alert
carries no place of its own. A station manager sees no grid.
"""

from __future__ import annotations

from typing import Any

import orjson

from gridwatch.city import GridsFile

from .auth import User
from .policy import may_see_grid

EVERY_GRID = ("duty_officer", "admin")


class Places:
    """The district's GeoJSON, whole and per user.

    Args:
        district: the grids file as :func:`gridwatch.city.read_grids` loaded it.
    """

    def __init__(self, district: GridsFile) -> None:
        self.whole = orjson.dumps(district.geojson)
        self.workers: tuple[tuple[str, tuple[str, ...]], ...] = tuple(
            (g.id, g.workers) for g in district.grids)  # each grid's workers, in order
        self._head = {k: v for k, v in district.geojson.items() if k != "features"}
        polygons = {g.id: g.polygon for g in district.grids}
        self._features: list[tuple[str, dict[str, Any]]] = []
        for feature in district.geojson["features"]:
            gid = feature["properties"]["id"]
            p = polygons[gid].representative_point()
            props = {**feature["properties"], "center": [round(p.x, 6), round(p.y, 6)]}
            self._features.append((gid, {**feature, "properties": props}))

    def geojson_for(self, user: User) -> bytes:
        """The FeatureCollection ``user`` may see, as JSON bytes."""
        if user.role in EVERY_GRID:
            return self.whole
        mine = [f for gid, f in self._features if may_see_grid(user, gid)]
        return orjson.dumps({**self._head, "features": mine})
