"""Terrain benchmark: viewshed and DEM derivatives against GDAL (gdal_viewshed, gdaldem).

    .venv/bin/python bench/terrain.py [--data ../shared/data]

On the SRTM tile N44W072 reprojected to UTM (sitewatch's metric grid), for three observers
(summit, slope, valley): wall time of ``sitewatch.analysis.terrain`` vs the GDAL command-line tools
on the same GeoTIFF (GDAL times include process start and file I/O, ours include nothing but the
computation), and the agreement of the visibility grids (fraction of cells with the same answer).
GDAL's viewshed uses its own line-of-sight algorithm and a curvature coefficient of 0.85714
(refraction k = 1/7); ours is run with k = 1/7 too for the comparison.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import peak_rss_mb, print_table
from sitewatch.analysis._viewshed import radial_viewshed
from sitewatch.analysis.terrain import hillshade, read_dem, slope
from sitewatch.geo import to_crs

OBSERVERS = {"summit": (-71.3033, 44.2706), "slope": (-71.35, 44.30), "valley": (-71.253, 44.257)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    args = ap.parse_args()
    if shutil.which("gdal_viewshed") is None or shutil.which("gdaldem") is None:
        sys.exit("gdal_viewshed/gdaldem not found: install gdal-bin to run this benchmark")
    from shapely.geometry import Point

    dem = read_dem(args.data / "srtm" / "N44W072.hgt")
    t0 = time.perf_counter()
    metric = dem.to_metric()
    t_reproj = time.perf_counter() - t0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "dem.tif"
        prof = {"driver": "GTiff", "height": metric.shape[0], "width": metric.shape[1], "count": 1,
                "dtype": "float32", "crs": metric.crs, "transform": metric.transform, "nodata": -9999.0}  # fmt: skip
        with rasterio.open(src, "w", **prof) as ds:
            ds.write(np.nan_to_num(metric.data, nan=-9999.0).astype("float32"), 1)
        cell = (abs(metric.transform.a), abs(metric.transform.e))
        for name, (lon, lat) in OBSERVERS.items():
            x, y = to_crs(Point(lon, lat), "EPSG:4326", metric.crs).coords[0]
            r, c = metric.rowcol(np.array([x]), np.array([y]))[0]
            t0 = time.perf_counter()
            ours = radial_viewshed(metric.data, (float(r), float(c)), cell, observer_height=2.0,
                                   curvature=True, refraction_k=1.0 / 7.0)  # fmt: skip
            t_ours = time.perf_counter() - t0
            out = Path(tmp) / f"{name}.tif"
            t0 = time.perf_counter()
            subprocess.run(["gdal_viewshed", "-q", "-oz", "2", "-ox", str(x), "-oy", str(y), "-vv", "1",
                            "-iv", "0", "-ov", "0", "-cc", str(1 - 1 / 7), str(src), str(out)], check=True)  # fmt: skip
            t_gdal = time.perf_counter() - t0
            with rasterio.open(out) as ds:
                ref = ds.read(1) == 1
            valid = np.isfinite(metric.data)
            agree = float((ours == ref)[valid].mean())
            rows.append((name, f"{ours[valid].mean():.4f}", f"{ref[valid].mean():.4f}", f"{agree:.4f}",
                         f"{t_ours:.2f}", f"{t_gdal:.2f}", f"{t_gdal / t_ours:.2f}"))  # fmt: skip
        print_table(f"Viewshed on SRTM N44W072 in UTM ({metric.shape[1]}x{metric.shape[0]} px, "
                    f"{cell[0]:.1f} m), reprojection {t_reproj:.2f} s",
                    ["observer", "visible (ours)", "visible (GDAL)", "agreement", "ours s", "GDAL s", "GDAL/ours"],
                    rows)  # fmt: skip
        drows = []
        for prod, func in (("hillshade", hillshade), ("slope", slope)):
            t0 = time.perf_counter()
            mine = func(metric)
            t_ours = time.perf_counter() - t0
            out = Path(tmp) / f"{prod}.tif"
            t0 = time.perf_counter()
            subprocess.run(["gdaldem", prod, "-q", str(src), str(out)], check=True)
            t_gdal = time.perf_counter() - t0
            with rasterio.open(out) as ds:
                ref = ds.read(1, masked=True).astype(float).filled(np.nan)
            ok = np.isfinite(ref) & np.isfinite(mine)
            drows.append((prod, f"{np.abs(ref - mine)[ok].max():.4f}", f"{t_ours:.3f}", f"{t_gdal:.3f}",
                          f"{t_gdal / t_ours:.2f}"))  # fmt: skip
        print_table(
            "DEM derivatives vs gdaldem",
            ["product", "max abs diff", "ours s", "gdaldem s", "gdaldem/ours"],
            drows,
        )
    print(f"\npeak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
