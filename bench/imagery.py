"""Benchmark: the 10-date NAIP cube (4 bands) with sitewatch and with odc-stac, from the same STAC items.

Both libraries load the same items onto the same grid (EPSG:32614, 5 m, bilinear, native uint8,
the same number of threads), for a 1 km AOI and for the full extent of the quarter-quad. Each case
runs in its own subprocess so peak memory (max RSS) is measured cleanly; the time is the median of
``--repeat`` runs after one warm-up run.

    .venv/bin/python bench/imagery.py [--repeat 5] [--threads 4] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CENTRE = (-99.155, 47.02)


def _items(data: Path) -> list[Any]:
    """One STAC item per NAIP file: a 4-band asset with eo:bands, raster:bands and proj fields."""
    import pystac
    import rasterio
    from rasterio.warp import transform_bounds
    from shapely.geometry import box, mapping

    from sitewatch.imagery import LocalSource

    items = []
    for scene in LocalSource(data / "naip-timeseries").scenes():
        href = scene.assets["red"]
        with rasterio.open(href) as ds:
            bounds = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
            t = ds.transform
            shape = [ds.height, ds.width]
            epsg = ds.crs.to_epsg()
        item = pystac.Item(
            id=scene.id,
            geometry=mapping(box(*bounds)),
            bbox=list(bounds),
            datetime=scene.datetime,
            properties={
                "platform": "naip",
                "gsd": 5.0,
                "proj:epsg": epsg,
                "proj:shape": shape,
                "proj:transform": [t.a, t.b, t.c, t.d, t.e, t.f],
            },
        )
        names = ("red", "green", "blue", "nir")
        item.add_asset(
            "image",
            pystac.Asset(
                href=href,
                media_type=pystac.MediaType.COG,
                roles=["data"],
                extra_fields={
                    "eo:bands": [{"name": n, "common_name": n} for n in names],
                    "raster:bands": [{"data_type": "uint8", "nodata": 0} for _ in names],
                },
            ),
        )
        items.append(item)
    return items


def _grid(case: str, items: list[Any]) -> Any:
    from shapely.geometry import box

    from sitewatch.imagery import ChipGrid

    if case == "1km":
        return ChipGrid.around(*CENTRE, 1000.0, 5.0)
    return ChipGrid.for_aoi(box(*items[0].bbox), 5.0, "EPSG:32614")


def _child(lib: str, case: str, data: Path, repeat: int, threads: int) -> None:
    import numpy as np

    items = _items(data)
    grid = _grid(case, items)
    bands = ["blue", "green", "red", "nir"]
    if lib == "sitewatch":
        from sitewatch.imagery import build_cube, scene_from_item

        scenes = [scene_from_item(i) for i in items]

        def run() -> Any:
            return build_cube(
                scenes, grid, bands, resampling="bilinear", cloud_mask="none", workers=threads
            )
    else:
        import odc.stac
        from odc.geo.geobox import GeoBox

        geobox = GeoBox((grid.height, grid.width), grid.transform, grid.crs)

        def run() -> Any:
            # odc-stac names the bands of a multi-band asset "image.N" (NAIP order R, G, B, N)
            keys = ["image.3", "image.2", "image.1", "image.4"]
            ds = odc.stac.load(
                items, bands=keys, geobox=geobox, resampling="bilinear", pool=threads, dtype="uint8"
            )
            return ds.to_array("band").transpose("time", "band", "y", "x")

    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = run()  # warm-up
    values = np.asarray(out.values)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - t0)
    values = np.asarray(out.values)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "time_s": statistics.median(times),
                "peak_rss_mb": peak / 1024,
                "base_rss_mb": base_rss / 1024,
                "shape": list(values.shape),
                "checksum": float(values.astype("float64").sum()),
                "nonzero": float((values > 0).mean()),
            }
        )
    )


def _run(lib: str, case: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        lib,
        case,
        "--data",
        str(args.data),
        "--repeat",
        str(args.repeat),
        "--threads",
        str(args.threads),
    ]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{lib} {case} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("SITEWATCH_SHARED_DATA", REPO.parent / "shared" / "data")),
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--child", nargs=2, metavar=("LIB", "CASE"))
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], args.child[1], args.data, args.repeat, args.threads)
        return
    print(
        f"NAIP 10-date cube, 4 bands, uint8, bilinear, EPSG:32614 5 m; {args.threads} threads, "
        f"median of {args.repeat} runs after a warm-up; CPUs: {os.cpu_count()}"
    )
    header = f"{'case':<8} {'library':<10} {'shape':<22} {'time (s)':>9} {'peak RSS (MB)':>14} {'RSS over imports':>17}"
    print(header)
    print("-" * len(header))
    for case in ("1km", "full"):
        res = {lib: _run(lib, case, args) for lib in ("sitewatch", "odc-stac")}
        for lib, r in res.items():
            print(
                f"{case:<8} {lib:<10} {'x'.join(map(str, r['shape'])):<22} {r['time_s']:>9.3f} "
                f"{r['peak_rss_mb']:>14.1f} {r['peak_rss_mb'] - r['base_rss_mb']:>17.1f}"
            )
        sw, odc = res["sitewatch"], res["odc-stac"]
        diff = abs(sw["checksum"] - odc["checksum"]) / max(odc["checksum"], 1.0)
        print(
            f"{case:<8} ratio sitewatch/odc-stac time = {sw['time_s'] / odc['time_s']:.2f} "
            f"(< 1 is faster); valid fraction {sw['nonzero']:.3f} vs {odc['nonzero']:.3f}; "
            f"pixel-sum difference {diff:.2%}"
        )


if __name__ == "__main__":
    main()
