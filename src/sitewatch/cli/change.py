"""``sitewatch change``: detect change between two images, evaluate detectors on labelled data."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ..errors import InputError
from .changeevents import delete_event, list_events
from .options import (
    Choice,
    Finite,
    console,
    echo_json,
    err_console,
    json_option,
    open_catalog,
    parse_when,
)
from .options import table as make_table

__all__ = ["change"]

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

_CHUNK_ABOVE_PX = 16_000_000  # larger images run through the chunked (dask) path


_AFTER_COVER = click.option(
    "--after-cover", "after_covers", default="", metavar="COVERS",
    help="Keep only change patches whose land cover on the AFTER date is one of these "
    "(comma-separated: water, vegetation, built_or_bare, other; default: all). "
    "built_or_bare,other keeps what may be construction or cleared ground and drops change that "
    "ends as water or vegetation.",
)  # fmt: skip


def _method_options(func: F) -> F:
    from ..types import CHANGE_METHODS as METHODS
    from ..types import CHANGE_NORMALISATIONS as NORMALISATIONS
    from ..types import CHANGE_THRESHOLDS as THRESHOLDS

    opts = [
        click.option("--method", "method", type=Choice(METHODS), default="cva", show_default=True,
                     help="Change method."),
        click.option("--threshold", type=Choice(THRESHOLDS), default=None,
                     help="Threshold (default: mad; chi2 for irmad; kmeans for pca_kmeans)."),
        click.option("--value", "fixed_value", type=Finite(), default=None, help="Value of a fixed threshold."),
        click.option("--k", "mad_k", type=Finite(), default=5.0, show_default=True,
                     help="mad threshold: robust standard deviations above the median."),
        click.option("--alpha", "chi2_alpha", type=Finite(), default=0.01, show_default=True,
                     help="chi2 threshold: no-change p-value below which a pixel is changed."),
        click.option("--normalise", "normalisation", type=Choice(NORMALISATIONS), default=None,
                     help="Relative radiometric normalisation (default: zscore for cva, irmad, "
                     "pca_kmeans; invariant-pixel regression for log_ratio and the indices)."),
        click.option("--smooth", "smooth_sigma", type=Finite(), default=1.0, show_default=True,
                     help="Gaussian smoothing sigma in pixels (0: none)."),
        click.option("--opening", "opening_radius", type=int, default=0, show_default=True,
                     help="Morphological opening radius in pixels."),
        _AFTER_COVER,
        click.option("--model", "model", type=click.Path(dir_okay=False), default=None,
                     help="A learned model file from train-oscd (needs the [ml] extra and the model's bands); "
                     "replaces --method and its threshold."),
        click.option("--tta/--no-tta", "tta", default=None,
                     help="With --model: average each tile over its 8 flips and rotations, 8x the "
                     "network's time (default: as the model says; on for train-oscd models). "
                     "--no-tta for a first look at a whole tile."),
    ]  # fmt: skip
    for opt in reversed(opts):
        func = opt(func)
    return func


def _config(kw: dict[str, Any], min_area_m2: float = 0.0) -> Any:
    from ..analysis.change import ChangeConfig

    return ChangeConfig(
        method=kw["method"], threshold=kw["threshold"], fixed_value=kw["fixed_value"],
        mad_k=kw["mad_k"], chi2_alpha=kw["chi2_alpha"], normalisation=kw["normalisation"],
        smooth_sigma=kw["smooth_sigma"], opening_radius=kw["opening_radius"], min_area_m2=min_area_m2,
        after_covers=kw["after_covers"],
    )  # fmt: skip


def _load_model(kw: dict[str, Any]) -> Any:
    """The learned model named by --model, or None."""
    if not kw.get("model"):
        if kw.get("tta") is not None:
            raise InputError("--tta/--no-tta set the learned model's inference: give --model too")
        return None
    from dataclasses import replace

    from ..analysis.models import load_model

    model = load_model(kw["model"])
    if kw.get("tta") is not None:
        model.meta = replace(model.meta, tta=kw["tta"])
    return model


@click.group("change")
def change() -> None:
    """Change detection between two dates, the change events stored for a site, and the
    detectors' evaluation on labelled data."""


