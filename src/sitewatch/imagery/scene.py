"""The :class:`Scene`: one acquisition of one sensor, with its bands by common name.

A scene knows where its pixels are (``assets``: common band name -> file path or URL, with the 1-based
band index inside multi-band files), where it lies (``crs``, lon/lat ``bounds``), how fine it is
(``gsd`` in metres) and under which light it was taken (sun and view angles). It converts to and from
a STAC item, so any STAC catalog can feed sitewatch and sitewatch's archive can feed any STAC tool.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import pystac
import shapely.errors
from pyproj import CRS
from shapely.geometry import box, mapping, shape
from shapely.geometry.base import BaseGeometry

from ..errors import ImageryError, InputError, SitewatchError
from ..types import BBox
from ._bands import COMMON_BANDS, MASK_BANDS, common_name, sensor_family

__all__ = [
    "DN_OFFSETS",
    "REFLECTANCE",
    "S2_BOA_ADD_OFFSET",
    "Scene",
    "baseline_offset",
    "bbox_intersects",
    "is_sentinel2",
    "normalize_bbox",
    "providers_credit",
    "reflectance_of",
    "scene_credit",
    "scene_from_item",
    "sensor_credit",
]


def _frozen(m: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(m or {}))


@dataclass(frozen=True)
class Scene:
    """One image acquisition. ``datetime`` is UTC-aware; ``bounds`` are lon/lat (W, S, E, N).

    ``bounds`` follow the STAC convention: a scene across the antimeridian has ``west > east``.
    ``band_index`` gives the 1-based band of each asset inside its file (1 for one-band files).
    """

    id: str
    sensor: str
    datetime: datetime
    assets: Mapping[str, str]
    crs: str | None = None
    bounds: BBox | None = None
    gsd: float | None = None
    sun_azimuth: float | None = None
    sun_elevation: float | None = None
    off_nadir: float | None = None
    view_azimuth: float | None = None
    cloud_cover: float | None = None
    band_index: Mapping[str, int] = field(default_factory=dict)
    properties: Mapping[str, Any] = field(default_factory=dict)
    geometry: BaseGeometry | None = None

    def __post_init__(self) -> None:
        if self.datetime.tzinfo is None:
            raise InputError(
                f"scene {self.id!r}: datetime {self.datetime.isoformat()} has no time zone; "
                "give it in UTC (datetime(..., tzinfo=UTC))"
            )
        object.__setattr__(self, "datetime", self.datetime.astimezone(UTC))
        if not self.assets:
            raise InputError(f"scene {self.id!r} has no assets (no band files)")
        object.__setattr__(self, "assets", _frozen(self.assets))
        index = {b: int(self.band_index.get(b, 1)) for b in self.assets}
        object.__setattr__(self, "band_index", _frozen(index))
        object.__setattr__(self, "properties", _frozen(self.properties))
        if self.cloud_cover is not None and not 0.0 <= self.cloud_cover <= 100.0:
            raise InputError(f"scene {self.id!r}: cloud cover {self.cloud_cover} is not in 0..100")

    def __hash__(self) -> int:
        return hash((self.id, self.datetime))

    @property
    def bands(self) -> tuple[str, ...]:
        """The band names of this scene, spectral bands in wavelength order, masks last."""
        order = {b: i for i, b in enumerate((*COMMON_BANDS, *MASK_BANDS))}
        return tuple(sorted(self.assets, key=lambda b: (order.get(b, len(order)), b)))

    @property
    def spectral_bands(self) -> tuple[str, ...]:
        """The bands that are not quality masks."""
        return tuple(b for b in self.bands if b not in MASK_BANDS)

    @property
    def footprint(self) -> BaseGeometry | None:
        """The lon/lat footprint: the geometry if known, else the bounds as a box."""
        if self.geometry is not None:
            return self.geometry
        if self.bounds is None:
            return None
        w, s, e, n = self.bounds
        return box(w, s, e if e >= w else e + 360.0, n)

    def intersects(self, bbox: BBox) -> bool:
        """Whether the scene's bounds meet a lon/lat bbox (either may cross the antimeridian)."""
        return self.bounds is None or bbox_intersects(self.bounds, bbox)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (the ``--json`` form of the CLI)."""
        return {
            "id": self.id,
            "sensor": self.sensor,
            "datetime": self.datetime.isoformat(),
            "bands": list(self.bands),
            "assets": dict(self.assets),
            "crs": self.crs,
            "bounds": list(self.bounds) if self.bounds else None,
            "gsd": self.gsd,
            "sun_azimuth": self.sun_azimuth,
            "sun_elevation": self.sun_elevation,
            "off_nadir": self.off_nadir,
            "view_azimuth": self.view_azimuth,
            "cloud_cover": self.cloud_cover,
        }

    def to_stac_item(self) -> pystac.Item:
        """This scene as a STAC item (eo, proj and view fields as plain properties)."""
        bounds = self.bounds or (0.0, 0.0, 0.0, 0.0)
        geom = self.footprint or box(*bounds)
        props: dict[str, Any] = {
            k: v for k, v in self.properties.items() if _jsonable(v) and k != "datetime"
        }
        props["platform" if "platform" not in props else "sitewatch:sensor"] = self.sensor
        for key, value in (
            ("gsd", self.gsd),
            ("eo:cloud_cover", self.cloud_cover),
            ("view:sun_azimuth", self.sun_azimuth),
            ("view:sun_elevation", self.sun_elevation),
            ("view:off_nadir", self.off_nadir),
            ("view:azimuth", self.view_azimuth),
        ):
            if value is not None:
                props[key] = value
        epsg = _epsg(self.crs)
        if epsg is not None:
            props["proj:epsg"] = epsg
        elif self.crs:
            props["proj:wkt2"] = self.crs
        item = pystac.Item(
            id=self.id,
            geometry=mapping(geom),
            bbox=list(bounds),
            datetime=self.datetime,
            properties=props,
        )
        by_href: dict[str, list[str]] = {}
        for band in self.bands:
            by_href.setdefault(self.assets[band], []).append(band)
        for href, bands in by_href.items():
            bands.sort(key=lambda b: self.band_index[b])
            key = bands[0] if len(bands) == 1 else "image"
            if key in item.assets:
                key = f"{key}-{len(item.assets)}"
            asset = pystac.Asset(
                href=href,
                media_type=_media_type(href),
                roles=["data"] if bands[0] not in MASK_BANDS else ["data", "cloud"],
                extra_fields={"eo:bands": [_eo_band(b) for b in bands]},
            )
            item.add_asset(key, asset)
        return item


def _eo_band(band: str) -> dict[str, str]:
    if band in COMMON_BANDS:
        return {"name": band, "common_name": band}
    return {"name": band}


def _jsonable(value: Any) -> bool:
    return isinstance(value, str | int | float | bool | list | dict | tuple) or value is None


def _media_type(href: str) -> str:
    low = href.lower().split("?")[0]
    if low.endswith((".tif", ".tiff")):
        return str(pystac.MediaType.GEOTIFF)
    if low.endswith(".jp2"):
        return str(pystac.MediaType.JPEG2000)
    return "application/octet-stream"


def _epsg(crs: str | None) -> int | None:
    if not crs:
        return None
    try:
        code = CRS.from_user_input(crs).to_epsg()
    except Exception:  # pyproj raises CRSError for text it cannot parse
        return None
    return int(code) if code is not None else None


def normalize_bbox(bbox: BBox) -> BBox:
    """Bring longitudes into -180..180 (keeping ``west > east`` for antimeridian boxes)."""
    w, s, e, n = (float(v) for v in bbox)
    if not all(math.isfinite(v) for v in (w, s, e, n)):
        raise InputError(f"bbox {bbox} has non-finite values")
    if s > n:
        raise InputError(f"bbox south {s} is north of north {n}; give W,S,E,N")
    if e - w >= 360.0:
        return (-180.0, s, 180.0, n)

    def wrap(x: float) -> float:
        return ((x + 180.0) % 360.0) - 180.0 if not -180.0 <= x <= 180.0 else x

    return (wrap(w), s, wrap(e), n)


def _parts(bbox: BBox) -> list[BBox]:
    w, s, e, n = normalize_bbox(bbox)
    if w <= e:
        return [(w, s, e, n)]
    return [(w, s, 180.0, n), (-180.0, s, e, n)]


def bbox_intersects(a: BBox, b: BBox) -> bool:
    """Whether two lon/lat bboxes meet; either may cross the antimeridian (west > east)."""
    for aw, as_, ae, an in _parts(a):
        for bw, bs, be, bn in _parts(b):
            if aw <= be and bw <= ae and as_ <= bn and bs <= an:
                return True
    return False


# --- STAC items -> scenes -------------------------------------------------------------------------

_IMAGE_TYPES = ("image/tiff", "image/jp2", "application/x-geotiff", "image/vnd.stac.geotiff")


def _asset_bands(key: str, asset: pystac.Asset, sensor: str) -> list[tuple[str, int]]:
    """The (common name, 1-based index) pairs that one asset holds."""
    eo = asset.extra_fields.get("eo:bands") or asset.extra_fields.get("bands") or []
    out: list[tuple[str, int]] = []
    for i, band in enumerate(eo, start=1):
        if not isinstance(band, Mapping):
            continue
        name = band.get("common_name") or band.get("eo:common_name")
        if not name and band.get("name"):
            name = common_name(str(band["name"]), sensor)
        if name:
            out.append((str(name), i))
    if out:
        return out
    name = common_name(key, sensor)
    if name is not None:
        return [(name, 1)]
    return []


def _is_image(asset: pystac.Asset) -> bool:
    media = (asset.media_type or "").lower()
    if media:
        return media.startswith(_IMAGE_TYPES)
    return asset.href.lower().split("?")[0].endswith((".tif", ".tiff", ".jp2", ".vrt"))


def _float(value: Any) -> float | None:
    if value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def scene_from_item(item: pystac.Item) -> Scene:
    """A :class:`Scene` from a STAC item: bands from ``eo:bands`` common names or asset keys.

    A malformed item (bad geometry, bbox, ``eo:bands`` or ``proj:epsg``) raises
    :class:`~sitewatch.errors.ImageryError` naming the item, so a source can skip it.
    """
    try:
        return _scene_from_item(item)
    except ImageryError:
        raise
    except SitewatchError as exc:  # a value the Scene refuses (cloud cover 29054, say)
        raise ImageryError(
            f"STAC item {getattr(item, 'id', '?')!r}: {exc}; fix the item or ask its provider"
        ) from None
    except (
        ValueError,
        TypeError,
        KeyError,
        AttributeError,
        IndexError,
        OverflowError,
        shapely.errors.GEOSException,
    ) as exc:
        raise ImageryError(
            f"STAC item {getattr(item, 'id', '?')!r} is malformed ({type(exc).__name__}: {exc}); "
            "fix the item or ask its provider"
        ) from None


def _scene_from_item(item: pystac.Item) -> Scene:
    props = dict(item.properties)
    sensor = str(
        props.get("platform") or props.get("constellation") or item.collection_id or "unknown"
    )
    when = item.datetime or item.common_metadata.start_datetime
    if when is None:
        raise ImageryError(f"STAC item {item.id!r} has no datetime; it cannot be placed in time")
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    assets: dict[str, str] = {}
    index: dict[str, int] = {}
    crs: str | None = _item_crs(props)
    checksums: dict[str, str] = {}
    offsets: dict[str, float] = {}
    sentinel2 = is_sentinel2(sensor, item.collection_id)
    declared: dict[str, float] | None = S2_REFLECTANCE if sentinel2 else None
    for key, asset in item.assets.items():
        if not _is_image(asset):
            continue
        for name, i in _asset_bands(key, asset, sensor):
            if name in assets:
                continue
            assets[name] = asset.get_absolute_href() or asset.href
            index[name] = i
            if sentinel2 and name not in MASK_BANDS:
                off = _dn_offset(asset, i, props)
                if off:
                    offsets[name] = off
            elif declared is None and name == "red":
                declared = _raster_scale(asset, i)
            checksum = asset.extra_fields.get("file:checksum")
            if isinstance(checksum, str):
                checksums[assets[name]] = checksum
            crs = crs or _item_crs(asset.extra_fields)
    if not assets:
        raise ImageryError(
            f"STAC item {item.id!r} has no image asset with a known band "
            f"(asset keys: {', '.join(item.assets) or 'none'}); add eo:bands common names"
        )
    geom = shape(item.geometry) if item.geometry else None
    raw = [float(v) for v in item.bbox] if item.bbox else (list(geom.bounds) if geom else [])
    bounds: BBox | None = None
    if len(raw) == 4:
        bounds = (raw[0], raw[1], raw[2], raw[3])
    elif len(raw) == 6:  # 3D bbox
        bounds = (raw[0], raw[1], raw[3], raw[4])
    gsd = _float(props.get("gsd"))
    return Scene(
        id=item.id,
        sensor=sensor,
        datetime=when,
        assets=assets,
        crs=crs,
        bounds=bounds,
        gsd=gsd,
        sun_azimuth=_float(props.get("view:sun_azimuth")),
        sun_elevation=_float(props.get("view:sun_elevation")),
        off_nadir=_float(props.get("view:off_nadir")),
        view_azimuth=_float(props.get("view:azimuth")),
        cloud_cover=_float(props.get("eo:cloud_cover")),
        band_index=index,
        properties={
            **props,
            "collection": item.collection_id,
            "file:checksums": checksums,
            **({DN_OFFSETS: offsets} if offsets else {}),
            **({REFLECTANCE: props.get(REFLECTANCE) or declared} if declared else {}),
        },
        geometry=geom if geom is not None and geom.bounds[2] - geom.bounds[0] < 180 else None,
    )


DN_OFFSETS = "sitewatch:dn_offsets"
"""Scene property: per band, what to add to the stored digital numbers so that every scene of a
sensor shares one scale (see :func:`_dn_offset`); applied by :func:`~.chips.read_chip`."""

S2_BOA_ADD_OFFSET = -1000.0
"""Sentinel-2 processing baseline 04.00 (from 25 January 2022) adds 1000 to every L1C/L2A
reflectance DN; ESA's BOA_ADD_OFFSET / RADIO_ADD_OFFSET takes it back off."""


