"""KML 2.2 and KMZ sites for Google Earth, parsed safely and streamed.

Written files hold a ``sites`` Folder with one Placemark per site (name, notes as description,
every site field as ExtendedData ``<Data>`` with the sources it cites as JSON, the point and the
AOI polygon in a MultiGeometry); the features, observations and measurements of a site follow it
in sub-Folders of their own, each with ``record`` and every field in ExtendedData, so that a KML
file carries a site's whole record, as GeoJSON does. An observation lies at the site's point with
its acquisition as ``<TimeStamp>`` (Google Earth's time slider), a measurement on the feature it
measures (else at the site's point) and is labelled with its value. Reading uses defusedxml: a file
with external entities or entity declarations (the "billion laughs" bomb) raises
:class:`~sitewatch.errors.UnsafeInputError`. Placemarks without ExtendedData (Google Earth files
made by hand) import as sites with the slug of their name as id.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import IO, Any
from xml.etree.ElementTree import Element, ParseError
from xml.sax.saxutils import escape

import defusedxml
from defusedxml import ElementTree as SafeET
from shapely.geometry import LineString, MultiPolygon, Point, Polygon
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union

from ...errors import GeometryError, InputError, RecordProblem, SitewatchError, UnsafeInputError
from ...files import atomic_path
from ..models import Feature, Measurement, Observation, Site, SiteRecord, Source
from ._helpers import (
    SITE_COLUMNS,
    DuplicateIds,
    RecordGrouper,
    feature_from_props,
    feature_to_props,
    measurement_from_props,
    measurement_to_props,
    observation_from_props,
    observation_to_props,
    site_from_fields,
    site_to_fields,
    source_to_props,
    sources_from_props,
)

Child = Feature | Observation | Measurement

__all__ = ["MAX_KML_BYTES", "read_kml", "read_kmz", "write_kml", "write_kmz"]

log = logging.getLogger(__name__)

MAX_KML_BYTES = 2 * 1024**3
"""Largest uncompressed KML accepted inside a KMZ."""
_MAX_RATIO = 200  # uncompressed/compressed above this (and above 64 MB) is treated as a zip bomb
_KML_NS = "http://www.opengis.net/kml/2.2"
_KNOWN = frozenset(SITE_COLUMNS) - {"aoi_wkt"}


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml(text: str) -> str:
    """Escape text for XML 1.0; characters XML cannot hold at all (NUL, most C0 controls) drop."""
    cleaned = _NOT_XML.sub("", text)
    if cleaned != text:
        log.warning("dropped control characters that KML (XML) cannot hold from %r", cleaned[:40])
    return escape(cleaned, {"\r": "&#13;"})


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(elem: Element, name: str) -> Element | None:
    for child in elem:
        if _local(child.tag) == name:
            return child
    return None


def _text(elem: Element | None) -> str | None:
    if elem is None or elem.text is None:
        return None
    return elem.text.strip()


# --- geometry ------------------------------------------------------------------------------------


def _coords(elem: Element | None, where: str) -> list[tuple[float, float]]:
    text = _text(_child(elem, "coordinates")) if elem is not None else None
    if not text:
        raise GeometryError(f"{where}: a geometry without coordinates")
    out = []
    for item in text.split():
        parts = item.split(",")
        try:
            out.append((float(parts[0]), float(parts[1])))
        except (ValueError, IndexError):
            raise GeometryError(
                f"{where}: bad KML coordinate {item!r} (expected lon,lat[,alt])"
            ) from None
    return out


def _ring(boundary: Element, where: str) -> list[tuple[float, float]]:
    ring = _child(boundary, "LinearRing")
    return _coords(ring, where)


def _geometries(elem: Element, where: str) -> Iterator[BaseGeometry]:
    for child in elem:
        name = _local(child.tag)
        if name == "Point":
            yield Point(_coords(child, where)[0])
        elif name == "LineString":
            yield LineString(_coords(child, where))
        elif name == "Polygon":
            outer = _child(child, "outerBoundaryIs")
            if outer is None:
                raise GeometryError(f"{where}: a Polygon without outerBoundaryIs")
            holes = [_ring(b, where) for b in child if _local(b.tag) == "innerBoundaryIs"]
            try:
                yield Polygon(_ring(outer, where), holes)
            except ValueError as exc:
                raise GeometryError(f"{where}: bad polygon ({exc})") from None
        elif name == "MultiGeometry":
            yield from _geometries(child, where)


def _coord_text(coords: Iterable[Any]) -> str:
    return " ".join(f"{x!r},{y!r}" for x, y, *_ in coords)


def _geom_kml(geom: BaseGeometry) -> str:
    kind = geom.geom_type
    if kind == "Point":
        return f"<Point><coordinates>{geom.x!r},{geom.y!r}</coordinates></Point>"
    if kind in ("LineString", "LinearRing"):
        return f"<LineString><coordinates>{_coord_text(geom.coords)}</coordinates></LineString>"
    if kind == "Polygon":
        assert isinstance(geom, Polygon)
        inner = "".join(
            f"<innerBoundaryIs><LinearRing><coordinates>{_coord_text(r.coords)}</coordinates>"
            "</LinearRing></innerBoundaryIs>"
            for r in geom.interiors
        )
        return (
            f"<Polygon><outerBoundaryIs><LinearRing><coordinates>{_coord_text(geom.exterior.coords)}"
            f"</coordinates></LinearRing></outerBoundaryIs>{inner}</Polygon>"
        )
    parts = "".join(_geom_kml(g) for g in getattr(geom, "geoms", ()))
    return f"<MultiGeometry>{parts}</MultiGeometry>"


# --- reading -------------------------------------------------------------------------------------


def _extended(placemark: Element) -> dict[str, str]:
    data: dict[str, str] = {}
    ext = _child(placemark, "ExtendedData")
    if ext is None:
        return data
    for item in ext.iter():
        name = _local(item.tag)
        if name == "Data" and item.get("name"):
            data[str(item.get("name"))] = _text(_child(item, "value")) or ""
        elif name == "SimpleData" and item.get("name"):
            data[str(item.get("name"))] = (item.text or "").strip()
    return data


def _json_field(data: dict[str, str], key: str, where: str, empty: Any) -> Any:
    """The JSON value of ExtendedData field ``key`` (``empty`` when absent)."""
    if not data.get(key):
        return empty
    try:
        return json.loads(data[key])
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: {key} is not valid JSON ({exc}): {data[key]!r:.60}") from None


def _child_record(
    record: str, data: dict[str, str], geoms: list[BaseGeometry], where: str, repair: bool
) -> Child:
    """A feature, observation or measurement placemark's record (see the module's layout)."""
    site_id = data.get("site_id") or ""
    if not site_id:
        raise InputError(f"{where}: a {record} placemark needs a site_id")
    props: dict[str, Any] = dict(data)
    if record == "feature":
        if not geoms:
            raise GeometryError(f"{where}: a feature placemark needs a geometry")
        geom = geoms[0] if len(geoms) == 1 else unary_union(geoms)
        props.setdefault("name", "")  # the placemark's label is not the feature's name
        props["attributes"] = _json_field(data, "attributes", where, {})
        return feature_from_props(props, geom, site_id=site_id, repair=repair)
    if record == "observation":
        props["evidence"] = _json_field(data, "evidence", where, [])
        if not isinstance(props["evidence"], list):
            raise InputError(f"{where}: evidence must be a JSON list of references")
        return observation_from_props(props, site_id=site_id)
    if record == "measurement":
        return measurement_from_props(props, site_id=site_id)  # inputs: JSON text
    raise InputError(
        f"{where}: unknown record {record!r}; use site, feature, observation or measurement"
    )


def _placemark(elem: Element, index: int, repair: bool) -> tuple[SiteRecord | Child, str]:
    """A site's record or one of its features, observations or measurements, and where it is."""
    data = _extended(elem)
    name = _text(_child(elem, "name"))
    where = f"placemark #{index}" + (f" ({name!r})" if name else "")
    geoms = list(_geometries(elem, where))
    record = data.get("record") or "site"
    if record != "site":
        return _child_record(record, data, geoms, where, repair), where
    fields: dict[str, Any] = {k: v for k, v in data.items() if k in _KNOWN}
    if not fields.get("name"):
        fields["name"] = name
    if "notes" not in data:
        fields["notes"] = _text(_child(elem, "description")) or ""
    # our sources travel as a JSON list; a hand-made file's "sources" text is kept in the notes
    cited = data.get("sources", "") if data.get("sources", "").lstrip().startswith("[") else ""
    extra = [
        f"{k}: {v}"
        for k, v in data.items()
        if k not in _KNOWN and k != "record" and v and not (k == "sources" and cited)
    ]
    if extra:
        fields["notes"] = "\n".join([fields["notes"], *extra] if fields["notes"] else extra)
    polys = [g for g in geoms if isinstance(g, Polygon | MultiPolygon)]
    points = [g for g in geoms if isinstance(g, Point)]
    aoi: BaseGeometry | None = None
    if polys:
        aoi = (
            polys[0]
            if len(polys) == 1
            else MultiPolygon([p for g in polys for p in getattr(g, "geoms", [g])])
        )
    lon = lat = None
    if not (fields.get("lon") and fields.get("lat")):
        if points:
            lon, lat = float(points[0].x), float(points[0].y)
        elif geoms and aoi is None:
            rep = geoms[0].representative_point()
            lon, lat = float(rep.x), float(rep.y)
    site = site_from_fields(fields, lon=lon, lat=lat, aoi=aoi, repair=repair, what=where)
    return SiteRecord(site=site, sources=sources_from_props(cited, where)), where


