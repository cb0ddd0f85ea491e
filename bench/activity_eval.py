"""Activity evaluation: detected construction onset against the scenario truth, and real series.

1. Scenario series (``--seeds N`` from ``--first-seed``): the detected onset is the first date the
   activity analysis calls site preparation or active construction, on a grid holding the site's
   AOI and a 60 m ring of surroundings (the background), as the monitor cuts it. The truth is the
   generator's schedule of construction: the first date on which a new structure (the second
   portal and its spoil berm, or the third shelter) appears. Target: within one acquisition for
   at least 90% of sites. Also reported, as a known limit: "first change", which also counts the
   first portal's berm, present on the first date and only piled higher afterwards (height-only
   growth shows only through shading, which the sun's changes move as much; see the limit noted
   in :mod:`sitewatch.analysis.activity`).
2. The real 10-date NAIP series (shared data): the quarter-quad scanned in 250 m cells, each
   judged against a 60 m ring; cells active per date and the most changed cells.
3. The 68-date Sentinel-2 NDVI and cloud-mask series (s2-slovenia): change points and the dates of
   large NDVI drops on clear dates.

    python bench/activity_eval.py [--seeds 10] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table
from sitewatch.analysis.activity import activity_from_cube, change_points
from sitewatch.imagery.chips import ChipGrid
from sitewatch.imagery.cube import build_cube
from sitewatch.imagery.sources.base import find_scenes
from sitewatch.imagery.sources.config import open_source

RING_M = 60.0


def _site_aoi(feats: list[dict[str, Any]], crs: str) -> tuple[Any, Any]:
    """The site AOI (hull of its features + 25 m) in the scene CRS and the lon/lat of AOI + ring."""
    from shapely.geometry import shape
    from shapely.ops import unary_union

    from sitewatch.geo import to_crs

    polys = [shape(f["geometry"]) for f in feats if f["properties"]["kind"] != "road"]
    hull = unary_union(polys).convex_hull.buffer(25.0)
    return hull, to_crs(hull.buffer(RING_M), crs, "EPSG:4326")


def scenario_eval(seeds: int, workdir: Path, first: int = 0) -> dict[str, Any]:
    from rasterio.features import geometry_mask

    from sitewatch.scenario import ScenarioSpec, make_scenario

    rows, hits, hits_new = [], [], []
    for seed in range(first, first + seeds):
        res = make_scenario(
            workdir / f"s{seed}", ScenarioSpec(seed=seed, sites=1, size_px=(768, 768))
        )
        truth = res.truth
        dates = truth["dates"]
        feats = json.loads(res.features_utm_geojson.read_text())["features"]
        src = open_source(str(res.catalog))
        for site in truth["sites"]:
            mine = [f for f in feats if f["properties"]["site_id"] == site["id"]]
            onsets = [
                dates.index(c["to"])
                for c in truth["changes"]
                if any(x["site_id"] == site["id"] for x in c["features"])
            ]
            appears = [
                dates.index(c["to"])
                for c in truth["changes"]
                if any(
                    x["site_id"] == site["id"] and x["change"] == "appeared" for x in c["features"]
                )
            ]
            if not onsets:
                continue
            true_i = min(onsets)
            new_i = min(appears) if appears else None
            local, ll = _site_aoi(mine, truth["crs"])
            grid = ChipGrid.for_aoi(ll, 0.5)
            cube = build_cube(find_scenes([src], ll), grid, None, dtype="float32")
            from sitewatch.geo import to_crs

            mask = ~geometry_mask(
                [to_crs(local, truth["crs"], grid.crs)],
                out_shape=grid.shape,
                transform=grid.transform,
            )
            act = activity_from_cube(cube, aoi=mask)
            det = (
                [t.date().isoformat() for t in act.times].index(act.onset.date().isoformat())
                if act.onset
                else None
            )
            ok = det is not None and abs(det - true_i) <= 1
            hits.append(ok)
            ok_new = (det is None) if new_i is None else (det is not None and abs(det - new_i) <= 1)
            hits_new.append(ok_new)
            rows.append(
                [
                    seed,
                    site["id"],
                    dates[true_i],
                    "yes" if ok else "no",
                    dates[new_i] if new_i is not None else "none",
                    "yes" if ok_new else "no",
                    dates[det] if det is not None else "none",
                    " ".join(f"{100 * x:.2f}" for x in np.nan_to_num(act.changed)),
                    " ".join(p[:4] for p in act.phases),
                ]
            )
    print_table(
        "Scenario series: construction onset",
        [
            "seed",
            "site",
            "first change",
            "within 1",
            "first new structure",
            "within 1",
            "detected",
            "index (% of site)",
            "phases",
        ],
        rows,
    )
    rate = float(np.mean(hits)) if hits else float("nan")
    rate_new = float(np.mean(hits_new)) if hits_new else float("nan")
    print(
        f"\nconstruction onset (first new structure) within one acquisition (target >= 90%): "
        f"{sum(hits_new)}/{len(hits_new)} = {rate_new:.0%}; first change of any kind (known limit): "
        f"{sum(hits)}/{len(hits)} = {rate:.0%}"
    )
    return {"sites": len(hits), "within_one": int(sum(hits)), "rate": rate, "rate_new": rate_new}


def naip_eval(data: Path, cell_m: float = 250.0, ring_m: float = 60.0) -> dict[str, Any]:
    """Scan the quarter-quad in cells, each judged against a ring of its surroundings, the way
    the monitor judges a site: which cells become active, and when."""
    from sitewatch.imagery.sources.local import LocalSource

    src = LocalSource(data / "naip-timeseries")
    scenes = src.search((-180, -90, 180, 90))
    b = scenes[0].bounds
    assert b is not None
    lon, lat = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
    grid = ChipGrid.around(lon, lat, 3000.0, 5.0)
    cube = build_cube([(src, s) for s in scenes], grid, None, dtype="float32", cloud_mask="none")
    res = float(cube.attrs["resolution"])
    cell, ring = round(cell_m / res), round(ring_m / res)
    ny, nx = cube.sizes["y"], cube.sizes["x"]
    dates = [str(t)[:10] for t in cube["time"].values]
    onsets: list[int] = []
    active_per_date = np.zeros(len(dates), dtype=int)
    construction = np.zeros(len(dates), dtype=int)
    cells = 0
    top: list[tuple[float, int, int, str]] = []
    for y0 in range(ring, ny - ring - cell + 1, cell):
        for x0 in range(ring, nx - ring - cell + 1, cell):
            sub = cube.isel(
                y=slice(y0 - ring, y0 + cell + ring), x=slice(x0 - ring, x0 + cell + ring)
            )
            aoi = np.zeros((cell + 2 * ring, cell + 2 * ring), dtype=bool)
            aoi[ring:-ring, ring:-ring] = True
            act = activity_from_cube(sub, aoi=aoi)
            cells += 1
            ch = np.nan_to_num(act.changed)
            active = np.array(
                [p in ("site_preparation", "active_construction") for p in act.phases]
            )
            active_per_date += active
            construction += np.array([p == "active_construction" for p in act.phases])
            if act.onset is not None:
                onsets.append(dates.index(act.onset.date().isoformat()))
            top.append((float(ch.max()), y0, x0, dates[int(ch.argmax())]))
    top.sort(reverse=True)
    print_table(
        f"NAIP 10-date series: {cells} cells of {cell_m:.0f} m, each against a {ring_m:.0f} m ring",
        ["date", "cells active", "of which active construction", "cells with onset here"],
        [
            [d, int(active_per_date[i]), int(construction[i]), onsets.count(i)]
            for i, d in enumerate(dates)
        ],
    )
    print("most changed cells (share of the cell changed, date, cell centre in the grid CRS):")
    for frac, y0, x0, d in top[:8]:
        cx = grid.transform.c + (x0 + cell / 2) * res
        cy = grid.transform.f - (y0 + cell / 2) * res
        print(f"  {100 * frac:5.1f}%  {d}  ({cx:.0f}, {cy:.0f})")
    return {"cells": cells, "cells_with_onset": len(onsets)}


def s2_ndvi_eval(data: Path) -> None:
    folder = data / "s2-slovenia"
    ndvi = np.load(folder / "NDVI.npy").squeeze()
    clm = np.load(folder / "CLM.npy").squeeze().astype(bool)
    stamps = json.loads((folder / "timestamps.json").read_text())
    times = [datetime.fromisoformat(str(t).replace("Z", "")).replace(tzinfo=UTC) for t in stamps]
    clear = clm.reshape(len(times), -1).mean(axis=1) < 0.1
    med = np.array(
        [
            np.nanmedian(np.where(clm[i], np.nan, ndvi[i])) if clear[i] else np.nan
            for i in range(len(times))
        ]
    )
    series = med[clear]
    bkps = change_points(series)
    ct = [t for t, c in zip(times, clear, strict=True) if c]
    drops = []
    for i in range(1, len(series)):
        a = np.where(clm[np.flatnonzero(clear)[i - 1]], np.nan, ndvi[np.flatnonzero(clear)[i - 1]])
        b = np.where(clm[np.flatnonzero(clear)[i]], np.nan, ndvi[np.flatnonzero(clear)[i]])
        frac = float(np.nanmean((a - b) > 0.3))
        if frac > 0.05:
            drops.append((ct[i].date().isoformat(), round(frac, 3)))
    print(
        f"\nS2 NDVI series: {len(times)} dates, {int(clear.sum())} clear (<10% cloud); median NDVI "
        f"{np.nanmin(series):.2f}..{np.nanmax(series):.2f}; change points at "
        f"{[ct[i].date().isoformat() for i in bkps]}; dates where >5% of pixels lost >0.3 NDVI: {drops}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=0, help="e.g. 100 for a held-out set")
    ap.add_argument("--skip-real", action="store_true", help="only the scenario series")
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scenario_eval(args.seeds, Path(tmp), args.first_seed)
    if not args.skip_real:
        naip_eval(args.data)
        s2_ndvi_eval(args.data)


if __name__ == "__main__":
    main()
