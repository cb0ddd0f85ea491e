"""Scene grid and terrain: a seeded mountain valley, or a real DEM resampled to the grid."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from affine import Affine
from numpy.typing import ArrayLike, NDArray
from pyproj import CRS, Transformer

from ..errors import InputError, gdal_text
from ..geo import local_utm_crs

__all__ = ["SceneGrid", "fractal_noise", "generated_dem", "load_dem", "scene_grid"]

logger = logging.getLogger(__name__)

F64 = NDArray[np.float64]


@dataclass(frozen=True)
class SceneGrid:
    """A north-up grid in a UTM CRS: ``width`` x ``height`` pixels of ``gsd`` metres.

    Terrain arrays carry ``margin`` extra pixels on every side so that hills outside the image
    still cast shadows into it; element ``[r + margin, c + margin]`` is image pixel ``(r, c)``.
    """

    epsg: int
    west: float
    north: float
    gsd: float
    width: int
    height: int
    margin: int
    center_lon: float
    center_lat: float

    @property
    def transform(self) -> Affine:
        """Affine transform of the image."""
        return Affine(self.gsd, 0.0, self.west, 0.0, -self.gsd, self.north)

    @property
    def padded_transform(self) -> Affine:
        """Affine transform of the terrain arrays (with margin)."""
        m = self.margin * self.gsd
        return Affine(self.gsd, 0.0, self.west - m, 0.0, -self.gsd, self.north + m)

    @property
    def padded_shape(self) -> tuple[int, int]:
        """Shape of terrain arrays."""
        return (self.height + 2 * self.margin, self.width + 2 * self.margin)

    @property
    def center_xy(self) -> tuple[float, float]:
        """Centre of the image in CRS metres."""
        return (
            self.west + self.width * self.gsd / 2.0,
            self.north - self.height * self.gsd / 2.0,
        )

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) of the image in CRS metres."""
        return (
            self.west,
            self.north - self.height * self.gsd,
            self.west + self.width * self.gsd,
            self.north,
        )

    @property
    def crs(self) -> CRS:
        """The CRS as a pyproj object."""
        return CRS.from_epsg(self.epsg)

    def to_pixel(self, x: ArrayLike, y: ArrayLike) -> tuple[F64, F64]:
        """Continuous image coordinates (col, row) of CRS points; pixel centres are at +0.5."""
        xa = np.asarray(x, dtype=np.float64)
        ya = np.asarray(y, dtype=np.float64)
        return (xa - self.west) / self.gsd, (self.north - ya) / self.gsd

    def to_xy(self, col: ArrayLike, row: ArrayLike) -> tuple[F64, F64]:
        """CRS coordinates of continuous image coordinates."""
        ca = np.asarray(col, dtype=np.float64)
        ra = np.asarray(row, dtype=np.float64)
        return self.west + ca * self.gsd, self.north - ra * self.gsd

    def lonlat(self, x: float, y: float) -> tuple[float, float]:
        """Longitude/latitude of a CRS point."""
        t = Transformer.from_crs(self.crs, CRS.from_epsg(4326), always_xy=True)
        lon, lat = t.transform(x, y)
        return float(lon), float(lat)


def scene_grid(
    lon: float, lat: float, size_px: tuple[int, int], gsd: float, margin: int
) -> SceneGrid:
    """The UTM grid centred on ``lon``/``lat`` (origin snapped to whole pixels)."""
    crs = local_utm_crs(lon, lat)
    epsg = crs.to_epsg()
    if epsg is None:  # pragma: no cover - UTM/UPS zones always have codes
        raise InputError(f"no EPSG code for the UTM zone at {lon}, {lat}")
    t = Transformer.from_crs(CRS.from_epsg(4326), crs, always_xy=True)
    cx, cy = t.transform(lon, lat)
    w, h = size_px
    west = math.floor((cx - w * gsd / 2.0) / gsd) * gsd
    north = math.floor((cy + h * gsd / 2.0) / gsd) * gsd
    return SceneGrid(epsg, west, north, gsd, w, h, margin, lon, lat)


def fractal_noise(
    rng: np.random.Generator, shape: tuple[int, int], beta: float = 2.0, cutoff: float = 2.0
) -> F64:
    """Periodic fractal noise (power spectrum ~ 1/f**beta), zero mean, unit standard deviation.

    ``cutoff`` (in cycles per image) suppresses the longest wavelengths.
    """
    ny, nx = shape
    fy = np.fft.fftfreq(ny)[:, None] * ny
    fx = np.fft.rfftfreq(nx)[None, :] * nx
    f = np.hypot(fy * (max(nx, ny) / ny), fx * (max(nx, ny) / nx))
    amp = np.where(f > 0, (f**2 + cutoff**2) ** (-beta / 2.0), 0.0)
    phase = rng.uniform(0.0, 2.0 * np.pi, amp.shape)
    spec = amp * np.exp(1j * phase)
    out = np.fft.irfft2(spec, s=shape)
    std = float(out.std())
    norm: F64 = (out - out.mean()) / (std if std > 0 else 1.0)
    return norm


