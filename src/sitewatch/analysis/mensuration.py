"""Mensuration: heights from shadows, geodesic distances and areas, volumes, tunnel lengths.

Every result carries an uncertainty (one standard deviation, first-order propagation) and the
method and inputs that produced it, so that it can be stored as a catalog ``Measurement``.

Height from a shadow
--------------------
For a flat-topped object of height ``h`` on flat ground, seen at nadir, the shadow of its top
edge reaches ``L = h / tan(e)`` beyond the footprint along the shadow azimuth (sun azimuth + 180).
:func:`height_from_shadow` measures ``L`` in an orthorectified image: it segments the shadow
(Otsu threshold of the brightness around the footprint), casts rays parallel to the sun azimuth
from the footprint's anti-sun edges and places the end of the shadow on each ray to a fraction of
a pixel (gradient peak, parabola fit); ``L`` is the median over the rays. Two corrections:

* terrain: with the ground elevation ``z`` from a DEM, ``h = L tan(e) + z(tip) - z(base)``
  (a shadow falling on ground that rises away from the object is shorter);
* view geometry: in an image taken ``theta`` off nadir the top of the object appears displaced by
  ``h tan(theta)`` away from the sensor (along the STAC ``view:azimuth``), and the footprint drawn
  on the image follows the roof; the length measured from it is
  ``m = h (cot(e) - tan(theta) cos(beta))`` where ``beta`` is the angle between the displacement
  and the shadow direction, so ``h = (m tan(e) + dz) / (1 - tan(theta) cos(beta) tan(e))``.

The uncertainty combines the footprint edge position, the localisation of the shadow tip, the
scatter of the per-ray lengths (standard error of the median), the sun elevation error and the DEM
error of the elevation difference.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from affine import Affine
from numpy.typing import NDArray
from pyproj import CRS
from shapely.geometry import LineString, Polygon, box
from shapely.geometry.base import BaseGeometry

from ..errors import AnalysisError, GeometryError, InputError
from ..geo import GEOD, aeqd_crs, check_lonlat, geodesic_area, map_scale, to_crs
from ._quantity import Quantity, _round
from ._shadow import (
    _bounds,
    _caster_offsets,
    _gsd,
    _pixel_window,
    _rasterize,
    _stands_in_shadow,
    _terrain_dz,
    _terrain_dz_rays,
    cast_rays,
    otsu_dark_threshold,
    ridge_shadow_spans,
    shadow_ends,
    shadow_threshold,
    shorth_location,
)
from ._volume import (
    DEFAULT_BULKING_FACTOR,
    DemVolume,
    berm_volume,
    section_volume,
    trapezoid_section_area,
    tunnel_cross_section,
    tunnel_length,
    volume_from_dems,
)

__all__ = [
    "DEFAULT_BULKING_FACTOR",
    "DemVolume",
    "HeightResult",
    "Quantity",
    "ViewGeometry",
    "berm_crest",
    "berm_volume",
    "geodesic_path_length",
    "geodesic_polygon_area",
    "grid_azimuth",
    "height_from_length",
    "height_from_ridge_shadow",
    "height_from_shadow",
    "height_from_shadow_tip",
    "heights_from_shadows",
    "section_volume",
    "trapezoid_section_area",
    "tunnel_cross_section",
    "tunnel_length",
    "volume_from_dems",
]

logger = logging.getLogger(__name__)


REASONS = {
    "sun_below_horizon": "the sun is below the horizon: no shadow is cast",
    "footprint_outside_image": "the footprint is not (entirely) inside the image's valid pixels",
    "shadow_leaves_image": "the shadow runs out of the image before it ends",
    "shadow_on_other_footprint": "the shadow falls on another building/footprint",
    "no_shadow_found": "no shadow next to the footprint on the side away from the sun",
    "shadow_too_long": "the shadow does not end within the maximum height searched",
    "no_anti_sun_edge": "the footprint has no edge facing away from the sun long enough to measure",
    "sun_along_ridge": "the sun shines along the ridge: its crest casts no shadow across it",
}

_FAILURE_REASON = {
    "leaves_image": "shadow_leaves_image",
    "blocked": "shadow_on_other_footprint",
    "no_shadow": "no_shadow_found",
    "no_end": "shadow_too_long",
    "reenters": "no_shadow_found",
    "shadowed": "shadow_on_other_footprint",
    "off_crest": "no_shadow_found",
    "lit_slope": "no_shadow_found",
}


@dataclass(frozen=True)
class ViewGeometry:
    """Off-nadir view: ``off_nadir_deg`` and ``azimuth_deg`` as in the STAC view extension
    (``view:azimuth``: from the sub-satellite point towards the scene, clockwise from north; tall
    objects appear displaced along it)."""

    off_nadir_deg: float
    azimuth_deg: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.off_nadir_deg < 80.0:
            raise InputError(f"off-nadir angle {self.off_nadir_deg} must be within 0..80 degrees")


@dataclass(frozen=True)
class HeightResult:
    """The height of one footprint; ``height_m`` is None with a ``reason`` when not measurable."""

    index: int
    id: str | None
    height_m: float | None
    uncertainty_m: float | None
    shadow_length_m: float | None
    method: str
    reason: str | None = None
    detail: str = ""
    inputs: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly record (the ``measure heights --json`` row)."""
        out: dict[str, Any] = {
            "index": self.index,
            "id": self.id,
            "height_m": _round(self.height_m),
            "uncertainty_m": _round(self.uncertainty_m),
            "shadow_length_m": _round(self.shadow_length_m),
            "method": self.method,
        }
        if self.reason is not None:
            out["reason"] = self.reason
            out["detail"] = self.detail
        out["inputs"] = dict(self.inputs)
        return out


