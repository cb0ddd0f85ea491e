"""Rendering: surface with features, cast shadows, hillshade illumination, clouds, sensor model.

Cast shadows are computed on a grid rotated to the sun azimuth and ``oversample`` times finer than
the image: along each row (which runs towards the sun) a point is shadowed when anything ahead of
it rises above the sun ray, ``max_{s' > s}(H(s') - s' tan e) > H(s) - s tan e``, a reverse
cumulative maximum that costs O(n) per row. Terrain is sampled bilinearly and features are built
analytically at every fine sample, so shadow edges land to a fraction of a pixel; the fine
samples are then averaged into each image pixel, which gives the fraction of its area in shadow.
"""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from .landcover import CODES
from .sites import apply_feature, box_entry, build_order, feature_block
from .spec import FeatureSpec
from .terrain import SceneGrid, fractal_noise

__all__ = [
    "SKY_FRACTION",
    "illumination",
    "pixel_surface",
    "render_clouds",
    "sensor",
    "shadow_fraction",
]

F64 = NDArray[np.float64]
F32 = NDArray[np.float32]

# share of diffuse skylight in the total irradiance of a flat, sunlit surface, per band
SKY_FRACTION: dict[str, float] = {
    "blue": 0.30,
    "green": 0.22,
    "red": 0.17,
    "nir": 0.12,
    "swir16": 0.08,
    "swir22": 0.06,
}


def _block_slices(
    f: FeatureSpec, grid: SceneGrid, shape: tuple[int, int], offset: int
) -> tuple[slice, slice] | None:
    xmin, ymin, xmax, ymax = feature_block(f)
    c0, r0 = grid.to_pixel(np.float64(xmin), np.float64(ymax))
    c1, r1 = grid.to_pixel(np.float64(xmax), np.float64(ymin))
    r0i, r1i = max(math.floor(r0) + offset, 0), min(math.ceil(r1) + offset, shape[0])
    c0i, c1i = max(math.floor(c0) + offset, 0), min(math.ceil(c1) + offset, shape[1])
    if r0i >= r1i or c0i >= c1i:
        return None
    return slice(r0i, r1i), slice(c0i, c1i)


def pixel_surface(
    grid: SceneGrid,
    dem: F64,
    features: list[FeatureSpec],
    index: int,
    classes: NDArray[np.int16],
) -> tuple[F64, F64, NDArray[np.int16], NDArray[np.bool_]]:
    """Surface heights at the image pixel centres for date ``index``.

    Returns the full surface (terrain + all features), the smooth surface used for normals
    (terrain + earthworks; boxes and cuts have flat tops), the material classes, and the mask
    of pixels whose normal must point straight up (roofs, cut floors).
    """
    m = grid.margin
    terrain = dem[m : m + grid.height, m : m + grid.width]
    surface = terrain.copy()
    smooth = terrain.copy()
    material = classes.copy()
    flat_top = np.zeros(terrain.shape, dtype=bool)
    for f in build_order(tuple(features)):
        sl = _block_slices(f, grid, terrain.shape, 0)
        if sl is None:
            continue
        rr, cc = np.mgrid[sl[0], sl[1]].astype(np.float64)
        x, y = grid.to_xy(cc + 0.5, rr + 0.5)
        block = surface[sl]
        inside = apply_feature(f, index, x, y, block, material[sl], CODES)
        surface[sl] = block
        if f.profile in ("berm", "revetment"):
            sblock = smooth[sl]
            apply_feature(f, index, x, y, sblock)
            smooth[sl] = sblock
        elif f.profile in ("box", "cut"):
            flat_top[sl] |= inside
    return surface, smooth, material, flat_top


