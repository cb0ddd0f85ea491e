"""Reading image pairs for change detection and writing its outputs (COG, GeoJSON polygons).

Images are multi-band rasters or folders of single-band files (``*_B02.tif`` ...); bands at a coarser
resolution (Sentinel-2 B11/B12 at 20 m) are resampled onto the grid of the finest band. AFTER is
reprojected onto BEFORE's grid when the grids differ, with a warning, and can then be moved onto
BEFORE by the sub-pixel shift that phase correlation measures (:func:`coregister_pair`).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from numpy.typing import NDArray
from rasterio.crs import CRS
from rasterio.transform import Affine
from rasterio.warp import Resampling, reproject

from ..errors import ImageryError, InputError, gdal_text
from ..files import atomic_path, write_text

__all__ = [
    "Raster",
    "align_pair",
    "band_name_of",
    "coregister_pair",
    "nan_nodata",
    "pixel_area_m2",
    "read_image",
    "write_change_cog",
    "write_geojson",
]

logger = logging.getLogger(__name__)

_RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".png", ".bmp", ".img", ".vrt")
_BAND_RE = re.compile(r"(?:^|[_\-.])(B\d{1,2}A?)$", re.IGNORECASE)


@dataclass(frozen=True)
class Raster:
    """A (band, y, x) array with its band names and grid (crs may be None for plain pictures)."""

    data: NDArray[Any]
    bands: tuple[str, ...]
    crs: CRS | None
    transform: Affine
    nodata: float | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.data.shape[1]), int(self.data.shape[2])

    def same_grid(self, other: Raster) -> bool:
        return (
            self.shape == other.shape
            and self.crs == other.crs
            and self.transform.almost_equals(other.transform)
        )


def band_name_of(path: Path) -> str:
    """The band name of a single-band file: ``..._B02.tif`` gives ``B02``, else the file stem."""
    m = _BAND_RE.search(path.stem)
    return m.group(1).upper() if m else path.stem


def _names(ds: Any) -> tuple[str, ...]:
    desc = [d for d in ds.descriptions]
    if all(desc) and len(set(desc)) == len(desc):
        return tuple(str(d) for d in desc)
    if ds.count == 3 and ds.dtypes[0] == "uint8":
        return ("red", "green", "blue")
    return tuple(f"b{i + 1}" for i in range(ds.count))


GDAL_CACHE_BYTES = 64 * 2**20
"""GDAL's block cache while an image is read whole or a change map written: each block passes
once, so a larger cache (GDAL's default is 5 % of the RAM) only adds to the peak memory (1 GB
more for a 4-band Sentinel-2 tile on a 24 GB machine)."""


def read_image(path: str | Path, *, bands: tuple[str, ...] | None = None) -> Raster:
    """Read a multi-band raster file or a folder of single-band files (``bands`` picks some)."""
    p = Path(path)
    if p.is_dir():
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES):
            return _read_folder(p, bands)
    if p.is_file():
        try:
            with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES), rasterio.open(p) as ds:
                data = ds.read()
                raster = Raster(data, _names(ds), ds.crs, ds.transform, ds.nodata)
        except rasterio.errors.RasterioIOError as exc:
            raise ImageryError(f"{p}: not a readable raster ({gdal_text(exc)})") from exc
        return _pick(raster, bands, p)
    raise InputError(
        f"{path}: no such file or folder. Give a multi-band GeoTIFF or a folder of per-band files "
        "(`sitewatch change detect` also takes the ids of archived chips)"
    )


def _pick(raster: Raster, bands: tuple[str, ...] | None, where: Path) -> Raster:
    if bands is None:
        return raster
    low = [b.lower() for b in raster.bands]
    missing = [b for b in bands if b.lower() not in low]
    if missing:
        raise InputError(
            f"{where}: no band(s) {', '.join(missing)}; it has {', '.join(raster.bands)}"
        )
    idx = [low.index(b.lower()) for b in bands]
    if idx == list(range(len(raster.bands))):  # all of them, in order: no copy of the pixels
        return raster
    return replace(raster, data=raster.data[idx], bands=tuple(raster.bands[i] for i in idx))


def _read_folder(folder: Path, bands: tuple[str, ...] | None) -> Raster:
    files = sorted(f for f in folder.iterdir() if f.suffix.lower() in _RASTER_SUFFIXES)
    by_band = {band_name_of(f): f for f in files}
    if not by_band:
        raise InputError(
            f"{folder}: no raster files ({', '.join(_RASTER_SUFFIXES)}) in this folder"
        )
    names = tuple(sorted(by_band)) if bands is None else bands
    missing = [b for b in names if b not in by_band]
    if missing:
        raise InputError(
            f"{folder}: no file for band(s) {', '.join(missing)}; found {', '.join(sorted(by_band))}"
        )
    # the reference grid: the finest band (the first of them in name order)
    sizes = {}
    for b in names:
        with rasterio.open(by_band[b]) as ds:
            sizes[b] = (
                ds.width * ds.height, ds.crs, ds.transform, ds.shape, ds.nodata, ds.dtypes[0],
            )  # fmt: skip
    ref = max(names, key=lambda b: (sizes[b][0], -names.index(b)))
    _, crs, transform, shape, nodata, _ = sizes[ref]
    dtypes = {sizes[b][5] for b in names}
    same_grid = all(sizes[b][3] == shape and sizes[b][2].almost_equals(transform) for b in names)
    if same_grid and len(dtypes) == 1 and np.issubdtype(next(iter(dtypes)), np.integer):
        # one integer type on one grid (the 10 m bands of a Sentinel-2 tile): read as it is
        # stored, its no-data value kept, at half the memory of float32 for 16-bit bands
        out_int = np.empty((len(names), *shape), dtype=next(iter(dtypes)))
        for i, b in enumerate(names):
            with rasterio.open(by_band[b]) as ds:
                ds.read(1, out=out_int[i])
        return Raster(out_int, names, crs, transform, nodata)
    out = np.empty((len(names), *shape), dtype=np.float32)
    for i, b in enumerate(names):
        with rasterio.open(by_band[b]) as ds:
            if ds.shape == shape and ds.transform.almost_equals(transform):
                out[i] = ds.read(1)
            else:
                reproject(
                    ds.read(1).astype(np.float32), out[i],
                    src_transform=ds.transform, src_crs=ds.crs or crs,
                    dst_transform=transform, dst_crs=crs,
                    resampling=Resampling.bilinear, src_nodata=ds.nodata, dst_nodata=np.nan,
                )  # fmt: skip
    if nodata is not None:
        out[out == nodata] = np.nan
    return Raster(out, names, crs, transform, None)


MIN_COVER = 0.5
"""Share of BEFORE's pixels that AFTER, reprojected, must cover not to be warned of."""


