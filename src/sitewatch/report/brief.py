"""Site briefs (one self-contained HTML file, and PDF) and the catalog summary report.

A brief holds a summary, the features table, measurements with their uncertainty, the change and
activity history, figures (annotated latest image, before/after with matched contrast, activity
plot, a time-lapse when there are enough dates) and the cited sources. Images are embedded as
base64 ``data:`` URIs and the CSS is inline, so the HTML loads nothing from the network. The PDF is
rendered from the same HTML by WeasyPrint (which needs Debian's Pango libraries), with a URL
fetcher that accepts only ``data:`` URIs.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2

from .. import __version__
from ..analysis.landcover import kind_text
from ..catalog.models import (
    Alert,
    ChangeEvent,
    Feature,
    Measurement,
    Observation,
    Site,
    Source,
)
from ..catalog.trends import image_dates, measurement_trends
from ..errors import ConfigError, InputError, MissingExtraError, NotFound, SitewatchError
from ..files import atomic_path, make_folder
from ..geo import geodesic_area
from ._imagery import ImageChip, as_image_chip
from .catalogmap import catalog_map
from .exports import change_text, value_text
from .figures import (
    FEATURE_COLOURS,
    Annotation,
    activity_figure,
    annotated_figure,
    before_after_figure,
    figure_png,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..analysis.ranges import MissileClass
    from ..catalog.store import Catalog

__all__ = [
    "BriefFigure",
    "ChangePair",
    "SiteData",
    "catalog_rows",
    "gather_site",
    "html_to_pdf",
    "render_catalog_html",
    "render_site_html",
    "site_figures",
    "write_catalog_report",
    "write_site_brief",
]

log = logging.getLogger(__name__)

Formats = Sequence[str]
_FORMATS = ("html", "pdf")
_ACTIVE = ("site_preparation", "active_construction")


@dataclass(frozen=True)
class SiteData:
    """Everything the catalog knows about one site, as read for a brief."""

    site: Site
    features: list[Feature] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    measurements: list[Measurement] = field(default_factory=list)
    changes: list[ChangeEvent] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)

    @property
    def last_activity(self) -> date | None:
        """The latest change event or observation in an active construction phase."""
        dates = [c.after.date() for c in self.changes]
        dates += [o.acquired.date() for o in self.observations if o.phase in _ACTIVE]
        return max(dates) if dates else None


@dataclass(frozen=True)
class ChangePair:
    """A before/after pair for the brief: two chips on one grid and optionally a change mask."""

    before: Any
    after: Any
    mask: Any = None
    caption: str = ""


@dataclass(frozen=True)
class BriefFigure:
    """A rendered figure: file stem, PNG bytes, caption and alt text."""

    name: str
    png: bytes
    caption: str
    alt: str
    mime: str = "image/png"

    @property
    def uri(self) -> str:
        """The figure as a ``data:`` URI."""
        return f"data:{self.mime};base64,{base64.b64encode(self.png).decode('ascii')}"


def gather_site(catalog: Catalog, site_id: str) -> SiteData:
    """Read a site and its records from the catalog (raises SiteNotFound)."""
    site = catalog.get_site(site_id)
    sources = []
    for sid in site.source_ids:
        try:
            sources.append(catalog.get_source(sid))
        except NotFound:
            log.warning("site %s cites source %r, which is not in the catalog", site_id, sid)
    return SiteData(
        site=site,
        features=catalog.query_features(site_id=site_id),
        observations=catalog.list_observations(site_id),
        measurements=catalog.list_measurements(site_id=site_id),
        changes=catalog.list_change_events(site_id),
        sources=sources,
        alerts=catalog.list_alerts(site_id=site_id),
    )


# --- figures --------------------------------------------------------------------------------


def _colours(chip: ImageChip) -> str:
    """``; false colour (...)`` for a caption, or "" for true colour."""
    text = chip.composite_text()
    return f"; {text}" if text else ""


def _fig(name: str, fig: Figure, caption: str, alt: str) -> BriefFigure:
    return BriefFigure(name, figure_png(fig), caption, alt)


def _phases(observations: Sequence[Observation]) -> list[tuple[datetime, datetime, str]]:
    dated = sorted((o for o in observations if o.phase), key=lambda o: o.acquired)
    spans = []
    for a, b in itertools.pairwise(dated):
        if b.acquired > a.acquired and a.phase:
            spans.append((a.acquired, b.acquired, str(a.phase)))
    return spans


def site_figures(
    data: SiteData,
    chips: Sequence[ImageChip] = (),
    *,
    change: ChangePair | None = None,
    activity: tuple[Sequence[date | datetime], Sequence[float]] | None = None,
    boundaries: str | Path | None = None,
) -> list[BriefFigure]:
    """The brief's figures from the site's records and image chips (oldest chip first)."""
    site = data.site
    out: list[BriefFigure] = []
    annotations = [Annotation.from_feature(f) for f in data.features]
    annotations += [
        Annotation(c.geometry, f"change {c.after:%Y-%m-%d}", "change")
        for c in data.changes
        if c.geometry is not None
    ]
    ordered = sorted(chips, key=lambda c: str(c.date_text))
    if ordered:
        latest = ordered[-1]
        fig = annotated_figure(
            latest,
            annotations,
            title=f"{site.name}: {latest.date_text}",
            boundaries=boundaries,
            site_lonlat=(site.lon, site.lat),
        )
        out.append(
            _fig(
                "overview",
                fig,
                f"{site.name} on {latest.date_text or 'an unknown date'} with the catalogued features.",
                f"Annotated image of {site.name}",
            )
        )
    pair: tuple[ImageChip, ImageChip, Any, str] | None = None
    if change is not None:
        pair = (
            as_image_chip(change.before),
            as_image_chip(change.after),
            change.mask,
            change.caption,
        )
    elif len(ordered) >= 2:
        pair = (ordered[0], ordered[-1], None, "")
    if pair is not None:
        before, after, mask, extra = pair
        fig = before_after_figure(
            before,
            after,
            annotations,
            title=f"{site.name}: before and after",
            change_mask=mask,
            caption=extra,
        )
        out.append(
            _fig(
                "before_after",
                fig,
                f"{before.date_text} and {after.date_text}, same contrast stretch{_colours(after)}{'; change outlined in magenta' if mask is not None else ''}.",
                "Before and after images",
            )
        )
    phases = _phases(data.observations)
    events = [c.after for c in data.changes]
    if activity is not None:
        dates, values = activity
        ylabel = "activity index"
    elif data.changes:
        ordered_ch = sorted(data.changes, key=lambda c: c.after)
        dates, values = [c.after for c in ordered_ch], [c.area_m2 for c in ordered_ch]
        ylabel = "changed area (m²)"
    else:
        dates, values, ylabel = [], [], "activity index"
    if dates or phases:
        fig = activity_figure(
            dates,
            values,
            phases=phases,
            events=events,
            title=f"{site.name}: activity",
            ylabel=ylabel,
        )
        out.append(
            _fig(
                "activity",
                fig,
                "Activity through time; shading shows the construction phase recorded in the observations (by analysts or the monitor), dashed lines the detected changes.",
                "Activity time series",
            )
        )
    if len(ordered) >= 3:
        import io

        from .timelapse import timelapse_frames

        frames = timelapse_frames(ordered, min_size=320)
        buf = io.BytesIO()
        frames[0].save(
            buf, format="GIF", save_all=True, append_images=frames[1:], duration=700, loop=0
        )
        out.append(
            BriefFigure(
                "timelapse",
                buf.getvalue(),
                f"Time-lapse of {len(frames)} dates, {ordered[0].date_text} to {ordered[-1].date_text} (one contrast stretch for all frames{_colours(ordered[-1])}).",
                "Time-lapse",
                "image/gif",
            )
        )
    return out


# --- HTML -----------------------------------------------------------------------------------


def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("sitewatch.report", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _short(obj: Mapping[str, Any]) -> str:
    """``sun_elevation 49.69, shadow_length_m 6.796``: numbers to four significant digits, the
    precision a reader of a table needs (the catalog and the JSON keep them whole)."""
    return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in obj.items())


def _feature_rows(features: Sequence[Feature]) -> list[dict[str, str]]:
    rows = []
    for f in features:
        p = f.geometry if f.geometry.geom_type == "Point" else f.geometry.representative_point()
        where = f"{p.y:.5f}, {p.x:.5f}"
        if f.geometry.geom_type in ("Polygon", "MultiPolygon"):
            where += f" ({geodesic_area(f.geometry):,.0f} m²)"
        seen = " to ".join(d.isoformat() for d in (f.first_seen, f.last_seen) if d)
        rows.append(
            {
                "name": f.name or f.kind.replace("_", " "),
                "kind": f.kind.replace("_", " "),
                "where": where,
                "attributes": _short(f.attributes),
                "seen": seen,
                "colour": FEATURE_COLOURS.get(f.kind, "#999"),
            }
        )
    return rows


def _index_shifts(indices: Any) -> str:
    """``NDVI 0.75 -> 0.08, NDBI -0.16 -> 0.20`` from a change event's ``indices`` details (the
    changed pixels' means before and after), or "" without them."""
    if not isinstance(indices, dict):
        return ""
    from ..analysis.change import SPECTRAL_INDICES

    parts = []
    for name in SPECTRAL_INDICES:
        b, a = indices.get(f"{name}_before"), indices.get(f"{name}_after")
        if isinstance(b, int | float) and isinstance(a, int | float):
            parts.append(f"{name.upper()} {b:.2f} \u2192 {a:.2f}")
    return ", ".join(parts)


