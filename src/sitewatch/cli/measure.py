"""``sitewatch measure``: heights from shadows, geodesic distances and areas, volumes, tunnel lengths."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import numpy as np
import shapely
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

from ..errors import ImageryError, InputError, gdal_text
from ..types import FEATURE_KINDS, MEASUREMENT_KINDS, MeasurementKind
from ._geoinputs import catalog_feature as _catalog_feature
from ._geoinputs import check_site, parse_lonlat, point_or_site, read_geofile, site_features
from .options import (
    Choice,
    Finite,
    console,
    echo_json,
    err_console,
    json_option,
    open_catalog,
    parse_pairs,
)
from .options import table as make_table

__all__ = ["measure"]

logger = logging.getLogger(__name__)


# --- shared parsing helpers (also used by `terrain` and `range`) -------------------------------


def _polygon_arg(text: str) -> BaseGeometry:
    """A lon/lat polygon from a GeoJSON/vector file (first polygon feature) or WKT."""
    from ..geo import to_crs

    if Path(text).exists():
        geoms, _, crs = read_geofile(text)
        polys = [g for g in geoms if g is not None and g.geom_type in ("Polygon", "MultiPolygon")]
        if not polys:
            raise InputError(f"{text} holds no polygon")
        g = polys[0]
        return g if crs.equals(CRS.from_epsg(4326)) else to_crs(g, crs, "EPSG:4326")
    try:
        return shapely.from_wkt(text)
    except shapely.errors.GEOSException:
        raise InputError(f"--polygon: neither a file nor WKT: {text[:60]!r}") from None


def _id_of(props: dict[str, Any]) -> str | None:
    v = props.get("id")
    return None if v is None else str(v)


# --- sun and view angles for an image ---------------------------------------------------------


def _stac_for_image(image: Path) -> dict[str, Any] | None:
    """A STAC item beside the image that lists it as an asset (or named after it)."""
    direct = [
        image.with_suffix(".json"),
        Path(str(image) + ".json"),
        image.parent / f"{image.stem}_item.json",
    ]
    candidates = [c for c in direct if c.exists()]
    for folder in (image.parent, image.parent.parent):
        try:
            candidates += sorted(folder.glob("*.json"))[:200]
        except OSError:
            continue
    target = image.resolve()
    for c in candidates:
        try:
            doc = json.loads(c.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            continue
        if not isinstance(doc, dict) or doc.get("type") != "Feature" or "properties" not in doc:
            continue
        if c in direct:
            return doc
        for asset in (doc.get("assets") or {}).values():
            href = str(asset.get("href", ""))
            if href and (c.parent / href).resolve() == target:
                return doc
    return None


def _sun_from_tags(tags: dict[str, str]) -> tuple[float, float] | None:
    low = {k.lower(): v for k, v in tags.items()}
    for az_key, el_key in (
        ("view:sun_azimuth", "view:sun_elevation"),
        ("sun_azimuth", "sun_elevation"),
    ):
        if az_key in low and el_key in low:
            try:
                return float(low[az_key]), float(low[el_key])
            except ValueError:
                return None
    return None


def _image_sun(
    image: Path, tags: dict[str, str]
) -> tuple[tuple[float, float], str, dict[str, Any] | None]:
    item = _stac_for_image(image)
    if item is not None:
        from ..analysis.sun import sun_from_stac

        try:
            sp = sun_from_stac(item)
            return (sp.azimuth, sp.elevation), f"stac item {item.get('id')}", item
        except ImageryError:
            pass
    sun = _sun_from_tags(tags)
    if sun is not None:
        return sun, "image tags", item
    raise InputError(
        f"no sun angles for {image.name}: the image has no STAC item or sun tags; give "
        "--sun-azimuth and --sun-elevation, --datetime (UTC acquisition time) or --metadata "
        "(Landsat MTL/ANG, Sentinel-2 MTD, STAC item)"
    )


def _image_source(image: Path, item: dict[str, Any] | None, tags: dict[str, str]) -> dict[str, Any]:
    """Where a measurement was read: the image file, and its scene and acquisition time when a
    STAC item (or the tags of an archived chip) say them."""
    out: dict[str, Any] = {"image": image.name}
    props = (item or {}).get("properties") or {}
    scene = props.get("sitewatch:scene") or (item or {}).get("id") or tags.get("scene_id")
    when = props.get("datetime") or tags.get("datetime")
    if scene:
        out["scene_id"] = str(scene)
    if when:
        out["acquired"] = str(when)
    return out


def _check_sun(
    azimuth: float | None,
    elevation: float | None,
    when: str | None,
    metadata: Path | None,
    *,
    required: bool,
) -> None:
    """The sun given one way at most (exactly one when ``required``): its two angles, the UTC
    acquisition time or the scene's metadata file."""
    if (azimuth is None) != (elevation is None):
        raise InputError("give both --sun-azimuth and --sun-elevation, or neither")
    given = sum(x is not None for x in (azimuth, when, metadata))
    if given > 1 or (required and not given):
        raise InputError(
            "give the sun one way: --sun-azimuth/--sun-elevation, --datetime (the UTC acquisition "
            "time) or --metadata (the scene's metadata file)"
        )


