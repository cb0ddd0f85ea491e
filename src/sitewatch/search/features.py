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
* texture: the histogram of rotation-invariant uniform local binary patterns (LBP, 8 neighbours
  at distance 1, :func:`lbp_codes`);
* only with ``FeatureConfig(site=True)`` (off by default: it did not raise recall in
  ``search eval``): bright-dark steps, the share of pixels whose 3 x 3 neighbourhood holds
  both a bright (normalised luminance above ``STEP_BRIGHT``: roofs, concrete) and a dark pixel
  (below ``STEP_DARK``: their cast shadow), whatever the sun's direction; and at site scale,
  over the context window (the tile plus one tile on each side), the per-band standard
  deviation, bright and dark shares, mean gradient, edge, line and step densities and the
  dominant orthogonal pair of orientations. The per-pixel maps are then computed over the
  block grown by the context, so these are the same cell sums pooled with a wider box;
* terrain, when a DEM is given (resampled to the image grid): mean and maximum slope, relief
  (maximum minus minimum elevation) and elevation standard deviation;
* learned embeddings, when ``FeatureConfig.embedding`` holds a prepared backbone (local
  pretrained ResNet weights and the ``ml`` extra): :mod:`sitewatch.search.embedding` computes
  them per block beside these (torch stays out of this module) and appends them;
* the spectral match, when ``FeatureConfig.spectral`` holds the examples' per-pixel model
  (:mod:`sitewatch.search.spectral`, on by default): the tile's mean score, appended last.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray
from rasterio.io import DatasetReader
from rasterio.windows import Window

from ..errors import AnalysisError
from .tiles import TileGrid, shadow_quiet

if TYPE_CHECKING:
    from .embedding import Embedding
    from .spectral import SpectralMatch

__all__ = [
    "BandScale",
    "FeatureConfig",
    "block_features",
    "estimate_scale",
    "feature_names",
    "lbp_codes",
    "read_block",
]

logger = logging.getLogger(__name__)

F64 = NDArray[np.float64]
F32 = NDArray[np.float32]
Bool = NDArray[np.bool_]

LBP_BINS = 10  # P + 2 codes of the 'uniform' (rotation-invariant uniform) method for P = 8
_TAN22 = math.tan(math.radians(22.5))
# a bright-dark step: a 3 x 3 neighbourhood holding both a bright (roof, concrete) and a dark
# (cast shadow) pixel, on the normalised luminance
STEP_BRIGHT = 0.85
STEP_DARK = 0.15
# a tile less than half valid (on a nodata edge: a scene border, a mosaic gap) is not scored:
# its descriptors would come from a sliver of pixels, and it would spend the analyst's budget on
# nodata. Tiles overlap by at least half, so every pixel along a straight nodata edge still lies
# in a tile that is at least half valid.
MIN_VALID = 0.5
# cells up to this side are summed by adding strided slices (see _cell_sum)
_SLICE_MAX = 8
# block_features works in sub-blocks of about this many pixels on a side
_SUB_PX = 256


@dataclass(frozen=True)
class FeatureConfig:
    """What to compute: tile and stride (pixels), context, thresholds on normalised values."""

    tile: int = 32
    stride: int = 16
    context: bool = True
    site: bool = False
    edge_threshold: float = 0.08
    line_threshold: float = 0.05
    min_valid: float = MIN_VALID
    embedding: Embedding | None = None
    """Learned embeddings appended to the descriptors (:mod:`.embedding`), or none."""
    spectral: SpectralMatch | None = None
    """The examples' per-pixel spectral model (:mod:`.spectral`), whose tile score is appended
    after the embeddings, or none."""

    def __post_init__(self) -> None:
        if self.tile <= 0 or self.stride <= 0 or self.tile % self.stride:
            raise AnalysisError(
                f"tile {self.tile} px must be a positive multiple of stride {self.stride} px"
            )

    def names(self, n_bands: int, with_dem: bool) -> list[str]:
        """The descriptors' names, the embedding's and the spectral match's columns last."""
        extra = self.embedding.names() if self.embedding is not None else []
        extra += self.spectral.names() if self.spectral is not None else []
        return feature_names(n_bands, with_dem, self.site) + extra

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
    data = shadow_quiet(
        dataset, lambda: dataset.read(list(bands), out_shape=(len(bands), *shape), masked=True)
    )
    lows, highs, flat = [], [], []
    for b in range(len(bands)):
        vals = np.ma.compressed(data[b]).astype(np.float64)
        if vals.size == 0:
            raise AnalysisError(
                f"band {bands[b]} of {dataset.name} has no valid pixels; check its nodata value"
            )
        flat.append(vals.min() == vals.max())
        lo, hi = np.percentile(vals, [2.0, 98.0])
        if hi <= lo:
            hi = lo + 1.0
        lows.append(float(lo))
        highs.append(float(hi))
    if all(flat):
        raise AnalysisError(
            f"every band searched in {dataset.name} is constant: there is nothing to tell sites "
            "from background; check that the file is not empty or saturated (or set its nodata)"
        )
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
    mask = shadow_quiet(dataset, lambda: dataset.dataset_mask(window=inner)) > 0
    valid[r0 : r0 + ih, c0 : c0 + iw] = mask
    return raw, valid


