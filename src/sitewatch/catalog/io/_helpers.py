"""Shared pieces of the exchange formats: flat field coding, record building, atomic writes."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import shapely
import shapely.errors
import shapely.geometry
from shapely import wkt as shapely_wkt
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from ...errors import GeometryError, InputError, RecordProblem
from ...geo import valid_geometry
from .._codec import jsonable
from ..models import (
    Feature,
    Measurement,
    Observation,
    Site,
    SiteRecord,
    Source,
    site_id_for,
    stable_id,
)

__all__ = [
    "LIST_SEP",
    "SITE_COLUMNS",
    "DuplicateIds",
    "RecordGrouper",
    "clean_aoi",
    "exact_wkt",
    "feature_from_props",
    "feature_to_props",
    "measurement_from_props",
    "measurement_to_props",
    "observation_from_props",
    "observation_to_props",
    "parse_bool",
    "parse_float",
    "read_geometry",
    "record_id",
    "site_from_fields",
    "site_to_fields",
    "source_to_props",
    "sources_from_props",
    "split_list",
    "stable_id",
]

log = logging.getLogger(__name__)

LIST_SEP = ";"
"""Separator of list values (aliases, tags, source ids) in flat formats."""

SITE_ATTRIBUTES: tuple[str, ...] = (
    "aliases",
    "country",
    "category",
    "status",
    "declared",
    "declaration_ref",
    "confidence",
    "tags",
    "notes",
    "source_ids",
)
"""A site's descriptive fields, in the order every exchange format writes them."""
SITE_COLUMNS: tuple[str, ...] = ("id", "name", "lat", "lon", *SITE_ATTRIBUTES, "aoi_wkt")
"""The flat columns of a site, in the order the writers use."""

_TEXT_FIELDS = ("country", "declaration_ref")
_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off", ""}


def split_list(value: str | None) -> tuple[str, ...]:
    """``"a; b;c"`` -> ``("a", "b", "c")``; empty parts are dropped."""
    if not value:
        return ()
    return tuple(part.strip() for part in value.split(LIST_SEP) if part.strip())


def parse_bool(value: Any, what: str) -> bool:
    """A boolean from a flat value (true/false, yes/no, 1/0)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InputError(f"{what} must be true or false (also yes/no, 1/0), got {value!r}")


def parse_float(value: Any, what: str) -> float | None:
    """A float from a flat value; empty -> ``None``."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return None if value != value else float(value)  # NaN -> None
    text = str(value).strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise InputError(f"{what} must be a number, got {value!r}") from None


def read_geometry(raw: Any, where: str) -> BaseGeometry | None:
    """A shapely geometry from a GeoJSON geometry mapping (``None`` stays ``None``).

    Malformed mappings (wrong nesting, empty shells with holes, non-numeric coordinates) raise
    :class:`~sitewatch.errors.GeometryError` naming ``where``, never a shapely or builtin error.
    """
    if raw is None:
        return None
    try:
        return shapely.geometry.shape(raw)
    except (
        ValueError,
        TypeError,
        AttributeError,
        KeyError,
        IndexError,
        shapely.errors.ShapelyError,
    ) as exc:
        raise GeometryError(f"{where}: unreadable geometry ({exc}); fix its coordinates") from None


def clean_aoi(geom: BaseGeometry, *, repair: bool, what: str) -> BaseGeometry:
    """Validate an AOI (repairing it with a warning when asked) and keep its polygonal part."""
    fixed = valid_geometry(geom, repair=repair, what=what)
    if fixed is not geom:
        log.warning(
            "%s was invalid (%s) and has been repaired", what, shapely.is_valid_reason(geom)
        )
    if fixed.geom_type in ("Polygon", "MultiPolygon"):
        return fixed
    polys: list[Polygon] = []
    for part in getattr(fixed, "geoms", [fixed]):
        if isinstance(part, Polygon):
            polys.append(part)
        elif isinstance(part, MultiPolygon):
            polys.extend(part.geoms)
    if not polys:
        raise GeometryError(f"{what} must be a polygon, got {geom.geom_type}")
    return polys[0] if len(polys) == 1 else MultiPolygon(polys)


