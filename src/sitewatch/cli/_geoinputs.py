"""Geometry inputs of the CLI: a ``LON,LAT`` point, and the features of a vector file.

One reader for every command that takes features (footprints, defilade targets, range targets,
search examples), so each accepts the same files and refuses a bad one with the same message;
and one for the features already in the catalog (:func:`site_features`), in the same shape, so
that an analyst measures what was mapped without exporting it to a file first.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import shapely
from pyproj import CRS
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from ..errors import InputError

if TYPE_CHECKING:
    from ..catalog.models import Feature

__all__ = [
    "catalog_feature",
    "check_site",
    "parse_lonlat",
    "point_or_site",
    "read_geofile",
    "site_features",
]

logger = logging.getLogger(__name__)


def parse_lonlat(text: str, what: str = "point") -> tuple[float, float]:
    """``"LON,LAT"`` as floats, validated."""
    from ..geo import check_lonlat

    try:
        lon_s, lat_s = text.split(",")
        lon, lat = float(lon_s), float(lat_s)
    except ValueError:
        raise InputError(f"{what}: expected LON,LAT (e.g. 125.75,39.03), got {text!r}") from None
    check_lonlat(lon, lat, what=what)
    return lon, lat


def point_or_site(text: str, what: str) -> tuple[tuple[float, float], str]:
    """``"LON,LAT"``, or the id of a catalog site (its point): the point and the site's name
    ("" for coordinates)."""
    if "," in text:
        return parse_lonlat(text, what), ""
    from .options import open_catalog

    with open_catalog() as cat:
        site = cat.get_site(text.strip())
    return (site.lon, site.lat), site.name


def _geojson_crs(doc: dict[str, Any]) -> CRS:
    name = ((doc.get("crs") or {}).get("properties") or {}).get("name")
    return CRS.from_user_input(name) if name else CRS.from_epsg(4326)


_GEOMETRY_TYPES = frozenset(
    ("Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon",
     "GeometryCollection")
)  # fmt: skip


_KML = (".kml", ".kmz")


def read_geofile(path: str | Path) -> tuple[list[BaseGeometry | None], list[dict[str, Any]], CRS]:
    """Geometries (None where missing), properties (with ``id``) and CRS of a vector file.

    GeoJSON is read directly (a legacy ``crs`` member is honoured; a lone Feature or geometry
    counts as a collection of one); other formats via pyogrio: the first layer, or every layer
    of a KML/KMZ file (Google Earth's folders, named in the ``folder`` property).
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p} does not exist")
    if p.suffix.lower() in (".geojson", ".json"):
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{p}: not valid GeoJSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise InputError(f"{p}: expected a GeoJSON FeatureCollection, got a JSON list/value")
        if doc.get("type") in _GEOMETRY_TYPES:
            doc = {"type": "Feature", "properties": {}, "geometry": doc}
        if doc.get("type") == "Feature":
            doc = {"type": "FeatureCollection", "features": [doc]}
        if doc.get("type") != "FeatureCollection":
            raise InputError(f"{p}: expected a GeoJSON FeatureCollection, got {doc.get('type')!r}")
        features = doc.get("features")  # a collection without the member is not one
        if not isinstance(features, list) or not all(isinstance(f, dict) for f in features):
            raise InputError(f"{p}: 'features' must be a list of features (GeoJSON objects)")
        geoms: list[BaseGeometry | None] = []
        props: list[dict[str, Any]] = []
        for f in features:
            g = f.get("geometry")
            try:
                geom = shape(g) if g else None
            except (ValueError, TypeError, AttributeError, shapely.errors.GEOSException):
                geom = None
            if geom is not None and not geom.is_valid:
                geom = shapely.make_valid(geom)
            geoms.append(geom)
            pr = dict(f.get("properties") or {})
            if f.get("id") is not None and "id" not in pr:
                pr["id"] = f["id"]
            props.append(pr)
        return geoms, props, _geojson_crs(doc)
    from pyogrio import list_layers
    from pyogrio.raw import read as ogr_read

    try:
        spatial = [str(n) for n, g in list_layers(p) if g]
        is_kml = p.suffix.lower() in _KML
        if is_kml:  # Google Earth keeps each folder in a layer: read them all
            layers: list[str | None] = list(spatial)
        else:
            layers = [spatial[0] if spatial else None]
            if len(spatial) > 1:
                logger.warning(
                    "%s has %d layers; reading the first, %r, and leaving out %s (save the "
                    "layer wanted into a file of its own)",
                    p.name,
                    len(spatial),
                    spatial[0],
                    ", ".join(map(repr, spatial[1:])),
                )
        geoms, props, crs = [], [], None
        for layer in layers:
            meta, _, wkb, fields = ogr_read(p, layer=layer)
            names = list(meta["fields"])
            geoms += [shapely.from_wkb(w) if w is not None else None for w in wkb]
            props += [
                {
                    **({"folder": layer} if is_kml and layer is not None else {}),
                    **{
                        n: (col[i].item() if hasattr(col[i], "item") else col[i])
                        for n, col in zip(names, fields, strict=True)
                    },
                }
                for i in range(len(wkb))
            ]
            crs = crs or meta.get("crs")
    except Exception as exc:  # pyogrio raises its own DataSourceError family
        raise InputError(f"cannot read {p}: {exc}") from exc
    return geoms, props, CRS.from_user_input(crs) if crs else CRS.from_epsg(4326)


