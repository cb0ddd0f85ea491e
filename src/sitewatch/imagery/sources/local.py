"""LocalSource: scenes from folders of GeoTIFF/COG files.

A folder may hold multi-band files (one file per scene, e.g. NAIP RGBN) or products stored as one file
per band (Sentinel-2 ``T31UDQ_20171107T105229_B04.tif``, the OSCD dataset). What each file is comes,
in this order, from:

1. a sidecar STAC item (any ``*.json`` STAC item in the folder tree whose assets point at the file);
2. GDAL metadata tags of the file (``datetime``/``ACQUISITION_DATETIME``, ``sensor``, ``sun_azimuth``,
   ``sun_elevation``, ``cloud_cover``, band descriptions such as ``red`` or ``B04``);
3. file-name patterns: Sentinel-2, Landsat and NAIP are built in; user patterns are regular
   expressions with named groups ``date`` (YYYYMMDD or YYYY-MM-DD), ``time`` (HHMMSS), ``year``,
   ``band``, ``sensor`` and ``tile``;
4. ``dates.txt`` beside ``imgs_N`` folders (the OSCD layout: ``date_N: YYYYMMDD``) overrides the date;
5. a Landsat scene's USGS MTL file in the folder tree (``*_MTL.txt``, ``.json`` or ``.xml``, matched
   by WRS path/row and date) gives the scene-centre time, sun angles and cloud cover (:mod:`.metadata`);
   a Sentinel-2 granule's ``MTD_TL.xml`` (in a ``.SAFE`` product) its sensing time, mean sun
   angles and cloudy-pixel percentage.

Files that cannot be used (corrupt, no CRS, no date) are skipped and listed in :attr:`LocalSource.skipped`.

Sentinel-2 band files are put on the DN scale of processing baselines before 04.00 (from 25
January 2022 ESA adds 1000 to every DN) when their baseline is known: from a sidecar STAC item,
the ``.SAFE`` product name, or the files' own GDAL offset and scale (-0.1 and 0.0001 for 04.00 and
later). A folder whose scenes of unknown baseline lie on both sides of that date is warned about.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pystac
from pyproj import Geod
from rasterio.warp import transform_bounds
from shapely.geometry.base import BaseGeometry

from ...errors import ConfigError, ImageryError, InputError, SitewatchError
from ...types import BBox
from .._bands import MASK_BANDS, SENSOR_BAND_ORDER, common_name
from ..scene import (
    DN_OFFSETS,
    LANDSAT_C2_L2_REFLECTANCE,
    REFLECTANCE,
    S2_REFLECTANCE,
    Scene,
    baseline_offset,
    is_sentinel2,
    scene_from_item,
)
from .base import ImagerySource, SearchQuery, open_raster
from .metadata import MtlFacts, mtl_index, sentinel2_tile

__all__ = ["BUILTIN_PATTERNS", "LocalSource", "NamePattern"]

log = logging.getLogger(__name__)

_RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".vrt")
_GEOD = Geod(ellps="WGS84")


@dataclass(frozen=True)
class NamePattern:
    """A file-name pattern: a regex with named groups, the sensor it implies, the band order."""

    name: str
    regex: re.Pattern[str]
    sensor: str | None = None
    bands: tuple[str, ...] | None = None

    @classmethod
    def compile(
        cls,
        pattern: str,
        *,
        name: str = "user",
        sensor: str | None = None,
        bands: Sequence[str] | None = None,
    ) -> NamePattern:
        """A user pattern; it must name a ``date``, ``year`` or ``datetime`` group."""
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"file-name pattern {pattern!r} is not a valid regex: {exc}") from exc
        if not {"date", "year", "datetime"} & set(regex.groupindex):
            raise ConfigError(
                f"file-name pattern {pattern!r} needs a named group (?P<date>...), "
                "(?P<datetime>...) or (?P<year>...) to date the files"
            )
        return cls(name, regex, sensor, tuple(bands) if bands else None)


BUILTIN_PATTERNS: tuple[NamePattern, ...] = (
    NamePattern(
        "sentinel-2",
        re.compile(
            r"^(?P<tile>T\d{2}[A-Z]{3})_(?P<date>\d{8})T(?P<time>\d{6})_"
            r"(?P<band>B\d[\dA]|SCL|TCI|AOT|WVP)(?:_\d{2}m)?$"
        ),
        "sentinel-2",
    ),
    NamePattern(
        "sentinel-2-pdgs",
        re.compile(
            r"^(?P<sensor>S2[AB])_OPER_MSI_(?:L1C|L2A)_TL_\w{3,4}?_+(?P<date>\d{8})T(?P<time>\d{6})"
            r"_A\d{6}_(?P<tile>T\d{2}[A-Z]{3})_(?P<band>B\d[\dA]|SCL)$"
        ),
        "sentinel-2",
    ),
    NamePattern(
        "sentinel-2-cog",
        re.compile(
            r"^(?P<sensor>S2[ABC])_(?P<tile>\d{2}[A-Z]{3})_(?P<date>\d{8})_\d+_L\dA?_"
            r"(?P<band>B\d[\dA]|SCL|\w+)$"
        ),
        "sentinel-2",
    ),
    NamePattern(
        "landsat",
        re.compile(
            r"^(?P<sensor>L[COTEM]0\d)_(?:L1TP|L1GT|L1GS|L2SP|L2SR)_(?P<tile>\d{6})_(?P<date>\d{8})"
            r"(?:_\d{8})?_\d{2}_(?:T1|T2|RT)_"
            r"(?P<band>SR_B\d+|ST_B\d+|QA_PIXEL|QA_RADSAT|B\d+|BQA|SZA|SAA|VZA|VAA)(?:_\w+)?$"
        ),
        "landsat",
    ),
    NamePattern(
        "naip",
        re.compile(
            r"^m_(?P<tile>\d{7}_(?:ne|nw|se|sw))_\d{2}_\d{1,3}_(?P<date>\d{8})(?:_\d+)?$",
            re.IGNORECASE,
        ),
        "naip",
        SENSOR_BAND_ORDER["naip"],
    ),
    NamePattern("dated", re.compile(r"(?<!\d)(?P<date>(?:19|20)\d{2}-?[01]\d-?[0-3]\d)(?!\d)")),
    NamePattern("year", re.compile(r"^(?P<year>(?:19|20)\d{2})$")),
)
"""The file-name patterns tried after the user's own, in order."""