def _text(fields: Mapping[str, Any], key: str) -> str | None:
    value = fields.get(key)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def site_from_fields(
    fields: Mapping[str, Any],
    *,
    lon: float | None = None,
    lat: float | None = None,
    aoi: BaseGeometry | None = None,
    repair: bool = False,
    what: str = "site",
) -> Site:
    """Build a :class:`Site` from flat fields (strings or native values).

    ``lon``/``lat``/``aoi`` given as arguments win over ``fields``; a missing point is taken from
    the AOI's representative point, a missing id is the slug of the name. Raises
    :class:`~sitewatch.errors.InputError` with a message naming the bad value.
    """
    name = _text(fields, "name")
    if name is None:
        raise InputError(f"{what} has no name; give a name (or title) column/value")
    # a name without any ASCII letter or digit ("신포") gets a stable id made from its hash
    site_id = _text(fields, "id") or site_id_for(name)
    label = f"{what} {site_id!r}"
    if aoi is None and (wkt_text := _text(fields, "aoi_wkt")) is not None:
        try:
            aoi = shapely_wkt.loads(wkt_text)
        except shapely.errors.GEOSException as exc:
            raise GeometryError(f"{label}: aoi_wkt is not valid WKT ({exc})") from None
    if aoi is not None:
        aoi = clean_aoi(aoi, repair=repair, what=f"{label} AOI")
    if lon is None:
        lon = parse_float(fields.get("lon"), f"{label} longitude")
    if lat is None:
        lat = parse_float(fields.get("lat"), f"{label} latitude")
    if lon is None or lat is None:
        if aoi is None:
            raise InputError(f"{label} has no coordinates: give lat and lon (or an AOI polygon)")
        rep = aoi.representative_point()
        lon, lat = float(rep.x), float(rep.y)
    kwargs: dict[str, Any] = {}
    for key in _TEXT_FIELDS:
        kwargs[key] = _text(fields, key)
    for key in ("category", "status"):
        if (value := _text(fields, key)) is not None:
            kwargs[key] = value.lower().replace(" ", "_").replace("-", "_")
    if (declared := fields.get("declared")) is not None:
        kwargs["declared"] = parse_bool(declared, f"{label} declared")
    kwargs["confidence"] = parse_float(fields.get("confidence"), f"{label} confidence")
    notes = fields.get("notes")
    return Site(
        id=site_id,
        name=name,
        lon=lon,
        lat=lat,
        aoi=aoi,
        aliases=_as_tuple(fields.get("aliases")),
        tags=_as_tuple(fields.get("tags")),
        source_ids=_as_tuple(fields.get("source_ids")),
        notes="" if notes is None else str(notes),
        **kwargs,
    )


def _as_tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, list | tuple):
        return tuple(str(v).strip() for v in value if str(v).strip())
    return split_list(str(value))


def _ring_wkt(coords: Any) -> str:
    return "(" + ", ".join(f"{x!r} {y!r}" for x, y, *_ in coords) + ")"


def _polygon_wkt(poly: Polygon) -> str:
    rings = [poly.exterior, *poly.interiors]
    return "(" + ", ".join(_ring_wkt(r.coords) for r in rings) + ")"


def exact_wkt(geom: BaseGeometry) -> str:
    """WKT of a (multi)polygon with every coordinate exact (GEOS's writer rounds the last digit)."""
    if isinstance(geom, Polygon):
        return "POLYGON " + _polygon_wkt(geom)
    if isinstance(geom, MultiPolygon):
        return "MULTIPOLYGON (" + ", ".join(_polygon_wkt(p) for p in geom.geoms) + ")"
    return str(geom.wkt)


def site_to_fields(site: Site, *, with_aoi: bool = True) -> dict[str, str]:
    """The flat string fields of a site (lists joined with ``;``, AOI as WKT)."""
    return {
        "id": site.id,
        "name": site.name,
        "lat": repr(site.lat),
        "lon": repr(site.lon),
        "aliases": LIST_SEP.join(site.aliases),
        "country": site.country or "",
        "category": site.category,
        "status": site.status,
        "declared": "true" if site.declared else "false",
        "declaration_ref": site.declaration_ref or "",
        "confidence": "" if site.confidence is None else repr(site.confidence),
        "tags": LIST_SEP.join(site.tags),
        "notes": site.notes,
        "source_ids": LIST_SEP.join(site.source_ids),
        "aoi_wkt": exact_wkt(site.aoi) if (with_aoi and site.aoi is not None) else "",
    }


def source_to_props(source: Source) -> dict[str, Any]:
    """JSON-able fields of a source (a citation)."""
    return {
        "id": source.id,
        "citation": source.citation,
        "url": source.url,
        "licence": source.licence,
        "accessed": source.accessed.isoformat() if source.accessed else None,
        "notes": source.notes,
    }


