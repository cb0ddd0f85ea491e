"""Map furniture computed from the CRS: true-north direction, ground scale, nice scale-bar lengths."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pyproj import CRS, Transformer

from ..errors import InputError
from ..geo import GEOD

__all__ = ["ScaleBar", "ground_metres_per_unit", "nice_length", "north_angle", "scale_bar"]


@lru_cache(maxsize=64)
def _crs(text: str) -> CRS:
    return CRS.from_user_input(text)


@lru_cache(maxsize=64)
def _to_lonlat(crs: str) -> Transformer:
    return Transformer.from_crs(_crs(crs), "EPSG:4326", always_xy=True)


@lru_cache(maxsize=64)
def _from_lonlat(crs: str) -> Transformer:
    return Transformer.from_crs("EPSG:4326", _crs(crs), always_xy=True)


def _lonlat(crs: str, x: float, y: float) -> tuple[float, float]:
    lon, lat = _to_lonlat(crs).transform(x, y)
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise InputError(f"the point ({x}, {y}) is outside the valid area of {crs}")
    return float(lon), float(lat)


def north_angle(crs: str, x: float, y: float) -> float:
    """Direction of true north at ``(x, y)``, in degrees clockwise from the grid's up (+y) axis.

    Obtained by projecting a point a little to the north: in UTM this is minus the grid
    convergence (east of the central meridian true north lies to the left of grid north).
    """
    if _crs(crs).is_geographic:
        return 0.0
    lon, lat = _lonlat(crs, x, y)
    dlat = 1e-4 if lat < 89.0 else -1e-4
    x2, y2 = _from_lonlat(crs).transform(lon, lat + dlat)
    dx, dy = (x2 - x, y2 - y) if dlat > 0 else (x - x2, y - y2)
    return math.degrees(math.atan2(dx, dy))


def ground_metres_per_unit(crs: str, x: float, y: float) -> float:
    """True (geodesic) ground metres per CRS unit along the grid x axis at ``(x, y)``.

    For a projected CRS this is ``unit / k`` where ``k`` is the point scale factor (0.9996 on
    the UTM central meridian); for a geographic CRS it is the geodesic length of a degree of
    longitude at that latitude.
    """
    c = _crs(crs)
    if c.is_geographic:
        d = 1e-3
        _, _, dist = GEOD.inv(x - d / 2, y, x + d / 2, y)
        return float(dist) / d
    unit = c.axis_info[0].unit_conversion_factor if c.axis_info else 1.0
    d = 10.0 / unit  # 10 m of grid
    lon1, lat1 = _lonlat(crs, x - d / 2, y)
    lon2, lat2 = _lonlat(crs, x + d / 2, y)
    _, _, dist = GEOD.inv(lon1, lat1, lon2, lat2)
    return float(dist) / d


def nice_length(max_m: float) -> float:
    """The largest 1, 2 or 5 x 10^n metres not above ``max_m``."""
    if not max_m > 0:
        raise InputError(f"a scale bar needs a positive length, got {max_m} m")
    exp = math.floor(math.log10(max_m))
    for mult in (5.0, 2.0, 1.0):
        value = mult * 10.0**exp
        if value <= max_m * (1 + 1e-9):
            return value
    return 10.0**exp  # pragma: no cover - 1 x 10^exp is always <= max_m


def length_label(metres: float) -> str:
    """``"500 m"``, ``"2 km"``, ``"1.5 km"``."""
    if metres >= 1000.0:
        km = metres / 1000.0
        return f"{km:g} km"
    return f"{metres:g} m"


@dataclass(frozen=True)
class ScaleBar:
    """A scale bar: its true ground length, its length in CRS units and the scale factor."""

    metres: float
    units: float
    label: str
    scale_factor: float | None
    """Grid scale factor k at the centre (projected CRSs), e.g. 0.9996 on a UTM central meridian."""

    def note(self, crs: str) -> str:
        """A caption note saying how the bar was computed."""
        c = _crs(crs)
        name = c.to_string() if c.to_epsg() is None else f"EPSG:{c.to_epsg()}"
        if self.scale_factor is None:
            return f"Scale bar: geodesic ground length ({name})"
        return (
            f"Scale bar: true ground length (grid scale factor k = {self.scale_factor:.5f}, {name})"
        )


def scale_bar(
    crs: str, extent: tuple[float, float, float, float], fraction: float = 0.25
) -> ScaleBar:
    """A round-length scale bar no longer than ``fraction`` of the width of ``extent``."""
    left, right, bottom, top = extent
    cx, cy = (left + right) / 2, (bottom + top) / 2
    m_per_unit = ground_metres_per_unit(crs, cx, cy)
    metres = nice_length((right - left) * fraction * m_per_unit)
    c = _crs(crs)
    k: float | None = None
    if not c.is_geographic:
        unit = c.axis_info[0].unit_conversion_factor if c.axis_info else 1.0
        k = unit / m_per_unit
    return ScaleBar(metres, metres / m_per_unit, length_label(metres), k)


def lonlat_of(crs: str, x: float, y: float) -> tuple[float, float]:
    """Lon/lat of a point of ``crs``."""
    return _lonlat(crs, x, y)


def project(crs: str, lon: float, lat: float) -> tuple[float, float]:
    """A lon/lat point in ``crs``."""
    x, y = _from_lonlat(crs).transform(lon, lat)
    return float(x), float(y)


def transformer_to(crs: str) -> Any:
    """The cached lon/lat -> ``crs`` transformer (always x/y order)."""
    return _from_lonlat(crs)