def _iter_kml(fh: IO[bytes], source: str, repair: bool) -> Iterator[SiteRecord | RecordProblem]:
    dupes = DuplicateIds(lambda n: f"placemark #{n}")
    grouper = RecordGrouper(dupes)
    stack: list[Element] = []
    index = 0
    try:
        events = SafeET.iterparse(
            fh,
            events=("start", "end"),
            forbid_dtd=False,
            forbid_entities=True,
            forbid_external=True,
        )
        for event, elem in events:
            if event == "start":
                if not stack and _local(elem.tag) != "kml":
                    raise InputError(
                        f"{source}: not a KML file (root element <{_local(elem.tag)}>)"
                    )
                stack.append(elem)
                continue
            stack.pop()
            name = _local(elem.tag)
            if name not in ("Placemark", "Folder", "Document"):
                continue
            if name == "Placemark":
                index += 1
                yield from _handle(elem, index, repair, dupes, grouper)
            if stack:  # free the parsed subtree: files can be large
                stack[-1].remove(elem)
    except defusedxml.DefusedXmlException as exc:
        raise UnsafeInputError(
            f"{source}: refused unsafe XML ({type(exc).__name__}: {exc}); KML files must not "
            "declare entities or reference external resources"
        ) from None
    except ParseError as exc:
        raise InputError(f"{source}: not well-formed XML ({exc}); is it a KML file?") from None
    except LookupError as exc:  # the XML declaration names an encoding Python does not know
        if type(exc) is not LookupError:  # KeyError, IndexError: a bug, not the file
            raise
        raise InputError(f"{source}: {exc}; save the file as UTF-8") from None
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise InputError(f"{source}: the KMZ is truncated or corrupt ({exc})") from None
    yield from grouper.finish()


