"""``sitewatch sites``: add, list, show, edit, delete, import, export, history, diff-declaration."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import click
import shapely
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from ..catalog.models import Declaration, DeclaredSite, Site, SiteRecord, site_id_for, slugify
from ..errors import InputError, NotFound, RecordProblem
from ..geo import parse_bbox
from ..types import SITE_CATEGORIES, SITE_STATUSES, BBox
from ._sites_view import attributes_text, history_table, site_json, sites_table
from .options import (
    Choice,
    Finite,
    console,
    echo_json,
    echo_updated,
    err_console,
    json_option,
    open_catalog,
)

__all__ = ["sites"]

FORMATS = ("csv", "geojson", "iarpa", "kml", "kmz", "gpkg")


def _floats(text: str, n: int, what: str, example: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != n or not all(math.isfinite(v) for v in values):
        raise click.BadParameter(
            f"{what} needs {n} comma-separated finite numbers, e.g. {example}; got {text!r}"
        )
    return values


def _bbox(_ctx: click.Context, _p: click.Parameter, value: str | None) -> BBox | None:
    return None if value is None else parse_bbox(value, "--bbox")


def _near(
    _ctx: click.Context, _p: click.Parameter, value: str | None
) -> tuple[float, float, float] | None:
    if value is None:
        return None
    lon, lat, km = _floats(value, 3, "--near", "126.1,38.6,25 (LON,LAT,RADIUS_KM)")
    return (lon, lat, km * 1000.0)


def _filters(func: Any) -> Any:
    for option in reversed(
        [
            click.option(
                "--bbox", callback=_bbox, help="W,S,E,N in degrees (W>E crosses the antimeridian)."
            ),
            click.option(
                "--near", callback=_near, help="LON,LAT,RADIUS_KM: within a geodesic radius."
            ),
            click.option("--text", help="Text in id, name, aliases or notes."),
            click.option("--status", type=Choice(SITE_STATUSES), multiple=True),
            click.option("--category", type=Choice(SITE_CATEGORIES), multiple=True),
            click.option(
                "--tag", "tags", multiple=True, help="Has this tag (repeat: all of them)."
            ),
            click.option("--declared/--undeclared", default=None, help="Declared or not."),
            click.option("--limit", type=click.IntRange(min=1), default=None),
        ]
    ):
        func = option(func)
    return func


def _query(cat: Any, kw: dict[str, Any]) -> list[Site]:
    result: list[Site] = cat.query_sites(
        bbox=kw.get("bbox"),
        near=kw.get("near"),
        text=kw.get("text"),
        status=list(kw["status"]) or None,
        category=list(kw["category"]) or None,
        tags=list(kw["tags"]) or None,
        declared=kw.get("declared"),
        limit=kw.get("limit"),
    )
    return result


@click.group()
def sites() -> None:
    """The site catalog."""


@sites.command("add")
@click.argument("site_id", required=False)
@click.option("--name", required=True)
@click.option("--lat", type=Finite(), required=True)
@click.option("--lon", type=Finite(), required=True)
@click.option("--aoi", "aoi_wkt", help="Area of interest as WKT polygon in lon/lat.")
@click.option("--category", type=Choice(SITE_CATEGORIES), default="other")
@click.option("--status", type=Choice(SITE_STATUSES), default="suspected")
@click.option("--declared", is_flag=True, help="The site is declared.")
@click.option("--country")
@click.option("--alias", "aliases", multiple=True)
@click.option("--tag", "tags", multiple=True)
@click.option("--confidence", type=Finite(0, 1))
@click.option("--notes", default="")
@click.option(
    "--source", "source_ids", multiple=True, help="Id of a source it cites (sources add)."
)
@json_option
def add(site_id: str | None, aoi_wkt: str | None, as_json: bool, **kw: Any) -> None:
    """Add a site (SITE_ID defaults to a slug of --name)."""
    aoi = _wkt(aoi_wkt) if aoi_wkt else None
    site = Site(
        id=site_id or site_id_for(kw["name"]),
        aoi=aoi,
        **{
            **kw,
            "aliases": tuple(kw["aliases"]),
            "tags": tuple(kw["tags"]),
            "source_ids": tuple(kw["source_ids"]),
        },
    )
    with open_catalog() as cat:
        stored = cat.add_site(site)
    if as_json:
        echo_json(site_json(stored))
    else:
        console().print(f"added site [bold]{stored.id}[/] ({stored.name})")


def _wkt(text: str) -> Any:
    try:
        return shapely.from_wkt(text)
    except shapely.errors.GEOSException as exc:
        raise InputError(
            f"--aoi is not valid WKT ({exc}); e.g. 'POLYGON((126 38, 126.1 38, 126.1 38.1, 126 38))'"
        ) from exc


@sites.command("list")
@_filters
@json_option
def list_(as_json: bool, **kw: Any) -> None:
    """List sites, filtered."""
    with open_catalog() as cat:
        found = _query(cat, kw)
    if as_json:
        echo_json([site_json(s) for s in found])
        return
    console().print(sites_table(found))
    err_console().print(f"{len(found)} site(s)")


@sites.command("show")
@click.argument("site_id")
@json_option
def show(site_id: str, as_json: bool) -> None:
    """Show one site with its features, observations and measurements, how each measured
    quantity changed between its first and last image, and its alerts not yet dismissed."""
    from ..catalog._codec import jsonable
    from ..catalog.trends import image_dates, measurement_trends
    from ..report.exports import value_text

    with open_catalog() as cat:
        site = cat.get_site(site_id)
        feats = cat.query_features(site_id=site_id)
        obs = cat.list_observations(site_id)
        meas = cat.list_measurements(site_id=site_id)
        events = cat.list_change_events(site_id)
        cited = [cat.get_source(sid) for sid in site.source_ids]
        alerts = cat.list_alerts(site_id=site_id, state=("new", "acked"))
    reach = _reach(site.tags)
    if as_json:
        echo_json(
            {
                **site_json(site),
                "features": jsonable(feats),
                "observations": jsonable(obs),
                "measurements": jsonable(meas),
                "measured_change": measurement_trends(meas, obs),
                "change_events": jsonable(events),
                "sources": jsonable(cited),
                "alerts": jsonable(alerts),
                "reach": [dataclasses.asdict(m) for m in reach],
            }
        )
        return
    from rich.markup import escape

    out = console()
    out.print(f"[bold]{escape(site.name)}[/] ({site.id})  v{site.version}")
    for key in ("lat", "lon", "category", "status", "declared", "country", "confidence"):
        value = getattr(site, key)
        if value is not None:
            out.print(f"  {key:<11} {escape(str(value))}")
    for key in ("aliases", "tags"):
        if getattr(site, key):
            out.print(f"  {key:<11} {escape(', '.join(getattr(site, key)))}")
    if reach:  # the missile classes its tags name
        classes = ", ".join(f"{m.name} {m.max_range_km:,.0f} km" for m in reach)
        out.print(f"  reach       {escape(classes)}")
    if site.notes:
        out.print("  notes       " + escape(site.notes.replace("\n", "\n" + " " * 14)))
    for s in cited:
        licence = f" ({s.licence})" if s.licence else ""
        out.print(f"  source      {escape(s.id)}: {escape(s.citation)}{escape(licence)}")
        if s.url:
            out.print(f"              {escape(s.url)}")
    out.print(
        f"  features {len(feats)}, observations {len(obs)}, measurements {len(meas)}, "
        f"change events {len(events)}, open alerts {len(alerts)}"
    )

    def heading(title: str, items: Sequence[Any]) -> None:  # only above a group with items
        if items:
            out.print(f"  [bold]{title}[/]")

    heading("open alerts, newest first", alerts)
    for a in alerts[:SHOWN_ALERTS]:
        tag = escape(f"[{a.severity}, {a.state}]")
        out.print(f"    - alert {tag} {escape(a.message)}  [dim]{a.id}[/]")
    if len(alerts) > SHOWN_ALERTS:
        out.print(
            f"    - ... {len(alerts) - SHOWN_ALERTS} older alert(s): "
            f"sitewatch alerts list --site {site.id} --state new --state acked"
        )
    heading("features", feats)
    for f in feats:
        attrs = attributes_text(f.attributes)
        words = " ".join(w for w in (f.kind, escape(f.name), escape(attrs)) if w)
        out.print(f"    - {words}  [dim]{f.id}[/]")
    names = {f.id: f.name or f.kind.replace("_", " ") for f in feats}
    dates = image_dates(meas, obs)
    heading("measurements", meas)
    for m in meas:
        what = names.get(m.feature_id or "", m.feature_id or "site")
        if m.feature_id is None and m.inputs.get("deleted_feature"):
            what = f"site (deleted feature {m.inputs['deleted_feature']})"
        how = "; ".join(p for p in (m.method, dates[m.id] and f"image {dates[m.id]}") if p)
        out.print(
            f"    - {m.kind} {escape(value_text(m.value, m.uncertainty, m.unit))} of "
            f"{escape(what)} ({escape(how or 'no method given')})  [dim]{m.id}[/]"
        )
    trends = measurement_trends(meas, obs)
    heading("measured change, first to last image", trends)
    for t in trends:  # is the site still being improved?
        (d0, v0, u0), (d1, v1, u1) = t["first"], t["last"]
        what = names.get(t["feature_id"] or "", t["feature_id"] or "site")
        unit = t["unit"]
        out.print(
            f"    - {escape(what)} {t['kind']} {escape(value_text(v0, u0, unit))} → "
            f"{escape(value_text(v1, u1, unit))} from {d0} to {d1}: "
            f"{escape(value_text(t['change'], t['sigma'], unit))}, {t['verdict']}"
        )
    heading("observations", obs)
    for o in obs:
        phase = f" {o.phase.replace('_', ' ')}" if o.phase else ""
        extra = f" ({len(o.evidence)} evidence)" if o.evidence else ""
        text = escape(o.text).replace("\n", "\n" + " " * 6)  # continuation lines stay in the item
        out.print(f"    - {o.acquired.date().isoformat()}{phase} {escape(o.sensor)}: {text}{extra}")
    from ..analysis.landcover import kind_text

    heading("change events", events)
    for e in events:
        kinds = kind_text((e.details or {}).get("kinds"))
        out.print(
            f"    - change {e.before.date().isoformat()} → {e.after.date().isoformat()}: "
            f"{e.area_m2:,.0f} m² ({escape(e.method)}){'; ' + kinds if kinds else ''}"
        )


def _reach(tags: Sequence[str]) -> list[Any]:
    """The missile classes a site's tags name, from the table in use (SITEWATCH_MISSILE_TABLE)."""
    if not tags:
        return []
    from ..analysis.ranges import classes_for_tags, table_in_use

    return classes_for_tags(table_in_use(), tags)


