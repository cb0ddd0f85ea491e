"""Writing a scenario: COGs, a static STAC catalog, and the ground truth beside them.

Everything written is deterministic: no timestamps in TIFF tags or STAC documents, relative
links only, and JSON with a fixed key order, so the same spec and seed give identical bytes.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from shapely.geometry import Polygon, mapping

from ..files import atomic_path, write_text
from ..geo import to_crs
from .spec import BAND_INFO, FeatureSpec
from .terrain import SceneGrid

__all__ = ["write_cog", "write_features", "write_item", "write_json", "write_stac_catalog"]

STAC_EXTENSIONS = [
    "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
    "https://stac-extensions.github.io/view/v1.0.0/schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
]
COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"


def write_cog(
    path: Path,
    data: NDArray[Any],
    grid: SceneGrid,
    *,
    nodata: float | None = None,
    descriptions: tuple[str, ...] | None = None,
    resampling: str = "average",
) -> None:
    """Write a (band, row, col) or (row, col) array as a DEFLATE-compressed COG."""
    import rasterio

    arr = data[None] if data.ndim == 2 else data
    profile: dict[str, Any] = {
        "driver": "COG",
        "width": grid.width,
        "height": grid.height,
        "count": arr.shape[0],
        "dtype": arr.dtype.name,
        "crs": f"EPSG:{grid.epsg}",
        "transform": grid.transform,
        "compress": "deflate",
        "predictor": 2 if arr.dtype.kind in "iu" else 3,
        "blocksize": 256,
        "overview_resampling": resampling,
    }
    if nodata is not None:
        profile["nodata"] = nodata
    with atomic_path(path, parents=True) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(arr)
        if descriptions:
            for i, d in enumerate(descriptions, start=1):
                dst.set_band_description(i, d)


def write_json(path: Path, data: Any) -> None:
    """Write JSON with a fixed layout (2-space indent, trailing newline)."""
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n", parents=True)


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _footprint_lonlat(grid: SceneGrid) -> tuple[dict[str, Any], list[float]]:
    w, s, e, n = grid.bounds
    poly = to_crs(Polygon([(w, s), (e, s), (e, n), (w, n)]), f"EPSG:{grid.epsg}", "EPSG:4326")
    minx, miny, maxx, maxy = poly.bounds
    geom = mapping(poly)
    return json.loads(json.dumps(geom)), [minx, miny, maxx, maxy]


def write_item(
    outdir: Path,
    item_id: str,
    grid: SceneGrid,
    when: datetime,
    bands: tuple[str, ...],
    sun: tuple[float, float],
    cloud_cover: float,
    cloud_mask: bool,
    platform: str,
) -> Path:
    """Write the STAC item JSON of one date (its COGs sit beside it); returns its path."""
    geometry, bbox = _footprint_lonlat(grid)
    assets: dict[str, Any] = {}
    for b in bands:
        centre, fwhm = BAND_INFO[b]
        assets[b] = {
            "href": f"./{b}.tif",
            "type": COG_MEDIA_TYPE,
            "title": f"{b} reflectance",
            "roles": ["data", "reflectance"],
            "eo:bands": [
                {"name": b, "common_name": b, "center_wavelength": centre,
                 "full_width_half_max": fwhm}
            ],
            "raster:bands": [
                {"data_type": "uint16", "nodata": 0, "scale": 0.0001, "offset": 0.0,
                 "spatial_resolution": grid.gsd}
            ],
        }  # fmt: skip
    if cloud_mask:
        assets["cloud_mask"] = {
            "href": "./cloud_mask.tif",
            "type": COG_MEDIA_TYPE,
            "title": "cloud mask (0 clear, 1 cloud, 2 cloud shadow)",
            "roles": ["cloud", "cloud-shadow"],
        }
    transform = list(grid.transform)[:6]
    props: dict[str, Any] = {
        "datetime": _iso(when),
        "platform": platform,
        "constellation": "sitewatch-scenario",
        "instruments": ["synthetic"],
        # figures credit the producer: no one holds rights to simulated pixels
        "providers": [{"name": "sitewatch scenario (synthetic imagery)", "roles": ["producer"]}],
        "gsd": grid.gsd,
        "eo:cloud_cover": round(cloud_cover, 3),
        "view:off_nadir": 0.0,
        "view:sun_azimuth": round(sun[0], 6),
        "view:sun_elevation": round(sun[1], 6),
        "proj:epsg": grid.epsg,
        "proj:code": f"EPSG:{grid.epsg}",
        "proj:transform": [round(v, 6) for v in transform],
        "proj:shape": [grid.height, grid.width],
        "proj:bbox": [round(v, 6) for v in grid.bounds],
    }
    item = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": STAC_EXTENSIONS,
        "id": item_id,
        "geometry": geometry,
        "bbox": bbox,
        "properties": props,
        "links": [
            {"rel": "root", "href": "../catalog.json", "type": "application/json"},
            {"rel": "parent", "href": "../catalog.json", "type": "application/json"},
        ],
        "assets": assets,
    }
    path = outdir / item_id / f"{item_id}.json"
    write_json(path, item)
    return path


def write_stac_catalog(
    outdir: Path, catalog_id: str, description: str, item_paths: list[Path]
) -> Path:
    """Write the root ``catalog.json`` (a self-contained static catalog) and check it with pystac."""
    import pystac

    links: list[dict[str, Any]] = [
        {"rel": "root", "href": "./catalog.json", "type": "application/json"}
    ]
    for p in item_paths:
        links.append(
            {"rel": "item", "href": f"./{p.relative_to(outdir).as_posix()}",
             "type": "application/json"}
        )  # fmt: skip
    cat = {
        "type": "Catalog",
        "id": catalog_id,
        "stac_version": "1.0.0",
        "description": description,
        "links": links,
    }
    path = outdir / "catalog.json"
    write_json(path, cat)
    # round-trip through pystac: a malformed catalog fails here, not in the user's reader
    read = pystac.Catalog.from_file(str(path))
    n = sum(1 for _ in read.get_items(recursive=True))
    if n != len(item_paths):  # pragma: no cover - defensive
        raise RuntimeError(f"STAC catalog lists {n} items, expected {len(item_paths)}")
    return path


def _feature_record(f: FeatureSpec, dates: list[str]) -> dict[str, Any]:
    present = [d for i, d in enumerate(dates) if f.present(i)]
    return {
        "id": f.id,
        "site_id": f.site_id,
        "kind": f.kind,
        "profile": f.profile,
        "material": f.material,
        "height_m": f.height_at(len(dates) - 1),
        "heights_m": {d: f.height_at(i) for i, d in enumerate(dates)},
        "first_seen": present[0] if present else None,
        "last_seen": present[-1] if present else None,
        "length_m": f.length_m,
        "width_m": f.width_m,
        "azimuth_deg": round(f.azimuth_deg, 4),
        "base_elevation_m": round(f.base_m, 3),
    }


def write_features(
    truth_dir: Path, grid: SceneGrid, features: list[FeatureSpec], dates: list[str]
) -> tuple[Path, Path]:
    """Write feature footprints with heights as GeoJSON, in lon/lat and in the scene's UTM CRS."""
    utm_feats = []
    ll_feats = []
    for f in features:
        ring = [(round(x, 3), round(y, 3)) for x, y in f.footprint()]
        poly = Polygon(ring)
        props = _feature_record(f, dates)
        utm_feats.append({"type": "Feature", "id": f.id, "properties": props,
                          "geometry": mapping(poly)})  # fmt: skip
        ll = to_crs(poly, f"EPSG:{grid.epsg}", "EPSG:4326")
        ll_ring = [(round(x, 8), round(y, 8)) for x, y in ll.exterior.coords]
        ll_feats.append({"type": "Feature", "id": f.id, "properties": props,
                         "geometry": mapping(Polygon(ll_ring))})  # fmt: skip
    ll_path = truth_dir / "features.geojson"
    utm_path = truth_dir / "features_utm.geojson"
    write_json(ll_path, json.loads(json.dumps({"type": "FeatureCollection", "features": ll_feats})))
    write_json(
        utm_path,
        json.loads(
            json.dumps(
                {
                    "type": "FeatureCollection",
                    "crs": {"type": "name",
                            "properties": {"name": f"urn:ogc:def:crs:EPSG::{grid.epsg}"}},
                    "features": utm_feats,
                }
            )
        ),
    )  # fmt: skip
    return ll_path, utm_path