def _handle(
    elem: Element, index: int, repair: bool, dupes: DuplicateIds, grouper: RecordGrouper
) -> Iterator[SiteRecord | RecordProblem]:
    try:
        value, where = _placemark(elem, index, repair)
    except InputError as exc:
        reason = str(exc)
        at = f"placemark #{index}"
        yield RecordProblem(None, reason if reason.startswith(at) else f"{at}: {reason}")
        return
    if isinstance(value, SiteRecord):
        if (dupe := dupes.check(value.site.id, index)) is not None:
            yield RecordProblem(None, dupe)
            return
        yield from grouper.add_site(value)
    elif (problem := grouper.add_child(value.site_id, value, None, where)) is not None:
        yield problem


def read_kml(path: str | Path, *, repair: bool = False) -> Iterator[SiteRecord | RecordProblem]:
    """Stream the sites (and their features) of a KML file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    with path.open("rb") as fh:
        yield from _iter_kml(fh, str(path), repair)


def _kml_member(zf: zipfile.ZipFile, source: str) -> zipfile.ZipInfo:
    kmls = [i for i in zf.infolist() if i.filename.lower().endswith(".kml") and not i.is_dir()]
    if not kmls:
        raise InputError(f"{source}: a KMZ must contain a .kml file (doc.kml); this one has none")
    info = next((i for i in kmls if i.filename == "doc.kml"), kmls[0])
    parts = PurePosixPath(info.filename.replace("\\", "/")).parts
    if info.filename.startswith(("/", "\\")) or ".." in parts or ":" in info.filename:
        raise UnsafeInputError(
            f"{source}: refused KMZ member with an unsafe path {info.filename!r}"
        )
    if info.file_size > MAX_KML_BYTES:
        raise UnsafeInputError(
            f"{source}: {info.filename} unpacks to {info.file_size} bytes, over the "
            f"{MAX_KML_BYTES} byte limit"
        )
    if info.file_size > 64 * 1024**2 and info.file_size > _MAX_RATIO * max(info.compress_size, 1):
        raise UnsafeInputError(
            f"{source}: {info.filename} compresses {info.file_size // max(info.compress_size, 1)}:1, "
            "which looks like a zip bomb; refused"
        )
    return info


class _Bounded(io.RawIOBase):
    """A reader that fails once more than ``limit`` bytes come out (a lying zip header)."""

    def __init__(self, raw: IO[bytes], limit: int, source: str) -> None:
        self.raw, self.left, self.source = raw, limit, source

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(min(len(buffer), self.left + 1))
        self.left -= len(data)
        if self.left < 0:
            raise UnsafeInputError(f"{self.source}: the KML inside unpacks larger than declared")
        buffer[: len(data)] = data
        return len(data)


def read_kmz(path: str | Path, *, repair: bool = False) -> Iterator[SiteRecord | RecordProblem]:
    """Stream the sites of a KMZ (a zip with ``doc.kml``); only that KML member is read."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(f"{path}: not a KMZ (zip) file, or it is truncated ({exc})") from None
    with zf:
        info = _kml_member(zf, str(path))
        try:
            with zf.open(info) as raw:
                bounded = io.BufferedReader(_Bounded(raw, info.file_size, str(path)))
                yield from _iter_kml(bounded, f"{path}!{info.filename}", repair)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            if isinstance(exc, SitewatchError):
                raise
            raise InputError(
                f"{path}: the KMZ member {info.filename} is corrupt or truncated ({exc}); "
                "export the KMZ again"
            ) from None


