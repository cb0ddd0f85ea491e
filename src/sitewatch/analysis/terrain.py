"""Terrain: DEMs, their derivatives (slope, aspect, hillshade, relief, TRI, TPI), viewsheds, defilade.

DEMs are read from GeoTIFF (including Copernicus DEM tiles) and SRTM ``.hgt`` files (GDAL reads
both) into a :class:`Dem`: elevations in metres as float64 with NaN for no data (SRTM voids).
Derivatives use Horn's 3x3 gradient; on geographic grids the pixel sizes are geodesic, per row,
so slope is right at any latitude without reprojection. Line-of-sight work (viewshed, defilade)
runs on a metric grid: :meth:`Dem.to_metric` reprojects a geographic DEM to its local UTM zone.

Defilade from a threat direction: a point is masked when the terrain between it and the threat
along the threat azimuth rises above the line at the threat's elevation angle, i.e. when its
horizon angle in that azimuth exceeds the threat elevation. From a threat point: a point is masked
when it is not in the threat's viewshed.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from numpy.typing import NDArray
from pyproj import CRS
from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry

from ..errors import AnalysisError, ImageryError, InputError, gdal_text
from ..geo import GEOD, MapScale, check_lonlat, local_utm_crs, map_scale, meridian_scales, to_crs
from ._viewshed import REFRACTION_K, horizon_tangents, radial_viewshed

__all__ = [
    "PRODUCTS",
    "DefiladeResult",
    "Dem",
    "aspect",
    "defilade_from_direction",
    "defilade_from_point",
    "dem_on_grid",
    "derive",
    "geodesic_bearing",
    "hillshade",
    "horizon_angle",
    "horizon_uncertainty",
    "portal_mouth",
    "read_dem",
    "relief",
    "slope",
    "tpi",
    "tri",
    "viewshed",
    "visible_area_m2",
]

logger = logging.getLogger(__name__)

PRODUCTS = ("slope", "aspect", "hillshade", "relief", "tri", "tpi")


@dataclass(frozen=True)
class Dem:
    """Elevations (metres, NaN = no data) on a grid given by ``transform`` and ``crs``."""

    data: NDArray[np.float64]
    transform: Affine
    crs: CRS
    source: str = ""

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.data.shape[0]), int(self.data.shape[1]))

    @property
    def is_geographic(self) -> bool:
        return not self.crs.is_projected

    @property
    def distorted(self) -> bool:
        """A projected grid whose units at the centre are not ground metres within
        :data:`~sitewatch.geo.SCALE_TOLERANCE` (Web Mercator, a grid in feet)."""
        return not self.is_geographic and self._scale.distorted

    @property
    def _scale(self) -> MapScale:
        rows, cols = self.shape
        return map_scale(self.crs, *(self.transform @ (cols / 2.0, rows / 2.0)))

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        rows, cols = self.shape
        xs, ys = zip(*[self.transform @ (c, r) for c, r in ((0, 0), (cols, rows))], strict=True)
        return (min(xs), min(ys), max(xs), max(ys))

    def cell_sizes(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """East-west and north-south pixel sizes in metres, one per row (geodesic if geographic)."""
        rows, cols = self.shape
        if not self.is_geographic:
            dx, dy = np.full(rows, abs(self.transform.a)), np.full(rows, abs(self.transform.e))
            if not self.distorted:
                return dx, dy
            xc = self.transform.c + 0.5 * cols * self.transform.a
            yc = self.transform.f + (np.arange(rows) + 0.5) * self.transform.e
            k, h = meridian_scales(self.crs, xc, yc)
            return dx / k, dy / h
        x0 = self.transform.c + 0.5 * self.transform.a
        lats = self.transform.f + (np.arange(rows) + 0.5) * self.transform.e
        lats = np.clip(lats, -89.999, 89.999)
        x1 = np.full(rows, x0 + self.transform.a)
        _, _, dx = GEOD.inv(np.full(rows, x0), lats, x1, lats)
        half = 0.5 * abs(self.transform.e)
        _, _, dy = GEOD.inv(
            np.full(rows, x0),
            np.clip(lats - half, -90, 90),
            np.full(rows, x0),
            np.clip(lats + half, -90, 90),
        )
        return (np.abs(np.asarray(dx, dtype=np.float64)), np.abs(np.asarray(dy, dtype=np.float64)))

    def rowcol(self, x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float64]:
        """Fractional (row, col) of map coordinates, pixel centres at +0.5."""
        col, row = ~self.transform @ (np.asarray(x), np.asarray(y))
        return np.column_stack([np.atleast_1d(row), np.atleast_1d(col)])

    def to_metric(self, crs: CRS | None = None, resolution: float | None = None) -> Dem:
        """This DEM on a metric grid: unchanged if already projected, else reprojected (bilinear)
        to ``crs`` (default: the local UTM zone of its centre) at ``resolution`` metres (default:
        the smaller geodesic pixel size). A projected DEM whose scale is off true (Web Mercator)
        is reprojected too, with a warning: distances on its grid are not metres on the ground."""
        if not self.is_geographic and crs is None:
            if not self.distorted:
                return self
            logger.warning(
                "DEM %s is in %s, whose %s: reprojecting it to the local UTM zone for "
                "line-of-sight work",
                self.source or "(array)",
                self.crs.to_string(),
                "units are not metres"
                if self._scale.unit_m != 1.0
                else "lengths are off true scale here",
            )
        from rasterio.warp import calculate_default_transform

        w, s, e, n = self.bounds
        centre = Point((w + e) / 2.0, (s + n) / 2.0)
        if not self.is_geographic:
            centre = to_crs(centre, self.crs, "EPSG:4326")
        dst_crs = crs or local_utm_crs(centre.x, centre.y)
        if resolution is None:
            dx, dy = self.cell_sizes()
            resolution = float(min(np.median(dx), np.median(dy)))
        rows, cols = self.shape
        dst_t, dst_w, dst_h = calculate_default_transform(
            self.crs, dst_crs, cols, rows, *self.bounds, resolution=resolution
        )
        out = _resample(self, CRS.from_user_input(dst_crs), dst_t, (dst_h, dst_w))
        return Dem(out, dst_t, CRS.from_user_input(dst_crs), self.source)


_FEET = {
    "ft": 0.3048, "foot": 0.3048, "feet": 0.3048, "international foot": 0.3048,
    "us survey foot": 1200 / 3937, "ftus": 1200 / 3937, "us-ft": 1200 / 3937,
    "foot_us": 1200 / 3937,
}  # fmt: skip
"""Vertical units a DEM band may declare (GDAL unit type), as metres per unit."""

_METRES = {"m", "metre", "metres", "meter", "meters"}


def read_dem(
    path: str | Path, *, band: int = 1, around: tuple[float, float, float] | None = None
) -> Dem:
    """Read a DEM: GeoTIFF, Copernicus DEM GeoTIFF, SRTM ``.hgt`` or anything GDAL opens.

    ``around`` (lon, lat, radius in metres) reads only the part within that distance of the
    point (and a few cells more), so that a national DEM costs what one site needs.
    """
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    p = Path(path)
    if not p.exists():
        raise ImageryError(f"DEM {p} does not exist")
    try:
        # a file without georeferencing is refused below, in words: GDAL's warning would only
        # repeat it
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            ds = rasterio.open(p)
        with ds:
            if ds.crs is None:
                raise ImageryError(
                    f"DEM {p} has no CRS; give a georeferenced GeoTIFF or an SRTM .hgt named like N44W072.hgt"
                )
            if not 1 <= band <= ds.count:
                raise ImageryError(f"DEM {p} has bands 1..{ds.count}, not {band}")
            window = None if around is None else _window_around(ds, *around)
            data = ds.read(band, masked=True, window=window).astype(np.float64)
            arr = np.ma.filled(data, np.nan)
            transform = ds.transform if window is None else ds.window_transform(window)
            crs = CRS.from_user_input(ds.crs)
            scale, offset = ds.scales[band - 1] or 1.0, ds.offsets[band - 1] or 0.0
            unit = (ds.units[band - 1] or "").strip()
    except RasterioIOError as exc:
        raise ImageryError(f"cannot read DEM {p}: {gdal_text(exc)}") from exc
    arr[arr <= -32767] = np.nan  # SRTM voids when no nodata is declared
    if (scale, offset) != (1.0, 0.0):  # stored as scaled integers (GDAL scale/offset)
        arr = arr * scale + offset
    feet = _FEET.get(unit.lower())
    if feet is not None:
        logger.warning("DEM %s gives elevations in %s: converting them to metres", p.name, unit)
        arr = arr * feet
    elif unit and unit.lower() not in _METRES:
        logger.warning(
            "DEM %s declares the unit %r for its elevations: taken as metres; convert it "
            "(gdal_calc.py) if they are not",
            p.name,
            unit,
        )
    if not np.isfinite(arr).any():
        raise ImageryError(f"DEM {p} has no valid elevation")
    return Dem(arr, transform, crs, str(p))


def _window_around(ds: Any, lon: float, lat: float, radius: float) -> Any:
    """The window of ``ds`` within ``radius`` metres of ``lon``/``lat`` (three cells more each
    way), cut to the raster; a raster that does not reach that far is an error."""
    from rasterio.errors import WindowError
    from rasterio.warp import transform_bounds
    from rasterio.windows import Window, from_bounds

    dlat = radius / 111_000.0
    dlon = radius / (111_000.0 * max(math.cos(math.radians(lat)), 0.01))
    box = (lon - dlon, max(-90.0, lat - dlat), lon + dlon, min(90.0, lat + dlat))
    west, south, east, north = transform_bounds("EPSG:4326", ds.crs, *box, densify_pts=21)
    win = from_bounds(west, south, east, north, ds.transform)
    full = Window(0, 0, ds.width, ds.height)
    grown = Window(win.col_off - 3, win.row_off - 3, win.width + 6, win.height + 6)
    try:
        cut = grown.round_offsets().round_lengths().intersection(full)
    except WindowError:
        cut = None
    if cut is None or cut.width <= 0 or cut.height <= 0:
        raise ImageryError(
            f"DEM {ds.name} does not reach {lon:.5f},{lat:.5f}; give a DEM that covers the site"
        )
    return cut


def _resample(dem: Dem, crs: CRS, transform: Affine, shape: tuple[int, int]) -> NDArray[np.float64]:
    """Bilinear resampling of ``dem`` onto a grid (NaN where it has no data)."""
    from rasterio.warp import Resampling, reproject

    out = np.full(shape, np.nan)
    reproject(
        dem.data,
        out,
        src_transform=dem.transform,
        src_crs=dem.crs,
        dst_transform=transform,
        dst_crs=crs,
        resampling=Resampling.bilinear,
        src_nodata=np.nan,
        dst_nodata=np.nan,
    )
    return out


def dem_on_grid(
    dem: Dem, crs: CRS | str, transform: Affine, shape: tuple[int, int]
) -> NDArray[np.float64]:
    """Resample ``dem`` (bilinear) onto another grid, e.g. an image's; warns when the CRSs differ."""

    dst_crs = CRS.from_user_input(crs)
    if dst_crs != dem.crs:
        logger.warning(
            "the DEM (%s) and the image (%s) are in different CRSs: reprojecting the DEM",
            dem.crs.to_string(),
            dst_crs.to_string(),
        )
    out = _resample(dem, dst_crs, transform, shape)
    if not np.isfinite(out).any():
        raise AnalysisError(
            f"the DEM {dem.source or ''} does not cover the image; give a DEM of the same area"
        )
    return out


