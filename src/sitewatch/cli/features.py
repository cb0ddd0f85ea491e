"""``sitewatch features``: the features of a site (tunnel portals, berms, shelters, HQ).

``add`` records one feature at a point or with a WKT geometry, ``import`` reads the features an
analyst digitised in Google Earth or QGIS (KML/KMZ, GeoJSON, GeoPackage, Shapefile), ``list``,
``edit`` and ``delete`` keep them. Every change is in the catalog's history.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import click
import shapely
from pyproj import CRS
from rich.markup import escape
from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry

from ..catalog._codec import jsonable
from ..catalog.models import Feature, new_id
from ..errors import InputError
from ..geo import to_crs
from ..types import FEATURE_KINDS
from ._geoinputs import read_geofile
from ._sites_view import attributes_text
from .options import (
    Choice,
    Finite,
    check_removable,
    console,
    echo_json,
    echo_updated,
    err_console,
    json_option,
    open_catalog,
    parse_pairs,
)
from .options import table as make_table
from .records import delete_measured, delete_options

logger = logging.getLogger(__name__)

__all__ = ["features"]

_NUMERIC_ATTRIBUTES = ("height_m", "width_m", "length_m", "azimuth_deg")


def _geometry(wkt: str | None, lon: float | None, lat: float | None) -> BaseGeometry:
    if wkt is not None:
        if lon is not None or lat is not None:
            raise InputError("give either --wkt or --lon/--lat, not both")
        try:
            return shapely.from_wkt(wkt)
        except shapely.errors.GEOSException as exc:
            raise InputError(
                f"--wkt is not valid WKT ({exc}); e.g. 'POINT (126.1083 38.5851)' or "
                "'POLYGON ((126.108 38.585, 126.109 38.585, 126.109 38.586, 126.108 38.585))'"
            ) from exc
    if lon is None or lat is None:
        raise InputError(
            "give the feature's place: --lon and --lat, or --wkt for a line or polygon"
        )
    return Point(lon, lat)


def _attributes(pairs: Sequence[str], numbers: dict[str, float | None]) -> dict[str, Any]:
    attrs: dict[str, Any] = dict(parse_pairs(pairs, "--attr", "material=rock"))
    for key in _NUMERIC_ATTRIBUTES:  # measured sizes stay numbers, however they were given
        if key in attrs:
            try:
                attrs[key] = float(attrs[key])
            except ValueError:
                raise InputError(
                    f"--attr {key}={attrs[key]}: {key} is a number (e.g. "
                    f"--{key.replace('_', '-')} 18)"
                ) from None
            if not math.isfinite(attrs[key]) or attrs[key] < 0:
                raise InputError(f"--attr {key}: give a finite number >= 0")
    attrs.update({k: v for k, v in numbers.items() if v is not None})
    return attrs


def _date(value: Any) -> date | None:
    return value.date() if value is not None else None


def _attribute_options(func: Any) -> Any:
    for option in reversed(
        [
            click.option("--height-m", type=Finite(0), help="Height in metres (e.g. of a berm)."),
            click.option("--width-m", type=Finite(0), help="Width in metres."),
            click.option("--length-m", type=Finite(0), help="Length in metres."),
            click.option(
                "--azimuth-deg", type=Finite(0, 360), help="Facing, degrees from north (a portal)."
            ),
            click.option("--attr", "attrs", multiple=True, help="Another attribute, KEY=VALUE."),
            click.option("--first-seen", type=click.DateTime(["%Y-%m-%d"])),
            click.option("--last-seen", type=click.DateTime(["%Y-%m-%d"])),
        ]
    ):
        func = option(func)
    return func


def _numbers(kw: dict[str, Any]) -> dict[str, float | None]:
    return {k: kw.pop(k) for k in _NUMERIC_ATTRIBUTES}


@click.group()
def features() -> None:
    """Features of sites: tunnel portals, berms, shelters, HQ buildings."""


@features.command("add")
@click.argument("site_id")
@click.option("--kind", type=Choice(FEATURE_KINDS), required=True)
@click.option("--lon", type=Finite(-180, 180))
@click.option("--lat", type=Finite(-90, 90))
@click.option("--wkt", help="Geometry as WKT in lon/lat (a line or a polygon).")
@click.option("--name", default="", help="e.g. 'portal 3'.")
@_attribute_options
@json_option
def add(
    site_id: str,
    kind: str,
    lon: float | None,
    lat: float | None,
    wkt: str | None,
    name: str,
    attrs: Sequence[str],
    first_seen: Any,
    last_seen: Any,
    as_json: bool,
    **kw: Any,
) -> None:
    """Record a feature of SITE_ID at --lon/--lat or with a --wkt geometry."""
    feature = Feature(
        id=new_id(),
        site_id=site_id,
        kind=kind,  # type: ignore[arg-type]
        geometry=_geometry(wkt, lon, lat),
        name=name,
        attributes=_attributes(attrs, _numbers(kw)),
        first_seen=_date(first_seen),
        last_seen=_date(last_seen),
    )
    with open_catalog() as cat:
        stored = cat.add_feature(feature)
    if as_json:
        echo_json(jsonable(stored))
    else:
        console().print(f"added {stored.kind} [bold]{stored.id}[/] to site {site_id}")


@features.command("list")
@click.argument("site_id", required=False)
@click.option("--kind", type=Choice(FEATURE_KINDS), multiple=True)
@json_option
def list_(site_id: str | None, kind: Sequence[str], as_json: bool) -> None:
    """Features of SITE_ID (or of every site), filtered by --kind."""
    with open_catalog() as cat:
        if site_id is not None:
            cat.get_site(site_id)
        found = cat.query_features(site_id=site_id, kind=list(kind) or None)
    if as_json:
        echo_json([jsonable(f) for f in found])
        return
    table = make_table(
        "id", "site", "kind", "name", "where", "attributes", "seen", whole=("id", "kind", "seen")
    )
    for f in found:
        c = f.geometry.centroid
        seen = " → ".join(d.isoformat() if d else "?" for d in (f.first_seen, f.last_seen))
        table.add_row(
            f.id,
            f.site_id,
            f.kind,
            f.name,
            f"{f.geometry.geom_type} {c.x:.5f},{c.y:.5f}",
            attributes_text(f.attributes),
            "" if seen == "? → ?" else seen,
        )
    console().print(table)
    err_console().print(f"{len(found)} feature(s)")


@features.command("edit")
@click.argument("feature_id")
@click.option("--kind", type=Choice(FEATURE_KINDS))
@click.option("--name")
@click.option("--lon", type=Finite(-180, 180))
@click.option("--lat", type=Finite(-90, 90))
@click.option("--wkt", help="New geometry as WKT in lon/lat.")
@_attribute_options
@click.option("--remove-attr", multiple=True, help="Drop this attribute.")
@click.option(
    "--expect-version", type=int, help="Fail unless the stored feature is at this version."
)
@json_option
def edit(
    feature_id: str,
    kind: str | None,
    name: str | None,
    lon: float | None,
    lat: float | None,
    wkt: str | None,
    attrs: Sequence[str],
    first_seen: Any,
    last_seen: Any,
    remove_attr: Sequence[str],
    expect_version: int | None,
    as_json: bool,
    **kw: Any,
) -> None:
    """Edit a feature; refuses to overwrite someone else's newer edit."""
    with open_catalog() as cat:
        f = cat.get_feature(feature_id)
        changes: dict[str, Any] = {
            k: v for k, v in (("kind", kind), ("name", name)) if v is not None
        }
        if wkt is not None or lon is not None or lat is not None:
            changes["geometry"] = _geometry(wkt, lon, lat)
        if first_seen is not None:
            changes["first_seen"] = _date(first_seen)
        if last_seen is not None:
            changes["last_seen"] = _date(last_seen)
        check_removable("attribute", f"feature {feature_id!r}", remove_attr, f.attributes)
        merged = {k: v for k, v in f.attributes.items() if k not in remove_attr}
        merged.update(_attributes(attrs, _numbers(kw)))
        version = expect_version if expect_version is not None else f.version
        stored = cat.update_feature(
            dataclasses.replace(f, **changes, attributes=merged, version=version)
        )
    echo_updated("feature", stored, as_json, was=version)