# --- writing -------------------------------------------------------------------------------------


def _data(fields: dict[str, str]) -> str:
    items = "".join(
        f'<Data name="{k}"><value>{_xml(v)}</value></Data>' for k, v in fields.items() if v != ""
    )
    return f"<ExtendedData>{items}</ExtendedData>"


def _site_placemark(site: Site, sources: Sequence[Source] = ()) -> str:
    fields = {"record": "site", **site_to_fields(site, with_aoi=False)}
    fields.pop("aoi_wkt", None)
    if sources:  # the citations travel with the site that cites them
        fields["sources"] = json.dumps([source_to_props(s) for s in sources], ensure_ascii=False)
    geom = site.point if site.aoi is None else None
    shape_kml = (
        _geom_kml(geom)
        if geom is not None
        else f"<MultiGeometry>{_geom_kml(site.point)}{_geom_kml(site.aoi)}</MultiGeometry>"
    )
    return (
        f"<Placemark><name>{_xml(site.name)}</name>"
        f"<description>{_xml(site.notes)}</description>{_data(fields)}{shape_kml}</Placemark>\n"
    )


def _fields(record: str, props: dict[str, Any]) -> dict[str, str]:
    """ExtendedData of a child record: text as it is, numbers as their text, lists and objects
    as JSON (empty ones left out)."""
    fields = {"record": record}
    for key, value in props.items():
        if isinstance(value, list | dict):
            fields[key] = json.dumps(value, ensure_ascii=False) if value else ""
        else:
            fields[key] = "" if value is None else str(value)
    return fields


