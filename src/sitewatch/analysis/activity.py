"""Activity over a time series: per-date activity index, change points, construction phases.

Change at a date is tested against the previous *clear* date, pixel by pixel, on the log of the
bands (lightly smoothed: construction changes whole objects, not single pixels), and judged
against the change of the site's surroundings over the same pair of dates:

* the *background* is every usable pixel of the images outside the site's AOI (give the images a
  ring of surroundings); without one (no AOI, or fewer than ``min_background_px`` pixels of a
  kind) only the chi-square noise floor applies, which any real change passes: seasonal change
  then counts as activity (a warning says so);
* seasonal illumination, phenology and radiometric differences change the site and its
  surroundings alike, so the change vectors of the background, of the same kind of pixel, define
  what "no construction" looks like for that pair: a robust mean and covariance, and the
  ``change_quantile`` of their Mahalanobis distances (never below a chi-square noise floor);
* pixels compared are lit on both dates (cast shadows move with the sun) and not vegetated on both
  (change between two vegetated states is phenology); two kinds are tested apart, each against
  its own background: bare on both dates (new material: spoil, concrete, roofs) and vegetated on
  one (clearing, or regrowth);
* changed pixels are kept only in connected patches of at least ``min_blob_m2``: construction adds
  or alters objects, while residual illumination change is thin edges and isolated pixels.

Per date:

* ``changed``: the fraction of the site's pixels in such patches against the previous clear date
  (the activity index);
* ``cumulative``: the same against the first clear date (the baseline);
* ``bare``: the fraction of bare soil or rock (bare-soil index with SWIR, else low NDVI);
* ``veg_loss``: the fraction of pixels that lost vegetation against the baseline (clearing);
* ``spoil``: the fraction of bright, unvegetated pixels (fresh spoil, concrete, gravel).

A date is active when its index reaches ``min_active_fraction`` (and at least one patch passed).
Change points over the index come from ruptures (PELT). Phases follow the IARPA SMART vocabulary:
``no_activity`` until the first active date; ``site_preparation`` while the activity is mostly
clearing; ``active_construction`` while other change goes on; ``post_construction`` once activity
has stopped but the site differs from its baseline.

Limit: a structure that only grows in height without changing its footprint or material (a spoil
berm piled higher) changes the image only through shading and shadows, which the sun's changes
also move; that is not told apart from illumination and is not reported as activity.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..errors import AnalysisError
from ..types import ActivityPhase

__all__ = [
    "ActivityConfig",
    "ActivitySeries",
    "Transition",
    "activity_from_cube",
    "activity_series",
    "change_points",
    "not_phenology",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActivityConfig:
    """Thresholds of the activity analysis (defaults suit 0.3-10 m optical imagery)."""

    min_clear_fraction: float = 0.6
    """A date is clear when at least this fraction of the site's pixels is usable."""
    change_quantile: float = 0.99
    """A pixel changed when its change is beyond this quantile of the background's change."""
    noise_p: float = 0.999
    """...and beyond this chi-square quantile of the background's (median-scaled) distances."""
    min_blob_m2: float = 50.0
    """Changed pixels count only in connected patches of at least this area..."""
    min_blob_px: int = 4
    """...and at least this many pixels."""
    min_active_fraction: float = 0.001
    """A date is active when at least this fraction of the site changed since the last clear date."""
    smooth_px: int = 1
    """Radius (pixels) of the box filter applied to the log bands before the change test."""
    open_px: int = 1
    """Radius (pixels) of the morphological opening of the changed pixels (0: none)."""
    shadow_factor: float = 0.5
    """Pixels darker than this times the date's median (bare or vegetated alike) are shadow."""
    min_background_px: int = 500
    """Fewest background pixels of a kind to model its change (else the next wider reference)."""
    ndvi_bare: float = 0.2
    """Pixels below this NDVI count as unvegetated."""
    veg_loss_delta: float = 0.15
    """A drop in NDVI of at least this much is vegetation loss."""
    clearing_share: float = 0.6
    """A date is site preparation when at least this share of its change is vegetation loss."""
    penalty: float | None = None
    """PELT penalty for change points (default: 3 x noise variance x log(n))."""


@dataclass(frozen=True)
class Transition:
    """A phase change between two dates."""

    when: datetime
    before: ActivityPhase
    after: ActivityPhase