_METADATA = click.option(
    "--metadata",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Read the sun from Landsat MTL/ANG, Sentinel-2 MTD or a STAC item.",
)


def _acquisition_time(when: str) -> datetime:
    """The UTC time of ``--datetime``; a date alone is refused (it would mean midnight)."""
    try:
        stamp = datetime.fromisoformat(when.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(
            f"--datetime: not an ISO 8601 time: {when!r} (e.g. 2021-03-04T02:15:00Z)"
        ) from None
    if len(when.strip()) <= 10:  # a date alone would silently mean midnight UTC
        raise InputError(
            f"--datetime {when!r} is a date without a time: the sun moves 15 degrees an "
            "hour, so give the acquisition time in UTC (e.g. 2021-03-04T02:15:00Z, from the "
            "scene metadata) or the sun angles with --sun-azimuth/--sun-elevation"
        )
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def _site_observation(site_id: str, observation_id: str) -> None:
    """Refuse an observation that is not one of ``site_id``'s."""
    with open_catalog() as cat:
        cat.get_site(site_id)
        if observation_id not in {o.id for o in cat.list_observations(site_id)}:
            raise InputError(
                f"{observation_id!r} is no observation of site {site_id!r} "
                f"(`sitewatch observations list {site_id}` lists them)"
            )


def _scene_observation(site_id: str, scene_id: str) -> str | None:
    """The site's observation of ``scene_id`` (the newest if several), if any."""
    with open_catalog() as cat:
        found = [o for o in cat.list_observations(site_id) if o.scene_id == scene_id]
    return found[-1].id if found else None


# --- reading the image ------------------------------------------------------------------------


def _read_brightness(path: Path, band: int | None) -> tuple[np.ndarray, Any, CRS, dict[str, str]]:
    import rasterio
    from rasterio.errors import RasterioIOError
    from rasterio.vrt import WarpedVRT

    from ..geo import local_utm_crs, map_scale

    try:
        ds = rasterio.open(path)
    except RasterioIOError as exc:
        raise ImageryError(f"cannot open image {path}: {gdal_text(exc)}") from exc
    with ds:
        if ds.crs is None:
            raise ImageryError(
                f"image {path} has no CRS; heights need an orthorectified, georeferenced image"
            )
        tags = dict(ds.tags())
        src: Any = ds
        vrt = None
        crs = CRS.from_user_input(ds.crs)
        centre = ds.xy(ds.height / 2, ds.width / 2)
        scale = map_scale(crs, *centre)
        if not crs.is_projected or scale.distorted:
            lon, lat = ds.lnglat()
            dst = local_utm_crs(lon, lat)
            why = (
                "geographic coordinates"
                if not crs.is_projected
                else f"{crs.to_string()}, with {scale.parallel:.3f} grid units to the ground "
                f"metre east and {scale.meridional:.3f} north here"
            )
            logger.warning("image %s is in %s: warping it to %s", path.name, why, dst.to_string())
            vrt = WarpedVRT(ds, crs=dst, resampling=rasterio.enums.Resampling.bilinear)
            src = vrt
        try:
            if band is not None:
                if not 1 <= band <= src.count:
                    raise InputError(f"--band {band}: the image has bands 1..{src.count}")
                bands = [band]
            else:
                bands = list(range(1, min(src.count, 3) + 1))
            data = src.read(bands, masked=True).astype(np.float64)
            img = np.ma.filled(data.mean(axis=0), np.nan)
            transform, crs = src.transform, CRS.from_user_input(src.crs)
        finally:
            if vrt is not None:
                vrt.close()
    return np.asarray(img), transform, crs, tags


def store_measurements(
    site_id: str, rows: Sequence[dict[str, Any]], kind: MeasurementKind, *, strict: bool = False
) -> int:
    """Store measurement rows (value, uncertainty, feature id) on a catalog site, all in one
    transaction; returns the count.

    A row's feature must be a feature of the site. ``strict`` (a feature the analyst named)
    refuses another site's or an unknown feature; otherwise (ids read from a file, which may
    hold features never catalogued) the measurement is stored on the site alone, with a warning.
    """
    from ..catalog.models import Measurement, new_id, utcnow
    from ..errors import NotFound

    stored: list[str] = []
    with open_catalog() as cat, cat.transaction():
        cat.get_site(site_id)
        for r in rows:
            if r.get("value") is None:
                continue
            fid = r.get("feature_id")
            if fid is not None:
                try:
                    owner: str | None = cat.get_feature(fid).site_id
                except NotFound:
                    owner = None
                if owner != site_id:
                    where = "no catalog feature" if owner is None else f"a feature of {owner!r}"
                    if strict:
                        raise InputError(
                            f"feature {fid!r} is {where}, not of site {site_id!r} "
                            f"(`sitewatch features list {site_id}` lists its features)"
                        )
                    logger.warning(
                        "%r is %s, not of site %s: the measurement is stored on the site only",
                        fid,
                        where,
                        site_id,
                    )
                    fid = None
            m = cat.add_measurement(
                Measurement(
                    id=new_id(),
                    site_id=site_id,
                    kind=kind,
                    value=float(r["value"]),
                    unit=r["unit"],
                    uncertainty=r.get("uncertainty"),
                    feature_id=fid,
                    observation_id=r.get("observation_id"),
                    method=r.get("method", ""),
                    inputs=r.get("inputs", {}),
                    analyst=cat.actor,
                    measured_at=utcnow(),
                )
            )
            stored.append(m.id)
    report_changes(site_id, stored)
    return len(stored)


def report_changes(site_id: str, measurement_ids: Sequence[str]) -> None:
    """Say on stderr which of the measurements just stored show their feature grown or shrunk
    beyond two sigma since the image date before (what the monitor's ``measured_change`` rule
    alerts on)."""
    from ..catalog.trends import measurement_steps
    from ..report.exports import change_text

    if not measurement_ids:
        return
    with open_catalog() as cat:
        names = {f.id: f.name or f.id for f in cat.query_features(site_id=site_id)}
        steps = measurement_steps(
            cat.list_measurements(site_id=site_id), cat.list_observations(site_id)
        )
    new = set(measurement_ids)
    for st in steps:
        if st["measurements"][1] in new and st["verdict"] in ("grew", "shrank"):
            what = names.get(st["feature_id"], st["feature_id"]) if st["feature_id"] else "site"
            err_console().print(
                f"{change_text(st, what)} since {st['first'][0]} (the monitor raises a "
                "measured_change alert)",
                markup=False,
                highlight=False,
            )


def _target(site_id: str | None, feature_id: str | None) -> str | None:
    """The site a measurement is stored on: ``--site``, or the site of ``--feature`` (which must
    then be one of its features)."""
    if feature_id is None:
        return site_id
    return _catalog_feature(feature_id, site_id).site_id


def _store_one(
    site_id: str | None, feature_id: str | None, q: dict[str, Any], kind: MeasurementKind
) -> None:
    """Store one result on ``site_id`` (resolved by :func:`_target`), if any."""
    if site_id is not None:
        store_measurements(site_id, [{**q, "feature_id": feature_id}], kind, strict=True)
        where = f"feature {feature_id} of site {site_id}" if feature_id else f"site {site_id}"
        err_console().print(f"stored the {kind} on {where}")


def _feature_height(feature_id: str) -> tuple[float, float, dict[str, Any]] | None:
    """The height the catalog knows of a mapped feature (:func:`known_height`)."""
    from ..catalog.models import known_height

    with open_catalog() as cat:
        feat = cat.get_feature(feature_id)
        return known_height(feat, cat.list_measurements(feature_id=feature_id))


def _footprint(polygon: str | None, feature_id: str | None, site_id: str | None) -> BaseGeometry:
    """The polygon measured: ``--polygon``, else the catalog feature's own geometry."""
    if polygon is not None:
        return _polygon_arg(polygon)
    if feature_id is None:
        raise InputError(
            "give --polygon (a vector file or WKT), or --feature naming a mapped polygon"
        )
    feat = _catalog_feature(feature_id, site_id)
    if feat.geometry.geom_type not in ("Polygon", "MultiPolygon"):
        raise InputError(
            f"feature {feature_id!r} is a {feat.geometry.geom_type.lower()}, not a polygon: "
            "give the footprint with --polygon"
        )
    return feat.geometry


# --- commands -----------------------------------------------------------------------------------


@click.group()
def measure() -> None:
    """Measure heights from shadows, distances, areas, volumes and tunnel lengths."""


_UNITS = {"area": "m2", "volume": "m3", "azimuth": "deg", "defilade": "deg"}


@measure.command("record")
@click.argument("site_id")
@click.option("--kind", type=Choice(MEASUREMENT_KINDS), required=True)
@click.option("--value", type=Finite(), required=True)
@click.option(
    "--unit",
    help="Default: m, m2 for an area, m3 for a volume, deg for an azimuth or a defilade "
    "(the horizon angle towards the threat).",
)
@click.option("--uncertainty", type=Finite(0), help="One standard deviation, in the unit.")
@click.option("--feature", "feature_id", help="The feature measured (features list).")
@click.option("--observation", "observation_id", help="The observation it was read from.")
@click.option("--method", default="manual", show_default=True, help="e.g. 'reported (CSIS 2018)'.")
@click.option("--input", "inputs", multiple=True, help="An input, KEY=VALUE (e.g. source=csis).")
@json_option
def record(
    site_id: str,
    kind: str,
    value: float,
    unit: str | None,
    uncertainty: float | None,
    feature_id: str | None,
    observation_id: str | None,
    method: str,
    inputs: Sequence[str],
    as_json: bool,
) -> None:
    """Record a measurement made elsewhere (by hand, in a report) for SITE_ID."""
    from ..catalog._codec import jsonable
    from ..catalog.models import Measurement, new_id, utcnow

    with open_catalog() as cat:  # the catalog refuses another site's feature or observation
        cat.get_site(site_id)
        stored = cat.add_measurement(
            Measurement(
                id=new_id(),
                site_id=site_id,
                kind=kind,  # type: ignore[arg-type]
                value=value,
                unit=unit or _UNITS.get(kind, "m"),
                uncertainty=uncertainty,
                feature_id=feature_id,
                observation_id=observation_id,
                method=method,
                inputs=dict(parse_pairs(inputs, "--input", "source=csis-2018")),
                analyst=cat.actor,
                measured_at=utcnow(),
            )
        )
    if as_json:
        echo_json(jsonable(stored))
    else:
        sd = f" ± {stored.uncertainty:g}" if stored.uncertainty is not None else ""
        console().print(
            f"recorded {stored.kind} {stored.value:g}{sd} {stored.unit} for site {site_id} "
            f"([dim]{stored.id}[/])"
        )
    report_changes(site_id, [stored.id])


@measure.command("list")
@click.argument("site_id")
@click.option("--kind", "kinds", type=Choice(MEASUREMENT_KINDS), multiple=True)
@click.option("--feature", "feature_id", help="Only the measurements of this feature.")
@json_option
def list_(site_id: str, kinds: Sequence[str], feature_id: str | None, as_json: bool) -> None:
    """Measurements of SITE_ID, oldest first (filtered by --kind, --feature)."""
    from ..catalog._codec import jsonable
    from ..report.exports import image_dates, value_parts

    with open_catalog() as cat:
        cat.get_site(site_id)
        if feature_id is not None:
            _catalog_feature(feature_id, site_id)
        found = [
            m
            for m in cat.list_measurements(site_id=site_id, feature_id=feature_id)
            if not kinds or m.kind in kinds
        ]
        names = {f.id: f.name or f.kind for f in cat.query_features(site_id=site_id)}
        dates = image_dates(found, cat.list_observations(site_id))
    if as_json:
        echo_json([jsonable(m) for m in found])
        return
    table = make_table(
        "id", "kind", "value", "+/-", "unit", "of", "image date", "method", "analyst",
        "measured (UTC)", right=("value", "+/-"), whole=("id",),
    )  # fmt: skip
    for m in found:
        shown, sigma = value_parts(m.value, m.uncertainty)  # to the uncertainty's digits
        table.add_row(
            m.id,
            m.kind,
            shown,
            sigma,
            m.unit,
            names.get(m.feature_id or "", "") or ("" if m.feature_id is None else m.feature_id),
            dates[m.id],
            m.method,
            m.analyst,
            m.measured_at.strftime("%Y-%m-%d %H:%M") if m.measured_at else "",
        )
    console().print(table)
    err_console().print(f"{len(found)} measurement(s)")


@measure.command("delete")
@click.argument("measurement_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--expect-version", type=int)
def delete(measurement_id: str, yes: bool, expect_version: int | None) -> None:
    """Retract a wrong measurement (the history keeps it); record the corrected one anew."""
    with open_catalog() as cat:
        m = cat.get_measurement(measurement_id)
        if not yes:
            click.confirm(
                f"delete the {m.kind} {m.value:g} {m.unit} of site {m.site_id}?", abort=True
            )
        cat.delete_measurement(measurement_id, version=expect_version)
    console().print(f"deleted measurement [bold]{measurement_id}[/]")


@measure.command("heights")
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--footprints",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="GeoJSON (or any vector file) of footprint polygons, in any CRS (default: the "
    "polygon features of --site).",
)
@click.option(
    "--sun-azimuth", type=Finite(), help="Sun azimuth, degrees clockwise from true north."
)
@click.option(
    "--sun-elevation",
    type=Finite(-90, 90),
    help="Sun elevation, degrees above the horizon (at or below 0: every row null, "
    "reason sun_below_horizon).",
)
@click.option(
    "--datetime", "when", help="UTC acquisition time (ISO 8601): sun computed per footprint."
)
@_METADATA
@click.option(
    "--dem",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="DEM for the terrain-slope correction (any CRS; reprojected onto the image).",
)
@click.option("--band", type=int, help="Band to use (default: mean of the first three).")
@click.option(
    "--off-nadir",
    type=Finite(0, 90, max_open=True),
    help="View off-nadir angle, degrees (default: from the STAC item).",
)
@click.option("--view-azimuth", type=Finite(), help="STAC view:azimuth, degrees.")
@click.option(
    "--max-height",
    type=Finite(min=0, min_open=True),
    default=150.0,
    show_default=True,
    help="Longest shadow searched, as a height (m).",
)
@click.option(
    "--elevation-sigma",
    type=Finite(min=0),
    default=0.1,
    show_default=True,
    help="Sun elevation error (deg).",
)
@click.option(
    "--dem-sigma",
    type=Finite(min=0),
    default=1.0,
    show_default=True,
    help="DEM error of a height difference (m).",
)
@click.option(
    "--site",
    "site_id",
    help="Store the heights as measurements of this catalog site (on its features); without "
    "--footprints, measure the site's mapped polygons.",
)
@click.option(
    "--kind",
    "kinds",
    type=Choice(FEATURE_KINDS),
    multiple=True,
    help="With --site and no --footprints: only features of this kind (repeatable).",
)
@click.option(
    "--observation",
    "observation_id",
    help="With --site: the observation of the site this image is; the heights are linked to "
    "it (default: the site's observation of the image's scene, when its STAC item names one).",
)
@json_option
def heights(
    image: Path,
    footprints: Path | None,
    sun_azimuth: float | None,
    sun_elevation: float | None,
    when: str | None,
    metadata: Path | None,
    dem: Path | None,
    band: int | None,
    off_nadir: float | None,
    view_azimuth: float | None,
    max_height: float,
    elevation_sigma: float,
    dem_sigma: float,
    site_id: str | None,
    kinds: Sequence[str],
    observation_id: str | None,
    as_json: bool,
) -> None:
    """Heights of the objects on FOOTPRINTS (or a site's mapped polygons) from their shadows in
    IMAGE.

    Stored heights (--site) name the image, and its scene and acquisition time when a STAC
    item describes it, so that each can be traced to the picture it was read from."""
    from rich.progress import Progress

    from ..analysis.mensuration import ViewGeometry, berm_crest, height_from_shadow
    from ..analysis.sun import read_sun_angles, sun_position
    from ..analysis.terrain import dem_on_grid, read_dem
    from ..geo import to_crs

    _check_sun(sun_azimuth, sun_elevation, when, metadata, required=False)  # else the image's
    if footprints is None and site_id is None:
        raise InputError("give --footprints (a vector file), or --site to measure its features")
    if observation_id is not None:
        if site_id is None:
            raise InputError("--observation goes with --site (the heights are stored on it)")
        _site_observation(site_id, observation_id)
    if kinds and footprints is not None:
        raise InputError("--kind picks features of --site; with --footprints, edit the file")
    img, transform, crs, tags = _read_brightness(image, band)
    if footprints is not None:
        check_site(site_id)
        geoms, props, fcrs = read_geofile(footprints)
    else:
        assert site_id is not None
        geoms, props, fcrs = site_features(site_id, kinds, polygons=True)
    item: dict[str, Any] | None = None
    per_feature_sun: list[tuple[float, float]] | None = None
    sun_source = "flags"
    if sun_azimuth is not None and sun_elevation is not None:
        sun: tuple[float, float] = (sun_azimuth, sun_elevation)
    elif metadata is not None:
        sp = read_sun_angles(metadata)
        sun, sun_source = (sp.azimuth, sp.elevation), f"metadata {metadata.name}"
    elif when is not None:
        stamp = _acquisition_time(when)
        per_feature_sun = []
        for g in geoms:
            c = to_crs(g, fcrs, "EPSG:4326").centroid if g is not None else None
            if c is None:
                per_feature_sun.append((0.0, 0.0))
                continue
            sp = sun_position(c.x, c.y, stamp, refraction=True)
            per_feature_sun.append((sp.azimuth, sp.elevation))
        sun, sun_source = per_feature_sun[0] if per_feature_sun else (0.0, 0.0), "computed"
    else:
        sun, sun_source, item = _image_sun(image, tags)
    view = None
    if off_nadir is None and item is not None:
        off_nadir = (item.get("properties") or {}).get("view:off_nadir")
        view_azimuth = (
            view_azimuth
            if view_azimuth is not None
            else (item.get("properties") or {}).get("view:azimuth")
        )
    if off_nadir:
        if view_azimuth is None:
            raise InputError("--off-nadir needs --view-azimuth (STAC view:azimuth)")
        view = ViewGeometry(float(off_nadir), float(view_azimuth))
    dem_grid = None
    if dem is not None:
        dem_grid = dem_on_grid(read_dem(dem), crs, transform, img.shape)
    polys: list[BaseGeometry | None] = []
    for g in geoms:
        if g is None or g.geom_type not in ("Polygon", "MultiPolygon"):
            polys.append(None)
            continue
        g2 = g if fcrs.equals(crs) else to_crs(g, fcrs, crs)
        if g2.geom_type == "MultiPolygon":
            g2 = max(g2.geoms, key=lambda p: p.area)
        polys.append(g2)
    # flat surfaces (pads, roads: ``profile: flat`` or ``height_m: 0``) do not block shadows
    valid = [
        p
        for p, pr in zip(polys, props, strict=True)
        if p is not None and pr.get("profile") != "flat" and pr.get("height_m") != 0
    ]
    tree = shapely.STRtree(valid) if valid else None
    rows: list[dict[str, Any]] = []
    with Progress(console=err_console(), transient=True, disable=len(polys) < 20) as prog:
        task = prog.add_task("measuring shadows", total=len(polys))
        for i, fp in enumerate(polys):
            ident = _id_of(props[i])
            az, el = per_feature_sun[i] if per_feature_sun is not None else sun
            if fp is None:
                rows.append(
                    {
                        "index": i,
                        "id": ident,
                        "height_m": None,
                        "uncertainty_m": None,
                        "shadow_length_m": None,
                        "method": "shadow",
                        "reason": "not_a_polygon",
                        "detail": "the feature has no polygon geometry",
                    }
                )
                prog.advance(task)
                continue
            others: list[BaseGeometry] = []
            if tree is not None and el > 0:
                reach = fp.buffer(max_height / math.tan(math.radians(el)))
                others = [valid[j] for j in tree.query(reach) if valid[j] is not fp]
            caster = None
            crest = props[i].get("crest_width_m") or props[i].get("crest_m")
            if (
                crest is not None
                and str(props[i].get("profile", props[i].get("kind", ""))) == "berm"
            ):
                caster = berm_crest(fp, float(crest))
            res = height_from_shadow(
                img,
                transform,
                fp,
                sun_azimuth=az,
                sun_elevation=el,
                crs=crs,
                others=others,
                dem=dem_grid,
                view=view,
                caster=caster,
                index=i,
                ident=ident,
                max_height_m=max_height,
                elevation_sigma_deg=elevation_sigma,
                dem_sigma_m=dem_sigma,
            )
            row = res.to_dict()
            row["inputs"]["sun_source"] = sun_source
            rows.append(row)
            prog.advance(task)
    if site_id:
        if item is None:
            item = _stac_for_image(image)
        source = _image_source(image, item, tags)
        if observation_id is None and source.get("scene_id"):
            observation_id = _scene_observation(site_id, str(source["scene_id"]))
        stored = store_measurements(
            site_id,
            [
                {
                    "value": r["height_m"],
                    "uncertainty": r["uncertainty_m"],
                    "unit": "m",
                    "method": r["method"],
                    "feature_id": r["id"],
                    "observation_id": observation_id,
                    "inputs": {**r.get("inputs", {}), **source},
                }
                for r in rows
            ],
            "height",
        )
        linked = f", linked to observation {observation_id}" if observation_id else ""
        err_console().print(f"stored {stored} height(s) on site {site_id}{linked}")
    if as_json:
        echo_json(rows)
        return
    table = make_table(
        "#", "id", "height (m)", "+/- (m)", "shadow (m)", "method / reason",
        right=("#", "height (m)", "+/- (m)", "shadow (m)"),
    )  # fmt: skip
    for r in rows:
        h = r["height_m"]
        table.add_row(
            str(r["index"]),
            str(r["id"] or ""),
            "" if h is None else f"{h:.2f}",
            "" if h is None else f"{r['uncertainty_m']:.2f}",
            "" if h is None else f"{r['shadow_length_m']:.2f}",
            r["method"] if h is not None else f"{r['reason']}: {r.get('detail', '')}",
        )
    console().print(table)


def _site_opts(func: Any) -> Any:
    func = click.option(
        "--feature",
        "feature_id",
        help="Catalog feature measured: the result is stored on it (and on its site).",
    )(func)
    return click.option(
        "--site", "site_id", help="Store the result as a measurement of this site."
    )(func)


@measure.command("shadow")
@click.option("--base", required=True, help="Base of the object, LON,LAT.")
@click.option("--tip", required=True, help="Tip of its shadow, LON,LAT.")
@click.option("--sun-azimuth", type=Finite(), help="Sun azimuth (deg from true north).")
@click.option(
    "--sun-elevation", type=Finite(0, 90, min_open=True, max_open=True), help="Sun elevation (deg)."
)
@click.option(
    "--datetime", "when", help="UTC acquisition time (ISO 8601): the sun computed at the base."
)
@_METADATA
@click.option(
    "--position-sigma", type=Finite(min=0), default=0.5, show_default=True, help="Point error (m)."
)
@click.option("--elevation-sigma", type=Finite(min=0), default=0.1, show_default=True)
@_site_opts
@click.option(
    "--observation",
    "observation_id",
    help="With --site or --feature: the observation of the image measured (its date dates the "
    "height).",
)
@json_option
def shadow(
    base: str,
    tip: str,
    sun_azimuth: float | None,
    sun_elevation: float | None,
    when: str | None,
    metadata: Path | None,
    position_sigma: float,
    elevation_sigma: float,
    site_id: str | None,
    feature_id: str | None,
    observation_id: str | None,
    as_json: bool,
) -> None:
    """Height from a base point and a shadow tip picked by hand; the sun from its angles, the
    acquisition time or the scene metadata. With --site or --feature the height is stored."""
    from ..analysis.mensuration import height_from_shadow_tip
    from ..analysis.sun import read_sun_angles, sun_position

    _check_sun(sun_azimuth, sun_elevation, when, metadata, required=True)
    b, t = parse_lonlat(base, "--base"), parse_lonlat(tip, "--tip")
    site_id = _target(site_id, feature_id)
    if observation_id is not None:
        if site_id is None:
            raise InputError("--observation goes with --site or --feature (the height is stored)")
        _site_observation(site_id, observation_id)
    acquired = None
    if sun_azimuth is not None and sun_elevation is not None:
        sun, source = (sun_azimuth, sun_elevation), "given"
    elif metadata is not None:
        sp = read_sun_angles(metadata)
        sun, source, acquired = (sp.azimuth, sp.elevation), f"metadata {metadata.name}", sp.datetime
    else:
        assert when is not None
        acquired = _acquisition_time(when)
        sp = sun_position(*b, acquired, refraction=True)
        sun, source = (sp.azimuth, sp.elevation), "computed"
    res = height_from_shadow_tip(
        b, t, sun_azimuth=sun[0], sun_elevation=sun[1], position_sigma_m=position_sigma,
        elevation_sigma_deg=elevation_sigma,
    )  # fmt: skip
    row = res.to_dict()
    row["inputs"] = {**row.get("inputs", {}), "sun_source": source, "base": list(b), "tip": list(t)}
    if acquired is not None:
        row["inputs"]["acquired"] = acquired.isoformat()
    if res.height_m is not None and site_id is not None:
        _store_one(site_id, feature_id, {
            "value": res.height_m, "uncertainty": res.uncertainty_m, "unit": "m",
            "method": res.method, "inputs": row["inputs"], "observation_id": observation_id,
        }, "height")  # fmt: skip
    if as_json:
        echo_json(row)
    elif res.height_m is None:
        console().print(f"no height: {res.reason}: {res.detail}")
    else:
        assert res.uncertainty_m is not None and res.shadow_length_m is not None
        console().print(
            f"height {res.height_m:.2f} ± {res.uncertainty_m:.2f} m (shadow "
            f"{res.shadow_length_m:.2f} m; sun at {sun[0]:.1f}° azimuth, {sun[1]:.1f}° elevation, "
            f"{source})", highlight=False,
        )  # fmt: skip


def _emit(q: dict[str, Any], as_json: bool, label: str) -> None:
    if as_json:
        echo_json(q)
    else:
        from ..report.exports import value_parts

        def text(value: float, sigma: float | None, unit: str) -> str:
            shown, err = value_parts(value, sigma)  # no "± 0" when no error was given
            return f"{shown} ± {err} {unit}" if err else f"{shown} {unit}"

        value, sigma, unit = q["value"], q.get("uncertainty"), q["unit"]
        said = text(value, sigma, unit)
        if unit == "m" and value >= 10_000:
            said += f" ({text(value / 1000, sigma and sigma / 1000, 'km')})"
        console().print(f"{label}: {said} ({q['method']})", highlight=False)


@measure.command("distance")
@click.argument("points", nargs=-1, required=True)
@click.option(
    "--position-sigma",
    type=Finite(min=0),
    default=0.0,
    show_default=True,
    help="Error of each point (m).",
)
@_site_opts
@json_option
def distance(
    points: tuple[str, ...],
    position_sigma: float,
    site_id: str | None,
    feature_id: str | None,
    as_json: bool,
) -> None:
    """Geodesic length of the path through POINTS (each LON,LAT or a catalog site id)."""
    from ..analysis.mensuration import geodesic_path_length

    pts = [point_or_site(p, f"point {i + 1}")[0] for i, p in enumerate(points)]
    site_id = _target(site_id, feature_id)
    q = geodesic_path_length(pts, position_sigma_m=position_sigma).to_dict()
    _store_one(site_id, feature_id, q, "distance")
    _emit(q, as_json, "distance")


@measure.command("area")
@click.option(
    "--polygon",
    "polygon",
    help="GeoJSON/vector file (first polygon) or WKT, lon/lat (default: the --feature's own).",
)
@click.option(
    "--position-sigma",
    type=Finite(min=0),
    default=0.0,
    show_default=True,
    help="Error of each vertex (m).",
)
@_site_opts
@json_option
def area(
    polygon: str | None,
    position_sigma: float,
    site_id: str | None,
    feature_id: str | None,
    as_json: bool,
) -> None:
    """Geodesic area of a polygon: --polygon, or a mapped feature's (--feature)."""
    from ..analysis.mensuration import geodesic_polygon_area

    fp = _footprint(polygon, feature_id, site_id)
    site_id = _target(site_id, feature_id)
    q = geodesic_polygon_area(fp, position_sigma_m=position_sigma).to_dict()
    _store_one(site_id, feature_id, q, "area")
    _emit(q, as_json, "area")


@measure.command("volume")
@click.option(
    "--polygon",
    "polygon",
    help="Footprint: GeoJSON/vector file or WKT, lon/lat (default: the --feature's own).",
)
@click.option(
    "--height", type=Finite(min=0), help="Berm/spoil height (m): prismoid on the footprint."
)
@click.option("--height-sigma", type=Finite(min=0), default=0.0, show_default=True)
@click.option(
    "--crest-width", type=Finite(min=0), default=0.0, show_default=True, help="Crest width (m)."
)
@click.option("--dem-before", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dem-after", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--dem-sigma",
    type=Finite(min=0),
    default=1.0,
    show_default=True,
    help="Vertical error of each DEM (m).",
)
@click.option(
    "--correlation-length",
    type=Finite(min=0, min_open=True),
    help="DEM error correlation length (m); default: fully correlated.",
)
@_site_opts
@json_option
def volume(
    polygon: str | None,
    height: float | None,
    height_sigma: float,
    crest_width: float,
    dem_before: Path | None,
    dem_after: Path | None,
    dem_sigma: float,
    correlation_length: float | None,
    site_id: str | None,
    feature_id: str | None,
    as_json: bool,
) -> None:
    """Volume of a berm or spoil heap: from its height, or from two DEMs.

    The footprint is --polygon, or the mapped --feature's own polygon; with --feature the
    volume is stored on it (the demo's spoil-to-tunnel-length step reads it there)."""
    from ..analysis.mensuration import berm_volume, volume_from_dems
    from ..analysis.terrain import dem_on_grid, read_dem
    from ..geo import to_crs

    fp = _footprint(polygon, feature_id, site_id)
    site_id = _target(site_id, feature_id)
    if height is not None and (dem_before or dem_after):
        raise InputError("give either --height or --dem-before/--dem-after, not both")
    height_from: dict[str, Any] = {}
    if height is None and not (dem_before or dem_after) and feature_id is not None:
        known = _feature_height(feature_id)
        if known is not None:
            height, sigma, height_from = known
            height_sigma = height_sigma or sigma
            err_console().print(
                f"height {height:.2f} +/- {height_sigma:.2f} m from {height_from['height_from']}"
            )
    if height is not None:
        q = berm_volume(
            fp, height, crest_width_m=crest_width, height_sigma_m=height_sigma
        ).to_dict()
        q["inputs"].update(height_from)
        value = q
    elif dem_before and dem_after:
        b, a = read_dem(dem_before), read_dem(dem_after)
        after = a.data
        if a.crs != b.crs or a.transform != b.transform or a.shape != b.shape:
            after = dem_on_grid(a, b.crs, b.transform, b.shape)
        dv = volume_from_dems(
            b.data,
            after,
            b.transform,
            to_crs(fp, "EPSG:4326", b.crs),
            crs=b.crs,
            sigma_before_m=dem_sigma,
            sigma_after_m=dem_sigma,
            correlation_length_m=correlation_length,
        ).to_dict()
        q = {
            "value": dv["net_m3"],
            "uncertainty": dv["uncertainty_m3"],
            "unit": "m3",
            "method": dv["method"],
            "inputs": {k: v for k, v in dv.items() if k not in ("method", "inputs")} | dv["inputs"],
        }
        value = {**dv, **q}
    else:
        raise InputError(
            "give --height (with --crest-width) or both --dem-before and --dem-after"
            + (
                f" (feature {feature_id!r} has no height measurement nor height_m attribute)"
                if feature_id is not None
                else ""
            )
        )
    _store_one(site_id, feature_id, q, "volume")
    _emit(value, as_json, "volume")


@measure.command("tunnel")
@click.option(
    "--spoil-volume",
    type=Finite(min=0, min_open=True),
    required=True,
    help="Spoil heap volume (m3).",
)
@click.option("--spoil-sigma", type=Finite(min=0), default=0.0, show_default=True)
@click.option("--width", type=Finite(min=0, min_open=True), required=True, help="Tunnel width (m).")
@click.option(
    "--height", type=Finite(min=0, min_open=True), required=True, help="Tunnel height (m)."
)
@click.option(
    "--shape",
    type=Choice(["horseshoe", "rectangle", "circle"]),
    default="horseshoe",
    show_default=True,
)
@click.option(
    "--bulking",
    type=Finite(min=1),
    default=None,
    help="Loose/in-place volume ratio (default 1.6, hard rock).",
)
@_site_opts
@json_option
def tunnel(
    spoil_volume: float,
    spoil_sigma: float,
    width: float,
    height: float,
    shape: str,
    bulking: float | None,
    site_id: str | None,
    feature_id: str | None,
    as_json: bool,
) -> None:
    """Tunnel length from the volume of its spoil and its cross-section."""
    from ..analysis.mensuration import DEFAULT_BULKING_FACTOR, tunnel_cross_section, tunnel_length

    site_id = _target(site_id, feature_id)
    section = tunnel_cross_section(width, height, shape)
    q = tunnel_length(
        spoil_volume,
        section,
        spoil_sigma_m3=spoil_sigma,
        bulking_factor=bulking if bulking is not None else DEFAULT_BULKING_FACTOR,
    ).to_dict()
    q["inputs"].update(width_m=width, height_m=height, shape=shape)
    _store_one(site_id, feature_id, q, "length")
    _emit(q, as_json, "tunnel length")