_TAG_DATETIME = ("datetime", "acquisition_datetime", "acquisitiondatetime", "sensing_time", "date")
_TAG_FLOATS = {
    "sun_azimuth": ("sun_azimuth", "view:sun_azimuth", "sun_azimuth_angle"),
    "sun_elevation": ("sun_elevation", "view:sun_elevation", "sun_elevation_angle"),
    "off_nadir": ("off_nadir", "view:off_nadir"),
    "view_azimuth": ("view_azimuth", "view:azimuth"),
    "cloud_cover": ("cloud_cover", "eo:cloud_cover", "cloudy_pixel_percentage"),
}


def _sensor_name(raw: str) -> str:
    code = raw.upper()
    if re.fullmatch(r"S2[ABC]", code):
        return f"sentinel-{code[1:].lower()}"
    if m := re.fullmatch(r"L[COTEM]0(\d)", code):
        return f"landsat-{m[1]}"
    return raw.lower()


def _parse_date(text: str) -> datetime | None:
    digits = re.sub(r"[^0-9]", "", text)
    try:
        if len(digits) >= 14:
            return datetime.strptime(digits[:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
        if len(digits) >= 8:
            return datetime.strptime(digits[:8], "%Y%m%d").replace(tzinfo=UTC)
        if len(digits) == 4:
            return datetime(int(digits), 1, 1, tzinfo=UTC)
    except ValueError:
        return None
    return None


@dataclass
class _FileInfo:
    path: Path
    key: str
    when: datetime | None
    sensor: str
    bands: list[tuple[str, int]]
    crs: str
    bounds: BBox
    gsd: float
    extra: dict[str, Any] = field(default_factory=dict)
    per_band: bool = False
    declared: dict[str, float] | None = None


class LocalSource(ImagerySource):
    """Scenes from a folder (searched recursively) of GeoTIFF/COG files.

    ``patterns``: user file-name regexes tried before the built-in ones. ``bands``: the band order
    of multi-band files that neither their tags nor their names describe (e.g.
    ``("swir16", "nir", "red", "green")``). ``sensor``: the sensor of files whose names do not say it.
    """

    kind = "local"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        patterns: Sequence[str | NamePattern] = (),
        bands: Sequence[str] | None = None,
        sensor: str | None = None,
        recursive: bool = True,
        name: str | None = None,
    ) -> None:
        self.path = Path(path).expanduser()
        super().__init__(name or self.path.name or str(self.path))
        if not self.path.exists():
            raise ConfigError(f"imagery folder {self.path} does not exist; check the path")
        user = [p if isinstance(p, NamePattern) else NamePattern.compile(p) for p in patterns]
        self.patterns: tuple[NamePattern, ...] = (*user, *BUILTIN_PATTERNS)
        self.bands = tuple(bands) if bands else None
        self.sensor = sensor
        self.recursive = recursive
        self.skipped: list[tuple[Path, str]] = []
        self._scenes: list[Scene] | None = None

    # --- public -----------------------------------------------------------------------------

    def search(
        self,
        aoi: BaseGeometry | BBox,
        start: date | datetime | str | None = None,
        end: date | datetime | str | None = None,
        **filters: Any,
    ) -> list[Scene]:
        """Scenes of the folder meeting the AOI, dates and filters, oldest first."""
        query = SearchQuery.build(aoi, start, end, **filters)
        found = [s for s in self.scenes() if query.matches(s)]
        return found[: query.limit] if query.limit else found

    def scenes(self) -> list[Scene]:
        """Every scene of the folder (scanned once; :meth:`refresh` rescans)."""
        if self._scenes is None:
            self._scenes = self._scan()
        return list(self._scenes)

    def refresh(self) -> None:
        """Forget the scan, so the next search sees new files."""
        self._scenes = None

    def describe(self) -> dict[str, Any]:
        """Name, type and folder."""
        return {"name": self.name, "type": self.kind, "path": str(self.path)}

    def explain_empty(self) -> str:
        """How many scenes the folder has and which files were skipped, and why."""
        n = len(self.scenes())
        text = f"{self.path} holds {n} scene(s)"
        if self.skipped:
            shown = "; ".join(f"{p.name}: {why}" for p, why in self.skipped[:5])
            more = f" (+{len(self.skipped) - 5} more)" if len(self.skipped) > 5 else ""
            text += f", {len(self.skipped)} file(s) skipped ({shown}{more})"
        return text

    # --- scanning ---------------------------------------------------------------------------

    def _files(self) -> Iterable[Path]:
        if self.path.is_file():
            yield self.path
            return
        walker = (
            os.walk(self.path, followlinks=True)
            if self.recursive
            else [(str(self.path), [], [p.name for p in self.path.iterdir()])]
        )
        for folder, dirs, files in walker:
            dirs.sort()
            for name in sorted(files):
                yield Path(folder) / name

    def _scan(self) -> list[Scene]:
        self.skipped = []
        files = list(self._files())
        scenes: list[Scene] = []
        claimed: set[Path] = set()
        for path in files:
            if path.suffix.lower() == ".json":
                item = _read_item(path)
                if item is None:
                    continue
                try:
                    scene = scene_from_item(item)
                except ImageryError as exc:
                    self.skipped.append((path, str(exc)))
                    continue
                scenes.append(scene)
                claimed.update(Path(h).resolve() for h in scene.assets.values() if "://" not in h)
        infos: list[_FileInfo] = []
        for path in files:
            if path.suffix.lower() not in _RASTER_SUFFIXES or path.resolve() in claimed:
                continue
            try:
                infos.append(self._inspect(path))
            except (ImageryError, InputError) as exc:
                reason = str(exc).replace(str(path), path.name)
                log.warning("skipping %s: %s", path, reason)
                self.skipped.append((path, reason))
        scenes.extend(self._group(infos, mtl_index(files)))
        scenes.sort(key=lambda s: (s.datetime, s.id))
        _warn_unknown_baselines(self.path, scenes)
        log.info("%s: %d scene(s), %d file(s) skipped", self.path, len(scenes), len(self.skipped))
        return scenes

    def _match(self, path: Path) -> tuple[NamePattern, re.Match[str]] | None:
        names = (path.stem, f"{path.parent.name}_{path.stem}")
        for pattern in self.patterns:
            for text in names:
                m = pattern.regex.search(text)
                if m is not None:
                    return pattern, m
        return None

    def _inspect(self, path: Path) -> _FileInfo:
        with open_raster(str(path)) as ds:
            if ds.crs is None:
                raise ImageryError(f"{path} has no CRS (it has only ground control points)")
            tags = {k.lower(): v for k, v in ds.tags().items()}
            descriptions = list(ds.descriptions)
            count = ds.count
            crs = ds.crs.to_string()
            lonlat = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds, densify_pts=21)
            gsd = _gsd_m(ds.crs, ds.transform, lonlat, ds.xy(ds.height / 2, ds.width / 2))
            declared = _gdal_scale(ds.scales, ds.offsets)
        matched = self._match(path)
        pattern, m = matched if matched else (None, None)
        groups = {k: v for k, v in (m.groupdict() if m else {}).items() if v}
        when = _tag_datetime(tags)
        if when is None and groups:
            when = _parse_date(
                groups.get("datetime")
                or groups.get("date", "") + groups.get("time", "")
                or groups.get("year", "")
            )
        when = _dates_txt(path) or when
        if when is None and "tifftag_datetime" in tags:
            when = _parse_date(tags["tifftag_datetime"])
        if when is None:
            raise ImageryError(
                f"no acquisition date for {path}: no datetime tag, no sidecar STAC item and the "
                "file name matches no pattern; add a pattern with a (?P<date>YYYYMMDD) group"
            )
        raw_sensor = tags.get("sensor") or tags.get("platform") or groups.get("sensor") or ""
        if raw_sensor:
            sensor = _sensor_name(raw_sensor)
        elif pattern is not None and pattern.sensor:
            sensor = pattern.sensor
        else:
            sensor = self.sensor or "unknown"
        band_id = groups.get("band")
        bands = self._band_names(path, band_id, sensor, descriptions, count, pattern)
        key = _scene_key(path, m) if m is not None and band_id else path.stem
        extra: dict[str, Any] = {}
        for attr, keys in _TAG_FLOATS.items():
            for k in keys:
                if k in tags:
                    try:
                        extra[attr] = float(tags[k])
                    except ValueError:
                        continue
                    break
        if groups.get("tile"):
            extra["tile"] = groups["tile"]
        if pattern is not None:
            extra["name_pattern"] = pattern.name
        return _FileInfo(
            path=path,
            key=key,
            when=when,
            sensor=sensor,
            bands=bands,
            crs=crs,
            bounds=(lonlat[0], lonlat[1], lonlat[2], lonlat[3]),
            gsd=gsd,
            extra=extra,
            per_band=band_id is not None,
            declared=declared,
        )

    def _band_names(
        self,
        path: Path,
        band_id: str | None,
        sensor: str,
        descriptions: list[str | None],
        count: int,
        pattern: NamePattern | None,
    ) -> list[tuple[str, int]]:
        if band_id is not None:
            name = common_name(band_id, sensor)
            return [(name or band_id.lower(), 1)]
        described = [common_name(d, sensor) if d else None for d in descriptions]
        if all(described):
            return [(str(n), i) for i, n in enumerate(described, start=1)]
        order = pattern.bands if pattern is not None and pattern.bands else self.bands
        if order is not None:
            if len(order) != count:
                raise ImageryError(
                    f"{path} has {count} band(s) but the band order {list(order)} names "
                    f"{len(order)}; fix `bands` for this source"
                )
            return [(b, i) for i, b in enumerate(order, start=1)]
        if count == 1:
            return [("gray", 1)]
        return [(f"b{i}", i) for i in range(1, count + 1)]

    def _group(
        self, infos: list[_FileInfo], mtl: dict[tuple[str, str], MtlFacts] | None = None
    ) -> list[Scene]:
        groups: dict[tuple[Path, str], list[_FileInfo]] = {}
        for info in infos:
            groups.setdefault((info.path.parent, info.key), []).append(info)
        ids: dict[str, int] = {}
        for _, key in groups:
            ids[key] = ids.get(key, 0) + 1
        scenes: list[Scene] = []
        for (folder, key), members in groups.items():
            members.sort(key=lambda i: (i.gsd, str(i.path)))
            first = members[0]
            assets: dict[str, str] = {}
            index: dict[str, int] = {}
            for info in members:
                for band, i in info.bands:
                    if band not in assets:
                        assets[band] = str(info.path)
                        index[band] = i
            if ids[key] > 1:
                try:
                    rel = folder.relative_to(self.path).as_posix()
                except ValueError:
                    rel = folder.name
                scene_id = f"{rel}/{key}" if rel not in ("", ".") else key
            else:
                scene_id = key
            when = min(i.when for i in members if i.when is not None)
            extra = {k: v for i in members for k, v in i.extra.items()}
            facts = (mtl or {}).get((str(extra.get("tile")), when.strftime("%Y%m%d")))
            if facts is not None and first.sensor.startswith("landsat"):
                # the USGS MTL beside the bands: scene-centre time, sun and cloud cover (the
                # files' own tags, where they have them, win)
                if when == facts.acquired.replace(hour=0, minute=0, second=0, microsecond=0):
                    when = facts.acquired
                for attr in ("sun_azimuth", "sun_elevation", "cloud_cover"):
                    if (value := getattr(facts, attr)) is not None:
                        extra.setdefault(attr, value)
                extra["metadata_file"] = facts.path.name
            elif is_sentinel2(first.sensor) and (mtd := _granule_metadata(first.path)):
                when = _sentinel2_metadata(mtd, when, extra)
            props = {k: v for k, v in extra.items() if k not in _TAG_FLOATS}
            props["files"] = len(members)
            if is_sentinel2(first.sensor):
                props[REFLECTANCE] = dict(S2_REFLECTANCE)
                baseline = _safe_baseline(first.path)
                if baseline is not None:
                    props["s2:processing_baseline"] = f"{baseline:05.2f}"
                offset = baseline_offset(props)
                declared = next((i.declared for i in members if i.declared), None)
                if baseline is None and declared:
                    # no product name, but the files say how their DN become reflectance (GDAL
                    # offset -0.1, scale 0.0001 for baseline 04.00; offset 0 before): the DN
                    # offset is their ratio
                    offset = declared["offset"] / declared["scale"]
                    props["sitewatch:dn_offset_from"] = "GDAL offset/scale of the files"
                elif baseline is None:
                    props[S2_BASELINE_UNKNOWN] = True
                if offset:
                    props[DN_OFFSETS] = {b: offset for b in assets if b not in MASK_BANDS}
            elif first.sensor.startswith("landsat") and any(
                _LANDSAT_L2.search(i.path.name) for i in members
            ):
                props[REFLECTANCE] = dict(LANDSAT_C2_L2_REFLECTANCE)
            elif declared := next((i.declared for i in members if i.declared), None):
                props[REFLECTANCE] = dict(declared)  # the files' own GDAL scale/offset
            scenes.append(
                Scene(
                    id=scene_id,
                    sensor=first.sensor,
                    datetime=when,
                    assets=assets,
                    crs=first.crs,
                    bounds=first.bounds,
                    gsd=round(first.gsd, 3),
                    sun_azimuth=extra.get("sun_azimuth"),
                    sun_elevation=extra.get("sun_elevation"),
                    off_nadir=extra.get("off_nadir"),
                    view_azimuth=extra.get("view_azimuth"),
                    cloud_cover=extra.get("cloud_cover"),
                    band_index=index,
                    properties=props,
                )
            )
        return scenes