@dataclass(frozen=True)
class ActivitySeries:
    """The activity of one site through time (one entry per date, oldest first)."""

    times: tuple[datetime, ...]
    clear: NDArray[np.bool_]
    usable_fraction: NDArray[np.float64]
    changed: NDArray[np.float64]
    cumulative: NDArray[np.float64]
    bare: NDArray[np.float64]
    veg_loss: NDArray[np.float64]
    spoil: NDArray[np.float64]
    active: NDArray[np.bool_]
    phases: tuple[ActivityPhase, ...]
    breakpoints: tuple[int, ...]
    """Indices of the first date after each change point of the activity index."""

    @property
    def index(self) -> NDArray[np.float64]:
        """The activity index (``changed``)."""
        return self.changed

    @property
    def onset(self) -> datetime | None:
        """The first date with activity (site preparation or construction), if any."""
        for t, p in zip(self.times, self.phases, strict=True):
            if p in ("site_preparation", "active_construction"):
                return t
        return None

    @property
    def transitions(self) -> tuple[Transition, ...]:
        """Every phase change, with the date it was first seen."""
        out = []
        for i in range(1, len(self.phases)):
            if self.phases[i] != self.phases[i - 1]:
                out.append(Transition(self.times[i], self.phases[i - 1], self.phases[i]))
        return tuple(out)

    def as_records(self) -> list[dict[str, Any]]:
        """One JSON-ready dict per date."""
        return [
            {
                "time": t.isoformat(),
                "clear": bool(self.clear[i]),
                "usable_fraction": _r(self.usable_fraction[i]),
                "changed": _r(self.changed[i]),
                "cumulative": _r(self.cumulative[i]),
                "bare": _r(self.bare[i]),
                "veg_loss": _r(self.veg_loss[i]),
                "spoil": _r(self.spoil[i]),
                "active": bool(self.active[i]),
                "phase": self.phases[i],
                "change_point": i in self.breakpoints,
            }
            for i, t in enumerate(self.times)
        ]


def _r(x: float) -> float | None:
    return None if not np.isfinite(x) else round(float(x), 6)


def _band(data: NDArray[np.float64], bands: Sequence[str], name: str) -> NDArray[np.float64] | None:
    return data[:, list(bands).index(name)] if name in bands else None


