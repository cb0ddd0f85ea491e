"""Straightforward NumPy implementations of every change method, the peers of ``bench/change.py``.

Each peer is the textbook recipe written out on whole arrays, in float64 where the formula is
stated, with no streaming, no histograms and no shortcuts: z-scores from ``mean``/``std``, IR-MAD
(Nielsen 2007) from ``np.cov`` with ``aweights`` and ``scipy.linalg.eigh`` and
``scipy.stats.chi2.sf``, invariant pixels and major-axis regression (Canty & Nielsen 2008), and
Celik's PCA-k-means with ``sliding_window_view`` neighbourhoods. Their magnitudes must equal the
library's (to float32 rounding) and, with the same threshold, give the same mask: they are the
reference the library is checked against as well as the speed it is compared with.

The peer follows the library's definition of each method where the literature leaves a choice
(the robust MAD scale of the MAD variates on a regular subsample of about one megapixel, the
k-means on every second pixel with the same seed), so that the outputs can be identical.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray
from scipy import linalg, stats
from scipy.cluster.vq import kmeans2
from scipy.ndimage import gaussian_filter

F64 = NDArray[np.float64]
F32 = NDArray[np.float32]

__all__ = ["PEER_METHODS", "exact_mad_threshold", "peer_change", "peer_magnitude"]

ROLES = {"blue": "B02", "red": "B04", "nir": "B08", "swir1": "B11"}


def _zscore(x: NDArray[np.generic]) -> tuple[F64, F64]:
    """Per-band gain and offset standardising ``x`` to mean 0, standard deviation 1."""
    xf = x.astype(np.float64)
    mean = xf.mean(axis=(1, 2))
    std = xf.std(axis=(1, 2))
    return 1.0 / std, -mean / std


def _apply(x: NDArray[np.generic], gain: F64, offset: F64) -> F32:
    return (x.astype(np.float32) * gain.astype(np.float32)[:, None, None]) + offset.astype(
        np.float32
    )[:, None, None]


def _smooth(x: F32, sigma: float = 1.0) -> F32:
    return np.asarray(gaussian_filter(x, sigma=(0, sigma, sigma), mode="reflect"), dtype=np.float32)


def irmad(x: F32, y: F32, max_iter: int) -> tuple[F64, F64, F64, F64, F64]:
    """IR-MAD on (band, y, x) arrays: (mean_x, mean_y, A, B, robust sigma of each MAD variate)."""
    n = x.shape[0]
    X = x.reshape(n, -1).astype(np.float64)
    Y = y.reshape(n, -1).astype(np.float64)
    Z = np.vstack([X, Y])
    w = np.ones(X.shape[1])
    rho_old = None
    for _ in range(max_iter):
        cov = np.cov(Z, aweights=w, bias=True)
        mean = (Z * w).sum(axis=1) / w.sum()
        sxx, syy, sxy = cov[:n, :n], cov[n:, n:], cov[:n, n:]
        r2, A = linalg.eigh(sxy @ np.linalg.inv(syy) @ sxy.T, sxx)
        B = np.linalg.inv(syy) @ sxy.T @ A
        B = B / np.sqrt(np.diag(B.T @ syy @ B))
        B = B * np.sign(np.diag(A.T @ sxy @ B))
        rho = np.sqrt(np.clip(r2, 0.0, 1.0))
        if rho_old is not None and np.max(np.abs(rho - rho_old)) < 1e-4:
            break
        rho_old = rho
        mad = A.T @ (X - mean[:n, None]) - B.T @ (Y - mean[n:, None])
        chi2 = (mad**2 / (2.0 * (1.0 - rho))[:, None]).sum(axis=0)
        w = stats.chi2.sf(chi2, n)
    h, wd = x.shape[1:]
    step = max(1, int(np.sqrt(h * wd / 1_000_000)))
    xs = x[:, ::step, ::step].reshape(n, -1).astype(np.float64) - mean[:n, None]
    ys = y[:, ::step, ::step].reshape(n, -1).astype(np.float64) - mean[n:, None]
    mads = A.T @ xs - B.T @ ys
    sigma = 1.4826 * np.median(np.abs(mads - np.median(mads, axis=1, keepdims=True)), axis=1)
    return mean[:n], mean[n:], A, B, sigma


def _chi2(x: F32, y: F32, fit: tuple[F64, F64, F64, F64, F64]) -> F64:
    mx, my, A, B, sigma = fit
    n = x.shape[0]
    mad = A.T @ (x.reshape(n, -1) - mx[:, None]) - B.T @ (y.reshape(n, -1) - my[:, None])
    chi2: F64 = ((mad / sigma[:, None]) ** 2).sum(axis=0).reshape(x.shape[1:])
    return chi2


def _invariant_gains(
    before: NDArray[np.generic], after: NDArray[np.generic], max_iter: int
) -> tuple[F64, F64]:
    """Gain and offset of both dates onto BEFORE's standardised scale, fitted on invariant pixels."""
    gb, ob = _zscore(before)
    ga, oa = _zscore(after)
    zb, za = _apply(before, gb, ob), _apply(after, ga, oa)
    invariant = stats.chi2.sf(_chi2(zb, za, irmad(zb, za, max_iter)), before.shape[0]) > 0.5
    bv = before[:, invariant].astype(np.float64)
    av = after[:, invariant].astype(np.float64)
    slopes, intercepts, scales = [], [], []
    for xb, xa in zip(bv, av, strict=True):
        c = np.cov(xa, xb, bias=True)
        va, vb, cab = c[0, 0], c[1, 1], c[0, 1]
        slope = (vb - va + np.sqrt((vb - va) ** 2 + 4 * cab**2)) / (2 * cab)
        slopes.append(slope)
        intercepts.append(xb.mean() - slope * xa.mean())
        scales.append(1.0 / xb.std())
    s, k, sc = np.array(slopes), np.array(intercepts), np.array(scales)
    mb = bv.mean(axis=1)
    return np.stack([sc, s * sc]), np.stack([-mb * sc, (k - mb) * sc])