def _gdal_scale(
    scales: Sequence[float | None], offsets: Sequence[float | None]
) -> dict[str, float] | None:
    """The reflectance scale a file declares in its GDAL metadata (one for every band, as Google
    Earth Engine and GDAL's ``-a_scale``/``-a_offset`` write it), or None for the default 1, 0."""
    pairs = {(float(sc or 1.0), float(of or 0.0)) for sc, of in zip(scales, offsets, strict=False)}
    if len(pairs) != 1:
        return None
    ((scale, offset),) = pairs
    if (scale == 1.0 and offset == 0.0) or not scale > 0:
        return None
    return {"scale": scale, "offset": offset}


_LANDSAT_L2 = re.compile(r"^L[COTEM]0\d_L2S[PR]_.*_SR_B\d+", re.IGNORECASE)
"""Landsat collection 2 level-2 surface reflectance band files (USGS names)."""

_SAFE_BASELINE = re.compile(r"^S2[ABCD]_MSIL(?:1C|2A)_\d{8}T\d{6}_N(\d{2})(\d{2})_", re.IGNORECASE)


S2_BASELINE_UNKNOWN = "sitewatch:s2_baseline_unknown"
"""Set on a local Sentinel-2 scene whose processing baseline nothing tells (no ``.SAFE`` product
name, no sidecar STAC item, no GDAL offset in the files)."""
S2_BASELINE_04 = datetime(2022, 1, 25, tzinfo=UTC)
"""Processing baseline 04.00 (DN + 1000) was introduced on 25 January 2022."""


