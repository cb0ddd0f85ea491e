"""``sitewatch search``: broad-area search (run), interactive triage, and the evaluation."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from ..config import get_settings
from ..errors import InputError
from ..files import make_folder, write_text
from .options import Choice, Finite, console, echo_json, err_console, json_option, open_catalog

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["search"]


def _examples(path: Path) -> list[tuple[float, float]]:
    """The lon/lat centre of each example site in a vector file (GeoJSON, GeoPackage, KML...)."""
    from ..geo import to_crs
    from ._geoinputs import read_geofile

    geoms, _, crs = read_geofile(path)
    out = []
    for i, g in enumerate(geoms):
        if g is None or g.is_empty:
            raise InputError(f"{path}: feature {i} has no geometry (or a bad one)")
        c = (g if crs.equals("EPSG:4326") else to_crs(g, crs, "EPSG:4326")).centroid
        out.append((float(c.x), float(c.y)))
    if not out:
        raise InputError(f"{path} holds no example: give points or polygons of known sites")
    return out


def _all_examples(
    path: Path | None, site_ids: Sequence[str], tags: Sequence[str]
) -> list[tuple[float, float]]:
    """The examples of a file, of catalogued sites and of the sites with ``tags``, in that
    order, each place once."""
    if path is None and not site_ids and not tags:
        raise InputError(
            "give examples of known sites: --examples FILE, --example-site SITE_ID or "
            "--example-tag TAG (`sitewatch sites list` shows the catalog)"
        )
    out = _examples(path) if path is not None else []
    if site_ids or tags:
        with open_catalog() as cat:
            sites = [cat.get_site(s) for s in site_ids]
            for tag in tags:
                tagged = cat.query_sites(tags=[tag])
                if not tagged:
                    raise InputError(
                        f"no catalogued site has the tag {tag!r}; `sitewatch sites list --tag "
                        f"{tag}` shows them"
                    )
                sites += tagged
        for site in sites:
            c = site.aoi.centroid if site.aoi is not None else site.point
            out.append((float(c.x), float(c.y)))
    return list(dict.fromkeys(out))


def _band_list(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        return tuple(int(v) for v in value.split(","))
    except ValueError as exc:
        raise click.BadParameter(
            f"give comma-separated band positions (0 for none), like 3,2,1; got {value!r}"
        ) from exc


def _spectral_option(f: F) -> F:
    return click.option(
        "--spectral/--no-spectral", default=True, show_default=True,
        help="Learn the examples' materials pixel by pixel and fuse the candidates' order by "
        "that match with the search's (finds sites on bright, busy ground).",
    )(f)  # fmt: skip


def _backbone_options(f: F) -> F:
    """The learned-embedding options, shared by ``search run`` and ``search eval``."""
    options = [
        click.option("--backbone", type=click.Path(exists=True, dir_okay=False),
                     help="Local weights of a pretrained ResNet (torchvision/timm/TorchGeo "
                     "state dict or .safetensors): its embeddings join the first stage's "
                     "descriptors (needs the ml extra)."),
        click.option("--backbone-layer", default=0, type=click.IntRange(0, 4),
                     show_default=True, help="ResNet layer whose features are used (0: the "
                     "deepest no coarser than a tile)."),
        click.option("--backbone-bands", callback=_band_list,
                     help="Per input channel of the backbone, the band (1-based among the bands "
                     "searched) that feeds it, 0 for none, e.g. 3,2,1 [default: the first "
                     "bands]."),
        click.option("--embed-dims", default=16, type=click.IntRange(min=1), show_default=True,
                     help="Principal components of the backbone's features kept per tile."),
    ]  # fmt: skip
    for option in reversed(options):
        f = option(f)
    return f


@click.group()
def search() -> None:
    """Broad-area search: rank the places of a large image that look like known sites."""


@search.command("run")
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--examples", "examples_file",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Vector file of known sites (points or polygons: GeoJSON, GeoPackage, KML).")  # fmt: skip
@click.option("--example-site", "example_sites", multiple=True,
              help="A catalogued site as an example (its AOI's centre, else its point); "
              "repeatable.")  # fmt: skip
@click.option("--example-tag", "example_tags", multiple=True,
              help="Every catalogued site with this tag as an example (e.g. ugf); repeatable. "
              "Those outside the image are left out, with a warning.")  # fmt: skip
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Candidates GeoJSON to write; the run folder goes beside it (NAME.run/).")  # fmt: skip
@click.option(
    "--top",
    default=100,
    show_default=True,
    type=click.IntRange(min=1),
    help="How many candidates to keep.",
)
@click.option(
    "--dem", type=click.Path(exists=True, dir_okay=False), help="DEM for terrain context."
)
@click.option("--scheduler", envvar="SITEWATCH_SCHEDULER",
              help="dask.distributed scheduler (tcp://host:port); default: local threads.")  # fmt: skip
@click.option(
    "--tile",
    default=None,
    type=click.IntRange(min=1),
    help="Tile size in pixels [default: about 40 m on the ground, at least 4 px: 4 at 10 m, 8 at "
    "5 m]. Tiles about one site feature across found compact 150 m sites best in `search eval`; "
    "larger tiles search faster (bench/README.md).",
)
@click.option("--stride", default=None, type=click.IntRange(min=1),
              help="Tile stride in pixels (default: tile/2).")  # fmt: skip
@click.option("--method", type=Choice(["hybrid", "logistic", "knn"]), default="hybrid",
              show_default=True, help="Scoring model.")  # fmt: skip
@click.option("--seed", default=0, show_default=True, help="Seed of the random negatives.")
@_backbone_options
@_spectral_option
@click.option("--no-catalog", is_flag=True, help="Do not store the candidates in the catalog.")
@json_option
def run_cmd(
    images: tuple[str, ...],
    examples_file: Path | None,
    example_sites: tuple[str, ...],
    example_tags: tuple[str, ...],
    output: Path,
    top: int,
    dem: str | None,
    scheduler: str | None,
    tile: int | None,
    stride: int | None,
    method: str,
    seed: int,
    backbone: str | None,
    backbone_layer: int,
    backbone_bands: tuple[int, ...] | None,
    embed_dims: int,
    spectral: bool,
    no_catalog: bool,
    as_json: bool,
) -> None:
    """Search IMAGES (one raster, or several mosaicked) for places like the examples."""
    from ..search._runstore import save_run
    from ..search.candidates import to_geojson
    from ..search.run import SearchParams, new_run_id, run_search
    from ..search.tiles import build_vrt
    from ..search.triage import CATALOGUED_RADIUS_M, candidate_records, mark_catalogued

    examples = _all_examples(examples_file, example_sites, example_tags)
    run_id = new_run_id()
    folder = output.with_suffix(".run")
    make_folder(folder, "the search run")
    image = images[0] if len(images) == 1 else str(build_vrt(images, folder / "mosaic.vrt"))
    params = SearchParams(tile=tile or 0, stride=stride or 0, top=top,
                          method=method, seed=seed, backbone=backbone,  # type: ignore[arg-type]
                          backbone_layer=backbone_layer, backbone_bands=backbone_bands,
                          embed_dims=embed_dims, spectral=spectral)  # fmt: skip
    with Progress(
        TextColumn("searching"), BarColumn(), TextColumn("{task.completed}/{task.total} blocks"),
        TimeElapsedColumn(), console=err_console(), transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task("search", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = run_search(image, examples, dem=dem, params=params, scheduler=scheduler,
                            progress=progress, run_id=run_id)  # fmt: skip
    write_text(output, json.dumps(to_geojson(result.candidates, run_id=run_id)), parents=True)
    save_run(result, folder)
    summary: dict[str, Any] = {**result.summary(), "output": str(output), "run_folder": str(folder)}
    if not no_catalog:
        with open_catalog() as cat:
            records = mark_catalogued(cat, candidate_records(run_id, result.candidates, image))
            summary["stored_candidates"] = cat.add_candidates(records)
        summary["catalogued"] = sum(1 for c in records if "catalogued_site" in c.details)
    if as_json:
        echo_json(summary)
        return
    out = console()
    out.print(f"run {run_id}: {len(result.candidates)} candidates -> {output}")
    out.print(searched_text(summary))
    if summary.get("catalogued"):
        out.print(
            f"{summary['catalogued']} candidate(s) lie on or within "
            f"{CATALOGUED_RADIUS_M:,.0f} m of a catalogued site (triage says which)"
        )
    out.print(f"triage with: sitewatch search triage {folder}")


@search.command("triage")
@click.argument("run_ref", metavar="RUN")
@click.option(
    "--limit", type=click.IntRange(min=1), default=None, help="Stop after this many decisions."
)
@click.option("--graphics", type=Choice(["auto", "kitty", "iterm", "sixel", "file"]),
              default="auto", show_default=True, help="How to show chips.")  # fmt: skip
@json_option
def triage_cmd(run_ref: str, limit: int | None, graphics: str, as_json: bool) -> None:
    """Review the candidates of RUN (folder, GeoJSON or run id): a accept, r reject, s skip, q quit."""
    from ..search._runstore import find_run
    from ..search.triage import detect_graphics, triage

    run = find_run(run_ref)
    mode = detect_graphics(sys.stdout) if graphics == "auto" else graphics
    prompt = sys.stderr if as_json else sys.stdout

    def write(text: str) -> None:
        prompt.write(text)
        prompt.flush()

    with open_catalog() as cat:
        summary = triage(run, cat, keys=sys.stdin, write=write, graphics=mode, limit=limit)
    if as_json:
        echo_json({"run_id": run.run_id, **summary.to_dict()})
        return
    console().print(
        f"accepted {len(summary.accepted)}, rejected {len(summary.rejected)}, "
        f"skipped {len(summary.skipped)}; {summary.remaining} pending"
        + (f"; new suspected sites: {', '.join(summary.sites)}" if summary.sites else "")
    )


@search.command("eval")
@click.option("--background", type=Choice(["naip", "landsat", "spacenet"]),
              multiple=True, help="Background imagery (repeatable; default naip).")  # fmt: skip
@click.option("--sites", "n_sites", default=25, show_default=True, help="Sites planted per seed.")
@click.option(
    "-k", "--examples", "k", default=5, show_default=True, help="Sites given as examples."
)
@click.option("--seeds", default="0,1,2", show_default=True, help="Comma-separated seeds.")
@click.option("--method", type=Choice(["hybrid", "logistic", "knn"]), default="hybrid",
              show_default=True)  # fmt: skip
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Shared data folder (default: SITEWATCH_SHARED_DATA).")  # fmt: skip
@click.option("--site-features", is_flag=True,
              help="Add bright-dark step and site-scale (context window) descriptors.")  # fmt: skip
@click.option("--negatives", default=3000, show_default=True, help="Random background tiles.")
@click.option("--hard-rounds", default=0, show_default=True,
              help="Hard-negative refits of the logistic model.")  # fmt: skip
@click.option("--clip-margin", type=Finite(), default=None,
              help="Clip z-scores to the examples' range plus this margin (e.g. 0.5).")  # fmt: skip
@_backbone_options
@_spectral_option
@json_option
def eval_cmd(
    background: tuple[str, ...], n_sites: int, k: int, seeds: str, method: str,
    data_dir: Path | None, site_features: bool, negatives: int, hard_rounds: int,
    clip_margin: float | None, backbone: str | None, backbone_layer: int,
    backbone_bands: tuple[int, ...] | None, embed_dims: int, spectral: bool, as_json: bool,
) -> None:  # fmt: skip
    """Plant synthetic sites into real imagery and report recall at 100x/500x/1000x area reduction."""
    from ..search.evaluate import evaluate
    from ..search.run import SearchParams

    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError as exc:
        raise click.BadParameter(f"--seeds must be integers like 0,1,2; got {seeds!r}") from exc
    shared = data_dir or get_settings().shared_data
    reports = []
    for fam in background or ("naip",):
        rep = evaluate(
            shared, fam, n_sites=n_sites, k=k, seeds=seed_list,
            params=SearchParams(method=method, site=site_features, negatives=negatives,  # type: ignore[arg-type]
                                hard_rounds=hard_rounds, clip_margin=clip_margin,
                                backbone=backbone, backbone_layer=backbone_layer,
                                backbone_bands=backbone_bands, embed_dims=embed_dims,
                                spectral=spectral),
            progress=lambda msg: err_console().print(msg),
        )  # fmt: skip
        reports.append(rep.to_dict())
    if as_json:
        echo_json({"evaluations": reports})
        return
    out = console()
    for r in reports:
        rec = ", ".join(
            f"{f} {v:.2f} ({r['recall_ci95'][f][0]:.2f}-{r['recall_ci95'][f][1]:.2f})"
            for f, v in r["recall"].items()
        )
        rec_c = ", ".join(f"{f} {v:.2f}" for f, v in r["recall_centre"].items())
        out.print(
            f"{r['family']}: {r['area_km2']} km2, {r['n_sites']} sites, k={r['examples']}: "
            f"recall (95% interval) {rec} (hit: {r['hit']}; with the site's centre in the tile: {rec_c}); "
            f"{r['km2_per_s']} km2/s"
        )
        parts = "; ".join(
            f"{b['brightness'][0]:.0f}-{b['brightness'][1]:.0f}: "
            + ", ".join(f"{f} {v:.2f}" for f, v in b["recall"].items())
            for b in r["recall_by_background"]
        )
        out.print(
            f"  recall by the brightness of the sites' ground (8-bit, quarters of the sites): {parts}"
        )


def _km2(value: float) -> str:
    """An area or rate in km² to three significant digits, without exponents (0.203, 41.5, 1,234)."""
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if value >= 0.001 else f"{value:.1e}"


def searched_text(summary: dict[str, Any]) -> str:
    """``searched 0.203 km² in 13.0 s (0.0156 km²/s); the top 20 cover 15.8% of it``."""
    share = 100 * float(summary["top_area_fraction"])
    return (
        f"searched {_km2(summary['area_km2'])} km² in {summary['time_s']:.1f} s "
        f"({_km2(summary['km2_per_s'])} km²/s); the top {summary['candidates']} cover "
        f"{share:.3g}% of it"
    )