@features.command("delete")
@click.argument("feature_id")
@delete_options
def delete(feature_id: str, yes: bool, expect_version: int | None, keep: bool, drop: bool) -> None:
    """Delete a feature (the history keeps a snapshot).

    A feature with measurements needs --keep-measurements or --delete-measurements: they are
    never dropped or unlinked silently."""
    delete_measured("feature", feature_id, yes, expect_version, keep, drop)


def _prop(props: dict[str, Any], *names: str) -> Any:
    """The first of ``names`` in ``props``, matched without regard to case (Google Earth's KML
    driver says ``Name``, QGIS layers often ``name`` or ``NAME``)."""
    lowered = {str(k).lower(): v for k, v in props.items()}
    for n in names:
        v = lowered.get(n)
        if v not in (None, ""):
            return v
    return None


_KIND_WORDS = {
    "portal": "ugf_portal",
    "tunnel": "ugf_portal",
    "tunnel_portal": "ugf_portal",
    "ugf": "ugf_portal",
    "shelter": "drive_through_shelter",
    "headquarters": "hq",
    "pad": "launch_pad",
}


def _kind_of(text: str) -> str:
    """A feature kind from a property or a folder name: ``"Portals"`` is ``ugf_portal``,
    ``"Berms"`` ``berm``, ``"Drive-through shelter"`` ``drive_through_shelter``."""
    k = "_".join(text.strip().lower().replace("-", " ").split())
    for word in (k, k[:-1] if k.endswith("s") else k, k[:-2] if k.endswith("es") else k):
        if word in FEATURE_KINDS:
            return word
        if word in _KIND_WORDS:
            return _KIND_WORDS[word]
    return k


