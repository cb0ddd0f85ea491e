"""The straightforward per-tile computation of the search descriptors (the benchmark's peer).

It reads one tile (plus its halo) at a time and computes each descriptor directly on that tile's
pixels, with no sharing between overlapping tiles. :func:`sitewatch.search.features.block_features`
must give the same numbers; tests and ``bench/search.py`` check that it does.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from rasterio.io import DatasetReader
from scipy import ndimage

from .features import LBP_BINS, STEP_BRIGHT, STEP_DARK, BandScale, FeatureConfig, _lbp, read_block
from .tiles import TileGrid

__all__ = ["tile_features"]

F64 = NDArray[np.float64]


def _orientation_bins(gx: NDArray[np.floating], gy: NDArray[np.floating]) -> NDArray[np.intp]:
    ang = np.degrees(np.arctan2(gy.astype(np.float64), gx.astype(np.float64))) % 180.0
    out: NDArray[np.intp] = (((ang + 22.5) // 45.0) % 4).astype(np.intp)
    return out


def _site_features(
    x: NDArray[np.float32], valid: NDArray[np.bool_], o: int, W: int, cfg: FeatureConfig
) -> list[float]:
    """The site-scale descriptors of the ``W`` x ``W`` window at offset ``o`` of ``x``."""
    win = (slice(o, o + W), slice(o, o + W))
    v = valid[win]
    out = [float(x[b][win][v].astype(np.float64).std()) for b in range(x.shape[0])]
    lum = x[:, o - 1 : o + W + 1, o - 1 : o + W + 1].mean(axis=0, dtype=np.float32)
    ring_v = valid[o - 1 : o + W + 1, o - 1 : o + W + 1]
    tv = ndimage.binary_erosion(ring_v, structure=np.ones((3, 3), bool))[1:-1, 1:-1]
    lum_w = lum[1:-1, 1:-1]
    nv = max(int(v.sum()), 1)
    out += [float((lum_w[v] > 1.0).sum()) / nv, float((lum_w[v] < 0.0).sum()) / nv]
    gy_full, gx_full = np.gradient(lum)
    gx, gy = gx_full[1:-1, 1:-1], gy_full[1:-1, 1:-1]
    mag = np.sqrt(gx * gx + gy * gy)
    c0 = lum[1:-1, 1:-1]
    line = np.max(np.abs(np.stack([
        lum[1:-1, 2:] + lum[1:-1, :-2] - 2 * c0, lum[2:, 1:-1] + lum[:-2, 1:-1] - 2 * c0,
        lum[2:, 2:] + lum[:-2, :-2] - 2 * c0, lum[2:, :-2] + lum[:-2, 2:] - 2 * c0,
    ])), axis=0)  # fmt: skip
    hi3 = ndimage.maximum_filter(lum, size=3)[1:-1, 1:-1]
    lo3 = ndimage.minimum_filter(lum, size=3)[1:-1, 1:-1]
    d = max(int(tv.sum()), 1)
    out += [
        float(mag[tv].astype(np.float64).sum()) / d,
        float((mag[tv] > cfg.edge_threshold).sum()) / d,
        float((line[tv] > cfg.line_threshold).sum()) / d,
        float(((hi3 > STEP_BRIGHT) & (lo3 < STEP_DARK))[tv].sum()) / d,
    ]
    bins = _orientation_bins(gx, gy)
    hist = np.array([mag[tv & (bins == i)].astype(np.float64).sum() for i in range(4)])
    total = hist.sum()
    hist = hist / total if total > 0 else hist
    out.append(float(max(hist[0] + hist[2], hist[1] + hist[3])))
    return out


def tile_features(
    dataset: DatasetReader,
    grid: TileGrid,
    row: int,
    col: int,
    cfg: FeatureConfig,
    scale: BandScale,
    bands: list[int],
) -> F64 | None:
    """Descriptors of tile ``(row, col)`` computed on its own; None when it has no valid pixel
    or fewer than ``cfg.min_valid`` of its pixels are valid."""
    P, T, s, k, c = cfg.halo, cfg.tile, cfg.stride, cfg.cells_per_tile, cfg.context_cells
    win = grid.window(row, col)
    raw, valid = read_block(
        dataset,
        win.__class__(win.col_off - P, win.row_off - P, T + 2 * P, T + 2 * P),
        bands,
    )
    x = scale.apply(raw)
    x[:, ~valid] = 0.0
    tile_v = valid[P : P + T, P : P + T]
    if not tile_v.any() or tile_v.sum() < cfg.min_valid * T * T:
        return None
    feats: list[float] = []
    for b in range(x.shape[0]):
        px = x[b, P : P + T, P : P + T][tile_v].astype(np.float64)
        cells = []
        for i in range(k):
            for j in range(k):
                cv = tile_v[i * s : (i + 1) * s, j * s : (j + 1) * s]
                if cv.any():
                    cx = x[b, P + i * s : P + (i + 1) * s, P + j * s : P + (j + 1) * s]
                    cells.append(float(cx[cv].astype(np.float64).mean()))
        lo, hi = P - c * s, P + T + c * s
        ctx_v = valid[lo:hi, lo:hi]
        ctx = float(x[b, lo:hi, lo:hi][ctx_v].astype(np.float64).mean()) if c else float(px.mean())
        feats += [float(px.mean()), float(px.std()), float(px.max()), max(cells), min(cells),
                  float(px.mean()) - ctx]  # fmt: skip
    ring = slice(P - 1, P + T + 1)
    lum = x[:, ring, ring].mean(axis=0, dtype=np.float32)
    tv = ndimage.binary_erosion(valid[ring, ring], structure=np.ones((3, 3), bool))[1:-1, 1:-1]
    n_tv = int(tv.sum())
    gy_full, gx_full = np.gradient(lum)
    gx, gy = gx_full[1:-1, 1:-1], gy_full[1:-1, 1:-1]
    mag = np.sqrt(gx * gx + gy * gy)
    second = [
        lum[1:-1, 2:] + lum[1:-1, :-2] - 2 * lum[1:-1, 1:-1],
        lum[2:, 1:-1] + lum[:-2, 1:-1] - 2 * lum[1:-1, 1:-1],
        lum[2:, 2:] + lum[:-2, :-2] - 2 * lum[1:-1, 1:-1],
        lum[2:, :-2] + lum[:-2, 2:] - 2 * lum[1:-1, 1:-1],
    ]
    line = np.max(np.abs(np.stack(second)), axis=0)
    d = max(n_tv, 1)
    lum_tile = lum[1:-1, 1:-1][tile_v]
    feats += [
        float((lum_tile > 1.0).sum()) / lum_tile.size,
        float((lum_tile < 0.0).sum()) / lum_tile.size,
    ]
    feats += [
        float(mag[tv].astype(np.float64).sum()) / d,
        float((mag[tv] > cfg.edge_threshold).sum()) / d,
        float((line[tv] > cfg.line_threshold).sum()) / d,
    ]
    bins = _orientation_bins(gx, gy)
    hist = np.array([mag[tv & (bins == i)].astype(np.float64).sum() for i in range(4)])
    total = hist.sum()
    hist = hist / total if total > 0 else hist
    feats += sorted(hist.tolist(), reverse=True)
    feats.append(max(hist[0] + hist[2], hist[1] + hist[3]))
    codes = _lbp(lum)
    lbp = np.bincount(codes[tv], minlength=LBP_BINS).astype(np.float64) / d
    feats += lbp.tolist()
    if cfg.site:
        hi3 = ndimage.maximum_filter(lum, size=3)[1:-1, 1:-1]
        lo3 = ndimage.minimum_filter(lum, size=3)[1:-1, 1:-1]
        step = (hi3 > STEP_BRIGHT) & (lo3 < STEP_DARK)
        feats.append(float(step[tv].sum()) / d)
        feats += _site_features(x, valid, P - c * s, T + 2 * c * s, cfg)
    return np.asarray(feats, dtype=np.float64)