def align_pair(before: Raster, after: Raster) -> tuple[Raster, Raster]:
    """Keep the common bands (BEFORE's order) and put AFTER on BEFORE's grid (logged warning)."""
    from .change import common_bands

    bands = common_bands(before.bands, after.bands)
    dropped = sorted(set(before.bands) ^ set(after.bands))
    if dropped:
        logger.warning(
            "bands %s are not in both images; using %s", ", ".join(dropped), ", ".join(bands)
        )
    before = _pick(before, bands, Path("BEFORE"))
    after = _pick(after, bands, Path("AFTER"))
    if before.same_grid(after):
        return before, after
    if (before.crs is None) != (after.crs is None):
        raise InputError(
            "one image is georeferenced and the other is not: cannot put them on one grid"
        )
    if before.crs is None:
        if before.shape != after.shape:
            raise InputError(
                f"BEFORE is {before.shape} pixels and AFTER {after.shape}, and neither is "
                "georeferenced: crop them to the same extent"
            )
        return before, after
    logger.warning(
        "AFTER is on a different grid (%s, %s px) from BEFORE (%s, %s px): reprojecting AFTER to "
        "BEFORE's grid (bilinear)", after.crs, after.shape, before.crs, before.shape,
    )  # fmt: skip
    out = np.full((len(bands), *before.shape), np.nan, dtype=np.float32)
    src = after.data.astype(np.float32)
    if after.nodata is not None:
        src[src == after.nodata] = np.nan
    for i in range(len(bands)):
        reproject(
            src[i], out[i],
            src_transform=after.transform, src_crs=after.crs,
            dst_transform=before.transform, dst_crs=before.crs,
            resampling=Resampling.bilinear, src_nodata=np.nan, dst_nodata=np.nan,
        )  # fmt: skip
    covered = np.isfinite(out).all(axis=0)
    share = float(covered.mean())
    if share == 0:
        raise InputError(
            "AFTER does not overlap BEFORE at all once reprojected: check the two images"
        )
    if share < MIN_COVER:
        logger.warning(
            "AFTER covers only %.2g%% of BEFORE (%s of %s px): change is looked for there only; "
            "crop BEFORE to AFTER's extent for statistics of the overlap alone",
            100 * share, f"{int(covered.sum()):,}", f"{covered.size:,}",
        )  # fmt: skip
    return before, Raster(out, bands, before.crs, before.transform, None)


