"""IARPA SMART site and region models (GeoJSON) <-> sites with observations.

A site model is a FeatureCollection with one ``"type": "site"`` feature (the site polygon) and
``"type": "observation"`` features (date, sensor, source image, construction phase). A region
model holds one ``region`` feature and a ``site_summary`` per site. Sites written by sitewatch keep
every catalog field in ``misc_info.sitewatch`` so that a round trip loses nothing; the visible
IARPA properties are filled so that the files validate against the SMART JSON schema.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import ijson  # type: ignore[import-untyped]
from pyproj import Transformer
from shapely.geometry import MultiPolygon, Polygon, box, mapping, shape
from shapely.geometry.base import BaseGeometry

from ...errors import InputError, RecordProblem
from ...geo import geodesic_buffer, local_utm_crs
from ...types import ActivityPhase
from ..models import Observation, Site, SiteRecord
from ._helpers import (
    DuplicateIds,
    clean_aoi,
    feature_from_props,
    feature_to_props,
    observation_from_props,
    observation_to_props,
    read_geometry,
    site_from_fields,
    site_to_fields,
    stable_id,
)

__all__ = ["IARPA_PHASES", "mgrs_square", "read_iarpa", "write_iarpa"]

log = logging.getLogger(__name__)

IARPA_PHASES: dict[str, ActivityPhase] = {
    "No Activity": "no_activity",
    "Site Preparation": "site_preparation",
    "Active Construction": "active_construction",
    "Post Construction": "post_construction",
}
_PHASE_ORDER = list(IARPA_PHASES.values())
_PHASE_BACK = {v: k for k, v in IARPA_PHASES.items()}
_STATUS_IN = {
    "positive_annotated": "confirmed",
    "positive_partial": "confirmed",
    "positive_annotated_static": "confirmed",
    "positive_partial_static": "confirmed",
    "positive_excluded": "confirmed",
    "positive_pending": "suspected",
    "negative": "inactive",
    "ignore": "suspected",
    "system_confirmed": "confirmed",
    "system_proposed": "suspected",
    "system_rejected": "inactive",
}
_STATUS_OUT = {
    "confirmed": "positive_annotated",
    "suspected": "positive_pending",
    "inactive": "positive_annotated_static",
    "dismantled": "positive_annotated",
}
_SENSORS = ("Landsat 8", "Sentinel-2", "WorldView", "Planet")
_SITE_ID_RE = re.compile(r"^[A-Z]{2}_([RST]\d{3}|C[0-7]\d{2})_\d{4}$")
_REGION_RE = re.compile(r"^[A-Z]{2}_([RST]\d{3}|C[0-7]\d{2})$")
_MODEL_VERSION = "2.0.1"
_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # MGRS letters: no I, no O
_BANDS = "CDEFGHJKLMNPQRSTUVWX"


# --- reading -------------------------------------------------------------------------------------


def _phase(raw: Any) -> ActivityPhase | None:
    """The most advanced known phase of a (comma-separated, per-polygon) IARPA phase string."""
    if not raw:
        return None
    known = [IARPA_PHASES[p.strip()] for p in str(raw).split(",") if p.strip() in IARPA_PHASES]
    if not known:
        return None
    best: ActivityPhase = known[0]
    for phase in known[1:]:
        if _PHASE_ORDER.index(phase) > _PHASE_ORDER.index(best):
            best = phase
    return best


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.suffix.lower() in (".geojson", ".json"))
        files = [p for p in found if p.name != "smart.schema.json"]
        if not files:
            raise InputError(f"{path}: no .geojson site models in this folder")
        return files
    if not path.is_file():
        raise InputError(f"{path}: no such file or folder")
    return [path]


def _first_type(path: Path) -> str | None:
    with path.open("rb") as fh:
        try:
            for ptype in ijson.items(fh, "features.item.properties.type"):
                return str(ptype)
        except ijson.JSONError:
            return None
    return None


def read_iarpa(path: str | Path, *, repair: bool = False) -> Iterator[SiteRecord | RecordProblem]:
    """Stream sites (AOI polygon, status, tags) with their observations from SMART models.

    ``path`` is a site model, a region model (its ``site_summary`` features become sites), or a
    folder of them (read recursively in name order).
    """
    from .geojson import iter_features

    places: list[str] = []
    dupes = DuplicateIds(lambda n: places[n - 1])
    files = _files(Path(path))
    if len(files) > 1:  # a SMART folder: site models carry more than the region summaries
        kinds = {f: _first_type(f) for f in files}
        if any(k in ("site", "observation") for k in kinds.values()):
            files = [f for f in files if kinds[f] in ("site", "observation")]
    for file in files:
        site_rec: SiteRecord | None = None
        observations: list[Observation] = []
        problems: list[RecordProblem] = []
        with file.open("rb") as fh:
            for index, feature in enumerate(iter_features(fh, file), start=1):
                where = f"{file.name} feature #{index}"
                props = feature.get("properties") if isinstance(feature, dict) else None
                if not isinstance(props, dict):
                    props = {}
                kind = props.get("type")
                try:
                    if kind in ("site", "site_summary"):
                        rec = _site_record(props, feature.get("geometry"), repair, where)
                        places.append(where)
                        if (dupe := dupes.check(rec.site.id, len(places))) is not None:
                            problems.append(RecordProblem(None, dupe))
                        elif kind == "site_summary":
                            yield rec
                        elif site_rec is not None:
                            problems.append(RecordProblem(None, f"{where}: a second site feature"))
                        else:
                            site_rec = rec
                    elif kind == "observation":
                        obs = _observation(props, index, where)
                        if obs is not None:
                            observations.append(obs)
                    elif kind == "region":
                        log.debug("%s: region %s", file, props.get("region_id"))
                    else:
                        problems.append(
                            RecordProblem(None, f"{where}: not an IARPA feature (type {kind!r})")
                        )
                except InputError as exc:
                    problems.append(RecordProblem(None, f"{where}: {exc}"))
        if site_rec is not None:
            sid = site_rec.site.id
            obs_fixed = tuple(
                o if o.site_id == sid else _with_site(o, sid)
                for o in sorted(observations, key=lambda o: o.acquired)
            )
            yield SiteRecord(site=site_rec.site, features=site_rec.features, observations=obs_fixed)
        elif observations:
            problems.append(RecordProblem(None, f"{file.name}: observations but no site feature"))
        yield from problems


def _with_site(obs: Observation, site_id: str) -> Observation:
    fields = observation_to_props(obs)
    fields["id"] = stable_id(site_id, obs.id)
    return observation_from_props(fields, site_id=site_id)


def _site_record(props: Mapping[str, Any], raw_geom: Any, repair: bool, where: str) -> SiteRecord:
    site = _site(props, raw_geom, repair, where)
    misc = props.get("misc_info")
    mine = misc.get("sitewatch") if isinstance(misc, dict) else None
    stored = mine.get("features") if isinstance(mine, dict) else None
    if stored is not None and not (
        isinstance(stored, list) and all(isinstance(f, dict) for f in stored)
    ):
        raise InputError(f"{where}: misc_info.sitewatch.features must be a list of objects")
    features = tuple(
        feature_from_props(
            f, read_geometry(f.get("geometry"), where), site_id=site.id, repair=repair
        )
        for f in stored or ()
    )
    return SiteRecord(site=site, features=features)


def _site(props: Mapping[str, Any], raw_geom: Any, repair: bool, where: str) -> Site:
    sid = str(props.get("site_id") or "")
    if not sid:
        raise InputError("an IARPA site needs a site_id")
    geom = read_geometry(raw_geom, where) if raw_geom else None
    misc = props.get("misc_info") or props.get("cache") or {}
    mine = misc.get("sitewatch") if isinstance(misc, dict) else None
    if isinstance(mine, dict):  # written by sitewatch: every field is there
        fields = {k: v for k, v in mine.items() if k != "features"}
        return site_from_fields(fields, repair=repair, what=where)
    status = str(props.get("status") or "")
    region = str(props.get("region_id") or "")
    tags = ["iarpa-smart"]
    if status:
        tags.append(f"iarpa-status:{status}")
    if region:
        tags.append(f"iarpa-region:{region}")
    info = [f"IARPA SMART site model {sid}"]
    for key in (
        "region_id",
        "status",
        "start_date",
        "end_date",
        "mgrs",
        "originator",
        "model_content",
    ):
        if props.get(key):
            info.append(f"{key}: {props[key]}")
    fields = {
        "id": sid.lower(),
        "name": sid,
        "status": _STATUS_IN.get(status, "suspected"),
        "country": region[:2] if re.match(r"^[A-Z]{2}_", region) else None,
        "tags": tags,
        "notes": "\n".join(info),
        "confidence": props.get("score"),
    }
    aoi = clean_aoi(geom, repair=repair, what=f"site {sid} polygon") if geom is not None else None
    return site_from_fields(fields, aoi=aoi, repair=repair, what=where)


def _observation(props: Mapping[str, Any], index: int, where: str) -> Observation | None:
    misc = props.get("misc_info")
    mine = misc.get("sitewatch") if isinstance(misc, dict) else None
    if isinstance(mine, dict):
        if mine.get("placeholder"):
            return None
        return observation_from_props(mine, site_id=str(mine.get("site_id") or "_"))
    raw_date = props.get("observation_date")
    if not raw_date:  # allowed by the schema (an undated placeholder); nothing to keep
        if props.get("current_phase"):
            log.warning("%s: observation with a phase but no date skipped", where)
        return None
    try:
        day = date.fromisoformat(str(raw_date)[:10])
    except ValueError:
        raise InputError(f"observation_date {raw_date!r} is not YYYY-MM-DD") from None
    acquired = datetime(day.year, day.month, day.day, tzinfo=UTC)
    raw_phase = props.get("current_phase")
    text = [f"IARPA phase: {raw_phase}"] if raw_phase else []
    for key in ("is_occluded", "is_site_boundary"):
        if props.get(key) is not None:
            text.append(f"{key}: {props[key]}")
    source = props.get("source")
    return Observation(
        id=stable_id(day.isoformat(), str(source), str(index)),
        site_id="_",
        acquired=acquired,
        sensor=str(props.get("sensor_name") or ""),
        scene_id=str(source) if source else None,
        phase=_phase(raw_phase),
        text="\n".join(text),
    )


# --- MGRS ----------------------------------------------------------------------------------------


def mgrs_square(lon: float, lat: float) -> str:
    """The MGRS 100 km grid square (e.g. ``52SDG``) holding a point (UTM latitudes)."""
    lat_c = min(max(lat, -79.999), 83.999)  # UPS areas are given their nearest UTM square
    crs = local_utm_crs(lon, lat_c)
    zone = int(crs.utm_zone[:-1]) if crs.utm_zone else 31
    east, north = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat_c)
    band = _BANDS[min(int((lat_c + 80.0) // 8.0), len(_BANDS) - 1)]
    col_set = (zone - 1) % 3
    col = _LETTERS[(col_set * 8 + max(int(east // 100_000) - 1, 0)) % 24]
    row_letters = "ABCDEFGHJKLMNPQRSTUV"
    row = row_letters[(int(north // 100_000) + (5 if zone % 2 == 0 else 0)) % 20]
    return f"{zone:02d}{band}{col}{row}"


# --- writing -------------------------------------------------------------------------------------


def _polygon(site: Site) -> Polygon:
    if site.aoi is None:
        circle = geodesic_buffer(site.lon, site.lat, 100.0, n=32)
        return Polygon(circle.exterior.coords)
    if isinstance(site.aoi, Polygon):
        return site.aoi
    hull = site.aoi.convex_hull
    return hull if isinstance(hull, Polygon) else box(*site.aoi.bounds)


def _multi(poly: BaseGeometry) -> dict[str, Any]:
    geom = poly if isinstance(poly, MultiPolygon) else MultiPolygon([poly])
    return dict(mapping(geom))


def _obs_feature(obs: Observation | None, poly: BaseGeometry, site_id: str) -> dict[str, Any]:
    if obs is None:
        props: dict[str, Any] = {
            "type": "observation",
            "observation_date": None,
            "source": None,
            "sensor_name": None,
            "current_phase": None,
            "is_occluded": None,
            "is_site_boundary": None,
            "misc_info": {"sitewatch": {"placeholder": True}},
        }
    else:
        props = {
            "type": "observation",
            "observation_date": obs.acquired.astimezone(UTC).date().isoformat(),
            "source": obs.scene_id,
            "sensor_name": obs.sensor if obs.sensor in _SENSORS else None,
            "current_phase": _PHASE_BACK.get(obs.phase) if obs.phase else None,
            "is_occluded": None,
            "is_site_boundary": "True",
            "score": 1.0,
            "misc_info": {"sitewatch": {**observation_to_props(obs), "site_id": site_id}},
        }
    return {"type": "Feature", "properties": props, "geometry": _multi(poly)}


class _Numbering:
    def __init__(self, region: str | None) -> None:
        self.region = region
        self.used: set[str] = set()
        self.next = 1

    def iarpa_id(self, site: Site) -> str:
        candidate = site.id.upper()
        if _SITE_ID_RE.match(candidate) and candidate not in self.used:
            if self.region is None:
                self.region = candidate[:-5]
            self.used.add(candidate)
            return candidate
        if self.region is None:
            self.region = "ZZ_R000"
        while f"{self.region}_{self.next:04d}" in self.used:
            self.next += 1
        if self.next > 9999:
            raise InputError("IARPA site ids have 4 digits: at most 9999 sites per region")
        sid = f"{self.region}_{self.next:04d}"
        self.used.add(sid)
        return sid


def _site_model(
    record: SiteRecord, sid: str, originator: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(site model FeatureCollection, site_summary feature) for one record."""
    site = record.site
    poly = _polygon(site)
    dates = sorted(o.acquired.astimezone(UTC).date().isoformat() for o in record.observations)
    mine: dict[str, Any] = dict(site_to_fields(site))
    mine["aoi_wkt"] = mine["aoi_wkt"] or None
    if record.features:  # SMART has no place for them: kept for sitewatch in misc_info
        mine["features"] = [
            {**feature_to_props(f), "geometry": dict(mapping(f.geometry))} for f in record.features
        ]
    common = {
        "version": _MODEL_VERSION,
        "mgrs": mgrs_square(site.lon, site.lat),
        "status": _STATUS_OUT[site.status],
        "start_date": dates[0] if dates else None,
        "end_date": dates[-1] if dates else None,
        "model_content": "annotation",
        "originator": originator,
        "score": site.confidence if site.confidence is not None else 1.0,
        "validated": "False",
    }
    site_props: dict[str, Any] = {"type": "site", "region_id": sid[:-5], "site_id": sid, **common}
    site_props["misc_info"] = {"sitewatch": mine}
    features = [{"type": "Feature", "properties": site_props, "geometry": dict(mapping(poly))}]
    observations = record.observations or (None,)
    features += [_obs_feature(o, poly, site.id) for o in observations]
    summary = {
        "type": "Feature",
        "properties": {"type": "site_summary", "site_id": sid, **common, "comments": site.name},
        "geometry": dict(mapping(poly)),
    }
    return {"type": "FeatureCollection", "features": features}, summary


