"""``sitewatch report``: a site brief (HTML/PDF) and the catalog summary report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ._report_inputs import archive_chips, imagery_options
from .options import Choice, console, echo_json, err_console, json_option, open_catalog

__all__ = ["report"]


@click.group("report")
def report() -> None:
    """Site briefs and catalog reports (self-contained HTML, PDF)."""


def _formats(values: tuple[str, ...]) -> tuple[str, ...]:
    return values or ("html",)


def _output_options(func: Any) -> Any:
    """``-o/--out DIR`` and ``--format html|pdf`` (repeatable), shared by the report commands."""
    func = click.option(
        "--format",
        "formats",
        type=Choice(["html", "pdf"]),
        multiple=True,
        help="html (default) and/or pdf; repeat for both.",
    )(func)
    return click.option(
        "-o",
        "--out",
        "outdir",
        required=True,
        type=click.Path(file_okay=False, path_type=Path),
        help="Output folder.",
    )(func)


@report.command("site")
@click.argument("site_id", metavar="SITE")
@_output_options
@imagery_options
@click.option(
    "--dem",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A DEM covering the site: the brief then says where the site and its features sit on "
    "the terrain, the relief around it and whether it is mountainous (as terrain landform).",
)
@json_option
def site_cmd(
    site_id: str,
    outdir: Path,
    formats: tuple[str, ...],
    archive_dir: Path | None,
    max_chips: int,
    no_imagery: bool,
    boundaries: Path | None,
    dem: Path | None,
    as_json: bool,
) -> None:
    """Write the brief of SITE into a folder: summary, features, measurements, history, figures, sources."""
    from ..report.brief import write_site_brief

    chips, note = archive_chips(site_id, archive_dir, max_chips, no_imagery)
    with open_catalog() as cat, err_console().status(f"writing the brief of {site_id}"):
        cat.get_site(site_id)
        files = write_site_brief(
            cat,
            site_id,
            outdir,
            chips=chips,
            formats=_formats(formats),
            boundaries=boundaries,
            imagery_note=note,
            dem=dem,
        )
    result = {"site": site_id, "chips": len(chips), "files": {k: str(v) for k, v in files.items()}}
    if as_json:
        echo_json(result)
        return
    if note:
        err_console().print(f"note: {note}")
    for key, path in files.items():
        console().print(f"{key:<22} {path}")


@report.command("catalog")
@_output_options
@click.option("--title", default="Site catalog", show_default=True)
@click.option(
    "--boundaries",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="SITEWATCH_BOUNDARIES",
    default=None,
    help="Outlines for the map (env SITEWATCH_BOUNDARIES).",
)
@json_option
def catalog_cmd(
    outdir: Path, formats: tuple[str, ...], title: str, boundaries: Path | None, as_json: bool
) -> None:
    """Summary of every site: status, declared or not, last activity, feature and change counts."""
    from ..report.brief import write_catalog_report

    with open_catalog() as cat, err_console().status("writing the catalog report"):
        files = write_catalog_report(
            cat, outdir, formats=_formats(formats), boundaries=boundaries, title=title
        )
    if as_json:
        echo_json({"files": {k: str(v) for k, v in files.items()}})
        return
    for key, path in files.items():
        console().print(f"{key:<6} {path}")
