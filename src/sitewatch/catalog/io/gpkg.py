"""GeoPackage sites through pyogrio (GDAL): opens in QGIS, read and written in batches.

Layers written: ``sites`` (points, every site field as a column; lists ``;``-joined; the cited
sources as JSON in ``sources``), ``site_aoi`` (multipolygons with ``site_id``, when a site has an
AOI), ``features`` (any geometry, ``site_id``, ``kind``, ``attributes`` as JSON, when sites have
features), ``observations`` (at the site's point, ``evidence`` as JSON, when sites have
observations) and ``measurements`` (at the feature measured or the site's point, ``inputs`` as
JSON, when sites have measurements). Reading back restores the records. A GeoPackage made elsewhere imports from its
``sites`` layer or else its first layer: points give the site point, polygons the AOI, a
``name``/``title`` column the name, other columns land in the notes.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio
import pyogrio.raw
import pyproj.exceptions
import shapely
import shapely.errors
from pyproj import CRS
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from ...errors import InputError, RecordProblem
from ...files import atomic_path
from ...geo import to_crs
from ..models import Feature, SiteRecord
from ._helpers import (
    SITE_ATTRIBUTES,
    DuplicateIds,
    feature_from_props,
    measurement_from_props,
    measurement_to_props,
    observation_from_props,
    observation_to_props,
    site_from_fields,
    source_to_props,
    sources_from_props,
)

__all__ = ["BATCH_SIZE", "read_gpkg", "write_gpkg"]

log = logging.getLogger(__name__)

BATCH_SIZE = 5000
"""Records per read/write batch: memory stays bounded whatever the file size."""

_SITE_FIELDS = ("id", "name", *SITE_ATTRIBUTES, "lon", "lat")
_NAME_COLUMNS = ("name", "title", "label", "site_name")
_ID_COLUMNS = ("id", "site_id")


# --- writing -------------------------------------------------------------------------------------


def _obj(values: Sequence[Any]) -> np.ndarray[Any, Any]:
    arr = np.empty(len(values), dtype=object)
    arr[:] = [_no_nul(v) if isinstance(v, str) else v for v in values]
    return arr


def _no_nul(text: str) -> str:
    """GDAL strings end at a NUL character: drop them (with a warning) rather than truncate."""
    if "\x00" not in text:
        return text
    log.warning("dropped NUL characters that a GeoPackage cannot hold from %r", text[:40])
    return text.replace("\x00", "")


class _LayerWriter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.created: set[str] = set()

    def write(
        self,
        layer: str,
        geoms: list[BaseGeometry],
        columns: dict[str, np.ndarray[Any, Any]],
        geometry_type: str,
    ) -> None:
        if not geoms:
            return
        pyogrio.raw.write(
            str(self.path),
            geometry=_obj(shapely.to_wkb(geoms)),
            field_data=list(columns.values()),
            fields=list(columns),
            layer=layer,
            driver="GPKG",
            geometry_type=geometry_type,
            crs="EPSG:4326",
            encoding="UTF-8",
            append=layer in self.created,
            # GeoPackage 1.2: read without warnings by older GDAL/QGIS too
            dataset_options=None if self.created else {"VERSION": "1.2"},
        )
        self.created.add(layer)


def _flush(writer: _LayerWriter, batch: list[SiteRecord]) -> None:
    sites = [r.site for r in batch]
    writer.write(
        "sites",
        [s.point for s in sites],
        {
            "id": _obj([s.id for s in sites]),
            "name": _obj([s.name for s in sites]),
            "aliases": _obj([";".join(s.aliases) for s in sites]),
            "country": _obj([s.country for s in sites]),
            "category": _obj([s.category for s in sites]),
            "status": _obj([s.status for s in sites]),
            "declared": np.array([s.declared for s in sites], dtype=bool),
            "declaration_ref": _obj([s.declaration_ref for s in sites]),
            "confidence": np.array(
                [np.nan if s.confidence is None else s.confidence for s in sites], dtype=float
            ),
            "tags": _obj([";".join(s.tags) for s in sites]),
            "notes": _obj([s.notes for s in sites]),
            "source_ids": _obj([";".join(s.source_ids) for s in sites]),
            # the cited sources themselves (JSON), so that another catalog gets the citations
            "sources": _obj(
                [
                    json.dumps([source_to_props(x) for x in r.sources], ensure_ascii=False)
                    if r.sources
                    else None
                    for r in batch
                ]
            ),
            "lon": np.array([s.lon for s in sites], dtype=float),
            "lat": np.array([s.lat for s in sites], dtype=float),
        },
        "Point",
    )
    with_aoi = [s for s in sites if s.aoi is not None]
    writer.write(
        "site_aoi",
        [s.aoi if isinstance(s.aoi, MultiPolygon) else MultiPolygon([s.aoi]) for s in with_aoi],
        {"site_id": _obj([s.id for s in with_aoi]), "name": _obj([s.name for s in with_aoi])},
        "MultiPolygon",
    )
    feats = [f for r in batch for f in r.features]
    writer.write(
        "features",
        [f.geometry for f in feats],
        {
            "id": _obj([f.id for f in feats]),
            "site_id": _obj([f.site_id for f in feats]),
            "kind": _obj([f.kind for f in feats]),
            "name": _obj([f.name for f in feats]),
            "attributes": _obj([json.dumps(f.attributes, ensure_ascii=False) for f in feats]),
            "first_seen": _obj([f.first_seen.isoformat() if f.first_seen else None for f in feats]),
            "last_seen": _obj([f.last_seen.isoformat() if f.last_seen else None for f in feats]),
        },
        "Unknown",
    )
    points = {r.site.id: r.site.point for r in batch}
    obs = [o for r in batch for o in r.observations]
    columns: dict[str, list[Any]] = {}
    for o in obs:
        for key, value in observation_to_props(o).items():
            columns.setdefault(key, []).append(
                json.dumps(value, ensure_ascii=False) if key == "evidence" else value
            )
    writer.write(  # at the site's point, so that QGIS shows them on the map
        "observations",
        [points[o.site_id] for o in obs],
        {k: _obj(v) for k, v in columns.items()},
        "Point",
    )
    where = {f.id: f.geometry.representative_point() for f in feats}
    ms = [m for r in batch for m in r.measurements]
    mcols: dict[str, list[Any]] = {}
    for m in ms:
        for key, value in measurement_to_props(m).items():
            mcols.setdefault(key, []).append(
                json.dumps(value, ensure_ascii=False) if key == "inputs" else value
            )
    writer.write(  # at the feature measured (else the site), to be seen in QGIS
        "measurements",
        [where.get(m.feature_id or "", points[m.site_id]) for m in ms],
        {
            k: np.array(v, dtype=float) if k in ("value", "uncertainty") else _obj(v)
            for k, v in mcols.items()
        },
        "Point",
    )


def write_gpkg(records: Iterable[SiteRecord], path: str | Path) -> int:
    """Write the sites (+ AOI and feature layers) to a GeoPackage; atomic. Returns the count."""
    count = 0
    with atomic_path(path, suffix=".gpkg") as tmp:
        tmp.unlink()  # GDAL creates the file itself
        writer = _LayerWriter(tmp)
        batch: list[SiteRecord] = []
        for record in records:
            batch.append(record)
            if len(batch) >= BATCH_SIZE:
                _flush(writer, batch)
                count += len(batch)
                batch = []
        if batch or not writer.created:
            _flush(writer, batch)
            count += len(batch)
        if not writer.created:  # no site at all: still a valid, empty sites layer
            pyogrio.raw.write(
                str(tmp),
                geometry=np.empty(0, dtype=object),
                field_data=[np.empty(0, dtype=object), np.empty(0, dtype=object)],
                fields=["id", "name"],
                layer="sites",
                driver="GPKG",
                geometry_type="Point",
                crs="EPSG:4326",
            )
    log.info("wrote %d sites to %s", count, path)
    return count


# --- reading -------------------------------------------------------------------------------------


def _value(arr: Any, i: int) -> Any:
    value = arr[i]
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def _quote(values: Iterable[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def _demote(geom: BaseGeometry) -> BaseGeometry:
    if isinstance(geom, MultiPolygon) and len(geom.geoms) == 1:
        only: Polygon = geom.geoms[0]
        return only
    return geom


def _gdal(fn: Any, *args: Any, **kw: Any) -> Any:
    """Call a pyogrio reader with GDAL's warnings (raised from inside its C error handler, where
    they cannot propagate) logged instead of escaping as unraisable exceptions."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn(*args, **kw)
    for w in caught:
        log.warning("GDAL: %s", w.message)
    return out