SHOWN_ALERTS = 10
"""``sites show`` lists the newest open alerts up to this many."""


@sites.command("edit")
@click.argument("site_id")
@click.option("--name")
@click.option("--lat", type=Finite())
@click.option("--lon", type=Finite())
@click.option("--category", type=Choice(SITE_CATEGORIES))
@click.option("--status", type=Choice(SITE_STATUSES))
@click.option("--declared/--undeclared", default=None)
@click.option("--country")
@click.option("--confidence", type=Finite(0, 1))
@click.option("--notes")
@click.option("--add-tag", multiple=True)
@click.option("--remove-tag", multiple=True)
@click.option("--add-alias", multiple=True)
@click.option("--add-source", multiple=True, help="Cite this source (its id; sources add).")
@click.option("--remove-source", multiple=True, help="Stop citing this source.")
@click.option("--expect-version", type=int, help="Fail unless the stored site is at this version.")
@json_option
def edit(
    site_id: str,
    add_tag: Sequence[str],
    remove_tag: Sequence[str],
    add_alias: Sequence[str],
    add_source: Sequence[str],
    remove_source: Sequence[str],
    expect_version: int | None,
    as_json: bool,
    **kw: Any,
) -> None:
    """Edit a site; refuses to overwrite someone else's newer edit."""
    with open_catalog() as cat:
        site = cat.get_site(site_id)
        not_cited = [s for s in remove_source if s not in site.source_ids]
        if not_cited:
            raise InputError(
                f"site {site_id!r} does not cite {', '.join(map(repr, not_cited))}; it cites "
                f"{', '.join(map(repr, site.source_ids)) or 'no source'}"
            )
        changes = {k: v for k, v in kw.items() if v is not None}
        tags = tuple(t for t in dict.fromkeys((*site.tags, *add_tag)) if t not in remove_tag)
        aliases = tuple(dict.fromkeys((*site.aliases, *add_alias)))
        cited = tuple(
            s for s in dict.fromkeys((*site.source_ids, *add_source)) if s not in remove_source
        )
        version = expect_version if expect_version is not None else site.version
        edited = dataclasses.replace(
            site, **changes, tags=tags, aliases=aliases, source_ids=cited, version=version
        )
        stored = cat.update_site(edited)
    echo_updated("site", stored, as_json, site_json(stored), was=version)


