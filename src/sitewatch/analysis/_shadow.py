"""Shadow segmentation and sub-pixel edge location along rays parallel to the sun azimuth.

Everything here works in the map coordinates of one image window (a projected CRS, metres) and
on plain arrays. :func:`cast_rays` samples the brightness along rays that start on the
anti-sun-facing edges of a footprint and run in the shadow direction; :func:`shadow_ends` finds,
for each ray, where the shadow ends, to a fraction of a pixel, or why it cannot.

Geometry of the rays: for a convex flat-topped object every ray starting on an edge whose outward
normal points away from the sun crosses exactly ``L = h / tan(elevation)`` of shadow (the shadow is
the footprint swept by ``L`` along the shadow direction, minus the footprint), so the median of the
per-ray lengths estimates ``L`` and their scatter measures how well the edge was located.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from affine import Affine
from numpy.typing import NDArray
from scipy import ndimage
from shapely.geometry import LineString, Polygon
from shapely.geometry.base import BaseGeometry

__all__ = [
    "RayFailure",
    "Rays",
    "RidgeSpans",
    "cast_rays",
    "otsu_dark_threshold",
    "ridge_shadow_spans",
    "shadow_ends",
    "shadow_threshold",
    "shorth_location",
]

RayFailure = str
"""Why one ray gave no length: ``no_shadow``, ``leaves_image``, ``blocked``, ``no_end``, ``reenters``."""


@dataclass(frozen=True)
class Rays:
    """Rays from a footprint's anti-sun edges: start points (map x/y), direction, samples."""

    x0: NDArray[np.float64]  # (n,)
    y0: NDArray[np.float64]
    direction: tuple[float, float]  # unit vector (east, north) in map units
    t: NDArray[np.float64]  # (k,) distances along the ray in map units
    values: NDArray[np.float64]  # (n, k) brightness, NaN outside the image or nodata
    blocked: NDArray[np.bool_]  # (n, k) inside another footprint
    own: NDArray[np.bool_]  # (n, k) back inside the own footprint
    skip: NDArray[np.int64]  # (n,) samples to skip at the start (hidden under the building)

    @property
    def step(self) -> float:
        return float(self.t[1] - self.t[0]) if self.t.size > 1 else 0.0


def otsu_dark_threshold(
    values: NDArray[np.float64], *, min_separation: float = 3.0
) -> float | None:
    """Otsu threshold separating dark (shadow) from bright pixels, or None if there is no contrast.

    The two classes must be clearly bimodal: Ashman's ``D = sqrt(2) |m1 - m0| / sqrt(s0^2 + s1^2)``
    of at least ``min_separation`` (a unimodal histogram split in two gives about 2.7).
    """
    from skimage.filters import threshold_otsu

    v = values[np.isfinite(values)]
    if v.size < 16 or float(np.ptp(v)) <= 0.0:
        return None
    thr = float(threshold_otsu(v))  # type: ignore[no-untyped-call]
    dark, bright = v[v < thr], v[v >= thr]
    if dark.size < 4 or bright.size < 4:
        return None
    spread = math.sqrt(float(dark.var()) + float(bright.var()))
    sep = math.sqrt(2.0) * (float(bright.mean()) - float(dark.mean())) / max(spread, 1e-12)
    return thr if sep >= min_separation else None