def _warn_unknown_baselines(folder: Path, scenes: Sequence[Scene]) -> None:
    """Warn when Sentinel-2 files of unknown processing baseline lie on both sides of 25 January
    2022: ESA's products from then on add 1000 to every DN (and reprocessed older ones may too),
    so such a series may brighten by 0.1 reflectance on one date, a change not on the ground."""
    unknown = [sc for sc in scenes if sc.properties.get(S2_BASELINE_UNKNOWN)]
    before = sum(sc.datetime < S2_BASELINE_04 for sc in unknown)
    after = len(unknown) - before
    if before and after:
        log.warning(
            "%s: %d Sentinel-2 scene(s) before and %d after 25 January 2022 whose processing "
            "baseline is unknown; from baseline 04.00 on the DN carry +1000, which would show as "
            "change on that date. Keep each scene's STAC item JSON beside its band files, keep "
            "the .SAFE product folder names, or declare the offset in the files of baseline "
            "04.00 or later (gdal_edit.py -scale 0.0001 -offset -0.1 "
            "-oo IGNORE_COG_LAYOUT_BREAK=YES FILE)",
            folder, before, after,
        )  # fmt: skip


def _granule_metadata(path: Path) -> Path | None:
    """The ``MTD_TL.xml`` of the Sentinel-2 granule a band file lies in (``GRANULE/<id>/
    IMG_DATA[/R10m]/<band>.jp2``), or None."""
    for parent in list(path.parents)[:3]:
        candidate = parent / "MTD_TL.xml"
        if candidate.is_file():
            return candidate
    return None