def _to_lonlat(geoms: list[BaseGeometry | None], crs: CRS) -> list[BaseGeometry | None]:
    flat = [shapely.force_2d(g) if g is not None else None for g in geoms]
    if crs.equals(CRS.from_epsg(4326)) or crs.equals(CRS.from_user_input("OGC:CRS84")):
        return flat
    return [to_crs(g, crs, "EPSG:4326") if g is not None else None for g in flat]


def features_from_file(
    path: Path, site_id: str, kind: str | None, kind_field: str | None
) -> list[Feature]:
    """The features of a vector file for ``site_id``, each with an id made from the site, its
    name and its geometry: a feature imported again, from this file or an edited copy, keeps
    its id, while one moved or renamed is a new feature."""
    from ..catalog.io._helpers import feature_from_props

    geoms, props, crs = read_geofile(path)
    if not geoms:
        raise InputError(f"{path} holds no features")
    records = [_prop(pr, "record") for pr in props]
    if any(r in ("site", "observation", "measurement") for r in records):
        # a sitewatch export (sites export): its features are the rows marked so; its sites,
        # observations and measurements are for `sites import`
        keep = [i for i, r in enumerate(records) if r == "feature"]
        if not keep:
            raise InputError(
                f"{path.name} is a sitewatch sites export with no features: import it with "
                "`sitewatch sites import` instead"
            )
        logger.warning(
            "%s is a sitewatch sites export: taking its %d feature(s) and leaving its %d site, "
            "observation and measurement record(s) (`sitewatch sites import` reads those)",
            path.name,
            len(keep),
            len(records) - len(keep),
        )
        geoms, props = [geoms[i] for i in keep], [props[i] for i in keep]
    out: list[Feature] = []
    seen: set[str] = set()
    for i, (geom, pr) in enumerate(zip(_to_lonlat(geoms, crs), props, strict=True), 1):
        where = f"{path.name}, feature {i}"
        name = _prop(pr, "name", "title", "label")
        k = kind or _prop(pr, kind_field.lower() if kind_field else "kind")
        if k is None:
            raise InputError(
                f"{where} ({name or 'unnamed'}) has no kind: give --kind for every feature of "
                f"the file, or --kind-field naming the property that holds it "
                f"(one of {', '.join(FEATURE_KINDS)})"
            )
        k = _kind_of(str(k))
        if k not in FEATURE_KINDS:
            raise InputError(
                f"{where} ({name or 'unnamed'}): kind {k!r} is not one of {', '.join(FEATURE_KINDS)}"
            )
        attrs = _prop(pr, "attributes") or {
            n: v for n in _NUMERIC_ATTRIBUTES if (v := _prop(pr, n)) is not None
        }
        fields = {
            "kind": k,
            "name": str(name or ""),
            "attributes": attrs,
            "first_seen": _prop(pr, "first_seen"),
            "last_seen": _prop(pr, "last_seen"),
        }
        try:  # the id comes from the site, the name and the geometry
            feature = feature_from_props(fields, geom, site_id=site_id)
        except InputError as exc:
            raise InputError(f"{where}: {exc}") from exc
        if feature.id not in seen:  # the same name at the same place twice is one feature
            seen.add(feature.id)
            out.append(feature)
    return out


@features.command("import")
@click.argument("site_id")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--kind", type=Choice(FEATURE_KINDS), help="The kind of every feature.")
@click.option(
    "--kind-field",
    help="The property that holds each feature's kind (default 'kind'; 'folder' for the "
    "Google Earth folder, e.g. Portals, Berms).",
)
@json_option
def import_(
    site_id: str, path: Path, kind: str | None, kind_field: str | None, as_json: bool
) -> None:
    """Import the features of SITE_ID digitised in Google Earth or QGIS (KML/KMZ, GeoJSON,
    GeoPackage, Shapefile; any CRS). All or nothing; features imported before are skipped."""
    with open_catalog() as cat:
        cat.get_site(site_id)
        found = features_from_file(path, site_id, kind, kind_field)
        have = {f.id for f in cat.query_features(site_id=site_id)}
        new = [f for f in found if f.id not in have]
        added = cat.add_features(new) if new else 0
    summary = {"site": site_id, "added": added, "already_there": len(found) - len(new)}
    if as_json:
        echo_json({**summary, "ids": [f.id for f in new]})
    else:
        console().print(
            f"imported {added} feature(s) into site {site_id} from {escape(str(path))}; "
            f"{summary['already_there']} already there"
        )