change.add_command(list_events)
change.add_command(delete_event)


@change.command("detect")
@click.argument("before", type=click.Path())
@click.argument("after", type=click.Path())
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False), required=True,
              help="Output COG (band 1 change mask, band 2 magnitude).")  # fmt: skip
@click.option("--geojson", "geojson", type=click.Path(dir_okay=False), default=None,
              help="Change polygons, largest first, each with its area in m², pixels, mean "
                   "and maximum magnitude, and the mean NDVI, NDBI, MNDWI and bare-soil index "
                   "before and after that the bands allow, the land cover they give on each "
                   "date and the kind of change (vegetation_to_built_or_bare, within_water...; "
                   "default: OUTPUT with .geojson).")  # fmt: skip
@click.option("--preview", type=click.Path(dir_okay=False), default=None,
              help="Also write a quick look (.png, .svg or .pdf): BEFORE and AFTER side by side, "
                   "one contrast stretch, the change outlined, with scale bar and north arrow.")  # fmt: skip
@click.option(
    "--bands", default=None, help="Comma-separated bands to use (default: all common bands)."
)
@click.option("--min-area", "min_area", type=Finite(), default=0.0, show_default=True,
              help="Minimum mapping unit in m².")  # fmt: skip
@click.option(
    "--site", "site_id", default=None, help="Record a change event for this catalog site."
)
@click.option("--before-date", default=None, help="Acquisition date of BEFORE (for --site).")
@click.option("--after-date", default=None, help="Acquisition date of AFTER (for --site).")
@click.option("--coregister/--no-coregister", default=None,
              help="Move AFTER onto BEFORE by the sub-pixel shift phase correlation measures (at "
                   "most 3 px, kept only when the images are more alike once moved) before "
                   "comparing, as eval-oscd, train-oscd and the monitor do. Default: on up to "
                   f"{_CHUNK_ABOVE_PX // 1_000_000} Mpx; off above, where the moved copy of AFTER "
                   "would take 4 bytes a pixel and band (1.9 GB for a 4-band Sentinel-2 tile). "
                   "The shift is always measured and reported; left uncorrected, one over 0.5 px "
                   "is warned of.")  # fmt: skip