@sites.command("delete")
@click.argument("site_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--expect-version", type=int)
def delete(site_id: str, yes: bool, expect_version: int | None) -> None:
    """Delete a site and its records (the history keeps a snapshot)."""
    with open_catalog() as cat:
        site = cat.get_site(site_id)
        if not yes:
            click.confirm(f"delete {site.name} ({site.id}) with all its records?", abort=True)
        cat.delete_site(site_id, version=expect_version)
    console().print(f"deleted site [bold]{site_id}[/]")


def _with_progress(
    items: Iterable[SiteRecord | RecordProblem], label: str
) -> Iterator[SiteRecord | RecordProblem]:
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.completed} records"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console(), transient=True) as progress:
        task = progress.add_task(label, total=None)
        for i, item in enumerate(items, 1):
            if i % 500 == 0:
                progress.update(task, completed=i)
            yield item


def _overridden(
    records: Iterable[SiteRecord | RecordProblem], over: dict[str, Any], tags: Sequence[str]
) -> Iterator[SiteRecord | RecordProblem]:
    """The records with the fields of ``over`` set on each site and ``tags`` added to its own."""
    extra = tuple(tags)
    if not over and not extra:
        yield from records
        return
    for rec in records:
        if isinstance(rec, SiteRecord):
            site = rec.site
            merged = site.tags + tuple(t for t in extra if t not in site.tags)
            rec = dataclasses.replace(rec, site=dataclasses.replace(site, **over, tags=merged))
        yield rec


