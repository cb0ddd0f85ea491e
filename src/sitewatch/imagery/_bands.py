"""Band naming: sensor band ids (Sentinel-2 ``B04``, Landsat ``SR_B4``, NAIP band order) to common names.

Common names follow the STAC ``eo`` extension (blue, green, red, nir, swir16, swir22, ...) plus the
mask layers ``scl`` (Sentinel-2 scene classification) and ``qa_pixel`` (Landsat collection 2 QA).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = [
    "COMMON_BANDS",
    "MASK_BANDS",
    "SENSOR_BAND_ORDER",
    "common_name",
    "display_composite",
    "sensor_family",
]

COMMON_BANDS: tuple[str, ...] = (
    "coastal",
    "blue",
    "green",
    "red",
    "rededge1",
    "rededge2",
    "rededge3",
    "nir",
    "nir08",
    "nir09",
    "cirrus",
    "swir16",
    "swir22",
    "pan",
    "lwir11",
    "lwir12",
)
"""Spectral bands by common name, in wavelength order."""

MASK_BANDS: tuple[str, ...] = ("scl", "qa_pixel")
"""Per-pixel quality layers understood by the cloud masks."""

_SENTINEL2 = {
    "B01": "coastal",
    "B02": "blue",
    "B03": "green",
    "B04": "red",
    "B05": "rededge1",
    "B06": "rededge2",
    "B07": "rededge3",
    "B08": "nir",
    "B8A": "nir08",
    "B09": "nir09",
    "B10": "cirrus",
    "B11": "swir16",
    "B12": "swir22",
    "SCL": "scl",
}

# Landsat 8/9 OLI (and the collection-2 surface reflectance names SR_Bn)
_LANDSAT_OLI = {
    "B1": "coastal",
    "B2": "blue",
    "B3": "green",
    "B4": "red",
    "B5": "nir",
    "B6": "swir16",
    "B7": "swir22",
    "B8": "pan",
    "B9": "cirrus",
    "B10": "lwir11",
    "B11": "lwir12",
    "QA_PIXEL": "qa_pixel",
}

# Landsat 4/5/7 TM/ETM+
_LANDSAT_TM = {
    "B1": "blue",
    "B2": "green",
    "B3": "red",
    "B4": "nir",
    "B5": "swir16",
    "B6": "lwir11",
    "B7": "swir22",
    "B8": "pan",
    "QA_PIXEL": "qa_pixel",
}

# Aliases seen in STAC asset keys and band descriptions.
_ALIASES = {
    "nir08": "nir08",
    "narrow_nir": "nir08",
    "swir1": "swir16",
    "swir2": "swir22",
    "swir_1": "swir16",
    "swir_2": "swir22",
    "rededge": "rededge1",
    "red_edge_1": "rededge1",
    "red_edge_2": "rededge2",
    "red_edge_3": "rededge3",
    "panchromatic": "pan",
    "qa": "qa_pixel",
    "qa_pixel": "qa_pixel",
    "scl": "scl",
    "ultra_blue": "coastal",
    "aerosol": "coastal",
}

SENSOR_BAND_ORDER: dict[str, tuple[str, ...]] = {
    "naip": ("red", "green", "blue", "nir"),
}
"""Band order of multi-band products whose files do not name their bands."""


def sensor_family(sensor: str) -> str:
    """``"sentinel-2"``, ``"landsat-oli"``, ``"landsat-tm"``, ``"naip"`` or the sensor lower-cased."""
    s = sensor.lower().replace("_", "-")
    if s.startswith(("sentinel-2", "s2")):
        return "sentinel-2"
    if s.startswith(("landsat-8", "landsat-9", "lc08", "lc09", "lo08", "lc8", "lc9")):
        return "landsat-oli"
    if s.startswith(("landsat", "lt0", "le0", "lt4", "lt5", "le7")):
        return "landsat-tm"
    if s.startswith("naip"):
        return "naip"
    return s


def common_name(band: str, sensor: str = "") -> str | None:
    """The common name of a band id (``"B04"`` of Sentinel-2 -> ``"red"``), or None if unknown."""
    raw = band.strip()
    low = raw.lower().replace("-", "_").replace(" ", "_")
    if low in COMMON_BANDS or low in MASK_BANDS:
        return low
    if low in _ALIASES:
        return _ALIASES[low]
    up = raw.upper().removeprefix("SR_")
    family = sensor_family(sensor) if sensor else ""
    s2_like = re.fullmatch(r"B(0\d|1[0-2]|8A)|SCL", up) is not None
    if family == "sentinel-2" or (not family.startswith("landsat") and s2_like):
        m = re.fullmatch(r"B(\d{1,2})", up)
        return _SENTINEL2.get(f"B{int(m[1]):02d}" if m else up)
    if family.startswith("landsat") or re.fullmatch(r"B\d{1,2}|QA_PIXEL", up):
        m = re.fullmatch(r"B(\d{1,2})", up)
        table = _LANDSAT_TM if family == "landsat-tm" else _LANDSAT_OLI
        return table.get(f"B{int(m[1])}" if m else up)
    return None


_TRUE_COLOUR = (("red", "b04", "r"), ("green", "b03", "g"), ("blue", "b02", "b"))
# Without a blue band, the standard false-colour composites, in order of preference: colour
# infrared (vegetation red, as on the analysts' CIR aerial photographs) and short-wave infrared
# (vegetation green, bare and disturbed ground pink or brown).
_COMPOSITES = (
    (_TRUE_COLOUR, ""),
    (
        (("nir", "b08", "n"), ("red", "b04", "r"), ("green", "b03", "g")),
        "false colour (near infrared, red, green as red, green, blue): vegetation shows red",
    ),
    (
        (("swir16", "b11"), ("nir", "b08", "n"), ("red", "b04", "r")),
        "false colour (short-wave infrared 1.6 µm, near infrared, red as red, green, blue): "
        "vegetation shows green, bare ground pink",
    ),
    (
        (("swir22", "b12"), ("nir", "b08", "n"), ("red", "b04", "r")),
        "false colour (short-wave infrared 2.2 µm, near infrared, red as red, green, blue): "
        "vegetation shows green, bare ground pink",
    ),
)


def display_composite(bands: Sequence[str], count: int) -> tuple[list[int], str]:
    """The bands to show of an image of ``count`` bands named ``bands`` (0-based indices, three
    for colour or one for grey) and what its colours are, for a caption.

    True colour by name (no words); else colour infrared, else short-wave infrared (named in
    the words); else the first three ("bands green, red, coastal as red, green, blue"; no words
    for three bands without names, the usual RGB picture); else the first band ("one band
    (nir), grey").
    """
    names = [b.lower() for b in bands]
    if len(names) == count:
        for composite, words in _COMPOSITES:
            found = [next((names.index(c) for c in choices if c in names), None)
                     for choices in composite]  # fmt: skip
            if all(i is not None for i in found):
                return [int(i) for i in found if i is not None], words
    named = len(names) == count
    if count < 3:
        return [0], (f"one band ({bands[0]}), grey" if named else "")
    if not named:
        return [0, 1, 2], ("" if count == 3 else "bands 1, 2, 3 as red, green, blue")
    return [0, 1, 2], f"bands {', '.join(bands[:3])} as red, green, blue"