def _by_site(
    path: Path, layer: str, ids: list[str], layers: set[str]
) -> dict[str, list[tuple[BaseGeometry, dict[str, Any]]]]:
    out: dict[str, list[tuple[BaseGeometry, dict[str, Any]]]] = {}
    if layer not in layers or not ids:
        return out
    meta, _, geoms, data = _gdal(
        pyogrio.raw.read,
        str(path),
        layer=layer,
        where=f"site_id IN ({_quote(ids)})",
        encoding="UTF-8",
    )
    names = list(meta["fields"])
    if geoms is None or "site_id" not in names:
        raise InputError(
            f"{path}: its {layer!r} layer has lost its geometry or site_id column; export the "
            "GeoPackage again"
        )
    shapes = shapely.from_wkb(geoms)
    for i, geom in enumerate(shapes):
        row = {n: _value(data[k], i) for k, n in enumerate(names)}
        out.setdefault(str(row["site_id"]), []).append((geom, row))
    return out


def read_gpkg(
    path: str | Path, *, layer: str | None = None, repair: bool = False
) -> Iterator[SiteRecord | RecordProblem]:
    """Stream the sites of a GeoPackage (``sites`` layer, or ``layer``, or the first layer).

    A damaged file (unreadable geometry blobs, bad text encoding, broken tables) raises
    :class:`~sitewatch.errors.InputError`, never a GDAL or decoding error.
    """
    try:
        yield from _read_gpkg(Path(path), layer, repair)
    except (
        pyogrio.errors.DataSourceError,
        pyogrio.errors.DataLayerError,
        shapely.errors.GEOSException,
        pyproj.exceptions.CRSError,
        UnicodeDecodeError,
        OverflowError,
    ) as exc:
        raise InputError(
            f"{path}: the GeoPackage is damaged or not one sitewatch can read ({exc}); "
            "open it in QGIS to check it, or export it again"
        ) from None