def _reader_options(kw: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kw.items() if v is not None}


@sites.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=True, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=Choice(FORMATS),
    help="Override the format detected from the extension.",
)
@click.option(
    "--skip-invalid", is_flag=True, help="Import the good records and report the bad ones."
)
@click.option(
    "--on-duplicate",
    type=Choice(["error", "skip", "update"]),
    default="error",
    help="What to do with ids already in the catalog (update: the file's site fields, its new "
    "features and observations, and its changed features; nothing is removed).",
)
@click.option("--repair-geometry", is_flag=True, help="Repair invalid geometries (with a warning).")
@click.option("--lat-col")
@click.option("--lon-col")
@click.option("--name-col")
@click.option("--id-col")
@click.option("--delimiter")
@click.option(
    "--category",
    type=Choice(SITE_CATEGORIES),
    help="Category of every imported site (overrides the file's).",
)
@click.option("--status", type=Choice(SITE_STATUSES), help="Status of every imported site.")
@click.option("--country", help="Country of every imported site (e.g. KP).")
@click.option(
    "--declared/--undeclared", default=None, help="Mark every imported site declared or not."
)
@click.option(
    "--tag", "tags", multiple=True, help="Add this tag to every imported site (repeatable)."
)
@json_option
def import_(
    path: Path,
    fmt: str | None,
    skip_invalid: bool,
    on_duplicate: str,
    repair_geometry: bool,
    category: str | None,
    status: str | None,
    country: str | None,
    declared: bool | None,
    tags: tuple[str, ...],
    as_json: bool,
    **kw: Any,
) -> None:
    """Import sites from CSV, GeoJSON, IARPA site models (a file, or a folder of them), KML/KMZ or
    GeoPackage (all or nothing).

    A published list rarely says what its places are in the catalog's terms: --category,
    --status, --country and --declared/--undeclared set them on every imported site, and --tag
    adds tags (e.g. the list's name), so that the batch can be found again with ``sites list``.
    """
    from ..catalog.io import detect_format, read_sites

    fmt = fmt or detect_format(path)
    over = {"category": category, "status": status, "declared": declared}
    over = {k: v for k, v in over.items() if v is not None}
    if country is not None:
        if not country.strip():
            raise InputError("--country is empty; give a country name or code, e.g. KP")
        over["country"] = country.strip()
    tags = tuple(t.strip() for t in tags)
    if any(not t for t in tags):
        raise InputError("--tag is empty; give a tag, e.g. --tag reported-2018")
    records = _overridden(
        read_sites(path, fmt, repair=repair_geometry, **_reader_options(kw)), over, tags
    )
    with open_catalog() as cat:
        report = cat.import_records(
            _with_progress(records, f"importing {path.name}"),
            path=str(path),
            skip_invalid=skip_invalid,
            on_duplicate=on_duplicate,  # type: ignore[arg-type]
        )
    summary = {
        "path": str(path),
        "format": fmt,
        "added": report.added,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "skipped": report.skipped,
        "features": report.features,
        "features_updated": report.features_updated,
        "observations": report.observations,
        "observations_updated": report.observations_updated,
        "measurements": report.measurements,
        "measurements_updated": report.measurements_updated,
        "problems": [{"line": p.line, "reason": p.reason} for p in report.problems],
    }
    if as_json:
        echo_json(summary)
        return
    console().print(
        f"imported {report.added} site(s) from {path} ({fmt}); updated {report.updated}, "
        + (f"unchanged {report.unchanged}, " if report.unchanged else "")
        + f"skipped {report.skipped}; features: {report.features} added"
        + (f", {report.features_updated} updated" if report.features_updated else "")
        + f"; observations: {report.observations} added"
        + (f", {report.observations_updated} updated" if report.observations_updated else "")
        + f"; measurements: {report.measurements} added"
        + (f", {report.measurements_updated} updated" if report.measurements_updated else "")
    )
    for p in report.problems[:20]:
        err_console().print(f"  skipped {p}")