@_method_options
@json_option
def detect(before: str, after: str, output: str, geojson: str | None, preview: str | None,
           bands: str | None, min_area: float, site_id: str | None, before_date: str | None,
           after_date: str | None, coregister: bool | None, as_json: bool,
           **kw: Any) -> None:  # fmt: skip
    """Detect change between BEFORE and AFTER: multi-band files, folders of per-band files, or
    the item or scene ids of chips in the archive (``sitewatch imagery ls SITE``; with --site,
    that site's chips; their no-data and cloud pixels are left out)."""
    from ..analysis._changeio import (
        align_pair,
        coregister_pair,
        pixel_area_m2,
        write_change_cog,
        write_geojson,
    )
    from ..analysis.change import ChangedPixels, change_polygons, detect_change
    from ..analysis.landcover import kind_areas
    from ..files import check_writable

    config = _config(kw, min_area)
    model = _load_model(kw)
    t0 = parse_when(before_date, "--before-date") if before_date is not None else None
    t1 = parse_when(after_date, "--after-date") if after_date is not None else None
    wanted = tuple(b.strip() for b in bands.split(",") if b.strip()) if bands else None
    if bands is not None and not wanted:
        raise InputError(
            f"--bands {bands!r} names no band; give names like B04,B08 or leave it out"
        )
    gj = Path(geojson) if geojson else Path(output).with_suffix(".geojson")
    if preview is not None and Path(preview).suffix.lower() not in (".png", ".svg", ".pdf"):
        raise InputError(f"--preview {preview}: give a .png, .svg or .pdf name")
    for out in (Path(output), gj, *([Path(preview)] if preview else [])):  # before the work
        check_writable(out)
    raw0, d0 = _image(before, site_id, wanted)
    raw1, d1 = _image(after, site_id, wanted)
    t0, t1 = t0 or d0, t1 or d1
    if site_id or preview:  # files dated by a tag, a STAC sidecar, dates.txt or their names
        t0 = t0 or _file_date(before, "BEFORE", "--before-date")
        t1 = t1 or _file_date(after, "AFTER", "--after-date")
    if site_id and (t0 is None or t1 is None):
        raise InputError(
            "--site needs --before-date and --after-date (the acquisition dates) for the change "
            "event, unless BEFORE and AFTER are archive chips or files that carry their dates "
            "(a datetime tag, a STAC sidecar item, dates.txt, a date in the file name)"
        )
    if site_id:  # an unknown site fails before the work, not after the outputs are written
        with open_catalog() as cat:
            site = cat.get_site(site_id)
        _check_covers(raw0, site)
    img0, img1 = align_pair(raw0, raw1)
    h, w = img0.shape
    if coregister is None:
        coregister = h * w <= _CHUNK_ABOVE_PX
        if not coregister:
            logger.info(
                "%d x %d px: AFTER is not co-registered unless --coregister is given (its moved "
                "copy would take %.1f GB)", h, w, h * w * len(img1.bands) * 4 / 1e9,
            )  # fmt: skip
    img1, registration = coregister_pair(img0, img1, correct=coregister)
    if model is not None:
        from ..analysis.models import detect_with_model

        with _bar(True) as bar:  # the images as stored: the model reads them window by window
            task = bar.add_task("model", total=1.0, msg="")
            result = detect_with_model(
                model, img0.data, img1.data, bands=img0.bands, nodata_before=img0.nodata,
                nodata_after=img1.nodata, opening_radius=config.opening_radius,
                min_area_m2=min_area, pixel_area_m2=pixel_area_m2(img0) if min_area > 0 else None,
                progress=lambda f: bar.update(task, completed=f), after_covers=config.after_covers,
            )  # fmt: skip
    else:
        chunked = h * w > _CHUNK_ABOVE_PX
        with _bar(chunked) as bar, _DaskTasks(bar, bar.add_task(config.method, total=None, msg="")):
            result = detect_change(
                img0.data, img1.data, bands=img0.bands, config=config, nodata_before=img0.nodata,
                nodata_after=img1.nodata, pixel_area_m2=pixel_area_m2(img0),
                chunks=1024 if chunked else None,
            )  # fmt: skip
    crs, transform = img0.crs, img0.transform
    # both dates' bands at the changed pixels only, for each polygon's spectral indices
    changed = ChangedPixels.of(
        result.mask, img0.data, img1.data, img0.bands, img0.nodata, img1.nodata
    )
    if preview is not None:
        _preview(preview, img0, img1, result.mask, (t0, t1))
    del raw0, raw1, img0, img1  # free the images' pixels (1.9 GB for a tile pair) before writing
    write_change_cog(output, result.mask, result.magnitude, result.valid, crs, transform)
    feats = change_polygons(result.mask, transform, crs, result.magnitude, changed)
    summary = result.summary()
    summary.update(output=str(output), geojson=str(gj), polygons=len(feats),
                   area_m2=round(sum(f["properties"]["area_m2"] for f in feats), 1),
                   coregistration=registration, indices=changed.index_means(),
                   kinds=kind_areas(feats))  # fmt: skip
    if preview is not None:
        summary["preview"] = str(preview)
    write_geojson(gj, feats, {k: v for k, v in summary.items() if k not in ("config",)})
    if site_id:
        summary["change_event"], summary["change_event_version"] = _record(
            site_id, t0, t1, result, feats, summary
        )
    if as_json:
        echo_json(summary)
    else:
        console().print(
            f"{summary['changed_pixels']:,} changed pixel(s) ({100 * result.changed_fraction:.2f}% "
            f"of {_compared(summary['valid_pixels'], result.valid.size)}), {len(feats):,} "
            f"polygon(s), {summary['area_m2']:,.0f} m² -> {output}, {gj}"
            + (f", {preview}" if preview else "")
        )
        if feats:
            from ..analysis.landcover import kind_words

            kinds = ", ".join(f"{kind_words(k)} {a:,.0f} m²" for k, a in summary["kinds"].items())
            console().print(f"by kind: {kinds}", highlight=False)
        if site_id:
            done = (
                "recorded" if summary["change_event_version"] == 1
                else f"replaced (version {summary['change_event_version']}; the same dates and "
                "method were recorded before, the history keeps that)"
            )  # fmt: skip
            console().print(
                f"change event {summary['change_event']} of {site_id} "
                f"({t0:%Y-%m-%d} -> {t1:%Y-%m-%d}) {done}", highlight=False,
            )  # fmt: skip