def _read_gpkg(path: Path, layer: str | None, repair: bool) -> Iterator[SiteRecord | RecordProblem]:
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        listed = _gdal(pyogrio.list_layers, str(path))
    except pyogrio.errors.DataSourceError as exc:
        raise InputError(f"{path}: not a GeoPackage GDAL can open ({exc})") from None
    layers = {str(row[0]) for row in listed}
    if layer is None:
        layer = "sites" if "sites" in layers else str(listed[0][0]) if len(listed) else None
    if layer is None or layer not in layers:
        raise InputError(f"{path}: no layer {layer!r}; its layers are: {', '.join(sorted(layers))}")
    info = _gdal(pyogrio.read_info, str(path), layer=layer)
    total = int(info["features"])
    crs = info.get("crs")
    reproject = crs is not None and CRS.from_user_input(crs) != CRS.from_epsg(4326)
    ours = layer == "sites" and {"id", "name", "status"} <= set(info["fields"])
    dupes = DuplicateIds(lambda n: f"{layer} feature fid {n}")
    for start in range(0, total, BATCH_SIZE):
        meta, fids, geoms, data = _gdal(
            pyogrio.raw.read,
            str(path),
            layer=layer,
            skip_features=start,
            max_features=BATCH_SIZE,
            return_fids=True,
            encoding="UTF-8",
        )
        names = [str(n) for n in meta["fields"]]
        shapes = shapely.from_wkb(geoms) if geoms is not None else [None] * len(fids)
        rows = [{n: _value(data[k], i) for k, n in enumerate(names)} for i in range(len(fids))]
        ids = [str(r["id"]) for r in rows if r.get("id")] if ours else []
        aois = _by_site(path, "site_aoi", ids, layers) if ours else {}
        feats = _by_site(path, "features", ids, layers) if ours else {}
        obs = _by_site(path, "observations", ids, layers) if ours else {}
        ms = _by_site(path, "measurements", ids, layers) if ours else {}
        for i, row in enumerate(rows):
            where = f"{layer} feature fid {int(fids[i])}"
            geom = shapes[i]
            if geom is not None and reproject:
                geom = to_crs(geom, CRS.from_user_input(crs), "EPSG:4326")
            try:
                record = (
                    _our_record(row, geom, aois, feats, obs, ms, repair, where)
                    if ours
                    else _foreign_record(row, geom, repair, where)
                )
            except InputError as exc:
                yield RecordProblem(None, f"{where}: {exc}")
                continue
            if (dupe := dupes.check(record.site.id, int(fids[i]))) is not None:
                yield RecordProblem(None, dupe)
                continue
            yield record