# --- derivatives -------------------------------------------------------------------------------


def _window3(z: NDArray[np.float64]) -> list[NDArray[np.float64]]:
    """The nine neighbours a..i of every cell (edges repeated)."""
    p = np.pad(z, 1, mode="edge")
    r, c = z.shape
    return [p[i : i + r, j : j + c] for i in range(3) for j in range(3)]


def _gradient(dem: Dem) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Horn's dz/dx (east) and dz/dy (north) in metres per metre."""
    a, b, c, d, _, f, g, h, i = _window3(dem.data)
    dx, dy = dem.cell_sizes()
    dzdx = ((c + 2 * f + i) - (a + 2 * d + g)) / (8.0 * dx[:, None])
    dzdy = ((a + 2 * b + c) - (g + 2 * h + i)) / (8.0 * dy[:, None])
    if dem.transform.a < 0:
        dzdx = -dzdx
    if dem.transform.e > 0:  # rows run south to north
        dzdy = -dzdy
    return dzdx, dzdy


def slope(dem: Dem, *, units: str = "degrees") -> NDArray[np.float64]:
    """Slope (Horn), in ``degrees`` or ``percent``."""
    gx, gy = _gradient(dem)
    g = np.hypot(gx, gy)
    if units == "percent":
        return 100.0 * g
    if units != "degrees":
        raise InputError(f"slope units must be degrees or percent, got {units!r}")
    return np.degrees(np.arctan(g))