def sources_from_props(value: Any, what: str) -> tuple[Source, ...]:
    """The sources of :func:`source_to_props` dicts (a list, or its JSON text); ``()`` for
    none. A malformed entry is an :class:`InputError` naming ``what``."""
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise InputError(f"{what}: sources must be a JSON list of citations") from None
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise InputError(f"{what}: sources must be a list of objects with id and citation")
    out = []
    for v in value:
        if not v.get("id") or not v.get("citation"):
            raise InputError(
                f"{what}: every source needs an id and a citation, got {dict(v)!r:.80}"
            )
        out.append(
            Source(
                id=str(v["id"]),
                citation=str(v["citation"]),
                url=_scalar_text(v.get("url"), "source url"),
                licence=_scalar_text(v.get("licence"), "source licence"),
                accessed=_date(v.get("accessed"), f"{what} source accessed"),
                notes=str(v.get("notes") or ""),
            )
        )
    return tuple(out)


def feature_to_props(feature: Feature) -> dict[str, Any]:
    """JSON-able properties of a site feature (geometry apart)."""
    return {
        "id": feature.id,
        "site_id": feature.site_id,
        "kind": feature.kind,
        "name": feature.name,
        "attributes": feature.attributes,
        "first_seen": feature.first_seen.isoformat() if feature.first_seen else None,
        "last_seen": feature.last_seen.isoformat() if feature.last_seen else None,
    }


def _date(value: Any, what: str) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):  # a date-time field of a GeoPackage or KML file
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        raise InputError(f"{what} must be a date YYYY-MM-DD, got {value!r}") from None


def feature_from_props(
    props: Mapping[str, Any], geometry: BaseGeometry | None, *, site_id: str, repair: bool = False
) -> Feature:
    """A :class:`Feature` from properties written by :func:`feature_to_props` (or by hand)."""
    if geometry is None:
        raise GeometryError(
            f"feature {props.get('id') or props.get('name') or ''!r} of site {site_id!r} has no "
            "geometry; give it a point, line or polygon"
        )
    attrs = props.get("attributes") or {}
    if isinstance(attrs, str):
        try:
            attrs = json.loads(attrs)
        except json.JSONDecodeError:
            raise InputError(f"feature attributes must be a JSON object, got {attrs!r}") from None
    if not isinstance(attrs, dict):
        raise InputError(f"feature attributes must be a JSON object, got {attrs!r}")
    fid = str(props.get("id") or stable_id(site_id, str(props.get("name", "")), geometry.wkb_hex))
    what = f"feature {fid!r} of site {site_id!r}"
    geometry = valid_geometry(geometry, repair=repair, what=what)
    return Feature(
        id=fid,
        site_id=site_id,
        kind=str(props.get("kind") or "other"),  # type: ignore[arg-type]
        geometry=geometry,
        name=str(props.get("name") or ""),
        attributes=attrs,
        first_seen=_date(props.get("first_seen"), f"{what} first_seen"),
        last_seen=_date(props.get("last_seen"), f"{what} last_seen"),
    )


def record_id(record: SiteRecord | RecordProblem) -> str | None:
    """The site id of a record (``None`` for a problem)."""
    return record.site.id if isinstance(record, SiteRecord) else None