def _preview(path: str, img0: Any, img1: Any, mask: Any, dates: tuple[Any, Any]) -> None:
    """Write ``--preview``: the before/after figure of the pair as compared, change outlined."""
    from ..report.preview import write_change_preview

    if img0.crs is None:
        raise InputError(
            "--preview needs georeferenced images (a CRS) for its scale bar and north arrow; "
            "leave it out for plain pictures"
        )
    write_change_preview(
        path, img0.data, img1.data, mask, bands=img0.bands, crs=img0.crs.to_string(),
        transform=img0.transform, nodata=(img0.nodata, img1.nodata), dates=dates,
    )  # fmt: skip


def _check_covers(raster: Any, site: Any) -> None:
    """Refuse to record a change event for a site the images do not show (a wrong --site): its
    AOI, else its point, taken into the images' CRS, must meet their extent."""
    from rasterio.transform import array_bounds
    from rasterio.warp import transform_bounds
    from shapely.geometry import Point, box

    from ..geo import to_crs

    if raster.crs is None:
        return  # not georeferenced: nothing to check against
    west, south, east, north = array_bounds(*raster.shape, raster.transform)
    where = site.aoi if site.aoi is not None else Point(site.lon, site.lat)
    if box(west, south, east, north).intersects(to_crs(where, "EPSG:4326", raster.crs)):
        return
    w, s, e, n = transform_bounds(raster.crs, "EPSG:4326", west, south, east, north)
    raise InputError(
        f"the images cover lon {w:.4f}..{e:.4f}, lat {s:.4f}..{n:.4f}, which does not reach "
        f"site {site.id!r} at {site.lon:.4f}, {site.lat:.4f}: check --site, or the images"
    )


def _file_date(ref: str, which: str, option: str) -> Any:
    """The one acquisition date the imagery reader finds for file or folder ``ref`` (see
    :class:`~sitewatch.imagery.sources.LocalSource`), or None."""
    from ..errors import SitewatchError
    from ..imagery.sources import LocalSource

    if not Path(ref).exists():
        return None
    try:
        dates = {s.datetime for s in LocalSource(Path(ref)).scenes()}
    except SitewatchError:
        return None
    if len(dates) != 1:
        return None
    (when,) = dates
    logger.info("%s dated %s from its files (%s sets it)", which, when.date(), option)
    return when


def _compared(valid: int, total: int) -> str:
    """'the 627,000 px compared', with their share of the image when some had no data."""
    text = f"the {valid:,} px compared"
    return text if valid == total else f"{text}, {100 * valid / total:.1f}% of the image"


def _image(ref: str, site_id: str | None, bands: tuple[str, ...] | None) -> tuple[Any, Any]:
    """The raster of a file, folder or archived chip id, and the chip's date (None for files)."""
    from dataclasses import replace

    import numpy as np
    import rasterio

    from ..analysis._changeio import read_image
    from ..config import get_settings
    from ..errors import ArchiveError
    from ..imagery.archive import Archive

    if Path(ref).exists():
        return read_image(ref, bands=bands), None
    archive = Archive(get_settings().archive_path)
    found = archive.find(ref, site_id)
    where = f"site {site_id!r} of " if site_id else ""
    if not found:
        raise InputError(
            f"{ref}: no such file or folder, and no chip with that item or scene id in {where}"
            f"the archive {archive.root}; give a GeoTIFF, a folder of per-band files, or an id "
            "listed by `sitewatch imagery ls SITE`"
        )
    if len(found) > 1:
        names = ", ".join(f"{c.site_id}/{c.item_id}" for c in found)
        raise InputError(
            f"{ref} names {len(found)} archived chips ({names}): give the item id, or --site"
        )
    chip = found[0]
    if not archive.has(chip.site_id, chip.item_id):
        raise ArchiveError(
            f"archived chip {chip.site_id}/{chip.item_id} is missing or fails its checksum; "
            f"fetch it again with `sitewatch imagery fetch {chip.site_id} --overwrite`"
        )
    raster = read_image(chip.path, bands=bands)
    data = np.asarray(raster.data, dtype=np.float32)
    if raster.nodata is not None:
        data[:, (raster.data == raster.nodata).any(axis=0)] = np.nan
    if chip.mask_path.is_file():
        with rasterio.open(chip.mask_path) as ds:
            data[:, ds.read(1) != 1] = np.nan  # no data (0) and cloud (2)
    return replace(raster, data=data, nodata=None), chip.datetime


