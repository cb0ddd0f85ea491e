"""Bi-temporal change detection: two co-registered images in, a change mask and a magnitude out.

Methods (``ChangeConfig.method``):

``cva``
    Change vector analysis: Euclidean norm of the difference of the radiometrically normalised,
    spatially smoothed band vectors (the default: the best unsupervised method measured on OSCD).
``irmad``
    Iteratively reweighted multivariate alteration detection; the magnitude is the chi-square
    statistic of the MAD variates, thresholded by its no-change p-value.
``pca_kmeans``
    Celik (2009): PCA of h x h neighbourhoods of the CVA difference image, then two-class k-means
    in that feature space.
``log_ratio``
    Norm of the per-band log ratios AFTER / BEFORE (multiplicative noise, e.g. SAR or haze).
``ndvi``, ``ndbi``, ``bsi``
    Absolute difference of a spectral index (vegetation, built-up, bare soil) for construction and
    earthworks; ``extra["signed_mean"]`` gives the direction over the changed pixels.

Thresholds (``ChangeConfig.threshold``): ``mad`` (median + k robust standard deviations), ``otsu``,
``kmeans``, ``chi2`` (IR-MAD no-change p-value) and ``fixed``. Post-processing: morphological
opening and a minimum mapping unit in m².

Inputs are (band, y, x) arrays on the same grid, NumPy or dask. With dask (or ``chunks=``) every
per-pixel step runs block by block (smoothing through ``map_overlap``) and global statistics (band
moments, IR-MAD covariances, the magnitude histogram) are sums over blocks, so a full Sentinel-2
tile runs in bounded memory; only the float32 magnitude and the mask are held whole.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from ..errors import AnalysisError, InputError
from ..types import CHANGE_METHODS, CHANGE_NORMALISATIONS, CHANGE_THRESHOLDS
from . import _threshold as th
from ._irmad import chi2_sf, fit_irmad
from ._normalise import BandGains, band_moments, orthogonal_regression, zscore_gains

if TYPE_CHECKING:
    from affine import Affine
    from rasterio.crs import CRS

__all__ = [
    "BAND_ALIASES",
    "METHODS",
    "NORMALISATIONS",
    "THRESHOLDS",
    "ChangeConfig",
    "ChangeResult",
    "PixelArea",
    "change_polygons",
    "clean_mask",
    "common_bands",
    "detect_change",
    "pca_kmeans",
]

logger = logging.getLogger(__name__)

PixelArea = float | NDArray[np.float64]
"""Ground area of a pixel (m²): one for every pixel, or one per row."""

METHODS = CHANGE_METHODS
THRESHOLDS = CHANGE_THRESHOLDS
NORMALISATIONS = CHANGE_NORMALISATIONS

BAND_ALIASES: dict[str, tuple[str, ...]] = {
    "blue": ("blue", "b02", "b2", "coastal_blue"),
    "green": ("green", "b03", "b3"),
    "red": ("red", "b04", "b4"),
    "nir": ("nir", "b08", "b8", "b8a", "nir08"),
    "swir1": ("swir1", "swir16", "b11"),
    "swir2": ("swir2", "swir22", "b12"),
}
"""Spectral roles and the band names (Sentinel-2 and common names, lower case) that fill them."""

_INDEX_ROLES: dict[str, tuple[str, ...]] = {
    "ndvi": ("red", "nir"),
    "ndbi": ("nir", "swir1"),
    "bsi": ("blue", "red", "nir", "swir1"),
    "mndwi": ("green", "swir1"),  # an input of the learned model, not a change method
}
SPECTRAL_INDICES = ("ndvi", "ndbi", "mndwi", "bsi")
"""The spectral indices that describe a change beyond the change methods: vegetation, built-up,
water and bare soil. Each change polygon carries their patch means before and after (a cleared,
built-on patch shows NDVI falling and NDBI / BSI rising), and the learned model takes them as
inputs."""


def indices_for(bands: Sequence[str]) -> tuple[str, ...]:
    """The :data:`SPECTRAL_INDICES` that bands named ``bands`` allow (matched by name or role, as
    the change methods match them: B04 or red, B08 or nir, B11 or swir1...)."""
    roles = {_role_of(b) for b in bands}
    return tuple(n for n in SPECTRAL_INDICES if roles.issuperset(_INDEX_ROLES[n]))


_DEFAULT_THRESHOLD = {"irmad": "chi2", "pca_kmeans": "kmeans"}
_DEFAULT_CHUNK = 1024


@dataclass(frozen=True)
class ChangeConfig:
    """One fixed configuration of the change detector (the defaults are the evaluated best)."""

    method: str = "cva"
    threshold: str | None = None  # None: "mad", or "chi2" for irmad, "kmeans" for pca_kmeans
    mad_k: float = 5.0
    chi2_alpha: float = 0.01
    fixed_value: float | None = None
    normalisation: str | None = None  # None: zscore for cva/irmad/pca_kmeans, invariant otherwise
    smooth_sigma: float = 1.0
    opening_radius: int = 0
    min_area_m2: float = 0.0
    pca_block: int = 4
    pca_components: int = 3
    irmad_max_iter: int = 30
    after_covers: tuple[str, ...] = ()
    """Keep only the change patches whose land cover on the AFTER date is one of these
    (:data:`~.landcover.COVERS`; empty: all), see :func:`~.landcover.keep_after_covers`."""

    def __post_init__(self) -> None:
        from .landcover import parse_covers

        object.__setattr__(self, "after_covers", parse_covers(self.after_covers))
        for value, choices, what in (
            (self.method, METHODS, "change method"),
            (self.normalisation_method, NORMALISATIONS, "normalisation"),
        ):
            if value not in choices:
                raise InputError(f"unknown {what} {value!r}; choose one of: {', '.join(choices)}")
        if self.threshold is not None and self.threshold not in THRESHOLDS:
            raise InputError(
                f"unknown threshold {self.threshold!r}; choose one of: {', '.join(THRESHOLDS)}"
            )
        if self.threshold == "fixed" and self.fixed_value is None:
            raise InputError("threshold 'fixed' needs a value (fixed_value / --value)")
        if self.threshold == "chi2" and self.method != "irmad":
            raise InputError(
                f"threshold 'chi2' is the IR-MAD no-change p-value; method {self.method!r} has "
                "no chi-square statistic: use --method irmad or another threshold"
            )
        for name, flag in (
            ("smooth_sigma", "--smooth"),
            ("opening_radius", "--opening"),
            ("min_area_m2", "--min-area"),
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise InputError(f"{name} ({flag}) must be a number >= 0 (0: off), got {value}")
        if self.fixed_value is not None and not math.isfinite(self.fixed_value):
            raise InputError(f"a fixed threshold must be a finite number, got {self.fixed_value}")
        if not (math.isfinite(self.mad_k) and self.mad_k > 0):
            raise InputError(
                f"mad k must be above 0 robust standard deviations, got {self.mad_k} "
                "(the default 5 is the evaluated best)"
            )
        if not 0.0 < self.chi2_alpha < 1.0:
            raise InputError(
                f"the chi2 alpha is a p-value between 0 and 1 (exclusive), got {self.chi2_alpha}"
            )
        if self.pca_block < 1 or self.pca_components < 1 or self.irmad_max_iter < 1:
            raise InputError("pca_block, pca_components and irmad_max_iter must be at least 1")

    @property
    def normalisation_method(self) -> str:
        if self.normalisation is not None:
            return self.normalisation
        return "zscore" if self.method in ("cva", "irmad", "pca_kmeans") else "invariant"

    @property
    def threshold_method(self) -> str:
        return self.threshold or _DEFAULT_THRESHOLD.get(self.method, "mad")

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["threshold"] = self.threshold_method
        out["normalisation"] = self.normalisation_method
        return out


@dataclass(frozen=True)
class ChangeResult:
    """A change map: boolean ``mask``, float32 ``magnitude`` (NaN where not ``valid``)."""

    mask: NDArray[np.bool_]
    magnitude: NDArray[np.float32]
    valid: NDArray[np.bool_]
    threshold: float
    method: str
    threshold_method: str
    bands: tuple[str, ...]
    config: ChangeConfig
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def changed_pixels(self) -> int:
        return int(np.count_nonzero(self.mask))

    @property
    def changed_fraction(self) -> float:
        n = int(np.count_nonzero(self.valid))
        return self.changed_pixels / n if n else 0.0

    def summary(self) -> dict[str, Any]:
        """JSON-ready description (no arrays)."""
        return {
            "method": self.method,
            "threshold_method": self.threshold_method,
            "threshold": self.threshold,
            "bands": list(self.bands),
            "changed_pixels": self.changed_pixels,
            "changed_fraction": self.changed_fraction,
            "valid_pixels": int(np.count_nonzero(self.valid)),
            "config": self.config.as_dict(),
            **self.extra,
        }


# --- bands ------------------------------------------------------------------------------------


def _role_of(name: str) -> str | None:
    low = name.lower()
    for role, names in BAND_ALIASES.items():
        if low in names:
            return role
    return None


def common_bands(before: Sequence[str], after: Sequence[str]) -> tuple[str, ...]:
    """Band names present in both images, in BEFORE's order (matched case-insensitively).

    Raises :class:`InputError` when they share no band.
    """
    after_low = {b.lower() for b in after}
    common = tuple(b for b in before if b.lower() in after_low)
    if not common:
        raise InputError(
            f"BEFORE has bands {', '.join(before)} and AFTER has {', '.join(after)}: no band in "
            "common; give two images of the same sensor or name the bands alike"
        )
    return common


def _index_positions(bands: tuple[str, ...], method: str) -> list[int]:
    roles = [_role_of(b) for b in bands]
    positions = []
    for role in _INDEX_ROLES[method]:
        if role not in roles:
            raise InputError(
                f"method {method!r} needs a {role} band ({'/'.join(BAND_ALIASES[role])}); the "
                f"images have {', '.join(bands)}: name the bands or choose --method cva"
            )
        positions.append(roles.index(role))
    return positions


# --- the pipeline ------------------------------------------------------------------------------


def _is_dask(x: Any) -> bool:
    return hasattr(x, "dask")


class _Blocks:
    """A NumPy array that dask sees as a sliceable array-like (as it does a zarr or HDF5 dataset),
    so that ``from_array`` reads views of it block by block: given the array itself, dask copies
    it whole first (0.96 GB more for a 4-band Sentinel-2 tile)."""

    def __init__(self, data: NDArray[Any]) -> None:
        self.data = data
        self.shape = data.shape
        self.dtype = data.dtype
        self.ndim = data.ndim

    def __getitem__(self, key: Any) -> NDArray[Any]:
        return np.asarray(self.data[key])


def _as_dask(x: Any, chunks: int) -> Any:
    import importlib

    da: Any = importlib.import_module("dask.array")

    if _is_dask(x):
        return x.rechunk((x.shape[0], chunks, chunks))
    return da.from_array(_Blocks(np.asarray(x)), chunks=(x.shape[0], chunks, chunks), name=False)


def _valid_mask(x: Any, nodata: float | None) -> Any:
    ok = np.isfinite(x) if np.issubdtype(x.dtype, np.floating) else (x == x)
    if nodata is not None:
        ok = ok & (x != nodata)
    return ok.all(axis=0)


def _smooth(x: Any, sigma: float) -> Any:
    if sigma <= 0:
        return x
    depth = int(4.0 * sigma + 0.5)
    if _is_dask(x):
        return x.map_overlap(
            ndi.gaussian_filter,
            depth={0: 0, 1: depth, 2: depth},
            boundary="reflect",
            dtype=np.float32,
            sigma=(0, sigma, sigma),
            mode="reflect",
        )
    return ndi.gaussian_filter(x, sigma=(0, sigma, sigma), mode="reflect")


def _apply(x: Any, gain: NDArray[np.float64], offset: NDArray[np.float64], valid: Any, fill: NDArray[np.float64]) -> Any:  # fmt: skip
    g = gain.astype(np.float32)[:, None, None]
    o = offset.astype(np.float32)[:, None, None]
    f = fill.astype(np.float32)[:, None, None]
    if _is_dask(x):
        import dask.array as da

        return da.where(valid[None], x.astype(np.float32) * g + o, f)
    y = x.astype(np.float32)  # a new array: scaled in place, no further temporaries
    y *= g
    y += o
    if not valid.all():
        np.copyto(y, np.broadcast_to(f, y.shape), where=~valid[None])
    return y


def _window(config: ChangeConfig) -> int:
    """The side of the smallest square a method works on: the smoothing kernel, or PCA-k-means'
    blocks."""
    window = max(3, 2 * int(4.0 * config.smooth_sigma + 0.5) + 1)
    if config.method == "pca_kmeans":
        window = max(window, 4 * config.pca_block)
    return window


def _check_valid(valid: NDArray[np.bool_], config: ChangeConfig) -> None:
    """Refuse a pair that shares fewer valid pixels than the method's window holds: thresholds
    fitted on a few dozen pixels would give a silent wrong answer."""
    n = int(np.count_nonzero(valid))
    window = _window(config)
    if n < window * window:
        raise AnalysisError(
            f"only {n:,} pixel(s) of {valid.size:,} have data in both images (no-data, clouds and "
            f"the area outside the other image left out), fewer than the {window} x {window} "
            f"window method {config.method!r} needs: check that the images overlap, or choose "
            "clearer dates"
        )


def _check_sizes(before: Any, after: Any, bands: tuple[str, ...], config: ChangeConfig) -> None:
    if before.ndim != 3 or after.ndim != 3:
        raise InputError(
            f"images must be (band, y, x) arrays, got shapes {before.shape} and {after.shape}"
        )
    if before.shape != after.shape:
        raise InputError(
            f"BEFORE is {before.shape} and AFTER is {after.shape} (band, y, x): put them on one "
            "grid first (the CLI reprojects AFTER to BEFORE's grid) and keep the common bands"
        )
    if len(bands) != before.shape[0]:
        raise InputError(f"{len(bands)} band name(s) for {before.shape[0]} band(s)")
    window = _window(config)
    h, w = before.shape[1:]
    if h < window or w < window:
        raise AnalysisError(
            f"the images are {h} x {w} pixels, smaller than the {window} x {window} window that "
            f"method {config.method!r} with smooth_sigma={config.smooth_sigma} needs; use a larger "
            "area, or --smooth 0 for tiny chips"
        )


def detect_change(
    before: Any,
    after: Any,
    *,
    bands: Sequence[str] | None = None,
    config: ChangeConfig | None = None,
    nodata_before: float | None = None,
    nodata_after: float | None = None,
    pixel_area_m2: PixelArea | None = None,
    chunks: int | None = None,
) -> ChangeResult:
    """Detect change between ``before`` and ``after`` ((band, y, x) arrays on one grid).

    ``bands`` names the bands (needed by the index methods; default ``b1, b2, ...``). Pixels that
    are NaN or equal to the image's nodata value in any band of either image are not analysed.
    ``pixel_area_m2`` (one value, or one per row) is needed for ``config.min_area_m2``. Dask
    inputs, or ``chunks=N``, run the chunked path, whose output is the same as the in-memory one.
    """
    config = config or ChangeConfig()
    band_names = (
        tuple(bands) if bands is not None else tuple(f"b{i + 1}" for i in range(before.shape[0]))
    )
    _check_sizes(before, after, band_names, config)
    given = before, after  # as stored, for the land cover of the changed pixels
    chunked = chunks is not None or _is_dask(before) or _is_dask(after)
    if chunked:
        size = max(chunks or _DEFAULT_CHUNK, 2 * int(4.0 * config.smooth_sigma + 0.5) + 1)
        before, after = _as_dask(before, size), _as_dask(after, size)
    valid = _valid_mask(before, nodata_before) & _valid_mask(after, nodata_after)
    extra: dict[str, Any] = {}
    gains = _gains(before, after, valid, band_names, config, extra)
    fill_b = _fill(gains.before_gain, gains.before_offset, gains.before_mean, before, valid)
    a = _smooth(
        _apply(before, gains.before_gain, gains.before_offset, valid, fill_b), config.smooth_sigma
    )
    fill_a = (
        _fill(gains.after_gain, gains.after_offset, gains.after_mean, after, valid)
        if config.normalisation_method == "none"
        else fill_b
    )
    b = _smooth(
        _apply(after, gains.after_gain, gains.after_offset, valid, fill_a), config.smooth_sigma
    )
    extra.update(gains.as_dict())

    method = config.method
    if method in ("cva", "pca_kmeans"):
        magnitude_lazy = ((b - a) ** 2).sum(axis=0) ** 0.5
    elif method == "irmad":
        transform = fit_irmad(a, b, valid, max_iter=config.irmad_max_iter)
        magnitude_lazy = transform.chi2(a, b)
        extra.update(
            rho=transform.rho.round(6).tolist(),
            iterations=transform.iterations,
            converged=transform.converged,
        )
    else:
        # log ratio and indices work on reflectance-like values: BEFORE's scale for both dates
        a_dn = _to_before_scale(a, gains)
        b_dn = _to_before_scale(b, gains)
        if method == "log_ratio":
            eps = np.float32(1e-6)
            lr = _log(_maximum(b_dn, eps)) - _log(_maximum(a_dn, eps))
            magnitude_lazy = ((lr**2).sum(axis=0) / len(band_names)) ** 0.5
        else:
            pos = _index_positions(band_names, method)
            delta = _index(b_dn, pos, method) - _index(a_dn, pos, method)
            magnitude_lazy = abs(delta)
            extra["signed_delta"] = delta  # reduced to its mean over the changed pixels below

    magnitude = np.asarray(_materialise(magnitude_lazy), dtype=np.float32)
    valid_np = np.asarray(_materialise(valid), dtype=bool)
    _check_valid(valid_np, config)
    magnitude[~valid_np] = np.nan
    delta_arr = extra.pop("signed_delta", None)

    if method == "pca_kmeans":
        mask, score = pca_kmeans(
            magnitude, valid_np, block=config.pca_block, components=config.pca_components
        )
        magnitude, threshold = score, 0.0
    else:
        threshold = _threshold(magnitude, valid_np, config, len(band_names))
        mask = valid_np & (magnitude > threshold)
        if config.threshold_method == "mad" and not mask.any():
            # the robust threshold assumes that most of the image did not change; decades or a
            # season apart, the changed pixels can be the majority and lift it above them all
            logger.warning(
                "no pixel reached the mad threshold (median + %g robust SD = %.3g; the largest "
                "magnitude is %.3g): it assumes that most of the image did not change; if much "
                "of it did, try --threshold otsu or kmeans",
                config.mad_k, threshold, float(np.nanmax(magnitude)),  # NaN off the valid pixels
            )  # fmt: skip
    mask = clean_mask(
        mask,
        opening_radius=config.opening_radius,
        min_area_m2=config.min_area_m2,
        pixel_area_m2=pixel_area_m2,
    )
    if config.after_covers:
        from .landcover import keep_after_covers

        mask = keep_after_covers(
            mask, np.asarray(given[0]), np.asarray(given[1]), band_names, config.after_covers,
            nodata_before, nodata_after,
        )  # fmt: skip
    if delta_arr is not None and mask.any():
        extra["signed_mean"] = float(np.mean(_materialise(delta_arr)[mask]))
    logger.info(
        "change %s/%s: threshold %.4g, %d changed pixel(s)",
        method, config.threshold_method, threshold, int(mask.sum()),
    )  # fmt: skip
    return ChangeResult(
        mask=mask,
        magnitude=magnitude,
        valid=valid_np,
        threshold=float(threshold),
        method=method,
        threshold_method=config.threshold_method,
        bands=band_names,
        config=config,
        extra=extra,
    )


def _gains(
    before: Any,
    after: Any,
    valid: Any,
    bands: tuple[str, ...],
    config: ChangeConfig,
    extra: dict[str, Any],
) -> BandGains:
    if config.normalisation_method == "none":
        ones = np.ones(len(bands))
        zeros = np.zeros(len(bands))
        mb, sb = band_moments(before, valid)  # checks there are valid pixels
        ma, sa = band_moments(after, valid)
        if not (sb > 0).all() or not (sa > 0).all():
            raise AnalysisError(
                "BEFORE or AFTER is constant over the valid pixels: nothing to compare"
            )
        return BandGains(ones, zeros, ones, zeros, "none", mb, ma)
    z = zscore_gains(before, after, valid, bands)
    if config.normalisation_method == "zscore":
        return z
    # invariant pixels: IR-MAD no-change probability above one half (Canty & Nielsen 2008; the
    # chi-square here is calibrated on the unchanged pixels, so this keeps about half of them)
    zb = _apply(before, z.before_gain, z.before_offset, valid, np.zeros(len(bands)))
    za = _apply(after, z.after_gain, z.after_offset, valid, np.zeros(len(bands)))
    try:
        transform = fit_irmad(zb, za, valid, max_iter=config.irmad_max_iter)
        p = transform.chi2(zb, za)
        sf = (
            p.map_blocks(chi2_sf, len(bands), dtype=np.float64)
            if _is_dask(p)
            else chi2_sf(p, len(bands))
        )
        invariant = valid & (sf > 0.5)
        found = int(np.asarray(_materialise(invariant.sum())))
        usable = int(np.asarray(_materialise(valid.sum())))
        if found < max(MIN_INVARIANT_PX, MIN_INVARIANT_SHARE * usable):
            raise AnalysisError(
                f"only {found:,} of {usable:,} pixels are invariant (no-change probability above "
                "one half)"
            )
        gains = orthogonal_regression(before, after, invariant, bands)
    except AnalysisError as exc:
        # a scene that changed nearly everywhere (a harvest, snow) leaves no invariant pixels to
        # fit; the z-scores still compare the dates, and the run says which it used
        logger.warning(
            "invariant-pixel normalisation failed (%s): z-scores used instead", str(exc).rstrip(".")
        )
        extra["normalisation_fallback"] = {"used": "zscore", "reason": str(exc)}
        return z
    extra["invariant_pixels"] = found
    return gains


MIN_INVARIANT_PX = 100
MIN_INVARIANT_SHARE = 0.01
"""Fewest invariant pixels (a count, and a share of the valid ones) that the invariant-pixel
normalisation fits on; with fewer, the z-scores are used (warned, and named in the result)."""


def _fill(gain: NDArray[np.float64], offset: NDArray[np.float64], mean: NDArray[np.float64] | None, x: Any, valid: Any) -> NDArray[np.float64]:  # fmt: skip
    if mean is None:
        mean, _ = band_moments(x, valid)
    return np.asarray(mean * gain + offset, dtype=np.float64)


def _to_before_scale(x: Any, gains: BandGains) -> Any:
    g = gains.before_gain.astype(np.float32)[:, None, None]
    o = gains.before_offset.astype(np.float32)[:, None, None]
    return (x - o) / g


def _log(x: Any) -> Any:
    return np.log(x)


def _maximum(x: Any, v: np.float32) -> Any:
    return np.maximum(x, v)


def _index(x: Any, pos: list[int], method: str) -> Any:
    if method == "bsi":
        blue, red, nir, swir = (x[i] for i in pos)
        num, den = (swir + red) - (nir + blue), (swir + red) + (nir + blue)
    elif method == "ndvi":
        red, nir = (x[i] for i in pos)
        num, den = nir - red, nir + red
    elif method == "mndwi":
        green, swir = (x[i] for i in pos)
        num, den = green - swir, green + swir
    else:  # ndbi
        nir, swir = (x[i] for i in pos)
        num, den = swir - nir, swir + nir
    safe = den + (den == 0)
    return (num / safe) * (den != 0)


def _materialise(x: Any) -> Any:
    """A NumPy array from a NumPy or dask array (dask: computed block by block into one buffer,
    one row of blocks at a time).

    Given the whole graph at once, dask's ordering held every block of one date's normalised,
    smoothed bands before it took the other's: 3 GB above the inputs for a 4-band Sentinel-2
    tile. A row of blocks at a time holds at most a row's worth (and recomputes only the rows of
    overlap the smoothing reads across the seams)."""
    if not _is_dask(x):
        return np.asarray(x)
    import dask.array as da

    out = np.empty(x.shape, dtype=x.dtype)
    if x.ndim < 2:
        da.store(x, out, lock=False)
    else:
        r0 = 0
        for rows in x.chunks[-2]:
            da.store(x[..., r0 : r0 + rows, :], out[..., r0 : r0 + rows, :], lock=False)
            r0 += rows
    return out.astype(np.float32) if out.dtype == np.float64 else out


def _threshold(magnitude: NDArray[np.float32], valid: NDArray[np.bool_], config: ChangeConfig, n_bands: int) -> float:  # fmt: skip
    kind = config.threshold_method
    if kind == "fixed":
        assert config.fixed_value is not None
        return float(config.fixed_value)
    if kind == "chi2":
        return th.chi2_threshold(n_bands, alpha=config.chi2_alpha)
    hist = th.histogram_of(magnitude, valid)
    if kind == "otsu":
        return th.otsu_threshold(hist)
    if kind == "kmeans":
        return th.kmeans_threshold(hist)
    return th.mad_threshold(hist, k=config.mad_k)


# --- PCA-k-means ------------------------------------------------------------------------------


def pca_kmeans(
    difference: NDArray[np.floating],
    valid: NDArray[np.bool_],
    *,
    block: int = 4,
    components: int = 3,
    sample_step: int = 2,
    seed: int = 0,
) -> tuple[NDArray[np.bool_], NDArray[np.float32]]:
    """Celik (2009): PCA of ``block`` x ``block`` neighbourhoods of a difference image, 2-means.

    The eigenvectors come from non-overlapping blocks; each pixel's feature vector is the projection
    of the block around it (a correlation with each eigenvector as a kernel); k-means (k=2) is fitted
    on a regular subsample and the cluster with the larger mean difference is "change". Returns the
    mask and a score (distance to the no-change centre minus distance to the change centre: > 0 is
    change).
    """
    from scipy.cluster.vq import kmeans2

    d = np.where(valid, difference, 0.0).astype(np.float64)
    h, w = d.shape
    hb, wb = h // block, w // block
    if hb * wb < components + 1:
        raise AnalysisError(
            f"pca_kmeans: a {h} x {w} image has only {hb * wb} block(s) of {block} x {block}; "
            f"need at least {components + 1}: use a larger image or a smaller block"
        )
    blocks = d[: hb * block, : wb * block].reshape(hb, block, wb, block).transpose(0, 2, 1, 3)
    patches = blocks.reshape(-1, block * block)
    patches = patches - patches.mean(axis=0)
    _, vecs = np.linalg.eigh(patches.T @ patches / len(patches))
    kernels = vecs[:, ::-1][:, :components].T.reshape(components, block, block)
    feats = np.stack([ndi.correlate(d, k, mode="reflect") for k in kernels]).astype(np.float32)
    sample = feats[:, ::sample_step, ::sample_step][:, valid[::sample_step, ::sample_step]].T
    if len(sample) < 2:
        raise AnalysisError("pca_kmeans: fewer than two valid pixels to cluster")
    if not np.ptp(sample, axis=0).any():  # k-means would split one point into an empty cluster
        raise AnalysisError(
            "pca_kmeans: the difference is the same at every valid pixel: the images are "
            "constant or identical, there is nothing to cluster"
        )
    centres, labels = kmeans2(sample.astype(np.float64), 2, minit="++", seed=seed)
    sub = d[::sample_step, ::sample_step][valid[::sample_step, ::sample_step]]
    means = [sub[labels == i].mean() if np.any(labels == i) else -np.inf for i in (0, 1)]
    change = int(np.argmax(means))
    c = centres.astype(np.float32)
    dist_change = np.sqrt(((feats - c[change][:, None, None]) ** 2).sum(axis=0))
    dist_none = np.sqrt(((feats - c[1 - change][:, None, None]) ** 2).sum(axis=0))
    score = (dist_none - dist_change).astype(np.float32)
    score[~valid] = np.nan
    return valid & (score > 0), score


# --- post-processing --------------------------------------------------------------------------


@dataclass(frozen=True)
class ChangedPixels:
    """Both dates' band values at the changed pixels of a mask, in row-major order (that of
    ``image[:, mask]``), NaN where a date has no data: what the spectral summary of each change
    patch needs (see :func:`change_polygons`) without keeping the whole images."""

    bands: tuple[str, ...]
    before: NDArray[np.float32]  # (band, changed pixel)
    after: NDArray[np.float32]

    @classmethod
    def of(
        cls,
        mask: NDArray[np.bool_],
        before: NDArray[Any],
        after: NDArray[Any],
        bands: Sequence[str],
        nodata_before: float | None = None,
        nodata_after: float | None = None,
    ) -> ChangedPixels:
        """Gather them from (band, y, x) images as stored, with their no-data values."""

        from ._changeio import nan_nodata

        if before.shape[0] != len(bands) or after.shape[0] != len(bands):
            raise ValueError(f"{len(bands)} band names for {before.shape[0]} / {after.shape[0]}")
        return cls(
            tuple(bands),
            nan_nodata(np.asarray(before)[:, mask], nodata_before),
            nan_nodata(np.asarray(after)[:, mask], nodata_after),
        )

    def indices(self) -> tuple[str, ...]:
        """The :data:`SPECTRAL_INDICES` that the bands allow (see :func:`indices_for`)."""
        return indices_for(self.bands)

    def index_values(self, name: str) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Index ``name`` at each changed pixel before and after, NaN unless both dates have
        data there."""
        pos = _index_positions(self.bands, name)
        with np.errstate(invalid="ignore"):
            vb = _index(self.before.astype(np.float64), pos, name)
            va = _index(self.after.astype(np.float64), pos, name)
        both = np.where(np.isfinite(vb) & np.isfinite(va), 1.0, np.nan)
        return vb * both, va * both

    def index_means(self) -> dict[str, float | None]:
        """The mean of each index the bands allow over all the changed pixels with data on both
        dates, before and after (``ndvi_before``, ``ndvi_after``...; None without any)."""
        out: dict[str, float | None] = {}
        for name in self.indices():
            for when, v in zip(("before", "after"), self.index_values(name), strict=True):
                ok = np.isfinite(v)
                out[f"{name}_{when}"] = round(float(v[ok].mean()), 3) if ok.any() else None
        return out