def _null(index: int, ident: str | None, reason: str, method: str, **inputs: Any) -> HeightResult:
    extra = inputs.pop("detail", "")
    detail = REASONS.get(reason, reason) + (f" ({extra})" if extra else "")
    return HeightResult(index, ident, None, None, None, method, reason, detail, inputs)


# --- angles ------------------------------------------------------------------------------------


def _check_true_scale(crs: CRS | str | None, x: float, y: float) -> None:
    """Refuse a grid whose lengths are not metres on the ground (Web Mercator, feet): a shadow
    measured on it would give a height off by the projection's scale (29% at 39 N) or the unit."""
    if crs is None:
        return
    scale = map_scale(crs, x, y)
    if scale.distorted:
        raise InputError(
            f"the image grid ({CRS.from_user_input(crs).to_string()}) has {scale.parallel:.3f} "
            "units to the ground metre here, so shadow lengths on it are not metres: warp the image "
            "to its UTM zone first (gdalwarp -t_srs EPSG:326NN), as `sitewatch measure` does"
        )


def grid_azimuth(crs: CRS | str | None, x: float, y: float, true_azimuth: float) -> float:
    """Convert a true azimuth at map point ``x``/``y`` into a grid azimuth (meridian convergence).

    With no CRS, or a geographic one, the azimuth is returned unchanged.
    """
    if crs is None:
        return true_azimuth % 360.0
    c = CRS.from_user_input(crs)
    if not c.is_projected:
        return true_azimuth % 360.0
    pts = to_crs(LineString([(x, y), (x, y + 10.0)]), c, "EPSG:4326")
    (lon1, lat1), (lon2, lat2) = pts.coords
    grid_north, _, _ = GEOD.inv(lon1, lat1, lon2, lat2)
    return (true_azimuth - float(grid_north)) % 360.0


def _shadow_direction(azimuth_deg: float) -> tuple[float, float]:
    a = math.radians(azimuth_deg + 180.0)
    return (math.sin(a), math.cos(a))


def height_from_length(
    length_m: float,
    sun_elevation: float,
    *,
    length_sigma_m: float = 0.0,
    elevation_sigma_deg: float = 0.1,
    dz_m: float = 0.0,
    dz_sigma_m: float = 0.0,
    view: ViewGeometry | None = None,
    shadow_azimuth: float | None = None,
) -> tuple[float, float]:
    """Height and its one-sigma uncertainty from a shadow length (see the module docstring)."""
    if sun_elevation <= 0.0:
        raise InputError(f"the sun is below the horizon (elevation {sun_elevation:.2f} deg)")
    e = math.radians(sun_elevation)
    c = 0.0
    if view is not None and view.off_nadir_deg > 0.0:
        if shadow_azimuth is None:
            raise InputError("the off-nadir correction needs the shadow azimuth")
        beta = math.radians(view.azimuth_deg - shadow_azimuth)
        c = math.tan(math.radians(view.off_nadir_deg)) * math.cos(beta)
    denom = 1.0 - c * math.tan(e)
    if denom <= 0.05:
        raise AnalysisError(
            "view and sun geometry are degenerate (the roof displacement hides the shadow); "
            "use an image closer to nadir"
        )
    h = (length_m * math.tan(e) + dz_m) / denom
    # partial derivatives
    dh_dm = math.tan(e) / denom
    # d/de of (m tan e + dz)/(1 - c tan e)
    sec2 = 1.0 / math.cos(e) ** 2
    dh_de = (length_m * sec2 * denom + (length_m * math.tan(e) + dz_m) * c * sec2) / denom**2
    var = (
        (dh_dm * length_sigma_m) ** 2
        + (dh_de * math.radians(elevation_sigma_deg)) ** 2
        + (dz_sigma_m / denom) ** 2
    )
    return h, math.sqrt(var)


# --- height from shadow ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Window:
    """The image around one footprint: the pixels its shadow can reach and their context."""

    sub: NDArray[np.float64]
    transform: Affine
    others_mask: NDArray[np.bool_]
    max_len: float


