"""Iteratively reweighted multivariate alteration detection (IR-MAD), streaming over blocks.

Nielsen (2007): canonical correlation analysis of the two dates, weighted by each pixel's
probability of no change; the MAD variates (differences of the canonical variates) of unchanged
pixels are independent with variance 2(1 - rho), so the sum of their squared standardised values
is chi-square distributed with as many degrees of freedom as bands. Each iteration needs only the
weighted first and second moments of the stacked bands, which are sums over blocks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import linalg, special

from ..errors import AnalysisError
from ._normalise import dask_compute

__all__ = ["IrmadTransform", "fit_irmad"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IrmadTransform:
    """The fitted IR-MAD: apply it with :meth:`chi2` to any block."""

    mean_x: NDArray[np.float64]
    mean_y: NDArray[np.float64]
    a: NDArray[np.float64]  # (bands, bands): columns are canonical vectors of BEFORE
    b: NDArray[np.float64]
    sigma: NDArray[np.float64]  # standard deviation of each MAD variate for no-change pixels
    rho: NDArray[np.float64]
    iterations: int
    converged: bool

    def chi2(self, x: Any, y: Any) -> Any:
        """The chi-square statistic of (band, y, x) arrays ``x`` (BEFORE) and ``y`` (AFTER),
        NumPy or dask (then block by block, with the bands of a block in one chunk)."""
        if hasattr(x, "dask") or hasattr(y, "dask"):
            import importlib

            da: Any = importlib.import_module("dask.array")
            x = da.asarray(x)
            x = x.rechunk((x.shape[0], *x.chunks[1:]))
            y = da.asarray(y).rechunk(x.chunks)
            return da.map_blocks(self._chi2, x, y, drop_axis=0, dtype=np.float64)
        return self._chi2(x, y)

    def _chi2(self, x: NDArray[Any], y: NDArray[Any]) -> NDArray[np.float64]:
        # standardised MAD variates as two matrix products, the means folded into one offset
        # per variate (no centred copies of the images); float32 images stay float32
        n, h, w = x.shape
        dtype = np.float32 if x.dtype == y.dtype == np.float32 else np.float64
        pa = (self.a / self.sigma).T
        pb = (self.b / self.sigma).T
        offset = pa @ self.mean_x - pb @ self.mean_y
        mad = pa.astype(dtype) @ x.reshape(n, -1).astype(dtype, copy=False)
        mad -= pb.astype(dtype) @ y.reshape(n, -1).astype(dtype, copy=False)
        mad -= offset.astype(dtype)[:, None]
        mad *= mad
        return np.asarray(mad.sum(axis=0, dtype=np.float64).reshape(h, w))


_MOMENT_COLUMNS = 1 << 20  # pixels per slab of the in-memory weighted moments


def _weighted_moments(
    x: Any, y: Any, w: Any, stacked: NDArray[np.float64] | None = None
) -> tuple[float, NDArray[np.float64], NDArray[np.float64]]:
    """Sum of weights, weighted sums and weighted cross-products of the stacked bands of x and y:
    matrix products by slabs of ``stacked`` in memory, block by block for dask arrays."""
    if stacked is None:
        if not hasattr(x, "dask"):
            n = x.shape[0]
            stacked = np.concatenate([x.reshape(n, -1), y.reshape(n, -1)]).astype(np.float64)
        else:
            return _dask_moments(x, y, w)
    wf = np.asarray(w, dtype=np.float64).ravel()
    s = np.zeros(stacked.shape[0])
    ss = np.zeros((stacked.shape[0], stacked.shape[0]))
    for k in range(0, stacked.shape[1], _MOMENT_COLUMNS):
        zf = stacked[:, k : k + _MOMENT_COLUMNS]
        zwf = zf * wf[k : k + _MOMENT_COLUMNS]
        s += zwf.sum(axis=1)
        ss += zwf @ zf.T
    return float(wf.sum()), s, ss


def _packed_moments(x: NDArray[Any], y: NDArray[Any], w: NDArray[Any]) -> NDArray[np.float64]:
    sw, s, ss = _weighted_moments(x, y, w)
    return np.concatenate([[sw], s, ss.ravel()])


def _dask_moments(x: Any, y: Any, w: Any) -> tuple[float, NDArray[np.float64], NDArray[np.float64]]:
    import importlib

    da: Any = importlib.import_module("dask.array")
    delayed: Any = importlib.import_module("dask").delayed
    x = da.asarray(x)
    x = x.rechunk((x.shape[0], *x.chunks[1:]))
    y = da.asarray(y).rechunk(x.chunks)
    w = da.asarray(w).rechunk(x.chunks[1:])
    blocks = zip(
        x.to_delayed().ravel(), y.to_delayed().ravel(), w.to_delayed().ravel(), strict=True
    )
    parts = dask_compute(*[delayed(_packed_moments)(a, b, c) for a, b, c in blocks])
    total = np.sum(parts, axis=0)
    m = 2 * x.shape[0]
    return float(total[0]), total[1 : 1 + m], total[1 + m :].reshape(m, m)


def fit_irmad(
    x: Any, y: Any, valid: Any, *, max_iter: int = 30, tol: float = 1e-4
) -> IrmadTransform:
    """Fit IR-MAD on (band, y, x) arrays (NumPy or dask) over ``valid`` pixels."""
    n = int(x.shape[0])
    weights = valid.astype(np.float64)
    rho_old: NDArray[np.float64] | None = None
    transform: IrmadTransform | None = None
    converged = False
    # in memory the stacked float64 bands are built once, not at every iteration
    stacked = (
        None
        if hasattr(x, "dask") or hasattr(y, "dask")
        else np.concatenate([x.reshape(n, -1), y.reshape(n, -1)]).astype(np.float64)
    )
    for it in range(1, max_iter + 1):
        sw, s, ss = _weighted_moments(x, y, weights, stacked)
        if sw <= n:
            if transform is not None:  # the reweighting collapsed: keep the last good fit
                _collapsed(it, f"only {sw:.0f} weighted pixel(s) left")
                break
            raise AnalysisError(
                f"IR-MAD: only {sw:.0f} weighted pixel(s) left for {n} band(s); "
                "the images have too few valid pixels (check nodata) or are too small"
            )
        mean = s / sw
        cov = ss / sw - np.outer(mean, mean)
        sxx, syy, sxy = cov[:n, :n], cov[n:, n:], cov[:n, n:]
        try:
            lhs = sxy @ linalg.solve(syy, sxy.T, assume_a="pos")
            r2, a = linalg.eigh(lhs, sxx)
        except (linalg.LinAlgError, ValueError) as exc:
            if transform is not None:
                _collapsed(it, "the weighted band covariance is singular")
                break
            raise AnalysisError(
                f"IR-MAD: the band covariance is singular ({exc}); a band is constant or two "
                "bands are identical: drop it with --bands"
            ) from exc
        b = linalg.solve(syy, sxy.T @ a, assume_a="pos")
        b = b / np.sqrt(np.maximum(np.einsum("ij,ik,kj->j", b, syy, b), 1e-300))
        signs = np.sign(np.einsum("ij,ik,kj->j", a, sxy, b))
        b = b * np.where(signs == 0, 1.0, signs)
        rho = np.sqrt(np.clip(r2, 0.0, 1.0))
        sigma = np.sqrt(np.maximum(2.0 * (1.0 - rho), 1e-12))
        transform = IrmadTransform(mean[:n], mean[n:], a, b, sigma, rho, it, False)
        if rho_old is not None and float(np.max(np.abs(rho - rho_old))) < tol:
            converged = True
            break
        rho_old = rho
        weights = _no_change_probability(transform, x, y, n) * valid
    assert transform is not None
    sigma = _robust_sigma(transform, x, y, valid)
    logger.info("IR-MAD: %d iteration(s), canonical correlations %s", it, np.round(rho, 4))
    return IrmadTransform(
        transform.mean_x, transform.mean_y, transform.a, transform.b, sigma,
        transform.rho, transform.iterations, converged,
    )  # fmt: skip


def _collapsed(iteration: int, why: str) -> None:
    """Say that the reweighting stopped early. A MAD variate whose canonical correlation is
    nearly 1 (bands that move together) has a tiny variance, so every pixel looks changed, the
    no-change weights fall to zero and the next covariance is singular; the last fit stands.
    A note (-v), not a warning: nothing is wrong with the images and nothing is for the analyst
    to do (a monitor run over small chips printed it between the alerts)."""
    logger.info(
        "IR-MAD: %s at iteration %d; keeping the fit of iteration %d", why, iteration, iteration - 1
    )


def _robust_sigma(t: IrmadTransform, x: Any, y: Any, valid: Any) -> NDArray[np.float64]:
    """Scale of each MAD variate from the median absolute deviation over a regular subsample.

    The weighted variance 2(1 - rho) of the fit under-estimates the spread of unchanged pixels (the
    weights favour small alterations), which inflates their chi-square statistic; the MAD is robust
    to the changed minority and keeps the no-change statistic close to chi-square(bands).
    """
    h, w = int(x.shape[1]), int(x.shape[2])
    step = max(1, int(np.sqrt(h * w / 1_000_000)))
    xs, ys, vs = x[:, ::step, ::step], y[:, ::step, ::step], valid[::step, ::step]
    if hasattr(xs, "dask"):
        xs, ys, vs = dask_compute(xs, ys, vs)
    xs = np.asarray(xs, dtype=np.float64)[:, vs] - t.mean_x[:, None]
    ys = np.asarray(ys, dtype=np.float64)[:, vs] - t.mean_y[:, None]
    mads = t.a.T @ xs - t.b.T @ ys
    med = np.median(mads, axis=1, keepdims=True)
    sigma = 1.4826 * np.median(np.abs(mads - med), axis=1)
    return np.where(sigma > 0, sigma, t.sigma)


def chi2_sf(x: NDArray[np.float64], df: int) -> NDArray[np.float64]:
    """The chi-square survival function in closed form (several times faster than the
    incomplete gamma function on whole images): for an even ``df`` a Poisson sum, for an odd one
    ``erfc(sqrt(x/2)) + sqrt(2x/pi) exp(-x/2) sum_{j<(df-1)/2} x^j / (1*3*...*(2j+1))``."""
    if df % 2:
        xf = np.maximum(np.asarray(x, dtype=np.float64), 0.0)
        term = np.sqrt(2.0 * xf / np.pi) * np.exp(-xf / 2.0)
        total = special.erfc(np.sqrt(xf / 2.0))
        for j in range(1, (df + 1) // 2):
            total += term
            term = term * xf / (2 * j + 1)
        return np.asarray(total, dtype=np.float64)
    half = np.asarray(x, dtype=np.float64) / 2.0
    term = np.ones_like(half)
    total = np.ones_like(half)
    for k in range(1, df // 2):
        term = term * half / k
        total += term
    return np.asarray(np.exp(-half) * total, dtype=np.float64)


def _no_change_probability(t: IrmadTransform, x: Any, y: Any, n: int) -> Any:
    chi = t.chi2(x, y)
    if hasattr(chi, "dask"):
        return chi.map_blocks(chi2_sf, n, dtype=np.float64)
    return chi2_sf(chi, n)