def _sentinel2_metadata(path: Path, when: datetime, extra: dict[str, Any]) -> datetime:
    """Sun angles and cloud cover of a granule's ``MTD_TL.xml`` into ``extra`` (the files' own
    tags win); its sensing time when on the day the names give, else ``when``."""
    try:
        tile = sentinel2_tile(path)
    except SitewatchError as exc:
        log.warning("left out the granule metadata %s: %s", path, exc)
        return when
    extra.setdefault("sun_azimuth", tile.sun_azimuth)
    extra.setdefault("sun_elevation", tile.sun_elevation)
    if tile.cloud_cover is not None:
        extra.setdefault("cloud_cover", tile.cloud_cover)
    extra["metadata_file"] = path.name
    if tile.sensed is not None and tile.sensed.date() == when.date():
        return tile.sensed.astimezone(UTC)
    return when


def _safe_baseline(path: Path) -> float | None:
    """The processing baseline of a file inside a Sentinel-2 ``.SAFE`` product (``N0400`` in
    the product name: 4.0), or None outside one."""
    for part in path.parts:
        if m := _SAFE_BASELINE.match(part):
            return int(m[1]) + int(m[2]) / 100.0
    return None


def _scene_key(path: Path, m: re.Match[str]) -> str:
    text = m.string
    key = (text[: m.start("band")] + text[m.end("band") :]).strip("_-. ")
    key = re.sub(r"[_-]\d{2}m$", "", key).strip("_-. ")
    return key.removeprefix(f"{path.parent.name}_") if text != path.stem else key