def generated_dem(
    grid: SceneGrid, rng: np.random.Generator, relief_m: float, *, flat: bool = False
) -> tuple[F64, float]:
    """A mountain valley on the padded grid, metres above sea level.

    Returns the DEM and the valley axis direction (degrees clockwise from north). The valley floor
    is about a third of the scene wide, gently tilted, with walls rising ``relief_m`` over a
    third of the scene and fractal ridges and gullies on them.
    """
    rows, cols = grid.padded_shape
    base = 120.0 + 400.0 * rng.random()
    axis = float(rng.uniform(0.0, 180.0))
    if flat:
        return np.full((rows, cols), base), axis
    g = grid.gsd
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float64)
    xm = (xx - cols / 2.0) * g  # east
    ym = (rows / 2.0 - yy) * g  # north
    az = math.radians(axis)
    along = xm * math.sin(az) + ym * math.cos(az)
    across = xm * math.cos(az) - ym * math.sin(az)
    size_m = max(rows, cols) * g
    offset = rng.uniform(-0.08, 0.08) * size_m
    half_floor = 0.2 * size_m
    scale = 0.3 * size_m
    d = np.abs(across - offset) - half_floor
    # softplus foot, exponential approach to the ridge height
    soft = 8.0 * np.logaddexp(0.0, d / 8.0)
    walls = relief_m * (1.0 - np.exp(-soft / scale)) / (1.0 - math.exp(-size_m / (2 * scale)))
    ridges = fractal_noise(rng, (rows, cols), beta=2.2, cutoff=3.0)
    fine = fractal_noise(rng, (rows, cols), beta=1.6, cutoff=8.0)
    steep = np.clip(soft / (0.15 * size_m), 0.0, 1.0)
    dem = (
        base
        + 0.004 * along
        + walls
        + steep * (0.12 * relief_m * ridges + 0.01 * relief_m * fine)
        + (1.0 - steep) * (0.6 * fine + 0.8 * ridges)
    )
    return dem, axis


def load_dem(path: Path, grid: SceneGrid) -> F64:
    """Read a DEM (GeoTIFF, SRTM .hgt, any GDAL raster) resampled to the padded grid (cubic)."""
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.warp import reproject, transform_bounds

    p = Path(path)
    if not p.exists():
        raise InputError(f"DEM file {p} does not exist; give a GeoTIFF or SRTM .hgt path")
    try:
        src = rasterio.open(p)
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(f"cannot read DEM {p}: {gdal_text(exc)}") from exc
    with src:
        if src.crs is None:
            raise InputError(f"DEM {p} has no CRS; georeference it (gdal_edit.py -a_srs)")
        rows, cols = grid.padded_shape
        w, s, e, n = grid.bounds
        m = grid.margin * grid.gsd
        dw, ds, de, dn = transform_bounds(grid.crs.to_wkt(), src.crs, w - m, s - m, e + m, n + m)
        b = src.bounds
        if dw < b.left or de > b.right or ds < b.bottom or dn > b.top:
            raise InputError(
                f"the scene ({dw:.4f}, {ds:.4f}, {de:.4f}, {dn:.4f}) is not inside DEM {p.name} "
                f"bounds ({b.left:.4f}, {b.bottom:.4f}, {b.right:.4f}, {b.top:.4f}); "
                "choose a centre inside the DEM or leave the centre unset"
            )
        out = np.full((rows, cols), np.nan, dtype=np.float64)
        reproject(
            source=rasterio.band(src, 1),
            destination=out,
            src_transform=src.transform,
            src_crs=src.crs,
            src_nodata=src.nodata,
            dst_transform=grid.padded_transform,
            dst_crs=grid.crs.to_wkt(),
            dst_nodata=np.nan,
            resampling=Resampling.cubic,
        )
    bad = ~np.isfinite(out)
    if bad.all():
        raise InputError(f"DEM {p} has no valid heights over the scene")
    if bad.any():
        from scipy import ndimage

        idx = ndimage.distance_transform_edt(bad, return_distances=False, return_indices=True)
        out = out[tuple(idx)]
    return out


def dem_center(path: Path) -> tuple[float, float]:
    """Longitude/latitude of the centre of a DEM file."""
    import rasterio
    from rasterio.warp import transform

    p = Path(path)
    if not p.exists():
        raise InputError(f"DEM file {p} does not exist; give a GeoTIFF or SRTM .hgt path")
    with rasterio.open(p) as src:
        if src.crs is None:
            raise InputError(f"DEM {p} has no CRS; georeference it (gdal_edit.py -a_srs)")
        b = src.bounds
        xs, ys = transform(src.crs, "EPSG:4326", [(b.left + b.right) / 2], [(b.bottom + b.top) / 2])
    return float(xs[0]), float(ys[0])