def aspect(dem: Dem) -> NDArray[np.float64]:
    """Aspect: the downslope direction, degrees clockwise from north; NaN on flat cells."""
    gx, gy = _gradient(dem)
    out = np.mod(np.degrees(np.arctan2(-gx, -gy)), 360.0)
    out[(gx == 0) & (gy == 0)] = np.nan
    return out


def hillshade(
    dem: Dem, *, azimuth: float = 315.0, altitude: float = 45.0, z_factor: float = 1.0
) -> NDArray[np.float64]:
    """Hillshade 0..255 lit from ``azimuth``/``altitude`` (the formula of ``gdaldem hillshade``)."""
    gx, gy = _gradient(dem)
    gx, gy = gx * z_factor, gy * z_factor
    az, alt = math.radians(azimuth), math.radians(altitude)
    shade = (math.sin(alt) - (gx * math.sin(az) + gy * math.cos(az)) * math.cos(alt)) / np.sqrt(
        1.0 + gx * gx + gy * gy
    )
    out = np.where(shade <= 0.0, 1.0, 1.0 + 254.0 * shade)
    out[~np.isfinite(shade)] = np.nan
    return out


def relief(dem: Dem, *, window: int = 3) -> NDArray[np.float64]:
    """Local relief: maximum minus minimum elevation in a ``window`` x ``window`` neighbourhood."""
    from scipy import ndimage

    if window < 3 or window % 2 == 0:
        raise InputError(f"the relief window must be an odd number >= 3 of pixels, got {window}")
    z = dem.data
    hi = ndimage.maximum_filter(np.where(np.isfinite(z), z, -np.inf), size=window, mode="nearest")
    lo = ndimage.minimum_filter(np.where(np.isfinite(z), z, np.inf), size=window, mode="nearest")
    out = np.asarray(hi - lo, dtype=np.float64)
    out[~np.isfinite(z) | ~np.isfinite(out)] = np.nan
    return out