def shadow_threshold(
    values: NDArray[np.float64], *, min_separation: float = 3.0, min_separation_3: float = 3.75
) -> float | None:
    """Threshold below which a pixel is in shadow, in a scene of three or more brightness classes.

    Shadows are the darkest class. Around an earthwork the histogram often has three (shadow,
    vegetation or bare ground, a bright lit slope): the two-class Otsu split then either
    separates the bright class from the rest (the dark side is split again when it is itself
    clearly bimodal) or fails the bimodality test, in which case the lower of the three-class
    Otsu thresholds is used if the two darkest classes are clearly apart: Ashman's D of at least
    ``min_separation_3`` (splitting a unimodal sample in three gives up to about 3.4).
    """
    thr = otsu_dark_threshold(values, min_separation=min_separation)
    v = values[np.isfinite(values)]
    if thr is not None:
        lower = otsu_dark_threshold(v[v < thr], min_separation=min_separation)
        return lower if lower is not None else thr
    if v.size < 32 or float(np.ptp(v)) <= 0.0:
        return None
    from skimage.filters import threshold_multiotsu

    t1, t2 = (float(x) for x in threshold_multiotsu(v, classes=3))  # type: ignore[no-untyped-call]
    dark, mid = v[v < t1], v[(v >= t1) & (v < t2)]
    if dark.size < 4 or mid.size < 4:
        return None
    spread = math.sqrt(float(dark.var()) + float(mid.var()))
    sep = math.sqrt(2.0) * (float(mid.mean()) - float(dark.mean())) / max(spread, 1e-12)
    return t1 if sep >= min_separation_3 else None


def shorth_location(values: NDArray[np.float64]) -> tuple[float, float]:
    """Robust location and scale of a sample with up to half of it contaminated on one side.

    The location is the median of the shortest interval holding half of the values (the shorth,
    Rousseeuw's least median of squares location); the scale is that interval's length over
    1.349 (a normal sample's interquartile range in standard deviations).
    """
    x = np.sort(values[np.isfinite(values)])
    n = x.size
    if n == 0:
        return float("nan"), float("nan")
    h = n // 2 + 1
    if h >= n:
        return float(np.median(x)), float(np.ptp(x)) / 1.349
    widths = x[h - 1 :] - x[: n - h + 1]
    j = int(np.argmin(widths))
    return float(np.median(x[j : j + h])), float(widths[j]) / 1.349