def _history(data: SiteData) -> list[dict[str, str]]:
    rows: list[tuple[datetime, dict[str, str]]] = []
    for o in data.observations:
        what = f"observation ({o.phase.replace('_', ' ')})" if o.phase else "observation"
        details = "; ".join(
            t for t in (o.sensor, f"{o.gsd_m:g} m GSD" if o.gsd_m else "", o.analyst, o.text) if t
        )
        rows.append(
            (o.acquired, {"date": o.acquired.date().isoformat(), "what": what, "details": details})
        )
    for c in data.changes:
        details = f"{c.area_m2:,.0f} m² changed since {c.before.date().isoformat()} ({c.method})"
        if c.magnitude is not None:
            details += f", magnitude {c.magnitude:.3g}"
        if shifts := _index_shifts((c.details or {}).get("indices")):
            details += f"; {shifts}"
        if shares := kind_text((c.details or {}).get("kinds")):
            details += f"; {shares}"
        rows.append(
            (
                c.after,
                {"date": c.after.date().isoformat(), "what": "change detected", "details": details},
            )
        )
    events = {c.id: c for c in data.changes}
    for a in data.alerts:
        # an alert is listed at the image date it is about, beside that date's change; the day
        # the monitor raised it (often years later, on a first run over an archive) follows
        when = _alert_date(a, events) or a.created_at
        if when is None:
            continue
        raised = f" (raised {a.created_at.date().isoformat()})" if a.created_at else ""
        rows.append(
            (
                when,
                {
                    "date": when.date().isoformat(),
                    "what": f"alert ({a.severity}, {a.state})",
                    "details": a.message + raised,
                },
            )
        )
    # stable: at one date, observations, then change, then the alerts raised from them
    return [r for _, r in sorted(rows, key=lambda t: t[0])]