REFLECTANCE = "sitewatch:reflectance"
"""Scene property: ``{"scale": s, "offset": o}`` with reflectance = DN * s + o for the spectral
bands of the chips cut from it (after :data:`DN_OFFSETS`), where the provider or the product
declares it: Sentinel-2 L1C/L2A 1/10000; Landsat collection 2 level 2 2.75e-5 and -0.2 (from the
item's ``raster:bands`` or the product name). Absent: the scale is unknown (NAIP, a user's own
GeoTIFF), and the data stay digital numbers."""

S2_REFLECTANCE = {"scale": 1e-4, "offset": 0.0}
LANDSAT_C2_L2_REFLECTANCE = {"scale": 2.75e-5, "offset": -0.2}


def reflectance_of(scene: Scene) -> tuple[float, float] | None:
    """(scale, offset) that turn the scene's chip DN into reflectance, or None if undeclared."""
    r = scene.properties.get(REFLECTANCE)
    if not isinstance(r, Mapping):
        return None
    scale, offset = _float(r.get("scale")), _float(r.get("offset"))
    if scale is None or not scale > 0 or not math.isfinite(scale):
        return None
    return scale, (offset if offset is not None and math.isfinite(offset) else 0.0)


def _raster_band(asset: pystac.Asset, index: int) -> tuple[float | None, float | None]:
    """(scale, offset) of band ``index`` (1-based) in the asset's ``raster:bands``, each None
    when not given."""
    raster = asset.extra_fields.get("raster:bands")
    if not (isinstance(raster, list) and 0 < index <= len(raster)):
        return None, None
    band = raster[index - 1]
    if not isinstance(band, Mapping):
        return None, None
    return _float(band.get("scale")), _float(band.get("offset"))