def _record(site_id: str, t0: Any, t1: Any, result: Any, feats: list[dict[str, Any]], summary: dict[str, Any]) -> tuple[str, int]:  # fmt: skip
    """Store the change event of a detection; one of the same site, dates and method is replaced
    (returns its id and version: above 1 when replaced)."""
    from dataclasses import replace

    import numpy as np
    from shapely.geometry import shape
    from shapely.ops import unary_union

    from ..catalog.models import ChangeEvent, new_id

    geom = unary_union([shape(f["geometry"]) for f in feats]) if feats else None
    mag = float(np.nanmean(result.magnitude[result.mask])) if result.mask.any() else None
    keep = ("threshold_method", "threshold", "bands", "changed_pixels", "output", "indices",
            "kinds")  # fmt: skip
    details = {k: summary[k] for k in keep} | {"patches": summary["polygons"]}
    with open_catalog() as cat, cat.transaction():
        cat.get_site(site_id)
        new = ChangeEvent(id=new_id(), site_id=site_id, before=t0, after=t1, method=result.method,
                          area_m2=float(summary["area_m2"]), geometry=geom, magnitude=mag,
                          details=details)  # fmt: skip
        # a second run on the same dates with the same method supersedes the first (its
        # threshold or area corrected); the history keeps the first
        same = [e for e in cat.list_change_events(site_id)
                if (e.before, e.after, e.method) == (t0, t1, result.method)]  # fmt: skip
        if same:
            ev = cat.update_change_event(replace(new, id=same[-1].id, version=same[-1].version))
        else:
            ev = cat.add_change_event(new)
    return str(ev.id), ev.version


def _print_eval(res: dict[str, Any], title: str) -> None:
    cols = ("precision", "recall", "F1", "IoU", "kappa")
    table = make_table("item", *cols, right=cols, title=title)
    rows = [*res["per_item"].items(), ("pooled", res["pooled"])]
    for name, s in rows:
        table.add_row(name, *(f"{s[k]:.3f}" for k in ("precision", "recall", "f1", "iou", "kappa")))
    console().print(table)
    console().print(f"mean F1 over items: {res['mean_f1']:.3f}")
    if res.get("by_kind"):
        kinds = make_table("kind of change", "confirmed px", "false px", "precision",
                           right=("confirmed px", "false px", "precision"),
                           title="detected pixels by the kind of change of their patch")  # fmt: skip
        for kind, c in res["by_kind"].items():
            kinds.add_row(kind, f"{c['tp']:,}", f"{c['fp']:,}", f"{c['precision']:.2f}")
        console().print(kinds)


def _detector(config: Any, model: Any = None) -> Callable[[Any], Any]:
    from ..analysis.change import detect_change

    def run(pair: Any) -> Any:
        err_console().print(f"  {pair.name}", highlight=False)
        if model is not None:
            from ..analysis.models import detect_with_model

            return detect_with_model(
                model, pair.before.data, pair.after.data, bands=pair.before.bands,
                opening_radius=config.opening_radius, after_covers=config.after_covers,
            ).mask  # fmt: skip
        return detect_change(
            pair.before.data, pair.after.data, bands=pair.before.bands, config=config
        ).mask

    return run


def _describe(res: dict[str, Any], config: Any, model: Any, path: str | None) -> str:
    if model is None:
        res["config"] = config.as_dict()
        return f"{config.method}/{config.threshold_method}"
    res["model"] = {"path": path, "bands": list(model.meta.bands), "threshold": model.meta.threshold,
                    "tta": model.meta.tta, "training": model.meta.training}  # fmt: skip
    return f"model {path}"


