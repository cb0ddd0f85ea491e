"""``sitewatch imagery``: list sources, search scenes, fetch site chips into the archive, list them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from ..config import get_settings
from .options import Finite, console, echo_json, err_console, json_option, open_catalog
from .options import table as make_table

if TYPE_CHECKING:
    from shapely.geometry.base import BaseGeometry

    from ..imagery.chips import ChipGrid
    from ..imagery.sources.base import ImagerySource

__all__ = ["imagery"]


def _where(
    ctx: click.Context, site_id: str | None, bbox: str | None, size: float
) -> tuple[BaseGeometry, tuple[float, float], str]:
    """The lon/lat AOI, its centre, and what it is: ``bbox``, ``site`` (the site's own AOI) or
    ``point`` (a square of ``size`` around a site's point)."""
    from shapely.geometry import box

    from ..geo import parse_bbox
    from ..imagery.sitegrid import site_aoi

    if bbox:
        w, s, e, n = parse_bbox(bbox, "--bbox")
        geom = box(w, s, e if e >= w else e + 360.0, n)
        c = geom.centroid
        return geom, (((c.x + 180.0) % 360.0) - 180.0, c.y), "bbox"
    if not site_id:
        raise click.UsageError("give a SITE id or --bbox W,S,E,N")
    with open_catalog(ctx) as catalog:
        site = catalog.get_site(site_id)
    aoi = site_aoi(site.lon, site.lat, site.aoi, size)
    return aoi, (site.lon, site.lat), "site" if site.aoi is not None else "point"


def _grid(
    aoi: BaseGeometry, centre: tuple[float, float], resolution: float, size: float, kind: str
) -> ChipGrid:
    """A --bbox as it is; a site as ``monitor run`` cuts it, with its ring of surroundings, so
    that the monitor reuses the chips."""
    from ..imagery.chips import ChipGrid
    from ..imagery.sitegrid import site_grid

    if kind == "bbox":
        return ChipGrid.for_aoi(aoi, resolution)
    return site_grid(centre[0], centre[1], aoi if kind == "site" else None, resolution, size_m=size)


def _sources(specs: Sequence[str], allow_private: bool = False) -> list[ImagerySource]:
    from ..imagery.sources.config import load_source_config, open_source

    if specs:
        return [open_source(s, allow_private=allow_private) for s in specs]
    return [open_source(n, allow_private=allow_private) for n in load_source_config()]


@contextmanager
def _progress(label: str, enabled: bool) -> Iterator[Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    if not enabled:
        yield lambda done, total: None
        return
    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console(),
        transient=True,
    )
    with bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


_site_arg = click.argument("site_id", metavar="SITE", required=False)
_common = [
    click.option("--bbox", help="W,S,E,N in degrees instead of a SITE (W > E crosses 180°)."),
    click.option("--from", "start", help="First date (YYYY-MM-DD)."),
    click.option("--to", "end", help="Last date (YYYY-MM-DD), inclusive."),
    click.option(
        "--source",
        "sources",
        multiple=True,
        help="Source name (sitewatch imagery sources), folder, catalog.json or STAC API URL; repeatable.",
    ),
    click.option(
        "--allow-private",
        is_flag=True,
        help="Let STAC URLs reach private/loopback addresses (a server on your own network).",
    ),
    click.option("--max-cloud", type=Finite(0, 100), help="Largest scene cloud cover, percent."),
    click.option("--sensor", help="Only scenes whose sensor contains this text."),
    click.option(
        "--size",
        type=Finite(min=0, min_open=True),
        default=2000.0,
        show_default=True,
        help="AOI side (m) around a site without an AOI (as `monitor run` takes it).",
    ),
]


def _with_common(func: Any) -> Any:
    for option in reversed(_common):
        func = option(func)
    return func


@click.group()
def imagery() -> None:
    """Find imagery of sites and keep site chips in the local archive."""


@imagery.command("sources")
@json_option
def sources_cmd(as_json: bool) -> None:
    """List the configured imagery sources."""
    from ..imagery.sources.config import BUILTIN_SOURCES, load_source_config

    path = get_settings().sources_path
    rows = [
        {"name": name, **table, "builtin": name in BUILTIN_SOURCES and not path.is_file()}
        for name, table in sorted(load_source_config(path).items())
    ]
    if as_json:
        echo_json({"config": str(path), "sources": rows})
        return
    table = make_table("name", "type", "where", "collections")
    for r in rows:
        table.add_row(
            r["name"],
            r["type"],
            str(r.get("url") or r.get("path")),
            ", ".join(r.get("collections", [])),
        )
    console().print(table)
    err_console().print(f"configure sources in {path}")


@imagery.command("search")
@_site_arg
@_with_common
@click.option("--limit", type=click.IntRange(min=1), help="At most this many scenes per source.")
@json_option
@click.pass_context
def search_cmd(
    ctx: click.Context,
    site_id: str | None,
    bbox: str | None,
    start: str | None,
    end: str | None,
    sources: tuple[str, ...],
    allow_private: bool,
    max_cloud: float | None,
    sensor: str | None,
    size: float,
    limit: int | None,
    as_json: bool,
) -> None:
    """Search scenes of SITE (or --bbox) between --from and --to."""
    from ..imagery.sources.base import SearchQuery, find_scenes

    aoi, _, _ = _where(ctx, site_id, bbox, size)
    srcs = _sources(sources, allow_private)
    query = SearchQuery.build(aoi, start, end, max_cloud=max_cloud, sensor=sensor)
    try:
        found = find_scenes(srcs, aoi, start, end, max_cloud=max_cloud, sensor=sensor, limit=limit)
    finally:
        for s in srcs:
            s.close()
    if as_json:
        echo_json(
            {
                "site": site_id,
                "query": query.to_dict(),
                "sources": [s.name for s in srcs],
                "count": len(found),
                "scenes": [{"source": src.name, **sc.to_dict()} for src, sc in found],
            }
        )
        return
    # scenes dated from their file names carry no time of day: print none rather than 00:00
    timed = any((sc.datetime.hour, sc.datetime.minute, sc.datetime.second) != (0, 0, 0)
                for _, sc in found)  # fmt: skip
    table = make_table(
        "date (UTC)" if timed else "date", "scene", "sensor", "bands", "gsd", "cloud", "source",
        right=("gsd", "cloud"),
    )  # fmt: skip
    for src, sc in found:
        table.add_row(
            sc.datetime.strftime("%Y-%m-%d %H:%M" if timed else "%Y-%m-%d"),
            sc.id,
            sc.sensor,
            ",".join(sc.bands),
            f"{sc.gsd:.3g}" if sc.gsd else "",  # 89 m, not 89.033
            f"{sc.cloud_cover:.0f}%" if sc.cloud_cover is not None else "",
            src.name,
        )
    console().print(table)
    err_console().print(f"{len(found)} scene(s) for {query.describe()}")


@imagery.command("fetch")
@click.argument("site_id", metavar="SITE")
@_with_common
@click.option(
    "--resolution",
    type=Finite(min=0, min_open=True),
    default=None,
    help="Chip pixel size (m). Default: that of the site's archived chips, else the scenes' own "
    "(the finest of them), else 10.",
)
@click.option("--bands", help="Comma-separated common band names (default: all of each scene).")
@click.option(
    "--resampling",
    default="bilinear",
    show_default=True,
    help="nearest, bilinear, cubic, average...",
)
@click.option("--overwrite", is_flag=True, help="Store again chips already in the archive.")
@json_option
@click.pass_context
def fetch_cmd(
    ctx: click.Context,
    site_id: str,
    bbox: str | None,
    start: str | None,
    end: str | None,
    sources: tuple[str, ...],
    allow_private: bool,
    max_cloud: float | None,
    sensor: str | None,
    size: float,
    resolution: float | None,
    bands: str | None,
    resampling: str,
    overwrite: bool,
    as_json: bool,
) -> None:
    """Cut every scene of SITE to one UTM grid and store the chips (COG + STAC) in the archive.

    Exit codes: 0 every scene stored or already there (scenes without data over the site are
    listed and left out); 1 some scene could not be read (listed; the others are stored, and
    running again fetches only what is missing) or no chip at all; 2 bad input.
    """
    from ..imagery.archive import Archive
    from ..imagery.sitegrid import choose_grid
    from ..imagery.sources.base import find_scenes

    aoi, centre, kind = _where(ctx, None if bbox else site_id, bbox, size)
    srcs = _sources(sources, allow_private)
    archive = Archive(get_settings().archive_path)
    band_list = [b.strip() for b in bands.split(",") if b.strip()] if bands else None
    try:
        found = find_scenes(srcs, aoi, start, end, max_cloud=max_cloud, sensor=sensor)
        grid = choose_grid(
            archive, site_id, found, lambda res: _grid(aoi, centre, res, size, kind), resolution
        )
        with _progress(f"fetching {site_id}", not as_json) as progress:
            result = archive.fetch(
                site_id,
                found,
                grid,
                band_list,
                resampling=resampling,
                overwrite=overwrite,
                progress=progress,
            )
    finally:
        for s in srcs:
            s.close()
    if as_json:
        echo_json(
            {
                "site": site_id,
                "archive": str(archive.root),
                "grid": {
                    "crs": grid.crs,
                    "transform": list(grid.transform)[:6],
                    "width": grid.width,
                    "height": grid.height,
                    "resolution": grid.resolution,
                },
                "stored": [c.to_dict() for c in result.stored],
                "existing": [c.to_dict() for c in result.existing],
                "failed": [{"scene": s, "reason": r} for s, r in result.failed],
                "empty": [{"scene": s, "reason": r} for s, r in result.empty],
                "recut": list(result.recut),
            }
        )
    else:
        for sid, reason in result.empty:
            err_console().print(f"[yellow]skipped[/] {sid}: {reason}", markup=True, highlight=False)
        for sid, reason in result.failed:
            err_console().print(f"[red]failed[/] {sid}: {reason}", markup=True, highlight=False)
        recut = (
            f" ({len(result.recut)} cut again: the site's extent or the bands changed)"
            if result.recut
            else ""
        )
        console().print(
            f"{len(result.stored)} chip(s) stored{recut}, {len(result.existing)} already there, "
            f"{len(result.empty)} without data over the site, {len(result.failed)} failed, "
            f"pixels of {grid.resolution:g} m, in {archive.site_dir(site_id)}"
        )
    if result.failed or not (result.stored or result.existing):
        ctx.exit(1)


@imagery.command("ls")
@click.argument("site_id", metavar="SITE")
@json_option
def ls_cmd(site_id: str, as_json: bool) -> None:
    """List the chips of SITE in the archive."""
    from ..imagery.archive import Archive

    archive = Archive(get_settings().archive_path)
    chips = archive.chips(site_id)
    if as_json:
        echo_json(
            {"site": site_id, "archive": str(archive.root), "chips": [c.to_dict() for c in chips]}
        )
        return
    if not chips:
        with open_catalog() as cat:
            cat.get_site(site_id)  # an unknown site: say so, rather than suggest a fetch
        err_console().print(
            f"no chips of {site_id} in {archive.root}; run `sitewatch imagery fetch {site_id}`"
        )
        return
    table = make_table(
        "date", "item", "sensor", "bands", "res", "coverage", "cloud",
        right=("res", "coverage", "cloud"),
    )  # fmt: skip
    for c in chips:
        table.add_row(
            c.datetime.strftime("%Y-%m-%d"),
            c.item_id,
            c.sensor,
            ",".join(c.bands),
            f"{c.resolution:g} m",
            f"{c.coverage:.0%}" if c.coverage is not None else "",
            f"{c.cloud_fraction:.0%}" if c.cloud_fraction is not None else "",
        )
    console().print(table)