def write_iarpa(
    records: Iterable[SiteRecord],
    path: str | Path,
    *,
    region_id: str | None = None,
    originator: str = "te",
) -> int:
    """Write SMART site models; atomic.

    A ``.geojson``/``.json`` path takes exactly one site (one site model). Any other path is a
    folder to create, laid out like the SMART annotations: ``site_models/<SITE>.geojson`` per site
    and ``region_models/<REGION>.geojson`` with a summary of every site. Sites whose id is not a
    SMART id (``KR_R001_0003``) are numbered in ``region_id`` (default ``ZZ_R000``).
    """
    target = Path(path)
    if region_id is not None and not _REGION_RE.match(region_id):
        raise InputError(f"region_id {region_id!r} is not a SMART region id like 'KR_R001'")
    numbering = _Numbering(region_id)
    if target.suffix.lower() in (".geojson", ".json"):
        from ...files import atomic_path

        items = iter(records)
        first = next(items, None)
        if first is None or next(items, None) is not None:
            raise InputError(
                f"{target}: an IARPA site model file holds exactly one site; "
                "give a folder to write one site model per site"
            )
        model, _ = _site_model(first, numbering.iarpa_id(first.site), originator)
        with atomic_path(target) as tmp:
            tmp.write_text(json.dumps(model, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        return 1
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InputError(f"{target} exists and is not an empty folder; give a new folder name")
    parent = target.parent if str(target.parent) else Path(".")
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=parent))
    try:
        count = _write_folder(records, tmp_dir, numbering, originator)
        if target.exists():
            target.rmdir()
        os.replace(tmp_dir, target)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    log.info("wrote %d IARPA site models to %s", count, target)
    return count


