"""``make_scenario``: terrain, sites, dated renders, COGs + STAC + ground truth in one folder."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..analysis.mensuration import grid_azimuth
from ..analysis.sun import solar_position
from ..errors import InputError
from .landcover import landcover_map, reflectance
from .render import compose, illumination, pixel_surface, render_clouds, sensor, shadow_fraction
from .sites import SiteLayout, layout_sites, seat_feature
from .spec import ScenarioResult, ScenarioSpec, acquisition_times
from .terrain import dem_center, generated_dem, load_dem, scene_grid
from .writer import (
    change_mask,
    write_cog,
    write_features,
    write_item,
    write_json,
    write_stac_catalog,
)

__all__ = ["make_scenario"]

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]

DEFAULT_CENTER = (126.108, 38.585)  # near Sakkanmol, North Korea


def _rng(seed: int, *stream: int) -> np.random.Generator:
    """An independent, reproducible stream per purpose (terrain, sites, date k, ...)."""
    return np.random.default_rng([seed, *stream])


def make_scenario(
    outdir: str | Path, spec: ScenarioSpec, *, progress: Progress | None = None
) -> ScenarioResult:
    """Generate the scenario ``spec`` into ``outdir`` and return what was written.

    Layout of ``outdir``::

        catalog.json                     static STAC catalog (self-contained, relative links)
        <scenario>-<YYYYMMDD>/           one STAC item per date:
            <scenario>-<YYYYMMDD>.json     item (view:sun_*, proj:*, eo:cloud_cover, gsd)
            blue.tif green.tif ...         one COG per band, uint16 reflectance x 10000
            cloud_mask.tif                 with clouds: 0 clear, 1 cloud, 2 cloud shadow
        truth/
            truth.json                     spec, grid, dates, sun, sites, features, changes
            features.geojson               footprints in lon/lat with heights per date
            features_utm.geojson           the same in the scene's UTM CRS
            dem.tif                        bare-earth DEM (after site grading), float32 m
            changes/<d0>_<d1>.tif          change mask per consecutive date pair (uint8)
    """
    t0 = time.perf_counter()
    out = Path(outdir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} exists and is not a folder; choose an empty output folder")
    if out.exists() and (out / "catalog.json").exists():
        logger.info("overwriting the scenario in %s", out)
    out.mkdir(parents=True, exist_ok=True)
    report = progress or (lambda stage, i, n: None)

    if spec.center is not None:
        lon, lat = spec.center
    elif spec.dem is not None:
        lon, lat = dem_center(Path(spec.dem))
    else:
        lon, lat = DEFAULT_CENTER
    grid = scene_grid(lon, lat, spec.size_px, spec.gsd, spec.margin_px)
    report("terrain", 0, 1)
    if spec.dem is not None:
        dem = load_dem(Path(spec.dem), grid)
    else:
        relief = spec.relief_m or 0.2 * max(spec.size_px) * spec.gsd
        dem, _axis = generated_dem(grid, _rng(spec.seed, 1), relief, flat=spec.terrain == "flat")
    sites, dem = layout_sites(spec, grid, dem, _rng(spec.seed, 2))
    cx, cy = grid.center_xy
    explicit = [
        seat_feature(
            grid, dem,
            replace(f, x=cx + f.x, y=cy + f.y, site_id=f.site_id or "explicit"),
            offset=f.base_m,
        )
        for f in spec.features
    ]  # fmt: skip
    features = [f for s in sites for f in s.features] + explicit

    lc_rng = _rng(spec.seed, 3)
    classes, parcels = landcover_map(grid, dem, lc_rng, spec.landcover)
    phases = lc_rng.uniform(-60.0, 60.0, int(parcels.max()) + 2)
    texture = None
    if spec.texture > 0:
        from .terrain import fractal_noise

        tex = fractal_noise(_rng(spec.seed, 4), (grid.height, grid.width), beta=1.2, cutoff=4.0)
        texture = np.clip(1.0 + spec.texture * tex, 0.5, 1.5).astype(np.float32)

    times = acquisition_times(spec, lon)
    if spec.sun_angles is not None:
        suns = [(float(a) % 360.0, float(e)) for a, e in spec.sun_angles]
    else:
        angles = solar_position(
            lon, lat, np.array([np.datetime64(t.replace(tzinfo=None), "s") for t in times]),
            refraction=True,
        )  # fmt: skip
        suns = [(float(a), float(e)) for a, e in zip(angles.azimuth, angles.elevation, strict=True)]
    for t, (_, el) in zip(times, suns, strict=True):
        if el <= 2.0:
            raise InputError(
                f"the sun is {el:.1f} degrees above the horizon at {t.isoformat()} at "
                f"{lon:.3f}, {lat:.3f}: no usable daylight image; choose other dates or times"
            )

    centre = (
        grid.west + grid.width * grid.gsd / 2.0,
        grid.north - grid.height * grid.gsd / 2.0,
    )
    date_keys = [t.strftime("%Y-%m-%d") for t in times]
    item_paths: list[Path] = []
    items_meta: list[dict[str, Any]] = []
    n = len(times)
    for k, (when, sun) in enumerate(zip(times, suns, strict=True)):
        report("render", k, n)
        item_id = f"{spec.scenario_id}-{when.strftime('%Y%m%d')}"
        _, smooth, material, flat_top = pixel_surface(grid, dem, features, k, classes)
        # the sun's azimuth is a true azimuth; the grid is UTM: render along the grid azimuth
        az = grid_azimuth(f"EPSG:{grid.epsg}", centre[0], centre[1], sun[0])
        shadow = shadow_fraction(
            grid, dem, features, k, az, sun[1], oversample=spec.shadow_oversample
        )
        direct, sky = illumination(smooth, flat_top, grid.gsd, az, sun[1])
        rho = reflectance(material, parcels, spec.bands, when, texture, phases)
        radiance = compose(rho, spec.bands, direct, sky, shadow)
        cover = 0.0
        mask = None
        if spec.clouds:
            date_rng = _rng(spec.seed, 10, k)
            amount = float(date_rng.uniform(0.0, 2.0 * spec.cloud_cover)) if k % 3 else 0.0
            if amount > 0.005:
                opacity, cshadow = render_clouds(grid, date_rng, amount, az, sun[1])
                for b in range(radiance.shape[0]):
                    dimmed = radiance[b] * (1.0 - 0.7 * cshadow)
                    radiance[b] = dimmed * (1.0 - opacity) + 0.75 * opacity
                mask = np.zeros((grid.height, grid.width), dtype=np.uint8)
                mask[cshadow > 0.3] = 2
                mask[opacity > 0.3] = 1
                cover = 100.0 * float((mask == 1).mean())
            else:
                mask = np.zeros((grid.height, grid.width), dtype=np.uint8)
        dn = sensor(radiance, _rng(spec.seed, 20, k), spec.psf_sigma_px, spec.noise)
        for b, name in enumerate(spec.bands):
            write_cog(out / item_id / f"{name}.tif", dn[b], grid, nodata=0, descriptions=(name,))
        if mask is not None:
            write_cog(out / item_id / "cloud_mask.tif", mask, grid, resampling="nearest")
        path = write_item(
            out, item_id, grid, when, spec.bands, sun, cover, mask is not None,
            platform=spec.scenario_id,
        )  # fmt: skip
        item_paths.append(path)
        items_meta.append(
            {"id": item_id, "datetime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
             "item": path.relative_to(out).as_posix(), "sun_azimuth": round(sun[0], 6),
             "sun_elevation": round(sun[1], 6), "cloud_cover": round(cover, 3)}
        )  # fmt: skip
    report("render", n, n)

    report("truth", 0, 1)
    catalog = write_stac_catalog(
        out, spec.scenario_id, f"Synthetic scenario {spec.scenario_id} (sitewatch)", item_paths
    )
    truth_dir = out / "truth"
    m = grid.margin
    bare = dem[m : m + grid.height, m : m + grid.width].astype(np.float32)
    write_cog(truth_dir / "dem.tif", bare, grid, resampling="average")
    ll_path, utm_path = write_features(truth_dir, grid, features, date_keys)
    change_paths: list[Path] = []
    changes = []
    for k in range(n - 1):
        cmask, changed = change_mask(grid, features, k, k + 1)
        name = f"{times[k].strftime('%Y%m%d')}_{times[k + 1].strftime('%Y%m%d')}.tif"
        cpath = truth_dir / "changes" / name
        write_cog(cpath, cmask, grid, resampling="nearest")
        change_paths.append(cpath)
        changes.append(
            {"from": date_keys[k], "to": date_keys[k + 1],
             "mask": cpath.relative_to(out).as_posix(),
             "changed_pixels": int(cmask.sum()), "features": changed}
        )  # fmt: skip
    truth = {
        "scenario": spec.scenario_id,
        "spec": spec.to_dict(),
        "center": {"lon": round(lon, 8), "lat": round(lat, 8)},
        "crs": f"EPSG:{grid.epsg}",
        "transform": [round(v, 6) for v in list(grid.transform)[:6]],
        "shape": [grid.height, grid.width],
        "gsd": grid.gsd,
        "dates": date_keys,
        "items": items_meta,
        "sites": [_site_record(s, grid) for s in sites],
        "features": "truth/features.geojson",
        "features_utm": "truth/features_utm.geojson",
        "dem": "truth/dem.tif",
        "changes": changes,
    }
    truth_json = truth_dir / "truth.json"
    write_json(truth_json, truth)
    report("truth", 1, 1)
    seconds = time.perf_counter() - t0
    logger.info("scenario %s: %d dates in %.1f s -> %s", spec.scenario_id, n, seconds, out)
    return ScenarioResult(
        outdir=out.resolve(),
        catalog=catalog.resolve(),
        items=tuple(p.resolve() for p in item_paths),
        truth_json=truth_json.resolve(),
        features_geojson=ll_path.resolve(),
        features_utm_geojson=utm_path.resolve(),
        change_masks=tuple(p.resolve() for p in change_paths),
        dem=(truth_dir / "dem.tif").resolve(),
        epsg=grid.epsg,
        dates=tuple(times),
        truth=truth,
        seconds=seconds,
    )


def _site_record(site: SiteLayout, grid: Any) -> dict[str, Any]:
    lon, lat = grid.lonlat(site.x, site.y)
    return {
        "id": site.id,
        "name": site.name,
        "category": site.category,
        "lon": round(lon, 8),
        "lat": round(lat, 8),
        "x": round(site.x, 3),
        "y": round(site.y, 3),
        "features": [f.id for f in site.features],
    }