def _coregister_option(default: bool) -> Callable[[F], F]:
    """``--coregister/--no-coregister``: move each pair's second image onto its first."""
    why = (
        "on by default: the OSCD labels were drawn on registered pairs, and its per-band files "
        "are up to 1.4 px apart"
        if default
        else "these benchmarks come registered"
    )
    return click.option(
        "--coregister/--no-coregister", default=default, show_default=True,
        help=f"Move each second image onto the first by the sub-pixel shift phase correlation "
             f"measures ({why}).",
    )  # fmt: skip


@change.command("eval-oscd")
@click.argument("root", type=click.Path(exists=True, file_okay=False))
@click.option("--cities", default=None, help="Comma-separated cities (default: all labelled ones).")
@_coregister_option(True)
@_method_options
@json_option
def eval_oscd(root: str, cities: str | None, coregister: bool, as_json: bool, **kw: Any) -> None:
    """Score a method on the OSCD cities under ROOT: per city and pooled P, R, F1, IoU, kappa."""
    from ..analysis.changeeval import evaluate, iter_oscd

    config = _config(kw)
    names = _city_names(cities)
    model = _load_model(kw)
    res = evaluate(iter_oscd(root, names, coregister=coregister), _detector(config, model))
    title = _describe(res, config, model, kw.get("model"))
    if as_json:
        echo_json(res)
    else:
        _print_eval(res, f"OSCD: {title}")


@change.command("eval-pairs")
@click.argument("root", type=click.Path(exists=True, file_okay=False))
@_coregister_option(False)
@_method_options
@json_option
def eval_pairs(root: str, coregister: bool, as_json: bool, **kw: Any) -> None:
    """Score a method on labelled A/B/label pairs (LEVIR-CD, SZTAKI layouts) under ROOT."""
    from ..analysis.changeeval import evaluate, iter_pairs

    config = _config(kw)
    model = _load_model(kw)
    res = evaluate(iter_pairs(root, coregister=coregister), _detector(config, model))
    title = _describe(res, config, model, kw.get("model"))
    if as_json:
        echo_json(res)
    else:
        _print_eval(res, f"pairs: {title}")


# --- learned model ------------------------------------------------------------------------------


