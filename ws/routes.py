"""The gateway's plain HTTP, on the socket's port: login, ``/api/*``, static files, and
the checks that let a WebSocket upgrade on ``/ws`` proceed.

Refusals before the upgrade are HTTP: 401 without a valid session, 403 for a foreign
Origin, 429 for a user at its socket cap or an address past its failed-check budget.
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson
from gridwatch.schemas import commands as contract
from gridwatch.schemas.events import format_time
from prometheus_client import generate_latest
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from gridwatch import alert_export, keys, station_view

from . import duty_board, http, wall
from .auth import origin_allowed
from .hub import Hub
from .metrics import Metrics
from .places import Places
from .policy import may_export_alerts, may_see, may_see_grid, sees_district
from .sessions import SessionGate
from .traces import PATHS as TRACE_PATHS
from .traces import TraceLookups

WALL_TTL_S = {"/api/trends": 30.0, "/api/top": 5.0}  # hour buckets move slowly; scores fast


class Routes:
    """What each path answers.

    Args:
        sockets: open sockets per user name (the handler keeps it), for the per-user cap.
        stations: the stations as ``/api/me`` lists them.
        places: the district's grids, served as ``/api/grids.geojson`` to each user
            as :mod:`.places` scopes them.
        traces: the trace lookup and its audit (``/api/trace``, ``/api/trace/audit``).
        proc: this process's index when several share the port (``/healthz`` says it).
    """

    def __init__(self, *, hub: Hub, gate: SessionGate, metrics: Metrics, origins: tuple[str, ...],
                 user_sockets: int, sockets: Mapping[str, int],
                 stations: list[dict[str, Any]], places: Places, traces: TraceLookups,
                 proc: int | None = None) -> None:
        self.hub = hub
        self.gate = gate
        self.metrics = metrics
        self.origins = origins
        self.user_sockets = user_sockets
        self.sockets = sockets
        self.stations = stations
        self.places = places
        self.traces = traces
        self.health: dict[str, Any] = {"ok": True} if proc is None else {"ok": True, "proc": proc}
        self.grid_set = frozenset(hub.grid_ids)
        self.files = http.load_static()
        self.contract = orjson.dumps(contract.to_dict())  # the cockpit's command rules
        self.grid_names = {f["properties"]["id"]: f["properties"]
                           for f in orjson.loads(places.whole).get("features", [])}
        # The wall's figures, read at most once per WALL_TTL_S for every officer.
        self.wall_cache: dict[str, tuple[float, bytes]] = {}

    async def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Answer plain HTTP, or vet a WebSocket upgrade (``None`` lets it proceed)."""
        path = urlsplit(request.path).path
        if path == "/healthz":
            return http.json_response(200, {**self.health, "clients": len(self.hub.conns)})
        address = _address(connection)
        if path == "/login":
            if request.method == "POST":
                return await self.gate.login(request, address)
            return await self.gate.login_page(request, address)
        # The one POST besides the login: a trace lookup (it writes its audit entry).
        if request.method != "GET" and not (request.method == "POST" and path in TRACE_PATHS):
            return http.response(405, b"method not allowed\n", "text/plain",
                                 extra=[("Allow", "GET")])
        if path in http.PUBLIC:
            return http.static_response(self.files, path)
        user, token, limited = await self.gate.user_at(request, address)
        if limited:
            return http.response(429, b"too many failed attempts\n", "text/plain")
        if path == "/metrics":
            if not (_loopback(connection) or (user and user.role == "admin")):
                return http.response(401, b"unauthorized\n", "text/plain")
            return http.response(200, generate_latest(self.metrics.registry),
                                 "text/plain; version=0.0.4", cache="no-store")
        if path == "/ws":
            if not origin_allowed(request.headers.get("Origin"), self.origins):
                return http.response(403, b"origin not allowed\n", "text/plain")
            if user is None:
                return http.response(401, b"login required\n", "text/plain")
            if self.sockets.get(user.name, 0) >= self.user_sockets:
                return http.response(429, b"too many open sockets for this user\n",
                                     "text/plain")
            connection.gw_user = user  # type: ignore[attr-defined]
            connection.gw_token = token  # type: ignore[attr-defined]
            return None
        if user is None:
            if path in ("/", "/index.html"):
                return http.redirect("/signin.html")
            return http.response(401, b"login required\n", "text/plain")
        if path == "/logout":
            return await self.gate.logout(token)
        if path == "/api/me":
            return http.json_response(200, {"user": user.to_dict(), "stations": self.stations,
                                            "trace": self.traces.rights(user)})
        if path in TRACE_PATHS:
            return await self.traces.answer(request, user, path,
                                            same_origin=self.gate.same_origin(request))
        if path == "/api/contract":
            return http.response(200, self.contract, "application/json")
        if path == "/api/duty":
            return await self.duty(user)
        if path == "/api/grids.geojson":
            return http.response(200, self.places.geojson_for(user), "application/geo+json",
                                 cache="private")
        if path in ("/api/alerts", "/api/alerts.csv"):
            return await self.alerts(user, urlsplit(request.path).query, path.endswith(".csv"))
        if path in ("/api/trends", "/api/top"):
            if not sees_district(user):
                return http.response(403, b"forbidden\n", "text/plain")
            return await self.wall(path)
        if path == "/api/silences":
            return await self.silences(user)
        if path.startswith("/api/forecast/"):
            return await self.forecast(user, unquote(path[len("/api/forecast/"):]))
        if path.startswith("/api/risk/"):
            # One grid's full risk record: grid deltas carry only score and band, the
            # "why this colour" (indicator contributions) is read here on demand.
            grid = path[len("/api/risk/"):]
            if grid not in self.grid_set or not may_see_grid(user, grid):
                return http.response(404, b"not found\n", "text/plain")
            raw = await self.hub.r.get(keys.risk(grid))
            if raw is None:
                return http.response(404, b"no risk yet\n", "text/plain")
            return http.response(200, raw, "application/json", cache="no-store")
        return http.static_response(self.files, "/index.html" if path == "/" else path)


    async def wall(self, path: str) -> Response:
        """The wall's trends (``/api/trends``) or riskiest grids (``/api/top``):
        :mod:`.wall`, cached for :data:`WALL_TTL_S`."""
        now = time.monotonic()
        hit = self.wall_cache.get(path)
        if hit is None or hit[0] <= now:
            if path == "/api/trends":
                body = orjson.dumps(await wall.read_trends(self.hub.r))
            else:
                body = orjson.dumps({"grids": await wall.read_top(self.hub.r, self.grid_names)})
            hit = (now + WALL_TTL_S[path], body)
            self.wall_cache[path] = hit
        return http.response(200, hit[1], "application/json", cache="no-store")

    async def silences(self, user: Any) -> Response:
        """The active silences, soonest end first, with the feed's event time (``now``,
        what their time left counts from) and how many alerts each holds: officers and
        admins only."""
        if user.role not in contract.OFFICERS:
            return http.response(403, b"forbidden\n", "text/plain")
        r = self.hub.r
        rows = sorted((orjson.loads(v) for v in (await r.hgetall(keys.SILENCES_ACTIVE)).values()),
                      key=lambda row: (row["ends_at"], row["id"]))
        for row in rows:
            row["held"] = int(await r.scard(keys.silence_alerts(row["id"])))
        marks = [float(v) for v in await r.hvals(keys.WATERMARKS)]
        now = max([time.time(), *marks])
        return http.response(200, orjson.dumps({"now": now, "silences": rows}),
                             "application/json", cache="no-store")

    async def duty(self, user: Any) -> Response:
        """Who is on duty: a grid worker their own duty only; an officer or admin every
        marked worker's record (``duty``) and the duty board of the whole district
        (:func:`.duty_board.build`: per grid who is on and off duty, the grids with no
        one on duty, every worker, the counts); a station manager nothing (403). A
        worker never marked is on duty, shown as ``{"worker": name, "on": true, "ts": null}``."""
        if user.role == "grid_worker":
            raw = await self.hub.r.hget(keys.DUTY, user.name)
            rows = [orjson.loads(raw) if raw else {"worker": user.name, "on": True, "ts": None}]
            return http.json_response(200, {"duty": rows})
        if user.role not in contract.OFFICERS:
            return http.response(403, b"forbidden\n", "text/plain")
        marked = {(k.decode() if isinstance(k, bytes) else k): orjson.loads(v)
                  for k, v in (await self.hub.r.hgetall(keys.DUTY)).items()}
        body = {"duty": [marked[k] for k in sorted(marked)],
                **duty_board.build(self.places.workers, marked)}
        return http.json_response(200, body)

    async def forecast(self, user: Any, name: str) -> Response:
        """A station's forecast as the station page shows it (JSON), or as CSV
        (``STATION.csv``): :mod:`gridwatch.station_view`, the rows of the CLI's CSV."""
        as_csv = name.endswith(".csv")
        station = name[:-4] if as_csv else name
        if not station or not may_see(user, "forecasts", {"station_id": station}):
            return http.response(404, b"not found\n", "text/plain")
        r = self.hub.r
        raw = await r.get(keys.forecast(station))
        if raw is None:
            return http.response(404, b"no forecast yet\n", "text/plain")
        record = orjson.loads(raw)
        rows = await station_view.aread_rows(r, station, station_view.hours_to_read(record))
        view = station_view.build(record, rows,
                                  station_view.event_now(await r.hvals(keys.WATERMARKS), record))
        if not as_csv:
            return http.response(200, orjson.dumps(view), "application/json", cache="no-store")
        stamp = re.sub(r"[^0-9]", "", str(record.get("origin", "")))[:10]
        safe = re.sub(r"[^A-Za-z0-9_-]", "_", station)
        return http.response(200, station_view.csv_text(view).encode(), "text/csv; charset=utf-8",
                             extra=[("Content-Disposition",
                                     f'attachment; filename="forecast-{safe}-{stamp}.csv"')],
                             cache="no-store")


    async def alerts(self, user: Any, query: str, as_csv: bool) -> Response:
        """The alerts raised in ``[from, to)`` with their audit trails, as JSON or as CSV
        (:mod:`gridwatch.alert_export`, the rows of ``gridwatch alerts export``); duty
        officers and admins only, a bounded period, 400 saying what is wrong with it."""
        if not may_export_alerts(user):
            return http.response(403, b"only duty officers and admins export alerts\n",
                                 "text/plain")
        args = parse_qs(query, keep_blank_values=True)
        try:
            lo, hi = alert_export.parse_period((args.get("from") or [""])[0],
                                               (args.get("to") or [""])[0], self.hub.tz)
            rows = await alert_export.aread(self.hub.r, lo, hi)
        except alert_export.PeriodError as exc:
            return http.response(400, f"bad period: {exc}\n".encode(),
                                 "text/plain; charset=utf-8")
        if not as_csv:
            return http.json_response(200, alert_export.payload(rows, lo, hi))
        span = "-".join(re.sub(r"[^0-9]", "", format_time(t))[:12] for t in (lo, hi))
        return http.response(200, alert_export.csv_text(rows).encode(),
                             "text/csv; charset=utf-8", cache="no-store",
                             extra=[("Content-Disposition",
                                     f'attachment; filename="alerts-{span}.csv"')])


def _address(connection: ServerConnection) -> str:
    try:
        return str(connection.remote_address[0])
    except (TypeError, IndexError):
        return "?"


def _loopback(connection: ServerConnection) -> bool:
    try:
        return ipaddress.ip_address(connection.remote_address[0]).is_loopback
    except (TypeError, ValueError, IndexError):
        return False