def tri(dem: Dem) -> NDArray[np.float64]:
    """Terrain Ruggedness Index (Riley et al. 1999): root of the summed squared differences to the 8 neighbours."""
    n = _window3(dem.data)
    centre = n[4]
    total = sum(((v - centre) ** 2 for k, v in enumerate(n) if k != 4), np.zeros_like(centre))
    return np.sqrt(total)


def tpi(dem: Dem) -> NDArray[np.float64]:
    """Topographic Position Index: elevation minus the mean of the 8 neighbours."""
    n = _window3(dem.data)
    centre = n[4]
    mean = sum((v for k, v in enumerate(n) if k != 4), np.zeros_like(centre)) / 8.0
    return centre - mean


def derive(
    dem: Dem, products: Sequence[str] = PRODUCTS, **kwargs: Any
) -> dict[str, NDArray[np.float64]]:
    """Several derivatives at once; ``kwargs`` go to the functions that take them."""
    unknown = [p for p in products if p not in PRODUCTS]
    if unknown:
        raise InputError(f"unknown terrain product(s) {unknown}; choose from {', '.join(PRODUCTS)}")
    out: dict[str, NDArray[np.float64]] = {}
    for p in products:
        if p == "hillshade":
            out[p] = hillshade(
                dem, **{k: v for k, v in kwargs.items() if k in ("azimuth", "altitude", "z_factor")}
            )
        elif p == "relief":
            out[p] = relief(dem, **{k: v for k, v in kwargs.items() if k == "window"})
        elif p == "slope":
            out[p] = slope(dem)
        elif p == "aspect":
            out[p] = aspect(dem)
        elif p == "tri":
            out[p] = tri(dem)
        else:
            out[p] = tpi(dem)
    return out


# --- line of sight -----------------------------------------------------------------------------


def _project_lonlat(dem: Dem, lon: float, lat: float, what: str) -> tuple[float, float]:
    check_lonlat(lon, lat, what=what)
    pt = to_crs(Point(lon, lat), "EPSG:4326", dem.crs)
    x, y = pt.coords[0]
    w, s, e, n = dem.bounds
    if not (w <= x <= e and s <= y <= n):
        raise InputError(
            f"{what} {lon:.5f},{lat:.5f} is outside the DEM {dem.source} (give LON,LAT inside it)"
        )
    return float(x), float(y)