def _raster_scale(asset: pystac.Asset, index: int) -> dict[str, float] | None:
    scale, offset = _raster_band(asset, index)
    if scale is not None and scale > 0 and (scale != 1.0 or offset):
        return {"scale": scale, "offset": offset or 0.0}
    return None


def is_sentinel2(sensor: str, collection: str | None = None) -> bool:
    """Whether a scene of this sensor (platform) or collection is Sentinel-2."""
    return "sentinel-2" in sensor.lower() or "sentinel-2" in (collection or "").lower()


def _boa_applied(props: Mapping[str, Any]) -> bool:
    return any(
        props.get(k) is True
        for k in ("earthsearch:boa_offset_applied", "sentinel:boa_offset_applied")
    )


def baseline_offset(props: Mapping[str, Any]) -> float:
    """The DN offset of a Sentinel-2 scene from its properties alone: -1000 for processing
    baseline 04.00 or later (``s2:processing_baseline``), unless the provider says it already
    took the offset off (``earthsearch:boa_offset_applied``); else 0."""
    if _boa_applied(props):
        return 0.0
    baseline = _float(
        props.get("s2:processing_baseline") or props.get("sentinel:processing_baseline")
    )
    return S2_BOA_ADD_OFFSET if baseline is not None and baseline >= 4.0 else 0.0


