"""``gridwatch demo``, the main job, end to end on the real test stack.

The demo is run as a user runs it, at a high speed and on a short live stretch: it
starts the worker and the gateway, sends ten weeks of station history and the live
stretch, and stays up; then SIGTERM (what Ctrl-C does) stops it and everything it
started.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson
import redis

from gridwatch import keys
from gridwatch import settings as settings_mod
from gridwatch.city import load_city

from .conftest import TEST_ENV, wait_until
from .test_gateway import free_port


def test_the_demo_serves_the_cockpit_forecasts_the_station_and_stops_cleanly(
        clean_stack: settings_mod.Settings, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, **TEST_ENV, "GRIDWATCH_GROUP": clean_stack.group,
           "GRIDWATCH_GATEWAY": f"127.0.0.1:{port}",
           "GRIDWATCH_WEB_ORIGIN": f"http://127.0.0.1:{port}"}
    err = tmp_path / "demo.err"
    demo = subprocess.Popen([sys.executable, "-m", "gridwatch.cli", "demo", "--speed", "50000",
                             "--days", "0.05", "--scale", "0.05"], env=env,
                            stdout=subprocess.DEVNULL, stderr=err.open("wb"),
                            start_new_session=True)
    r = redis.Redis.from_url(clean_stack.redis)
    station = load_city(clean_stack.city)["stations"][0]["id"]
    try:
        wait_until(lambda: "the simulated day is over" in err.read_text(errors="replace"),
                   timeout=300, what="the demo to send its history and live stretch")
        text = err.read_text(errors="replace")
        # One login link per role, on the gateway's address.
        roles = dict(re.findall(r"^\s+(duty_officer|grid_worker|station_manager|admin)\s+\S+\s+"
                                r"(http://\S+/login\?token=\S+)$", text, re.MULTILINE))
        assert set(roles) == {"duty_officer", "grid_worker", "station_manager", "admin"}, text[-3000:]
        assert all(link.startswith(f"http://127.0.0.1:{port}/") for link in roles.values())
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
            assert resp.status == 200
        # The worker applied the history, and the station has a forecast for 24 hours. A
        # forecast made before the history was applied (a busy machine) is all zeros;
        # the refresher makes it again as the history's hours come in.
        def forecast() -> dict[str, object]:
            return orjson.loads(r.get(keys.forecast(station)) or b"{}")

        wait_until(lambda: sum(forecast().get("yhat") or [0]) > 0, timeout=120,  # type: ignore[arg-type]
                   what=f"a forecast from the history for {station}")
        fc = forecast()
        assert len(fc["yhat"]) == 24 and sum(fc["yhat"]) > 0  # type: ignore[arg-type]
        assert not any("fall" in note.lower() for note in fc.get("notes", ())), fc.get("notes")
        # The simulated duty desk handles alerts through the command log: some alert's
        # audit shows it, and none of the demo grid worker's grids was touched by it.
        yours = set(load_city(clean_stack.city)["workers"][0]["grids"])

        def desk_actions() -> list[dict[str, object]]:
            ids = r.zrange(keys.ALERTS_ALL, 0, -1)
            alerts = [orjson.loads(raw) for raw in r.mget([keys.alert(i.decode()) for i in ids])
                      if raw] if ids else []
            return [a for a in alerts if any(e["actor"] == "desk-sim" for e in a["audit"])]

        wait_until(lambda: len(desk_actions()) > 0, timeout=60, what="the simulated desk to act")
        assert not [a["id"] for a in desk_actions() if a["grid_id"] in yours]
        assert "simulated duty desk and field crew" in err.read_text(errors="replace")
    finally:
        if demo.poll() is None:
            demo.send_signal(signal.SIGTERM)
        try:
            code = demo.wait(60)
        except subprocess.TimeoutExpired:  # its workers and gateway go with it
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait(10)
            raise
        finally:
            r.close()
    assert code == 0, err.read_text(errors="replace")[-3000:]
    assert "demo stopped" in err.read_text(errors="replace")
    # What it started is gone: the gateway no longer answers.
    time.sleep(0.5)
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
        answered = True
    except OSError:
        answered = False
    assert not answered, "the gateway outlived the demo"