def _feature_placemark(feature: Feature) -> str:
    fields = _fields("feature", feature_to_props(feature))
    label = feature.name or feature.kind
    return f"<Placemark><name>{_xml(label)}</name>{_data(fields)}{_geom_kml(feature.geometry)}</Placemark>\n"


def _observation_placemark(obs: Observation, site: Site) -> str:
    label = obs.acquired.date().isoformat() + (
        f" {obs.phase.replace('_', ' ')}" if obs.phase else ""
    )
    when = obs.acquired.isoformat().replace("+00:00", "Z")
    return (
        f"<Placemark><name>{_xml(label)}</name><description>{_xml(obs.text)}</description>"
        f"<TimeStamp><when>{when}</when></TimeStamp>"
        f"{_data(_fields('observation', observation_to_props(obs)))}{_geom_kml(site.point)}"
        "</Placemark>\n"
    )


def _measurement_placemark(m: Measurement, at: BaseGeometry) -> str:
    from ...analysis._quantity import unit_text, value_text

    if m.uncertainty is not None and m.uncertainty > 0:
        label = f"{m.kind} {value_text(m.value, m.uncertainty, m.unit)}"
    else:
        label = f"{m.kind} {m.value:g} {unit_text(m.unit)}".strip()
    return (
        f"<Placemark><name>{_xml(label)}</name>"
        f"{_data(_fields('measurement', measurement_to_props(m)))}{_geom_kml(at)}</Placemark>\n"
    )


def _write_kml_text(records: Iterable[SiteRecord], out: IO[str], title: str) -> int:
    out.write(
        f'<?xml version="1.0" encoding="UTF-8"?>\n<kml xmlns="{_KML_NS}">\n<Document>'
        f"<name>{_xml(title)}</name>\n<Folder><name>sites</name>\n"
    )
    count = 0
    for record in records:
        site = record.site
        out.write(_site_placemark(site, record.sources))
        at = {f.id: f.geometry.representative_point() for f in record.features}
        children = (
            ("features", [_feature_placemark(f) for f in record.features]),
            ("observations", [_observation_placemark(o, site) for o in record.observations]),
            (
                "measurements",
                [
                    _measurement_placemark(m, at.get(m.feature_id or "", site.point))
                    for m in record.measurements
                ],
            ),
        )
        for folder, placemarks in children:
            if placemarks:
                out.write(f"<Folder><name>{_xml(site.name)} {folder}</name>\n")
                out.writelines(placemarks)
                out.write("</Folder>\n")
        count += 1
    out.write("</Folder>\n</Document>\n</kml>\n")
    return count


def write_kml(
    records: Iterable[SiteRecord], path: str | Path, *, title: str = "sitewatch sites"
) -> int:
    """Write a KML 2.2 file for Google Earth; atomic. Returns the number of sites."""
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as fh:
        count = _write_kml_text(records, fh, title)
    log.info("wrote %d sites to %s", count, path)
    return count


def write_kmz(
    records: Iterable[SiteRecord], path: str | Path, *, title: str = "sitewatch sites"
) -> int:
    """Write a KMZ (zip holding ``doc.kml``); atomic. Returns the number of sites."""
    # the KML goes through a temporary file so that zipfile knows its size: a streamed member
    # would need zip64 headers, which GDAL's libkml reader refuses
    with atomic_path(path) as tmp:
        fd, kml_name = tempfile.mkstemp(prefix=f".{tmp.name}.", suffix=".kml", dir=tmp.parent)
        os.close(fd)
        kml_tmp = Path(kml_name)
        try:
            with kml_tmp.open("w", encoding="utf-8") as fh:
                count = _write_kml_text(records, fh, title)
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                zf.write(kml_tmp, "doc.kml")
        finally:
            kml_tmp.unlink(missing_ok=True)
    log.info("wrote %d sites to %s", count, path)
    return count