def viewshed(
    dem: Dem,
    observer: tuple[float, float],
    *,
    observer_height: float = 1.7,
    target_height: float = 0.0,
    max_distance: float | None = None,
    curvature: bool = True,
    refraction_k: float = REFRACTION_K,
) -> tuple[NDArray[np.bool_], Dem]:
    """Cells visible from ``observer`` (lon, lat) standing ``observer_height`` m above the ground.

    Returns the visibility grid and the metric DEM it is on (the input reprojected to UTM when
    geographic).
    """
    metric = dem.to_metric()
    x, y = _project_lonlat(metric, observer[0], observer[1], "observer")
    r, c = metric.rowcol(np.array([x]), np.array([y]))[0]
    cell = (abs(metric.transform.a), abs(metric.transform.e))
    try:
        vis = radial_viewshed(
            metric.data,
            (float(r), float(c)),
            cell,
            observer_height=observer_height,
            target_height=target_height,
            max_distance=max_distance,
            curvature=curvature,
            refraction_k=refraction_k,
        )
    except ValueError as exc:
        raise AnalysisError(f"viewshed: {exc}; move the observer") from exc
    return vis, metric


def horizon_angle(
    dem: Dem,
    points: Sequence[tuple[float, float]],
    azimuth: float,
    *,
    height: float = 0.0,
    max_distance: float = 30_000.0,
    curvature: bool = True,
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Horizon elevation angle (degrees) along ``azimuth`` (true) from lon/lat ``points``.

    Also returns, per point, whether the search ran off the DEM before ``max_distance`` (the
    horizon may then be underestimated).
    """
    metric = dem.to_metric()
    xy = np.array([_project_lonlat(metric, lon, lat, "point") for lon, lat in points])
    return _horizon_xy(
        metric, xy, azimuth, height=height, max_distance=max_distance, curvature=curvature
    )


def _ground(metric: Dem, x: float, y: float) -> float:
    """The DEM value of the cell holding map point ``x``/``y`` (NaN outside)."""
    r, c = (int(v) for v in np.floor(metric.rowcol(np.array([x]), np.array([y])))[0])
    if not (0 <= r < metric.shape[0] and 0 <= c < metric.shape[1]):
        return float("nan")
    return float(metric.data[r, c])


def horizon_uncertainty(
    dem: Dem,
    lon: float,
    lat: float,
    azimuth: float,
    *,
    dem_sigma_m: float,
    max_distance: float = 30_000.0,
) -> float:
    """One-sigma error (degrees) of the horizon angle from ``lon``/``lat`` along ``azimuth``.

    The horizon is set by the ground where the elevation angle peaks, ``D`` metres away; two
    independent DEM errors of ``dem_sigma_m`` (there and at the point) move it by
    ``sqrt(2) sigma / D`` radians, times ``cos^2`` of the angle. NaN when the ray leaves the DEM
    at once.
    """
    metric = dem.to_metric()
    x0, y0 = _project_lonlat(metric, lon, lat, "point")
    return _horizon_sigma_xy(metric, x0, y0, azimuth, dem_sigma_m, max_distance)


def _horizon_sigma_xy(
    metric: Dem, x0: float, y0: float, azimuth: float, dem_sigma_m: float, max_distance: float
) -> float:
    a = math.radians(_grid_az(metric, x0, y0, azimuth))
    step = min(abs(metric.transform.a), abs(metric.transform.e))
    t = np.arange(1, int(max_distance / step) + 1) * step
    xs = np.asarray(x0 + t * math.sin(a), dtype=np.float64)
    ys = np.asarray(y0 + t * math.cos(a), dtype=np.float64)
    rc = np.floor(metric.rowcol(xs, ys)).astype(int)
    rows, cols = rc[:, 0], rc[:, 1]
    inside = (cols >= 0) & (rows >= 0) & (cols < metric.shape[1]) & (rows < metric.shape[0])
    z0 = _ground(metric, x0, y0)
    z = metric.data[rows[inside], cols[inside]]
    if z.size == 0 or not np.isfinite(z0):
        return float("nan")
    ang = np.arctan((z - z0) / t[inside])
    k = int(np.nanargmax(ang))
    return math.degrees(math.sqrt(2.0) * dem_sigma_m / float(t[inside][k]) * math.cos(ang[k]) ** 2)


def portal_mouth(
    footprint: BaseGeometry, dem: Dem
) -> tuple[tuple[float, float], tuple[float, float]]:
    """The mouth of a tunnel portal cut: of the two short sides of the lon/lat footprint's
    minimum rotated rectangle, the one lying lower on the DEM (the cut runs into the slope)."""
    metric = dem.to_metric()
    ring = list(footprint.minimum_rotated_rectangle.exterior.coords)[:4]
    edges = [(ring[i], ring[(i + 1) % 4]) for i in range(4)]
    lengths = [GEOD.inv(a[0], a[1], b[0], b[1])[2] for a, b in edges]
    short = sorted(range(4), key=lambda i: lengths[i])[:2]

    def ground(i: int) -> float:
        (ax, ay), (bx, by) = edges[i]
        x, y = _project_lonlat(metric, (ax + bx) / 2, (ay + by) / 2, "portal")
        return _ground(metric, x, y)

    a, b = edges[min(short, key=ground)]
    return (float(a[0]), float(a[1])), (float(b[0]), float(b[1]))


def _grid_az(metric: Dem, x: float, y: float, azimuth: float) -> float:
    from .mensuration import grid_azimuth

    return grid_azimuth(metric.crs, x, y, azimuth)


def _horizon_xy(
    metric: Dem,
    xy: NDArray[np.float64],
    azimuth: float,
    *,
    height: float,
    max_distance: float,
    curvature: bool,
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    if xy.size == 0:
        return np.empty(0), np.empty(0, dtype=bool)
    cx, cy = float(xy[:, 0].mean()), float(xy[:, 1].mean())
    gaz = _grid_az(metric, cx, cy, azimuth)
    rc = metric.rowcol(xy[:, 0], xy[:, 1])
    cell = (abs(metric.transform.a), abs(metric.transform.e))
    tan, off = horizon_tangents(
        metric.data, rc, gaz, cell, max_distance=max_distance, height=height, curvature=curvature
    )
    return np.degrees(np.arctan(tan)), off


@dataclass(frozen=True)
class DefiladeResult:
    """Whether one feature is masked from the threat; ``masked`` is None with a reason if unknown."""

    index: int
    id: str | None
    masked: bool | None
    masked_fraction: float | None
    horizon_deg: float | None = None
    points: int = 0
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    horizon_sigma_deg: float | None = None
    """One-sigma error of ``horizon_deg`` from the DEM error, when ``dem_sigma_m`` was given."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "index": self.index,
            "id": self.id,
            "masked": self.masked,
            "masked_fraction": None
            if self.masked_fraction is None
            else round(self.masked_fraction, 4),
            "horizon_deg": None if self.horizon_deg is None else round(self.horizon_deg, 3),
            "points": self.points,
        }
        if self.reason is not None:
            out["reason"] = self.reason
        if self.horizon_sigma_deg is not None:
            out["horizon_sigma_deg"] = round(self.horizon_sigma_deg, 3)
        out.update(self.details)
        return out


