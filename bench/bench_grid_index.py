"""Point-to-grid mapping rate of ``GridIndex.assign`` for 1,000 and 10,000 grids.

Run::

    python bench/bench_grid_index.py [--grids 1000 10000] [--points 200000] [--runs 5]

Districts come from ``gridwatch.city.generate(grids=N)`` (seed 7, the bundled district's
outline); generating 10,000 grids takes a long while, so each generated district is
cached under ``.local/bench-grids/``. Points are the district's own checkpoints and
cameras (what the worker maps) mixed with uniform points over the district's bounding
box (some outside every grid). Batch size 1 is one ``assign`` call per point (an
event at a time); 2,000 is the worker's default batch (``GRIDWATCH_BATCH``). Each figure
is the median of ``--runs`` runs.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import shapely
from _machine import cpu_model
from _machine import versions as package_versions

from gridwatch.city import Grid, generate, load_city, load_grids
from gridwatch.grid_index import GridIndex
from gridwatch.settings import Settings

CACHE = Path(__file__).resolve().parents[1] / ".local" / "bench-grids"
SEED = 7


def district(n: int) -> tuple[list[Grid], dict[str, Any], float | None]:
    """The generated district of ``n`` grids (cached): grids, city, generation seconds
    (None when it came from the cache)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    grids_path = CACHE / f"grids-{n}-seed{SEED}.geojson"
    city_path = CACHE / f"city-{n}-seed{SEED}.json"
    took = None
    if not (grids_path.exists() and city_path.exists()):
        started = time.perf_counter()
        geojson, city = generate(grids=n, seed=SEED)
        took = time.perf_counter() - started
        tmp = grids_path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(geojson))
        city_path.write_bytes(orjson.dumps(city))
        tmp.rename(grids_path)  # the grids file last: its presence means "complete"
    return load_grids(grids_path), load_city(city_path), took


def points_for(grids: list[Grid], city: dict[str, Any], count: int,
               seed: int = 1) -> tuple[list[float], list[float]]:
    rng = random.Random(seed)
    sites = [(c["lon"], c["lat"]) for c in city["checkpoints"]]
    sites += [(c["lon"], c["lat"]) for c in city["cameras"]]
    minx, miny, maxx, maxy = shapely.union_all([g.polygon for g in grids]).bounds
    lons, lats = [], []
    for i in range(count):
        if i % 2:
            lon, lat = rng.choice(sites)
        else:
            lon, lat = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
        lons.append(lon)
        lats.append(lat)
    return lons, lats


def rate(index: GridIndex, lons: list[float], lats: list[float], batch: int) -> float:
    """Points per second mapping every point in batches of ``batch``."""
    n = len(lons)
    assign = index.assign
    started = time.perf_counter()
    for at in range(0, n, batch):
        assign(lons[at:at + batch], lats[at:at + batch])
    return n / (time.perf_counter() - started)


def machine() -> list[str]:
    cpu = cpu_model()
    versions = package_versions(("shapely", "numpy"))
    return [
        f"CPU: {cpu}, {os.cpu_count()} cores; load average "
        + ", ".join(f"{x:.2f}" for x in os.getloadavg()),
        f"Python {platform.python_version()}; GEOS {shapely.geos_version_string}; "
        + ", ".join(versions),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grids", type=int, nargs="+", default=[1_000, 10_000])
    parser.add_argument("--points", type=int, default=200_000,
                        help="points per run at batch size 2,000 (batch size 1 uses a tenth)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)

    print("gridwatch point-to-grid mapping (GridIndex.assign, shapely STRtree)")
    for line in machine():
        print("  " + line)
    print(f"  (the bundled district: {len(load_grids(Settings().grids)):,} grids)")
    rows = []
    for n in args.grids:
        grids, city, took = district(n)
        started = time.perf_counter()
        index = GridIndex(grids)
        build_ms = (time.perf_counter() - started) * 1000
        source = f"generated in {took:.0f} s" if took is not None else "cached"
        print(f"{len(grids):,} grids ({source}; index built in {build_ms:.0f} ms)", flush=True)
        for batch in (1, 2_000):
            count = args.points if batch > 1 else max(1_000, args.points // 10)
            lons, lats = points_for(grids, city, count)
            assigned = index.assign(lons[:2_000], lats[:2_000])
            inside = sum(1 for g in assigned if g is not None) / len(assigned)
            rate(index, lons[:2_000], lats[:2_000], batch)  # warm up
            rates = [rate(index, lons, lats, batch) for _ in range(args.runs)]
            rows.append((len(grids), batch, statistics.median(rates)))
            print(f"  batch {batch:>5,}: {statistics.median(rates):>12,.0f} points/s  "
                  f"(median of {args.runs} runs of {count:,} points; {inside:.0%} inside a grid; "
                  f"runs: {', '.join(f'{r:,.0f}' for r in rates)})", flush=True)
    print()
    print("summary (points/s, median):")
    print(f"  {'grids':>7}  {'batch 1':>12}  {'batch 2,000':>12}")
    for n in sorted({r[0] for r in rows}):
        by_batch = {b: v for g, b, v in rows if g == n}
        print(f"  {n:>7,}  {by_batch.get(1, float('nan')):>12,.0f}  "
              f"{by_batch.get(2_000, float('nan')):>12,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
