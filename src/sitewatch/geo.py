"""Small geodesy helpers on pyproj and shapely: local UTM grids, geodesic distance, area, buffers."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, NamedTuple

import shapely
from pyproj import CRS, Geod, Proj, Transformer
from shapely.geometry import Point, Polygon
from shapely.geometry.base import BaseGeometry

from .errors import CoordinateError, GeometryError
from .types import BBox

__all__ = [
    "GEOD",
    "SCALE_TOLERANCE",
    "MapScale",
    "aeqd_crs",
    "check_lonlat",
    "compass",
    "geodesic_area",
    "geodesic_buffer",
    "geodesic_distance",
    "geodesic_length",
    "local_utm_crs",
    "map_scale",
    "meridian_scales",
    "parse_bbox",
    "pixel_area_m2",
    "radius_bboxes",
    "split_bbox",
    "to_crs",
    "valid_geometry",
]

GEOD = Geod(ellps="WGS84")
"""The WGS84 ellipsoid used for every geodesic computation."""

_EARTH_RADIUS_M = 6_371_008.8


def check_lonlat(lon: float, lat: float, *, what: str = "point") -> None:
    """Raise :class:`CoordinateError` if ``lon``/``lat`` are out of range, with a hint when swapped."""
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise CoordinateError(
            f"{what}: longitude/latitude must be finite numbers, got {lon}, {lat}"
        )
    lat_ok = -90.0 <= lat <= 90.0
    lon_ok = -180.0 <= lon <= 180.0
    if lat_ok and lon_ok:
        return
    hint = ""
    if not lat_ok and -90.0 <= lon <= 90.0 and -180.0 <= lat <= 180.0:
        hint = (
            f" (they look swapped: did you mean lat={lon}, lon={lat}? "
            "check the column mapping or the coordinate order)"
        )
    problem = (
        f"latitude {lat} is outside -90..90"
        if not lat_ok
        else f"longitude {lon} is outside -180..180"
    )
    raise CoordinateError(f"{what}: {problem}{hint}")


def parse_bbox(text: str, what: str = "bbox") -> BBox:
    """``"W,S,E,N"`` in degrees as a :data:`BBox` (W > E crosses the antimeridian), validated
    (the one parser of the CLI's ``--bbox`` options and the web API's ``bbox`` parameter)."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise CoordinateError(
            f"{what} {text!r}: give four comma-separated finite numbers W,S,E,N in degrees, "
            "e.g. 125.0,38.0,127.0,40.0"
        )
    w, s, e, n = values
    check_lonlat(w, s, what=f"{what} {text!r} (W,S corner)")
    check_lonlat(e, n, what=f"{what} {text!r} (E,N corner)")
    if s >= n:
        raise CoordinateError(f"{what} {text!r}: south {s} must be below north {n} (order W,S,E,N)")
    return (w, s, e, n)


