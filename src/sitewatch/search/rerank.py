"""Second stage: re-rank the first stage's best candidates with richer descriptors.

The first stage scores every tile of the AOI with descriptors cheap enough to compute everywhere
and a linear few-shot model. The candidates covering the best ``SearchParams.rerank`` share of the
searched area (4% by default) are read again and described by :func:`window_descriptors`, all
invariant to the site's orientation:

* per band: the mean, standard deviation, 5th and 95th percentiles, and the mean of the tile's
  brightest tenth of pixels (the colour of roofs and concrete);
* the histogram of the normalised luminance (six bins);
* bright and dark objects (connected components of pixels brighter than the image's 98th
  percentile or darker than its 2nd): their share, count, the largest one's size, elongation
  and rectangularity (area over that of the rectangle with the same second moments), and the
  share of bright pixels with a dark pixel within two pixels (a building and its shadow);
* gradients: mean and 90th percentile of the magnitude, the magnitude-weighted histogram of
  orientations in eight bins rolled so the strongest comes first, and the share of the dominant
  orthogonal pair;
* texture: rotation-invariant uniform LBP histograms at radius 1 and 2.

The scorer is an extremely randomised forest (non-linear: it can learn the few ways the hard
background differs from the examples). Positives are the examples' tiles under the eight flips
and rotations of the square; negatives are random background tiles plus the re-ranked candidates
themselves. An analyst's top candidates are overwhelmingly background that looks like the
examples (the hard negatives that triage would reject), so each candidate is scored by a forest
fitted on the *other* folds of candidates (cross-fitting: no candidate is ever scored by a model
that was told it is background). Candidates on or next to the examples are never negatives.
A fold's forest learns from at most :data:`HARD_MAX` (20,000) of the other folds' candidates,
drawn at random: fitting it costs in proportion to its rows, and on a 6,711 km2 search with
50,000 candidates the five forests took a quarter of the time (9.7 s of 36 s; 5.3 s capped).
On ``search eval`` seeds 0-2 (40 m tiles, 34,000 and 42,000 candidates, so 27,000 and 34,000
per fold before the cap) it found 58 of 60 held-out NAIP sites at 500x as before, and 51 of 60
Landsat sites against 52.

Everything here is a pure function of the pixels and the seed, so a dask cluster and local
threads give the same ranking. A window larger than the tile (2 or 3 tile sides) and linear or
nearest-example scorers ranked the held-out sites of ``search eval`` lower (seeds 0-2). None of
these gained on both NAIP and Landsat either (80 m tiles, recall at 500x on seeds 0-2: 0.92 /
0.65 with the defaults, 0.83-0.90 / 0.63-0.73 with them): a second stage over 10% or 20% of
the area (more Landsat sites reach it, but on NAIP, where the first stage passes every site on,
the extra background outranks some), with or without the first stage's score as a prior; a
second pass that drops the best-scored candidates from the negatives; 2 or 10 folds, 600
trees, leaves of 1 or 5, 30% of the features per split. Nor did (Landsat, seeds 0-2, 40 of 60 found at 500x
in the same replay): the first stage's descriptors appended to these (41, or 40 with the
contrast-to-ring ones), or positives from windows on a half-stride grid around each example
(more offsets of the site in the window, 40). :mod:`.run` lists the first-stage variants.
"""

from __future__ import annotations

import itertools
import logging
import warnings
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from rasterio.io import DatasetReader
from rasterio.windows import Window
from scipy import ndimage

from ..errors import AnalysisError
from .features import BandScale, lbp_codes, read_block
from .tiles import TileGrid

__all__ = [
    "FOLDS",
    "HARD_MAX",
    "TREES",
    "cross_fitted_scores",
    "near_tiles",
    "positive_descriptors",
    "read_windows",
    "rerank_names",
    "window_descriptors",
]

logger = logging.getLogger(__name__)

F64 = NDArray[np.float64]
F32 = NDArray[np.float32]
Bool = NDArray[np.bool_]

FOLDS = 5
TREES = 200
HARD_MAX = 20_000  # candidates (hard negatives) per fold's forest, at most
_LUM_EDGES = (0.0, 0.25, 0.5, 0.75, 1.0)
_LBP = ((8, 1), (8, 2))
_BUCKET_PX = 512  # read_windows groups tiles by squares of this side (pixels)
# and reads a group at once unless its window holds more than this many pixels per tile (one
# small read costs about as much as decoding and copying 4096 more pixels in a large one)
_READ_PX_PER_TILE = 4096


