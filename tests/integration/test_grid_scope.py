"""``/api/grids.geojson`` against the real gateway: the whole district for duty officers
and admins, a grid worker's own grids only (each with a point inside it), no grid for a
station manager, nothing without a session."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

import orjson
import pytest
import redis
from gridwatch.ws.auth import SESSION_COOKIE, User
from shapely.geometry import Point, shape

from gridwatch.settings import DATA_DIR

from .test_gateway import GatewayProcess, gw, session_for  # noqa: F401 - gw is a fixture

pytestmark = pytest.mark.integration


def geojson(g: GatewayProcess, session: str | None) -> Any:
    headers = {"Cookie": f"{SESSION_COOKIE}={session}"} if session else {}
    req = urllib.request.Request(f"{g.origin}/api/grids.geojson", headers=headers)
    with urllib.request.urlopen(req, timeout=5) as reply:
        assert reply.headers["Content-Type"] == "application/geo+json"
        assert reply.headers["X-Content-Type-Options"] == "nosniff"
        return orjson.loads(reply.read())


def test_each_role_gets_the_grids_it_may_see(gw: tuple[GatewayProcess, redis.Redis]) -> None:  # noqa: F811
    g, r = gw
    bundled = orjson.loads((DATA_DIR / "grids.geojson").read_bytes())
    every = [f["properties"]["id"] for f in bundled["features"]]

    officer = geojson(g, session_for(g, r, User("o1", "duty_officer")))
    assert [f["properties"]["id"] for f in officer["features"]] == every
    admin = geojson(g, session_for(g, r, User("ad1", "admin")))
    assert len(admin["features"]) == len(every)

    mine = ("G0007", "G0002")
    worker = geojson(g, session_for(g, r, User("w1", "grid_worker", grids=mine)))
    assert [f["properties"]["id"] for f in worker["features"]] == ["G0002", "G0007"]
    for f in worker["features"]:
        lon, lat = f["properties"]["center"]
        assert shape(f["geometry"]).contains(Point(lon, lat))
    assert "G0001" not in orjson.dumps(worker).decode()

    manager = geojson(g, session_for(g, r, User("m1", "station_manager", stations=("SHS",))))
    assert manager["features"] == []

    with pytest.raises(urllib.error.HTTPError) as anonymous:
        geojson(g, None)
    assert anonymous.value.code == 401