def change_polygons(
    mask: NDArray[np.bool_],
    transform: Affine,
    crs: CRS | None,
    magnitude: NDArray[np.floating[Any]] | None = None,
    changed: ChangedPixels | None = None,
) -> list[dict[str, Any]]:
    """GeoJSON features (lon/lat) of the change patches of ``mask``, largest first, each with its
    geodesic area in m² and a 1-based ``id``. A mask without a CRS (a plain picture) has none.

    With ``magnitude`` (the change map's magnitude on the mask's grid, NaN where not valid) each
    patch also carries its ``pixels`` and the mean and maximum magnitude over them
    (``magnitude_mean``, ``magnitude_max``), by which an analyst can rank patches of one map by
    strength as well as size. With ``changed`` (both dates' bands at the mask's pixels) it
    carries the mean of each spectral index the bands allow over its pixels with data on both
    dates, before and after (``ndvi_before``, ``ndvi_after``, ... of :data:`SPECTRAL_INDICES`), which
    tell what kind of change it is: vegetation cleared, ground built on, water come or gone; and
    the land cover those means give on each date and the kind of change they make
    (``cover_before``, ``cover_after``, ``kind``: see :mod:`.landcover`)."""
    from rasterio.features import shapes
    from shapely.geometry import mapping, shape

    from ..geo import geodesic_area, to_crs

    feats: list[dict[str, Any]] = []
    if crs is None:
        return feats
    if magnitude is not None and magnitude.shape != mask.shape:
        raise ValueError(f"magnitude {magnitude.shape} and mask {mask.shape} differ in shape")
    n_changed = int(np.count_nonzero(mask))
    if changed is not None and changed.before.shape[1:] != (n_changed,):
        raise ValueError(
            f"the changed pixels' values {changed.before.shape} are not those of the mask's "
            f"{n_changed} changed pixels"
        )
    # with a magnitude or values, one label per patch (8-connected, as the polygons are) keys them
    stats: dict[int, dict[str, Any]] = {}
    if magnitude is None and changed is None:
        src: NDArray[Any] = mask.astype(np.uint8)
    else:
        src, stats = _patch_statistics(mask, magnitude, changed)
    for geom, value in shapes(src, mask=mask, transform=transform, connectivity=8):
        if value == 0:
            continue
        poly = shape(geom)
        props = stats.get(int(value), {})
        if not crs.is_geographic or crs.to_epsg() != 4326:
            poly = to_crs(poly, crs.to_wkt(), "EPSG:4326")
        feats.append(
            {
                "type": "Feature",
                "geometry": mapping(poly),
                "properties": {"area_m2": round(geodesic_area(poly), 1), **props},
            }
        )
    feats.sort(key=lambda f: -float(f["properties"]["area_m2"]))
    for i, f in enumerate(feats):
        f["properties"]["id"] = i + 1
    return feats