def _parse_widths(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    try:
        widths = tuple(int(w) for w in value.split(","))
    except ValueError:
        widths = ()
    if len(widths) < 2 or min(widths) < 1:
        raise click.BadParameter(
            f"{value!r} is not a list of channel counts; give two or more positive integers "
            "separated by commas, such as 16,32,64,128",
            ctx=ctx, param=param,
        )  # fmt: skip
    return widths


def _train_options(func: F) -> F:
    from ..analysis.models import (  # no torch: that is imported on use
        CITY_WEIGHTINGS,
        NORMALISATIONS,
        PRIORS,
    )

    opts = [
        click.option("--minutes", type=Finite(min=0, min_open=True), default=15.0, show_default=True,
                     help="Wall-clock cap on training (per fold for cv-oscd); stops cleanly."),
        click.option("--epochs", type=Finite(min=0, min_open=True), default=None,
                     help="Stop after this many epochs (crops covering the training pixels once) "
                     "if that comes before --minutes."),
        click.option("--steps", type=click.IntRange(min=0), default=600, show_default=True,
                     help="Optimiser steps (stops earlier if --minutes runs out first; "
                     "0: no step limit)."),
        click.option("--seed", type=int, default=0, show_default=True, help="Random seed."),
        click.option("--threads", type=click.IntRange(min=1), default=2, show_default=True, help="CPU threads for torch."),
        click.option("--device", default="cpu", show_default=True,
                     help="Train (and, for cv-oscd, predict) on cpu, cuda or cuda:N; the saved "
                     "weights are CPU weights either way."),
        click.option("--crop", type=click.IntRange(min=16), default=192, show_default=True, help="Training crop size in pixels."),
        click.option("--batch", type=click.IntRange(min=1), default=3, show_default=True, help="Crops per step."),
        click.option("--calibrate", is_flag=True,
                     help="Threshold at the best pooled F1 on the training cities instead of 0.5 "
                     "(biased high: the model has seen those labels)."),
        click.option("--prior", type=Choice(PRIORS), default=None,
                     help="Pair channel for the network: the unsupervised CVA magnitude on the "
                     "image-wide scale, or none (default: the model's default)."),
        click.option("--jitter", type=Finite(min=0), default=None,
                     help="Radiometric augmentation: SD of the random gain and offset given to "
                     "each crop's normalised bands per date (default: the model's default)."),
        click.option("--hard-fraction", type=Finite(0, 1), default=None,
                     help="Share of training crops centred on hard negatives (unchanged pixels "
                     "above the CVA threshold; default: the model's default)."),
        click.option("--normalisation", type=Choice(NORMALISATIONS), default=None,
                     help="Network inputs: the bands z-scored per image, alone, with each band's log "
                     "reflectance, or with NDVI, NDBI, MNDWI and bare-soil index (default: the "
                     "model's default, zscore_indices)."),
        click.option("--widths", default=None, callback=_parse_widths,
                     help="Channels per encoder level, comma-separated, the last the bottleneck "
                     "(default: the model's default, 16,32,64,128)."),
        click.option("--lr", type=Finite(min=0, min_open=True), default=None,
                     help="Peak learning rate of AdamW (default: the model's default, 0.002)."),
        click.option("--weight-decay", type=Finite(min=0), default=None,
                     help="AdamW weight decay (default: the model's default, 0.0001)."),
        click.option("--dropout", type=Finite(0, 1, max_open=True), default=None,
                     help="Dropout before the bottleneck (default: the model's default, 0.1)."),
        click.option("--change-fraction", type=Finite(0, 1), default=None,
                     help="Share of training crops centred on a changed pixel (default: the "
                     "model's default, 0.5)."),
        click.option("--ema", type=Finite(0, 1, max_open=True), default=None,
                     help="Decay of the moving average of the weights that becomes the model, "
                     "0: off (default: the model's default, 0.99)."),
        click.option("--city-weighting", type=Choice(CITY_WEIGHTINGS), default=None,
                     help="Training crops per city in proportion to its area, or equal for every "
                     "city (default: the model's default, area)."),
        click.option("--zoom", type=Finite(0, 1), default=None,
                     help="Scale augmentation: crops cut from windows up to 1 + ZOOM times larger "
                     "or smaller, resampled (default: the model's default, 0: off)."),
        click.option("--dice/--no-dice", default=None,
                     help="Add the soft Dice loss to the cross-entropy (default: the model's "
                     "default, on)."),
        click.option("--retries", type=click.IntRange(min=0), default=None,
                     help="Times a network that marks none of its training crops' changed pixels "
                     "(a dead one) is trained again from another seed, each with the whole "
                     "--minutes (default: the model's default, 1)."),
    ]  # fmt: skip
    for opt in reversed(opts):
        func = opt(func)
    return func


def _train_config(kw: dict[str, Any]) -> Any:
    from ..analysis.models import train_config

    names = ("prior", "jitter", "hard_fraction", "normalisation", "widths", "lr", "weight_decay",
             "dropout", "change_fraction", "ema", "retries", "city_weighting", "dice", "zoom")  # fmt: skip
    optional = {k: kw[k] for k in names if kw[k] is not None}
    return train_config(epochs=kw["epochs"], minutes=kw["minutes"], steps=kw["steps"] or None,
                        seed=kw["seed"], threads=kw["threads"], device=kw["device"], crop=kw["crop"],
                        batch=kw["batch"], calibrate=kw["calibrate"], **optional)  # fmt: skip


def _city_names(cities: str | None) -> list[str] | None:
    """The cities of ``--cities a,b`` (None: all labelled ones); an empty list is refused."""
    if cities is None:
        return None
    names = [c.strip() for c in cities.split(",") if c.strip()]
    if not names:
        raise click.BadParameter(
            f"no city in {cities!r}; give names like paris,mumbai or leave --cities out for all",
            param_hint="--cities",
        )
    return names


def _load_cities(root: str, cities: str | None, coregister: bool) -> list[Any]:
    from ..analysis.changeeval import iter_oscd

    names = _city_names(cities)
    err_console().print("loading OSCD cities", highlight=False)
    return list(iter_oscd(root, names, coregister=coregister))


class _DaskTasks:
    """Progress of the chunked (dask) change methods on a rich bar: the tasks done of each
    computation ("pass"), as a method computes its statistics, its blocks row by row and, for
    IR-MAD, every iteration in turn. A context manager (a dask local-scheduler callback)."""

    def __init__(self, bar: Any, task: Any) -> None:
        from dask.callbacks import Callback

        self.bar, self.task, self.passes, self.done, self.total = bar, task, 0, 0, 0
        self.callback = Callback(start_state=self._start, posttask=self._post)  # type: ignore[no-untyped-call]

    def _start(self, dsk: Any, state: dict[str, Any]) -> None:
        self.passes += 1
        self.done = 0
        self.total = max(1, sum(len(state[k]) for k in ("ready", "waiting", "running")))
        self.bar.update(self.task, completed=0, total=self.total, msg=f"pass {self.passes}")

    def _post(self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
        self.done += 1
        self.bar.update(self.task, completed=self.done, msg=f"pass {self.passes}")

    def __enter__(self) -> _DaskTasks:
        self.callback.__enter__()  # type: ignore[no-untyped-call]
        return self

    def __exit__(self, *exc: object) -> None:
        self.callback.__exit__(*exc)  # type: ignore[no-untyped-call]


def _bar(enabled: bool) -> Any:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
        TextColumn("{task.fields[msg]}"), console=err_console(), transient=True, disable=not enabled,
    )  # fmt: skip


@change.command("train-oscd")
@click.argument("root", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False), required=True,
              help="Weights file to write (its description goes to OUTPUT.json).")  # fmt: skip
