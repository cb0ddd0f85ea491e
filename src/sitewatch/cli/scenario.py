"""``sitewatch scenario``: generate synthetic scene series with ground truth."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import click

from .options import Finite, console, echo_json, err_console, json_option

__all__ = ["scenario"]


@click.group()
def scenario() -> None:
    """Synthetic, physically consistent scenes with exact ground truth."""


def _bands(value: str) -> tuple[str, ...]:
    return tuple(b.strip().lower() for b in value.replace(" ", ",").split(",") if b.strip())


@scenario.command("make")
@click.argument("outdir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--sites", type=int, default=1, show_default=True, help="Bases to lay out.")
@click.option("--dates", type=int, default=6, show_default=True, help="Acquisition dates.")
@click.option(
    "--span-days", type=int, default=730, show_default=True, help="Days from first to last date."
)
@click.option(
    "--start",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default="2023-04-01",
    show_default=True,
    help="First acquisition date.",
)
@click.option(
    "--dem",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A real DEM (GeoTIFF, SRTM .hgt) instead of the generated mountain valley.",
)
@click.option("--center", nargs=2, type=Finite(), default=None, help="Scene centre: LON LAT.")
@click.option(
    "--gsd",
    type=Finite(min=0, min_open=True),
    default=0.5,
    show_default=True,
    help="Pixel size (m).",
)
@click.option(
    "--size", nargs=2, type=int, default=(1024, 1024), show_default=True, help="WIDTH HEIGHT (px)."
)
@click.option(
    "--bands",
    default="blue,green,red,nir",
    show_default=True,
    help="Comma-separated common band names (blue green red nir swir16 swir22).",
)
@click.option("--clouds", is_flag=True, help="Add clouds and write cloud masks.")
@click.option(
    "--demo", is_flag=True, help="Use the demo preset (other options but --seed ignored)."
)
@json_option
def make(
    outdir: Path,
    seed: int,
    sites: int,
    dates: int,
    span_days: int,
    start: Any,
    dem: Path | None,
    center: tuple[float, float] | None,
    gsd: float,
    size: tuple[int, int],
    bands: str,
    clouds: bool,
    demo: bool,
    as_json: bool,
) -> None:
    """Generate a scenario into OUTDIR: COGs + static STAC catalog + truth/."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from ..scenario import ScenarioSpec, demo_spec, make_scenario

    if demo:
        spec = demo_spec(seed)
    else:
        spec = ScenarioSpec(
            seed=seed,
            sites=sites,
            dates=dates,
            span_days=span_days,
            start=start.date() if hasattr(start, "date") else date.fromisoformat(str(start)),
            dem=dem,
            center=tuple(center) if center else None,  # type: ignore[arg-type]
            gsd=gsd,
            size_px=(size[0], size[1]),
            bands=_bands(bands),
            clouds=clouds,
        )
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err_console(),
        transient=True,
        disable=as_json,
    ) as bar:
        task = bar.add_task("scenario", total=spec.n_dates)

        def report(stage: str, i: int, n: int) -> None:
            if stage == "render":
                bar.update(task, description=f"rendering date {min(i + 1, n)}/{n}", completed=i)

        result = make_scenario(outdir, spec, progress=report)
    truth = result.truth
    summary = {
        "outdir": str(result.outdir),
        "catalog": str(result.catalog),
        "truth": str(result.truth_json),
        "features": str(result.features_geojson),
        "features_utm": str(result.features_utm_geojson),
        "dem": str(result.dem),
        "change_masks": [str(p) for p in result.change_masks],
        "epsg": result.epsg,
        "dates": truth["dates"],
        "items": truth["items"],
        "sites": truth["sites"],
        "changes": [
            {"from": c["from"], "to": c["to"], "features": [f["feature_id"] for f in c["features"]]}
            for c in truth["changes"]
        ],
        "seconds": round(result.seconds, 2),
    }
    if as_json:
        echo_json(summary)
        return
    out = console()
    out.print(f"scenario written to {result.outdir} in {result.seconds:.1f} s")
    out.print(f"  STAC catalog: {result.catalog}")
    out.print(f"  truth: {result.truth_json}")
    for item in truth["items"]:
        out.print(
            f"  {item['datetime']}  sun az {item['sun_azimuth']:.1f} el {item['sun_elevation']:.1f}"
            f"  cloud {item['cloud_cover']:.1f}%"
        )
    for c in truth["changes"]:
        what = ", ".join(f"{f['feature_id']} {f['change']}" for f in c["features"]) or "no change"
        out.print(f"  {c['from']} -> {c['to']}: {what}")