class DuplicateIds:
    """Remembers the site ids seen in a file and reports the second occurrence of one.

    Files can hold millions of sites, so the ids are kept as 64-bit hashes with the position
    (line, feature number) of their first occurrence in an open-addressing table of two numpy
    arrays: 16 bytes a site instead of ~120 for a dict of strings. Two different ids with one
    hash (odds about n²/2⁶⁵) would be reported as a duplicate.
    """

    def __init__(self, label: Callable[[int], str] = lambda n: f"line {n}") -> None:
        self.label = label
        self.count = 0
        self._keys = np.zeros(1 << 12, dtype=np.uint64)
        self._where = np.zeros(1 << 12, dtype=np.int64)  # 0 = empty slot; positions are >= 1

    def check(self, site_id: str, position: int) -> str | None:
        """``None`` if ``site_id`` is new, else the reason text naming both places."""
        key = np.uint64(hash(site_id) & 0xFFFF_FFFF_FFFF_FFFF)
        mask = len(self._keys) - 1
        slot = int(key) & mask
        while self._where[slot] != 0:
            if self._keys[slot] == key:
                first = self.label(int(self._where[slot]))
                return (
                    f"duplicate site id {site_id!r} ({first} and {self.label(position)}); give "
                    "each site its own id (an id column) or remove the repeated record"
                )
            slot = (slot + 1) & mask
        self._keys[slot] = key
        self._where[slot] = position
        self.count += 1
        if self.count * 2 > len(self._keys):
            self._grow()
        return None

    def seen(self, site_id: str) -> bool:
        """Whether ``site_id`` was checked before."""
        key = np.uint64(hash(site_id) & 0xFFFF_FFFF_FFFF_FFFF)
        mask = len(self._keys) - 1
        slot = int(key) & mask
        while self._where[slot] != 0:
            if self._keys[slot] == key:
                return True
            slot = (slot + 1) & mask
        return False

    def _grow(self) -> None:
        used = self._where != 0
        keys, where = self._keys[used], self._where[used]
        self._keys = np.zeros(len(self._keys) * 2, dtype=np.uint64)
        self._where = np.zeros(len(self._keys), dtype=np.int64)
        mask = len(self._keys) - 1
        for start in range(0, len(keys), 4096):  # in chunks: no big list of Python ints
            chunk = zip(
                keys[start : start + 4096].tolist(),
                where[start : start + 4096].tolist(),
                strict=True,
            )
            for key, pos in chunk:
                slot = key & mask
                while self._where[slot] != 0:
                    slot = (slot + 1) & mask
                self._keys[slot] = key
                self._where[slot] = pos


class RecordGrouper:
    """Attach features and observations that follow (or precede) their site in a streamed file.

    A site is held until the next site starts (or the file ends) so that the children written after
    it join it; children of a site not seen yet wait (bounded by the number of such orphans);
    children of a site already handed out are reported as problems.
    """

    def __init__(self, ids: DuplicateIds) -> None:
        self.ids = ids
        self.pending: SiteRecord | None = None
        self.features: list[Feature] = []
        self.observations: list[Any] = []
        self.measurements: list[Measurement] = []
        self.orphans: dict[str, list[tuple[Any, int | None, str]]] = {}

    def add_site(self, record: SiteRecord) -> Iterator[SiteRecord]:
        """Start a new site; yields the previous one, complete."""
        if self.pending is not None:
            yield self._flush()
        self.pending = record
        for child, _, _ in self.orphans.pop(record.site.id, []):
            self._attach(child)

    def add_child(
        self, site_id: str, child: Any, line: int | None, where: str
    ) -> RecordProblem | None:
        """Attach a :class:`Feature`, :class:`Observation` or :class:`Measurement` to its site
        (or hold it)."""
        if self.pending is not None and self.pending.site.id == site_id:
            self._attach(child)
            return None
        if self.ids.seen(site_id):
            return RecordProblem(
                line,
                f"{where} belongs to site {site_id!r}, which came earlier in the file with other "
                "sites in between; put a site's features right after it",
            )
        self.orphans.setdefault(site_id, []).append((child, line, where))
        return None

    def finish(self) -> Iterator[SiteRecord | RecordProblem]:
        """Yield the last site and a problem for every child whose site never came."""
        if self.pending is not None:
            yield self._flush()
        for site_id, children in self.orphans.items():
            for _, line, where in children:
                yield RecordProblem(
                    line, f"{where} belongs to site {site_id!r}, which is not in the file"
                )
        self.orphans.clear()

    def _attach(self, child: Any) -> None:
        if isinstance(child, Feature):
            self.features.append(child)
        elif isinstance(child, Measurement):
            self.measurements.append(child)
        else:
            self.observations.append(child)

    def _flush(self) -> SiteRecord:
        assert self.pending is not None
        rec = self.pending
        out = SiteRecord(
            site=rec.site,
            features=rec.features + tuple(self.features),
            observations=rec.observations + tuple(self.observations),
            sources=rec.sources,
            line=rec.line,
            measurements=rec.measurements + tuple(self.measurements),
        )
        self.pending, self.features, self.observations, self.measurements = None, [], [], []
        return out


