"""The monitoring job: for each site, new scenes -> chips -> change and activity -> catalog.

One site is one unit of work and one catalog transaction: a run interrupted in the middle of a site
leaves nothing of that site half-written, and the next run does the site again. Records carry ids
derived from (site, scene), so a re-run adds nothing twice. Chips already in the archive are not
fetched again. ``run_monitor`` runs sites in parallel on dask (local threads by default, a
dask.distributed cluster when given a scheduler address); alerts are delivered to the sinks by the
caller once the sites are done.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
from shapely.geometry import shape
from shapely.ops import unary_union

from ..catalog.models import Alert, ChangeEvent, Observation, Site
from ..catalog.store import Catalog
from ..cluster import LOCAL_SCHEDULERS, connect
from ..errors import NoScenesFound, SitewatchError
from ..geo import to_crs
from ..imagery.archive import Archive
from ..imagery.chips import ChipGrid
from ..imagery.cube import build_cube, stack_chips
from ..imagery.sitegrid import DEFAULT_RING_M, DEFAULT_SIZE_M, choose_grid, site_aoi, site_grid
from ..imagery.sources.base import ImagerySource, find_scenes
from ..imagery.sources.config import load_source_config, open_source, source_from_config
from .config import Rules

__all__ = [
    "MonitorOptions",
    "SiteReport",
    "measured_change_alerts",
    "monitor_site",
    "run_monitor",
]

log = logging.getLogger(__name__)

ACTOR = "sitewatch-monitor"


@dataclass(frozen=True)
class MonitorOptions:
    """How to monitor: where the imagery is, the chip grid, and the alert rules."""

    archive: Path
    sources: tuple[str, ...] = ()
    """Source specs (configured names, folders, catalog.json, STAC API URLs); default: all configured."""
    allow_private: bool = False
    """Let STAC URLs reach private and loopback addresses (``--allow-private``)."""
    since: date | None = None
    """Only scenes acquired on or after this date become observations (older ones are baseline)."""
    resolution: float | None = None
    """Chip pixel size (m); None: that of the site's archived chips, else the scenes' own."""
    size_m: float = DEFAULT_SIZE_M
    """Chip size for sites without an AOI (the AOI is then this square)."""
    ring_m: float = DEFAULT_RING_M
    """Surroundings cut with the site: activity judges the site's change against this ring, which
    shares its seasonal light and phenology; change events count the AOI only. Widened where it
    would hold fewer than 1,000 pixels (coarse imagery, small sites)."""
    bands: tuple[str, ...] | None = None
    change_method: str | None = None
    rules: Rules = field(default_factory=Rules)
    imagery: bool = True
    """Search and analyse new scenes; without, only the stored measurements are checked."""


@dataclass
class SiteReport:
    """What the monitor did for one site."""

    site_id: str
    scenes: int = 0
    new_scenes: int = 0
    observations: int = 0
    change_events: int = 0
    alerts: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    phase: str | None = None
    onset: str | None = None
    error: str | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _largest_kind(kinds: dict[str, float]) -> str:
    """``, 92% vegetation → built or bare`` (the kind of change with the largest area and its
    share, worded as briefs word it), or "" without kinds."""
    from ..analysis.landcover import kind_shares, kind_words

    shares = kind_shares(kinds)
    return f", {kind_words(shares[0][0])} {100 * shares[0][1]:.0f}%" if shares else ""


def patches_text(n: int, day: date) -> str:
    """The message of a new-feature-candidate alert, in the singular for one patch."""
    if n == 1:
        return f"1 compact new change patch on {day} could be a new feature"
    return f"{n} compact new change patches on {day} could be new features"


def _phase(name: str) -> str:
    return name.replace("_", " ")


def _rid(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def _sources(specs: Sequence[str], allow_private: bool = False) -> list[ImagerySource]:
    if specs:
        return [open_source(s, allow_private=allow_private) for s in specs]
    from ..config import get_settings

    settings = get_settings()
    configs = load_source_config(settings.sources_path)
    if not configs:
        raise SitewatchError(
            f"no imagery sources: give --source (a folder, catalog.json or STAC URL) or configure "
            f"sources in {settings.sources_path}"
        )
    return [
        source_from_config(n, c, settings.sources_path.parent, allow_private=allow_private)
        for n, c in configs.items()
    ]


def _aoi_mask(aoi: Any, grid: ChipGrid) -> np.ndarray:
    from rasterio.features import geometry_mask

    local = to_crs(aoi, "EPSG:4326", grid.crs)
    inside: np.ndarray = ~geometry_mask([local], out_shape=grid.shape, transform=grid.transform)
    return inside


def _site_cube(
    archive: Archive,
    site_id: str,
    pairs: Sequence[tuple[ImagerySource, Any]],
    grid: ChipGrid,
    bands: Sequence[str] | None,
) -> Any:
    """The site's time series from the chips just archived (the source is read once per new
    scene); from the source again only when an archived chip lies on another grid."""
    chips = [archive.load_chip(site_id, scene, grid) for _, scene in pairs]
    if any(c is None for c in chips):
        log.info("site %s: archived chips on another grid; reading the scenes again", site_id)
        return build_cube(pairs, grid, list(bands) if bands else None, dtype="float32")
    kept = sorted((c for c in chips if c is not None), key=lambda c: c.scene.datetime)
    common = [b for b in kept[0].bands if all(b in c.bands for c in kept)]
    return stack_chips(kept, dtype="float32", bands=list(bands) if bands else common)


def monitor_site(catalog_url: str, site_id: str, opts: MonitorOptions) -> SiteReport:
    """Monitor one site; never raises for a site-level problem (see ``SiteReport.error``)."""
    t0 = time.perf_counter()
    report = SiteReport(site_id)
    try:
        with Catalog(catalog_url, actor=ACTOR) as cat:
            if opts.rules.measured_change:
                report.alerts += measured_change_alerts(cat, site_id, opts.rules, opts.since)
            if opts.imagery:
                _monitor(cat, site_id, opts, report)
    except SitewatchError as exc:
        report.error = str(exc)
        log.error("site %s: %s", site_id, exc)
    report.seconds = round(time.perf_counter() - t0, 3)
    return report


def _monitor(cat: Catalog, site_id: str, opts: MonitorOptions, report: SiteReport) -> None:
    from ..analysis.activity import activity_from_cube, not_phenology
    from ..analysis.change import ChangeConfig, ChangedPixels, change_polygons, detect_change
    from ..analysis.landcover import kind_areas

    site = cat.get_site(site_id)
    aoi = site_aoi(site.lon, site.lat, site.aoi, opts.size_m)
    sources = _sources(opts.sources, opts.allow_private)
    try:
        pairs = find_scenes(sources, aoi)
    except NoScenesFound as exc:
        log.info("site %s: %s", site_id, exc)
        return
    finally:
        for s in sources:
            s.close()
    report.scenes = len(pairs)
    archive = Archive(opts.archive)
    label = f"site {site.id}"

    def grid_at(res: float) -> ChipGrid:
        return site_grid(
            site.lon, site.lat, site.aoi, res, size_m=opts.size_m, ring_m=opts.ring_m, label=label
        )

    grid = choose_grid(archive, site_id, pairs, grid_at, opts.resolution, label)
    # A scene that cannot be read (an asset gone from the server, a damaged file) or that misses
    # the chip is left out and reported, so that one bad scene does not stop the site's monitoring.
    fetched = archive.fetch(site_id, pairs, grid, opts.bands)
    report.skipped = [f"{scene}: {reason}" for scene, reason in fetched.left_out]
    bad = {scene for scene, _ in fetched.left_out}
    pairs = [(src, scene) for src, scene in pairs if scene.id not in bad]
    if not pairs:
        return
    cube = _site_cube(archive, site_id, pairs, grid, opts.bands)
    if cube.sizes["time"] < 2:
        return
    mask = _aoi_mask(aoi, grid)
    act = activity_from_cube(cube, aoi=mask)
    report.phase = act.phases[-1]
    report.onset = act.onset.isoformat() if act.onset else None

    known = {o.scene_id for o in cat.list_observations(site_id)}
    since = datetime.combine(opts.since, datetime.min.time(), UTC) if opts.since else None
    bands = [str(b) for b in cube["band"].values]
    pixel_area = grid.resolution**2
    # Radiometric normalisation from invariant pixels: z-scoring whole chips would turn a large
    # real change (a cleared pad) into apparent change everywhere else.
    config = ChangeConfig(
        method=opts.change_method or "cva", normalisation="invariant", smooth_sigma=0.5
    )
    grid_crs = _crs(grid)
    rules = opts.rules
    new_alerts: list[str] = []
    with cat.transaction():
        prev_clear: int | None = None
        for i, t in enumerate(act.times):
            scene_id = str(cube["scene_id"].values[i])
            is_new = scene_id not in known and (since is None or t >= since)
            if is_new:
                report.new_scenes += 1
                cat.add_observation(
                    Observation(
                        id=_rid(site_id, scene_id),
                        site_id=site_id,
                        acquired=t,
                        sensor=str(cube["sensor"].values[i]),
                        scene_id=scene_id,
                        gsd_m=_f(cube["gsd"].values[i]),
                        sun_azimuth=_f(cube["sun_azimuth"].values[i]),
                        sun_elevation=_f(cube["sun_elevation"].values[i]),
                        analyst=ACTOR,
                        phase=act.phases[i],
                        text=observation_text(
                            bool(act.clear[i]), act.changed[i], act.cumulative[i]
                        ),
                    )
                )
                report.observations += 1
                if i > 0 and act.phases[i] != act.phases[i - 1] and rules.phase_transitions:
                    new_alerts += _alert(
                        cat,
                        site,
                        "phase_transition",
                        scene_id,
                        f"activity phase {_phase(act.phases[i - 1])} → {_phase(act.phases[i])} on {t.date()}",
                        "warning" if act.phases[i] != "post_construction" else "info",
                        {"from": act.phases[i - 1], "to": act.phases[i], "date": t.isoformat()},
                    )
            if not act.clear[i]:
                continue
            if prev_clear is not None and is_new:
                before_id = str(cube["scene_id"].values[prev_clear])
                after_px, shift_px = _registered(cube.values[prev_clear], cube.values[i], bands)
                res = detect_change(
                    cube.values[prev_clear],
                    after_px,
                    bands=bands,
                    config=config,
                    pixel_area_m2=pixel_area,
                )
                change = res.mask & mask & not_phenology(cube.values[prev_clear], after_px, bands)
                area = float(change.sum()) * pixel_area
                changed = ChangedPixels.of(change, cube.values[prev_clear], after_px, bands)
                polys = change_polygons(change, grid.transform, grid_crs, changed=changed)
                kinds = kind_areas(polys)  # m² by kind of change, largest first (landcover)
                geom = unary_union([shape(p["geometry"]) for p in polys]) if polys else None
                event_id = _rid(site_id, before_id, scene_id)
                cat.add_change_event(
                    ChangeEvent(
                        id=event_id,
                        site_id=site_id,
                        before=act.times[prev_clear],
                        after=t,
                        method=res.method,
                        area_m2=area,
                        geometry=geom,
                        magnitude=float(np.nanmean(res.magnitude[change])) if change.any() else 0.0,
                        details={
                            "before_scene": before_id,
                            "after_scene": scene_id,
                            "patches": len(polys),
                            "threshold": res.threshold,
                            "shift_px": shift_px,
                            # what kind of change: vegetation cleared, ground built on...
                            "indices": changed.index_means(),
                            "kinds": kinds,
                        },
                    )
                )
                report.change_events += 1
                if area >= rules.min_changed_area_m2:
                    new_alerts += _alert(
                        cat,
                        site,
                        "changed_area",
                        scene_id,
                        f"{area:,.0f} m² changed between {act.times[prev_clear].date()} and "
                        f"{t.date()}{_largest_kind(kinds)}",
                        "warning",
                        {
                            "area_m2": area,
                            "before_scene": before_id,
                            "kinds": kinds,
                            "change_event": event_id,
                        },
                    )
                if rules.new_feature_candidates:
                    blobs = [
                        p
                        for p in polys
                        if rules.min_feature_area_m2
                        <= p["properties"]["area_m2"]
                        <= rules.max_feature_area_m2
                        and _compact(shape(p["geometry"]))
                    ]
                    if blobs:
                        new_alerts += _alert(
                            cat,
                            site,
                            "new_feature_candidate",
                            scene_id,
                            patches_text(len(blobs), t.date()),
                            "info",
                            {
                                "areas_m2": [b["properties"]["area_m2"] for b in blobs],
                                "change_event": event_id,
                            },
                        )
            prev_clear = i
    report.alerts += new_alerts


def measured_change_alerts(
    cat: Catalog, site_id: str, rules: Rules, since: date | None = None
) -> list[str]:
    """Alerts for the site's measured quantities that changed significantly (beyond
    ``rules.measured_change_sigmas``), whose later image is dated ``since`` or after; the ids of
    the alerts new to the catalog.

    * One per step from one image date to the next
      (:func:`~sitewatch.catalog.trends.measurement_steps`), keyed by its later measurement: a
      re-run raises nothing twice, and a corrected measurement is a new step.
    * One per quantity whose change from its first to its last image date is significant while
      none of its steps is (:func:`~sitewatch.catalog.trends.measurement_trends`): slow work,
      a metre a year, that no single pair of images shows. It is raised once per quantity.
    """
    from ..catalog.trends import measurement_steps, measurement_trends

    site = cat.get_site(site_id)
    names = {f.id: f.name or f.id for f in cat.query_features(site_id=site_id)}
    measurements = cat.list_measurements(site_id=site_id)
    observations = cat.list_observations(site_id)
    sigmas = rules.measured_change_sigmas
    steps = measurement_steps(measurements, observations, sigmas=sigmas)
    stepped = {
        (s["feature_id"], s["kind"], s["unit"]) for s in steps if s["verdict"] in ("grew", "shrank")
    }
    slow = [
        t
        for t in measurement_trends(measurements, observations, sigmas=sigmas)
        if t["verdict"] in ("grew", "shrank")
        and (t["feature_id"], t["kind"], t["unit"]) not in stepped
    ]
    new: list[str] = []
    with cat.transaction():
        for s in steps:
            if s["verdict"] in ("grew", "shrank"):
                new += _measured_alert(cat, site, s, names, since, s["measurements"][1])
        for t in slow:
            key = f"trend:{t['feature_id'] or ''}:{t['kind']}:{t['unit']}"
            new += _measured_alert(cat, site, t, names, since, key)
    return new


def _measured_alert(
    cat: Catalog,
    site: Site,
    change: dict[str, Any],
    names: dict[str, str],
    since: date | None,
    key: str,
) -> list[str]:
    """The alert of one measured step or trend (see :func:`measured_change_alerts`)."""
    from ..report.exports import change_text, value_text

    (d0, v0, u0), (d1, v1, u1) = change["first"], change["last"]
    if since is not None and d1 < since.isoformat():
        return []
    fid = change["feature_id"]
    what = names.get(fid, fid) if fid else "site"
    unit = change["unit"]
    over = f" over {change['dates']} image dates" if "dates" in change else ""
    return _alert(
        cat,
        site,
        "measured_change",
        key,
        f"{change_text(change, what)} between {d0} and {d1}{over} "
        f"({value_text(v0, u0, unit)} -> {value_text(v1, u1, unit)})",
        "warning" if change["verdict"] == "grew" else "info",
        {
            "feature_id": fid,
            "kind": change["kind"],
            "unit": unit,
            "before": {"date": d0, "value": v0, "uncertainty": u0},
            "after": {"date": d1, "value": v1, "uncertainty": u1},
            "change": change["change"],
            "sigma": change["sigma"],
            "verdict": change["verdict"],
            "measurements": list(change["measurements"]),
            **({"dates": change["dates"]} if "dates" in change else {}),
        },
    )


MISREGISTERED_PX = 0.5
"""A later chip off its predecessor by more than this is moved onto it before change detection."""


def _registered(
    before: np.ndarray, after: np.ndarray, bands: Sequence[str]
) -> tuple[np.ndarray, float | None]:
    """AFTER, moved onto BEFORE when phase correlation finds it over :data:`MISREGISTERED_PX`
    off (chips of different scenes carry their own geolocation errors) and the shift is plausible
    (:func:`~sitewatch.imagery.coregister.register_stack`: a site being built over can pull the
    measurement onto the change itself), and the measured shift in pixels (None when too little
    of the chips is clear to measure it)."""
    from ..errors import AnalysisError
    from ..imagery.coregister import register_stack

    try:
        moved, report = register_stack(before, after, bands, min_shift_px=MISREGISTERED_PX)
    except AnalysisError as exc:
        log.info("co-registration not measured: %s", exc)
        return after, None
    size = float(report["magnitude_px"])
    if size <= MISREGISTERED_PX:
        return after, size
    if moved is None:
        log.warning("a chip measures %.2f px off its predecessor, left as it is: %s", size,
                    report["reason"])  # fmt: skip
        return after, size
    log.info("moving a chip by %.2f px (%.2f down, %.2f right) onto its predecessor", size,
             report["dy_px"], report["dx_px"])  # fmt: skip
    return moved, size


def _alert(
    cat: Catalog,
    site: Site,
    rule: str,
    scene_id: str,
    message: str,
    severity: str,
    details: dict[str, Any],
) -> list[str]:
    key = f"{site.id}/{rule}/{scene_id}"
    alert, created = cat.add_alert(
        Alert(
            id=_rid(key),
            site_id=site.id,
            rule=rule,
            message=message,
            key=key,
            severity=severity,
            details=details,
        )
    )
    return [alert.id] if created else []


def _compact(poly: Any) -> bool:
    hull = poly.convex_hull
    return bool(hull.area > 0 and poly.area / hull.area >= 0.5)


def _crs(grid: ChipGrid) -> Any:
    from rasterio.crs import CRS

    return CRS.from_user_input(grid.crs)


def _f(v: Any) -> float | None:
    x = float(v)
    return x if np.isfinite(x) else None


def _pct(v: float) -> str:
    return "n/a" if not np.isfinite(v) else f"{v:.2%}"


def observation_text(clear: bool, changed: float, cumulative: float) -> str:
    """What the monitor's observation of one image says: ``clear image: 1.51% of the site
    changed beyond its surroundings since the last clear image, 1.64% since the first``.

    "Beyond its surroundings" is what activity measures (change the ring around the site does
    not show alike); the change events count every changed pixel, so a river that floods the
    site and its ring reads 0% here and a large change event there: the words keep the two
    from reading as a contradiction."""
    head = "clear image" if clear else "cloudy or partial image"
    if not (np.isfinite(changed) or np.isfinite(cumulative)):
        return f"{head}: change not measured"
    return (
        f"{head}: {_pct(changed)} of the site changed beyond its surroundings since the last "
        f"clear image, {_pct(cumulative)} since the first"
    )


def run_monitor(
    catalog_url: str,
    site_ids: Sequence[str],
    opts: MonitorOptions,
    *,
    scheduler: str | None = None,
    on_done: Callable[[SiteReport], None] | None = None,
) -> list[SiteReport]:
    """Monitor sites in parallel: dask threads locally, or a dask.distributed cluster."""
    if scheduler and scheduler not in LOCAL_SCHEDULERS:
        with connect(scheduler, set_as_default=False) as client:
            futures = [
                client.submit(monitor_site, catalog_url, s, opts, pure=False) for s in site_ids
            ]
            reports = []
            for fut in futures:
                rep = fut.result()
                reports.append(rep)
                if on_done:
                    on_done(rep)
    elif len(site_ids) <= 1:
        reports = []
        for s in site_ids:
            rep = monitor_site(catalog_url, s, opts)
            reports.append(rep)
            if on_done:
                on_done(rep)
    else:
        from dask.base import compute
        from dask.callbacks import Callback
        from dask.delayed import delayed

        class _Done(Callback):
            def _posttask(
                self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any
            ) -> None:
                if on_done and isinstance(result, SiteReport):
                    on_done(result)

        tasks = [delayed(monitor_site, pure=False)(catalog_url, s, opts) for s in site_ids]
        with _Done():  # type: ignore[no-untyped-call]
            reports = list(compute(*tasks, scheduler="threads"))  # type: ignore[no-untyped-call]
    order = {s: i for i, s in enumerate(site_ids)}
    return sorted(reports, key=lambda r: order[r.site_id])
