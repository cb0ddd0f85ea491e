"""Spectral matching: a per-pixel model of what the examples are made of (a first-stage descriptor).

The tile descriptors of :mod:`.features` describe a tile's brightness, edges and texture; on
bright, busy ground (a town, bare soil, sand bars at 30 m) a site's concrete, roofs and spoil
have as much texture as the ground around them and those descriptors cannot tell them apart.
What still differs is the *material*: the share of each band in a pixel's spectrum. This module
learns it from the examples, per pixel, as a few-shot classifier:

* positives: the pixels within :data:`POS_TILES` tiles of each example point (a site and some
  ground around it, since the example is a point, not an outline);
* negatives: random pixels of the image, and the ring :data:`RING_TILES` tiles around each
  example, weighted :data:`RING_WEIGHT` times, so the ground the examples stand on is learnt as
  ground (without it, one example on sand teaches "sand" and every sand bar lights up);
* a gradient-boosted classifier (scikit-learn) on the normalised bands and their shares of the
  pixel's sum, refitted once on the :data:`KEEP_SHARE` of example pixels it finds most
  site-like (multiple-instance learning: most pixels of an example window are ground).

The classifier is then tabulated over the quantised band space (more than :data:`MAX_DIMS`
bands are first projected to that many dimensions; at most :data:`LUT_MAX`
entries), so that scoring an image is a table lookup per pixel, not a model evaluation: the
search's speed is kept. A tile's descriptor is the mean over its pixels of the classifier's
positive log-odds (capped at :data:`LOGIT_CAP`): pixels that look like the examples' materials
count, ground that does not counts zero. On the planted-site evaluation (``search eval``,
Landsat, development seeds 0-8) this score on its own finds 167 of 180 held-out sites at 500x
area reduction against 149 for the other descriptors; see ``search/evaluate.py``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from rasterio.io import DatasetReader
from rasterio.windows import Window

from ..errors import AnalysisError
from .features import read_block
from .tiles import shadow_quiet

__all__ = ["SpectralMatch", "prepare_spectral"]

logger = logging.getLogger(__name__)

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]

POS_TILES = 2
"""Example pixels: those within this many tiles (square) of an example point."""
RING_TILES = (3, 6)
"""The ground around an example: pixels between these distances (in tiles) from its point."""
RING_WEIGHT = 5.0
BACKGROUND_PIXELS = 100_000
KEEP_SHARE = 0.4
LOGIT_CAP = 10.0
LUT_MAX = 1 << 20
RANGE_SHARE = 1e-4
"""The model's band range leaves out this share of its pixels at each end (sensor glints)."""
MAX_LEVELS = 32
MAX_DIMS = 4
"""More bands than this are projected to this many dimensions before the table (32 levels
each): tabulated band by band, 13 Sentinel-2 bands would get 2 levels each."""
_SHARE_EPS = 0.05


def _levels(n_bands: int) -> int:
    """Quantisation levels per band so that the table has at most :data:`LUT_MAX` entries."""
    per_band = int(float(LUT_MAX) ** (1.0 / n_bands) + 1e-9)  # floor: positive
    return max(2, min(MAX_LEVELS, per_band))


def _normalise(raw: NDArray[np.generic], low: Sequence[float], high: Sequence[float]) -> F32:
    """Band values (bands, ...) scaled to 0..1 between ``low`` and ``high`` per band."""
    shape = (-1,) + (1,) * (raw.ndim - 1)
    lo = np.asarray(low, dtype=np.float32).reshape(shape)
    span = np.asarray(high, dtype=np.float32).reshape(shape) - lo
    span = np.where(span > 0, span, np.float32(1.0)).astype(np.float32)
    out: F32 = ((raw.astype(np.float32) - lo) / span).astype(np.float32, copy=False)
    return out


def _design(x: F32) -> F32:
    """Classifier inputs of pixels (n, bands) in normalised units: the bands and their shares."""
    pos = np.maximum(x, 0.0) + _SHARE_EPS
    shares = pos / pos.sum(axis=1, keepdims=True)
    out: F32 = np.hstack([x, shares]).astype(np.float32)
    return out