MISREGISTERED_PX = 0.5
"""A measured shift longer than this (pixels) is warned of when it is not corrected."""


def nan_nodata(data: NDArray[Any], nodata: float | None) -> NDArray[np.float32]:
    """``data`` as float32 with NaN where it equals ``nodata``."""
    out = np.asarray(data, dtype=np.float32)
    if nodata is not None:
        out = np.where(data == nodata, np.float32(np.nan), out)
    return out


def coregister_pair(
    before: Raster, after: Raster, *, correct: bool = True
) -> tuple[Raster, dict[str, Any]]:
    """Measure how far AFTER (on BEFORE's grid) is off BEFORE and, with ``correct``, move it by
    that sub-pixel shift when the shift is plausible
    (:func:`~sitewatch.imagery.coregister.register_stack`: phase correlation of the NIR band,
    at most 3 px, and the images more alike once moved; bilinear, pixels shifted in from
    outside become NaN).

    Without ``correct`` only the measured band's central window is copied and moved. Returns
    AFTER (moved or not) and the JSON-ready report of ``register_stack`` plus ``corrected``. An
    uncorrected shift over :data:`MISREGISTERED_PX` is warned of, as edges then show as change;
    a shift that cannot be measured, or is rejected, is warned of and left alone.
    """
    from ..errors import AnalysisError
    from ..imagery.coregister import register_stack

    try:
        moved, report = register_stack(
            before.data, after.data, before.bands, nodata=(before.nodata, after.nodata),
            apply=correct,
        )  # fmt: skip
    except AnalysisError as exc:
        logger.warning("co-registration not measured: %s", exc)
        return after, {"measured": False, "reason": str(exc), "corrected": False}
    dy, dx, size = report["dy_px"], report["dx_px"], report["magnitude_px"]
    report["corrected"] = False
    if report["rejected"]:
        logger.log(
            logging.WARNING if size > MISREGISTERED_PX else logging.INFO,
            "AFTER measures %.2f px down and %.2f right of BEFORE, left as it is: %s",
            dy, dx, report["reason"],
        )  # fmt: skip
    elif moved is not None:
        after = replace(after, data=moved, nodata=None)
        report["corrected"] = True
        logger.info("moved AFTER by %.2f px (%.2f down, %.2f right) onto BEFORE", size, dy, dx)
    elif size > MISREGISTERED_PX:
        logger.warning(
            "AFTER is misregistered by %.2f px (%.2f down, %.2f right) against BEFORE: edges will "
            "show as change; co-register the pair (--coregister) to correct it",
            size, dy, dx,
        )  # fmt: skip
    return after, report