def _alert_date(alert: Alert, events: Mapping[str, ChangeEvent]) -> datetime | None:
    """The image date an alert is about: its change event's AFTER, the date of a phase
    transition, or the later image of a measured change; None when it names none."""
    details = alert.details or {}
    event = events.get(str(details.get("change_event")))
    if event is not None:
        return event.after
    after = details.get("after")
    for text in (details.get("date"), after.get("date") if isinstance(after, Mapping) else None):
        if isinstance(text, str):
            try:
                when = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                continue
            return when if when.tzinfo else when.replace(tzinfo=UTC)
    return None


_THUMB_PX = 480
_MAX_EVIDENCE_BYTES = 50 << 20  # larger images are listed, not decoded into the brief


def _thumbnail(path: Path) -> str | None:
    """A PNG ``data:`` URI of an image file scaled to fit 480 px, or None if it is no image."""
    from PIL import Image, UnidentifiedImageError

    if path.stat().st_size > _MAX_EVIDENCE_BYTES:
        return None
    try:
        with Image.open(path) as img:
            img.thumbnail((_THUMB_PX, _THUMB_PX))
            buf = io.BytesIO()
            img.convert("RGB").save(buf, format="PNG")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        return None
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def evidence_rows(
    observations: Sequence[Observation], folder: str | Path
) -> list[dict[str, str | None]]:
    """One row per evidence item of the observations: its date, the observation's text, the
    file's name and SHA-256 (or the web address), and a thumbnail for an image. A stored file
    that is missing or altered is reported as such in the row, not left out."""
    from ..catalog.evidence import EVIDENCE_SCHEME, resolve_evidence

    rows: list[dict[str, str | None]] = []
    for o in observations:
        for ref in o.evidence:
            row: dict[str, str | None] = {
                "date": o.acquired.date().isoformat(),
                "text": o.text,
                "name": ref,
                "sha256": None,
                "image": None,
                "problem": None,
            }
            if ref.startswith(EVIDENCE_SCHEME):
                digest, _, name = ref.removeprefix(EVIDENCE_SCHEME).partition("/")
                row.update(name=name, sha256=digest)
                try:
                    row["image"] = _thumbnail(resolve_evidence(ref, folder))
                except SitewatchError as exc:
                    row["problem"] = str(exc)
            rows.append(row)
    return rows


