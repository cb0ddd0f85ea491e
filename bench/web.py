"""Web app latency and throughput at 50 concurrent clients on loopback.

uvicorn runs the app in a subprocess over a catalog of 200 sites (one with features, observations,
change events and two archived chips). An httpx async client keeps 50 requests in flight for:

* the site list (``GET /api/sites``),
* a site page's API calls (the six GETs the UI makes when a site opens),
* map tiles of a chip (first requests render, repeats hit the tile cache).

Peers measured in the same run: a plain static file from the same server (``/static/index.html``;
the floor of the stack) and titiler-style direct rio-tiler reads of the same tiles in this process
(no HTTP). Targets: p95 < 100 ms for the API calls and < 200 ms for a tile.

    .venv/bin/python bench/web.py [--requests 2000] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
from affine import Affine
from pyproj import Transformer
from shapely.geometry import Point, box

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import peak_rss_mb, percentile, print_table

LON, LAT = 126.5, 40.2


def build(root: Path) -> tuple[str, Path, str, list[str]]:
    """A catalog of 200 sites, an archive with two chips of the first site, and an API token."""
    from sitewatch.catalog.models import ChangeEvent, Feature, Observation, Site
    from sitewatch.catalog.store import Catalog
    from sitewatch.imagery.archive import Archive
    from sitewatch.imagery.chips import Chip
    from sitewatch.imagery.scene import Scene
    from sitewatch.web.users import UserStore

    url = f"sqlite:///{root / 'catalog.db'}"
    rng = random.Random(1)
    with Catalog(url, actor="bench") as cat:
        cat.add_site(
            Site(
                id="alpha",
                name="Alpha",
                lon=LON,
                lat=LAT,
                aoi=box(LON - 0.01, LAT - 0.01, LON + 0.01, LAT + 0.01),
            )
        )
        for i in range(199):
            cat.add_site(
                Site(
                    id=f"site-{i:03d}",
                    name=f"Site {i:03d}",
                    lon=rng.uniform(124, 130),
                    lat=rng.uniform(37, 43),
                    tags=("bench",),
                    notes="synthetic benchmark site " * 3,
                )
            )
        for i in range(20):
            cat.add_feature(
                Feature(
                    id=f"f{i}",
                    site_id="alpha",
                    kind="building",
                    geometry=Point(LON + i * 1e-4, LAT),
                )
            )
        for d in range(1, 11):
            cat.add_observation(
                Observation(
                    id=f"o{d}",
                    site_id="alpha",
                    acquired=datetime(2024, 3, d, tzinfo=UTC),
                    sensor="bench",
                )
            )
            cat.add_change_event(
                ChangeEvent(
                    id=f"c{d}",
                    site_id="alpha",
                    before=datetime(2024, 3, d, tzinfo=UTC),
                    after=datetime(2024, 3, d + 1, tzinfo=UTC),
                    method="cva",
                    area_m2=100.0 * d,
                    geometry=box(LON, LAT, LON + 0.001, LAT + 0.001),
                )
            )
        users = UserStore.for_catalog(cat)
        users.add("bench", "bench-password", "analyst")
        _, token = users.create_token("bench", "bench")
    to_utm = Transformer.from_crs("EPSG:4326", "EPSG:32652", always_xy=True)
    cx, cy = to_utm.transform(LON, LAT)
    archive = Archive(root / "archive")
    items = []
    for day in (1, 20):
        size, res = 1024, 1.0
        data = np.random.default_rng(day).integers(100, 3000, (3, size, size)).astype("uint16")
        scene = Scene(
            id=f"bench-{day}",
            sensor="bench",
            datetime=datetime(2024, 3, day, tzinfo=UTC),
            assets={"blue": "b", "green": "g", "red": "r"},
        )
        chip = Chip(
            data=data,
            bands=("blue", "green", "red"),
            crs="EPSG:32652",
            transform=Affine(res, 0, round(cx - size / 2), 0, -res, round(cy + size / 2)),
            valid=np.ones((size, size), bool),
            scene=scene,
        )
        items.append(archive.add_chip("alpha", chip).item_id)
    return url, root / "archive", token, items


def tiles_around(n_zooms: tuple[int, ...] = (15, 16, 17, 18)) -> list[tuple[int, int, int]]:
    import morecantile

    tms = morecantile.tms.get("WebMercatorQuad")
    out = []
    for z in n_zooms:
        c = tms.tile(LON, LAT, z)
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                out.append((z, c.x + dx, c.y + dy))
    return out


async def load(
    base: str, token: str, paths: list[str], total: int, concurrency: int
) -> tuple[list[float], float]:
    """Issue ``total`` GETs cycling over ``paths`` with ``concurrency`` in flight: (latencies s, wall s)."""
    latencies: list[float] = []
    counter = iter(range(total))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {token}"}, limits=limits, timeout=60
    ) as client:

        async def worker() -> None:
            for i in counter:
                t0 = time.perf_counter()
                r = await client.get(paths[i % len(paths)])
                latencies.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    raise RuntimeError(
                        f"{paths[i % len(paths)]}: HTTP {r.status_code} {r.text[:200]}"
                    )

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    return latencies, wall


def server_peak_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=50)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="sitewatch-bench-web-"))
    url, archive, token, items = build(root)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = (
        "import uvicorn, sys; from sitewatch.web.app import create_app; "
        f"uvicorn.run(create_app({url!r}, archive_root={str(archive)!r}), host='127.0.0.1', port={port}, "
        "log_level='warning', access_log=False)"
    )
    env = {**os.environ, "SITEWATCH_HOME": str(root)}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/api/config", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.1)
        page = [
            "/api/sites/alpha",
            "/api/sites/alpha/features",
            "/api/sites/alpha/observations",
            "/api/sites/alpha/changes",
            "/api/sites/alpha/imagery",
            "/api/measurements?site_id=alpha",
        ]
        tiles = [
            f"/tiles/alpha/{item}/{z}/{x}/{y}.png" for item in items for z, x, y in tiles_around()
        ]
        n, c = args.requests, args.concurrency
        scenarios = [
            ("static file (peer)", ["/static/index.html"], n),
            ("site list (200 sites)", ["/api/sites"], n),
            ("site page API calls", page, n),
            ("tiles, first render", tiles, len(tiles)),
            ("tiles, cached", tiles, n),
        ]
        results = {}
        asyncio.run(load(base, token, ["/api/config"], 200, c))  # warm up connections and imports
        for name, paths, total in scenarios:
            print(f"running: {name} ...", file=sys.stderr, flush=True)
            lat, wall = asyncio.run(load(base, token, paths, total, c))
            ms = [v * 1000 for v in lat]
            results[name] = (percentile(ms, 50), percentile(ms, 95), len(ms) / wall)
        # the same API calls one at a time: the server's own cost, without queueing
        for name, paths in (("site list, serial", ["/api/sites"]), ("site page, serial", page)):
            lat, wall = asyncio.run(load(base, token, paths, 300, 1))
            ms = [v * 1000 for v in lat]
            results[name] = (percentile(ms, 50), percentile(ms, 95), len(ms) / wall)
        # titiler-style direct rio-tiler reads of the same tiles, in this process, one at a time
        from rio_tiler.io import Reader

        from sitewatch.imagery.archive import Archive

        direct = []
        for chip in Archive(archive).chips("alpha"):
            with Reader(str(chip.path)) as src:
                for z, x, y in tiles_around():
                    if not src.tile_exists(x, y, z):
                        continue
                    t0 = time.perf_counter()
                    img = src.tile(x, y, z, indexes=(3, 2, 1))
                    img.rescale(in_range=((100, 3000),) * 3).render(img_format="PNG")
                    direct.append((time.perf_counter() - t0) * 1000)
        results["rio-tiler direct read (peer)"] = (
            percentile(direct, 50),
            percentile(direct, 95),
            float("nan"),
        )
    finally:
        server_mb = server_peak_mb(proc.pid)
        proc.terminate()
        proc.wait(10)
    rows = [[name, p50, p95, rps] for name, (p50, p95, rps) in results.items()]
    print_table(
        f"web app at {args.concurrency} concurrent clients (loopback, 1 uvicorn worker)",
        ["scenario", "p50 ms", "p95 ms", "req/s"],
        rows,
    )
    static_p95 = results["static file (peer)"][1]
    direct_p50 = results["rio-tiler direct read (peer)"][0]
    print()
    for name in ("site list (200 sites)", "site page API calls"):
        p95 = results[name][1]
        print(
            f"{name}: p95 {p95:.1f} ms = {p95 / static_p95:.2f}x the static-file p95; target < 100 ms: {'met' if p95 < 100 else 'MISSED'}"
        )
    for name in ("tiles, first render", "tiles, cached"):
        p95 = results[name][1]
        print(
            f"{name}: p95 {p95:.1f} ms = {results[name][0] / direct_p50:.2f}x (p50) a direct rio-tiler read; target < 200 ms: {'met' if p95 < 200 else 'MISSED'}"
        )
    print(
        f"load average of this machine during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    print(f"peak memory: bench {peak_rss_mb():.0f} MB, server {server_mb:.0f} MB")


if __name__ == "__main__":
    main()
