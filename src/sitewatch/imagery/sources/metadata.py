"""Metadata files beside a scene's band files: USGS Landsat MTL (``*_MTL.txt``, ``.json``,
``.xml``) and Sentinel-2 granule ``MTD_TL.xml``. The one reader of each: the sun readers of
:mod:`sitewatch.analysis.sun` use them too.

A Landsat scene downloaded from EarthExplorer or the USGS M2M API is a folder of band GeoTIFFs and
its MTL file. The bands' names give the day; the MTL gives what shadow mensuration and cloud
screening need: the scene-centre time, the sun's azimuth and elevation, and the cloud cover.
Files are matched to scenes by their content (WRS path/row and acquisition date), not by their
names, so a renamed MTL still serves its scene.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ...errors import ImageryError, SitewatchError

__all__ = [
    "MtlFacts",
    "TileFacts",
    "mtl_datetime",
    "mtl_fields",
    "mtl_index",
    "odl_values",
    "read_mtl",
    "sentinel2_tile",
    "xml_root",
]

log = logging.getLogger(__name__)

_LINE = re.compile(r"^\s*([A-Z0-9_]+)\s*=\s*(.+?)\s*$")
_MAX_BYTES = 1 << 20
"""An MTL file is ~10-20 kB; anything far larger is not one."""


@dataclass(frozen=True)
class MtlFacts:
    """What an MTL file says of its scene."""

    path: Path
    tile: str
    """WRS path and row, ``PPPRRR`` (as in the band files' names)."""
    acquired: datetime
    """Scene-centre time, UTC (the day alone at 00:00 when the file gives no time)."""
    sun_azimuth: float | None
    sun_elevation: float | None
    cloud_cover: float | None
    spacecraft: str | None


def _flat(data: Any, out: dict[str, str]) -> dict[str, str]:
    """The JSON form's nested groups as one KEY -> text mapping (first value wins)."""
    if isinstance(data, dict):
        for k, v in data.items():
            if isinstance(v, dict | list):
                _flat(v, out)
            elif isinstance(k, str) and v is not None:
                out.setdefault(k.upper(), str(v))
    elif isinstance(data, list):
        for v in data:
            _flat(v, out)
    return out


def odl_values(text: str) -> dict[str, str]:
    """``KEY = value`` pairs of a Landsat ODL file (MTL or ANG ``.txt``; first occurrence wins,
    quotes removed)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if m and m[1] not in ("GROUP", "END_GROUP"):
            out.setdefault(m[1], m[2].strip().strip('"'))
    return out


def xml_root(text: str, path: Path) -> Any:
    """The root element of a metadata XML file, parsed with defusedxml (no entity expansion,
    no external references)."""
    from defusedxml import ElementTree
    from defusedxml.common import DefusedXmlException

    try:
        return ElementTree.fromstring(text)
    except DefusedXmlException as exc:
        from ...errors import UnsafeInputError

        raise UnsafeInputError(f"{path}: refused unsafe XML ({type(exc).__name__})") from exc
    except ElementTree.ParseError as exc:
        raise ImageryError(f"{path}: not well-formed XML: {exc}") from exc


def _xml_values(text: str, path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for el in xml_root(text, path).iter():
        if len(el) == 0 and el.text is not None:
            out.setdefault(_local(el.tag), el.text.strip())
    return out


def mtl_fields(path: Path) -> dict[str, str]:
    """Every ``KEY -> value`` of an MTL file in any of its three forms (ODL ``.txt``, ``.json``,
    ``.xml``); :class:`ImageryError` when it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ImageryError(f"cannot read metadata file {path}: {exc.strerror or exc}") from exc
    stripped = text.lstrip()
    if stripped.startswith("<"):
        return _xml_values(text, path)
    if stripped.startswith("{"):
        try:
            return _flat(json.loads(text), {})
        except ValueError as exc:
            raise ImageryError(f"{path}: not valid JSON: {exc}") from exc
    return odl_values(text)


def mtl_datetime(fields: dict[str, str]) -> datetime | None:
    """The scene-centre time (UTC) of MTL fields; the day at 00:00 without a time, None without
    a date. ``13:36:10.3946240Z`` has one decimal more than Python parses: it is cut."""
    day = (fields.get("DATE_ACQUIRED") or fields.get("ACQUISITION_DATE") or "").strip()
    try:
        when = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None
    clock = (fields.get("SCENE_CENTER_TIME") or fields.get("SCENE_CENTER_SCAN_TIME") or "").strip()
    m = re.match(r"(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?", clock.strip('"'))
    if m is None:
        return when
    micro = int((m[4] or "0")[:6].ljust(6, "0"))
    try:
        return when.replace(hour=int(m[1]), minute=int(m[2]), second=int(m[3]), microsecond=micro)
    except ValueError:
        return when


def _number(fields: dict[str, str], *keys: str, low: float, high: float) -> float | None:
    """The first of ``keys`` holding a number in [low, high] (USGS writes -1 for a cloud cover
    it could not tell)."""
    for key in keys:
        try:
            value = float(fields[key])
        except (KeyError, ValueError):
            continue
        if low <= value <= high:
            return value
    return None


def read_mtl(path: Path) -> MtlFacts | None:
    """The facts of one MTL file, or None (with a debug note) when it is not a readable one."""
    try:
        if path.stat().st_size > _MAX_BYTES:
            return None
        fields = mtl_fields(path)
    except (OSError, SitewatchError) as exc:
        log.debug("not an MTL file: %s (%s)", path, exc)
        return None
    when = mtl_datetime(fields)
    try:
        tile = f"{int(fields['WRS_PATH']):03d}{int(fields['WRS_ROW']):03d}"
    except (KeyError, ValueError):
        return None
    if when is None:
        return None
    azimuth = _number(fields, "SUN_AZIMUTH", low=-180.0, high=360.0)
    return MtlFacts(
        path=path,
        tile=tile,
        acquired=when,
        # the MTL gives azimuths east of north in -180..180; sitewatch keeps 0..360
        sun_azimuth=None if azimuth is None else azimuth % 360.0,
        sun_elevation=_number(fields, "SUN_ELEVATION", low=-90.0, high=90.0),
        cloud_cover=_number(fields, "CLOUD_COVER", "CLOUD_COVER_LAND", low=0.0, high=100.0),
        spacecraft=fields.get("SPACECRAFT_ID"),
    )


def mtl_index(files: list[Path]) -> dict[tuple[str, str], MtlFacts]:
    """The MTL files among ``files``, by (WRS path/row, acquisition date ``YYYYMMDD``)."""
    index: dict[tuple[str, str], MtlFacts] = {}
    for path in files:
        name = path.name.upper()
        if not name.endswith(("_MTL.TXT", "_MTL.JSON", "_MTL.XML")):
            continue
        facts = read_mtl(path)
        if facts is not None:
            index.setdefault((facts.tile, facts.acquired.strftime("%Y%m%d")), facts)
    return index


@dataclass(frozen=True)
class TileFacts:
    """What a Sentinel-2 granule's ``MTD_TL.xml`` says of it."""

    sun_azimuth: float
    sun_elevation: float
    sensed: datetime | None
    """Sensing time, UTC."""
    cloud_cover: float | None
    """Cloudy-pixel percentage."""


def _local(tag: str) -> str:
    return str(tag).rsplit("}", 1)[-1]


def sentinel2_tile(path: Path) -> TileFacts:
    """Mean sun angles, sensing time and cloudy-pixel percentage of a Sentinel-2 tile from its
    ``MTD_TL.xml`` (or a product-level ``MTD_MSIL1C.xml``/``MTD_MSIL2A.xml`` that carries a
    ``Mean_Sun_Angle``), parsed safely; :class:`ImageryError` when it has none."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ImageryError(f"cannot read metadata file {path}: {exc.strerror or exc}") from exc
    root = xml_root(text, path)
    mean = next((el for el in root.iter() if _local(el.tag) == "Mean_Sun_Angle"), None)
    if mean is None:
        raise ImageryError(
            f"{path}: no Mean_Sun_Angle element; give the tile metadata MTD_TL.xml of the granule"
        )
    vals = {_local(c.tag): (c.text or "").strip() for c in mean}
    try:
        zenith = float(vals["ZENITH_ANGLE"])
        azimuth = float(vals["AZIMUTH_ANGLE"])
    except (KeyError, ValueError) as exc:
        raise ImageryError(
            f"{path}: Mean_Sun_Angle lacks a numeric ZENITH_ANGLE/AZIMUTH_ANGLE: {vals}"
        ) from exc
    sensed = None
    cloud = None
    times = ("SENSING_TIME", "PRODUCT_START_TIME", "DATATAKE_SENSING_START")
    for el in root.iter():
        tag = _local(el.tag)
        if sensed is None and tag in times:
            try:
                sensed = datetime.fromisoformat((el.text or "").strip().replace("Z", "+00:00"))
            except ValueError:
                continue
        elif cloud is None and tag == "CLOUDY_PIXEL_PERCENTAGE":
            try:
                value = float((el.text or "").strip())
            except ValueError:
                continue
            cloud = value if 0.0 <= value <= 100.0 else None
    return TileFacts(azimuth % 360.0, 90.0 - zenith, sensed, cloud)