def _checked_image(
    image: NDArray[Any], transform: Affine, footprint: Polygon, sun_elevation: float, ident: str
) -> tuple[NDArray[np.float64], str | None]:
    """The image as float, or a null reason (sun below the horizon, footprint outside)."""
    if footprint.is_empty or not footprint.is_valid:
        raise GeometryError(f"footprint {ident} is empty or invalid")
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2:
        raise InputError(f"image must be one 2-D band, got shape {img.shape}")
    if sun_elevation <= 0.0:
        return img, "sun_below_horizon"
    if not box(*_bounds(transform, img.shape)).contains(footprint):
        return img, "footprint_outside_image"
    return img, None


def _shadow_window(
    img: NDArray[np.float64],
    transform: Affine,
    footprint: Polygon,
    d: tuple[float, float],
    *,
    sun_elevation: float,
    max_height_m: float,
    others: Sequence[BaseGeometry],
) -> _Window | str:
    """The window a shadow of at most ``max_height_m`` can fall in, or why there is none."""
    gsd = _gsd(transform)
    max_len = max_height_m / math.tan(math.radians(sun_elevation))
    sweep = shapely.union(
        footprint, shapely.affinity.translate(footprint, d[0] * max_len, d[1] * max_len)
    ).convex_hull
    window = _pixel_window(transform, img.shape, sweep.buffer(4 * gsd))
    if window is None:
        return ""
    rs, cs = window
    sub = img[rs, cs]
    sub_t = transform @ Affine.translation(cs.start, rs.start)
    if not np.isfinite(sub[_rasterize([footprint], sub_t, sub.shape)]).all():
        return "no-data pixels inside the footprint"
    near = [g for g in others if g.intersects(sweep)]
    return _Window(sub, sub_t, _rasterize(near, sub_t, sub.shape), max_len)