def _our_record(
    row: dict[str, Any],
    geom: BaseGeometry | None,
    aois: dict[str, list[tuple[BaseGeometry, dict[str, Any]]]],
    feats: dict[str, list[tuple[BaseGeometry, dict[str, Any]]]],
    obs: dict[str, list[tuple[BaseGeometry, dict[str, Any]]]],
    ms: dict[str, list[tuple[BaseGeometry, dict[str, Any]]]],
    repair: bool,
    where: str,
) -> SiteRecord:
    fields = {k: row.get(k) for k in _SITE_FIELDS}
    site_id = str(fields.get("id") or "")
    lon = lat = None
    if (fields["lon"] is None or fields["lat"] is None) and geom is not None and not geom.is_empty:
        lon, lat = float(geom.x), float(geom.y)
    aoi_rows = aois.get(site_id, [])
    aoi = _demote(aoi_rows[0][0]) if aoi_rows else None
    site = site_from_fields(fields, lon=lon, lat=lat, aoi=aoi, repair=repair, what=where)
    features: list[Feature] = []
    for fgeom, frow in feats.get(site_id, []):
        features.append(feature_from_props(frow, fgeom, site_id=site.id, repair=repair))
    observations = tuple(
        observation_from_props(
            {**orow, "evidence": json.loads(orow.get("evidence") or "[]")}, site_id=site.id
        )
        for _, orow in obs.get(site_id, [])
    )
    return SiteRecord(
        site=site,
        features=tuple(features),
        observations=tuple(sorted(observations, key=lambda o: (o.acquired, o.id))),
        sources=sources_from_props(row.get("sources"), where),
        measurements=tuple(
            measurement_from_props(mrow, site_id=site.id) for _, mrow in ms.get(site_id, [])
        ),
    )


def _foreign_record(
    row: dict[str, Any], geom: BaseGeometry | None, repair: bool, where: str
) -> SiteRecord:
    lowered = {k.lower(): v for k, v in row.items()}
    fields: dict[str, Any] = {}
    fields["name"] = next((lowered[c] for c in _NAME_COLUMNS if lowered.get(c)), None)
    fields["id"] = next((str(lowered[c]) for c in _ID_COLUMNS if lowered.get(c)), None)
    used = {*_NAME_COLUMNS, *_ID_COLUMNS}
    for key in _SITE_FIELDS:
        if key in lowered and key not in used:
            fields[key] = lowered[key]
            used.add(key)
    extra = [f"{k}: {v}" for k, v in row.items() if k.lower() not in used and v not in (None, "")]
    if extra:
        fields["notes"] = "\n".join(
            [str(fields["notes"]), *extra] if fields.get("notes") else extra
        )
    lon = lat = None
    aoi = None
    if geom is not None and not geom.is_empty:
        if geom.geom_type in ("Polygon", "MultiPolygon"):
            aoi = geom
        else:
            rep = geom if geom.geom_type == "Point" else geom.representative_point()
            lon, lat = float(rep.x), float(rep.y)
    return SiteRecord(
        site=site_from_fields(fields, lon=lon, lat=lat, aoi=aoi, repair=repair, what=where)
    )
