"""Which grid a point is in: one vectorised STRtree query per batch of points."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import shapely

from .city import Grid


class GridIndex:
    """Maps (lon, lat) points to grid ids.

    A point on the shared edge of two grids goes to the grid listed first, so the
    answer never depends on the order of a batch.

    >>> from shapely.geometry import box
    >>> from gridwatch.city import Grid
    >>> idx = GridIndex([Grid("A", "A", "A", "", (), box(0, 0, 1, 1))])
    >>> idx.assign([0.5, 2.0], [0.5, 2.0])
    ['A', None]
    """

    def __init__(self, grids: Sequence[Grid]) -> None:
        self.grids = list(grids)
        self.ids = [g.id for g in self.grids]
        self.by_id = {g.id: g for g in self.grids}
        self._tree = shapely.STRtree([g.polygon for g in self.grids])

    def assign(self, lons: Sequence[float], lats: Sequence[float]) -> list[str | None]:
        """The grid id of each point, or ``None`` for a point outside every grid."""
        n = len(lons)
        if n == 0:
            return []
        points = shapely.points(np.asarray(lons, dtype=float), np.asarray(lats, dtype=float))
        pairs = self._tree.query(points, predicate="intersects")
        best = np.full(n, len(self.ids), dtype=np.int64)
        # Keep the lowest grid index per point (np.minimum.at is unbuffered, so repeats
        # of a point index all count).
        np.minimum.at(best, pairs[0], pairs[1])
        ids = self.ids
        return [ids[b] if b < len(ids) else None for b in best.tolist()]

    def workers_of(self, grid_id: str) -> tuple[str, ...]:
        """The grid workers who own ``grid_id`` (empty for an unknown grid)."""
        grid = self.by_id.get(grid_id)
        return grid.workers if grid else ()