ROW_SAMPLES = 129
"""Rows at which a per-row pixel area is computed (interpolated between them)."""


def pixel_area_m2(raster: Raster) -> float | NDArray[np.float64] | None:
    """Ground area of one pixel in m² (see :func:`sitewatch.geo.pixel_area_m2`): one value for a
    grid on true scale (UTM), one per row where it changes with latitude (a geographic grid, Web
    Mercator or another grid off true scale, taken at the centre column); None without a CRS."""
    if raster.crs is None:
        return None
    from ..geo import map_scale
    from ..geo import pixel_area_m2 as ground_area

    h, w = raster.shape
    centre = raster.transform * (w / 2, h / 2)
    if raster.crs.is_projected and not map_scale(raster.crs, *centre).off_true_scale:
        return ground_area(raster.crs, raster.transform, w / 2, h / 2)
    rows = np.unique(np.linspace(0, h - 1, min(h, ROW_SAMPLES)).round())
    areas = [ground_area(raster.crs, raster.transform, w / 2, float(r)) for r in rows]
    out: NDArray[np.float64] = np.interp(np.arange(h, dtype=np.float64), rows, areas)
    return out


def write_change_cog(path: str | Path, mask: NDArray[np.bool_], magnitude: NDArray[np.float32], valid: NDArray[np.bool_], crs: CRS | None, transform: Affine) -> None:  # fmt: skip
    """Write a 2-band float32 COG: band 1 the change mask (1/0), band 2 the magnitude; NaN = nodata.

    GeoTIFF bands share one data type, so the mask is stored as float32 0/1 beside the magnitude.
    The bands go to a tiled scratch GeoTIFF :data:`WRITE_ROWS` rows at a time, which GDAL's COG
    driver then copies with overviews: written directly, the COG driver keeps the whole dataset in
    memory until it is closed, and the two bands stacked in float32 cost as much again (1.9 GB in
    all for a Sentinel-2 tile). The file is written to a temporary name and renamed, so readers
    never see a partial file.
    """
    from rasterio.shutil import copy as gdal_copy
    from rasterio.windows import Window

    out = Path(path)
    h, w = mask.shape
    profile: dict[str, Any] = {
        "width": w, "height": h, "count": 2, "dtype": "float32", "nodata": np.nan,
    }  # fmt: skip
    if crs is not None:
        profile.update(crs=crs, transform=transform)
    with atomic_path(out) as tmp, rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES):
        scratch = tmp.with_name(tmp.name + "-scratch.tif")  # removed with tmp on failure
        try:
            with rasterio.open(
                scratch, "w", driver="GTiff", tiled=True, blockxsize=512, blockysize=512,
                **profile,
            ) as dst:  # fmt: skip
                for r0 in range(0, h, WRITE_ROWS):
                    rows = slice(r0, min(r0 + WRITE_ROWS, h))
                    block = np.stack([mask[rows], magnitude[rows]]).astype(np.float32)
                    block[:, ~valid[rows]] = np.nan
                    dst.write(block, window=Window(0, r0, w, block.shape[1]))
                dst.set_band_description(1, "change_mask")
                dst.set_band_description(2, "magnitude")
            gdal_copy(
                scratch, tmp, driver="COG", compress="deflate", predictor=3, blocksize=512,
                overview_resampling="nearest",
            )  # fmt: skip
        finally:
            scratch.unlink(missing_ok=True)


WRITE_ROWS = 1024
"""Rows of the change COG's bands prepared and written at a time."""


def write_geojson(
    path: str | Path, features: list[dict[str, Any]], properties: dict[str, Any]
) -> None:
    """Write a FeatureCollection atomically."""
    out = Path(path)
    doc = {"type": "FeatureCollection", "properties": properties, "features": features}
    write_text(out, json.dumps(doc, default=str))