@dataclass(frozen=True)
class SpectralMatch:
    """The tabulated per-pixel model: ``lut[q]`` is the capped positive log-odds of the bin ``q``
    of the quantised dimensions (``levels`` per dimension between ``low`` and ``high``,
    row-major). The dimensions are the bands, or for more than :data:`MAX_DIMS` bands their
    projection ``weights.T @ bands + bias`` (see :func:`_projection`). The range is the model's
    own, that of the pixels it was fitted on (nearly all of them): the search's robust band
    stretch would fold the brightest pixels, where roofs and concrete often lie, into one bin."""

    low: tuple[float, ...]
    high: tuple[float, ...]
    lut: F32
    weights: F32 | None = None
    """(bands, dims) of the projection, or None when the dimensions are the bands."""
    bias: F32 | None = None

    def __post_init__(self) -> None:
        dims = len(self.low)
        if len(self.high) != dims or self.levels**dims != self.lut.size:
            raise AnalysisError(
                f"a spectral table of {self.lut.size} bins does not fit {dims} dimensions"
            )
        if self.weights is not None and (
            self.weights.ndim != 2
            or self.weights.shape[1] != dims
            or self.bias is None
            or self.bias.shape != (dims,)
        ):
            raise AnalysisError(f"a spectral projection does not fit {dims} dimensions")

    @property
    def n_bands(self) -> int:
        """Bands the model was fitted on."""
        return int(self.weights.shape[0]) if self.weights is not None else len(self.low)

    @property
    def levels(self) -> int:
        """Quantisation levels per dimension."""
        return round(math.pow(self.lut.size, 1.0 / len(self.low)))

    def normalise(self, raw: NDArray[np.generic]) -> F32:
        """Band values (bands, ...) as the model's dimensions scaled to 0..1 over its range."""
        if self.weights is None or self.bias is None:
            return _normalise(raw, self.low, self.high)
        flat = raw.reshape(raw.shape[0], -1).astype(np.float32)
        proj = (self.weights.T @ flat + self.bias[:, None]).reshape((-1, *raw.shape[1:]))
        return _normalise(proj, self.low, self.high)

    def names(self) -> list[str]:
        """The descriptor it adds."""
        return ["spectral_match"]

    def pixel_scores(self, raw: NDArray[np.generic]) -> F32:
        """Per-pixel scores of band values (bands, H, W)."""
        if raw.shape[0] != self.n_bands:
            raise AnalysisError(
                f"the spectral model was fitted on {self.n_bands} bands, got {raw.shape[0]}"
            )
        norm = np.nan_to_num(self.normalise(raw), nan=0.0, posinf=1.0, neginf=0.0)
        L = self.levels
        idx = np.zeros(norm.shape[1:], dtype=np.int64)
        for b in range(norm.shape[0]):
            q = np.clip(norm[b] * L, 0, L - 1).astype(np.int64)
            idx *= L
            idx += q
        out: F32 = self.lut[idx]
        return out

    def tile_means(
        self,
        raw: NDArray[np.generic],
        valid: NDArray[np.bool_],
        shape: tuple[int, int],
        stride: int,
        cells_per_tile: int,
        halo: int,
    ) -> F64:
        """Mean pixel score of each tile of a block (rows, cols), from the block's pixels grown
        by ``halo`` on every side (the layout of :func:`sitewatch.search.features.block_features`)."""
        nr, nc = shape
        s, k = stride, cells_per_tile
        h, w = (nr - 1 + k) * s, (nc - 1 + k) * s
        inner = (slice(halo, halo + h), slice(halo, halo + w))
        score = self.pixel_scores(raw[(slice(None), *inner)])
        score = np.where(valid[inner], score, np.float32(0.0))
        cells = score.reshape(nr - 1 + k, s, nc - 1 + k, s).sum(axis=(1, 3), dtype=np.float64)
        tiles = np.zeros((nr, nc))
        for dr in range(k):
            for dc in range(k):
                tiles += cells[dr : dr + nr, dc : dc + nc]
        out: F64 = tiles / float((k * s) ** 2)
        return out

    def summary(self) -> dict[str, Any]:
        """What the run reports about the model."""
        return {
            "bands": self.n_bands,
            "dims": len(self.low),
            "projected": self.weights is not None,
            "levels": self.levels,
            "matching_bins": int((self.lut > 0.0).sum()),
            "bins": int(self.lut.size),
        }