def height_from_shadow(
    image: NDArray[Any],
    transform: Affine,
    footprint: Polygon,
    *,
    sun_azimuth: float,
    sun_elevation: float,
    crs: CRS | str | None = None,
    others: Sequence[BaseGeometry] = (),
    dem: NDArray[Any] | None = None,
    view: ViewGeometry | None = None,
    caster: Polygon | None = None,
    index: int = 0,
    ident: str | None = None,
    max_height_m: float = 150.0,
    footprint_sigma_px: float = 0.5,
    elevation_sigma_deg: float = 0.1,
    dem_sigma_m: float = 1.0,
    min_rays: int = 3,
) -> HeightResult:
    """Height of the object on ``footprint`` from its shadow in ``image`` (see the module doc).

    ``image`` is a 2-D brightness array (NaN = no data) on a projected grid (metres) given by
    ``transform``; ``footprint`` and ``others`` (footprints of other objects, which shadows must
    not cross) are in the same CRS. ``sun_azimuth`` is true azimuth (converted to grid azimuth
    with ``crs``). ``dem`` is a ground elevation array on the same grid. ``caster`` is the outline
    of the edge that casts the shadow when it lies inside the footprint (the crest of a berm).
    """
    method = "shadow" + ("+dem" if dem is not None else "") + ("+view" if view else "")
    ident_inputs: dict[str, Any] = {
        "sun_azimuth": round(sun_azimuth, 4),
        "sun_elevation": round(sun_elevation, 4),
    }
    img, why = _checked_image(image, transform, footprint, sun_elevation, ident or str(index))
    gsd = _gsd(transform)
    ident_inputs["gsd_m"] = round(gsd, 4)
    if why is not None:
        return _null(index, ident, why, method, **ident_inputs)
    cx, cy = footprint.centroid.x, footprint.centroid.y
    _check_true_scale(crs, cx, cy)
    az = grid_azimuth(crs, cx, cy, sun_azimuth)
    d = _shadow_direction(az)
    win = _shadow_window(
        img, transform, footprint, d, sun_elevation=sun_elevation, max_height_m=max_height_m,
        others=others,
    )  # fmt: skip
    if isinstance(win, str):
        return _null(index, ident, "footprint_outside_image", method, detail=win, **ident_inputs)
    sub, sub_t, max_len = win.sub, win.transform, win.max_len
    others_mask = win.others_mask
    # threshold from where the shadow should be: the footprint swept a little way along the
    # shadow direction (plus a rim), other footprints and roofs excluded
    size = math.sqrt(footprint.area)
    reach = min(max_len, max(10.0, 2.0 * size))
    zone = shapely.union(
        footprint, shapely.affinity.translate(footprint, d[0] * reach, d[1] * reach)
    ).convex_hull.buffer(max(3.0 * gsd, 0.25 * size))
    zone_mask = _rasterize([zone], sub_t, sub.shape)
    all_fp = _rasterize([footprint, *[g for g in others if g.intersects(zone)]], sub_t, sub.shape)
    neigh = np.where(zone_mask & ~all_fp, sub, np.nan)
    thr = otsu_dark_threshold(neigh)
    if thr is None:
        return _null(index, ident, "no_shadow_found", method, detail="no contrast", **ident_inputs)

    def measure(
        start: Polygon, hidden: Polygon | None
    ) -> tuple[Any, NDArray[np.float64], Counter[str], NDArray[np.float64]]:
        rays = cast_rays(
            sub,
            sub_t,
            start,
            d,
            max_length=max_len,
            gsd=gsd,
            others_mask=others_mask,
            hidden=hidden,
        )
        lengths, failures = shadow_ends(rays, thr, gsd=gsd)
        offsets = np.zeros_like(lengths)
        if caster is not None:
            offsets = _caster_offsets(caster, rays.x0, rays.y0, d)
            lengths = lengths + offsets
            failures["no_caster"] += int(np.isnan(offsets).sum())
        return rays, lengths, failures, offsets

    rays, lengths, failures, offsets = measure(footprint, None)
    if rays.x0.size == 0:
        return _null(index, ident, "no_anti_sun_edge", method, **ident_inputs)
    dark = neigh[np.isfinite(neigh) & (neigh < thr)]
    dark_level = 0.5 * (float(dark.mean()) + thr) if dark.size else thr
    if _stands_in_shadow(sub, sub_t, footprint, d, dark_level, gsd):
        return _null(
            index,
            ident,
            "shadow_on_other_footprint",
            method,
            detail="the object stands in the shadow of another one",
            **ident_inputs,
        )
    tan_view = math.tan(math.radians(view.off_nadir_deg)) if view is not None else 0.0
    if view is not None and tan_view > 0 and np.isfinite(lengths).sum() >= min_rays:
        # the footprint follows the displaced roof: move it back to the base and measure again
        u = (math.sin(math.radians(view.azimuth_deg)), math.cos(math.radians(view.azimuth_deg)))
        h_est, _ = height_from_length(
            float(np.nanmedian(lengths)),
            sun_elevation,
            view=view,
            shadow_azimuth=(az + 180.0) % 360.0,
        )
        for _ in range(4):
            shift = h_est * tan_view
            base = shapely.affinity.translate(footprint, -u[0] * shift, -u[1] * shift)
            hidden = shapely.union(base, footprint).convex_hull
            rays, lengths, failures, offsets = measure(base, hidden)
            if np.isfinite(lengths).sum() < min_rays:
                break
            h_new = float(np.nanmedian(lengths)) * math.tan(math.radians(sun_elevation))
            done = abs(h_new - h_est) < 0.01
            h_est = h_new
            if done:
                break
        view_used: ViewGeometry | None = None  # lengths now run from the base
    else:
        view_used = view
    ok = np.isfinite(lengths)
    n_ok = int(ok.sum())
    ident_inputs["rays"] = int(lengths.size)
    ident_inputs["rays_used"] = n_ok
    ident_inputs["threshold"] = round(thr, 4)
    if n_ok < max(min_rays, int(0.2 * lengths.size)):
        reason = _dominant(failures)
        counts = ", ".join(f"{k}: {v}" for k, v in failures.most_common())
        return _null(index, ident, reason, method, detail=f"rays failing: {counts}", **ident_inputs)
    good = lengths[ok]
    med = float(np.median(good))
    mad = float(np.median(np.abs(good - med))) * 1.4826
    if mad > 0:
        good = good[np.abs(good - med) <= 3.0 * mad + 0.25 * gsd]
        med = float(np.median(good))
        mad = float(np.median(np.abs(good - med))) * 1.4826
    n_eff = max(1.0, good.size * 0.25)  # rays 0.5 px apart see the same blur: ~4 per pixel
    sigma_len = math.sqrt(
        (footprint_sigma_px * gsd) ** 2 + (0.2 * gsd) ** 2 + (1.2533 * mad / math.sqrt(n_eff)) ** 2
    )
    dz, dz_sigma = 0.0, 0.0
    if dem is not None:
        dz = _terrain_dz(
            np.asarray(dem, dtype=np.float64),
            transform,
            rays.x0[ok],
            rays.y0[ok],
            lengths[ok] - offsets[ok],
            d,
        )
        if not math.isfinite(dz):
            return _null(
                index,
                ident,
                "footprint_outside_image",
                method,
                detail="the DEM has no data under the shadow",
                **ident_inputs,
            )
        dz_sigma = dem_sigma_m
        ident_inputs["terrain_dz_m"] = round(dz, 3)
    if view is not None:
        ident_inputs["view_off_nadir"] = view.off_nadir_deg
        ident_inputs["view_azimuth"] = view.azimuth_deg
    try:
        h, sigma = height_from_length(
            med,
            sun_elevation,
            length_sigma_m=sigma_len,
            elevation_sigma_deg=elevation_sigma_deg,
            dz_m=dz,
            dz_sigma_m=dz_sigma,
            view=view_used,
            shadow_azimuth=(az + 180.0) % 360.0,
        )
    except AnalysisError as exc:
        return _null(index, ident, "no_shadow_found", method, detail=str(exc), **ident_inputs)
    ident_inputs["edge_scatter_m"] = round(mad, 4)
    ident_inputs["grid_azimuth"] = round(az, 4)
    return HeightResult(index, ident, h, sigma, med, method, None, "", ident_inputs)