def _feature_points(metric: Dem, geom: BaseGeometry) -> NDArray[np.float64]:
    """Map x/y of the DEM cell centres inside a lon/lat geometry (its representative point if none)."""
    from rasterio.features import geometry_mask

    g = to_crs(geom, "EPSG:4326", metric.crs)
    pts: list[tuple[float, float]] = []
    if g.geom_type in ("Polygon", "MultiPolygon"):
        mask = geometry_mask([g], out_shape=metric.shape, transform=metric.transform, invert=True)
        rows, cols = np.nonzero(mask)
        xs, ys = metric.transform @ (cols + 0.5, rows + 0.5)  # type: ignore[operator]
        pts = list(zip(np.atleast_1d(xs), np.atleast_1d(ys), strict=True))
    elif g.geom_type in ("LineString", "MultiLineString"):
        step = abs(metric.transform.a)
        n = max(2, int(g.length // step) + 1)
        pts = [g.interpolate(i / (n - 1), normalized=True).coords[0] for i in range(n)]
    elif g.geom_type == "MultiPoint":
        pts = [p.coords[0] for p in g.geoms]
    if not pts:
        pts = [g.representative_point().coords[0]]
    return np.asarray(pts, dtype=np.float64)


def _inside(metric: Dem, xy: NDArray[np.float64]) -> bool:
    w, s, e, n = metric.bounds
    return bool(np.all((xy[:, 0] >= w) & (xy[:, 0] <= e) & (xy[:, 1] >= s) & (xy[:, 1] <= n)))


def defilade_from_direction(
    dem: Dem,
    features: Sequence[BaseGeometry],
    *,
    threat_azimuth: float,
    threat_elevation: float,
    ids: Sequence[str | None] | None = None,
    target_height: float = 0.0,
    max_distance: float = 30_000.0,
    curvature: bool = True,
    dem_sigma_m: float | None = None,
) -> list[DefiladeResult]:
    """Which lon/lat features are masked from fire arriving from ``threat_azimuth`` (true, the
    direction the threat lies in) at ``threat_elevation`` degrees or flatter.

    Each point of a feature (the DEM cells inside a polygon) is masked when its horizon angle
    towards the threat exceeds the threat elevation; ``masked`` means every point is, and
    ``horizon_deg`` is the lowest horizon of the feature's points. With ``dem_sigma_m`` (the DEM's
    vertical error), ``horizon_sigma_deg`` is that horizon's error (see
    :func:`horizon_uncertainty`), taken at the point that sets it.
    """
    if not -90.0 < threat_elevation < 90.0:
        raise InputError(f"threat elevation {threat_elevation} must be within -90..90 degrees")
    metric = dem.to_metric()
    ids = list(ids) if ids is not None else [None] * len(features)
    out: list[DefiladeResult] = []
    for i, geom in enumerate(features):
        xy = _feature_points(metric, geom)
        if not _inside(metric, xy):
            out.append(DefiladeResult(i, ids[i], None, None, reason="outside_dem"))
            continue
        horizon, off = _horizon_xy(
            metric,
            xy,
            threat_azimuth,
            height=target_height,
            max_distance=max_distance,
            curvature=curvature,
        )
        masked = horizon > threat_elevation
        details: dict[str, Any] = {}
        if off.any() and not masked[off].all():
            details["warning"] = "the horizon search ran off the DEM for some points"
        frac = float(masked.mean())
        low = int(np.argmin(horizon))
        sigma = (
            _horizon_sigma_xy(
                metric, float(xy[low, 0]), float(xy[low, 1]), threat_azimuth, dem_sigma_m,
                max_distance,
            )
            if dem_sigma_m is not None
            else None
        )  # fmt: skip
        out.append(
            DefiladeResult(
                i,
                ids[i],
                bool(masked.all()),
                frac,
                float(horizon[low]),
                int(xy.shape[0]),
                details=details,
                horizon_sigma_deg=sigma,
            )
        )
    return out


def defilade_from_point(
    dem: Dem,
    features: Sequence[BaseGeometry],
    *,
    threat: tuple[float, float],
    threat_height: float = 2.0,
    ids: Sequence[str | None] | None = None,
    target_height: float = 0.0,
    curvature: bool = True,
) -> list[DefiladeResult]:
    """Which lon/lat features cannot be seen from a threat point ``threat`` (lon, lat)."""
    vis, metric = viewshed(
        dem, threat, observer_height=threat_height, target_height=target_height, curvature=curvature
    )
    ids = list(ids) if ids is not None else [None] * len(features)
    out: list[DefiladeResult] = []
    for i, geom in enumerate(features):
        xy = _feature_points(metric, geom)
        if not _inside(metric, xy):
            out.append(DefiladeResult(i, ids[i], None, None, reason="outside_dem"))
            continue
        rc = np.floor(metric.rowcol(xy[:, 0], xy[:, 1])).astype(np.int64)
        rc[:, 0] = np.clip(rc[:, 0], 0, metric.shape[0] - 1)
        rc[:, 1] = np.clip(rc[:, 1], 0, metric.shape[1] - 1)
        seen = vis[rc[:, 0], rc[:, 1]]
        masked = ~seen
        out.append(
            DefiladeResult(
                i, ids[i], bool(masked.all()), float(masked.mean()), None, int(xy.shape[0])
            )
        )
    return out


def geodesic_bearing(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Forward azimuth (degrees, 0..360) from point 1 to point 2."""
    az, _, _ = GEOD.inv(lon1, lat1, lon2, lat2)
    return float(az) % 360.0


def visible_area_m2(visible: NDArray[np.bool_], metric: Dem) -> float:
    """Area of the visible cells of a viewshed on a metric grid."""
    return float(visible.sum()) * abs(metric.transform.a * metric.transform.e)