def _ratio(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (a - b) / (a + b)
    return np.asarray(np.where(np.isfinite(out), out, np.nan), dtype=np.float64)


def change_points(index: NDArray[np.float64], *, penalty: float | None = None) -> tuple[int, ...]:
    """Change points of a 1-D series with ruptures' PELT (indices where a new segment starts)."""
    import ruptures

    y = np.asarray(index, dtype=np.float64)
    y = np.where(np.isfinite(y), y, np.nanmedian(y) if np.isfinite(y).any() else 0.0)
    if len(y) < 3 or float(np.ptp(y)) == 0.0:
        return ()
    if penalty is None:
        # noise from first differences (robust to steps), floored at a tenth of the spread
        sigma = max(_mad(np.diff(y)) / np.sqrt(2.0), 0.1 * float(np.std(y)), 1e-12)
        penalty = 3.0 * sigma**2 * float(np.log(len(y)))
    pen = penalty
    bkps = ruptures.Pelt(model="l2", min_size=1, jump=1).fit(y.reshape(-1, 1)).predict(pen=pen)
    return tuple(int(b) for b in bkps if 0 < b < len(y))


def activity_series(
    data: NDArray[Any],
    bands: Sequence[str],
    times: Sequence[datetime],
    *,
    valid: NDArray[np.bool_] | None = None,
    cloud: NDArray[np.bool_] | None = None,
    aoi: NDArray[np.bool_] | None = None,
    pixel_m: float | None = None,
    config: ActivityConfig | None = None,
) -> ActivitySeries:
    """Compute the activity of a site from a (time, band, y, x) stack on one grid.

    ``aoi`` marks the site; the usable pixels outside it are the background that the site's
    change is judged against (see the module notes). ``pixel_m`` (pixel size in metres) turns
    ``min_blob_m2`` into pixels; without it only ``min_blob_px`` applies.
    """
    cfg = config or ActivityConfig()
    arr = np.asarray(data, dtype=np.float64)
    if arr.ndim != 4:
        raise AnalysisError(f"expected a (time, band, y, x) stack, got shape {arr.shape}")
    nt = arr.shape[0]
    if nt != len(times):
        raise AnalysisError(f"{nt} images but {len(times)} dates")
    if nt < 2:
        raise AnalysisError("activity needs at least two dates")
    times = [t if t.tzinfo else t.replace(tzinfo=UTC) for t in times]
    order = np.argsort(np.array([t.timestamp() for t in times]))
    arr = arr[order]
    times = [times[i] for i in order]
    ok: NDArray[np.bool_] = np.asarray(np.isfinite(arr).all(axis=1) & (arr > 0).any(axis=1))
    if valid is not None:
        ok &= np.asarray(valid, dtype=bool)[order]
    if cloud is not None:
        ok &= ~np.asarray(cloud, dtype=bool)[order]
    site_px = np.asarray(aoi, dtype=bool) if aoi is not None else np.ones(arr.shape[2:], dtype=bool)
    if aoi is not None and site_px.shape != arr.shape[2:]:
        raise AnalysisError(
            f"the AOI mask {site_px.shape} does not match the images {arr.shape[2:]}"
        )
    if int((~site_px).sum()) < cfg.min_background_px:
        log.warning(
            "activity: the images have no surroundings around the site (%d pixels outside the "
            "AOI); only the noise floor applies and seasonal change will count as activity: cut "
            "the images with a ring around the site (the monitor's --ring)",
            int((~site_px).sum()),
        )
    usable = ok & site_px[None]
    denom = float(site_px.sum())
    if denom == 0:
        raise AnalysisError("the site's AOI covers no pixel of the images")
    usable_fraction = usable.reshape(nt, -1).sum(axis=1) / denom
    clear = usable_fraction >= cfg.min_clear_fraction
    if not clear.any():
        raise AnalysisError(
            f"no clear date: every image has less than {cfg.min_clear_fraction:.0%} usable pixels "
            "over the site (clouds or nodata); lower min_clear_fraction or add images"
        )

    red, nir = _band(arr, bands, "red"), _band(arr, bands, "nir")
    if red is None or nir is None:
        unnamed = all(re.fullmatch(r"b(and)?_?\d+", str(b).lower()) for b in bands)
        hint = (
            ": the files do not name their bands; list them in order for a local source in "
            'sources.toml ([sources.NAME] type = "local", path = "...", bands = ["red", "green", '
            '"blue", "nir"]) and use that NAME as the source'
            if unnamed
            else ""
        )
        raise AnalysisError(
            f"activity needs the red and nir bands; the images have {list(bands)}{hint}"
        )
    ndvi = _ratio(nir, red)
    swir, blue = _band(arr, bands, "swir16"), _band(arr, bands, "blue")
    if swir is not None and blue is not None:
        bsi = _ratio(swir + red, nir + blue)
        bare_px: NDArray[np.bool_] = np.asarray(bsi > 0.0)
    else:
        bare_px = np.asarray(ndvi < cfg.ndvi_bare)
    vis = [b for b in ("blue", "green", "red") if b in bands]
    bright = arr[:, [list(bands).index(b) for b in vis]].mean(axis=1)

    logs, lit = _log_bands(arr, ok, ndvi, cfg)
    veg = np.asarray(ndvi >= cfg.ndvi_bare)
    min_px = cfg.min_blob_px
    if pixel_m is not None and pixel_m > 0:
        min_px = max(min_px, int(np.ceil(cfg.min_blob_m2 / pixel_m**2)))

    def test(a: int, b: int) -> tuple[float, float]:
        m = ok[a] & ok[b]
        px = _pair_change(logs, lit, veg, a, b, m, m & site_px, m & ~site_px, min_px, cfg)
        site_m = m & site_px
        n = max(int(site_m.sum()), 1)
        lost = px & veg[a] & ~veg[b]
        return float(px.sum() / n), float(lost.sum() / max(int(px.sum()), 1))

    changed = np.full(nt, np.nan)
    cumulative = np.full(nt, np.nan)
    veg_loss = np.full(nt, np.nan)
    veg_share = np.full(nt, np.nan)
    bare = np.full(nt, np.nan)
    spoil = np.full(nt, np.nan)
    clear_idx = np.flatnonzero(clear)
    base = int(clear_idx[0])
    base_bright = np.nanmedian(bright[base][usable[base]])
    base_mad = _mad(bright[base][usable[base]])
    prev = base
    for i in range(nt):
        m = usable[i]
        if not m.any():
            continue
        bare[i] = float(bare_px[i][m].mean())
        spoil_px = (bright[i] > base_bright + 4.0 * base_mad) & (ndvi[i] < cfg.ndvi_bare)
        spoil[i] = float(spoil_px[m].mean())
        mb = m & usable[base]
        lost = (ndvi[base] - ndvi[i]) >= cfg.veg_loss_delta
        veg_loss[i] = float(lost[mb].mean()) if mb.any() else np.nan
        if i == base:
            changed[i] = cumulative[i] = 0.0
            continue
        if mb.any():
            cumulative[i] = test(base, i)[0]
        if not clear[i]:
            continue
        changed[i], veg_share[i] = test(prev, i)
        prev = i

    active = clear & (np.nan_to_num(changed) >= max(cfg.min_active_fraction, 1e-12))
    phases = _phases(active, clear, veg_share, cumulative, cfg.min_active_fraction, cfg)
    bkps = change_points(np.where(clear, np.nan_to_num(changed), np.nan), penalty=cfg.penalty)
    return ActivitySeries(
        times=tuple(times),
        clear=clear,
        usable_fraction=usable_fraction,
        changed=changed,
        cumulative=cumulative,
        bare=bare,
        veg_loss=veg_loss,
        spoil=spoil,
        active=active,
        phases=phases,
        breakpoints=bkps,
    )


def _mad(x: NDArray[np.float64]) -> float:
    if x.size == 0:
        return 0.0
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


def _log_bands(
    arr: NDArray[np.float64], ok: NDArray[np.bool_], ndvi: NDArray[np.float64], cfg: ActivityConfig
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Smoothed log bands per date, and which pixels are lit (not in shadow)."""
    from scipy import ndimage

    pos = arr[np.isfinite(arr) & (arr > 0)]
    eps = 1e-3 * float(np.median(pos)) if pos.size else 1e-6
    logs = np.log(np.maximum(np.where(np.isfinite(arr), arr, eps), eps))
    if cfg.smooth_px > 0:
        size = 2 * cfg.smooth_px + 1
        logs = ndimage.uniform_filter(logs, size=(1, 1, size, size), mode="nearest")
    lb = logs.mean(axis=1)
    lit = np.zeros(ok.shape, dtype=bool)
    for t in range(arr.shape[0]):
        m = ok[t]
        if not m.any():
            continue
        # against the median of pixels of the same state (bare or vegetated): dark vegetation
        # next to bright soil is not shadow
        for state in (ndvi[t] < cfg.ndvi_bare, ~(ndvi[t] < cfg.ndvi_bare)):
            sel = m & state
            if not sel.any():
                continue
            ref = float(np.median(lb[t][sel] if sel.sum() >= 100 else lb[t][m]))
            lit[t] |= sel & (lb[t] > ref + np.log(cfg.shadow_factor))
    return logs, lit


def _robust_fit(v: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Mean and covariance of the central 75% of change vectors (three trimming passes)."""
    k = v.shape[1]
    mu = np.median(v, axis=0)
    keep = np.ones(len(v), dtype=bool)
    cov = np.eye(k)
    for _ in range(3):
        sel = v[keep]
        if len(sel) > k + 1:
            mu = sel.mean(axis=0)
            cov = np.atleast_2d(np.cov((sel - mu).T))
        cov = cov + 1e-9 * max(float(np.trace(cov)) / k, 1e-12) * np.eye(k)
        d2 = _mahalanobis2(v, mu, cov)
        keep = d2 <= np.quantile(d2, 0.75)
    return mu, cov


def _mahalanobis2(
    v: NDArray[np.float64], mu: NDArray[np.float64], cov: NDArray[np.float64]
) -> NDArray[np.float64]:
    inv = np.linalg.pinv(cov)
    d = v - mu
    return np.asarray(np.einsum("ij,jk,ik->i", d, inv, d), dtype=np.float64)


def _pair_change(
    logs: NDArray[np.float64],
    lit: NDArray[np.bool_],
    veg: NDArray[np.bool_],
    a: int,
    b: int,
    m: NDArray[np.bool_],
    site: NDArray[np.bool_],
    background: NDArray[np.bool_],
    min_px: int,
    cfg: ActivityConfig,
) -> NDArray[np.bool_]:
    """Site pixels (in patches of at least ``min_px``) whose change from date ``a`` to ``b`` is
    beyond what the background shows for the same kind of pixel over the same dates."""
    from scipy import ndimage
    from scipy.stats import chi2

    both_lit = m & lit[a] & lit[b]
    kinds = (both_lit & ~veg[a] & ~veg[b], both_lit & (veg[a] ^ veg[b]))
    nb = logs.shape[1]
    delta = (logs[b] - logs[a]).reshape(nb, -1).T
    rng = np.random.default_rng(0)
    changed = np.zeros(m.shape, dtype=bool)
    for kind in kinds:
        if not (kind & site).any():
            continue
        # the reference: the background of this kind, else the lit background, else all lit
        # pixels (the site included: then only the noise floor applies, not the quantile)
        refs = [
            r
            for r in (background & kind, background & both_lit)
            if r.sum() >= cfg.min_background_px
        ]
        ref = refs[0] if refs else both_lit
        if ref.sum() <= nb + 1:
            continue
        idx = np.flatnonzero(ref.ravel())
        if idx.size > 20000:
            idx = rng.choice(idx, 20000, replace=False)
        mu, cov = _robust_fit(delta[idx])
        cand = np.flatnonzero((kind & site).ravel())
        d2_ref = _mahalanobis2(delta[idx], mu, cov)
        floor = float(chi2.ppf(cfg.noise_p, nb)) * float(np.median(d2_ref)) / float(chi2.median(nb))
        thr = max(float(np.quantile(d2_ref, cfg.change_quantile)), floor) if refs else floor
        hit = _mahalanobis2(delta[cand], mu, cov) > thr
        changed.ravel()[cand[hit]] = True
    if cfg.open_px > 0:
        changed = ndimage.binary_opening(changed, iterations=cfg.open_px)
    labels, n = ndimage.label(changed & site)
    if n == 0:
        return np.zeros(m.shape, dtype=bool)
    sizes = np.bincount(labels.ravel())
    big = sizes >= min_px
    big[0] = False
    return np.asarray(big[labels], dtype=bool)


def not_phenology(
    before: NDArray[Any], after: NDArray[Any], bands: Sequence[str], *, ndvi_bare: float = 0.2
) -> NDArray[np.bool_]:
    """Pixels of two (band, y, x) images that are bare or built on at least one of the dates.

    Change between two vegetated states is phenology (green-up, harvest, drought), not
    construction. Without red and nir bands every pixel is kept.
    """
    if "red" not in bands or "nir" not in bands:
        return np.ones(np.shape(before)[1:], dtype=bool)
    r, n = list(bands).index("red"), list(bands).index("nir")
    pair = np.stack([np.asarray(before, dtype=np.float64), np.asarray(after, dtype=np.float64)])
    ndvi = _ratio(pair[:, n], pair[:, r])
    return _unvegetated(ndvi, 0, 1, ActivityConfig(ndvi_bare=ndvi_bare))


def _unvegetated(
    ndvi: NDArray[np.float64], a: int, b: int, cfg: ActivityConfig
) -> NDArray[np.bool_]:
    """Pixels bare or built on at least one of two dates: change between two vegetated states is
    phenology (green-up, harvest, drought), not construction."""
    return np.asarray(np.fmin(ndvi[a], ndvi[b]) < cfg.ndvi_bare)


def _phases(
    active: NDArray[np.bool_],
    clear: NDArray[np.bool_],
    veg_share: NDArray[np.float64],
    cumulative: NDArray[np.float64],
    threshold: float,
    cfg: ActivityConfig,
) -> tuple[ActivityPhase, ...]:
    phases: list[ActivityPhase] = []
    current: ActivityPhase = "no_activity"
    built = False
    for i in range(len(active)):
        if not clear[i]:
            phases.append(current)  # a cloudy date tells nothing new
            continue
        if active[i]:
            clearing = np.isfinite(veg_share[i]) and veg_share[i] >= cfg.clearing_share
            current = "site_preparation" if clearing and not built else "active_construction"
            built = built or current == "active_construction"
        elif current in ("site_preparation", "active_construction"):
            current = "post_construction"
        elif (
            current == "no_activity"
            and np.isfinite(cumulative[i])
            and cumulative[i] >= 5 * threshold
            and i > 0
        ):
            current = "post_construction"  # changed between two images with no active date seen
        phases.append(current)
    return tuple(phases)


def activity_from_cube(
    cube: Any, *, aoi: NDArray[np.bool_] | None = None, config: ActivityConfig | None = None
) -> ActivitySeries:
    """:func:`activity_series` over a cube from :func:`sitewatch.imagery.cube.build_cube`.

    Build the cube on a grid wider than the site's AOI: the pixels outside ``aoi`` are the
    background that the site's change is judged against.
    """
    times = [
        datetime.fromtimestamp(t.astype("datetime64[ns]").astype(np.int64) / 1e9, tz=UTC)
        for t in np.asarray(cube["time"].values)
    ]
    valid = np.asarray(cube["valid"].values) if "valid" in cube.coords else None
    cloud = np.asarray(cube["cloud"].values) if "cloud" in cube.coords else None
    res = cube.attrs.get("resolution")
    pixel_m = float(res) if res is not None and np.isfinite(float(res)) else None
    return activity_series(
        np.asarray(cube.values),
        [str(b) for b in cube["band"].values],
        times,
        valid=valid,
        cloud=cloud,
        aoi=aoi,
        pixel_m=pixel_m,
        config=config,
    )