def _window_pixels(
    ds: DatasetReader, row: float, col: float, radius: int, bands: Sequence[int]
) -> tuple[F32, F64, F64]:
    """Valid pixels (n, bands) of the square of ``radius`` px around (row, col), and each
    pixel's distances (px) from the centre: Chebyshev (square) and Euclidean."""
    r0, c0 = math.floor(row) - radius, math.floor(col) - radius
    n = 2 * radius + 1
    raw, valid = read_block(ds, Window(c0, r0, n, n), bands)
    rr, cc = np.mgrid[r0 : r0 + n, c0 : c0 + n]
    dr, dc = np.abs(rr + 0.5 - row), np.abs(cc + 0.5 - col)
    pix: F32 = raw[:, valid].T.astype(np.float32)
    return pix, np.maximum(dr, dc)[valid], np.hypot(dr, dc)[valid]


def _background(ds: DatasetReader, bands: Sequence[int]) -> F32:
    """About :data:`BACKGROUND_PIXELS` valid pixels spread evenly over the image (a
    nearest-neighbour decimated read: pixels of the image itself, not averages)."""
    from rasterio.enums import Resampling

    step = max(1.0, math.sqrt(ds.width * ds.height / BACKGROUND_PIXELS))
    h, w = max(1, round(ds.height / step)), max(1, round(ds.width / step))
    raw = ds.read(list(bands), out_shape=(len(bands), h, w), resampling=Resampling.nearest)
    mask = shadow_quiet(
        ds, lambda: ds.dataset_mask(out_shape=(h, w), resampling=Resampling.nearest)
    )
    valid = mask > 0
    pix: F32 = raw[:, valid].T.astype(np.float32)
    return pix


def _finite(pixels: F32) -> F32:
    """The pixels (n, bands) whose every band is a number (a float image may hold NaN where it
    declares no nodata)."""
    out: F32 = pixels[np.isfinite(pixels).all(axis=1)]
    return out


def _projection(pos: NDArray[np.floating], neg: NDArray[np.floating], dims: int) -> F32:
    """(bands, dims) orthonormal directions for normalised pixels (n, bands): the direction that
    best separates the example pixels from the ground (Fisher's discriminant, ridge-regularised),
    then the main directions of variance of all pixels orthogonal to it (principal components)."""
    every = np.vstack([pos, neg]).astype(np.float64)
    n_bands = every.shape[1]
    within = np.cov(pos, rowvar=False) + np.cov(neg, rowvar=False)
    within += np.eye(n_bands) * (1e-3 * np.trace(within) / n_bands + 1e-9)
    fisher = np.linalg.solve(within, pos.mean(axis=0) - neg.mean(axis=0))
    fisher /= np.linalg.norm(fisher) or 1.0
    rest = every - every.mean(axis=0)
    rest -= np.outer(rest @ fisher, fisher)
    _, _, vt = np.linalg.svd(rest, full_matrices=False)
    out: F32 = np.column_stack([fisher, vt[: dims - 1].T]).astype(np.float32)
    return out