def render_site_html(
    data: SiteData,
    figures: Sequence[BriefFigure] = (),
    *,
    imagery_note: str = "",
    credits: Sequence[str] = (),
    generated: datetime | None = None,
    evidence: Sequence[Mapping[str, str | None]] = (),
    reach: Sequence[MissileClass] = (),
    terrain: Mapping[str, Any] | None = None,
) -> str:
    """The brief as one self-contained HTML document; ``reach``: the missile classes the site's
    tags name (:func:`~sitewatch.analysis.ranges.classes_for_tags`), with their ranges;
    ``terrain``: the Terrain section (source, cell_m, lines, features), or None for none."""
    names = {f.id: f.name or f.kind.replace("_", " ") for f in data.features}

    def of(feature_id: str | None) -> str:
        return names.get(feature_id or "", "site" if feature_id is None else feature_id)

    dates = image_dates(data.measurements, data.observations)
    measurements = [
        {
            "kind": m.kind,
            "feature": of(m.feature_id),
            "value": value_text(m.value, m.uncertainty, m.unit),
            "image_date": dates[m.id],  # the date of the image it was read from
            "method": m.method + (f" ({m.analyst})" if m.analyst else ""),
            "inputs": _short(m.inputs),
        }
        for m in data.measurements
    ]
    found = measurement_trends(data.measurements, data.observations)
    trends = [
        {
            "feature": of(t["feature_id"]),
            "kind": t["kind"],
            "first": f"{t['first'][0]}: {value_text(t['first'][1], t['first'][2], t['unit'])}",
            "last": f"{t['last'][0]}: {value_text(t['last'][1], t['last'][2], t['unit'])}",
            "change": value_text(t["change"], t["sigma"], t["unit"]),
            "verdict": t["verdict"],
            "dates": t["dates"],
        }
        for t in found
    ]
    site = data.site
    area = geodesic_area(site.aoi) / 1e6 if site.aoi is not None else None
    last_obs = max((o.acquired for o in data.observations), default=None)
    return (
        _env()
        .get_template("site_brief.html")
        .render(
            site=site,
            version=__version__,
            generated=(generated or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC"),
            area_km2=area,
            features=_feature_rows(data.features),
            observations=data.observations,
            last_observed=last_obs.date().isoformat() if last_obs else "",
            last_activity=data.last_activity.isoformat() if data.last_activity else "",
            measurements=measurements,
            trends=trends,
            moved=_moved(found, of),  # the summary's answer to "still being improved?"
            open_alerts=sum(1 for a in data.alerts if a.state in ("new", "acked")),
            reach=reach,
            terrain=terrain,
            history=_history(data),
            evidence=evidence,
            sources=data.sources,
            figures=figures,
            imagery_note=imagery_note,
            credits=list(dict.fromkeys(credits)),
        )
    )


def _moved(trends: Sequence[Mapping[str, Any]], name: Callable[[str | None], str]) -> list[str]:
    """The trends beyond two sigma, each as ``berm height grew by 6.2 ± 0.8 m (2024-01-18 to
    2025-03-31)``; ``name`` gives a feature's name from its id (None: the site)."""
    return [
        change_text(t, name(t["feature_id"])) + f" ({t['first'][0]} to {t['last'][0]})"
        for t in trends
        if t["verdict"] in ("grew", "shrank")
    ]


def html_to_pdf(html: str, path: str | Path) -> Path:
    """Render HTML to PDF with WeasyPrint; only ``data:`` URIs are fetched (no network)."""
    try:
        import weasyprint  # type: ignore[import-untyped]
    except ImportError as exc:
        raise MissingExtraError("weasyprint", "report", "PDF briefs") from exc
    except OSError as exc:  # Pango missing
        raise ConfigError(
            f"WeasyPrint cannot load its system libraries ({exc}); install Pango: "
            "apt-get install libpango-1.0-0 libpangoft2-1.0-0 (or use --format html)"
        ) from exc
    target = Path(path)
    fetcher = weasyprint.URLFetcher(allowed_protocols=["data"])
    with atomic_path(target, parents=True) as tmp:
        weasyprint.HTML(string=html, url_fetcher=fetcher).write_pdf(tmp)
    return target


def _check_formats(formats: Formats) -> tuple[str, ...]:
    fmts = tuple(dict.fromkeys(f.lower() for f in formats))
    bad = [f for f in fmts if f not in _FORMATS]
    if bad or not fmts:
        raise InputError(
            f"unknown report format(s) {', '.join(bad) or '(none)'}; choose from {', '.join(_FORMATS)}"
        )
    return fmts


def write_site_brief(
    catalog: Catalog,
    site_id: str,
    outdir: str | Path,
    *,
    chips: Sequence[Any] = (),
    change: ChangePair | None = None,
    activity: tuple[Sequence[date | datetime], Sequence[float]] | None = None,
    formats: Formats = _FORMATS,
    boundaries: str | Path | None = None,
    imagery_note: str | None = None,
    stac: bool = True,
    evidence_dir: str | Path | None = None,
    dem: str | Path | None = None,
    dem_required: bool = True,
) -> dict[str, Path]:
    """Write a site's brief into ``outdir``; returns the written files by key.

    Keys: ``html`` and/or ``pdf`` (``<site>-brief.html/.pdf``), ``figure_<name>`` (PNG/GIF under
    ``figures/``), and ``stac`` (``collection.json`` of these products) when ``stac``. ``chips``
    are anything :func:`~sitewatch.report.as_image_chip` accepts (ImageChip, imagery Chip,
    ArchivedChip, GeoTIFF path). The observations' stored evidence is read from
    ``evidence_dir`` (by default the configured evidence folder). With a ``dem``, the brief has
    a Terrain section: where the site and its features sit on the slope, the relief around it
    and whether it is mountainous (:func:`~sitewatch.analysis.landform.landform`). A ``dem``
    that does not reach the site is an error, or with ``dem_required=False`` (a server's DEM
    for all its sites) what the section says.
    """
    fmts = _check_formats(formats)
    out = make_folder(outdir)
    data = gather_site(catalog, site_id)
    images = [as_image_chip(c) for c in chips]
    figures = site_figures(data, images, change=change, activity=activity, boundaries=boundaries)
    if imagery_note is None:
        imagery_note = (
            ""
            if images or change is not None
            else (
                "No imagery of this site is in the local archive, so this brief has no image figures; "
                "fetch chips into the archive and write the brief again."
            )
        )
    credits = [c.source for c in images if c.source]
    from ..analysis.ranges import classes_for_tags, table_in_use
    from ..config import get_settings

    if evidence_dir is None:
        evidence_dir = get_settings().evidence_path
    reach = classes_for_tags(table_in_use(), data.site.tags) if data.site.tags else []
    html = render_site_html(
        data,
        figures,
        imagery_note=imagery_note,
        credits=credits,
        evidence=evidence_rows(data.observations, evidence_dir),
        reach=reach,
        terrain=_terrain(data, dem, dem_required) if dem is not None else None,
    )
    written: dict[str, Path] = {}
    for fig in figures:
        suffix = ".gif" if fig.mime == "image/gif" else ".png"
        path = out / "figures" / f"{site_id}-{fig.name}{suffix}"
        with atomic_path(path, parents=True) as tmp:
            tmp.write_bytes(fig.png)
        written[f"figure_{fig.name}"] = path
    if "html" in fmts:
        path = out / f"{site_id}-brief.html"
        with atomic_path(path, parents=True) as tmp:
            tmp.write_text(html, encoding="utf-8")
        written["html"] = path
    if "pdf" in fmts:
        written["pdf"] = html_to_pdf(html, out / f"{site_id}-brief.pdf")
    if stac:
        from .stac import Product, write_products_collection

        when = max((c.acquired for c in images if isinstance(c.acquired, datetime)), default=None)
        products = [
            Product(p, key, f"{data.site.name}: {key.replace('_', ' ')}", when)
            for key, p in written.items()
        ]
        written["stac"] = write_products_collection(out, data.site, products)
    log.info("wrote the brief of %s: %s", site_id, ", ".join(sorted(written)))
    return written


def _terrain(data: SiteData, dem: str | Path, required: bool = True) -> dict[str, Any]:
    """The Terrain section: the landform lines of the site and its features, from ``dem``."""
    from ..analysis.landform import feature_places, landform_from_file, landform_lines
    from ..errors import ImageryError

    site = data.site
    places, kinds = feature_places(data.features)
    try:
        form = landform_from_file(dem, site.lon, site.lat, places=places)
    except (ImageryError, InputError) as exc:
        if required:
            raise
        return {"source": Path(dem).name, "cell_m": None, "lines": [str(exc)], "features": []}
    lines, per_feature = landform_lines(form, kinds)
    return {"source": Path(dem).name, "cell_m": form.cell_m, "lines": lines,
            "features": per_feature}  # fmt: skip


# --- catalog report -------------------------------------------------------------------------


def catalog_rows(catalog: Catalog) -> list[dict[str, Any]]:
    """One summary row per site: status, declared, last activity, feature and change counts,
    the measured quantities that grew or shrank beyond two sigma between their first and last
    image (is the site still being improved?) and the alerts still open."""
    sites = catalog.query_sites()
    features: dict[str, int] = {}
    names: dict[str, str] = {}
    for f in catalog.query_features():
        features[f.site_id] = features.get(f.site_id, 0) + 1
        names[f.id] = f.name or f.kind.replace("_", " ")
    changes: dict[str, list[ChangeEvent]] = {}
    for c in catalog.list_change_events():
        changes.setdefault(c.site_id, []).append(c)
    measured: dict[str, list[Measurement]] = {}
    for m in catalog.list_measurements():
        measured.setdefault(m.site_id, []).append(m)
    open_alerts = _count(a.site_id for a in catalog.list_alerts(state=("new", "acked")))
    rows = []
    for s in sites:
        observations = catalog.list_observations(s.id)
        data = SiteData(s, observations=observations, changes=changes.get(s.id, []))
        moved = _moved(
            measurement_trends(measured.get(s.id, []), observations),
            lambda fid: names.get(fid or "", fid or "site"),
        )
        last = data.last_activity
        rows.append(
            {
                "id": s.id,
                "name": s.name,
                "category": s.category.replace("_", " "),
                "status": s.status,
                "declared": s.declared,
                "lat": s.lat,
                "lon": s.lon,
                "last_activity": last.isoformat() if last else None,
                "features": features.get(s.id, 0),
                "changes": len(data.changes),
                "measured_change": moved,
                "open_alerts": open_alerts.get(s.id, 0),
            }
        )
    return sorted(
        rows,
        key=lambda r: (r["last_activity"] is None, r["last_activity"] or "", r["name"]),
        reverse=False,
    )


def render_catalog_html(
    rows: Sequence[Mapping[str, Any]],
    *,
    title: str = "Site catalog",
    map_png: bytes | None = None,
    generated: datetime | None = None,
) -> str:
    """The catalog summary as one self-contained HTML document."""
    totals = {
        "Sites": len(rows),
        "Undeclared": sum(1 for r in rows if not r["declared"]),
        **{f"Status: {s}": n for s, n in sorted(_count(r["status"] for r in rows).items())},
        "With recorded activity": sum(1 for r in rows if r["last_activity"]),
        "With measured change": sum(1 for r in rows if r.get("measured_change")),
        "Open alerts": sum(r.get("open_alerts", 0) for r in rows),
    }
    uri = f"data:image/png;base64,{base64.b64encode(map_png).decode('ascii')}" if map_png else ""
    return (
        _env()
        .get_template("catalog.html")
        .render(
            title=title,
            rows=rows,
            totals=totals,
            map_uri=uri,
            version=__version__,
            generated=(generated or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC"),
        )
    )


def _count(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def write_catalog_report(
    catalog: Catalog,
    outdir: str | Path,
    *,
    formats: Formats = ("html",),
    boundaries: str | Path | None = None,
    title: str = "Site catalog",
) -> dict[str, Path]:
    """Write ``catalog-report.html``/``.pdf`` and ``catalog-sites.json`` into ``outdir``."""
    fmts = _check_formats(formats)
    out = make_folder(outdir)
    rows = catalog_rows(catalog)
    map_png = figure_png(catalog_map(rows, boundaries)) if rows else None
    html = render_catalog_html(rows, title=title, map_png=map_png)
    written: dict[str, Path] = {}
    path = out / "catalog-sites.json"
    with atomic_path(path, parents=True) as tmp:
        tmp.write_text(json.dumps(rows, indent=2, ensure_ascii=False), encoding="utf-8")
    written["json"] = path
    if "html" in fmts:
        path = out / "catalog-report.html"
        with atomic_path(path, parents=True) as tmp:
            tmp.write_text(html, encoding="utf-8")
        written["html"] = path
    if "pdf" in fmts:
        written["pdf"] = html_to_pdf(html, out / "catalog-report.pdf")
    return written