def _ridge_axis(footprint: Polygon) -> tuple[float, float, tuple[float, float], float, float]:
    """Centre x/y, long-axis unit vector, length and width of the minimum rotated rectangle."""
    xy = np.asarray(footprint.minimum_rotated_rectangle.exterior.coords)
    e1, e2 = xy[1] - xy[0], xy[2] - xy[1]
    l1, l2 = float(np.hypot(*e1)), float(np.hypot(*e2))
    axis, length, width = (e1 / l1, l1, l2) if l1 >= l2 else (e2 / l2, l2, l1)
    c = footprint.minimum_rotated_rectangle.centroid
    return c.x, c.y, (float(axis[0]), float(axis[1])), length, width


def height_from_ridge_shadow(
    image: NDArray[Any],
    transform: Affine,
    footprint: Polygon,
    *,
    sun_azimuth: float,
    sun_elevation: float,
    crs: CRS | str | None = None,
    others: Sequence[BaseGeometry] = (),
    dem: NDArray[Any] | None = None,
    view: ViewGeometry | None = None,
    index: int = 0,
    ident: str | None = None,
    max_height_m: float = 150.0,
    elevation_sigma_deg: float = 0.1,
    dem_sigma_m: float = 1.0,
    min_rays: int = 5,
    max_sun_along_deg: float = 60.0,
    toe_margin_px: float = 1.5,
    max_scatter_px: float = 3.0,
) -> HeightResult:
    """Crest height of a ridge (berm, spoil heap) on ``footprint`` from the shadow it casts.

    A ridge has no vertical wall: its shadow starts at the crest, runs down the lee slope (in its
    own shadow when the slope is steeper than the sun) and ends on the ground beyond. Profiles
    are sampled across the ridge parallel to the sun azimuth, every half pixel along the crest;
    on each, both ends of the shadow are located in the image (see
    :func:`~sitewatch.analysis._shadow.ridge_shadow_spans`), so neither the crest width nor its
    position need be known. Only profiles that cross the central part of the axis (the crest at
    full height: the ends of the footprint, one half-width long, slope down) are used; a profile
    is rejected when its shadow starts more than a quarter of the width from the axis (not the
    crest), meets another footprint (a portal cut, a building) or runs out of the image. The
    height is from the median length of the profiles left, ``h = L tan(e) + z(tip) - z(crest)``
    with ``z`` the bare-earth ``dem`` (ground under the crest, ground at the shadow tip); the
    uncertainty combines the location of both edges, the scatter of the profiles (standard error
    of the median), the sun elevation error and the DEM error.

    The result is null (``no_shadow_found``) when the sun is higher than the lee slope (no
    shadow is cast: the dark span ends on the slope or, within ``toe_margin_px``, at its toe,
    where a dimly lit slope cannot be told from a shadow) and when the profiles' lengths scatter
    by more than ``max_scatter_px`` (the shadow runs into dark ground and its end is not the
    straight line a straight crest casts); and ``sun_along_ridge`` when the shadow falls within
    ``90 - max_sun_along_deg`` degrees of the ridge axis.
    """
    method = "ridge_shadow" + ("+dem" if dem is not None else "") + ("+view" if view else "")
    inputs: dict[str, Any] = {
        "sun_azimuth": round(sun_azimuth, 4),
        "sun_elevation": round(sun_elevation, 4),
    }
    img, why = _checked_image(image, transform, footprint, sun_elevation, ident or str(index))
    gsd = _gsd(transform)
    inputs["gsd_m"] = round(gsd, 4)
    if why is not None:
        return _null(index, ident, why, method, **inputs)
    cx, cy, axis, length, width = _ridge_axis(footprint)
    _check_true_scale(crs, cx, cy)
    az = grid_azimuth(crs, cx, cy, sun_azimuth)
    d = _shadow_direction(az)
    along = abs(d[0] * axis[0] + d[1] * axis[1])
    if along > math.cos(math.radians(90.0 - max_sun_along_deg)):
        angle = math.degrees(math.acos(min(1.0, along)))
        return _null(
            index,
            ident,
            "sun_along_ridge",
            method,
            detail=f"shadow {angle:.0f} deg from the ridge axis",
            **inputs,
        )
    win = _shadow_window(
        img, transform, footprint, d, sun_elevation=sun_elevation, max_height_m=max_height_m,
        others=others,
    )  # fmt: skip
    if isinstance(win, str):
        return _null(index, ident, "footprint_outside_image", method, detail=win, **inputs)
    sub, sub_t, max_len = win.sub, win.transform, win.max_len
    others_mask = win.others_mask
    # threshold: the ridge itself (lit slope, shadowed lee slope) and the ground the shadow
    # should fall on, other footprints excluded
    reach = min(max_len, max(10.0, 2.0 * width))
    zone = shapely.union(
        footprint, shapely.affinity.translate(footprint, d[0] * reach, d[1] * reach)
    ).convex_hull.buffer(max(3.0 * gsd, 0.25 * width))
    zone_mask = _rasterize([zone], sub_t, sub.shape)
    other_fp = _rasterize([g for g in others if g.intersects(zone)], sub_t, sub.shape)
    thr = shadow_threshold(np.where(zone_mask & ~other_fp, sub, np.nan))
    if thr is None:
        return _null(index, ident, "no_shadow_found", method, detail="no contrast", **inputs)
    spans = ridge_shadow_spans(
        sub, sub_t, footprint, d, thr, max_length=max_len, gsd=gsd, others_mask=others_mask
    )
    # profiles crossing the crest at full height: the axis between the sloping ends
    px, py = -d[1], d[0]
    cross = px * axis[0] + py * axis[1]  # sin of the angle between the axis and the rays
    u = ((spans.x0 - cx) * px + (spans.y0 - cy) * py) / cross  # where each ray meets the axis
    central = np.abs(u) <= max(length / 2.0 - width / 2.0, gsd)
    failures: Counter[str] = Counter(
        f for f, c in zip(spans.failure, central, strict=True) if f and c
    )
    lengths = spans.end - spans.start
    sx = spans.x0 + d[0] * spans.start
    sy = spans.y0 + d[1] * spans.start
    off_axis = np.abs((sx - cx) * -axis[1] + (sy - cy) * axis[0])
    off_crest = central & np.isfinite(lengths) & (off_axis > width / 4.0)
    failures["off_crest"] += int(off_crest.sum())
    ok = central & np.isfinite(lengths) & ~off_crest
    n_central, n_ok = int(central.sum()), int(ok.sum())
    inputs.update(rays=n_central, rays_used=n_ok, threshold=round(thr, 4))
    if n_ok < max(min_rays, int(0.3 * n_central)):
        reason = _dominant(failures)
        if failures and failures.most_common(1)[0][0] == "shadowed":
            reason = "shadow_on_other_footprint"
        counts = ", ".join(f"{k}: {v}" for k, v in failures.most_common())
        detail = f"profiles failing: {counts}" if counts else "no profile crosses the crest"
        return _null(index, ident, reason, method, detail=detail, **inputs)
    # on sloping ground each profile has its own elevation difference crest -> tip: turn every
    # length into the length on flat ground, L + dz / tan(e), before combining them
    tan_e = math.tan(math.radians(sun_elevation))
    dz_rays = np.zeros_like(lengths)
    dz_sigma = 0.0
    if dem is not None:
        dz_rays = np.full_like(lengths, np.nan)
        dz_rays[ok] = _terrain_dz_rays(
            np.asarray(dem, dtype=np.float64), transform, sx[ok], sy[ok], lengths[ok], d
        )
        if not np.isfinite(dz_rays[ok]).any():
            return _null(
                index,
                ident,
                "footprint_outside_image",
                method,
                detail="the DEM has no data under the shadow",
                **inputs,
            )
        ok &= np.isfinite(dz_rays)
        dz_sigma = dem_sigma_m
    flat = lengths + dz_rays / tan_e
    # profiles whose shadow runs on into dark ground are too long: locate the bulk of the
    # lengths with the shorth (robust to up to half of them so spoiled), keep those near it
    loc, scale = shorth_location(flat[ok])
    ok &= np.abs(flat - loc) <= 3.0 * scale + 0.25 * gsd
    good = flat[ok]
    med = float(np.median(good))
    mad = float(np.median(np.abs(good - med))) * 1.4826
    beyond = float(np.median((spans.end - spans.toe)[ok]))
    # the shadow starts on the anti-sun edge of the crest: twice its distance from the axis is
    # the crest width (of a symmetric section)
    crest_w = min(2.0 * float(np.median(off_axis[ok])), width)
    inputs.update(
        rays_used=int(ok.sum()),
        beyond_toe_m=round(beyond, 3),
        edge_scatter_m=round(mad, 4),
        crest_width_m=round(crest_w, 3),
    )
    if dem is not None:
        inputs["terrain_dz_m"] = round(float(np.median(dz_rays[ok])), 3)
    if mad > max_scatter_px * gsd:
        return _null(
            index,
            ident,
            "no_shadow_found",
            method,
            detail=(
                f"the end of the shadow is not a line: the profiles' lengths scatter by {mad:.1f} m "
                "(dark ground beyond it?)"
            ),
            **inputs,
        )
    if beyond < toe_margin_px * gsd:
        bound = float(np.median((spans.toe - spans.start)[ok])) * tan_e
        return _null(
            index,
            ident,
            "no_shadow_found",
            method,
            detail=(
                "the dark lee slope ends at the toe: a slope facing away from a sun higher than "
                f"it is dim but casts no shadow; the height is at most about {bound:.1f} m"
            ),
            **inputs,
        )
    n_eff = max(1.0, good.size * 0.25)  # profiles 0.5 px apart see the same blur
    # both edges located to ~0.25 px, plus the standard error of the median
    sigma_len = math.sqrt(2.0 * (0.25 * gsd) ** 2 + (1.2533 * mad / math.sqrt(n_eff)) ** 2)
    if view is not None:
        inputs["view_off_nadir"] = view.off_nadir_deg
        inputs["view_azimuth"] = view.azimuth_deg
    try:
        h, sigma = height_from_length(
            med,
            sun_elevation,
            length_sigma_m=sigma_len,
            elevation_sigma_deg=elevation_sigma_deg,
            dz_sigma_m=dz_sigma,
            view=view,
            shadow_azimuth=(az + 180.0) % 360.0,
        )
    except AnalysisError as exc:
        return _null(index, ident, "no_shadow_found", method, detail=str(exc), **inputs)
    inputs["grid_azimuth"] = round(az, 4)
    return HeightResult(index, ident, h, sigma, med, method, None, "", inputs)


