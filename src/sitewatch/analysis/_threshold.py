"""Thresholds for change magnitudes, computed from a histogram so that they stream over large rasters.

Every threshold here is a function of a :class:`Histogram` of the magnitude over the valid pixels. A
histogram is additive (the counts of the blocks add up), so the threshold of a 10980 x 10980 tile is
the same whether its magnitude was histogrammed in one piece or strip by strip.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from ..errors import AnalysisError

__all__ = [
    "HIST_BINS",
    "Histogram",
    "chi2_threshold",
    "histogram_of",
    "kmeans_threshold",
    "mad_threshold",
    "otsu_threshold",
]

HIST_BINS = 4096
"""Bins of the magnitude histogram: thresholds are resolved to 1/4096 of the magnitude range."""

_STRIP_ROWS = 512


@dataclass(frozen=True)
class Histogram:
    """Counts of a magnitude over ``edges`` (``len(edges) == len(counts) + 1``)."""

    counts: NDArray[np.int64]
    edges: NDArray[np.float64]

    @property
    def centres(self) -> NDArray[np.float64]:
        return 0.5 * (self.edges[:-1] + self.edges[1:])

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def quantile(self, q: float) -> float:
        """The ``q`` quantile (0..1), interpolated inside its bin."""
        cum = np.cumsum(self.counts)
        target = q * cum[-1]
        i = int(np.searchsorted(cum, target, side="left"))
        i = min(i, len(self.counts) - 1)
        before = cum[i - 1] if i > 0 else 0
        inside = self.counts[i]
        frac = (target - before) / inside if inside > 0 else 0.0
        return float(self.edges[i] + frac * (self.edges[i + 1] - self.edges[i]))


def histogram_of(
    magnitude: NDArray[np.floating], valid: NDArray[np.bool_], *, bins: int = HIST_BINS
) -> Histogram:
    """Histogram of ``magnitude`` over ``valid`` pixels, built strip by strip (bounded memory).

    Raises :class:`AnalysisError` when there is no valid pixel or the magnitude is constant.
    """
    lo, hi = np.inf, -np.inf
    for r in range(0, magnitude.shape[0], _STRIP_ROWS):
        vals = magnitude[r : r + _STRIP_ROWS][valid[r : r + _STRIP_ROWS]]
        if vals.size:
            lo = min(lo, float(vals.min()))
            hi = max(hi, float(vals.max()))
    if not np.isfinite(lo):
        raise AnalysisError(
            "no valid pixel in both images: every pixel is nodata in BEFORE or AFTER; "
            "check the nodata values and that the two images overlap"
        )
    if hi <= lo:
        raise AnalysisError(
            f"the change magnitude is constant ({lo:g}) over all valid pixels: the images are "
            "constant or identical, there is nothing to threshold"
        )
    edges = np.linspace(lo, hi, bins + 1)
    counts = np.zeros(bins, dtype=np.int64)
    for r in range(0, magnitude.shape[0], _STRIP_ROWS):
        vals = magnitude[r : r + _STRIP_ROWS][valid[r : r + _STRIP_ROWS]]
        counts += np.histogram(vals, bins=edges)[0]
    return Histogram(counts, edges)


def otsu_threshold(hist: Histogram) -> float:
    """Otsu's threshold: the bin edge maximising the between-class variance."""
    p = hist.counts.astype(np.float64)
    c = hist.centres
    w0 = np.cumsum(p)
    w1 = w0[-1] - w0
    m0 = np.cumsum(p * c)
    mt = m0[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        mu0 = m0 / w0
        mu1 = (mt - m0) / w1
        between = w0 * w1 * (mu0 - mu1) ** 2
    between = np.nan_to_num(between[:-1], nan=-1.0)
    i = int(np.argmax(between))
    return float(hist.edges[i + 1])


def kmeans_threshold(hist: Histogram, *, iterations: int = 100) -> float:
    """Two-class 1-D k-means on the histogram: the midpoint of the two converged means."""
    p = hist.counts.astype(np.float64)
    c = hist.centres
    lo, hi = float(hist.quantile(0.25)), float(hist.quantile(0.99))
    if hi <= lo:
        lo, hi = float(c[0]), float(c[-1])
    for _ in range(iterations):
        t = 0.5 * (lo + hi)
        below = c <= t
        n0, n1 = p[below].sum(), p[~below].sum()
        if n0 == 0 or n1 == 0:
            break
        new_lo = float((p[below] * c[below]).sum() / n0)
        new_hi = float((p[~below] * c[~below]).sum() / n1)
        if abs(new_lo - lo) < 1e-12 and abs(new_hi - hi) < 1e-12:
            break
        lo, hi = new_lo, new_hi
    return 0.5 * (lo + hi)


def mad_threshold(hist: Histogram, *, k: float = 5.0) -> float:
    """Robust outlier threshold: median + ``k`` x 1.4826 x median absolute deviation.

    Changes are rare, so the median and MAD describe the no-change population; pixels ``k``
    robust standard deviations above its median are changes. Unlike Otsu it does not assume
    two classes of comparable size.
    """
    med = hist.quantile(0.5)
    dev = np.abs(hist.centres - med)
    order = np.argsort(dev)
    cum = np.cumsum(hist.counts[order])
    i = int(np.searchsorted(cum, 0.5 * cum[-1], side="left"))
    mad = float(dev[order][min(i, len(order) - 1)])
    if mad <= 0:
        mad = float(hist.edges[1] - hist.edges[0])
    return med + k * 1.4826 * mad


def chi2_threshold(bands: int, *, alpha: float = 0.01) -> float:
    """The chi-square statistic above which the no-change probability is below ``alpha``."""
    if not 0.0 < alpha < 1.0:
        raise AnalysisError(f"chi-square p-value threshold must be in (0, 1), got {alpha}")
    return float(stats.chi2.isf(alpha, bands))
