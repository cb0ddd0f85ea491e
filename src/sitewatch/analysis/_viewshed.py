"""Vectorised line-of-sight computations on a metric DEM grid.

:func:`radial_viewshed` sweeps rays from the observer to beyond the farthest cell (one ray per
perimeter cell at the largest radius, so neighbouring rays are less than a pixel apart everywhere),
samples the terrain bilinearly along each ray, keeps the running maximum of the elevation angle
and then tests every cell against the horizon of its nearest ray just before the cell's distance
(an R2-style sweep evaluated at the cells' exact positions). :func:`horizon_tangents` gives the
maximum elevation angle seen from many points along one azimuth.

Earth curvature and refraction lower a target at distance ``d`` by ``(1 - k) d^2 / (2 R)``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

__all__ = ["EARTH_RADIUS_M", "REFRACTION_K", "horizon_tangents", "radial_viewshed"]

EARTH_RADIUS_M = 6_371_008.8
REFRACTION_K = 0.13
"""Coefficient of refraction of a standard atmosphere (visible light)."""


def _bilinear(
    z: NDArray[np.float64], rows: NDArray[np.float64], cols: NDArray[np.float64]
) -> NDArray[np.float64]:
    out: NDArray[np.float64] = ndimage.map_coordinates(
        z, np.stack([rows, cols]), order=1, mode="constant", cval=np.nan, prefilter=False
    )
    return out


def _drop(dist: NDArray[np.floating[Any]], curvature: bool, k: float) -> NDArray[np.float64]:
    if not curvature:
        return np.zeros(dist.shape)
    return np.asarray((1.0 - k) * dist**2 / (2.0 * EARTH_RADIUS_M), dtype=np.float64)


def radial_viewshed(
    z: NDArray[np.float64],
    observer_rc: tuple[float, float],
    cell: tuple[float, float],
    *,
    observer_height: float,
    target_height: float = 0.0,
    max_distance: float | None = None,
    curvature: bool = True,
    refraction_k: float = REFRACTION_K,
) -> NDArray[np.bool_]:
    """Visibility of every cell of ``z`` from an observer at fractional (row, col) ``observer_rc``.

    ``z`` is elevation in metres (NaN = no data, treated as not visible and transparent), ``cell``
    the (x, y) pixel size in metres. Returns a boolean grid (cells beyond ``max_distance`` False).
    """
    rows, cols = z.shape
    dx, dy = cell
    r0, c0 = observer_rc
    zf = np.where(np.isfinite(z), z, np.nan)
    here = ndimage.map_coordinates(
        zf,
        [[min(max(r0 - 0.5, 0.0), rows - 1.0)], [min(max(c0 - 0.5, 0.0), cols - 1.0)]],
        order=1,
        mode="nearest",
        prefilter=False,
    )
    z_obs = float(here[0]) + observer_height
    if not math.isfinite(z_obs):
        raise ValueError("the observer stands on a no-data cell of the DEM")
    # distances of the four corners bound every ray
    corners = [(-0.5, -0.5), (-0.5, cols - 0.5), (rows - 0.5, -0.5), (rows - 0.5, cols - 0.5)]
    reach = max(math.hypot((c - (c0 - 0.5)) * dx, (r - (r0 - 0.5)) * dy) for r, c in corners)
    if max_distance is not None:
        reach = min(reach, max_distance)
    step = min(dx, dy)
    n_steps = max(2, math.ceil(reach / step) + 1)
    n_rays = max(64, math.ceil(2.0 * math.pi * reach / step))
    theta = np.arange(n_rays) * (2.0 * math.pi / n_rays)
    s = np.arange(1, n_steps + 1) * step  # distance of sample k (index k-1)
    ex, ny = np.sin(theta), np.cos(theta)
    # sample in chunks of rays to bound memory
    cummax = np.empty((n_rays, n_steps), dtype=np.float32)
    chunk = max(1, 4_000_000 // n_steps)
    drop = _drop(s, curvature, refraction_k)
    for a in range(0, n_rays, chunk):
        b = min(n_rays, a + chunk)
        cc = (c0 - 0.5) + np.outer(ex[a:b], s) / dx
        rr = (r0 - 0.5) - np.outer(ny[a:b], s) / dy
        zz = _bilinear(zf, rr.ravel(), cc.ravel()).reshape(rr.shape)
        tan = (zz - drop[None, :] - z_obs) / s[None, :]
        tan = np.where(np.isfinite(tan), tan, -np.inf)
        cummax[a:b] = np.maximum.accumulate(tan, axis=1)
    # every cell against the horizon of its ray just before it
    rr_c, cc_c = np.mgrid[0:rows, 0:cols]
    xm = (cc_c - (c0 - 0.5)) * dx
    ym = ((r0 - 0.5) - rr_c) * dy
    dist = np.hypot(xm, ym)
    az = np.mod(np.arctan2(xm, ym), 2.0 * math.pi)
    ray = np.rint(az / (2.0 * math.pi / n_rays)).astype(np.int64) % n_rays
    k = np.floor((dist - 0.5 * step) / step).astype(np.int64) - 1  # last sample before the cell
    horizon = np.full(z.shape, -np.inf, dtype=np.float64)
    has = k >= 0
    horizon[has] = cummax[ray[has], np.minimum(k[has], n_steps - 1)]
    with np.errstate(divide="ignore", invalid="ignore"):
        tan_cell = (zf + target_height - _drop(dist, curvature, refraction_k) - z_obs) / dist
    visible = (tan_cell >= horizon) | (dist < 0.5 * step)
    visible &= np.isfinite(zf)
    if max_distance is not None:
        visible &= dist <= max_distance
    return np.asarray(visible, dtype=bool)


def horizon_tangents(
    z: NDArray[np.float64],
    rc: NDArray[np.float64],
    azimuth_deg: float,
    cell: tuple[float, float],
    *,
    max_distance: float,
    height: float = 0.0,
    curvature: bool = True,
    refraction_k: float = REFRACTION_K,
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Largest elevation angle (as a tangent) of the terrain seen from points along an azimuth.

    ``rc`` holds (n, 2) fractional (row, col) positions; ``height`` is the point's height above the
    ground. Returns the tangents and whether the search ran off the DEM before ``max_distance``.
    """
    dx, dy = cell
    step = min(dx, dy)
    s = np.arange(1, math.ceil(max_distance / step) + 1) * step
    a = math.radians(azimuth_deg)
    zf = np.where(np.isfinite(z), z, np.nan)
    r0 = rc[:, 0] - 0.5
    c0 = rc[:, 1] - 0.5
    z0 = _bilinear(zf, r0, c0) + height
    out = np.full(rc.shape[0], -np.inf)
    ran_off = np.zeros(rc.shape[0], dtype=bool)
    drop = _drop(s, curvature, refraction_k)
    chunk = max(1, 2_000_000 // max(1, s.size))
    for i in range(0, rc.shape[0], chunk):
        j = min(rc.shape[0], i + chunk)
        cc = c0[i:j, None] + math.sin(a) * s[None, :] / dx
        rr = r0[i:j, None] - math.cos(a) * s[None, :] / dy
        zz = _bilinear(zf, rr.ravel(), cc.ravel()).reshape(rr.shape)
        ran_off[i:j] = ~np.isfinite(zz).all(axis=1)
        tan = (zz - drop[None, :] - z0[i:j, None]) / s[None, :]
        out[i:j] = np.nanmax(np.where(np.isfinite(tan), tan, -np.inf), axis=1)
    return out, ran_off