def _dominant(failures: Counter[str]) -> str:
    if not failures:
        return "no_shadow_found"
    # a shadow that leaves the image or meets another building explains the others
    for key in ("leaves_image", "blocked"):
        if failures.get(key, 0) >= 0.25 * sum(failures.values()):
            return _FAILURE_REASON[key]
    key = failures.most_common(1)[0][0]
    return _FAILURE_REASON.get(key, "no_shadow_found")


def heights_from_shadows(
    image: NDArray[Any],
    transform: Affine,
    footprints: Sequence[Polygon | None],
    *,
    sun: tuple[float, float] | Sequence[tuple[float, float]],
    ids: Sequence[str | None] | None = None,
    casters: Sequence[Polygon | None] | None = None,
    ridges: Sequence[bool] | None = None,
    blockers: Sequence[BaseGeometry] = (),
    **kwargs: Any,
) -> list[HeightResult]:
    """:func:`height_from_shadow` for every footprint, in order; each one's shadow must avoid the others.

    ``sun`` is one ``(azimuth, elevation)`` or one per footprint. A None footprint (unreadable
    geometry) gives a null result. Footprints flagged in ``ridges`` (berms, spoil heaps) are
    measured with :func:`height_from_ridge_shadow`. ``blockers`` are footprints that are not
    measured but that shadows must not fall on either (portal cuts, pits).
    """
    n = len(footprints)
    suns: list[tuple[float, float]]
    if len(sun) == 2 and not isinstance(sun[0], tuple | list):
        suns = [(float(sun[0]), float(sun[1]))] * n  # type: ignore[arg-type]
    else:
        suns = [(float(a), float(e)) for a, e in sun]  # type: ignore[misc]
    if len(suns) != n:
        raise InputError(f"{len(suns)} sun angles for {n} footprints")
    ids = list(ids) if ids is not None else [None] * n
    flags = list(ridges) if ridges is not None else [False] * n
    if len(flags) != n:
        raise InputError(f"{len(flags)} ridge flags for {n} footprints")
    valid = [f for f in footprints if f is not None] + list(blockers)
    tree = shapely.STRtree(valid) if valid else None
    out: list[HeightResult] = []
    for i, fp in enumerate(footprints):
        if fp is None:
            out.append(
                _null(i, ids[i], "footprint_outside_image", "shadow", detail="no polygon geometry")
            )
            continue
        az, el = suns[i]
        others: list[BaseGeometry] = []
        if tree is not None and el > 0:
            reach = fp.buffer(kwargs.get("max_height_m", 150.0) / math.tan(math.radians(el)))
            others = [valid[j] for j in tree.query(reach) if valid[j] is not fp]
        caster = casters[i] if casters is not None else None
        if flags[i]:
            ridge_kw = {k: v for k, v in kwargs.items() if k != "footprint_sigma_px"}
            out.append(
                height_from_ridge_shadow(
                    image,
                    transform,
                    fp,
                    sun_azimuth=float(az),
                    sun_elevation=float(el),
                    others=others,
                    index=i,
                    ident=ids[i],
                    **ridge_kw,
                )
            )
            continue
        out.append(
            height_from_shadow(
                image,
                transform,
                fp,
                sun_azimuth=float(az),
                sun_elevation=float(el),
                others=others,
                caster=caster,
                index=i,
                ident=ids[i],
                **kwargs,
            )
        )
    return out