def local_utm_crs(lon: float, lat: float) -> CRS:
    """The UTM zone CRS (WGS84) holding ``lon``/``lat``; UPS near the poles."""
    check_lonlat(lon, lat)
    if lat >= 84.0:
        return CRS.from_epsg(32661)
    if lat < -80.0:
        return CRS.from_epsg(32761)
    zone = int((lon + 180.0) // 6.0) % 60 + 1
    # Norway and Svalbard exceptions of the UTM grid
    if 56.0 <= lat < 64.0 and 3.0 <= lon < 12.0:
        zone = 32
    elif 72.0 <= lat < 84.0 and lon >= 0.0:
        if lon < 9.0:
            zone = 31
        elif lon < 21.0:
            zone = 33
        elif lon < 33.0:
            zone = 35
        elif lon < 42.0:
            zone = 37
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def aeqd_crs(lon: float, lat: float) -> CRS:
    """An azimuthal equidistant CRS centred on a point: distances from the centre are geodesic."""
    check_lonlat(lon, lat)
    return CRS.from_proj4(f"+proj=aeqd +lat_0={lat} +lon_0={lon} +datum=WGS84 +units=m +no_defs")


@lru_cache(maxsize=256)
def _transformer(src: str, dst: str) -> Transformer:
    return Transformer.from_crs(CRS.from_user_input(src), CRS.from_user_input(dst), always_xy=True)


def to_crs(geom: BaseGeometry, src: CRS | str, dst: CRS | str) -> BaseGeometry:
    """Reproject a shapely geometry (x/y order, i.e. lon/lat for geographic CRSs)."""
    src_s = src.to_wkt() if isinstance(src, CRS) else src
    dst_s = dst.to_wkt() if isinstance(dst, CRS) else dst
    t = _transformer(src_s, dst_s)
    return shapely.transform(geom, lambda xy: _apply(t, xy))


SCALE_TOLERANCE = 0.01
"""How far a projected CRS's scale may stray from true before distances and areas measured on its
grid are corrected: UTM and national grids stay within 0.1% over their zones, less than anything
here resolves, so they are used as they are (and results on them are exactly reproducible); Web
Mercator (EPSG:3857, the CRS of XYZ basemap exports) stretches lengths 1.29x at 39 N, and a grid
in US survey feet has 3.28 units to the metre."""


class MapScale(NamedTuple):
    """Scale factors of a CRS at a point: grid units per ground metre along the parallel and the
    meridian, and square units per square metre (see :func:`map_scale`). They hold both the
    projection's distortion and the unit (3.2808 for US survey feet on a true-scale grid);
    ``unit_m`` is the metres in one grid unit."""

    parallel: float
    meridional: float
    areal: float
    unit_m: float = 1.0

    @property
    def distorted(self) -> bool:
        """True when grid lengths are not ground metres within :data:`SCALE_TOLERANCE` (an
        off-scale projection, or a unit other than the metre)."""
        return max(abs(self.parallel - 1.0), abs(self.meridional - 1.0)) > SCALE_TOLERANCE

    @property
    def off_true_scale(self) -> bool:
        """True when the projection itself distorts lengths beyond the tolerance, whatever the unit."""
        k, h = self.parallel * self.unit_m, self.meridional * self.unit_m
        return max(abs(k - 1.0), abs(h - 1.0)) > SCALE_TOLERANCE

    @property
    def area_factor(self) -> float:
        """What to divide a grid area by for the ground area in m2: 1 within the tolerance."""
        return self.areal if abs(self.areal - 1.0) > SCALE_TOLERANCE else 1.0


_TRUE_SCALE = MapScale(1.0, 1.0, 1.0)


@lru_cache(maxsize=64)
def _proj(wkt: str) -> Proj:
    return Proj(CRS.from_wkt(wkt))


def _factors(crs: CRS | str, xs: Any, ys: Any) -> Any:
    """(parallel, meridional, areal) grid units per ground metre (and square units per square
    metre) of projected ``crs`` at map points, a (3, n) array; where the projection has no
    answer (outside its domain), only the unit."""
    import numpy as np

    c = CRS.from_user_input(crs)
    unit = _unit_m(c)
    wkt = c.to_wkt()
    lon, lat = _transformer(wkt, "EPSG:4326").transform(
        np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    )
    f = _proj(wkt).get_factors(lon, lat)
    out = np.array([f.parallel_scale, f.meridional_scale, f.areal_scale], dtype=np.float64)
    out = out.reshape(3, -1)
    bad = ~(np.isfinite(out) & (out > 0)).all(axis=0)
    out[:, bad] = 1.0
    out /= np.array([unit, unit, unit * unit])[:, None]
    return out


def map_scale(crs: CRS | str, x: float, y: float) -> MapScale:
    """Grid units per ground metre of ``crs`` at map point ``(x, y)`` (see :class:`MapScale`;
    true scale for a geographic CRS, whose cell sizes are computed geodesically wherever they are
    used)."""
    c = CRS.from_user_input(crs)
    if not c.is_projected:
        return _TRUE_SCALE
    k, h, a = _factors(c, [x], [y])[:, 0]
    return MapScale(float(k), float(h), float(a), _unit_m(c))


def _unit_m(c: CRS) -> float:
    return float(c.axis_info[0].unit_conversion_factor or 1.0) if c.axis_info else 1.0


def meridian_scales(crs: CRS | str, x: float, ys: Sequence[float] | Any) -> tuple[Any, Any]:
    """Grid units per ground metre of projected ``crs`` along the parallel and the meridian at
    ``(x, y)`` for each ``y`` (one per row of a grid), as two NumPy arrays."""
    import numpy as np

    y = np.asarray(ys, dtype=np.float64)
    f = _factors(crs, np.full_like(y, x), y)
    return f[0], f[1]


def pixel_area_m2(crs: CRS | str | Any | None, transform: Any, col: float, row: float) -> float:
    """Ground area (m2) of the grid cell whose top-left corner is pixel ``(col, row)``: geodesic
    on a geographic CRS, the grid area over :func:`map_scale`'s areal factor on a projected one
    (UTM as it is; Web Mercator and feet corrected), the grid area as it is without a CRS."""
    t = transform
    grid = abs(t.a * t.e - t.b * t.d)
    if crs is None:
        return float(grid)
    c = CRS.from_user_input(crs)
    if c.is_projected:
        return float(grid / map_scale(c, *(t * (col + 0.5, row + 0.5))).area_factor)
    x0, y0 = t * (col, row)
    x1, y1 = t * (col + 1, row + 1)
    return geodesic_area(shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))