def _edge_samples(
    footprint: Polygon, d: tuple[float, float], spacing: float, lateral_margin: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Points on the footprint boundary whose outward normal faces the shadow direction."""
    from shapely.geometry.polygon import orient

    ring = np.asarray(orient(footprint, 1.0).exterior.coords, dtype=np.float64)  # CCW
    dx, dy = d
    px, py = -dy, dx  # lateral axis
    lateral = ring[:, 0] * px + ring[:, 1] * py
    wmin, wmax = float(lateral.min()), float(lateral.max())
    xs: list[NDArray[np.float64]] = []
    ys: list[NDArray[np.float64]] = []
    for (xa, ya), (xb, yb) in itertools.pairwise(ring):
        ex, ey = xb - xa, yb - ya
        length = float(np.hypot(ex, ey))
        if length == 0.0:
            continue
        nx, ny = ey / length, -ex / length  # outward normal of a CCW ring
        if nx * dx + ny * dy < 0.25:  # edge does not face the shadow direction
            continue
        n = max(1, int(length // spacing))
        f = (np.arange(n) + 0.5) / n
        xs.append(xa + f * ex)
        ys.append(ya + f * ey)
    if not xs:
        return np.empty(0), np.empty(0)
    x = np.concatenate(xs)
    y = np.concatenate(ys)
    w = x * px + y * py
    keep = (w > wmin + lateral_margin) & (w < wmax - lateral_margin)
    return x[keep], y[keep]


def _sample(
    image: NDArray[np.float64],
    inv: Affine,
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    order: int,
) -> NDArray[np.float64]:
    col, row = inv @ (x, y)  # type: ignore[operator]
    # pixel centres are at +0.5; map_coordinates indexes pixel centres at integers
    coords = np.stack([np.asarray(row) - 0.5, np.asarray(col) - 0.5])
    out: NDArray[np.float64] = ndimage.map_coordinates(
        image, coords, order=order, mode="constant", cval=np.nan, prefilter=False
    )
    return out


def _sample_rays(
    image: NDArray[np.float64],
    transform: Affine,
    x0: NDArray[np.float64],
    y0: NDArray[np.float64],
    direction: tuple[float, float],
    t: NDArray[np.float64],
    others_mask: NDArray[np.bool_] | None,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]:
    """Map x/y, brightness and other-footprint flags at distances ``t`` along rays from x0/y0."""
    inv = ~transform
    dx, dy = direction
    xs = x0[:, None] + t[None, :] * dx
    ys = y0[:, None] + t[None, :] * dy
    values = _sample(image, inv, xs.ravel(), ys.ravel(), order=1).reshape(xs.shape)
    if others_mask is not None and others_mask.any():
        hit = _sample(others_mask.astype(np.float64), inv, xs.ravel(), ys.ravel(), order=0)
        blocked = (np.nan_to_num(hit, nan=0.0) > 0.5).reshape(xs.shape)
    else:
        blocked = np.zeros(xs.shape, dtype=bool)
    return xs, ys, values, blocked


def cast_rays(
    image: NDArray[np.float64],
    transform: Affine,
    footprint: Polygon,
    direction: tuple[float, float],
    *,
    max_length: float,
    gsd: float,
    others: BaseGeometry | None = None,
    others_mask: NDArray[np.bool_] | None = None,
    hidden: Polygon | None = None,
    spacing_px: float = 0.5,
    step_px: float = 0.25,
    lateral_margin_px: float = 1.5,
) -> Rays:
    """Sample ``image`` along rays from the anti-sun edges of ``footprint`` in ``direction``.

    ``image`` holds the brightness of a window (NaN where there is no data), ``transform`` maps
    its pixel corners to map coordinates. ``others_mask`` marks pixels of other footprints.
    """
    x0, y0 = _edge_samples(footprint, direction, spacing_px * gsd, lateral_margin_px * gsd)
    step = step_px * gsd
    t = np.arange(step * 0.5, max_length + step, step)
    xs, ys, values, blocked = _sample_rays(image, transform, x0, y0, direction, t, others_mask)
    own_mask = np.zeros(xs.shape, dtype=bool)
    if not footprint.convex_hull.equals(footprint):
        import shapely

        own_mask = shapely.contains_xy(footprint, xs, ys)
    del others
    skip = np.zeros(x0.shape, dtype=np.int64)
    if hidden is not None:
        import shapely

        inside = shapely.contains_xy(hidden, xs, ys)
        # samples until the ray leaves the (displaced) building for good
        last = np.where(inside.any(axis=1), inside.shape[1] - np.argmax(inside[:, ::-1], axis=1), 0)
        skip = last.astype(np.int64)
    return Rays(
        x0=x0,
        y0=y0,
        direction=direction,
        t=t,
        values=values,
        blocked=blocked,
        own=own_mask,
        skip=skip,
    )


def _refine_edge(profile: NDArray[np.float64], k: int, half: int) -> float:
    """Sub-sample position of the steepest rise near index ``k`` (parabola through the peak)."""
    grad = np.gradient(profile)
    lo, hi = max(1, k - half), min(profile.size - 2, k + half)
    if hi < lo:
        return float(k)
    seg = grad[lo : hi + 1]
    if not np.isfinite(seg).any():
        return float(k)
    j = lo + int(np.nanargmax(seg))
    g0, g1, g2 = grad[j - 1], grad[j], grad[j + 1]
    denom = g0 - 2.0 * g1 + g2
    if not np.isfinite(denom) or denom >= 0.0:
        return float(j)
    delta = 0.5 * (g0 - g2) / denom
    return float(j + float(np.clip(delta, -1.0, 1.0)))


def shadow_ends(
    rays: Rays, threshold: float, *, gsd: float, smooth_px: float = 0.5, end_fraction: float = 0.5
) -> tuple[NDArray[np.float64], Counter[RayFailure]]:
    """Shadow length (map units) per ray, NaN where it failed; and a count of the failures.

    A ray must start dark (the median of its first pixel is below ``threshold``); its shadow ends
    where the smoothed profile first rises above ``threshold``; the end is then placed at the
    steepest rise of the profile (gradient peak, parabola fit) within a pixel and a half.
    """
    n = rays.values.shape[0]
    lengths = np.full(n, np.nan)
    failures: Counter[RayFailure] = Counter()
    if n == 0:
        return lengths, failures
    step = rays.step
    per_px = gsd / step
    width = max(1, round(smooth_px * per_px))
    filled = np.where(np.isfinite(rays.values), rays.values, np.inf)
    smooth = ndimage.uniform_filter1d(filled, size=width, axis=1, mode="nearest")
    half = max(2, round(1.5 * per_px))
    for i in range(n):
        prof = smooth[i]
        s0 = int(rays.skip[i])
        start = slice(s0 + max(1, int(0.5 * per_px)), s0 + max(2, int(1.5 * per_px)))
        head = prof[start]
        if head.size == 0:
            failures["leaves_image"] += 1
            continue
        if not np.all(np.isfinite(head)):
            failures["leaves_image"] += 1
            continue
        level = float(np.median(head))
        if level >= threshold:
            failures["no_shadow"] += 1
            continue
        # the shadow ends where the profile rises half-way from the darkest level seen so far
        # to the threshold (ground just beyond a shadow can be darker than the scene threshold)
        tail = prof[start.stop :]
        floor = np.minimum(np.minimum.accumulate(np.where(np.isfinite(tail), tail, np.inf)), level)
        rises = floor + end_fraction * (threshold - floor)
        above = np.nonzero(tail >= rises)[0]
        if above.size == 0:
            failures["no_end"] += 1
            continue
        k = start.stop + int(above[0])
        rise = float(rises[int(above[0])]) if np.isfinite(rises[int(above[0])]) else threshold
        if not np.isfinite(prof[k]):
            failures["leaves_image"] += 1
            continue
        if rays.blocked[i, : k + half + 1].any():
            failures["blocked"] += 1
            continue
        if rays.own[i, s0 : k + 1].any():
            failures["reenters"] += 1
            continue
        raw = rays.values[i]
        if not np.all(np.isfinite(raw[max(0, k - half) : k + half + 1])):
            failures["leaves_image"] += 1
            continue
        pos = _refine_edge(np.nan_to_num(raw, nan=rise), k, half)
        lengths[i] = float(np.interp(pos, np.arange(rays.t.size), rays.t))
    return lengths, failures


@dataclass(frozen=True)
class RidgeSpans:
    """Shadow spans across a ridge, one per ray: where the shadow starts and ends (map x/y)."""

    x0: NDArray[np.float64]  # (n,) ray starts, on the sun-facing edge of the footprint
    y0: NDArray[np.float64]
    start: NDArray[np.float64]  # (n,) distance along the ray to the start of the shadow, or NaN
    end: NDArray[np.float64]  # (n,) distance to its end, or NaN
    toe: NDArray[np.float64]  # (n,) distance to where the ray leaves the footprint
    failure: list[RayFailure | None]


def ridge_shadow_spans(
    image: NDArray[np.float64],
    transform: Affine,
    footprint: Polygon,
    direction: tuple[float, float],
    threshold: float,
    *,
    max_length: float,
    gsd: float,
    others_mask: NDArray[np.bool_] | None = None,
    spacing_px: float = 0.5,
    step_px: float = 0.25,
    lateral_margin_px: float = 1.5,
    smooth_px: float = 0.5,
    end_fraction: float = 0.5,
) -> RidgeSpans:
    """The shadow a ridge (berm, spoil heap, embankment) casts, measured across it.

    Rays start on the sun-facing edge of ``footprint`` and run in the shadow ``direction``
    across the ridge and beyond. On each, the sun-facing slope is lit; the shadow starts at the
    crest (where the lee slope, steeper than the sun, falls into its own shadow) and ends where
    the shadow cast on the ground beyond it ends. Both edges are placed to a fraction of a pixel
    (steepest fall, steepest rise), so the length between them does not depend on where the
    footprint or the crest were drawn. Failures per ray: ``shadowed`` (the sun-facing slope is
    dark), ``no_shadow`` (no dark span starts on the ridge), ``lit_slope`` (the dark span ends
    before the toe of the lee slope: a slope facing away from a sun higher than it is dim but
    casts no shadow), ``no_end``,
    ``leaves_image``, ``blocked`` (the shadow meets another footprint).
    """
    import shapely

    x0, y0 = _edge_samples(
        footprint, (-direction[0], -direction[1]), spacing_px * gsd, lateral_margin_px * gsd
    )
    step = step_px * gsd
    minx, miny, maxx, maxy = footprint.bounds
    across = math.hypot(maxx - minx, maxy - miny)
    t = np.arange(step * 0.5, across + max_length + step, step)
    xs, ys, values, blocked = _sample_rays(image, transform, x0, y0, direction, t, others_mask)
    n = x0.size
    start = np.full(n, np.nan)
    end = np.full(n, np.nan)
    toe = np.full(n, np.nan)
    failure: list[RayFailure | None] = [None] * n
    if n == 0:
        return RidgeSpans(x0, y0, start, end, toe, failure)
    inside = shapely.contains_xy(footprint, xs, ys)
    per_px = gsd / step
    width = max(1, round(smooth_px * per_px))
    filled = np.where(np.isfinite(values), values, np.inf)
    smooth = ndimage.uniform_filter1d(filled, size=width, axis=1, mode="nearest")
    half = max(2, round(1.5 * per_px))
    h0, h1 = max(1, int(0.5 * per_px)), max(2, int(1.5 * per_px))
    for i in range(n):
        prof = smooth[i]
        raw = values[i]
        if not np.all(np.isfinite(raw[:h1])):
            failure[i] = "leaves_image"
            continue
        if float(np.median(prof[h0:h1])) < threshold:
            failure[i] = "shadowed"
            continue
        ins = np.nonzero(inside[i])[0]
        exit_k = int(ins[-1]) if ins.size else h1
        toe[i] = float(t[exit_k])
        dark = np.nonzero(prof[h1 : exit_k + 1] < threshold)[0]
        if dark.size == 0:
            failure[i] = "no_shadow"
            continue
        k0 = h1 + int(dark[0])
        s_pos = _refine_edge(-np.nan_to_num(raw, nan=threshold), k0, half)
        # the end: as in shadow_ends, half-way up from the darkest level seen to the threshold
        tail = prof[k0 + h1 :]
        floor = np.minimum.accumulate(np.where(np.isfinite(tail), tail, np.inf))
        rises = floor + end_fraction * (threshold - floor)
        above = np.nonzero(tail >= rises)[0]
        if above.size == 0:
            failure[i] = "no_end"
            continue
        k = k0 + h1 + int(above[0])
        if not np.all(np.isfinite(raw[max(0, k - half) : k + half + 1])) or k + half >= t.size:
            failure[i] = "leaves_image"
            continue
        if blocked[i, k0 : k + half + 1].any():
            failure[i] = "blocked"
            continue
        rise = float(rises[int(above[0])]) if np.isfinite(rises[int(above[0])]) else threshold
        e_pos = _refine_edge(np.nan_to_num(raw, nan=rise), k, half)
        if e_pos < exit_k - per_px:
            # a shadow cast by the crest always runs past the toe of a lee slope steeper than
            # the sun; a dark span ending on the slope is a dimly lit slope, not a shadow
            failure[i] = "lit_slope"
            continue
        grid = np.arange(t.size)
        start[i] = float(np.interp(s_pos, grid, t))
        end[i] = float(np.interp(e_pos, grid, t))
    return RidgeSpans(x0, y0, start, end, toe, failure)


# --- helpers of mensuration.height_from_shadow ------------------------------------------------


def _pixel_window(
    transform: Affine, shape: tuple[int, int], geom: BaseGeometry
) -> tuple[slice, slice] | None:
    inv = ~transform
    minx, miny, maxx, maxy = geom.bounds
    cols, rows = zip(*[inv @ (x, y) for x, y in ((minx, miny), (maxx, maxy))], strict=True)
    c0, c1 = math.floor(min(cols)), math.ceil(max(cols))
    r0, r1 = math.floor(min(rows)), math.ceil(max(rows))
    c0, r0 = max(c0, 0), max(r0, 0)
    c1, r1 = min(c1, shape[1]), min(r1, shape[0])
    if c1 <= c0 or r1 <= r0:
        return None
    return slice(r0, r1), slice(c0, c1)


def _rasterize(
    geoms: Sequence[BaseGeometry], transform: Affine, shape: tuple[int, int]
) -> NDArray[np.bool_]:
    from rasterio.features import rasterize

    if not geoms or shape[0] == 0 or shape[1] == 0:
        return np.zeros(shape, dtype=bool)
    out = rasterize(
        [(g, 1) for g in geoms],
        out_shape=shape,
        transform=transform,
        fill=0,
        dtype="uint8",
        all_touched=True,
    )
    return np.asarray(out, dtype=bool)


def _gsd(transform: Affine) -> float:
    return math.sqrt(abs(transform.a * transform.e - transform.b * transform.d))


def _stands_in_shadow(
    sub: NDArray[np.float64],
    sub_t: Affine,
    footprint: Polygon,
    d: tuple[float, float],
    thr: float,
    gsd: float,
) -> bool:
    """Whether the ground just beyond the footprint's sun-facing edges is dark too."""
    back = cast_rays(sub, sub_t, footprint, (-d[0], -d[1]), max_length=3.0 * gsd, gsd=gsd)
    if back.x0.size == 0:
        return False
    head = back.values[:, (back.t >= 1.0 * gsd) & (back.t <= 2.5 * gsd)]
    rows = np.isfinite(head).any(axis=1)
    if not rows.any():
        return False
    level = np.nanmedian(head[rows], axis=1)
    return bool(level.size) and float(np.mean(level < thr)) > 0.3


def _bounds(transform: Affine, shape: tuple[int, ...]) -> tuple[float, float, float, float]:
    xs, ys = zip(*[transform @ (c, r) for c, r in ((0, 0), (shape[1], shape[0]))], strict=True)
    return (min(xs), min(ys), max(xs), max(ys))


def _caster_offsets(
    caster: Polygon, x0: NDArray[np.float64], y0: NDArray[np.float64], d: tuple[float, float]
) -> NDArray[np.float64]:
    """Distance back from each ray start (against ``d``) to the caster's boundary; NaN if missed."""
    out = np.full(x0.shape, np.nan)
    boundary = caster.exterior
    reach = 2.0 * math.sqrt(caster.envelope.area) + 1.0
    for i, (x, y) in enumerate(zip(x0, y0, strict=True)):
        seg = LineString([(x, y), (x - d[0] * reach, y - d[1] * reach)])
        hit = seg.intersection(boundary)
        if hit.is_empty:
            continue
        pts = np.asarray(
            [p.coords[0] for p in getattr(hit, "geoms", [hit]) if p.geom_type == "Point"]
        )
        if pts.size == 0:
            continue
        out[i] = float(np.min(np.hypot(pts[:, 0] - x, pts[:, 1] - y)))
    return out


def _terrain_dz(
    dem: NDArray[np.float64],
    transform: Affine,
    x0: NDArray[np.float64],
    y0: NDArray[np.float64],
    lengths: NDArray[np.float64],
    d: tuple[float, float],
) -> float:
    diff = _terrain_dz_rays(dem, transform, x0, y0, lengths, d)
    diff = diff[np.isfinite(diff)]
    return float(np.median(diff)) if diff.size else float("nan")


def _terrain_dz_rays(
    dem: NDArray[np.float64],
    transform: Affine,
    x0: NDArray[np.float64],
    y0: NDArray[np.float64],
    lengths: NDArray[np.float64],
    d: tuple[float, float],
) -> NDArray[np.float64]:
    """Ground elevation at each shadow tip minus that at its ray's start (NaN off the DEM)."""
    inv = ~transform

    def z(x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float64]:
        col, row = inv @ (x, y)
        out: NDArray[np.float64] = ndimage.map_coordinates(
            dem,
            np.stack([np.asarray(row) - 0.5, np.asarray(col) - 0.5]),
            order=1,
            mode="constant",
            cval=np.nan,
        )
        return out

    diff: NDArray[np.float64] = z(x0 + d[0] * lengths, y0 + d[1] * lengths) - z(x0, y0)
    return diff