def _index(x: F32, method: str, bands: tuple[str, ...]) -> F32:
    band = {b: x[i] for i, b in enumerate(bands)}
    blue, red, nir = band[ROLES["blue"]], band[ROLES["red"]], band[ROLES["nir"]]
    swir = band.get(ROLES["swir1"])
    if method == "ndvi":
        num, den = nir - red, nir + red
    elif method == "ndbi":
        assert swir is not None
        num, den = swir - nir, swir + nir
    else:
        assert swir is not None
        num, den = (swir + red) - (nir + blue), (swir + red) + (nir + blue)
    return np.where(den == 0, 0.0, num / np.where(den == 0, 1.0, den)).astype(np.float32)


def _pca_kmeans(d: F32, block: int = 4, components: int = 3) -> F32:
    d64 = d.astype(np.float64)
    h, w = d.shape
    tiles = [
        d64[i : i + block, j : j + block].ravel()
        for i in range(0, h - block + 1, block)
        for j in range(0, w - block + 1, block)
    ]
    patches = np.array(tiles)
    patches -= patches.mean(axis=0)
    _, vecs = np.linalg.eigh(patches.T @ patches / len(patches))
    basis = vecs[:, ::-1][:, :components]
    lo, hi = block // 2, block - 1 - block // 2
    padded = np.pad(d64, ((lo, hi), (lo, hi)), mode="symmetric")
    hood = sliding_window_view(padded, (block, block)).reshape(h, w, block * block)
    feats = np.moveaxis(hood @ basis, -1, 0).astype(np.float32)
    sample = feats[:, ::2, ::2].reshape(components, -1).T.astype(np.float64)
    centres, labels = kmeans2(sample, 2, minit="++", seed=0)
    sub = d64[::2, ::2].ravel()
    change = int(np.argmax([sub[labels == i].mean() for i in (0, 1)]))
    c = centres.astype(np.float32)
    dist = [np.sqrt(((feats - c[i][:, None, None]) ** 2).sum(axis=0)) for i in (change, 1 - change)]
    score: F32 = (dist[1] - dist[0]).astype(np.float32)
    return score


PEER_METHODS = ("cva", "irmad", "pca_kmeans", "log_ratio", "ndvi", "ndbi", "bsi")


def peer_magnitude(
    before: NDArray[np.generic],
    after: NDArray[np.generic],
    method: str,
    bands: tuple[str, ...],
    irmad_iter: int = 10,
) -> F32:
    """The method's change magnitude (PCA-k-means: its cluster score) for images without nodata."""
    if method in ("cva", "irmad", "pca_kmeans"):
        a = _smooth(_apply(before, *_zscore(before)))
        b = _smooth(_apply(after, *_zscore(after)))
        if method == "irmad":
            return _chi2(a, b, irmad(a, b, irmad_iter)).astype(np.float32)
        cva = np.sqrt(((b - a) ** 2).sum(axis=0))
        return cva if method == "cva" else _pca_kmeans(cva)
    gains, offsets = _invariant_gains(before, after, irmad_iter)
    a = _smooth(_apply(before, gains[0], offsets[0]))
    b = _smooth(_apply(after, gains[1], offsets[1]))
    g, o = gains[0].astype(np.float32)[:, None, None], offsets[0].astype(np.float32)[:, None, None]
    a_dn, b_dn = (a - o) / g, (b - o) / g
    if method == "log_ratio":
        eps = np.float32(1e-6)
        lr = np.log(np.maximum(b_dn, eps)) - np.log(np.maximum(a_dn, eps))
        rms: F32 = np.sqrt((lr**2).sum(axis=0) / len(bands))
        return rms
    index_diff: F32 = np.abs(_index(b_dn, method, bands) - _index(a_dn, method, bands))
    return index_diff


def exact_mad_threshold(magnitude: F32, k: float = 5.0) -> float:
    """Median + k x 1.4826 x MAD by exact ``np.median`` (the library resolves it on a histogram)."""
    med = float(np.median(magnitude))
    return med + k * 1.4826 * float(np.median(np.abs(magnitude - med)))


def peer_change(
    before: NDArray[np.generic],
    after: NDArray[np.generic],
    method: str,
    bands: tuple[str, ...],
    irmad_iter: int = 10,
) -> tuple[F32, float]:
    """The method's magnitude and its default threshold (exact median/MAD; the chi-square
    quantile at p = 0.01 for IR-MAD; 0 for the PCA-k-means score): the whole job of the method."""
    magnitude = peer_magnitude(before, after, method, bands, irmad_iter)
    if method == "irmad":
        return magnitude, float(stats.chi2.isf(0.01, before.shape[0]))
    if method == "pca_kmeans":
        return magnitude, 0.0
    return magnitude, exact_mad_threshold(magnitude)
