"""GeoJSON sites: a FeatureCollection streamed with ijson, and the IARPA SMART site models.

A sitewatch GeoJSON file holds one GeoJSON feature per site (its AOI polygon, or its point when it
has no AOI; every site field in the properties, ``"record": "site"``, and the sources it cites
in ``sources``, so that a catalog importing the file gets the citations too), followed by the site's
features (``"record": "feature"``, ``site_id``), observations (``"record": "observation"``, no
geometry) and measurements (``"record": "measurement"``, at the point of the feature measured, or
no geometry). FeatureCollections written by other tools import too: each feature is a site, named by
its ``name``/``title`` property, its other properties kept in the notes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import ijson  # type: ignore[import-untyped]
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from ...errors import GeometryError, InputError, RecordProblem
from ...files import atomic_path
from ..models import Site, SiteRecord, Source
from ._helpers import (
    SITE_ATTRIBUTES,
    DuplicateIds,
    RecordGrouper,
    feature_from_props,
    feature_to_props,
    measurement_from_props,
    measurement_to_props,
    observation_from_props,
    observation_to_props,
    read_geometry,
    site_from_fields,
    source_to_props,
    sources_from_props,
)
from ._iarpa import read_iarpa, write_iarpa

__all__ = [
    "is_iarpa",
    "iter_features",
    "read_geojson",
    "read_iarpa",
    "write_geojson",
    "write_iarpa",
]

log = logging.getLogger(__name__)

_SITE_KEYS = ("id", "name", "lon", "lat", *SITE_ATTRIBUTES)
_NAME_KEYS = ("name", "title", "site_name", "label")
_IARPA_TYPES = frozenset({"site", "observation", "region", "site_summary"})


def iter_features(fh: IO[bytes], path: str | Path) -> Iterator[dict[str, Any]]:
    """Stream the features of a FeatureCollection (a lone Feature is a collection of one)."""
    try:
        first = fh.read(1)
        while first and first.isspace():
            first = fh.read(1)
        if first != b"{":
            raise InputError(f"{path}: not a GeoJSON object (expected a FeatureCollection)")
        fh.seek(0)
        found = False
        for feature in ijson.items(fh, "features.item", use_float=True):
            found = True
            yield feature
        if not found:
            fh.seek(0)
            for kind in ijson.items(fh, "type"):
                if kind == "Feature":
                    fh.seek(0)
                    yield from ijson.items(fh, "", use_float=True)
                elif kind != "FeatureCollection":
                    raise InputError(f"{path}: GeoJSON type {kind!r}, expected a FeatureCollection")
    except ijson.JSONError as exc:
        raise InputError(f"{path}: not valid JSON ({exc}); is it a GeoJSON file?") from None
    except (
        ijson.IncompleteJSONError
    ) as exc:  # pragma: no cover - subclass of JSONError in most backends
        raise InputError(f"{path}: truncated JSON ({exc})") from None


def is_iarpa(path: str | Path) -> bool:
    """Whether a GeoJSON file is an IARPA SMART site or region model (by its first feature)."""
    with Path(path).open("rb") as fh:
        try:
            for ptype in ijson.items(fh, "features.item.properties.type"):
                return ptype in _IARPA_TYPES
        except ijson.JSONError:
            return False
    return False


def _geometry(raw: Any, where: str) -> BaseGeometry | None:
    return read_geometry(raw, where)


def read_geojson(path: str | Path, *, repair: bool = False) -> Iterator[SiteRecord | RecordProblem]:
    """Stream the sites (with their features and observations) of a GeoJSON FeatureCollection."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    dupes = DuplicateIds(lambda n: f"feature #{n}")
    grouper = RecordGrouper(dupes)
    with path.open("rb") as fh:
        for index, feature in enumerate(iter_features(fh, path), start=1):
            where = f"feature #{index}"
            if not isinstance(feature, dict):
                yield RecordProblem(None, f"{where} is not a GeoJSON object")
                continue
            props = feature.get("properties") or {}
            if not isinstance(props, dict):
                yield RecordProblem(None, f"{where}: properties must be an object")
                continue
            record_type = str(props.get("record") or "site")
            try:
                geom = _geometry(feature.get("geometry"), where)
                if record_type == "site":
                    record = _site(feature, props, geom, repair, where)
                    if (dupe := dupes.check(record.site.id, index)) is not None:
                        yield RecordProblem(None, dupe)
                        continue
                    yield from grouper.add_site(record)
                    continue
                site_id = str(props.get("site_id") or "")
                if not site_id:
                    raise InputError(f"{where}: a {record_type} needs a site_id property")
                child: Any
                if record_type == "feature":
                    if geom is None:
                        raise GeometryError(f"{where}: a feature needs a geometry")
                    child = feature_from_props(props, geom, site_id=site_id, repair=repair)
                elif record_type == "observation":
                    child = observation_from_props(props, site_id=site_id)
                elif record_type == "measurement":
                    child = measurement_from_props(props, site_id=site_id)
                else:
                    raise InputError(
                        f"{where}: unknown record {record_type!r}; use site, feature, observation "
                        "or measurement"
                    )
            except InputError as exc:
                reason = str(exc)
                yield RecordProblem(
                    None, reason if reason.startswith(where) else f"{where}: {reason}"
                )
                continue
            if (problem := grouper.add_child(site_id, child, None, where)) is not None:
                yield problem
    yield from grouper.finish()


