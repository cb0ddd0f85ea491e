"""Conversion between the catalog's dataclasses and table rows, and JSON for the history."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, TypeVar

import shapely
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from .models import Candidate, ChangeEvent, Feature, Site

__all__ = ["jsonable", "row_to", "to_row"]

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


def to_row(obj: Any) -> dict[str, Any]:
    """Column values for a stored model (timestamps and version are set by the store)."""
    cls = type(obj)
    geoms = _GEOM_COLUMNS.get(cls, {})
    skip = _LINKED.get(cls, frozenset())
    row: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        if f.name in skip or f.name in _META:
            continue
        value = getattr(obj, f.name)
        if f.name in geoms:
            row[geoms[f.name]] = (
                None if value is None else shapely.to_wkb(value, output_dimension=2)
            )
        elif f.name in _TUPLE_FIELDS:
            row[f.name] = list(value)
        elif isinstance(value, dict):
            row[f.name] = jsonable(value)
        else:
            row[f.name] = value
    bbox_field = _BBOX_FROM.get(cls)
    if bbox_field is not None:
        geom: BaseGeometry = getattr(obj, bbox_field)
        row["minx"], row["miny"], row["maxx"], row["maxy"] = geom.bounds
    if cls is Site:
        row["search_text"] = " ".join([obj.id, obj.name, *obj.aliases, obj.notes]).lower()
    return row


def row_to(cls: type[T], row: Mapping[Any, Any], **linked: Any) -> T:
    """Build a model of ``cls`` from a row mapping (plus linked fields such as tags)."""
    geoms = _GEOM_COLUMNS.get(cls, {})
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in linked:
            kwargs[f.name] = linked[f.name]
            continue
        if f.name in geoms:
            wkb = row.get(geoms[f.name])
            kwargs[f.name] = None if wkb is None else shapely.from_wkb(bytes(wkb))
            continue
        if f.name not in row:
            continue
        value = row[f.name]
        if f.name in _TUPLE_FIELDS:
            value = tuple(value or ())
        elif isinstance(value, dict | list) and f.type in ("dict[str, Any]",):
            value = dict(value)
        kwargs[f.name] = value
    return cls(**kwargs)


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