def rerank_names(n_bands: int) -> list[str]:
    """Names of the columns of :func:`window_descriptors`."""
    names = []
    for b in range(1, n_bands + 1):
        names += [f"b{b}_mean", f"b{b}_std", f"b{b}_p05", f"b{b}_p95", f"b{b}_bright_mean"]
    names += [f"lum_hist_{i}" for i in range(len(_LUM_EDGES) + 1)]
    for kind in ("bright", "dark"):
        names += [f"{kind}_share", f"{kind}_objects", f"{kind}_largest",
                  f"{kind}_elongation", f"{kind}_rectangularity"]  # fmt: skip
    names += ["bright_dark_adjacent"]
    names += ["grad_mean", "grad_p90"] + [f"orient8_{i}" for i in range(8)] + ["orient8_ortho"]
    for p, r in _LBP:
        names += [f"lbp{p}r{r}_{i}" for i in range(p + 2)]
    return names


def read_windows(
    dataset: DatasetReader,
    grid: TileGrid,
    tiles: Sequence[tuple[int, int]],
    scale: BandScale,
    bands: Sequence[int],
) -> tuple[F32, Bool]:
    """The normalised pixels of each tile (n, bands, T, T) and their validity (n, T, T)."""
    W, s = grid.tile, grid.stride
    n = len(tiles)
    out = np.zeros((n, len(bands), W, W), dtype=np.float32)
    valid = np.zeros((n, W, W), dtype=bool)
    # tiles close together (a block's candidates) are cut from one read of their bounding
    # window: one small read per tile costs ~0.1 ms, most of the second stage on small tiles
    buckets: dict[tuple[int, int], list[int]] = {}
    for i, (r, c) in enumerate(tiles):
        buckets.setdefault((r * s // _BUCKET_PX, c * s // _BUCKET_PX), []).append(i)
    for idx in buckets.values():
        rows = np.array([tiles[i][0] for i in idx]) * s
        cols = np.array([tiles[i][1] for i in idx]) * s
        r0, c0 = int(rows.min()), int(cols.min())
        h, w = int(rows.max()) - r0 + W, int(cols.max()) - c0 + W
        if len(idx) * _READ_PX_PER_TILE < h * w:  # too sparse: read tile by tile
            for i, r, c in zip(idx, rows.tolist(), cols.tolist(), strict=True):
                raw, v = read_block(dataset, Window(c, r, W, W), bands)
                out[i] = scale.apply(raw)
                valid[i] = v
            continue
        raw, v = read_block(dataset, Window(c0, r0, w, h), bands)
        x = scale.apply(raw)
        for i, r, c in zip(idx, (rows - r0).tolist(), (cols - c0).tolist(), strict=True):
            out[i] = x[:, r : r + W, c : c + W]
            valid[i] = v[r : r + W, c : c + W]
    out *= valid[:, None]
    return out, valid


def _dihedral(a: NDArray[np.generic]) -> list[NDArray[np.generic]]:
    """The 8 flips and rotations of the last two axes."""
    out = []
    for k in range(4):
        r = np.rot90(a, k, axes=(-2, -1))
        out += [r, r[..., ::-1]]
    return out


def _objects(mask: Bool, valid: Bool) -> F64:
    """Per window (n, W, W): share of the valid pixels, count, largest size (share of the valid
    pixels), its elongation and rectangularity."""
    n = mask.shape[0]
    res = np.zeros((n, 5))
    n_valid = np.maximum(valid.reshape(n, -1).sum(axis=1), 1).astype(np.float64)
    res[:, 0] = mask.reshape(n, -1).sum(axis=1) / n_valid
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = True  # 8-connected within a window, never across windows
    labels, m = ndimage.label(mask, structure=structure)
    if m == 0:
        return res
    ww_i, rr_i, cc_i = np.nonzero(mask)
    lab = labels[ww_i, rr_i, cc_i]
    rr, cc, ww = (a.astype(np.float64) for a in (rr_i, cc_i, ww_i))

    def per_object(weights: F64 | None) -> F64:
        out: F64 = np.bincount(lab, weights=weights, minlength=m + 1)[1:].astype(np.float64)
        return out

    size = per_object(None)
    win = np.rint(per_object(ww) / size).astype(np.intp)
    mr, mc = per_object(rr) / size, per_object(cc) / size
    vrr = per_object(rr * rr) / size - mr * mr
    vcc = per_object(cc * cc) / size - mc * mc
    vrc = per_object(rr * cc) / size - mr * mc
    tr, det = vrr + vcc, vrr * vcc - vrc * vrc
    disc = np.sqrt(np.maximum(tr * tr / 4.0 - det, 0.0))
    l1 = tr / 2.0 + disc + 1.0 / 12.0  # a pixel's own extent
    l2 = np.maximum(tr / 2.0 - disc, 0.0) + 1.0 / 12.0
    elong = np.sqrt(l1 / l2)
    rect = size / (12.0 * np.sqrt(l1 * l2))
    big = size >= 2
    np.add.at(res[:, 1], win[big], 1.0)
    # the largest object per window
    order = np.lexsort((-size, win))
    first = np.ones(len(order), dtype=bool)
    first[1:] = win[order][1:] != win[order][:-1]
    top = order[first]
    res[win[top], 2] = size[top] / n_valid[win[top]]
    res[win[top], 3] = np.where(size[top] >= 2, elong[top], 1.0)
    res[win[top], 4] = np.where(size[top] >= 2, np.minimum(rect[top], 2.0), 0.0)
    return res


def _lbp_hist(lum: F32, valid: Bool) -> F64:
    """Rotation-invariant uniform LBP histograms (:func:`.features.lbp_codes`, 8 neighbours at
    distance 1 and 2) per window, over the centres whose neighbours are all valid."""
    n, H, W = lum.shape
    q = np.clip(np.rint(lum * 255.0), 0, 255).astype(np.uint8)
    blocks = []
    for p, r in _LBP:
        code = lbp_codes(q, r)
        # nodata would read as dark neighbours
        v = ndimage.binary_erosion(
            valid,
            structure=np.pad(
                np.ones((1, 2 * r + 1, 2 * r + 1), dtype=bool), ((1, 1), (0, 0), (0, 0))
            ),
        )[:, r : H - r, r : W - r]
        idx = (np.arange(n)[:, None, None] * (p + 2) + code)[v]
        hist = np.bincount(idx, minlength=n * (p + 2)).reshape(n, p + 2).astype(np.float64)
        blocks.append(hist / np.maximum(hist.sum(axis=1, keepdims=True), 1.0))
    return np.hstack(blocks)


def _percentiles(a: F64, ok: Bool, qs: Sequence[float]) -> list[F64]:
    """Per row of ``a`` (n, m), the percentiles ``qs`` of the entries where ``ok`` (linear)."""
    srt = np.sort(np.where(ok, a, np.inf), axis=1)
    nv = ok.sum(axis=1)
    srt[nv == 0] = 0.0  # rows with no valid entry (the invalid ones sort last otherwise)
    rows = np.arange(len(a))
    out = []
    for q in qs:
        pos = np.maximum(nv - 1, 0) * (q / 100.0)
        lo = np.floor(pos).astype(np.intp)
        hi = np.minimum(lo + 1, np.maximum(nv - 1, 0))
        frac = pos - lo
        val = srt[rows, lo] * (1.0 - frac) + srt[rows, hi] * frac
        out.append(np.where(nv > 0, val, 0.0))
    return out


def window_descriptors(chips: F32, valid: Bool) -> F64:
    """Descriptors (n, d) of normalised windows (n, bands, W, W) with validity (n, W, W)."""
    n, nb, W, _ = chips.shape
    if n == 0:
        return np.zeros((0, len(rerank_names(nb))))
    cols: list[F64] = []
    v = valid.reshape(n, -1)
    nv = np.maximum(v.sum(axis=1), 1)
    x = np.where(valid[:, None], chips, np.nan).reshape(n, nb, -1).astype(np.float64)
    lum = chips.mean(axis=1)
    lum_flat = np.where(v, lum.reshape(n, -1), np.nan)
    bright_cut = _percentiles(lum.reshape(n, -1).astype(np.float64), v, [90.0])[0]
    top_px = lum_flat >= bright_cut[:, None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for b in range(nb):
            xb = x[:, b]
            p05, p95 = _percentiles(xb, v, [5.0, 95.0])
            cols += [
                np.nanmean(xb, axis=1),
                np.nanstd(xb, axis=1),
                p05,
                p95,
                np.nanmean(np.where(top_px, xb, np.nan), axis=1),
            ]
    edges = (-np.inf, *_LUM_EDGES, np.inf)
    for lo, hi in itertools.pairwise(edges):
        cols.append(((lum_flat >= lo) & (lum_flat < hi)).sum(axis=1) / nv)
    bright = (lum > 1.0) & valid
    dark = (lum < 0.0) & valid
    ob, od = _objects(bright, valid), _objects(dark, valid)
    cols += [ob[:, i] for i in range(5)] + [od[:, i] for i in range(5)]
    near_dark = ndimage.binary_dilation(
        dark, structure=np.pad(np.ones((1, 5, 5), dtype=bool), ((1, 1), (0, 0), (0, 0)))
    )
    nb_px = np.maximum(bright.reshape(n, -1).sum(axis=1), 1)
    cols.append((bright & near_dark).reshape(n, -1).sum(axis=1) / nb_px)
    gy, gx = np.gradient(lum, axis=(1, 2))
    tv = ndimage.binary_erosion(
        valid, structure=np.pad(np.ones((1, 3, 3), dtype=bool), ((1, 1), (0, 0), (0, 0)))
    )
    mag = np.where(tv, np.sqrt(gx * gx + gy * gy), 0.0).reshape(n, -1).astype(np.float64)
    ntv = np.maximum(tv.reshape(n, -1).sum(axis=1), 1)
    cols.append(mag.sum(axis=1) / ntv)
    cols.append(_percentiles(mag, tv.reshape(n, -1), [90.0])[0])
    ang = (np.degrees(np.arctan2(gy, gx)) % 180.0).reshape(n, -1)
    bins = (ang // 22.5).astype(np.intp) % 8
    hist = np.zeros((n, 8))
    np.add.at(hist, (np.repeat(np.arange(n), W * W), bins.ravel()), mag.ravel())
    hist /= np.maximum(hist.sum(axis=1, keepdims=True), 1e-12)
    first = hist.argmax(axis=1)
    rolled = hist[np.arange(n)[:, None], (first[:, None] + np.arange(8)[None, :]) % 8]
    cols += [rolled[:, i] for i in range(8)]
    cols.append(rolled[:, 0] + rolled[:, 4])
    lbp = _lbp_hist(lum, valid)
    cols += [lbp[:, i] for i in range(lbp.shape[1])]
    out = np.stack(cols, axis=1)
    return np.nan_to_num(out, nan=0.0)


def near_tiles(tiles: NDArray[np.int64], known: NDArray[np.int64], reach: int) -> Bool:
    """Which of ``tiles`` (n, 2 row/col) lie within ``reach`` tile steps of a ``known`` tile
    (Chebyshev distance): tiles on or next to a known site, never to be used as negatives."""
    if len(tiles) == 0 or len(known) == 0:
        return np.zeros(len(tiles), dtype=bool)
    dist = np.abs(tiles[:, None, :] - known[None, :, :]).max(axis=2).min(axis=1)
    return np.asarray(dist <= reach)


def positive_descriptors(chips: F32, valid: Bool) -> F64:
    """Descriptors of the example windows under the 8 flips and rotations of the square."""
    rows = []
    for ch, v in zip(_dihedral(chips), _dihedral(valid), strict=True):
        rows.append(window_descriptors(np.ascontiguousarray(ch), np.ascontiguousarray(v)))
    return np.vstack(rows)


def cross_fitted_scores(
    positives: F64,
    background: F64,
    candidates: F64,
    *,
    exclude: Bool | None = None,
    folds: int = FOLDS,
    trees: int = TREES,
    seed: int = 0,
    hard_max: int = HARD_MAX,
) -> F64:
    """Second-stage scores (log-odds) of ``candidates``, each from a forest not fitted on it.

    ``background`` rows are random background tiles; the candidates (except those flagged in
    ``exclude``: tiles on or next to the examples) are hard negatives, split into ``folds``
    (1: none of them is a negative); a fold's forest learns from at most ``hard_max`` of the
    other folds' candidates, drawn at random. The forests grow their trees on all cores
    (scikit-learn draws every tree's seed before it hands them out) and predict on one, so the
    scores do not depend on the number of cores.
    """
    from sklearn.ensemble import ExtraTreesClassifier

    n = len(candidates)
    out = np.full(n, np.nan)
    if n == 0:
        return out
    if len(positives) == 0:
        raise AnalysisError("no positive example to re-rank the candidates with")
    usable = np.ones(n, dtype=bool) if exclude is None else ~exclude
    folds = max(folds, 1)
    fold = np.random.default_rng(seed).integers(0, folds, size=n)
    pick = np.random.default_rng([seed, 1])
    for f in range(folds):
        train = usable & (fold != f) if folds > 1 else np.zeros(n, dtype=bool)
        hard = np.flatnonzero(train)
        if hard.size > hard_max:  # a random share: the forest's cost grows with its rows
            hard = np.sort(pick.choice(hard, size=hard_max, replace=False))
        X = np.vstack([positives, background, candidates[hard]])
        y = np.r_[np.ones(len(positives)), np.zeros(len(X) - len(positives))]
        forest = ExtraTreesClassifier(
            n_estimators=trees, min_samples_leaf=2, max_features="sqrt",
            class_weight="balanced", random_state=seed, n_jobs=-1,
        )  # fmt: skip
        forest.fit(X, y)
        forest.set_params(n_jobs=1)  # summed tree by tree in order: the same bits on any machine
        sel = fold == f
        if sel.any():
            prob = forest.predict_proba(candidates[sel])[:, 1]
            out[sel] = np.log(prob + 1e-3) - np.log(1.0 - prob + 1e-3)
    return out
