"""Activity over a time series: per-date activity index, change points, construction phases.

For each date the site's pixels (inside the AOI, valid, not cloudy) give:

* ``changed``: the fraction of pixels that changed against the previous *clear* date, a change
  vector test with the bands scaled by a robust estimate of the date-to-date noise, counting only
  pixels unvegetated on one of the two dates (vegetated-to-vegetated change is phenology);
* ``cumulative``: the fraction changed against the first clear date (the baseline);
* ``bare``: the fraction of bare soil or rock (bare-soil index with SWIR, else low NDVI);
* ``veg_loss``: the fraction of pixels that lost vegetation against the baseline (clearing);
* ``spoil``: the fraction of bright, unvegetated pixels (fresh spoil, concrete, gravel).

The activity index is ``changed`` (what is happening now). Change points over the index come from
ruptures (PELT). Phases follow the IARPA SMART vocabulary: ``no_activity`` until the first active
date; ``site_preparation`` while the activity is mostly clearing (vegetation loss, bare ground);
``active_construction`` while other change goes on; ``post_construction`` once activity has stopped
but the site differs from its baseline.
"""

from __future__ import annotations

import itertools
import logging
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
    """Thresholds of the activity analysis (defaults suit 0.5-10 m optical imagery)."""

    min_clear_fraction: float = 0.6
    """A date is clear when at least this fraction of the site's pixels is usable."""
    change_sigma: float = 4.0
    """A pixel changed when its normalised change vector exceeds this many noise sigmas."""
    min_active_fraction: float = 0.004
    """A date is active when at least this fraction of the site changed since the last clear date."""
    noise_factor: float = 3.0
    """...and at least this many times the site's typical (median) changed fraction."""
    ndvi_bare: float = 0.2
    """Pixels below this NDVI count as unvegetated."""
    veg_loss_delta: float = 0.15
    """A drop in NDVI of at least this much is vegetation loss."""
    clearing_share: float = 0.6
    """A date is site preparation when at least this share of its change is vegetation loss."""
    illumination_invariant: bool = True
    """Test change on chromaticity rather than reflectance (insensitive to sun-angle changes)."""
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
    config: ActivityConfig | None = None,
) -> ActivitySeries:
    """Compute the activity of a site from a (time, band, y, x) stack on one grid."""
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
    usable: NDArray[np.bool_] = np.asarray(np.isfinite(arr).all(axis=1))
    if valid is not None:
        usable &= np.asarray(valid, dtype=bool)[order]
    if cloud is not None:
        usable &= ~np.asarray(cloud, dtype=bool)[order]
    if aoi is not None:
        usable &= np.asarray(aoi, dtype=bool)[None]
    denom = float(aoi.sum()) if aoi is not None else float(arr.shape[2] * arr.shape[3])
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
        raise AnalysisError(f"activity needs the red and nir bands; the images have {list(bands)}")
    ndvi = _ratio(nir, red)
    swir, blue = _band(arr, bands, "swir16"), _band(arr, bands, "blue")
    if swir is not None and blue is not None:
        bsi = _ratio(swir + red, nir + blue)
        bare_px: NDArray[np.bool_] = np.asarray(bsi > 0.0)
    else:
        bare_px = np.asarray(ndvi < cfg.ndvi_bare)
    vis = [b for b in ("blue", "green", "red") if b in bands]
    bright = arr[:, [list(bands).index(b) for b in vis]].mean(axis=1)

    # Change is tested on chromaticity (each band over the sum of bands): a change of sun angle
    # scales the bands of a pixel together (terrain illumination), which chromaticity cancels,
    # while clearing, spoil and new concrete change the shape of the spectrum.
    with np.errstate(divide="ignore", invalid="ignore"):
        chroma = arr / arr.sum(axis=1, keepdims=True) if cfg.illumination_invariant else arr
    # noise scale per band from all consecutive clear pairs (robust: MAD of differences)
    clear_idx = np.flatnonzero(clear)
    scale = _noise_scale(chroma, usable, clear_idx)

    changed = np.full(nt, np.nan)
    cumulative = np.full(nt, np.nan)
    veg_loss = np.full(nt, np.nan)
    veg_share = np.full(nt, np.nan)
    bare = np.full(nt, np.nan)
    spoil = np.full(nt, np.nan)
    base = clear_idx[0]
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
        cumulative[i] = (
            float(
                (
                    _changed_px(chroma[i], chroma[base], scale, cfg)
                    & _unvegetated(ndvi, i, base, cfg)
                )[mb].mean()
            )
            if mb.any()
            else np.nan
        )
        if not clear[i] or i == base:
            if i == base:
                changed[i] = 0.0
            continue
        mp = m & usable[prev]
        px = (
            _changed_px(chroma[i], chroma[prev], scale, cfg) & mp & _unvegetated(ndvi, i, prev, cfg)
        )
        changed[i] = float(px.sum() / max(mp.sum(), 1))
        lost_now = ((ndvi[prev] - ndvi[i]) >= cfg.veg_loss_delta) & px
        veg_share[i] = float(lost_now.sum() / max(px.sum(), 1))
        prev = i

    typical = float(np.nanmedian(changed[clear])) if np.isfinite(changed[clear]).any() else 0.0
    threshold = max(cfg.min_active_fraction, cfg.noise_factor * typical)
    active = clear & (np.nan_to_num(changed) >= threshold)
    phases = _phases(active, clear, veg_share, cumulative, threshold, cfg)
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


def _noise_scale(
    arr: NDArray[np.float64], usable: NDArray[np.bool_], clear_idx: NDArray[np.intp]
) -> NDArray[np.float64]:
    nb = arr.shape[1]
    if len(clear_idx) < 2:
        scale = np.array([_mad(arr[clear_idx[0], b][usable[clear_idx[0]]]) for b in range(nb)])
    else:
        diffs: list[list[NDArray[np.float64]]] = [[] for _ in range(nb)]
        for a, b in itertools.pairwise(clear_idx):
            m = usable[a] & usable[b]
            for k in range(nb):
                diffs[k].append((arr[b, k] - arr[a, k])[m])
        # the median of the per-pair MADs is robust to one pair with widespread change
        scale = np.array([np.median([_mad(d) for d in diffs[k]]) / np.sqrt(2.0) for k in range(nb)])
    floor = 1e-6 * max(float(np.nanmax(np.abs(arr[clear_idx[0]]))), 1.0)
    return np.asarray(np.maximum(scale, floor), dtype=np.float64)


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


def _changed_px(
    a: NDArray[np.float64], b: NDArray[np.float64], scale: NDArray[np.float64], cfg: ActivityConfig
) -> NDArray[np.bool_]:
    z = (a - b) / (np.sqrt(2.0) * scale[:, None, None])
    mag = np.sqrt(np.nansum(z * z, axis=0) / a.shape[0])
    return np.asarray(mag > cfg.change_sigma)


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
    """:func:`activity_series` over a cube from :func:`sitewatch.imagery.cube.build_cube`."""
    times = [
        datetime.fromtimestamp(t.astype("datetime64[ns]").astype(np.int64) / 1e9, tz=UTC)
        for t in np.asarray(cube["time"].values)
    ]
    valid = np.asarray(cube["valid"].values) if "valid" in cube.coords else None
    cloud = np.asarray(cube["cloud"].values) if "cloud" in cube.coords else None
    return activity_series(
        np.asarray(cube.values),
        [str(b) for b in cube["band"].values],
        times,
        valid=valid,
        cloud=cloud,
        aoi=aoi,
        config=config,
    )
