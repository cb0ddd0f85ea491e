"""GeoJSON and GeoPackage of a site's features, change polygons and range rings.

Inputs are plain values: catalog :class:`~sitewatch.catalog.models.Feature` and
:class:`~sitewatch.catalog.models.ChangeEvent` records, GeoJSON Feature mappings (what the range
helpers return), or ``(geometry, properties)`` pairs; every geometry is lon/lat (EPSG:4326).
GeoJSON output is one RFC 7946 FeatureCollection whose features carry a ``layer`` property;
GeoPackage output has one table per layer (``features``, ``change_polygons``, ``range_rings``),
written with pyogrio.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from ..analysis._quantity import value_parts, value_text
from ..catalog.trends import image_dates, measurement_trends
from ..errors import GeometryError, InputError
from ..files import atomic_path

__all__ = [
    "LAYERS",
    "Row",
    "change_rows",
    "change_text",
    "feature_rows",
    "image_dates",
    "measurement_lines",
    "measurement_trends",
    "ring_rows",
    "site_layers",
    "value_parts",
    "value_text",
    "write_geojson",
    "write_gpkg",
    "write_layers",
]

log = logging.getLogger(__name__)

LAYERS = ("features", "change_polygons", "range_rings")
"""The layers of a site export, in writing order."""


def change_text(change: Mapping[str, Any], name: str) -> str:
    """A measured change (a trend or a step of :mod:`sitewatch.catalog.trends`) of the feature
    called ``name``: ``north berm height grew by 6.0 ± 1.4 m``."""
    size = value_text(abs(change["change"]), change["sigma"], change["unit"])
    return f"{name} {change['kind']} {change['verdict']} by {size}"


def measurement_lines(
    measurements: Iterable[Any], observations: Iterable[Any] = ()
) -> dict[str | None, list[str]]:
    """One line per measurement (kind, value ± uncertainty, method, the date of the image it was
    read from), grouped by the feature measured (``None``: the site itself)."""
    measurements = list(measurements)
    dates = image_dates(measurements, observations)
    out: dict[str | None, list[str]] = {}
    for m in measurements:
        parts = [f"{m.kind} {value_text(m.value, m.uncertainty, m.unit)}", m.method, dates[m.id]]
        out.setdefault(m.feature_id, []).append(" · ".join(p for p in parts if p))
    return out


@dataclass(frozen=True)
class Row:
    """One output feature: a lon/lat geometry and flat properties."""

    geometry: BaseGeometry
    properties: dict[str, Any]


def _flat(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, default=str, sort_keys=True)
    return str(value)


def _geom(raw: Any, what: str) -> BaseGeometry:
    geom = raw if isinstance(raw, BaseGeometry) else shape(raw) if raw else None
    if geom is None or geom.is_empty:
        raise GeometryError(f"{what} has no geometry")
    return geom


def _generic(item: Any, what: str) -> Row:
    if isinstance(item, Row):
        return item
    if isinstance(item, tuple) and len(item) == 2:
        return Row(_geom(item[0], what), {k: _flat(v) for k, v in dict(item[1]).items()})
    if isinstance(item, Mapping) and item.get("type") == "Feature":
        props = dict(item.get("properties") or {})
        return Row(_geom(item.get("geometry"), what), {k: _flat(v) for k, v in props.items()})
    raise InputError(
        f"cannot export a {type(item).__name__} as {what}; give a catalog record, a GeoJSON "
        "Feature mapping or a (geometry, properties) pair"
    )


def _features_of(items: Any) -> list[Any]:
    if isinstance(items, Mapping) and items.get("type") == "FeatureCollection":
        return list(items.get("features") or [])
    if isinstance(items, Mapping) and items.get("type") == "Feature":
        return [items]
    return list(items)


def feature_rows(features: Iterable[Any]) -> list[Row]:
    """Rows of site features (catalog ``Feature`` records or generic features)."""
    rows = []
    for f in _features_of(features):
        if hasattr(f, "kind") and hasattr(f, "geometry") and hasattr(f, "site_id"):
            props = {
                "id": f.id,
                "site_id": f.site_id,
                "kind": f.kind,
                "name": f.name,
                "first_seen": _flat(f.first_seen),
                "last_seen": _flat(f.last_seen),
                "attributes": _flat(f.attributes),
            }
            rows.append(Row(f.geometry, props))
        else:
            rows.append(_generic(f, "a feature"))
    return rows


def change_rows(changes: Iterable[Any]) -> list[Row]:
    """Rows of change polygons (``ChangeEvent`` records with a geometry, or generic features)."""
    rows = []
    for c in _features_of(changes):
        if hasattr(c, "before") and hasattr(c, "after") and hasattr(c, "area_m2"):
            if c.geometry is None:
                log.info("change event %s has no geometry; not exported", c.id)
                continue
            props = {
                "id": c.id,
                "site_id": c.site_id,
                "before": _flat(c.before),
                "after": _flat(c.after),
                "method": c.method,
                "area_m2": float(c.area_m2),
                "magnitude": c.magnitude,
                **_largest_kind((c.details or {}).get("kinds")),
            }
            rows.append(Row(c.geometry, props))
        else:
            rows.append(_generic(c, "a change polygon"))
    return rows


def _largest_kind(kinds: Any) -> dict[str, Any]:
    """``kind`` (the kind of change with the largest area, from a change event's ``kinds``
    details: m² by kind) and ``kind_share`` (its share of the event's area), or {} without."""
    from ..analysis.landcover import kind_shares

    shares = kind_shares(kinds)
    return {"kind": shares[0][0], "kind_share": round(shares[0][1], 3)} if shares else {}


def ring_rows(rings: Any) -> list[Row]:
    """Rows of range rings (GeoJSON features as the range helpers give them, or pairs)."""
    return [_generic(r, "a range ring") for r in _features_of(rings)]


def site_layers(
    features: Iterable[Any] = (), changes: Iterable[Any] = (), rings: Any = ()
) -> dict[str, list[Row]]:
    """The three export layers of a site, empty ones left out."""
    layers = {
        "features": feature_rows(features),
        "change_polygons": change_rows(changes),
        "range_rings": ring_rows(rings),
    }
    return {k: v for k, v in layers.items() if v}


def write_geojson(layers: Mapping[str, Sequence[Row]], path: str | Path) -> Path:
    """One FeatureCollection with every layer's features (a ``layer`` property says which)."""
    out = []
    for name, rows in layers.items():
        for row in rows:
            props = {"layer": name, **row.properties}
            out.append({"type": "Feature", "geometry": mapping(row.geometry), "properties": props})
    target = Path(path)
    with atomic_path(target, parents=True) as tmp:
        tmp.write_text(
            json.dumps(
                {"type": "FeatureCollection", "features": out}, ensure_ascii=False, default=str
            ),
            encoding="utf-8",
        )
    return target


def _when(values: list[Any]) -> Any:
    """ISO date or date-time strings as a datetime64 array (UTC; NaT for None), so that the
    GeoPackage types the field Date or DateTime (QGIS's temporal controller reads those), or
    None when some value is not one."""
    shown = [v for v in values if v is not None]
    if not shown or not all(isinstance(v, str) and len(v) >= 10 and v[4] == "-" for v in shown):
        return None
    try:
        parsed = [None if v is None else datetime.fromisoformat(v) for v in values]
    except ValueError:
        return None
    if all(len(v) == 10 for v in shown):  # dates alone
        return np.array([np.datetime64(v, "D") if v else np.datetime64("NaT") for v in values])
    utc = [
        None if d is None else d.astimezone(UTC).replace(tzinfo=None) if d.tzinfo else d
        for d in parsed
    ]
    return np.array(
        [np.datetime64("NaT") if d is None else np.datetime64(d, "ms") for d in utc],
        dtype="datetime64[ms]",
    )


def _field_type(values: list[Any]) -> Any:
    when = _when(values)
    if when is not None:
        return when
    kinds = {type(v) for v in values if v is not None}
    if kinds and kinds <= {int, bool}:
        return (
            np.array([np.nan if v is None else float(v) for v in values])
            if None in values
            else np.array(values, dtype=np.int64)
        )
    if kinds and kinds <= {int, float, bool}:
        return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    return np.array([None if v is None else str(v) for v in values], dtype=object)


def write_gpkg(layers: Mapping[str, Sequence[Row]], path: str | Path) -> Path:
    """A GeoPackage with one table per non-empty layer (EPSG:4326)."""
    from pyogrio.raw import write as ogr_write

    target = Path(path)
    if not layers:
        raise InputError(
            f"nothing to write to {target}: the site has no features, change polygons or range rings"
        )
    with atomic_path(target, parents=True) as tmp:
        tmp.unlink()  # let GDAL create the file
        first = True
        for name, rows in layers.items():
            if not rows:
                continue
            keys: list[str] = []
            for row in rows:
                keys.extend(k for k in row.properties if k not in keys)
            fields = [_field_type([row.properties.get(k) for row in rows]) for k in keys]
            # date-times are UTC: GDAL then writes them with the "Z" the GeoPackage format asks
            offsets = {
                k: np.full(len(rows), 100, dtype=np.int32)  # GDAL's TZFlag: 100 is UTC
                for k, f in zip(keys, fields, strict=True)
                if f.dtype == np.dtype("datetime64[ms]")
            }
            geoms = [row.geometry for row in rows]
            types = {g.geom_type for g in geoms}
            gtype = types.pop() if len(types) == 1 else "Unknown"
            ogr_write(
                str(tmp),
                shapely.to_wkb(np.array(geoms, dtype=object)),
                fields,
                keys,
                layer=name,
                driver="GPKG",
                crs="EPSG:4326",
                geometry_type=gtype,
                append=not first,
                promote_to_multi=False,
                gdal_tz_offsets=offsets or None,
            )
            first = False
    return target


def write_layers(layers: Mapping[str, Sequence[Row]], path: str | Path) -> Path:
    """Write ``.geojson``/``.json`` or ``.gpkg`` by the suffix of ``path``."""
    suffix = Path(path).suffix.lower()
    if suffix in (".geojson", ".json"):
        return write_geojson(layers, path)
    if suffix == ".gpkg":
        return write_gpkg(layers, path)
    raise InputError(f"cannot export to {Path(path).name}: use a .geojson or .gpkg name")