def _apply(t: Transformer, xy: object) -> object:
    import numpy as np

    arr = np.asarray(xy)
    x, y = t.transform(arr[:, 0], arr[:, 1])
    return np.column_stack([x, y])


def geodesic_distance(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Geodesic distance in metres on WGS84."""
    check_lonlat(lon1, lat1)
    check_lonlat(lon2, lat2)
    _, _, dist = GEOD.inv(lon1, lat1, lon2, lat2)
    return float(dist)


def geodesic_length(geom: BaseGeometry) -> float:
    """Geodesic length in metres of a lon/lat line or polygon boundary."""
    return float(GEOD.geometry_length(geom))


def geodesic_area(geom: BaseGeometry) -> float:
    """Geodesic area in m² of a lon/lat polygon (absolute value, any ring orientation)."""
    area, _ = GEOD.geometry_area_perimeter(geom)
    return abs(float(area))


def geodesic_buffer(lon: float, lat: float, radius_m: float, *, n: int = 128) -> Polygon:
    """A lon/lat polygon approximating the geodesic circle of ``radius_m`` around a point.

    Longitudes are left continuous across the antimeridian (they may exceed ±180) so that the
    polygon stays valid; split it with :func:`split_bbox`-style logic before using it in a
    ±180 frame.
    """
    check_lonlat(lon, lat)
    if radius_m <= 0:
        raise GeometryError(f"radius must be positive, got {radius_m} m")
    az = [360.0 * i / n for i in range(n)]
    lons, lats, _ = GEOD.fwd([lon] * n, [lat] * n, az, [radius_m] * n)
    out = []
    prev = lon
    for x, y in zip(lons, lats, strict=True):
        # unwrap longitudes relative to the previous vertex
        while x - prev > 180.0:
            x -= 360.0
        while x - prev < -180.0:
            x += 360.0
        out.append((x, y))
        prev = x
    return Polygon(out)


def split_bbox(bbox: BBox) -> list[BBox]:
    """Split a lon/lat bbox that crosses the antimeridian (west > east) into two."""
    w, s, e, n = bbox
    if s > n:
        raise CoordinateError(f"bbox south {s} is north of north {n}; give W,S,E,N")
    if w <= e:
        return [bbox]
    return [(w, s, 180.0, n), (-180.0, s, e, n)]


def radius_bboxes(lon: float, lat: float, radius_m: float) -> list[BBox]:
    """Lon/lat boxes (split at the antimeridian) that contain the geodesic circle around a point."""
    check_lonlat(lon, lat)
    if radius_m <= 0:
        raise GeometryError(f"radius must be positive, got {radius_m} m")
    margin = 1.01
    ang = radius_m * margin / _EARTH_RADIUS_M  # angular radius (spherical, with margin)
    dlat = math.degrees(ang)
    south, north = lat - dlat, lat + dlat
    if north >= 90.0 or south <= -90.0 or ang >= math.pi / 2:
        return [(-180.0, max(south, -90.0), 180.0, min(north, 90.0))]
    cos_lat = math.cos(math.radians(lat))
    ratio = math.sin(ang) / cos_lat if cos_lat > 0 else 2.0
    if ratio >= 1.0:
        return [(-180.0, south, 180.0, north)]
    dlon = math.degrees(math.asin(ratio))
    west, east = lon - dlon, lon + dlon
    if west < -180.0:
        return [(west + 360.0, south, 180.0, north), (-180.0, south, east, north)]
    if east > 180.0:
        return [(west, south, 180.0, north), (-180.0, south, east - 360.0, north)]
    return [(west, south, east, north)]


def valid_geometry(
    geom: BaseGeometry, *, repair: bool = False, what: str = "geometry"
) -> BaseGeometry:
    """Return ``geom`` if valid; repair it with ``shapely.make_valid`` when asked, else raise."""
    if geom.is_empty:
        raise GeometryError(f"{what} is empty")
    if geom.is_valid:
        return geom
    reason = shapely.is_valid_reason(geom)
    if not repair:
        raise GeometryError(
            f"{what} is invalid ({reason}); fix it in a GIS or re-run with --repair-geometry"
        )
    fixed = shapely.make_valid(geom)
    if fixed.is_empty:
        raise GeometryError(f"{what} is invalid ({reason}) and could not be repaired")
    return fixed


def point(lon: float, lat: float) -> Point:
    """A validated lon/lat point."""
    check_lonlat(lon, lat)
    return Point(lon, lat)


_POINTS = ("N", "NE", "E", "SE", "S", "SW", "W", "NW")


def compass(bearing: float | None) -> str:
    """The eight-point compass name of a bearing (degrees from north): ``E`` for 95."""
    if bearing is None or not math.isfinite(bearing):
        return ""
    return _POINTS[round((bearing % 360.0) / 45.0) % 8]