def change_mask(
    grid: SceneGrid, features: list[FeatureSpec], i: int, j: int
) -> tuple[NDArray[np.uint8], list[dict[str, Any]]]:
    """Mask of pixels (centres) on the footprints of features that differ between dates i and j."""
    from .sites import apply_feature, feature_block

    mask = np.zeros((grid.height, grid.width), dtype=np.uint8)
    changes: list[dict[str, Any]] = []
    for f in features:
        hi, hj = f.height_at(i), f.height_at(j)
        if abs(hi - hj) < 1e-9 or f.profile == "flat":
            continue
        kind = "appeared" if hi == 0 else "removed" if hj == 0 else "grew" if hj > hi else "shrank"
        changes.append(
            {"feature_id": f.id, "site_id": f.site_id, "kind": f.kind, "change": kind,
             "height_before_m": hi, "height_after_m": hj}
        )  # fmt: skip
        xmin, ymin, xmax, ymax = feature_block(f)
        c0, r0 = grid.to_pixel(np.float64(xmin), np.float64(ymax))
        c1, r1 = grid.to_pixel(np.float64(xmax), np.float64(ymin))
        r0i, r1i = max(int(r0), 0), min(int(np.ceil(r1)), grid.height)
        c0i, c1i = max(int(c0), 0), min(int(np.ceil(c1)), grid.width)
        if r0i >= r1i or c0i >= c1i:
            continue
        rr, cc = np.mgrid[r0i:r1i, c0i:c1i].astype(np.float64)
        x, y = grid.to_xy(cc + 0.5, rr + 0.5)
        probe = np.zeros(x.shape)
        k = j if hj > 0 else i  # the footprint of whichever state has the feature
        inside = apply_feature(f, k, x, y, probe)
        mask[r0i:r1i, c0i:c1i] |= inside.astype(np.uint8)
    return mask, changes