def height_from_shadow_tip(
    base: tuple[float, float],
    tip: tuple[float, float],
    *,
    sun_azimuth: float,
    sun_elevation: float,
    position_sigma_m: float = 0.5,
    elevation_sigma_deg: float = 0.1,
    dz_m: float = 0.0,
    dz_sigma_m: float = 0.0,
    view: ViewGeometry | None = None,
) -> HeightResult:
    """Height from a base point and a shadow tip given by hand (lon/lat).

    The length used is the component of base->tip along the shadow azimuth; the angle between
    them is reported (more than ~10 degrees means the points do not follow the shadow).
    """
    check_lonlat(*base, what="base")
    check_lonlat(*tip, what="tip")
    method = "shadow_tip"
    inputs: dict[str, Any] = {"sun_azimuth": sun_azimuth, "sun_elevation": sun_elevation}
    if sun_elevation <= 0.0:
        return _null(0, None, "sun_below_horizon", method, **inputs)
    fwd, _, dist = GEOD.inv(base[0], base[1], tip[0], tip[1])
    shadow_az = (sun_azimuth + 180.0) % 360.0
    off = (float(fwd) - shadow_az + 180.0) % 360.0 - 180.0
    length = float(dist) * math.cos(math.radians(off))
    inputs.update(distance_m=round(float(dist), 3), off_azimuth_deg=round(off, 2))
    if length <= 0:
        raise InputError(
            f"the tip is not on the shadow side of the base (base->tip azimuth {fwd:.1f}, shadow "
            f"azimuth {shadow_az:.1f}); check the points' order or the sun azimuth"
        )
    if abs(off) > 10.0:
        logger.warning("base->tip is %.1f degrees off the shadow azimuth", off)
    h, sigma = height_from_length(
        length,
        sun_elevation,
        length_sigma_m=math.sqrt(2.0) * position_sigma_m,
        elevation_sigma_deg=elevation_sigma_deg,
        dz_m=dz_m,
        dz_sigma_m=dz_sigma_m,
        view=view,
        shadow_azimuth=shadow_az,
    )
    return HeightResult(0, None, h, sigma, length, method, None, "", inputs)