def feature_names(n_bands: int, with_dem: bool, site: bool = False) -> list[str]:
    """Names of the columns of :func:`block_features`, in order."""
    names = []
    for b in range(1, n_bands + 1):
        names += [f"b{b}_mean", f"b{b}_std", f"b{b}_max", f"b{b}_cellmax", f"b{b}_cellmin",
                  f"b{b}_context"]  # fmt: skip
    names += ["bright_fraction", "dark_fraction", "grad_mean", "edge_density", "line_density"]
    names += [f"orient_{i}" for i in range(4)] + ["orient_orthogonal"]
    names += [f"lbp_{i}" for i in range(LBP_BINS)]
    if site:
        names += ["step_density"] + [f"site_b{b}_std" for b in range(1, n_bands + 1)]
        names += ["site_bright_fraction", "site_dark_fraction", "site_grad_mean",
                  "site_edge_density", "site_line_density", "site_step_density",
                  "site_orient_orthogonal"]  # fmt: skip
    if with_dem:
        names += ["slope_mean", "slope_max", "relief", "elev_std"]
    return names


# --- per-block computation --------------------------------------------------------------------


def _cells(a: NDArray[np.generic], s: int, op: np.ufunc) -> F64:
    """``op`` (np.add, np.maximum) folded over s x s cells of ``a`` (..., Y*s, X*s), in float64,
    by folding s strided slices per axis: for small cells 2-3x faster than a reduction over a
    length-s axis of the reshaped array (numpy's inner loop is then only s long)."""
    c: F64 = a[..., 0::s].astype(np.float64)
    for j in range(1, s):
        op(c, a[..., j::s], out=c)
    out: F64 = c[..., 0::s, :].copy()
    for i in range(1, s):
        op(out, c[..., i::s, :], out=out)
    return out


