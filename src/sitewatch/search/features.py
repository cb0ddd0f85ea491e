"""Per-tile descriptors, computed once per block of tiles and pooled per tile.

Every descriptor is a sum over the pixels of a tile (or of the cells of a tile) of a per-pixel
map that depends on a pixel and its 8 neighbours only. So the maps are computed once for a whole
block (one pass of numpy/scipy/scikit-image over a few million pixels), summed per *cell* (the
stride-sized squares that tiles are made of) and the cell sums are added up per tile with a
box filter: overlapping tiles share the work. :func:`block_features` is exactly equal (to
floating-point rounding) to the per-tile computation of :mod:`sitewatch.search._reference`.

Descriptors (``B`` bands, normalised to about 0..1 by the image's robust band range):

* spectral, at four scales: per band the brightest pixel, the tile mean and standard
  deviation, the share of pixels brighter (darker) than the image's 98th (2nd) percentile in
  luminance, the brightest and
  darkest cell mean (sub-tile scale) and the difference between the tile mean and the mean of
  its context window (three tiles wide, centred on the tile);
* edges and lines on the luminance: mean gradient magnitude, edge density, thin-line density and
  the magnitude-weighted histogram of gradient orientations (four bins, HOG-like), sorted so it
  does not depend on the site's orientation, with the share of the dominant orthogonal pair;
* texture: the histogram of rotation-invariant uniform local binary patterns (LBP, P=8, R=1);
* terrain, when a DEM is given (resampled to the image grid): mean and maximum slope, relief
  (maximum minus minimum elevation) and elevation standard deviation.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from rasterio.errors import NodataShadowWarning
from rasterio.io import DatasetReader
from rasterio.windows import Window

from ..errors import AnalysisError
from .tiles import TileGrid

__all__ = [
    "BandScale",
    "FeatureConfig",
    "block_features",
    "estimate_scale",
    "feature_names",
    "read_block",
]

logger = logging.getLogger(__name__)

F64 = NDArray[np.float64]
F32 = NDArray[np.float32]
Bool = NDArray[np.bool_]

LBP_BINS = 10  # P + 2 codes of the 'uniform' (rotation-invariant uniform) method for P = 8
_TAN22 = math.tan(math.radians(22.5))


@dataclass(frozen=True)
class FeatureConfig:
    """What to compute: tile and stride (pixels), context, thresholds on normalised values."""

    tile: int = 32
    stride: int = 16
    context: bool = True
    edge_threshold: float = 0.08
    line_threshold: float = 0.05

    def __post_init__(self) -> None:
        if self.tile <= 0 or self.stride <= 0 or self.tile % self.stride:
            raise AnalysisError(
                f"tile {self.tile} px must be a positive multiple of stride {self.stride} px"
            )

    @property
    def cells_per_tile(self) -> int:
        """Cells per tile side."""
        return self.tile // self.stride

    @property
    def context_cells(self) -> int:
        """Cells of context on each side of a tile (one tile width, or 0)."""
        return self.cells_per_tile if self.context else 0

    @property
    def halo(self) -> int:
        """Pixels read around a block: the context plus one pixel for 3x3 neighbourhoods."""
        return self.context_cells * self.stride + 1

    def grid(self, dataset: DatasetReader) -> TileGrid:
        """The tile grid of ``dataset`` for this configuration."""
        return TileGrid.of(dataset, self.tile, self.stride)


@dataclass(frozen=True)
class BandScale:
    """A linear stretch per band, ``(value - low) / (high - low)``: the same for every block."""

    low: tuple[float, ...]
    high: tuple[float, ...]

    def apply(self, raw: NDArray[np.generic]) -> F32:
        """Normalised float32 copy of ``raw`` (bands, rows, cols)."""
        lo = np.asarray(self.low, dtype=np.float32)[:, None, None]
        span = np.asarray(self.high, dtype=np.float32)[:, None, None] - lo
        span = np.where(span > 0, span, np.float32(1.0))
        out: F32 = (raw.astype(np.float32) - lo) / span
        return out

    def to_dict(self) -> dict[str, list[float]]:
        """JSON form."""
        return {"low": list(self.low), "high": list(self.high)}

    @classmethod
    def from_dict(cls, data: dict[str, Sequence[float]]) -> BandScale:
        """From :meth:`to_dict`."""
        return cls(tuple(float(v) for v in data["low"]), tuple(float(v) for v in data["high"]))


def estimate_scale(
    dataset: DatasetReader, bands: Sequence[int], max_pixels: int = 1_000_000
) -> BandScale:
    """The 2nd and 98th percentiles of each band, from a decimated read of the whole raster."""
    f = max(1.0, math.sqrt(dataset.width * dataset.height / max_pixels))
    shape = (max(1, int(dataset.height / f)), max(1, int(dataset.width / f)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NodataShadowWarning)
        data = dataset.read(list(bands), out_shape=(len(bands), *shape), masked=True)
    lows, highs = [], []
    for b in range(len(bands)):
        vals = np.ma.compressed(data[b]).astype(np.float64)
        if vals.size == 0:
            raise AnalysisError(
                f"band {bands[b]} of {dataset.name} has no valid pixels; check its nodata value"
            )
        lo, hi = np.percentile(vals, [2.0, 98.0])
        if hi <= lo:
            hi = lo + 1.0
        lows.append(float(lo))
        highs.append(float(hi))
    return BandScale(tuple(lows), tuple(highs))


def read_block(
    dataset: DatasetReader, window: Window, bands: Sequence[int]
) -> tuple[NDArray[np.generic], Bool]:
    """Read ``window`` boundlessly: pixels (bands, rows, cols) and the validity mask."""
    h, w = int(window.height), int(window.width)
    raw = np.zeros((len(bands), h, w), dtype=dataset.dtypes[bands[0] - 1])
    valid = np.zeros((h, w), dtype=bool)
    inner = (
        window.intersection(Window(0, 0, dataset.width, dataset.height))
        if (
            window.col_off < dataset.width
            and window.row_off < dataset.height
            and window.col_off + window.width > 0
            and window.row_off + window.height > 0
        )
        else None
    )
    if inner is None:
        return raw, valid
    r0, c0 = int(inner.row_off - window.row_off), int(inner.col_off - window.col_off)
    ih, iw = int(inner.height), int(inner.width)
    raw[:, r0 : r0 + ih, c0 : c0 + iw] = dataset.read(list(bands), window=inner)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NodataShadowWarning)
        mask = dataset.dataset_mask(window=inner) > 0
    valid[r0 : r0 + ih, c0 : c0 + iw] = mask
    return raw, valid


def feature_names(n_bands: int, with_dem: bool) -> list[str]:
    """Names of the columns of :func:`block_features`, in order."""
    names = []
    for b in range(1, n_bands + 1):
        names += [f"b{b}_mean", f"b{b}_std", f"b{b}_max", f"b{b}_cellmax", f"b{b}_cellmin",
                  f"b{b}_context"]  # fmt: skip
    names += ["bright_fraction", "dark_fraction", "grad_mean", "edge_density", "line_density"]
    names += [f"orient_{i}" for i in range(4)] + ["orient_orthogonal"]
    names += [f"lbp_{i}" for i in range(LBP_BINS)]
    if with_dem:
        names += ["slope_mean", "slope_max", "relief", "elev_std"]
    return names


# --- per-block computation --------------------------------------------------------------------


def _cell_sum(a: NDArray[np.generic], s: int) -> F64:
    """Sum of ``a`` (..., Y*s, X*s) over s x s cells, in float64."""
    *lead, H, W = a.shape
    out: F64 = a.reshape(*lead, H // s, s, W // s, s).sum(axis=(-3, -1), dtype=np.float64)
    return out


def _box(a: F64, k: int) -> F64:
    """Sums over k x k windows of the last two axes (valid part only)."""
    c = np.cumsum(np.cumsum(a, axis=-2), axis=-1)
    c = np.pad(c, [(0, 0)] * (a.ndim - 2) + [(1, 0), (1, 0)])
    out: F64 = c[..., k:, k:] - c[..., :-k, k:] - c[..., k:, :-k] + c[..., :-k, :-k]
    return out


def _window_reduce(a: F64, k: int, how: str) -> F64:
    view = np.lib.stride_tricks.sliding_window_view(a, (k, k), axis=(-2, -1))
    out: F64 = view.max(axis=(-2, -1)) if how == "max" else view.min(axis=(-2, -1))
    return out


def _neighbours_valid(valid: Bool) -> Bool:
    """Pixels (of the interior, one pixel in from each edge) whose 3x3 neighbourhood is valid."""
    v = valid
    out = v[1:-1, 1:-1].copy()
    for dr in (0, 1, 2):
        for dc in (0, 1, 2):
            out &= v[dr : dr + v.shape[0] - 2, dc : dc + v.shape[1] - 2]
    return out


def _lbp(lum: F32) -> NDArray[np.intp]:
    """Rotation-invariant uniform LBP codes (0..9) of the interior of ``lum``."""
    from skimage.feature import local_binary_pattern

    q = np.clip(np.rint(lum * 255.0), 0, 255).astype(np.uint8)
    codes = local_binary_pattern(q, 8, 1, method="uniform")  # type: ignore[no-untyped-call]
    out: NDArray[np.intp] = codes[1:-1, 1:-1].astype(np.intp)
    return out


def _slope_deg(dem: F64, gsd_x: float, gsd_y: float) -> F64:
    gx = (dem[1:-1, 2:] - dem[1:-1, :-2]) / (2.0 * gsd_x)
    gy = (dem[2:, 1:-1] - dem[:-2, 1:-1]) / (2.0 * gsd_y)
    out: F64 = np.degrees(np.arctan(np.sqrt(gx * gx + gy * gy)))
    return out


def block_features(
    raw: NDArray[np.generic],
    valid: Bool,
    shape: tuple[int, int],
    cfg: FeatureConfig,
    scale: BandScale,
    dem: F64 | None = None,
    gsd: tuple[float, float] = (1.0, 1.0),
) -> tuple[F64, Bool]:
    """Descriptors of a block of ``shape`` = (rows, cols) tiles.

    ``raw`` (bands, H, W) and ``valid`` (H, W) cover the block's tiles grown by ``cfg.halo``
    pixels on every side (see :meth:`TileGrid.block_window`); ``dem`` (H, W), NaN where
    unknown, is the DEM on the same pixels and ``gsd`` its (x, y) pixel size in metres.
    Returns ``features`` (rows, cols, n_features) and the mask of tiles with any valid pixel
    (other rows of ``features`` are NaN).
    """
    nr, nc = shape
    s, k, c = cfg.stride, cfg.cells_per_tile, cfg.context_cells
    ny, nx = nr - 1 + k, nc - 1 + k
    P = cfg.halo
    expect = (ny * s + 2 * P, nx * s + 2 * P)
    if valid.shape != expect or raw.shape[1:] != expect:
        raise AnalysisError(
            f"block pixels are {raw.shape[1:]} but {shape} tiles of {cfg.tile} px need {expect}"
        )
    nb = raw.shape[0]
    x = scale.apply(raw)
    x *= valid  # invalid pixels contribute nothing to the sums
    # --- spectral: cell sums over the tile cells and the context ring ---
    outer = slice(P - c * s, P + (ny + c) * s)
    vo = valid[outer, outer.start : outer.start + (nx + 2 * c) * s]
    xo = x[:, outer, outer.start : outer.start + (nx + 2 * c) * s]
    n_cells = _cell_sum(vo, s)  # (ny + 2c, nx + 2c)
    s1_cells = _cell_sum(xo, s)
    s2_cells = _cell_sum(xo * xo, s)
    inner = (slice(c, c + ny), slice(c, c + nx))
    n_in, s1_in, s2_in = (
        n_cells[inner],
        s1_cells[:, inner[0], inner[1]],
        s2_cells[:, inner[0], inner[1]],
    )
    n_t = _box(n_in, k)  # (nr, nc)
    ok = n_t > 0
    denom = np.where(ok, n_t, 1.0)
    mean = _box(s1_in, k) / denom
    var = np.maximum(_box(s2_in, k) / denom - mean * mean, 0.0)
    std = np.sqrt(var)
    with np.errstate(invalid="ignore", divide="ignore"):
        cm = np.where(n_in > 0, s1_in / np.where(n_in > 0, n_in, 1.0), np.nan)
    xin = x[:, P : P + ny * s, P : P + nx * s]
    vin = valid[P : P + ny * s, P : P + nx * s]
    pmax_cells = np.where(vin, xin, -np.inf).reshape(nb, ny, s, nx, s).max(axis=(2, 4))
    pmax = _window_reduce(pmax_cells.astype(np.float64), k, "max")
    cmax = _window_reduce(np.where(np.isnan(cm), -np.inf, cm), k, "max")
    cmin = _window_reduce(np.where(np.isnan(cm), np.inf, cm), k, "min")
    if c:
        n_ctx = _box(n_cells, k + 2 * c)
        ctx = _box(s1_cells, k + 2 * c) / np.where(n_ctx > 0, n_ctx, 1.0)
        ctx_diff = mean - ctx
    else:
        ctx_diff = np.zeros_like(mean)
    # --- edges, lines, orientations, LBP on the luminance of the tile pixels (+1 px ring) ---
    ring = slice(P - 1, P + ny * s + 1)
    ring_c = slice(P - 1, P + nx * s + 1)
    lum = x[:, ring, ring_c].mean(axis=0, dtype=np.float32)
    tv = _neighbours_valid(valid[ring, ring_c])
    gx = (lum[1:-1, 2:] - lum[1:-1, :-2]) * np.float32(0.5)
    gy = (lum[2:, 1:-1] - lum[:-2, 1:-1]) * np.float32(0.5)
    mag = np.sqrt(gx * gx + gy * gy) * tv
    lum_in = lum[1:-1, 1:-1]
    n_v = _box(_cell_sum(vin, s), k)
    d_v = np.where(n_v > 0, n_v, 1.0)
    bright = _box(_cell_sum((lum_in > 1.0) & vin, s), k) / d_v
    dark = _box(_cell_sum((lum_in < 0.0) & vin, s), k) / d_v
    ctr = lum[1:-1, 1:-1]
    line = np.abs(lum[1:-1, 2:] + lum[1:-1, :-2] - 2 * ctr)
    np.maximum(line, np.abs(lum[2:, 1:-1] + lum[:-2, 1:-1] - 2 * ctr), out=line)
    np.maximum(line, np.abs(lum[2:, 2:] + lum[:-2, :-2] - 2 * ctr), out=line)
    np.maximum(line, np.abs(lum[2:, :-2] + lum[:-2, 2:] - 2 * ctr), out=line)
    ax, ay = np.abs(gx), np.abs(gy)
    orient = np.where(
        ay <= _TAN22 * ax, 0, np.where(ax <= _TAN22 * ay, 2, np.where(gx * gy > 0, 1, 3))
    )
    codes = _lbp(lum)
    cell_idx = (np.arange(ny * s) // s)[:, None] * nx + (np.arange(nx * s) // s)[None, :]
    ncell = ny * nx
    n_tv = _box(_cell_sum(tv, s), k)
    d_tv = np.where(n_tv > 0, n_tv, 1.0)
    grad_mean = _box(_cell_sum(mag, s), k) / d_tv
    edge = _box(_cell_sum((mag > cfg.edge_threshold), s), k) / d_tv
    lines = _box(_cell_sum((line > cfg.line_threshold) & tv, s), k) / d_tv
    o_hist: F64 = np.asarray(
        np.bincount((cell_idx * 4 + orient).ravel(), weights=mag.ravel(), minlength=ncell * 4),
        dtype=np.float64,
    ).reshape(ny, nx, 4)
    o_t = _box(np.moveaxis(o_hist, -1, 0), k)  # (4, nr, nc)
    o_tot = o_t.sum(axis=0)
    o_norm = o_t / np.where(o_tot > 0, o_tot, 1.0)
    o_sorted = -np.sort(-o_norm, axis=0)
    ortho = np.maximum(o_norm[0] + o_norm[2], o_norm[1] + o_norm[3])
    lbp_hist = (
        np.bincount((cell_idx * LBP_BINS + codes)[tv], minlength=ncell * LBP_BINS)
        .reshape(ny, nx, LBP_BINS)
        .astype(np.float64)
    )
    lbp_t = _box(np.moveaxis(lbp_hist, -1, 0), k) / d_tv
    cols: list[F64] = []
    for b in range(nb):
        cols += [mean[b], std[b], pmax[b], cmax[b], cmin[b], ctx_diff[b]]
    cols += [bright, dark, grad_mean, edge, lines, *o_sorted, ortho, *lbp_t]
    if dem is not None:
        cols += _terrain(dem, P, ny, nx, s, k, gsd)
    feats = np.stack(cols, axis=-1)
    feats[~ok] = np.nan
    return feats, ok


def _terrain(
    dem: F64, P: int, ny: int, nx: int, s: int, k: int, gsd: tuple[float, float]
) -> list[F64]:
    ring = (slice(P - 1, P + ny * s + 1), slice(P - 1, P + nx * s + 1))
    z = dem[ring]
    fin = np.isfinite(z)
    dv = _neighbours_valid(fin)
    z0 = np.where(fin, z, 0.0)
    slope = np.where(dv, _slope_deg(z0, gsd[0], gsd[1]), 0.0)
    zc = z0[1:-1, 1:-1]
    vc = fin[1:-1, 1:-1]
    n_dv = _box(_cell_sum(dv, s), k)
    slope_mean = _box(_cell_sum(slope, s), k) / np.where(n_dv > 0, n_dv, 1.0)
    sl = slope.reshape(ny, s, nx, s).max(axis=(1, 3))
    slope_max = _window_reduce(sl, k, "max")
    zmax = np.where(vc, zc, -np.inf).reshape(ny, s, nx, s).max(axis=(1, 3))
    zmin = np.where(vc, zc, np.inf).reshape(ny, s, nx, s).min(axis=(1, 3))
    hi = _window_reduce(zmax, k, "max")
    lo = _window_reduce(zmin, k, "min")
    relief = np.where(np.isfinite(hi) & np.isfinite(lo), hi - lo, 0.0)
    n_z = _box(_cell_sum(vc, s), k)
    d_z = np.where(n_z > 0, n_z, 1.0)
    zm = _box(_cell_sum(np.where(vc, zc, 0.0), s), k) / d_z
    zv = np.maximum(_box(_cell_sum(np.where(vc, zc * zc, 0.0), s), k) / d_z - zm * zm, 0.0)
    return [slope_mean, slope_max, relief, np.sqrt(zv)]