# --- distances and areas -----------------------------------------------------------------------


def berm_crest(footprint: BaseGeometry, crest_width: float = 2.0) -> BaseGeometry | None:
    """The crest outline of a berm whose base is ``footprint``: the base shrunk to the crest width.

    A berm's shadow is cast by its crest, not by its base edge; pass the crest as the ``caster``.
    """
    rect = footprint.minimum_rotated_rectangle
    xy = np.asarray(rect.exterior.coords)
    width = min(float(np.hypot(*(xy[1] - xy[0]))), float(np.hypot(*(xy[2] - xy[1]))))
    inset = (width - crest_width) / 2.0
    if inset <= 0:
        return None
    c = footprint.buffer(-inset, join_style="mitre")
    if c.is_empty:
        return None
    return c if c.geom_type == "Polygon" else max(c.geoms, key=lambda p: p.area)


def geodesic_path_length(
    points: Sequence[tuple[float, float]], *, position_sigma_m: float = 0.0
) -> Quantity:
    """Geodesic length of a lon/lat path; each vertex has an independent position error."""
    if len(points) < 2:
        raise InputError(f"a distance needs at least two points, got {len(points)}")
    for i, (lon, lat) in enumerate(points):
        check_lonlat(lon, lat, what=f"point {i + 1}")
    lons = [p[0] for p in points]
    lats = [p[1] for p in points]
    azimuths, _, segs = GEOD.inv(lons[:-1], lats[:-1], lons[1:], lats[1:])
    seg_list = [float(s) for s in np.atleast_1d(segs)]
    # interior vertices move two segments in opposite senses; a rough first-order bound
    sigma = position_sigma_m * math.sqrt(2.0 + max(0, len(points) - 2))
    return Quantity(
        sum(seg_list),
        sigma,
        "m",
        "geodesic_wgs84",
        {
            "segments_m": [round(s, 3) for s in seg_list],
            # the direction of each segment at its start (degrees from true north): a measured
            # portal width or runway length keeps which way it was measured
            "azimuths_deg": [round(float(a) % 360.0, 2) for a in np.atleast_1d(azimuths)],
            "position_sigma_m": position_sigma_m,
        },
    )


def geodesic_polygon_area(polygon: BaseGeometry, *, position_sigma_m: float = 0.0) -> Quantity:
    """Geodesic area of a lon/lat polygon; uncertainty from independent vertex position errors.

    The variance is ``sigma^2 * sum((x[i+1]-x[i-1])^2 + (y[i+1]-y[i-1])^2) / 4`` (shoelace
    gradient) computed in an azimuthal equidistant projection centred on the polygon.
    """
    if polygon.geom_type not in ("Polygon", "MultiPolygon") or polygon.is_empty:
        raise GeometryError(f"an area needs a polygon, got {polygon.geom_type}")
    if not polygon.is_valid:  # a ring that crosses itself: its lobes' areas cancel out
        raise GeometryError(
            f"the polygon is invalid ({shapely.is_valid_reason(polygon)}), so its area is "
            "ambiguous; give at least three distinct vertices in order around the outline"
        )
    area = geodesic_area(polygon)
    perim = float(GEOD.geometry_length(polygon))
    var = 0.0
    if position_sigma_m > 0:
        c = polygon.centroid
        local = to_crs(polygon, "EPSG:4326", aeqd_crs(c.x, c.y))
        parts = getattr(local, "geoms", [local])
        for part in parts:
            for ring in [part.exterior, *part.interiors]:
                xy = np.asarray(ring.coords)[:-1]
                nxt, prv = np.roll(xy, -1, axis=0), np.roll(xy, 1, axis=0)
                var += float(np.sum((nxt - prv) ** 2)) / 4.0
    return Quantity(
        area,
        position_sigma_m * math.sqrt(var),
        "m2",
        "geodesic_wgs84",
        {"perimeter_m": round(perim, 3), "position_sigma_m": position_sigma_m},
    )
