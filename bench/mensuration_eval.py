"""Evaluation of heights from shadows, viewshed/defilade and sun angles (issue 7).

    .venv/bin/python bench/mensuration_eval.py [--seeds 8] [--workdir DIR] [--data ../shared/data]

1. Scenario scenes (sitewatch.scenario) at 0.5 m GSD, one date each, sun elevation drawn in
   30..60 degrees: every ``box`` feature (shelters, HQ, barracks) and ``berm`` is measured with
   its true footprint, the sun angles read from the scene's STAC item and the scene's bare-earth
   DEM for the slope correction; reports the median absolute height error (target <= 0.5 m).
2. SpaceNet Atlanta 0.5 m tile: the image has no metadata; the sun azimuth is estimated from the
   shadow directions (the azimuth that maximises the dark fraction next to the footprints on
   the anti-sun side) and the elevation from the acquisition season (assumption stated below);
   reports the tallest buildings found.
3. SRTM N44W072: viewshed areas and defilade of a summit and a valley; timings.
4. Landsat MTL/ANG: sun angles from the metadata vs the angles computed from the scene time.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import peak_rss_mb, print_table
from sitewatch.analysis.mensuration import heights_from_shadows


def _brightness(item: Path) -> tuple[np.ndarray, Any, Any, dict[str, Any]]:
    doc = json.loads(item.read_text())
    arrs = []
    transform = crs = None
    for key in ("red", "green", "blue"):
        href = doc["assets"][key]["href"]
        with rasterio.open(item.parent / href) as ds:
            arrs.append(ds.read(1, masked=True).astype(float).filled(np.nan))
            transform, crs = ds.transform, ds.crs
    return np.mean(arrs, axis=0), transform, crs, doc


def scenario_eval(seeds: int, workdir: Path) -> dict[str, Any]:
    from shapely.geometry import shape

    from sitewatch.analysis.sun import sun_from_stac
    from sitewatch.analysis.terrain import dem_on_grid, read_dem
    from sitewatch.scenario import ScenarioSpec, make_scenario

    rows: list[tuple[Any, ...]] = []
    errors: dict[str, list[float]] = {"box": [], "berm": []}
    within: dict[str, list[bool]] = {"box": [], "berm": []}
    nulls: dict[str, int] = {}
    total: dict[str, int] = {"box": 0, "berm": 0}
    t_measure = 0.0
    for seed in range(seeds):
        rng = np.random.default_rng(1000 + seed)
        el = float(rng.uniform(30.0, 60.0))
        az = float(rng.uniform(100.0, 260.0))
        spec = ScenarioSpec(seed=seed, sites=1, dates=1, size_px=(768, 768), gsd=0.5,
                            sun_angles=((az, el),), name=f"eval-{seed}")  # fmt: skip
        res = make_scenario(workdir / f"s{seed}", spec)
        img, transform, crs, item = _brightness(res.items[0])
        sun = sun_from_stac(item)
        feats = json.loads(res.features_utm_geojson.read_text())["features"]
        polys, ridges, ids, truth, prof = [], [], [], [], []
        for f in feats:
            p = f["properties"]
            if p["profile"] == "flat" or p["height_m"] <= 0:
                continue
            g = shape(f["geometry"])
            polys.append(g)
            ids.append(p["id"])
            truth.append(p["height_m"])
            prof.append(p["profile"])
            ridges.append(p["profile"] == "berm")
        dem = dem_on_grid(read_dem(res.dem), crs, transform, img.shape)
        t0 = time.perf_counter()
        out = heights_from_shadows(img, transform, polys, sun=(sun.azimuth, sun.elevation), ids=ids,
                                   ridges=ridges, crs=crs, dem=dem, dem_sigma_m=0.1)  # fmt: skip
        t_measure += time.perf_counter() - t0
        for r, h, kind in zip(out, truth, prof, strict=True):
            if kind not in errors:
                continue
            total[kind] += 1
            if r.height_m is None:
                nulls[f"{kind}:{r.reason}"] = nulls.get(f"{kind}:{r.reason}", 0) + 1
                rows.append((seed, round(el, 1), r.id, kind, h, None, None, r.reason))
                continue
            errors[kind].append(abs(r.height_m - h))
            within[kind].append(abs(r.height_m - h) <= 2.0 * (r.uncertainty_m or 0.0))
            rows.append((seed, round(el, 1), r.id, kind, h, round(r.height_m, 2),
                         round(r.uncertainty_m or 0, 2), ""))  # fmt: skip
    print_table("Scenario scenes, 0.5 m GSD, sun elevation 30-60 deg",
                ["seed", "sun el", "feature", "profile", "true h (m)", "measured (m)", "+/- (m)", "null reason"],
                rows)  # fmt: skip
    summary: dict[str, Any] = {
        k: {"n": len(v), "total": total[k], "median_abs_error_m": round(statistics.median(v), 3) if v else None,
            "p90_abs_error_m": round(float(np.percentile(v, 90)), 3) if v else None,
            "within_2_sigma": round(float(np.mean(within[k])), 3) if v else None}
        for k, v in errors.items()
    }  # fmt: skip
    summary["nulls"] = nulls
    summary["measure_seconds"] = round(t_measure, 2)
    return summary


def _anti_sun_darkness(img: np.ndarray, transform: Any, polys: list[Any], az: float) -> float:
    """Mean darkness (1 - normalised brightness) in a band 1..4 m beyond the footprints, downsun."""
    from shapely import affinity

    from sitewatch.analysis._shadow import _rasterize

    a = math.radians(az + 180.0)
    bands = []
    for p in polys:
        moved = affinity.translate(p, 3.0 * math.sin(a), 3.0 * math.cos(a))
        bands.append(moved.difference(p.buffer(0.5)))
    mask = _rasterize([b for b in bands if not b.is_empty], transform, img.shape)
    valid = np.isfinite(img)
    lo, hi = np.nanpercentile(img, [2, 98])
    return float(1.0 - np.clip((img[mask & valid] - lo) / (hi - lo), 0, 1).mean())


def spacenet_eval(data: Path) -> dict[str, Any]:
    from shapely.geometry import shape

    from sitewatch.analysis.sun import sun_position
    from sitewatch.geo import to_crs

    tif = data / "spacenet" / "sample_geotiff.tif"
    with rasterio.open(tif) as ds:
        img = ds.read(1, masked=True).astype(float).filled(np.nan)
        transform, crs = ds.transform, ds.crs
        lon, lat = ds.lnglat()
    doc = json.loads((data / "spacenet" / "geotiff_labels.geojson").read_text())
    polys = [shape(f["geometry"]) for f in doc["features"]]
    polys = [p if p.geom_type == "Polygon" else max(p.geoms, key=lambda q: q.area) for p in polys]
    # 1. sun azimuth from the shadows: where is it darkest just beyond the footprints?
    scores = [(az, _anti_sun_darkness(img, transform, polys, az)) for az in range(0, 360, 5)]
    best = max(scores, key=lambda s: s[1])[0]
    fine = [
        (az, _anti_sun_darkness(img, transform, polys, az))
        for az in np.arange(best - 5, best + 5.1, 1.0)
    ]
    az_est = float(max(fine, key=lambda s: s[1])[0]) % 360.0
    # 2. elevation: SpaceNet Atlanta (WorldView-2, acquired 2009-12-22 around 16:20 UTC per the
    #    SpaceNet-4 off-nadir dataset description); leaf-off trees and long shadows agree with a
    #    December morning. We take the sun at that time and check its azimuth against the estimate.
    when = __import__("datetime").datetime(2009, 12, 22, 16, 20, tzinfo=__import__("datetime").UTC)
    sp = sun_position(lon, lat, when, refraction=True)
    out = heights_from_shadows(img, transform, polys, sun=(az_est, sp.elevation), crs=crs,
                               elevation_sigma_deg=1.5)  # fmt: skip
    measured = [(i, r) for i, r in enumerate(out) if r.height_m is not None]
    reasons: dict[str, int] = {}
    for r in out:
        if r.reason:
            reasons[r.reason] = reasons.get(r.reason, 0) + 1
    top = sorted(measured, key=lambda ir: -(ir[1].height_m or 0))[:8]
    rows = []
    for i, r in top:
        c = to_crs(polys[i], crs, "EPSG:4326").centroid
        rows.append((i, round(c.x, 5), round(c.y, 5), round(polys[i].area, 1), round(r.height_m or 0, 2),
                     round(r.uncertainty_m or 0, 2), round(r.shadow_length_m or 0, 2), r.inputs.get("rays_used")))  # fmt: skip
    print_table("SpaceNet Atlanta tile: tallest buildings found",
                ["#", "lon", "lat", "footprint m2", "height m", "+/- m", "shadow m", "rays"], rows)  # fmt: skip
    heights = [r.height_m for _, r in measured if r.height_m is not None]
    return {
        "footprints": len(polys), "measured": len(measured), "null_reasons": reasons,
        "sun_azimuth_estimated": round(az_est, 1),
        "sun_assumed_2009_12_22T16_20Z": {"azimuth": round(sp.azimuth, 2), "elevation": round(sp.elevation, 2)},
        "median_height_m": round(statistics.median(heights), 2) if heights else None,
    }  # fmt: skip


def terrain_eval(data: Path) -> dict[str, Any]:
    from shapely.geometry import Point

    from sitewatch.analysis.terrain import defilade_from_direction, read_dem, viewshed

    dem = read_dem(data / "srtm" / "N44W072.hgt")
    t0 = time.perf_counter()
    vis, metric = viewshed(dem, (-71.3033, 44.2706), observer_height=2.0)
    t_vs = time.perf_counter() - t0
    cell_km2 = abs(metric.transform.a * metric.transform.e) / 1e6
    valley, _ = viewshed(dem, (-71.253, 44.257), observer_height=2.0)
    pts = [Point(-71.3033, 44.2706), Point(-71.253, 44.257)]
    t0 = time.perf_counter()
    dfl = {
        az: defilade_from_direction(metric, pts, threat_azimuth=az, threat_elevation=5.0)
        for az in (0, 90, 180, 270)
    }
    t_df = time.perf_counter() - t0
    return {
        "viewshed_seconds": round(t_vs, 2), "grid": list(metric.shape),
        "summit_visible_km2": round(float(vis.sum()) * cell_km2, 1),
        "valley_visible_km2": round(float(valley.sum()) * cell_km2, 1),
        "defilade_5deg": {az: [r.masked for r in rs] for az, rs in dfl.items()},
        "horizon_deg": {az: [round(r.horizon_deg or 0, 2) for r in rs] for az, rs in dfl.items()},
        "defilade_seconds_4_directions": round(t_df, 2),
    }  # fmt: skip


def landsat_eval(data: Path) -> dict[str, Any]:
    from sitewatch.analysis.sun import read_sun_angles

    out = {}
    for p in sorted((data / "landsat-metadata").glob("*.txt")):
        if "MTL" in p.name or "ANG" in p.name:
            sp = read_sun_angles(p)
            out[p.name[:40]] = {
                "azimuth": round(sp.azimuth, 4),
                "elevation": round(sp.elevation, 4),
                "source": sp.source,
            }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument(
        "--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    ap.add_argument(
        "--parts",
        default="scenario,spacenet,terrain,landsat",
        help="comma-separated parts to run (default: all)",
    )
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        t0 = time.perf_counter()
        result: dict[str, Any] = {}
        if "scenario" in parts:
            result["scenario"] = scenario_eval(args.seeds, work)
        if "spacenet" in parts:
            result["spacenet"] = spacenet_eval(args.data)
        if "terrain" in parts:
            result["terrain_srtm"] = terrain_eval(args.data)
        if "landsat" in parts:
            result["landsat_sun"] = landsat_eval(args.data)
        result["seconds"] = round(time.perf_counter() - t0, 1)
        result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    print("\n```json\n" + json.dumps(result, indent=2) + "\n```")


if __name__ == "__main__":
    main()