def _tag_datetime(tags: dict[str, str]) -> datetime | None:
    for key in _TAG_DATETIME:
        if key in tags and tags[key].strip():
            value = tags[key].strip()
            try:
                moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                parsed = _parse_date(value)
                if parsed is not None:
                    return parsed
                continue
            return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    return None


def _dates_txt(path: Path) -> datetime | None:
    """The OSCD layout: ``<city>/imgs_N/*.tif`` dated by ``<city>/dates.txt`` (``date_N: YYYYMMDD``)."""
    m = re.fullmatch(r"imgs_(\d+)", path.parent.name)
    if m is None:
        return None
    dates = path.parent.parent / "dates.txt"
    if not dates.is_file():
        return None
    for line in dates.read_text(encoding="utf-8", errors="replace").splitlines():
        k, _, v = line.partition(":")
        if k.strip() == f"date_{m[1]}":
            return _parse_date(v.strip())
    return None


def _read_item(path: Path) -> pystac.Item | None:
    try:
        with path.open(encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("type") != "Feature" or "stac_version" not in data:
        return None
    try:
        item = pystac.Item.from_dict(data)
    except Exception as exc:  # pystac raises several kinds on malformed items
        log.warning("skipping STAC item %s: %s", path, exc)
        return None
    item.set_self_href(str(path.resolve()))
    return item


def _gsd_m(crs: Any, transform: Any, lonlat: Sequence[float], centre: tuple[float, float]) -> float:
    """Pixel size in metres on the ground at the image centre (geodesic for geographic CRSs,
    corrected for the projection's scale where it is off true, as in Web Mercator)."""
    if not crs.is_geographic:
        from ...geo import map_scale

        scale = map_scale(crs, *centre).area_factor ** 0.5  # projection and unit (feet)
        return float(min(abs(transform.a), abs(transform.e)) / scale)
    lon = (lonlat[0] + lonlat[2]) / 2.0
    lat = (lonlat[1] + lonlat[3]) / 2.0
    _, _, dx = _GEOD.inv(lon, lat, lon + abs(transform.a), lat)
    _, _, dy = _GEOD.inv(lon, lat, lon, lat + abs(transform.e))
    return float(min(dx, dy))