def _site(
    feature: Mapping[str, Any],
    props: Mapping[str, Any],
    geom: BaseGeometry | None,
    repair: bool,
    where: str,
) -> SiteRecord:
    lowered = {str(k).lower(): v for k, v in props.items()}
    fields: dict[str, Any] = {k: lowered[k] for k in _SITE_KEYS if k in lowered}
    if "name" not in fields:
        fields["name"] = next((lowered[k] for k in _NAME_KEYS if lowered.get(k)), None)
    if "id" not in fields and feature.get("id") is not None and props.get("record") == "site":
        fields["id"] = str(feature["id"])
    extra = [
        f"{k}: {v if isinstance(v, str) else json.dumps(v)}"
        for k, v in props.items()
        if str(k).lower() not in _SITE_KEYS
        and str(k).lower() not in ("record", "aoi_wkt", "sources", *_NAME_KEYS)
        and v not in (None, "")
    ]
    if extra and props.get("record") != "site":
        notes = str(fields.get("notes") or "")
        fields["notes"] = "\n".join([notes, *extra] if notes else extra)
    aoi = None
    lon = lat = None
    if geom is not None and not geom.is_empty:
        if geom.geom_type in ("Polygon", "MultiPolygon"):
            aoi = geom
        elif geom.geom_type == "Point":
            lon, lat = float(geom.x), float(geom.y)
        elif fields.get("lon") is None:
            rep = geom.representative_point()
            lon, lat = float(rep.x), float(rep.y)
    if fields.get("lon") is not None and fields.get("lat") is not None:
        lon = lat = None  # the properties carry the site point exactly
    site = site_from_fields(fields, lon=lon, lat=lat, aoi=aoi, repair=repair, what=where)
    return SiteRecord(site=site, sources=sources_from_props(lowered.get("sources"), where))


def _site_feature(site: Site, sources: Sequence[Source] = ()) -> dict[str, Any]:
    props: dict[str, Any] = {"record": "site"}
    for key in _SITE_KEYS:
        value = getattr(site, key)
        props[key] = list(value) if isinstance(value, tuple) else value
    if sources:  # the citations travel with the site that cites them
        props["sources"] = [source_to_props(s) for s in sources]
    geom = site.aoi if site.aoi is not None else site.point
    return {"type": "Feature", "id": site.id, "geometry": mapping(geom), "properties": props}


def write_geojson(records: Iterable[SiteRecord], path: str | Path) -> int:
    """Write a FeatureCollection (sites, then each site's features, observations and
    measurements); atomic."""
    count = 0
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as fh:
        fh.write('{"type": "FeatureCollection", "features": [\n')
        first = True
        for record in records:
            items: list[dict[str, Any]] = [_site_feature(record.site, record.sources)]
            for feat in record.features:
                props = {"record": "feature", **feature_to_props(feat)}
                items.append(
                    {
                        "type": "Feature",
                        "id": feat.id,
                        "geometry": mapping(feat.geometry),
                        "properties": props,
                    }
                )
            for obs in record.observations:
                props = {"record": "observation", **observation_to_props(obs)}
                items.append(
                    {"type": "Feature", "id": obs.id, "geometry": None, "properties": props}
                )
            where = {f.id: mapping(f.geometry.representative_point()) for f in record.features}
            for m in record.measurements:
                props = {"record": "measurement", **measurement_to_props(m)}
                items.append(
                    {
                        "type": "Feature",
                        "id": m.id,
                        "geometry": where.get(m.feature_id or ""),
                        "properties": props,
                    }
                )
            for item in items:
                fh.write(("" if first else ",\n") + json.dumps(item, ensure_ascii=False))
                first = False
            count += 1
        fh.write("\n]}\n")
    log.info("wrote %d sites to %s", count, path)
    return count
