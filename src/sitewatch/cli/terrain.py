"""``sitewatch terrain``: DEM derivatives, viewsheds, defilade (landform: see .landform)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import numpy as np

from ..errors import InputError
from ..files import atomic_path
from ._geoinputs import check_site, point_or_site, read_geofile, site_features
from .options import Finite, console, echo_json, err_console, json_option, site_kind_option

__all__ = ["terrain"]

logger = logging.getLogger(__name__)


def _write(
    path: Path, data: np.ndarray, transform: Any, crs: Any, dtype: str, nodata: float
) -> None:
    import rasterio

    arr = np.where(np.isfinite(data), data, nodata) if data.dtype.kind == "f" else data
    profile = {
        "driver": "GTiff",
        "height": data.shape[0],
        "width": data.shape[1],
        "count": 1,
        "dtype": dtype,
        "crs": crs,
        "transform": transform,
        "nodata": nodata,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
    }
    if data.shape[0] < 256 or data.shape[1] < 256:
        profile.update(tiled=False)
        profile.pop("blockxsize")
        profile.pop("blockysize")
    with atomic_path(path, parents=True) as tmp, rasterio.open(tmp, "w", **profile) as ds:
        ds.write(arr.astype(dtype), 1)


@click.group()
def terrain() -> None:
    """DEM derivatives, viewsheds, defilade and landform (GeoTIFF, SRTM .hgt, Copernicus DEM)."""


@terrain.command("derive")
@click.argument("dem", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-o", "--output", "outdir", required=True, type=click.Path(file_okay=False, path_type=Path)
)
@click.option(
    "--products",
    default="slope,aspect,hillshade,relief,tri,tpi",
    show_default=True,
    help="Comma-separated products.",
)
@click.option(
    "--azimuth", type=Finite(), default=315.0, show_default=True, help="Hillshade light azimuth."
)
@click.option(
    "--altitude",
    type=Finite(0, 90),
    default=45.0,
    show_default=True,
    help="Hillshade light altitude.",
)
@click.option(
    "--window", type=int, default=3, show_default=True, help="Relief window (odd pixels)."
)
@json_option
def derive_cmd(
    dem: Path,
    outdir: Path,
    products: str,
    azimuth: float,
    altitude: float,
    window: int,
    as_json: bool,
) -> None:
    """Write slope, aspect, hillshade, relief, TRI and TPI GeoTIFFs of DEM into OUTDIR."""
    from ..analysis.terrain import derive, read_dem

    d = read_dem(dem)
    names = [p.strip() for p in products.split(",") if p.strip()]
    out = derive(d, names, azimuth=azimuth, altitude=altitude, window=window)
    report: dict[str, Any] = {}
    for name, arr in out.items():
        path = outdir / f"{dem.stem}_{name}.tif"
        _write(path, arr.astype(np.float32), d.transform, d.crs, "float32", -9999.0)
        finite = arr[np.isfinite(arr)]
        report[name] = {
            "path": str(path),
            "min": float(finite.min()) if finite.size else None,
            "max": float(finite.max()) if finite.size else None,
            "mean": float(finite.mean()) if finite.size else None,
        }
    if as_json:
        echo_json(report)
    else:
        for name, r in report.items():
            console().print(f"{name}: {r['path']}")


@terrain.command("viewshed")
@click.argument("dem", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--observer", required=True, help="LON,LAT of the observer, or a catalog site id.")
@click.option(
    "--height",
    type=Finite(min=0),
    default=1.7,
    show_default=True,
    help="Observer height above ground (m).",
)
@click.option(
    "--target-height",
    type=Finite(min=0),
    default=0.0,
    show_default=True,
    help="Target height above ground (m).",
)
@click.option("--max-distance", type=Finite(min=0, min_open=True), help="Maximum distance (km).")
@click.option("--no-curvature", is_flag=True, help="Ignore earth curvature and refraction.")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="GeoTIFF: 1 visible, 0 not visible, 255 no data (on a metric grid).",
)
@json_option
def viewshed_cmd(
    dem: Path,
    observer: str,
    height: float,
    target_height: float,
    max_distance: float | None,
    no_curvature: bool,
    output: Path,
    as_json: bool,
) -> None:
    """The area of DEM visible from an observer."""
    from ..analysis.terrain import read_dem, viewshed, visible_area_m2

    d = read_dem(dem)
    obs, _ = point_or_site(observer, "--observer")
    vis, metric = viewshed(
        d,
        obs,
        observer_height=height,
        target_height=target_height,
        max_distance=max_distance * 1000.0 if max_distance else None,
        curvature=not no_curvature,
    )
    out = np.where(np.isfinite(metric.data), vis.astype(np.uint8), 255).astype(np.uint8)
    _write(output, out, metric.transform, metric.crs, "uint8", 255)
    valid = int(np.isfinite(metric.data).sum())
    summary: dict[str, Any] = {
        "output": str(output),
        "observer": list(obs),
        "observer_height_m": height,
        "visible_fraction": round(float(vis.sum()) / max(valid, 1), 6),
        "visible_area_km2": round(visible_area_m2(vis, metric) / 1e6, 3),
        "crs": metric.crs.to_string(),
    }
    if as_json:
        echo_json(summary)
    else:
        console().print(
            f"visible: {summary['visible_area_km2']} km2 "
            f"({100 * summary['visible_fraction']:.1f}% of the DEM) -> {output}"
        )


@terrain.command("defilade")
@click.argument("dem", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--features",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Points/lines/polygons (GeoJSON or any vector file; default: the features of --site).",
)
@click.option(
    "--site",
    "site_id",
    help="A catalog site: its mapped features are the targets (unless --features), and each "
    "answer is stored as a defilade measurement of its feature.",
)
@site_kind_option
@click.option(
    "--no-store", is_flag=True, help="With --site: print the answers without storing them."
)
@click.option(
    "--threat-azimuth", type=Finite(), help="Direction the threat lies in (deg from true north)."
)
@click.option(
    "--threat-elevation",
    type=Finite(-90, 90),
    help="Lowest elevation angle of incoming fire/sight (deg).",
)
@click.option(
    "--threat-point",
    help="LON,LAT of a threat position, or a catalog site id (viewshed from it).",
)
@click.option(
    "--threat-height",
    type=Finite(min=0),
    default=2.0,
    show_default=True,
    help="Height of the threat point above ground (m).",
)
@click.option(
    "--target-height",
    type=Finite(min=0),
    default=0.0,
    show_default=True,
    help="Height of the features above ground (m).",
)
@click.option(
    "--max-distance",
    type=Finite(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Horizon search distance (km).",
)
@click.option(
    "--dem-sigma",
    type=Finite(min=0),
    default=None,
    help="Vertical error of the DEM (m, one sigma): adds horizon_sigma_deg to a threat "
    "direction's result (SRTM: about 6; a lidar DEM: 0.1-0.5).",
)
@json_option
def defilade_cmd(
    dem: Path,
    features: Path | None,
    site_id: str | None,
    kinds: Sequence[str],
    no_store: bool,
    threat_azimuth: float | None,
    threat_elevation: float | None,
    threat_point: str | None,
    threat_height: float,
    target_height: float,
    max_distance: float,
    dem_sigma: float | None,
    as_json: bool,
) -> None:
    """Which features are masked by terrain from a threat direction or a threat point.

    The targets are the features of a file (--features), or those mapped for a catalog site
    (--site, e.g. its tunnel portals with --kind ugf_portal). With --site each answer is stored
    as a defilade measurement of its feature: from a direction, the horizon angle towards the
    threat (deg; masked when above --threat-elevation); from a point, the share of the feature
    hidden from it.
    """
    from ..analysis.terrain import defilade_from_direction, defilade_from_point, read_dem
    from ..geo import to_crs

    direction = threat_azimuth is not None or threat_elevation is not None
    if direction == (threat_point is not None):
        raise InputError("give either --threat-azimuth and --threat-elevation, or --threat-point")
    if direction and (threat_azimuth is None or threat_elevation is None):
        raise InputError(
            "--threat-azimuth and --threat-elevation go together: give the lowest elevation angle "
            "of the incoming fire or line of sight too, e.g. --threat-elevation 5"
        )
    if features is None and site_id is None:
        raise InputError("give --features (a vector file), or --site to use its mapped features")
    if site_id is None and (kinds or no_store):
        raise InputError("--kind and --no-store go with --site")
    if features is not None and kinds:
        raise InputError("--kind picks features of --site; with --features, edit the file")
    if features is not None:
        check_site(site_id)
        geoms, props, crs = read_geofile(features)
    else:
        assert site_id is not None
        geoms, props, crs = site_features(site_id, kinds)
    if not crs.equals("EPSG:4326"):
        geoms = [None if g is None else to_crs(g, crs, "EPSG:4326") for g in geoms]
    ids = [None if p.get("id") is None else str(p.get("id")) for p in props]
    usable = [(i, g) for i, g in enumerate(geoms) if g is not None and not g.is_empty]
    d = read_dem(dem)
    if threat_point is not None:
        res = defilade_from_point(
            d,
            [g for _, g in usable],
            threat=point_or_site(threat_point, "--threat-point")[0],
            threat_height=threat_height,
            ids=[ids[i] for i, _ in usable],
            target_height=target_height,
        )
    else:
        assert threat_azimuth is not None and threat_elevation is not None
        res = defilade_from_direction(
            d,
            [g for _, g in usable],
            threat_azimuth=threat_azimuth,
            threat_elevation=threat_elevation,
            ids=[ids[i] for i, _ in usable],
            target_height=target_height,
            max_distance=max_distance * 1000.0,
            dem_sigma_m=dem_sigma,
        )
    rows: list[dict[str, Any]] = [
        {
            "index": i,
            "id": ids[i],
            "masked": None,
            "masked_fraction": None,
            "horizon_deg": None,
            "points": 0,
            "reason": "no_geometry",
        }
        for i in range(len(geoms))
    ]
    for (i, _), result in zip(usable, res, strict=True):
        row = result.to_dict()
        row["index"] = i
        rows[i] = row
    if site_id is not None and not no_store:
        stored = _store_defilade(
            site_id,
            rows,
            dem=dem,
            threat=(
                {"threat_azimuth": threat_azimuth, "threat_elevation": threat_elevation}
                if threat_point is None
                else {"threat_point": threat_point, "threat_height": threat_height}
            ),
            target_height=target_height,
        )
        err_console().print(f"stored {stored} defilade measurement(s) on site {site_id}")
    if as_json:
        echo_json(rows)
        return
    threat = (
        f"from {threat_azimuth:g}° at {threat_elevation:g}°"
        if threat_point is None
        else f"from {threat_point}"
    )
    for r, p in zip(rows, props, strict=True):
        name, rid = p.get("name"), r["id"]
        head = (
            f"{name} ({rid})" if name and rid and name != rid
            else str(name or rid or f"feature {r['index'] + 1}")
        )  # fmt: skip
        if r["masked"] is None:  # say why there is no answer rather than print None
            why = _NO_ANSWER.get(r.get("reason") or "", r.get("reason") or "no answer")
            console().print(f"{head}: no answer: {why}", highlight=False)
            continue
        console().print(f"{head}: {_defilade_text(r, threat, threat_elevation)}", highlight=False)


def _defilade_text(row: dict[str, Any], threat: str, threat_elevation: float | None) -> str:
    """``masked from 180° at 5°: all 12 points, lowest horizon 7.1 ± 1.2°``, or ``exposed ...``:
    a feature is masked only when every point of it is."""
    n, frac = row["points"], row["masked_fraction"]
    hidden = "hidden" if threat_elevation is None else "masked"
    share = (
        f"all {n} point(s) {hidden}"
        if row["masked"]
        else f"{frac:.0%} of its {n} point(s) {hidden}"
    )
    text = f"{'masked' if row['masked'] else 'EXPOSED'} {threat}: {share}"
    if row["horizon_deg"] is not None:
        sd = row.get("horizon_sigma_deg")
        err = "" if sd is None else f" ± {sd:.1f}"
        text += f", lowest horizon {row['horizon_deg']:.1f}{err}°"
    return text


def _store_defilade(
    site_id: str,
    rows: Sequence[dict[str, Any]],
    *,
    dem: Path,
    threat: dict[str, Any],
    target_height: float,
) -> int:
    """Store the answered rows as defilade measurements of their features (see ``defilade``)."""
    from .measure import store_measurements

    direction = "threat_azimuth" in threat
    out = []
    for r in rows:
        if r["masked"] is None:
            continue
        inputs = {
            **threat,
            "masked": r["masked"],
            "masked_fraction": r["masked_fraction"],
            "points": r["points"],
            "target_height": target_height,
            "dem": dem.name,
        }
        if direction:
            out.append(
                {
                    "value": r["horizon_deg"],
                    "uncertainty": r.get("horizon_sigma_deg"),
                    "unit": "deg",
                    "method": "horizon angle towards the threat on the DEM (terrain.defilade)",
                    "feature_id": r["id"],
                    "inputs": inputs,
                }
            )
        else:
            out.append(
                {
                    "value": r["masked_fraction"],
                    "unit": "fraction",
                    "method": "share of the feature hidden from the threat point (viewshed)",
                    "feature_id": r["id"],
                    "inputs": inputs,
                }
            )
    return store_measurements(site_id, out, "defilade")


_NO_ANSWER = {
    "outside_dem": "the feature lies outside the DEM; give a DEM that covers it",
    "no_geometry": "the feature has no geometry",
}


def _register() -> None:
    from .landform import landform_cmd

    terrain.add_command(landform_cmd)


_register()
