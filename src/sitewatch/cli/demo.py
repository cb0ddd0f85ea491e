"""``sitewatch demo``: the main job end to end on the embedded default, without a network.

Step by step: build a demo catalog of publicly reported North Korean missile operating bases (from
facts shipped in the package, with their sources), export it for Google Earth and GIS, and (as the
later parts land) generate a scenario, ingest imagery and run every analysis over it. Each step adds
lines to the summary printed at the end.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import click

from ..catalog.models import Site, SiteRecord, Source
from ..catalog.store import Catalog
from .options import console, echo_json, err_console, json_option

__all__ = ["DemoRun", "demo", "reported_sites"]


@dataclass
class DemoRun:
    """What the demo steps share: the output folder, the catalog and the summary so far."""

    out: Path
    catalog: Catalog
    summary: dict[str, Any] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)


def reported_sites() -> list[SiteRecord]:
    """The publicly reported bases shipped with the package, as site records with their sources."""
    raw = json.loads(
        resources.files("sitewatch.data").joinpath("reported_sites.json").read_text("utf-8")
    )
    sources = {s["id"]: Source(**s) for s in raw["sources"]}
    records = []
    for s in raw["sites"]:
        site = Site(
            id=s["id"],
            name=s["name"],
            lon=s["lon"],
            lat=s["lat"],
            country="KP",
            category="missile_operating_base",
            status="suspected",
            declared=False,
            confidence=0.7,
            tags=tuple(s["tags"]),
            notes=f"{s['role']}. Province: {s['province']}. Coordinates approximate (public reports).",
            source_ids=tuple(s["sources"]),
        )
        records.append(SiteRecord(site=site, sources=tuple(sources[i] for i in s["sources"])))
    return records


def step_catalog(run: DemoRun) -> None:
    """Build the demo catalog and export it as KML and GeoPackage."""
    from ..catalog.io import write_sites

    report = run.catalog.import_records(reported_sites(), path="sitewatch.data/reported_sites.json")
    records = [
        SiteRecord(site=s, sources=tuple(run.catalog.get_source(i) for i in s.source_ids))
        for s in run.catalog.query_sites()
    ]
    for fmt in ("kml", "gpkg"):
        path = run.out / f"sites.{fmt}"
        write_sites(records, path, fmt)
        run.files[f"sites_{fmt}"] = path
    run.summary["catalog_sites"] = report.added
    run.lines.append(
        f"catalog: {report.added} publicly reported missile operating bases "
        f"({', '.join(r.site.name for r in records)})"
    )


STEPS: list[tuple[str, Callable[[DemoRun], None]]] = [
    ("catalog", step_catalog),
]


@click.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-output"),
    show_default=True,
    help="Folder for the demo catalog, exports and reports (replaced).",
)
@json_option
def demo(out: Path, as_json: bool) -> None:
    """Run the whole job on the embedded demo data and print what it found."""
    start = time.perf_counter()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    catalog_url = f"sqlite:///{(out / 'catalog.db').resolve()}"
    with Catalog(catalog_url, actor="sitewatch-demo") as cat:
        run = DemoRun(out=out, catalog=cat)
        for name, step in STEPS:
            t0 = time.perf_counter()
            err_console().print(f"[dim]demo: {name} ...[/]")
            step(run)
            run.summary.setdefault("step_seconds", {})[name] = round(time.perf_counter() - t0, 2)
    run.summary["catalog"] = catalog_url
    run.summary["files"] = {k: str(v) for k, v in run.files.items()}
    run.summary["seconds"] = round(time.perf_counter() - start, 2)
    if as_json:
        echo_json(run.summary)
        return
    c = console()
    c.print("[bold]sitewatch demo[/]")
    for line in run.lines:
        c.print(f"  {line}")
    c.print(f"  catalog: {catalog_url}")
    for key, path in run.files.items():
        c.print(f"  {key}: {path}")
    c.print(f"  done in {run.summary['seconds']:.1f} s")