def _dn_offset(asset: pystac.Asset, index: int, props: Mapping[str, Any]) -> float:
    """What to add to a Sentinel-2 band's DN so that scenes before and after processing baseline
    04.00 agree (in the older DN scale, reflectance = DN / 10000). In order: 0 when the provider
    says it already took the offset off (Earth Search's ``earthsearch:boa_offset_applied``);
    ``offset / scale`` of the asset's ``raster:bands`` where it gives them (-0.1 / 0.0001 from
    Copernicus Data Space and Earth Search's collection 1); -1000 for baseline 04.00 or later
    (``s2:processing_baseline``, as Planetary Computer gives it); else 0. Without this a series
    across 25 January 2022 brightens by 0.1 reflectance on one date: a change not on the ground.
    """
    if _boa_applied(props):
        return 0.0
    scale, offset = _raster_band(asset, index)
    if offset is not None and scale:
        return offset / scale
    return baseline_offset(props)


def _item_crs(fields: Mapping[str, Any]) -> str | None:
    if fields.get("proj:epsg"):
        return f"EPSG:{int(fields['proj:epsg'])}"
    code = fields.get("proj:code")
    if isinstance(code, str) and code:
        return code
    wkt = fields.get("proj:wkt2")
    return str(wkt) if wkt else None