def _cell_sum(a: NDArray[np.generic], s: int) -> F64:
    """Sum of ``a`` (..., Y*s, X*s) over s x s cells, in float64."""
    if s <= _SLICE_MAX:
        return _cells(a, s, np.add)
    *lead, H, W = a.shape
    out: F64 = a.reshape(*lead, H // s, s, W // s, s).sum(axis=(-3, -1), dtype=np.float64)
    return out


def _cell_max(a: NDArray[np.floating[Any]], s: int) -> F64:
    """Maximum of ``a`` (..., Y*s, X*s) over s x s cells, in float64."""
    if s <= _SLICE_MAX:
        return _cells(a, s, np.maximum)
    *lead, H, W = a.shape
    return np.asarray(a.reshape(*lead, H // s, s, W // s, s).max(axis=(-3, -1)), np.float64)


def _windows(a: F64, k: int, op: np.ufunc) -> F64:
    """``op`` (np.add, np.maximum, np.minimum) folded over k x k windows of the last two axes
    (valid part only), by k shifted slices per axis."""
    H, W = a.shape[-2:]
    r = a[..., 0 : H - k + 1, :].copy()
    for i in range(1, k):
        op(r, a[..., i : H - k + 1 + i, :], out=r)
    out: F64 = r[..., 0 : W - k + 1].copy()
    for j in range(1, k):
        op(out, r[..., j : W - k + 1 + j], out=out)
    return out


def _box(a: F64, k: int) -> F64:
    """Sums over k x k windows of the last two axes (valid part only)."""
    if k <= _SLICE_MAX:  # small windows: shifted adds beat two cumulative sums and the padding
        return _windows(a, k, np.add)
    c = np.cumsum(np.cumsum(a, axis=-2), axis=-1)
    c = np.pad(c, [(0, 0)] * (a.ndim - 2) + [(1, 0), (1, 0)])
    out: F64 = c[..., k:, k:] - c[..., :-k, k:] - c[..., k:, :-k] + c[..., :-k, :-k]
    return out


def _window_reduce(a: F64, k: int, how: str) -> F64:
    """Maximum (``how="max"``) or minimum over k x k windows of the last two axes."""
    return _windows(a, k, np.maximum if how == "max" else np.minimum)


def _neighbours_valid(valid: Bool) -> Bool:
    """Pixels (of the interior, one pixel in from each edge) whose 3x3 neighbourhood is valid."""
    v = valid
    out = v[1:-1, 1:-1].copy()
    for dr in (0, 1, 2):
        for dc in (0, 1, 2):
            out &= v[dr : dr + v.shape[0] - 2, dc : dc + v.shape[1] - 2]
    return out


def lbp_codes(q: NDArray[np.uint8], r: int = 1) -> NDArray[np.intp]:
    """Rotation-invariant uniform LBP codes (0..9) of the interior of ``q`` (..., H, W).

    The 8 neighbours are the pixels at Chebyshev distance ``r`` along the rows, columns and
    diagonals, in circular order; the code is the number of neighbours at least as bright as the
    centre when the pattern has at most two 0/1 transitions around the circle, else 9. Integer
    comparisons only, so a pixel's code never depends on the rest of the array (the interpolated
    circle of scikit-image's ``local_binary_pattern`` can flip a code on an exact tie depending
    on the array it is computed in). Returns (..., H - 2r, W - 2r).
    """
    H, W = q.shape[-2:]
    ctr = q[..., r : H - r, r : W - r]
    offsets = [(0, r), (-r, r), (-r, 0), (-r, -r), (0, -r), (r, -r), (r, 0), (r, r)]
    bits = [q[..., r + dr : H - r + dr, r + dc : W - r + dc] >= ctr for dr, dc in offsets]
    ones = np.zeros(ctr.shape, dtype=np.intp)
    transitions = np.zeros(ctr.shape, dtype=np.intp)
    for k in range(8):
        ones += bits[k]
        transitions += bits[k] != bits[(k + 1) % 8]
    out: NDArray[np.intp] = np.where(transitions <= 2, ones, LBP_BINS - 1)
    return out


def _lbp(lum: F32) -> NDArray[np.intp]:
    """Rotation-invariant uniform LBP codes (0..9) of the interior of ``lum`` (see
    :func:`lbp_codes`), on the luminance quantised to 8 bits."""
    q = np.clip(np.rint(lum * 255.0), 0, 255).astype(np.uint8)
    return lbp_codes(q, 1)


def _extremes3(lum: F32) -> tuple[F32, F32]:
    """Maximum and minimum of each interior pixel's 3 x 3 neighbourhood."""
    h, w = lum.shape[0] - 2, lum.shape[1] - 2
    hi = lum[1:-1, 1:-1].copy()
    lo = hi.copy()
    for dr in (0, 1, 2):
        for dc in (0, 1, 2):
            v = lum[dr : dr + h, dc : dc + w]
            np.maximum(hi, v, out=hi)
            np.minimum(lo, v, out=lo)
    return hi, lo


def _orientation(o_t: F64) -> tuple[F64, F64]:
    """Sorted shares of the 4 orientation bins (4, ...) and the dominant orthogonal pair."""
    o_tot = o_t.sum(axis=0)
    o_norm = o_t / np.where(o_tot > 0, o_tot, 1.0)
    o_sorted: F64 = -np.sort(-o_norm, axis=0)
    ortho: F64 = np.maximum(o_norm[0] + o_norm[2], o_norm[1] + o_norm[3])
    return o_sorted, ortho


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
    Returns ``features`` (rows, cols, n_features) and the mask of tiles with at least
    ``cfg.min_valid`` of their pixels valid (other rows of ``features`` are NaN).
    """
    nr, nc = shape
    s, k, P = cfg.stride, cfg.cells_per_tile, cfg.halo
    expect = ((nr - 1 + k) * s + 2 * P, (nc - 1 + k) * s + 2 * P)
    if valid.shape != expect or raw.shape[1:] != expect:
        raise AnalysisError(
            f"block pixels are {raw.shape[1:]} but {shape} tiles of {cfg.tile} px need {expect}"
        )
    # A tile's descriptors depend only on its pixels and its context, so a large block is
    # described in sub-blocks whose per-pixel maps stay in the CPU caches (at stride 2, blocks
    # of 128 x 128 tiles run ~1.6x faster than 256 x 256), with the same results.
    sub = max(_SUB_PX // s, 1)
    if nr <= sub and nc <= sub:
        return _block_features(raw, valid, shape, cfg, scale, dem, gsd)
    n_feat = len(feature_names(raw.shape[0], dem is not None, cfg.site))
    feats = np.empty((nr, nc, n_feat))
    ok = np.empty((nr, nc), dtype=bool)
    for r0 in range(0, nr, sub):
        for c0 in range(0, nc, sub):
            mr, mc = min(sub, nr - r0), min(sub, nc - c0)
            rows = slice(r0 * s, r0 * s + (mr - 1 + k) * s + 2 * P)
            cols = slice(c0 * s, c0 * s + (mc - 1 + k) * s + 2 * P)
            _, ok[r0 : r0 + mr, c0 : c0 + mc] = _block_features(
                raw[:, rows, cols], valid[rows, cols], (mr, mc), cfg, scale,
                None if dem is None else dem[rows, cols], gsd,
                out=feats[r0 : r0 + mr, c0 : c0 + mc],
            )  # fmt: skip
    return feats, ok


def _block_features(
    raw: NDArray[np.generic],
    valid: Bool,
    shape: tuple[int, int],
    cfg: FeatureConfig,
    scale: BandScale,
    dem: F64 | None,
    gsd: tuple[float, float],
    out: F64 | None = None,
) -> tuple[F64, Bool]:
    """:func:`block_features` of one sub-block (shapes already checked), into ``out``."""
    nr, nc = shape
    s, k, c = cfg.stride, cfg.cells_per_tile, cfg.context_cells
    ny, nx = nr - 1 + k, nc - 1 + k
    P = cfg.halo
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
    ok = (n_t > 0) & (n_t >= cfg.min_valid * cfg.tile * cfg.tile)
    denom = np.where(ok, n_t, 1.0)
    mean = _box(s1_in, k) / denom
    var = np.maximum(_box(s2_in, k) / denom - mean * mean, 0.0)
    std = np.sqrt(var)
    with np.errstate(invalid="ignore", divide="ignore"):
        cm = np.where(n_in > 0, s1_in / np.where(n_in > 0, n_in, 1.0), np.nan)
    xin = x[:, P : P + ny * s, P : P + nx * s]
    vin = valid[P : P + ny * s, P : P + nx * s]
    pmax_cells = _cell_max(np.where(vin, xin, -np.inf), s)
    pmax = _window_reduce(pmax_cells, k, "max")
    cmax = _window_reduce(np.where(np.isnan(cm), -np.inf, cm), k, "max")
    cmin = _window_reduce(np.where(np.isnan(cm), np.inf, cm), k, "min")
    if c:
        n_ctx = _box(n_cells, k + 2 * c)
        ctx = _box(s1_cells, k + 2 * c) / np.where(n_ctx > 0, n_ctx, 1.0)
        ctx_diff = mean - ctx
    else:
        ctx_diff = np.zeros_like(mean)
    # --- edges, lines, orientations on the luminance of the tiles and their context (+1 px) ---
    mc = c if cfg.site else 0  # maps over the context only when site-scale features are on
    o0 = P - mc * s
    NY, NX = ny + 2 * mc, nx + 2 * mc
    vmap = valid[o0 : o0 + NY * s, o0 : o0 + NX * s]
    rr, rc = slice(o0 - 1, o0 + NY * s + 1), slice(o0 - 1, o0 + NX * s + 1)
    lum = x[:, rr, rc].mean(axis=0, dtype=np.float32)
    tvo = _neighbours_valid(valid[rr, rc])  # (NY * s, NX * s)
    gx = (lum[1:-1, 2:] - lum[1:-1, :-2]) * np.float32(0.5)
    gy = (lum[2:, 1:-1] - lum[:-2, 1:-1]) * np.float32(0.5)
    mag = np.sqrt(gx * gx + gy * gy) * tvo
    ctr = lum[1:-1, 1:-1]
    line = np.abs(lum[1:-1, 2:] + lum[1:-1, :-2] - 2 * ctr)
    np.maximum(line, np.abs(lum[2:, 1:-1] + lum[:-2, 1:-1] - 2 * ctr), out=line)
    np.maximum(line, np.abs(lum[2:, 2:] + lum[:-2, :-2] - 2 * ctr), out=line)
    np.maximum(line, np.abs(lum[2:, :-2] + lum[:-2, 2:] - 2 * ctr), out=line)
    if cfg.site:
        hi3, lo3 = _extremes3(lum)
        step = (hi3 > STEP_BRIGHT) & (lo3 < STEP_DARK) & tvo
    else:
        step = np.zeros_like(tvo)
    ax, ay = np.abs(gx), np.abs(gy)
    orient = np.where(
        ay <= _TAN22 * ax, 0, np.where(ax <= _TAN22 * ay, 2, np.where(gx * gy > 0, 1, 3))
    )
    inner_px = (slice(mc * s, (mc + ny) * s), slice(mc * s, (mc + nx) * s))
    tv = tvo[inner_px]
    codes = _lbp(lum[mc * s : (mc + ny) * s + 2, mc * s : (mc + nx) * s + 2])
    cell_idx = (np.arange(NY * s) // s)[:, None] * NX + (np.arange(NX * s) // s)[None, :]
    cells = np.stack([
        _cell_sum(tvo, s), _cell_sum(mag, s), _cell_sum(mag > cfg.edge_threshold, s),
        _cell_sum((line > cfg.line_threshold) & tvo, s), _cell_sum(step, s),
        _cell_sum((ctr > 1.0) & vmap, s), _cell_sum((ctr < 0.0) & vmap, s),
    ])  # fmt: skip
    o_cells = np.moveaxis(
        np.asarray(
            np.bincount(
                (cell_idx * 4 + orient).ravel(), weights=mag.ravel(), minlength=NY * NX * 4
            ),
            dtype=np.float64,
        ).reshape(NY, NX, 4),
        -1,
        0,
    )
    t_sums = _box(cells[:, mc : mc + ny, mc : mc + nx], k)
    d_tv = np.where(t_sums[0] > 0, t_sums[0], 1.0)
    n_v = _box(n_in, k)
    d_v = np.where(n_v > 0, n_v, 1.0)
    grad_mean, edge, lines, steps = (t_sums[i] / d_tv for i in (1, 2, 3, 4))
    bright, dark = t_sums[5] / d_v, t_sums[6] / d_v
    o_sorted, ortho = _orientation(_box(o_cells[:, mc : mc + ny, mc : mc + nx], k))
    cell_in = (np.arange(ny * s) // s)[:, None] * nx + (np.arange(nx * s) // s)[None, :]
    lbp_hist = (
        np.bincount((cell_in * LBP_BINS + codes)[tv], minlength=ny * nx * LBP_BINS)
        .reshape(ny, nx, LBP_BINS)
        .astype(np.float64)
    )
    lbp_t = _box(np.moveaxis(lbp_hist, -1, 0), k) / d_tv
    cols: list[F64] = []
    for b in range(nb):
        cols += [mean[b], std[b], pmax[b], cmax[b], cmin[b], ctx_diff[b]]
    cols += [bright, dark, grad_mean, edge, lines, *o_sorted, ortho, *lbp_t]
    if cfg.site:
        cols.append(steps)
        # --- the same at site scale: the context window (tile plus one tile on each side) ---
        w = k + 2 * c
        c_sums = _box(cells, w)
        d_ctv = np.where(c_sums[0] > 0, c_sums[0], 1.0)
        n_w = _box(n_cells, w)
        d_w = np.where(n_w > 0, n_w, 1.0)
        m_w = _box(s1_cells, w) / d_w
        std_w = np.sqrt(np.maximum(_box(s2_cells, w) / d_w - m_w * m_w, 0.0))
        cols += [std_w[b] for b in range(nb)]
        cols += [c_sums[5] / d_w, c_sums[6] / d_w] + [c_sums[i] / d_ctv for i in (1, 2, 3, 4)]
        cols.append(_orientation(_box(o_cells, w))[1])
    if dem is not None:
        cols += _terrain(dem, P, ny, nx, s, k, gsd)
    feats = np.empty((nr, nc, len(cols))) if out is None else out
    for i, col in enumerate(cols):  # column by column: faster than np.stack(axis=-1)
        feats[..., i] = col
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
    sl = _cell_max(slope, s)
    slope_max = _window_reduce(sl, k, "max")
    zmax = _cell_max(np.where(vc, zc, -np.inf), s)
    zmin = -_cell_max(np.where(vc, -zc, -np.inf), s)
    hi = _window_reduce(zmax, k, "max")
    lo = _window_reduce(zmin, k, "min")
    relief = np.where(np.isfinite(hi) & np.isfinite(lo), hi - lo, 0.0)
    n_z = _box(_cell_sum(vc, s), k)
    d_z = np.where(n_z > 0, n_z, 1.0)
    zm = _box(_cell_sum(np.where(vc, zc, 0.0), s), k) / d_z
    zv = np.maximum(_box(_cell_sum(np.where(vc, zc * zc, 0.0), s), k) / d_z - zm * zm, 0.0)
    return [slope_mean, slope_max, relief, np.sqrt(zv)]
