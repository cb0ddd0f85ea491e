"""USGS Landsat metadata files (``*_MTL.txt``, ``*_MTL.json``) beside a scene's band files.

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

__all__ = ["MtlFacts", "mtl_index", "read_mtl"]

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


def _fields(path: Path) -> dict[str, str]:
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix.lower() == ".json":
        return _flat(json.loads(text), {})
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if m and m[1] not in ("GROUP", "END_GROUP"):
            out.setdefault(m[1], m[2].strip('"'))
    return out


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
        fields = _fields(path)
    except (OSError, ValueError) as exc:
        log.debug("not an MTL file: %s (%s)", path, exc)
        return None
    day = fields.get("DATE_ACQUIRED") or fields.get("ACQUISITION_DATE")
    wrs_path, wrs_row = fields.get("WRS_PATH"), fields.get("WRS_ROW")
    if not day or not wrs_path or not wrs_row:
        return None
    clock = (fields.get("SCENE_CENTER_TIME") or fields.get("SCENE_CENTER_SCAN_TIME") or "").strip()
    # "13:36:10.3946240Z": seven decimals, one more than Python parses
    m = re.match(r"(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?", clock)
    try:
        when = datetime.strptime(day.strip(), "%Y-%m-%d").replace(tzinfo=UTC)
        tile = f"{int(wrs_path):03d}{int(wrs_row):03d}"
    except ValueError:
        return None
    if m is not None:
        micro = int((m[4] or "0")[:6].ljust(6, "0"))
        when = when.replace(hour=int(m[1]), minute=int(m[2]), second=int(m[3]), microsecond=micro)
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
        if not (name.endswith("_MTL.TXT") or name.endswith("_MTL.JSON")):
            continue
        facts = read_mtl(path)
        if facts is not None:
            index.setdefault((facts.tile, facts.acquired.strftime("%Y%m%d")), facts)
    return index