@sites.command("export")
@click.option(
    "--format",
    "fmt",
    type=Choice(FORMATS),
    default=None,
    help="Exchange format (default: from the extension of --output, as for import).",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@_filters
def export(fmt: str | None, output: Path, **kw: Any) -> None:
    """Export sites (with their features, observations, measurements and cited sources) to a
    file, atomically; a format that cannot carry some of them says which."""
    from ..catalog.io import detect_format, left_out, write_sites

    fmt = fmt or detect_format(output)

    with open_catalog() as cat:
        found = _query(cat, kw)
        records = [
            SiteRecord(
                site=s,
                features=tuple(cat.query_features(site_id=s.id)),
                observations=tuple(cat.list_observations(s.id)),
                sources=tuple(cat.get_source(sid) for sid in s.source_ids),
                measurements=tuple(cat.list_measurements(site_id=s.id)),
            )
            for s in found
        ]
    count = write_sites(records, output, fmt)
    console().print(f"exported {count} site(s) to {output} ({fmt})")
    if dropped := left_out(records, fmt):
        err_console().print(
            f"warning: {fmt} does not carry the {', '.join(f'{k} ({n})' for k, n in dropped.items())}"
            " of these sites (the source ids stay on the sites); export to geojson to keep "
            "everything"
        )


@sites.command("history")
@click.argument("site_id", required=False)
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@json_option
def history(site_id: str | None, limit: int, as_json: bool) -> None:
    """Who changed what and when: for one site with its features and records (SITE_ID), for one
    record (its id), or for the whole catalog."""
    with open_catalog() as cat:
        entries = cat.history(site_id=site_id, limit=limit) if site_id is not None else []
        entries = entries or cat.history(entity_id=site_id, limit=limit)
    if site_id is not None and not entries:
        raise NotFound(
            f"no history for {site_id!r}: no site or record with that id was ever stored; "
            "`sitewatch sites list` shows the ids, `sitewatch sites history` the whole catalog's"
        )
    if as_json:
        echo_json([dataclasses.asdict(e) for e in entries])
    else:
        console().print(history_table(entries))


@sites.command("diff-declaration")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=Choice(FORMATS))
@click.option("--party", default="declaration", show_default=True, help="Who declared the list.")
@click.option(
    "--radius-km",
    type=Finite(min=0),
    default=2.0,
    show_default=True,
    help="A declared point this close to a site matches it.",
)
@click.option("--save", is_flag=True, help="Also store the declaration in the catalog.")
@click.option(
    "--mark",
    is_flag=True,
    help="Also set the matched sites declared (declaration_ref: this declaration), and unset "
    "sites this declaration marked before that it no longer lists; in the history.",
)
@json_option
def diff_declaration_cmd(
    path: Path,
    fmt: str | None,
    party: str,
    radius_km: float,
    save: bool,
    mark: bool,
    as_json: bool,
) -> None:
    """Catalog sites missing from a declaration FILE, and declared sites not in the catalog."""
    from ..catalog.io import detect_format, read_sites

    fmt = fmt or detect_format(path)
    entries: list[DeclaredSite] = []
    problems: list[RecordProblem] = []
    for item in read_sites(path, fmt):
        if isinstance(item, RecordProblem):
            problems.append(item)
        else:
            entries.append(
                DeclaredSite(
                    name=item.site.name, lon=item.site.lon, lat=item.site.lat, ref=item.site.id
                )
            )
    if problems:
        from ..errors import ImportFormatError

        raise ImportFormatError(str(path), problems, hint="fix the declaration file and re-run")
    decl = Declaration(id=slugify(f"{party}-{path.stem}"), party=party, entries=tuple(entries))
    marked: list[str] = []
    unmarked: list[str] = []
    with open_catalog() as cat, cat.transaction():
        if save:
            decl = cat.add_declaration(decl)
        diff = cat.diff_declaration(decl, radius_m=radius_km * 1000.0)
        if mark:
            matched = {s.id for _, s in diff.matched}
            for site in cat.query_sites():
                if site.id in matched and (not site.declared or site.declaration_ref != decl.id):
                    cat.update_site(
                        dataclasses.replace(site, declared=True, declaration_ref=decl.id)
                    )
                    marked.append(site.id)
                elif site.id not in matched and site.declaration_ref == decl.id:
                    cat.update_site(dataclasses.replace(site, declared=False, declaration_ref=None))
                    unmarked.append(site.id)
    if as_json:
        echo_json(
            {
                "declaration": decl.id,
                "matched": [{"declared": e.name, "site": s.id} for e, s in diff.matched],
                "undeclared_sites": [site_json(s) for s in diff.undeclared],
                "declared_not_in_catalog": [dataclasses.asdict(e) for e in diff.unknown],
                "marked_declared": marked,
                "marked_undeclared": unmarked,
            }
        )
        return
    out = console()
    if mark:
        out.print(
            f"marked {len(marked)} site(s) declared ({decl.id})"
            + (f": {', '.join(marked)}" if marked else "")
            + (
                f"; {len(unmarked)} no longer listed set undeclared: {', '.join(unmarked)}"
                if unmarked
                else ""
            )
        )
    out.print(f"{len(diff.matched)} declared site(s) match the catalog")
    out.print(f"[bold]{len(diff.undeclared)} catalog site(s) missing from the declaration:[/]")
    for s in diff.undeclared:
        out.print(f"  {s.id}  {s.name}  ({s.lat:.4f}, {s.lon:.4f})  {s.status}")
    out.print(f"[bold]{len(diff.unknown)} declared site(s) not in the catalog:[/]")
    for e in diff.unknown:
        where = f"({e.lat:.4f}, {e.lon:.4f})" if e.lat is not None and e.lon is not None else ""
        out.print(f"  {e.name}  {where}")