def _patch_means(
    lab: NDArray[Any], vals: NDArray[Any], n: int
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Per label 1..n: the mean of the finite ``vals`` (NaN where none) and how many there were."""
    finite = np.isfinite(vals)
    counted = np.bincount(lab[finite], minlength=n + 1)[1:]
    sums = np.bincount(lab[finite], weights=vals[finite], minlength=n + 1)[1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counted, counted


def _patch_statistics(
    mask: NDArray[np.bool_],
    magnitude: NDArray[np.floating[Any]] | None,
    changed: ChangedPixels | None,
) -> tuple[NDArray[np.int32], dict[int, dict[str, Any]]]:
    """The 8-connected patches of ``mask`` labelled 1..n, and each label's pixel count, mean /
    maximum magnitude over its pixels with a finite magnitude (None where it has none) and the
    means of the spectral indices before and after."""
    from scipy import ndimage

    labels, n = ndimage.label(mask, structure=np.ones((3, 3), bool), output=np.int32)
    # only the changed pixels are gathered: whole-grid temporaries would cost 8 bytes a pixel
    lab = labels[mask]
    stats: dict[int, dict[str, Any]] = {
        i + 1: {"pixels": int(c)} for i, c in enumerate(np.bincount(lab, minlength=n + 1)[1:])
    }
    if magnitude is not None:
        vals = magnitude[mask].astype(np.float64)
        means, counted = _patch_means(lab, vals, n)
        finite = np.isfinite(vals)
        highest = np.full(n + 1, -np.inf)
        np.maximum.at(highest, lab[finite], vals[finite])
        for i in range(n):
            some = bool(counted[i])
            stats[i + 1]["magnitude_mean"] = round(float(means[i]), 4) if some else None
            stats[i + 1]["magnitude_max"] = round(float(highest[i + 1]), 4) if some else None
    if changed is not None:
        from .landcover import change_kind, cover

        for name in changed.indices():
            for when, v in zip(("before", "after"), changed.index_values(name), strict=True):
                means, counted = _patch_means(lab, v, n)
                for i in range(n):
                    stats[i + 1][f"{name}_{when}"] = (
                        round(float(means[i]), 3) if counted[i] else None
                    )
        for props in stats.values():
            props["cover_before"] = cover(props, "before")
            props["cover_after"] = cover(props, "after")
            props["kind"] = change_kind(props["cover_before"], props["cover_after"])
    return labels, stats


def clean_mask(
    mask: NDArray[np.bool_],
    *,
    opening_radius: int = 0,
    min_area_m2: float = 0.0,
    pixel_area_m2: PixelArea | None = None,
) -> NDArray[np.bool_]:
    """Morphological opening (disk of ``opening_radius`` px), then drop patches under ``min_area_m2``.

    Patches are 8-connected. ``pixel_area_m2`` converts the minimum mapping unit to pixels: one
    area for every pixel, or one per row (a grid whose pixel area changes with latitude: a
    patch's area is then the sum of its pixels' areas).
    """
    out = np.asarray(mask, dtype=bool)
    if opening_radius > 0:
        from skimage.morphology import disk

        out = ndi.binary_opening(out, structure=disk(opening_radius))  # type: ignore[no-untyped-call]
    if min_area_m2 > 0:
        area = None if pixel_area_m2 is None else np.asarray(pixel_area_m2, dtype=np.float64)
        if area is None or not (area.size and bool(np.all(area > 0))):
            raise AnalysisError(
                f"a minimum mapping unit of {min_area_m2} m² needs the pixel area: the image has "
                "no usable georeferencing; give a georeferenced image or drop --min-area"
            )
        if area.ndim and area.shape != (out.shape[0],):
            raise AnalysisError(
                f"pixel areas per row need one value for each of the mask's {out.shape[0]} rows, "
                f"got {area.shape}"
            )
        labels, n = ndi.label(out, structure=np.ones((3, 3), dtype=bool))
        if n:
            if area.ndim:
                weights = np.broadcast_to(area[:, None], out.shape).ravel()
                keep = np.bincount(labels.ravel(), weights=weights) >= min_area_m2
            else:
                min_pixels = math.ceil(min_area_m2 / float(area))
                keep = np.bincount(labels.ravel()) >= min_pixels
            keep[0] = False
            out = keep[labels]
    return out