@click.option("--cities", default=None, help="Comma-separated cities (default: all labelled ones).")
@_coregister_option(True)
@_train_options
@json_option
def train_oscd(root: str, output: str, cities: str | None, coregister: bool, as_json: bool, **kw: Any) -> None:  # fmt: skip
    """Train the learned change model (Siamese U-Net, CPU) on the OSCD cities under ROOT."""
    from ..analysis.models import train_change_model

    config = _train_config(kw)
    pairs = _load_cities(root, cities, coregister)
    with _bar(True) as bar:
        task = bar.add_task("training", total=1.0, msg="")
        model = train_change_model(
            pairs, config, progress=lambda f, m: bar.update(task, completed=f, msg=m)
        )
    meta_file = model.save(output)
    out = {"output": str(output), "description": str(meta_file), "bands": list(model.meta.bands),
           "training": model.meta.training}  # fmt: skip
    if as_json:
        echo_json(out)
    else:
        t = model.meta.training
        console().print(
            f"trained on {len(pairs)} cities: {t['steps']} steps ({t['epochs_done']} epochs) in "
            f"{t['seconds']:.0f} s, loss {t['final_loss']} -> {output}, {meta_file}"
        )


@change.command("cv-oscd")
@click.argument("root", type=click.Path(exists=True, file_okay=False))
@click.option("--folds", type=click.IntRange(min=2), default=5, show_default=True,
              help="Folds: fold i tests on the sorted cities i, i+folds, ... and trains on the rest.")  # fmt: skip
@click.option("--cities", default=None, help="Comma-separated cities (default: all labelled ones).")
@_coregister_option(True)
@_AFTER_COVER
@_train_options
@json_option
def cv_oscd(root: str, folds: int, cities: str | None, coregister: bool, after_covers: str, as_json: bool, **kw: Any) -> None:  # fmt: skip
    """Leave-cities-out cross-validation of the learned model on OSCD: per city and pooled scores."""
    from ..analysis.landcover import parse_covers
    from ..analysis.models import cross_validate

    config = _train_config(kw)
    covers = parse_covers(after_covers)
    pairs = _load_cities(root, cities, coregister)
    with _bar(True) as bar:
        tasks: dict[int, Any] = {}

        def progress(i: int, frac: float, msg: str) -> None:
            if i not in tasks:
                tasks[i] = bar.add_task(f"fold {i + 1}/{folds}", total=1.0, msg="")
            bar.update(tasks[i], completed=frac, msg=msg)

        res = cross_validate(pairs, folds, config, progress=progress, after_covers=covers)
    if as_json:
        echo_json(res)
    else:
        _print_eval(res, f"OSCD leave-cities-out, {folds} folds")