GeoInputs = tuple[list[BaseGeometry | None], list[dict[str, Any]], CRS]


def site_features(site_id: str, kinds: Sequence[str] = (), *, polygons: bool = False) -> GeoInputs:
    """The catalog features of ``site_id`` (of ``kinds``, all when empty) as :func:`read_geofile`
    gives a file's: lon/lat geometries, and properties with the feature's ``id``, ``name``,
    ``kind`` and its attributes (``height_m``, ``crest_width_m``, ...). ``polygons`` keeps only
    polygon features (footprints). None found is an error that says what the site holds."""
    from .options import open_catalog

    with open_catalog() as cat:
        cat.get_site(site_id)
        every = cat.query_features(site_id=site_id)
    chosen = [
        f
        for f in every
        if (not kinds or f.kind in kinds)
        and (not polygons or f.geometry.geom_type in ("Polygon", "MultiPolygon"))
    ]
    if not chosen:
        held = sorted({f"{f.kind} ({f.geometry.geom_type.lower()})" for f in every})
        wanted = f"{' or '.join(kinds)} " if kinds else ""
        shape_ = "polygon " if polygons else ""
        raise InputError(
            f"site {site_id!r} has no {wanted}{shape_}features"
            + (f"; it holds {', '.join(held)}" if held else "")
            + f": map them with `sitewatch features add|import {site_id}`, or give a file"
        )
    props = [
        {**f.attributes, "id": f.id, "name": f.name, "kind": f.kind, "site_id": f.site_id}
        for f in chosen
    ]
    return [f.geometry for f in chosen], props, CRS.from_epsg(4326)


def check_site(site_id: str | None) -> None:
    """Refuse an unknown ``--site`` before any long work, not when its results are stored."""
    if site_id is None:
        return
    from .options import open_catalog

    with open_catalog() as cat:
        cat.get_site(site_id)


def catalog_feature(feature_id: str, site_id: str | None = None) -> Feature:
    """The catalog feature ``feature_id``; with ``site_id``, it must belong to that site."""
    from .options import open_catalog

    with open_catalog() as cat:
        feat = cat.get_feature(feature_id)
    if site_id is not None and feat.site_id != site_id:
        raise InputError(
            f"feature {feature_id!r} belongs to site {feat.site_id!r}, not {site_id!r} "
            f"(`sitewatch features list {site_id}` lists its features)"
        )
    return feat