def scene_credit(scene: Scene) -> str | None:
    """Who a figure credits for a scene's pixels ("Image © ..."): the ``licensor`` or
    ``producer`` providers of its STAC item, else the public programme of its sensor (the
    attribution Copernicus asks for Sentinel data, USGS Landsat, USDA NAIP), else None.

    A source configured with ``credit = "..."`` (a commercial provider) is credited instead:
    :meth:`~sitewatch.imagery.archive.Archive.fetch` stores that with the chip.
    """
    return providers_credit(scene.properties.get("providers")) or sensor_credit(
        scene.sensor, scene.datetime.year
    )


def providers_credit(providers: Any) -> str | None:
    """The names of the ``licensor`` and ``producer`` of STAC ``providers``, or None."""
    if not isinstance(providers, list | tuple):
        return None
    names = [
        str(p["name"])
        for p in providers
        if isinstance(p, Mapping)
        and p.get("name")
        and {"licensor", "producer"} & set(p.get("roles") or ())
    ]
    return ", ".join(dict.fromkeys(names)) or None


def sensor_credit(sensor: str, year: int) -> str | None:
    """The credit of a public programme's images by their sensor (the attribution Copernicus
    asks for Sentinel data; USGS Landsat; USDA NAIP), or None for any other sensor."""
    family = sensor_family(sensor)
    if family.startswith("sentinel"):
        return f"European Union, contains modified Copernicus Sentinel data {year}"
    if family.startswith("landsat"):
        return "USGS/NASA Landsat (public domain)"
    if family == "naip":
        return "USDA Farm Service Agency NAIP (public domain)"
    return None
