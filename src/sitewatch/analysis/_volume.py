"""Volumes (berms, spoil heaps, DEM differences) and tunnel lengths; re-exported by mensuration."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from affine import Affine
from numpy.typing import NDArray
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

from ..errors import AnalysisError, InputError
from ..geo import aeqd_crs, map_scale, pixel_area_m2, to_crs
from ._quantity import Quantity, _round

__all__ = [
    "DEFAULT_BULKING_FACTOR",
    "DemVolume",
    "berm_volume",
    "section_volume",
    "trapezoid_section_area",
    "tunnel_cross_section",
    "tunnel_length",
    "volume_from_dems",
]

DEFAULT_BULKING_FACTOR = 1.6
"""Volume of loose spoil per unit volume of excavated rock (swell of blasted hard rock is 40-80%)."""


# --- volumes -----------------------------------------------------------------------------------


def trapezoid_section_area(base_width_m: float, crest_width_m: float, height_m: float) -> float:
    """Area of a trapezoidal cross-section (a berm or spoil ridge)."""
    if base_width_m <= 0 or height_m < 0 or not 0 <= crest_width_m <= base_width_m:
        raise InputError(
            f"bad section: base {base_width_m} m, crest {crest_width_m} m, height {height_m} m "
            "(need base > 0, 0 <= crest <= base, height >= 0)"
        )
    return 0.5 * (base_width_m + crest_width_m) * height_m


def section_volume(
    stations_m: Sequence[float], areas_m2: Sequence[float], *, method: str = "prismoidal"
) -> float:
    """Volume from cross-section areas at stations along an axis.

    ``prismoidal`` uses Simpson's rule (exact when the section dimensions vary linearly),
    ``trapezoidal`` the average-end-area rule.
    """
    from scipy.integrate import simpson, trapezoid

    s = np.asarray(stations_m, dtype=np.float64)
    a = np.asarray(areas_m2, dtype=np.float64)
    if s.shape != a.shape or s.size < 2:
        raise InputError("give the same number (>= 2) of stations and section areas")
    if np.any(np.diff(s) <= 0):
        raise InputError("stations must increase")
    if method == "trapezoidal" or s.size < 3:
        return float(trapezoid(a, s))
    if method == "prismoidal":
        return float(simpson(a, x=s))
    raise InputError(f"unknown volume method {method!r}; choose prismoidal or trapezoidal")


def berm_volume(
    footprint: BaseGeometry,
    height_m: float,
    *,
    crest_width_m: float = 0.0,
    height_sigma_m: float = 0.0,
    position_sigma_m: float = 0.0,
    crs: CRS | str = "EPSG:4326",
) -> Quantity:
    """Volume of an elongated berm/spoil heap: a prismoid on the footprint's minimum rectangle.

    The base is the minimum rotated rectangle ``L x W`` of the footprint; the crest is
    ``crest_width_m`` wide and shortened by the same side slope at the ends, so the prismoidal
    formula ``V = h/6 (A_base + 4 A_mid + A_top)`` is exact for that shape.

    A multi-part footprint (a berm mapped in pieces, cut by a road) is the sum of its parts'
    prismoids, each of the same height: the height's error is common to the parts and adds up,
    their outlines' errors are independent and add in quadrature; ``inputs["parts"]`` gives
    each part's sides. (One rectangle around all the parts would count the gaps between them.)
    """
    if footprint.geom_type == "MultiPolygon":
        return _parts_volume(
            list(footprint.geoms),
            height_m,
            crest_width_m=crest_width_m,
            height_sigma_m=height_sigma_m,
            position_sigma_m=position_sigma_m,
            crs=crs,
        )
    if footprint.geom_type != "Polygon":
        raise InputError(
            f"a berm's footprint must be a polygon, not a {footprint.geom_type.lower()}"
        )
    c = CRS.from_user_input(crs)
    geom = footprint
    cen = footprint.centroid
    if not c.is_projected or map_scale(c, cen.x, cen.y).distorted:
        if c.is_projected:
            cen = to_crs(cen, c, "EPSG:4326")
        geom = to_crs(footprint, c, aeqd_crs(cen.x, cen.y))
    rect = geom.minimum_rotated_rectangle
    xy = np.asarray(rect.exterior.coords)
    sides = sorted(float(np.hypot(*(xy[i + 1] - xy[i]))) for i in range(2))
    width, length = sides
    if height_m < 0:
        raise InputError(f"height must be >= 0, got {height_m}")
    if crest_width_m > width:
        raise InputError(f"crest width {crest_width_m} m exceeds the footprint width {width:.2f} m")
    run = (width - crest_width_m) / 2.0
    top_len = max(length - 2.0 * run, 0.0)
    a_base = length * width
    a_top = top_len * crest_width_m
    a_mid = (length + top_len) / 2.0 * (width + crest_width_m) / 2.0
    vol = height_m / 6.0 * (a_base + 4.0 * a_mid + a_top)
    rel_h = height_sigma_m / height_m if height_m > 0 else 0.0
    rel_w = position_sigma_m * math.sqrt(2.0) / width if width > 0 else 0.0
    rel_l = position_sigma_m * math.sqrt(2.0) / length if length > 0 else 0.0
    sigma = vol * math.sqrt(rel_h**2 + rel_w**2 + rel_l**2)
    return Quantity(
        vol,
        sigma,
        "m3",
        "prismoid_from_footprint",
        {
            "length_m": round(length, 3),
            "base_width_m": round(width, 3),
            "crest_width_m": crest_width_m,
            "height_m": height_m,
            "height_sigma_m": height_sigma_m,
        },
    )


def _parts_volume(
    parts: Sequence[BaseGeometry],
    height_m: float,
    *,
    crest_width_m: float,
    height_sigma_m: float,
    position_sigma_m: float,
    crs: CRS | str,
) -> Quantity:
    """:func:`berm_volume` of a multi-part footprint (see there)."""
    found = []
    for i, part in enumerate(parts):
        try:
            found.append(
                berm_volume(
                    part,
                    height_m,
                    crest_width_m=crest_width_m,
                    height_sigma_m=height_sigma_m,
                    position_sigma_m=position_sigma_m,
                    crs=crs,
                )
            )
        except InputError as exc:
            raise InputError(f"part {i + 1} of {len(parts)} of the footprint: {exc}") from None
    vol = sum(q.value for q in found)
    rel_h = height_sigma_m / height_m if height_m > 0 else 0.0
    outline_var = sum(max(q.uncertainty**2 - (q.value * rel_h) ** 2, 0.0) for q in found)
    sigma = math.sqrt((vol * rel_h) ** 2 + outline_var)
    return Quantity(
        vol,
        sigma,
        "m3",
        "prismoid_from_footprint",
        {
            "parts": [
                {"length_m": q.inputs["length_m"], "base_width_m": q.inputs["base_width_m"]}
                for q in found
            ],
            "crest_width_m": crest_width_m,
            "height_m": height_m,
            "height_sigma_m": height_sigma_m,
        },
    )


@dataclass(frozen=True)
class DemVolume:
    """Volume change between two DEMs over a footprint."""

    fill_m3: float
    cut_m3: float
    net_m3: float
    uncertainty_m3: float
    area_m2: float
    pixels: int
    method: str = "dem_difference"
    inputs: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "fill_m3": _round(self.fill_m3),
            "cut_m3": _round(self.cut_m3),
            "net_m3": _round(self.net_m3),
            "uncertainty_m3": _round(self.uncertainty_m3),
            "area_m2": _round(self.area_m2),
            "pixels": self.pixels,
            "method": self.method,
            "inputs": dict(self.inputs),
        }


def volume_from_dems(
    before: NDArray[Any],
    after: NDArray[Any],
    transform: Affine,
    footprint: BaseGeometry,
    *,
    crs: CRS | str,
    sigma_before_m: float = 1.0,
    sigma_after_m: float = 1.0,
    correlation_length_m: float | None = None,
) -> DemVolume:
    """Fill, cut and net volume of ``after - before`` integrated over ``footprint``.

    Both DEMs are on the same grid (``transform``, ``crs``); ``footprint`` is in that CRS. Pixel
    areas are planar for projected CRSs and geodesic per row for geographic ones. The uncertainty
    follows Rolstad et al. (2009): with errors correlated over ``correlation_length_m`` the mean
    elevation change over area ``A`` has ``sigma_dh * sqrt(pi L^2 / (5 A))`` (capped at
    ``sigma_dh``); without a correlation length errors are taken as fully correlated
    (``sigma_V = sigma_dh * A``, the conservative bound).
    """
    b = np.asarray(before, dtype=np.float64)
    a = np.asarray(after, dtype=np.float64)
    if a.shape != b.shape:
        raise InputError(f"the DEMs are on different grids ({b.shape} vs {a.shape}); resample one")
    mask = _rasterize_centres(footprint, transform, b.shape)
    if not mask.any():
        raise AnalysisError("the footprint covers no DEM pixel; check that it overlaps the DEMs")
    diff = a - b
    valid = mask & np.isfinite(diff)
    if valid.sum() < mask.sum():
        missing = int(mask.sum() - valid.sum())
        raise AnalysisError(
            f"{missing} DEM pixel(s) under the footprint have no data; fill voids first"
        )
    pix_area = _pixel_areas(transform, b.shape, CRS.from_user_input(crs))
    dv = diff * pix_area
    fill = float(dv[valid & (diff > 0)].sum())
    cut = float(-dv[valid & (diff < 0)].sum())
    area = float(pix_area[valid].sum())
    sigma_dh = math.hypot(sigma_before_m, sigma_after_m)
    if correlation_length_m is None:
        sigma_mean = sigma_dh
    else:
        sigma_mean = sigma_dh * min(
            1.0, math.sqrt(math.pi * correlation_length_m**2 / (5.0 * area))
        )
    return DemVolume(
        fill,
        cut,
        fill - cut,
        sigma_mean * area,
        area,
        int(valid.sum()),
        inputs={
            "sigma_before_m": sigma_before_m,
            "sigma_after_m": sigma_after_m,
            "correlation_length_m": correlation_length_m,
        },
    )


def _rasterize_centres(
    geom: BaseGeometry, transform: Affine, shape: tuple[int, ...]
) -> NDArray[np.bool_]:
    from rasterio.features import geometry_mask

    m = geometry_mask([geom], out_shape=shape, transform=transform, invert=True, all_touched=False)
    return np.asarray(m, dtype=bool)


def _pixel_areas(transform: Affine, shape: tuple[int, ...], crs: CRS) -> NDArray[np.float64]:
    rows, cols = shape[0], shape[1]
    if crs.is_projected:  # one area for the grid (at its centre)
        return np.full((rows, cols), pixel_area_m2(crs, transform, cols / 2.0, rows / 2.0))
    areas = np.array([pixel_area_m2(crs, transform, 0, r) for r in range(rows)])
    return np.repeat(areas[:, None], cols, axis=1)


# --- tunnels -----------------------------------------------------------------------------------


def tunnel_cross_section(width_m: float, height_m: float, shape: str = "horseshoe") -> float:
    """Excavated cross-section area: ``rectangle``, ``circle`` (width = diameter) or ``horseshoe``
    (a rectangle ``height - width/2`` high topped by a half circle of the tunnel width)."""
    if width_m <= 0 or height_m <= 0:
        raise InputError(f"tunnel width and height must be positive, got {width_m} x {height_m} m")
    if shape == "rectangle":
        return width_m * height_m
    if shape == "circle":
        return math.pi * width_m**2 / 4.0
    if shape == "horseshoe":
        wall = max(height_m - width_m / 2.0, 0.0)
        return width_m * wall + math.pi * width_m**2 / 8.0
    raise InputError(f"unknown tunnel shape {shape!r}; choose horseshoe, rectangle or circle")


def tunnel_length(
    spoil_volume_m3: float,
    cross_section_m2: float,
    *,
    bulking_factor: float = DEFAULT_BULKING_FACTOR,
    spoil_sigma_m3: float = 0.0,
    cross_section_sigma_m2: float = 0.0,
    bulking_sigma: float = 0.1,
) -> Quantity:
    """Tunnel length from the spoil heap volume: ``L = V_spoil / bulking / A_section``.

    ``bulking_factor`` is the loose volume per unit of rock in place (default 1.6, blasted hard
    rock; use ~1.3 for soft ground). Relative uncertainties add in quadrature.
    """
    if spoil_volume_m3 <= 0 or cross_section_m2 <= 0:
        raise InputError("spoil volume and cross-section must be positive")
    if bulking_factor < 1.0:
        raise InputError(f"bulking factor {bulking_factor} < 1: spoil cannot be denser than rock")
    length = spoil_volume_m3 / bulking_factor / cross_section_m2
    rel = math.sqrt(
        (spoil_sigma_m3 / spoil_volume_m3) ** 2
        + (cross_section_sigma_m2 / cross_section_m2) ** 2
        + (bulking_sigma / bulking_factor) ** 2
    )
    return Quantity(
        length,
        length * rel,
        "m",
        "spoil_volume",
        {
            "spoil_volume_m3": spoil_volume_m3,
            "cross_section_m2": round(cross_section_m2, 3),
            "bulking_factor": bulking_factor,
            "bulking_sigma": bulking_sigma,
        },
    )
