"""The monitor over many sites on a dask LocalCluster: sites/s, failures, duplicate observations.

Generates small local imagery (a few dated 4-band 10 m GeoTIFF tiles, each with a pad cleared from
the third date on) and N sites spread over the tiles, then runs ``run_monitor`` on a
``distributed.LocalCluster``. Checks: no site failed; every site has exactly one observation per
scene (no duplicates, nothing missing); a second run over a subset adds nothing.

Peer: the default in-process dask threads scheduler on a subset of the sites, in the same run
(sites/s ratio cluster / threads). Peak memory: this process and each worker (ru_maxrss).

    .venv/bin/python bench/monitor_scale.py               # 500 sites, 2 workers
    .venv/bin/python bench/monitor_scale.py --sites 100 --workers 2 --peer-sites 20
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

LON0, LAT0 = 126.10, 38.58
TILE_PX = 200  # 2 km tiles at 10 m
SITES_PER_ROW = 5


def write_imagery(
    folder: Path, tiles: int, scenes: int, seed: int = 0
) -> list[tuple[float, float]]:
    """``tiles`` x ``scenes`` GeoTIFFs; returns the tile centres (lon, lat)."""
    import rasterio
    from rasterio.transform import from_origin
    from shapely.geometry import Point

    from sitewatch.geo import local_utm_crs, to_crs

    rng = np.random.default_rng(seed)
    crs = local_utm_crs(LON0, LAT0)
    origin = to_crs(Point(LON0, LAT0), "EPSG:4326", crs)
    veg = np.array([0.04, 0.08, 0.05, 0.35], np.float32)[:, None, None]
    soil = np.array([0.15, 0.18, 0.22, 0.26], np.float32)[:, None, None]
    folder.mkdir(parents=True, exist_ok=True)
    centres = []
    size = TILE_PX
    for t in range(tiles):
        x0 = origin.x + t * (size * 10 + 1000)
        y0 = origin.y
        centre = to_crs(Point(x0 + size * 5, y0 - size * 5), crs, "EPSG:4326")
        centres.append((centre.x, centre.y))
        for i in range(scenes):
            when = datetime(2020, 1, 10, 2, tzinfo=UTC) + timedelta(days=30 * i)
            img = veg * (1 + 0.05 * rng.standard_normal((1, size, size))).astype(np.float32)
            if i >= 2:
                for r in range(0, size, 40):
                    for c in range(0, size, 40):
                        img[:, r + 16 : r + 24, c + 16 : c + 24] = soil
            img = img + 0.003 * rng.standard_normal((4, size, size)).astype(np.float32)
            with rasterio.open(
                folder / f"t{t:02d}_{when:%Y%m%d}.tif",
                "w",
                driver="GTiff",
                width=size,
                height=size,
                count=4,
                dtype="float32",
                crs=crs,
                transform=from_origin(x0, y0, 10, 10),
            ) as ds:
                ds.write(img.astype(np.float32))
                ds.update_tags(datetime=when.isoformat(), sensor="benchsat", cloud_cover="0")
                for b, name in enumerate(("blue", "green", "red", "nir"), 1):
                    ds.set_band_description(b, name)
    return centres


def make_catalog(url: str, n: int, centres: list[tuple[float, float]]) -> list[str]:
    """``n`` sites spread over the tiles (a 5 x 5 grid of positions in each)."""
    from sitewatch.catalog.models import Site
    from sitewatch.catalog.store import Catalog

    sites = []
    for i in range(n):
        lon, lat = centres[i % len(centres)]
        j = (i // len(centres)) % (SITES_PER_ROW * SITES_PER_ROW)
        dx, dy = (j % SITES_PER_ROW - 2) * 0.0035, (j // SITES_PER_ROW - 2) * 0.0028
        sites.append(Site(id=f"site-{i:04d}", name=f"Site {i}", lon=lon + dx, lat=lat + dy))
    with Catalog(url, actor="bench") as cat:
        cat.import_records(_records(sites), path="bench")
    return [s.id for s in sites]


def _records(sites: list[Any]) -> Any:
    from sitewatch.catalog.models import SiteRecord

    return (SiteRecord(site=s) for s in sites)


def check(url: str, site_ids: list[str], scenes: int) -> tuple[int, int, int]:
    """(observations, duplicates, sites with a wrong count)."""
    from sitewatch.catalog.store import Catalog

    total = dupes = wrong = 0
    with Catalog(url) as cat:
        for sid in site_ids:
            obs = cat.list_observations(sid)
            total += len(obs)
            keys = Counter(o.scene_id for o in obs)
            dupes += sum(c - 1 for c in keys.values())
            wrong += len(keys) != scenes
    return total, dupes, wrong


def _worker_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(n_sites: int, workers: int, scenes: int, peer_sites: int, rerun: int) -> int:
    import distributed

    from sitewatch.monitor.job import MonitorOptions, run_monitor

    with tempfile.TemporaryDirectory(prefix="sitewatch-monscale-") as tmp:
        root = Path(tmp)
        tiles = max(1, -(-n_sites // (SITES_PER_ROW * SITES_PER_ROW)))
        t0 = time.perf_counter()
        centres = write_imagery(root / "imagery", tiles, scenes)
        url = f"sqlite:///{root / 'catalog.db'}"
        ids = make_catalog(url, n_sites, centres)
        print(
            f"monitor_scale: {n_sites} sites over {tiles} tiles x {scenes} scenes "
            f"(prepared in {time.perf_counter() - t0:.1f} s)"
        )
        opts = MonitorOptions(
            archive=root / "archive", sources=(str(root / "imagery"),), size_m=400.0
        )
        exit_code = 0

        # peer: in-process dask threads on a subset, its own catalog and archive
        if peer_sites:
            peer_url = f"sqlite:///{root / 'peer.db'}"
            peer_ids = make_catalog(peer_url, peer_sites, centres)
            peer_opts = MonitorOptions(
                archive=root / "peer-archive", sources=opts.sources, size_m=opts.size_m
            )
            t0 = time.perf_counter()
            peer = run_monitor(peer_url, peer_ids, peer_opts)
            peer_s = time.perf_counter() - t0
            peer_rate = len(peer_ids) / peer_s
            peer_fail = sum(r.error is not None for r in peer)
            print(
                f"peer (dask threads, in process): {len(peer_ids)} sites in {peer_s:.1f} s = "
                f"{peer_rate:.2f} sites/s, failures {peer_fail}"
            )

        with (
            distributed.LocalCluster(  # type: ignore[no-untyped-call]
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                host="127.0.0.1",
            ) as cluster,
            distributed.Client(cluster) as client,  # type: ignore[no-untyped-call]
        ):
            t0 = time.perf_counter()
            reports = run_monitor(url, ids, opts, scheduler=cluster.scheduler_address)
            seconds = time.perf_counter() - t0
            worker_peaks = client.run(_worker_peak_mb)
            failures = [r for r in reports if r.error is not None]
            total, dupes, wrong = check(url, ids, scenes)
            rate = n_sites / seconds
            print(
                f"LocalCluster ({workers} workers x 1 thread): {n_sites} sites in {seconds:.1f} s = "
                f"{rate:.2f} sites/s; failures {len(failures)}; observations {total} "
                f"(expected {n_sites * scenes}); duplicates {dupes}; sites with a wrong count {wrong}"
            )
            if peer_sites:
                print(f"sites/s ratio cluster / threads: {rate / peer_rate:.2f}x")
            for r in failures[:5]:
                print(f"  ! {r.site_id}: {r.error}")
            if failures or dupes or wrong or total != n_sites * scenes:
                exit_code = 1
            if rerun:
                subset = ids[:rerun]
                t0 = time.perf_counter()
                again = run_monitor(url, subset, opts, scheduler=cluster.scheduler_address)
                new = sum(r.observations for r in again)
                total2, dupes2, _ = check(url, ids, scenes)
                print(
                    f"second run over {len(subset)} sites: {new} new observations, "
                    f"{sum(r.error is not None for r in again)} failures, total still {total2}, "
                    f"duplicates {dupes2} ({time.perf_counter() - t0:.1f} s)"
                )
                if new or total2 != total or dupes2:
                    exit_code = 1
            print(
                "peak memory: this process "
                f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB, workers "
                + ", ".join(f"{v:.0f} MB" for v in worker_peaks.values())
            )
    return exit_code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scenes", type=int, default=4)
    parser.add_argument("--peer-sites", type=int, default=50, help="sites of the threads peer")
    parser.add_argument("--rerun", type=int, default=50, help="sites of the idempotency re-run")
    args = parser.parse_args(argv)
    return run(args.sites, args.workers, args.scenes, args.peer_sites, args.rerun)


if __name__ == "__main__":
    sys.exit(main())