def _fit(pos: F32, neg: F32, neg_w: F64, seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    clf = HistGradientBoostingClassifier(
        max_iter=100, max_leaf_nodes=15, l2_regularization=1.0, random_state=seed
    )
    x = np.vstack([_design(pos), _design(neg)])
    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    w = np.r_[np.full(len(pos), neg_w.sum() / max(len(pos), 1)), neg_w]
    clf.fit(x, y, sample_weight=w)
    return clf


def prepare_spectral(
    ds: DatasetReader,
    bands: Sequence[int],
    examples_px: Sequence[tuple[float, float]],
    tile: int,
    seed: int = 0,
) -> SpectralMatch:
    """Fit the per-pixel model on the examples (pixel (row, col) positions in ``ds``) and tabulate
    it. ``tile`` (px) sets the example window and the ring of ground around it; ``seed`` the
    classifier's validation split."""
    if not examples_px:
        raise AnalysisError("the spectral model needs at least one example inside the image")
    radius, (ring_in, ring_out) = POS_TILES * tile, (RING_TILES[0] * tile, RING_TILES[1] * tile)
    pos_l, ring_l = [], []
    for row, col in examples_px:
        pix, square, round_ = _window_pixels(ds, row, col, ring_out, bands)
        pos_l.append(pix[square <= radius])
        ring_l.append(pix[(round_ >= ring_in) & (round_ <= ring_out)])
    pos, ring, bg = (
        _finite(a) for a in (np.vstack(pos_l), np.vstack(ring_l), _background(ds, bands))
    )
    if len(pos) < 10 or len(bg) < 100:
        raise AnalysisError(
            f"too few valid pixels for the spectral model ({len(pos)} at the examples, "
            f"{len(bg)} in the background); check the examples and the image's nodata"
        )
    weights = bias = None
    if pos.shape[1] > MAX_DIMS:
        # on the bands scaled by their range, then folded into one affine map of the raw bands
        pixels = np.vstack([pos, ring, bg])
        b_low, b_high = np.quantile(pixels, [RANGE_SHARE, 1.0 - RANGE_SHARE], axis=0)
        span = np.where(b_high > b_low, b_high - b_low, 1.0)
        unit = _projection((pos - b_low) / span, (np.vstack([bg, ring]) - b_low) / span, MAX_DIMS)
        weights = (unit / span[:, None]).astype(np.float32)
        bias = (-(b_low / span) @ unit).astype(np.float32)
        pos, ring, bg = ((a @ weights + bias).astype(np.float32) for a in (pos, ring, bg))
    every = np.vstack([pos, ring, bg])
    low = tuple(float(v) for v in np.quantile(every, RANGE_SHARE, axis=0))
    high = tuple(float(v) for v in np.quantile(every, 1.0 - RANGE_SHARE, axis=0))
    pos, ring, bg = (_normalise(a.T, low, high).T for a in (pos, ring, bg))
    neg = np.vstack([bg, ring])
    neg_w = np.r_[np.ones(len(bg)), np.full(len(ring), RING_WEIGHT)]
    clf = _fit(pos, neg, neg_w, seed)
    p = clf.predict_proba(_design(pos))[:, 1]
    keep = p >= np.quantile(p, 1.0 - KEEP_SHARE)
    clf = _fit(pos[keep], neg, neg_w, seed)
    dims = pos.shape[1]
    L = _levels(dims)
    centres = ((np.arange(L) + 0.5) / L).astype(np.float32)
    bins = np.stack(np.meshgrid(*([centres] * dims), indexing="ij"), axis=-1)
    prob = clf.predict_proba(_design(bins.reshape(-1, dims)))[:, 1]
    prob = np.clip(prob, 1e-9, 1.0 - 1e-9)
    lut = np.clip(np.log(prob / (1.0 - prob)), 0.0, LOGIT_CAP).astype(np.float32)
    model = SpectralMatch(low, high, lut, weights, bias)
    logger.info("spectral model: %s", model.summary())
    return model


RRF_K = 60.0
"""The constant of reciprocal rank fusion (Cormack, Clarke and Buettcher, SIGIR 2009)."""


def fuse_ranks(match: Sequence[float]) -> tuple[list[int], list[float]]:
    """Fuse the search's order of its candidates (the order of ``match``) with their order by
    spectral match: reciprocal rank fusion, ``1 / (K + rank)`` summed over the two orders, so a
    candidate near the top of either stays near the top. Returns the new order (indices into
    ``match``) and each one's fused score, best first."""
    m = np.asarray(match, dtype=np.float64)
    m = np.where(np.isfinite(m), m, -np.inf)
    n = len(m)
    by_match = np.argsort(-m, kind="stable")
    rank_match = np.empty(n)
    rank_match[by_match] = np.arange(n)
    fused = 1.0 / (RRF_K + np.arange(n)) + 1.0 / (RRF_K + rank_match)
    order = np.argsort(-fused, kind="stable")
    return [int(i) for i in order], [float(v) for v in fused[order]]
