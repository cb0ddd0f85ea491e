"""Catalog benchmark: CSV import rate, and bbox/radius query latency over 1,000,000 features.

Runs on SQLite and (when SITEWATCH_TEST_PG_URL or --pg-url is given) PostgreSQL/PostGIS, and on the
peer, geopandas, in the same run: the peer reads the same CSV into a GeoDataFrame and answers the
same queries through its STRtree spatial index. Targets: import >= 20,000 rows/s on SQLite; bbox
query p95 <= 5 ms with 1,000,000 features.

    python bench/catalog.py [--sites 100000] [--features 1000000] [--queries 300]
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import peak_rss_mb, percentile, print_table, timed, timed_cpu
from sitewatch.catalog.io import read_sites
from sitewatch.catalog.models import Feature
from sitewatch.catalog.store import Catalog
from sitewatch.geo import GEOD, radius_bboxes

W, S, E, N = 124.0, 37.5, 131.0, 43.0  # about North Korea
Box = tuple[float, float, float, float]  # west, south, east, north
Circle = tuple[float, float, float]  # lon, lat, radius in metres


def write_csv(path: Path, n: int, rng: np.random.Generator) -> None:
    lons = rng.uniform(W, E, n)
    lats = rng.uniform(S, N, n)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "name", "lat", "lon", "status", "tags"])
        for i in range(n):
            w.writerow(
                [f"s{i}", f"Site {i}", f"{lats[i]:.6f}", f"{lons[i]:.6f}", "suspected", "bench"]
            )


def feature_arrays(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return rng.uniform(W, E, n), rng.uniform(S, N, n)


def features(site_ids: list[str], lons: np.ndarray, lats: np.ndarray) -> Iterator[Feature]:
    from shapely.geometry import Point

    for i, (x, y) in enumerate(zip(lons, lats, strict=True)):
        yield Feature(
            id=f"f{i}", site_id=site_ids[i % len(site_ids)], kind="building", geometry=Point(x, y)
        )


def query_boxes(rng: np.random.Generator, n: int, size: float = 0.05) -> list[Box]:
    xs = rng.uniform(W, E - size, n)
    ys = rng.uniform(S, N - size, n)
    return [(x, y, x + size, y + size) for x, y in zip(xs, ys, strict=True)]


def bench_backend(
    name: str,
    url: str,
    csv_path: Path,
    n_sites: int,
    lons: np.ndarray,
    lats: np.ndarray,
    boxes: list[Box],
    circles: list[Circle],
) -> tuple[list[Any], list[Any]]:
    """Wall-clock figures, and the same measured in this process's CPU time (SQLite runs in
    process, so its CPU time is what it costs on an idle machine; PostgreSQL's server time is not
    in it)."""
    cat = Catalog(url, actor="bench")
    t_imp, c_imp, report = timed_cpu(
        partial(cat.import_records, read_sites(csv_path, "csv"), path=str(csv_path))
    )
    assert report.added == n_sites, report
    site_ids = [f"s{i}" for i in range(min(n_sites, 1000))]
    t_feat, c_feat, count = timed_cpu(partial(cat.add_features, features(site_ids, lons, lats)))
    if cat.backend.dialect == "postgresql":
        with cat._engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE features")
    lat_bbox, cpu_bbox, hits = [], [], 0
    for b in boxes:
        t, c, res = timed_cpu(partial(cat.query_features, bbox=b))
        lat_bbox.append(t * 1000)
        cpu_bbox.append(c * 1000)
        hits += len(res)
    lat_rad, cpu_rad = [], []
    for circle in circles:
        t, cc, _ = timed_cpu(partial(cat.query_features, near=circle))
        lat_rad.append(t * 1000)
        cpu_rad.append(cc * 1000)
    cat.close()
    wall = [
        name,
        n_sites / t_imp,
        count / t_feat,
        percentile(lat_bbox, 50),
        percentile(lat_bbox, 95),
        percentile(lat_rad, 50),
        percentile(lat_rad, 95),
        hits / len(boxes),
    ]
    cpu = [
        f"{name} (CPU time)",
        n_sites / c_imp,
        count / c_feat,
        percentile(cpu_bbox, 50),
        percentile(cpu_bbox, 95),
        percentile(cpu_rad, 50),
        percentile(cpu_rad, 95),
        hits / len(boxes),
    ]
    return wall, cpu


def bench_geopandas(
    csv_path: Path,
    n_sites: int,
    lons: np.ndarray,
    lats: np.ndarray,
    boxes: list[Box],
    circles: list[Circle],
) -> list[Any]:
    import geopandas as gpd
    import pandas as pd
    from shapely.geometry import box

    def load() -> gpd.GeoDataFrame:
        df = pd.read_csv(csv_path)
        return gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(df.lon, df.lat), crs=4326)

    t_imp, gdf_sites = timed(load)
    assert len(gdf_sites) == n_sites
    t_feat, gdf = timed(
        lambda: gpd.GeoDataFrame(
            {"id": [f"f{i}" for i in range(len(lons))]},
            geometry=gpd.points_from_xy(lons, lats),
            crs=4326,
        )
    )
    gdf.sindex  # build the index outside the timed queries  # noqa: B018
    lat_bbox, hits = [], 0
    for b in boxes:

        def hit(b: Box = b) -> Any:
            return gdf.iloc[gdf.sindex.query(box(*b), predicate="intersects")]

        t, res = timed(hit)
        lat_bbox.append(t * 1000)
        hits += len(res)
    lat_rad = []
    for lon, lat, r in circles:

        def q(lon: float = lon, lat: float = lat, r: float = r) -> object:
            idx = np.concatenate([gdf.sindex.query(box(*bb)) for bb in radius_bboxes(lon, lat, r)])
            sub = gdf.iloc[idx]
            _, _, d = GEOD.inv(
                np.full(len(sub), lon), np.full(len(sub), lat), sub.geometry.x, sub.geometry.y
            )
            return sub[d <= r]

        t, _ = timed(q)
        lat_rad.append(t * 1000)
    return [
        "geopandas (in memory)",
        n_sites / t_imp,
        len(lons) / t_feat,
        percentile(lat_bbox, 50),
        percentile(lat_bbox, 95),
        percentile(lat_rad, 50),
        percentile(lat_rad, 95),
        hits / len(boxes),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sites", type=int, default=100_000)
    ap.add_argument("--features", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--pg-url", default=os.environ.get("SITEWATCH_TEST_PG_URL"))
    ap.add_argument("--no-postgres", action="store_true")
    args = ap.parse_args()
    rng = np.random.default_rng(42)
    tmp = Path(tempfile.mkdtemp(prefix="sitewatch-bench-"))
    csv_path = tmp / "sites.csv"
    write_csv(csv_path, args.sites, rng)
    lons, lats = feature_arrays(args.features, rng)
    boxes = query_boxes(rng, args.queries)
    circles = [(x + 0.025, y + 0.025, 2_500.0) for x, y, _, _ in query_boxes(rng, args.queries)]
    wall, cpu = bench_backend(
        "SQLite", f"sqlite:///{tmp / 'bench.db'}", csv_path, args.sites, lons, lats, boxes, circles
    )
    rows: list[list[Any]] = [wall, cpu]
    if args.pg_url and not args.no_postgres:
        admin = sa.create_engine(
            sa.engine.make_url(args.pg_url).set(drivername="postgresql+psycopg"),
            isolation_level="AUTOCOMMIT",
        )
        with admin.connect() as conn:
            conn.exec_driver_sql("DROP DATABASE IF EXISTS sitewatch_bench")
            conn.exec_driver_sql("CREATE DATABASE sitewatch_bench")
        url = (
            sa.engine.make_url(args.pg_url)
            .set(database="sitewatch_bench")
            .render_as_string(hide_password=False)
        )
        rows.append(
            bench_backend(
                "PostgreSQL+PostGIS", url, csv_path, args.sites, lons, lats, boxes, circles
            )[0]
        )
        with admin.connect() as conn:
            conn.exec_driver_sql("DROP DATABASE IF EXISTS sitewatch_bench WITH (FORCE)")
    peer = bench_geopandas(csv_path, args.sites, lons, lats, boxes, circles)
    rows.append(peer)
    header = [
        "backend",
        "import rows/s",
        "features rows/s",
        "bbox p50 ms",
        "bbox p95 ms",
        "radius p50 ms",
        "radius p95 ms",
        "hits/bbox",
    ]
    print_table(
        f"Catalog: {args.sites:,} sites from CSV, {args.features:,} features, "
        f"{args.queries} queries",
        header,
        rows,
    )
    ratios = [
        [r[0], r[1] / peer[1], r[3] / peer[3], r[4] / peer[4], r[6] / peer[6]] for r in rows[:-1]
    ]
    print_table(
        "Ratio against geopandas (same data, same queries; >1 = slower than geopandas for "
        "latency, <1 = slower for import)",
        [
            "backend",
            "import rate / peer",
            "bbox p50 / peer",
            "bbox p95 / peer",
            "radius p95 / peer",
        ],
        ratios,
    )
    for label, r in (("wall clock", wall), ("CPU time", cpu)):
        print(
            f"\ntargets ({label}): SQLite import {r[1]:,.0f} rows/s (>= 20,000: "
            f"{'met' if r[1] >= 20_000 else 'NOT met'}); SQLite bbox p95 {r[4]:.2f} ms "
            f"(<= 5 ms: {'met' if r[4] <= 5 else 'NOT met'})"
        )
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"peak memory {peak_rss_mb():,.0f} MB")


if __name__ == "__main__":
    main()
