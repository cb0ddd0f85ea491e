"""Conversion between the catalog's dataclasses and table rows, and JSON for the history."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any, TypeVar

import shapely
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from .models import Candidate, ChangeEvent, Feature, Site

__all__ = ["jsonable", "row_to", "rows_to", "to_row"]

T = TypeVar("T")

# model field -> column holding its WKB
_GEOM_COLUMNS: dict[type[Any], dict[str, str]] = {
    Site: {"aoi": "aoi_wkb"},
    Feature: {"geometry": "geom_wkb"},
    ChangeEvent: {"geometry": "geom_wkb"},
    Candidate: {"geometry": "geom_wkb"},
}
# fields stored in link tables, not columns
_LINKED: dict[type[Any], frozenset[str]] = {Site: frozenset({"tags", "source_ids"})}
# model classes with bbox columns, and the field that gives the bbox
_BBOX_FROM: dict[type[Any], str] = {Site: "geometry", Feature: "geometry", Candidate: "geometry"}
_TUPLE_FIELDS = frozenset({"aliases", "evidence"})
# columns on every table that are not model fields
_META = frozenset({"created_by", "updated_by", "updated_at", "created_at", "version", "fid"})


def _site_row(site: Site) -> dict[str, Any]:
    """:func:`to_row` for a site, spelled out: it is the hot path of imports."""
    aoi = site.aoi
    if aoi is None:
        minx = maxx = site.lon
        miny = maxy = site.lat
        wkb = None
    else:
        minx, miny, maxx, maxy = aoi.bounds
        wkb = shapely.to_wkb(aoi, output_dimension=2)
    return {
        "id": site.id,
        "name": site.name,
        "lon": site.lon,
        "lat": site.lat,
        "aoi_wkb": wkb,
        "aliases": list(site.aliases),
        "country": site.country,
        "category": site.category,
        "status": site.status,
        "declared": site.declared,
        "declaration_ref": site.declaration_ref,
        "confidence": site.confidence,
        "notes": site.notes,
        "minx": minx,
        "miny": miny,
        "maxx": maxx,
        "maxy": maxy,
        "search_text": " ".join([site.id, site.name, *site.aliases, site.notes]).lower(),
    }


def to_row(obj: Any) -> dict[str, Any]:
    """Column values for a stored model (timestamps and version are set by the store)."""
    cls = type(obj)
    if cls is Site:
        return _site_row(obj)
    geoms = _GEOM_COLUMNS.get(cls, {})
    skip = _LINKED.get(cls, frozenset())
    row: dict[str, Any] = {}
    for name in _field_names(cls):
        if name in skip or name in _META:
            continue
        value = getattr(obj, name)
        if name in geoms:
            row[geoms[name]] = None if value is None else shapely.to_wkb(value, output_dimension=2)
        elif name in _TUPLE_FIELDS:
            row[name] = list(value)
        elif isinstance(value, dict):
            row[name] = jsonable(value)
        else:
            row[name] = value
    bbox_field = _BBOX_FROM.get(cls)
    if bbox_field is not None:
        geom: BaseGeometry = getattr(obj, bbox_field)
        row["minx"], row["miny"], row["maxx"], row["maxy"] = geom.bounds
    return row


def row_to(
    cls: type[T],
    row: Mapping[Any, Any],
    *,
    geometries: Mapping[str, Any] | None = None,
    **linked: Any,
) -> T:
    """Build a model of ``cls`` from a stored row (plus linked fields such as tags).

    Stored rows were validated when written, so the value is built without re-running
    ``__post_init__`` validation (reads are the hot path of queries). ``geometries`` passes
    already-decoded geometries by field name (see :func:`rows_to`).
    """
    geoms = _GEOM_COLUMNS.get(cls, {})
    values: dict[str, Any] = {}
    for f in _fields(cls):
        name = f.name
        if name in linked:
            values[name] = linked[name]
        elif name in geoms:
            if geometries is not None and name in geometries:
                values[name] = geometries[name]
            else:
                wkb = row.get(geoms[name])
                values[name] = None if wkb is None else shapely.from_wkb(bytes(wkb))
        elif name in row:
            value = row[name]
            if name in _TUPLE_FIELDS:
                value = tuple(value or ())
            values[name] = value
        elif f.default is not dataclasses.MISSING:
            values[name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            values[name] = f.default_factory()
        else:
            return cls(**values)  # a required field is missing: let the constructor say so
    obj = object.__new__(cls)
    obj.__dict__.update(values)
    return obj


def rows_to(cls: type[T], rows: Sequence[Mapping[Any, Any]]) -> list[T]:
    """:func:`row_to` for many rows, decoding their geometries in one vectorised call."""
    geoms = _GEOM_COLUMNS.get(cls, {})
    decoded: dict[str, Any] = {}
    for field_name, column in geoms.items():
        wkbs = [r.get(column) for r in rows]
        arr = shapely.from_wkb([bytes(w) if w is not None else None for w in wkbs])
        decoded[field_name] = arr
    return [
        row_to(cls, r, geometries={k: v[i] for k, v in decoded.items()}) for i, r in enumerate(rows)
    ]


_FIELDS: dict[type[Any], tuple[dataclasses.Field[Any], ...]] = {}


def _fields(cls: type[Any]) -> tuple[dataclasses.Field[Any], ...]:
    found = _FIELDS.get(cls)
    if found is None:
        found = _FIELDS[cls] = dataclasses.fields(cls)
    return found


_SCALARS = (str, int, bool, type(None))
_FIELD_NAMES: dict[type[Any], tuple[str, ...]] = {}


def _field_names(cls: type[Any]) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def jsonable(value: Any) -> Any:
    """A JSON-ready copy: geometries as GeoJSON, dates as ISO strings, tuples as lists."""
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, float):
        return None if value != value else value  # NaN is not JSON
    if hasattr(type(value), "__dataclass_fields__"):
        return {name: jsonable(getattr(value, name)) for name in _field_names(type(value))}
    if isinstance(value, BaseGeometry):
        return jsonable(dict(mapping(value)))
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return value