def observation_to_props(obs: Observation) -> dict[str, Any]:
    """JSON-able fields of an observation."""
    return {
        "id": obs.id,
        "site_id": obs.site_id,
        "acquired": obs.acquired.isoformat(),
        "sensor": obs.sensor,
        "scene_id": obs.scene_id,
        "gsd_m": obs.gsd_m,
        "sun_azimuth": obs.sun_azimuth,
        "sun_elevation": obs.sun_elevation,
        "view_off_nadir": obs.view_off_nadir,
        "analyst": obs.analyst,
        "phase": obs.phase,
        "text": obs.text,
        "evidence": list(obs.evidence),
    }


def _scalar_text(value: Any, name: str) -> str | None:
    """Text from a scalar property (a number becomes its text); lists and objects are refused."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InputError(f"observation {name} must be text, got {value!r:.60}")
    return str(value)


def observation_from_props(props: Mapping[str, Any], *, site_id: str) -> Observation:
    """An :class:`Observation` from :func:`observation_to_props` output."""
    raw = props.get("acquired")
    try:
        acquired = datetime.fromisoformat(str(raw))
    except ValueError:
        raise InputError(f"observation acquired must be an ISO date-time, got {raw!r}") from None
    if acquired.tzinfo is None:
        acquired = acquired.replace(tzinfo=UTC)
    oid = str(
        props.get("id") or stable_id(site_id, acquired.isoformat(), str(props.get("scene_id")))
    )
    return Observation(
        id=oid,
        site_id=site_id,
        acquired=acquired,
        sensor=str(props.get("sensor") or ""),
        scene_id=_scalar_text(props.get("scene_id"), "scene_id"),
        gsd_m=parse_float(props.get("gsd_m"), "gsd_m"),
        sun_azimuth=parse_float(props.get("sun_azimuth"), "sun_azimuth"),
        sun_elevation=parse_float(props.get("sun_elevation"), "sun_elevation"),
        view_off_nadir=parse_float(props.get("view_off_nadir"), "view_off_nadir"),
        analyst=str(props.get("analyst") or ""),
        phase=props.get("phase") or None,
        text=str(props.get("text") or ""),
        evidence=tuple(str(e) for e in props.get("evidence") or ()),
    )


def measurement_to_props(m: Measurement) -> dict[str, Any]:
    """JSON-able fields of a measurement."""
    return {
        "id": m.id,
        "site_id": m.site_id,
        "kind": m.kind,
        "value": m.value,
        "unit": m.unit,
        "uncertainty": m.uncertainty,
        "feature_id": m.feature_id,
        "observation_id": m.observation_id,
        "method": m.method,
        "inputs": jsonable(m.inputs),
        "analyst": m.analyst,
        "measured_at": m.measured_at.isoformat() if m.measured_at else None,
    }


def measurement_from_props(props: Mapping[str, Any], *, site_id: str) -> Measurement:
    """A :class:`Measurement` from :func:`measurement_to_props` output (``inputs`` may be JSON
    text, as a GeoPackage column holds it)."""
    value = parse_float(props.get("value"), "measurement value")
    if value is None:
        raise InputError(f"measurement {props.get('id')!r} of site {site_id!r} has no value")
    inputs = props.get("inputs") or {}
    if isinstance(inputs, str):
        try:
            inputs = json.loads(inputs)
        except json.JSONDecodeError:
            raise InputError(
                f"measurement inputs must be a JSON object, got {inputs!r:.60}"
            ) from None
    if not isinstance(inputs, dict):
        raise InputError(f"measurement inputs must be a JSON object, got {inputs!r:.60}")
    raw = props.get("measured_at")
    measured_at = None
    if raw not in (None, ""):
        try:
            measured_at = datetime.fromisoformat(str(raw))
        except ValueError:
            raise InputError(
                f"measurement measured_at must be an ISO date-time, got {raw!r}"
            ) from None
        if measured_at.tzinfo is None:
            measured_at = measured_at.replace(tzinfo=UTC)
    mid = str(
        props.get("id")
        or stable_id(site_id, str(props.get("kind")), str(value), str(props.get("feature_id")))
    )
    return Measurement(
        id=mid,
        site_id=site_id,
        kind=str(props.get("kind") or ""),  # type: ignore[arg-type]
        value=value,
        unit=str(props.get("unit") or ""),
        uncertainty=parse_float(props.get("uncertainty"), "measurement uncertainty"),
        feature_id=_scalar_text(props.get("feature_id"), "feature_id"),
        observation_id=_scalar_text(props.get("observation_id"), "observation_id"),
        method=str(props.get("method") or ""),
        inputs=inputs,
        analyst=str(props.get("analyst") or ""),
        measured_at=measured_at,
    )