def _write_folder(
    records: Iterable[SiteRecord], folder: Path, numbering: _Numbering, originator: str
) -> int:
    (folder / "site_models").mkdir()
    (folder / "region_models").mkdir()
    summaries = folder / "region_models" / ".summaries.tmp"
    bounds: list[float] | None = None
    dates: list[str] = []
    count = 0
    with summaries.open("w", encoding="utf-8") as sfh:
        for record in records:
            sid = numbering.iarpa_id(record.site)
            model, summary = _site_model(record, sid, originator)
            out = folder / "site_models" / f"{sid}.geojson"
            out.write_text(json.dumps(model, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
            sfh.write(json.dumps(summary, ensure_ascii=False) + "\n")
            b = shape(summary["geometry"]).bounds
            bounds = (
                list(b)
                if bounds is None
                else [
                    min(bounds[0], b[0]),
                    min(bounds[1], b[1]),
                    max(bounds[2], b[2]),
                    max(bounds[3], b[3]),
                ]
            )
            props = summary["properties"]
            dates += [d for d in (props["start_date"], props["end_date"]) if d]
            dates = [min(dates), max(dates)] if dates else []
            count += 1
    region = numbering.region or "ZZ_R000"
    if bounds is None:
        summaries.unlink()
        return 0
    region_poly = box(*bounds).buffer(0.001, join_style="mitre")
    today = datetime.now(UTC).date().isoformat()
    lon_c, lat_c = region_poly.centroid.x, region_poly.centroid.y
    region_feature = {
        "type": "Feature",
        "properties": {
            "type": "region",
            "region_id": region,
            "version": _MODEL_VERSION,
            "mgrs": mgrs_square(lon_c, lat_c),
            "model_content": "annotation",
            "start_date": dates[0] if dates else today,
            "end_date": dates[-1] if dates else today,
            "originator": originator,
            "comments": "written by sitewatch",
        },
        "geometry": dict(mapping(region_poly)),
    }
    with (folder / "region_models" / f"{region}.geojson").open("w", encoding="utf-8") as fh:
        fh.write('{"type": "FeatureCollection", "features": [\n')
        fh.write(json.dumps(region_feature, ensure_ascii=False))
        with summaries.open(encoding="utf-8") as sfh:
            for line in sfh:
                fh.write(",\n" + line.rstrip("\n"))
        fh.write("\n]}\n")
    with contextlib.suppress(OSError):
        summaries.unlink()
    return count