def shadow_fraction(
    grid: SceneGrid,
    dem: F64,
    features: list[FeatureSpec],
    index: int,
    sun_azimuth: float,
    sun_elevation: float,
    oversample: int = 2,
    chunk_samples: int = 3_000_000,
) -> F32:
    """Fraction (0..1) of each image pixel's area in cast or self shadow."""
    f = 1.0 / oversample
    tan_e = math.tan(math.radians(sun_elevation))
    az = math.radians(sun_azimuth)
    # image coordinates: X east (columns), Y south (rows), in pixels
    dx, dy = math.sin(az), -math.cos(az)  # towards the sun
    qx, qy = math.cos(az), math.sin(az)  # across
    m = grid.margin
    W, H = grid.width, grid.height
    corners_pad = [(-m, -m), (W + m, -m), (-m, H + m), (W + m, H + m)]
    corners_img = [(0, 0), (W, 0), (0, H), (W, H)]
    s_vals = [x * dx + y * dy for x, y in corners_pad]
    w_vals = [x * qx + y * qy for x, y in corners_img]
    s_min = min(x * dx + y * dy for x, y in corners_img) - 1.0  # nothing behind the image matters
    s_max = max(s_vals)
    w_min, w_max = min(w_vals) - 1.0, max(w_vals) + 1.0
    n_s = math.ceil((s_max - s_min) / f)
    # rows run along the sun, parallel to the sides of every shadow: sample them twice as densely
    # so that the sides land within a quarter of the along-row spacing
    fw = f / 2.0
    n_w = math.ceil((w_max - w_min) / fw)
    s = s_min + (np.arange(n_s) + 0.5) * f
    ray = s * (grid.gsd * tan_e)  # height of the sun ray above s = 0 (float64: edges need it)
    order = build_order(tuple(features))
    active = [ft for ft in order if ft.present(index) and ft.profile != "flat"]
    # feature bounding boxes in (s, w)
    boxes = []
    for ft in active:
        xmin, ymin, xmax, ymax = feature_block(ft, pad_m=2.0 * grid.gsd)
        cx, cy = grid.to_pixel(
            np.array([xmin, xmax, xmin, xmax]), np.array([ymin, ymin, ymax, ymax])
        )
        ss = cx * dx + cy * dy
        ww = cx * qx + cy * qy
        boxes.append((ft, ss.min(), ss.max(), ww.min(), ww.max()))
    total = np.zeros(W * H, dtype=np.float64)
    count = np.zeros(W * H, dtype=np.float64)
    rows_per_chunk = max(1, chunk_samples // max(n_s, 1))
    for i0 in range(0, n_w, rows_per_chunk):
        i1 = min(n_w, i0 + rows_per_chunk)
        w = w_min + (np.arange(i0, i1) + 0.5) * fw
        X = s[None, :] * dx + w[:, None] * qx
        Y = s[None, :] * dy + w[:, None] * qy
        surf = ndimage.map_coordinates(
            dem,
            [Y + (m - 0.5), X + (m - 0.5)],
            order=1,
            mode="nearest",
            prefilter=False,
        )
        outside = (X + m < 0) | (X - m > W) | (Y + m < 0) | (Y - m > H)
        g = surf - ray[None, :]
        obst = g.copy()
        for ft, s0, s1, w0, w1 in boxes:
            if w1 < w[0] or w0 > w[-1]:
                continue
            j0 = max(int((s0 - s_min) / f) - 1, 0)
            j1 = min(int((s1 - s_min) / f) + 2, n_s)
            k0 = max(int((w0 - w_min) / fw) - 1 - i0, 0)
            k1 = min(int((w1 - w_min) / fw) + 2 - i0, i1 - i0)
            if j0 >= j1 or k0 >= k1:
                continue
            xb, yb = X[k0:k1, j0:j1], Y[k0:k1, j0:j1]
            xs, ys = grid.to_xy(xb, yb)
            block = surf[k0:k1, j0:j1]
            apply_feature(ft, index, xs, ys, block)
            g[k0:k1, j0:j1] = block - ray[None, j0:j1]
            if ft.profile == "box":
                # the segment (s - f, s] of each sample: where does it first meet the box?
                xp, yp = grid.to_xy(xb - f * dx, yb - f * dy)
                tau = box_entry(ft, xp, yp, xs, ys)
                hit = np.isfinite(tau)
                s_entry = s[None, j0:j1] - f * (1.0 - np.where(hit, tau, 0.0))
                top = ft.base_m + ft.height_at(index)
                cast = np.where(hit, top - s_entry * (grid.gsd * tan_e), -np.inf)
                ob = obst[k0:k1, j0:j1]
                obst[k0:k1, j0:j1] = np.maximum(np.maximum(ob, g[k0:k1, j0:j1]), cast)
            else:
                obst[k0:k1, j0:j1] = g[k0:k1, j0:j1]
        g[outside] = -np.inf
        obst[outside] = -np.inf
        ahead = np.maximum.accumulate(obst[:, ::-1], axis=1)[:, ::-1]
        ahead = np.concatenate([ahead[:, 1:], np.full((i1 - i0, 1), -np.inf)], axis=1)
        shadow = ahead > g + 1e-6
        inside = (X >= 0) & (X < W) & (Y >= 0) & (Y < H)
        idx = np.floor(Y[inside]).astype(np.int64) * W + np.floor(X[inside]).astype(np.int64)
        total += np.bincount(idx, weights=shadow[inside], minlength=W * H)
        count += np.bincount(idx, minlength=W * H)
    frac = total / np.maximum(count, 1.0)
    return frac.reshape(H, W).astype(np.float32)


def illumination(
    smooth: F64, flat_top: NDArray[np.bool_], gsd: float, sun_azimuth: float, sun_elevation: float
) -> tuple[F32, F32]:
    """Direct-beam factor ``cos(i) / sin(e)`` (1 on flat ground) and sky-view factor per pixel."""
    gy, gx = np.gradient(smooth, gsd)  # gy: d/d(row) = -d/d(north)
    zx, zy = gx, -gy
    zx = np.where(flat_top, 0.0, zx)
    zy = np.where(flat_top, 0.0, zy)
    norm = np.sqrt(zx * zx + zy * zy + 1.0)
    az, el = math.radians(sun_azimuth), math.radians(sun_elevation)
    sx, sy, sz = math.sin(az) * math.cos(el), math.cos(az) * math.cos(el), math.sin(el)
    cos_i = (-zx * sx - zy * sy + sz) / norm
    direct = np.clip(cos_i, 0.0, None) / sz
    sky = 0.5 * (1.0 + 1.0 / norm)
    return direct.astype(np.float32), sky.astype(np.float32)


def render_clouds(
    grid: SceneGrid,
    rng: np.random.Generator,
    cover: float,
    sun_azimuth: float,
    sun_elevation: float,
    cloud_height_m: float = 1500.0,
) -> tuple[F32, F32]:
    """Cloud opacity (0..1) and cloud-shadow opacity fields for one date.

    The cloud field is periodic, so its shadow is the same field shifted by the cloud height along
    the shadow direction (wrapping around the scene).
    """
    shape = (grid.height, grid.width)
    field = fractal_noise(rng, shape, beta=2.6, cutoff=1.5)
    thr = float(np.quantile(field, 1.0 - cover)) if cover > 0 else np.inf
    opacity = np.clip((field - thr) / 0.6, 0.0, 1.0).astype(np.float32)
    length_px = cloud_height_m / math.tan(math.radians(sun_elevation)) / grid.gsd
    az = math.radians(sun_azimuth)
    shift_col = -math.sin(az) * length_px  # shadows fall away from the sun
    shift_row = math.cos(az) * length_px
    shadow = np.roll(opacity, (round(shift_row), round(shift_col)), axis=(0, 1))
    return opacity, shadow


def sensor(
    radiance: F32,
    rng: np.random.Generator,
    psf_sigma_px: float,
    noise: float,
) -> NDArray[np.uint16]:
    """Blur with a Gaussian PSF, add noise, quantise to reflectance x 10000 (uint16, 0 = nodata)."""
    out = np.empty(radiance.shape, dtype=np.uint16)
    for k in range(radiance.shape[0]):
        band = radiance[k]
        if psf_sigma_px > 0:
            band = ndimage.gaussian_filter(band, psf_sigma_px, mode="nearest")
        if noise > 0:
            band = band + rng.normal(0.0, noise, band.shape).astype(np.float32)
        out[k] = np.clip(np.rint(band * 10000.0), 1, 65535).astype(np.uint16)
    return out


def compose(
    reflect: F32,
    bands: tuple[str, ...],
    direct: F32,
    sky: F32,
    shadow: F32,
    when: datetime | None = None,
) -> F32:
    """At-sensor reflectance: ``rho * ((1 - k) * direct * (1 - shadow) + k * sky)`` per band."""
    out = np.empty_like(reflect)
    lit = direct * (1.0 - shadow)
    for b, name in enumerate(bands):
        k = SKY_FRACTION[name]
        out[b] = reflect[b] * ((1.0 - k) * lit + k * sky)
    return out
