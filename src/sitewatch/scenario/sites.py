"""Site layouts (a missile operating base and its dated changes) and feature height fields."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from ..errors import InputError
from .spec import FeatureSpec, ScenarioSpec
from .terrain import SceneGrid

__all__ = [
    "SiteLayout",
    "apply_feature",
    "box_entry",
    "feature_block",
    "layout_sites",
    "level_pads",
    "seat_feature",
]

logger = logging.getLogger(__name__)

F64 = NDArray[np.float64]

_STEEP_DEG = 18.0


@dataclass(frozen=True)
class SiteLayout:
    """A laid-out site: id, name, centre (CRS metres), the uphill direction and its features."""

    id: str
    name: str
    category: str
    x: float
    y: float
    up_azimuth_deg: float
    features: tuple[FeatureSpec, ...]


# --- height fields ---------------------------------------------------------------------------


def _local(f: FeatureSpec, x: F64, y: F64) -> tuple[F64, F64]:
    az = math.radians(f.azimuth_deg)
    ux, uy = math.sin(az), math.cos(az)
    dx, dy = x - f.x, y - f.y
    return dx * ux + dy * uy, -dx * uy + dy * ux


def feature_block(f: FeatureSpec, pad_m: float = 1.0) -> tuple[float, float, float, float]:
    """Bounding box (xmin, ymin, xmax, ymax) of a feature, padded."""
    xs, ys = zip(*f.footprint(), strict=True)
    return (min(xs) - pad_m, min(ys) - pad_m, max(xs) + pad_m, max(ys) + pad_m)


def apply_feature(
    f: FeatureSpec,
    index: int,
    x: F64,
    y: F64,
    surface: F64,
    material: NDArray[np.int16] | None = None,
    material_codes: dict[str, int] | None = None,
) -> NDArray[np.bool_]:
    """Build feature ``f`` as it stands at date ``index`` into ``surface`` (in place).

    ``x``/``y`` are CRS coordinates of the points of ``surface``. Returns the mask of points on
    the feature's footprint (where it changes the ground or its material). Apply cuts first,
    then berms and revetments, then boxes (see :func:`build_order`).
    """
    inside = np.zeros(np.shape(x), dtype=bool)
    if not f.present(index):
        return inside
    h = f.height_at(index)
    u, v = _local(f, x, y)
    a, b = f.length_m / 2.0, f.width_m / 2.0
    in_rect = (np.abs(u) <= a) & (np.abs(v) <= b)
    if f.profile == "box":
        inside = in_rect
        surface[inside] = np.maximum(surface[inside], f.base_m + h)
    elif f.profile == "cut":
        inside = in_rect
        surface[inside] = np.minimum(surface[inside], f.base_m)
    elif f.profile == "berm":
        run = max(b - f.crest_m / 2.0, 0.1)
        d = np.minimum(a - np.abs(u), b - np.abs(v))
        prof = h * np.clip(d / run, 0.0, 1.0)
        inside = d > 0
        surface[inside] += prof[inside]
    elif f.profile == "revetment":
        t = min(f.wall_m, b, a)
        run = max((t - f.crest_m) / 2.0, 0.1)
        d_out = np.minimum(a - np.abs(u), b - np.abs(v))
        d_in = np.maximum(np.abs(v) - (b - t), u - (a - t))
        d = np.minimum(d_out, d_in)
        prof = h * np.clip(d / run, 0.0, 1.0)
        inside = d > 0
        surface[inside] += prof[inside]
    else:  # flat
        inside = in_rect
    if material is not None and material_codes is not None:
        material[inside] = material_codes[f.material]
        if f.profile == "cut":
            material[inside & (u > a - 2.0)] = material_codes["dark"]
    return inside


def box_entry(f: FeatureSpec, x0: F64, y0: F64, x1: F64, y1: F64) -> F64:
    """Where segments (x0, y0) -> (x1, y1) first enter box ``f``: a fraction 0..1, NaN if never.

    Used by the shadow caster, so that a wall casts its shadow from where it really stands and
    not from the first sample that happens to fall inside it.
    """
    u0, v0 = _local(f, x0, y0)
    u1, v1 = _local(f, x1, y1)
    lo = np.zeros(np.shape(u0))
    hi = np.ones(np.shape(u0))
    for p0, p1, bound in ((u0, u1, f.length_m / 2.0), (v0, v1, f.width_m / 2.0)):
        delta = p1 - p0
        with np.errstate(divide="ignore", invalid="ignore"):
            t_a = (-bound - p0) / delta
            t_b = (bound - p0) / delta
        still = np.abs(delta) < 1e-12
        t_lo = np.where(still, np.where(np.abs(p0) <= bound, -np.inf, np.inf), np.minimum(t_a, t_b))
        t_hi = np.where(still, np.where(np.abs(p0) <= bound, np.inf, -np.inf), np.maximum(t_a, t_b))
        lo = np.maximum(lo, t_lo)
        hi = np.minimum(hi, t_hi)
    out: F64 = np.where(lo <= hi, lo, np.nan)
    return out


def build_order(features: tuple[FeatureSpec, ...]) -> list[FeatureSpec]:
    """Features in the order they must be built: flat, cuts, earthworks, boxes."""
    rank = {"flat": 0, "cut": 1, "berm": 2, "revetment": 2, "box": 3}
    return sorted(features, key=lambda f: rank[f.profile])


# --- site placement ----------------------------------------------------------------------------


def _slope_deg(dem: F64, gsd: float) -> F64:
    gy, gx = np.gradient(dem, gsd)
    out: F64 = np.degrees(np.arctan(np.hypot(gx, gy)))
    return out


def _find_centres(
    spec: ScenarioSpec, grid: SceneGrid, dem: F64, rng: np.random.Generator
) -> list[tuple[float, float, float, float]]:
    """Site centres (x, y), uphill azimuth and distance to the foot of the slope, greedily spaced."""
    step = max(1, round(4.0 / grid.gsd))  # work on ~4 m cells
    m = grid.margin
    core = dem[m : m + grid.height, m : m + grid.width]
    coarse = ndimage.gaussian_filter(core, sigma=2.0 * step)[::step, ::step]
    cell = grid.gsd * step
    slope = _slope_deg(coarse, cell)
    steep = slope > _STEEP_DEG
    want = 75.0  # metres from the pad centre to the foot of the slope
    inner = 115.0
    rows, cols = coarse.shape
    rr, cc = np.mgrid[0:rows, 0:cols]
    x_img = (cc + 0.5) * cell
    y_img = (rr + 0.5) * cell
    ok = (
        (x_img > inner)
        & (x_img < grid.width * grid.gsd - inner)
        & (y_img > inner)
        & (y_img < grid.height * grid.gsd - inner)
    )
    if steep.any():
        dist, (ir, ic) = ndimage.distance_transform_edt(~steep, sampling=cell, return_indices=True)
        score = np.abs(dist - want) + 3.0 * slope + rng.uniform(0.0, 6.0, dist.shape)
        score[~ok | steep | (dist < 45.0) | (dist > 140.0)] = np.inf
    else:
        dist = np.full(coarse.shape, want)
        ir, ic = rr, cc
        score = np.where(ok, rng.uniform(0.0, 1.0, coarse.shape), np.inf)
    order = np.argsort(score, axis=None)
    chosen: list[tuple[float, float, float, float]] = []
    spacing = 230.0
    for flat_i in order:
        if not np.isfinite(score.flat[flat_i]) or len(chosen) == spec.sites:
            break
        r, c = np.unravel_index(flat_i, coarse.shape)
        cx_img, cy_img = x_img[r, c], y_img[r, c]
        if any(math.hypot(cx_img - a, cy_img - b) < spacing for a, b, _, _ in chosen):
            continue
        if steep.any():
            tx, ty = (ic[r, c] + 0.5) * cell, (ir[r, c] + 0.5) * cell
            up = math.degrees(math.atan2(tx - cx_img, -(ty - cy_img))) % 360.0
        else:
            up = float(rng.uniform(0.0, 360.0))
        chosen.append((cx_img, cy_img, up, float(dist[r, c])))
    if len(chosen) < spec.sites:
        raise InputError(
            f"only {len(chosen)} of {spec.sites} sites fit in a {grid.width}x{grid.height} px "
            f"scene at {grid.gsd} m (each needs ~{spacing:.0f} m); pass a larger --size or "
            "fewer --sites"
        )
    out = []
    for cx_img, cy_img, up, dist_m in chosen:
        x, y = grid.to_xy(np.float64(cx_img / grid.gsd), np.float64(cy_img / grid.gsd))
        out.append((float(x), float(y), up, dist_m))
    return out


def _sample_many(grid: SceneGrid, dem: F64, x: F64, y: F64) -> F64:
    col, row = grid.to_pixel(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    coords = np.stack([np.ravel(row) + grid.margin - 0.5, np.ravel(col) + grid.margin - 0.5])
    out = ndimage.map_coordinates(dem, coords, order=1, mode="nearest")
    return np.asarray(out, dtype=np.float64).reshape(np.shape(x))


def _sample(grid: SceneGrid, dem: F64, x: float, y: float) -> float:
    return float(_sample_many(grid, dem, np.array([x]), np.array([y]))[0])


def _mouth_distance(
    grid: SceneGrid, dem: F64, x: float, y: float, up: float, default: float
) -> float:
    """Distance along ``up`` from (x, y) to the foot of the slope: the first point beyond which the
    ground rises at least 20 m x tan(22 deg) over the next 20 m."""
    ux, uy = math.sin(math.radians(up)), math.cos(math.radians(up))
    d = np.arange(25.0, 170.0, 1.0)
    z0 = _sample_many(grid, dem, x + d * ux, y + d * uy)
    z1 = _sample_many(grid, dem, x + (d + 20.0) * ux, y + (d + 20.0) * uy)
    rising = np.nonzero(z1 - z0 >= 20.0 * math.tan(math.radians(22.0)))[0]
    return float(d[rising[0]]) if rising.size else default


def _series(n: int, start: int, h0: float, h1: float) -> tuple[float, ...]:
    """Heights per date: 0 before ``start``, then growing linearly from h0 to h1."""
    out = []
    for i in range(n):
        if i < start:
            out.append(0.0)
        elif n - 1 == start:
            out.append(h1)
        else:
            out.append(round(h0 + (h1 - h0) * (i - start) / (n - 1 - start), 2))
    return tuple(out)


Jitter = Callable[[float, float], float]


def _fixed(lo: float, hi: float) -> float:
    return 1.0


def _uniform(rng: np.random.Generator) -> Jitter:
    def draw(lo: float, hi: float) -> float:
        return float(rng.uniform(lo, hi))

    return draw


def layout_sites(
    spec: ScenarioSpec, grid: SceneGrid, dem: F64, rng: np.random.Generator
) -> tuple[list[SiteLayout], F64]:
    """Place ``spec.sites`` bases on the terrain; returns the layouts and the levelled DEM."""
    if spec.sites == 0:
        return [], dem
    n = spec.n_dates
    centres = _find_centres(spec, grid, dem, rng)
    sites: list[SiteLayout] = []
    for k, (cx, cy, up, dist_m) in enumerate(centres):
        sid = f"site-{k + 1}"
        fixed = spec.site_template == "missile_operating_base"
        jitter = _fixed if fixed else _uniform(rng)
        pm = _mouth_distance(grid, dem, cx, cy, up, dist_m)
        uxa = math.radians(up)
        ux, uy = math.sin(uxa), math.cos(uxa)
        ax, ay = math.cos(uxa), -math.sin(uxa)  # across, 90 deg clockwise of up
        across_az = (up + 90.0) % 360.0

        def at(p: float, q: float, _ux: float = ux, _uy: float = uy) -> tuple[float, float]:
            return (cx + p * _ux + q * ax, cy + p * _uy + q * ay)  # noqa: B023

        # schedule of changes
        if fixed:
            k_portal = min(3, n - 1)
            k_build = min(4, n - 1)
            h_berm1 = (8.0, 18.0)
        else:
            k_portal = int(rng.integers(1, n)) if n > 1 else 0
            k_build = int(rng.integers(1, n)) if n > 1 else 0
            h_berm1 = (float(rng.uniform(5.0, 10.0)), float(rng.uniform(12.0, 20.0)))
        feats: list[FeatureSpec] = []
        pad_len, pad_wid = 115.0 * jitter(0.9, 1.1), 150.0 * jitter(0.9, 1.1)
        feats.append(
            FeatureSpec(f"{sid}-pad", "support", *at(-pad_len / 2 + pm - 48.0, 0.0), pad_len,
                        pad_wid, up, (0.0,) * n, "flat", "gravel")
        )  # fmt: skip
        road_len = 2.0 * math.hypot(grid.width, grid.height) * grid.gsd
        feats.append(
            FeatureSpec(f"{sid}-road", "road", *at(pm - 48.0 - pad_len - 8.0, 0.0), road_len,
                        7.0, across_az, (0.0,) * n, "flat", "road")
        )  # fmt: skip
        portals = [(0.0, 0, h_berm1), (40.0 * jitter(0.9, 1.2), k_portal, (6.0, 18.0))]
        for j, (q, k0, (h0, h1)) in enumerate(portals, start=1):
            feats.extend(_portal(grid, dem, sid, j, at(0.0, q), up, pm, n, k0, h0, h1, jitter))
        shelter_h = 8.0 * jitter(0.8, 1.2)
        for j, q in enumerate((-22.0, 0.0), start=1):
            feats.append(
                FeatureSpec(f"{sid}-shelter-{j}", "drive_through_shelter", *at(pm - 72.0, q),
                            40.0, 13.0, up, (shelter_h,) * n, "box", "metal_roof")
            )  # fmt: skip
        feats.append(
            FeatureSpec(f"{sid}-shelter-3", "drive_through_shelter", *at(pm - 72.0, 22.0), 40.0,
                        13.0, up, _series(n, k_build, shelter_h, shelter_h), "box", "metal_roof")
        )  # fmt: skip
        feats.append(
            FeatureSpec(f"{sid}-hq", "hq", *at(pm - 135.0, -55.0), 26.0, 14.0, across_az,
                        (9.0 * jitter(0.8, 1.2),) * n, "box", "concrete")
        )  # fmt: skip
        feats.append(
            FeatureSpec(f"{sid}-barracks-1", "barracks", *at(pm - 135.0, 55.0), 32.0, 11.0,
                        across_az, (6.0 * jitter(0.8, 1.3),) * n, "box", "concrete")
        )  # fmt: skip
        feats.append(
            FeatureSpec(f"{sid}-revetment-1", "revetment", *at(pm - 100.0, -75.0), 26.0, 24.0,
                        up, (4.0 * jitter(0.8, 1.3),) * n, "revetment", "grass", wall_m=7.0)
        )  # fmt: skip
        feats = [replace(f, site_id=sid) for f in feats]
        sites.append(
            SiteLayout(sid, f"Synthetic base {k + 1}", "missile_operating_base", cx, cy, up,
                       tuple(feats))
        )  # fmt: skip
    dem = level_pads(grid, dem, [f for s in sites for f in s.features if f.id.endswith("-pad")])
    final = [
        replace(s, features=tuple(seat_feature(grid, dem, f) for f in s.features)) for s in sites
    ]
    return final, dem


def seat_feature(grid: SceneGrid, dem: F64, f: FeatureSpec, *, offset: float = 0.0) -> FeatureSpec:
    """Set the base elevation of a box (ground at its centre) or a cut (ground at its mouth)."""
    if f.profile == "cut":
        mx, my = f.to_world(-f.length_m / 2.0, 0.0)
        return replace(f, base_m=offset + _sample(grid, dem, mx, my))
    if f.profile == "box":
        return replace(f, base_m=offset + _sample(grid, dem, f.x, f.y))
    return f


def _portal(
    grid: SceneGrid,
    dem: F64,
    sid: str,
    j: int,
    origin: tuple[float, float],
    up: float,
    pm_default: float,
    n: int,
    k0: int,
    h0: float,
    h1: float,
    jitter: Jitter,
) -> list[FeatureSpec]:
    pm = _mouth_distance(grid, dem, origin[0], origin[1], up, pm_default)
    ux, uy = math.sin(math.radians(up)), math.cos(math.radians(up))
    cut_len = 26.0
    mouth = (origin[0] + (pm - 2.0) * ux, origin[1] + (pm - 2.0) * uy)
    cut_c = (mouth[0] + cut_len / 2.0 * ux, mouth[1] + cut_len / 2.0 * uy)
    berm_c = (mouth[0] - 17.0 * ux, mouth[1] - 17.0 * uy)
    opening = tuple(7.0 if i >= k0 else 0.0 for i in range(n))
    return [
        FeatureSpec(f"{sid}-portal-{j}", "ugf_portal", *cut_c, cut_len, 10.0, up, opening,
                    "cut", "rock"),
        FeatureSpec(f"{sid}-berm-{j}", "berm", *berm_c, 38.0, 16.0, (up + 90.0) % 360.0,
                    _series(n, k0, h0, h1), "berm", "spoil", crest_m=3.0),
    ]  # fmt: skip


def level_pads(grid: SceneGrid, dem: F64, pads: list[FeatureSpec]) -> F64:
    """Grade the ground of each pad to its median elevation, blending over 15 m at the edges."""
    if not pads:
        return dem
    out = dem.copy()
    rows, cols = grid.padded_shape
    for f in pads:
        xmin, ymin, xmax, ymax = feature_block(f, pad_m=20.0)
        c0, r0 = grid.to_pixel(np.float64(xmin), np.float64(ymax))
        c1, r1 = grid.to_pixel(np.float64(xmax), np.float64(ymin))
        m = grid.margin
        r0i, r1i = max(int(r0) + m, 0), min(int(r1) + m + 1, rows)
        c0i, c1i = max(int(c0) + m, 0), min(int(c1) + m + 1, cols)
        if r0i >= r1i or c0i >= c1i:
            continue
        rr, cc = np.mgrid[r0i:r1i, c0i:c1i].astype(np.float64)
        x, y = grid.to_xy(cc - m + 0.5, rr - m + 0.5)
        u, v = _local(f, x, y)
        d = np.minimum(f.length_m / 2 - np.abs(u), f.width_m / 2 - np.abs(v))
        w = np.clip(1.0 + d / 15.0, 0.0, 1.0)
        w = w * w * (3 - 2 * w)
        block = out[r0i:r1i, c0i:c1i]
        z = float(np.median(block[d > 0])) if (d > 0).any() else float(np.median(block))
        out[r0i:r1i, c0i:c1i] = block * (1 - w) + z * w
    return out
