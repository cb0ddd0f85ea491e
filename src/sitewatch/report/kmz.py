"""A site as KMZ for Google Earth: image overlays, styled features, change polygons, range rings,
and the observations with their evidence images.

The archive holds ``doc.kml`` and ``files/`` (overlay PNGs and the placemark icon), so it opens
offline. Overlays come in two modes:

``"box"`` (default)
    each chip is warped to lon/lat (EPSG:4326) and placed with a ``LatLonBox``: pure OGC KML 2.2,
    valid against ``ogckml22.xsd``;
``"quad"``
    the chip's own pixels (a north-up UTM grid is slightly rotated against the meridians) placed by
    its four corners with ``gx:LatLonQuad`` (Google's extension schema ``kml22gx.xsd``).

Overlays carry a ``TimeStamp`` so Google Earth's time slider steps through the dates; all overlays
share one contrast stretch. Features are styled by kind (colours as in the report figures).
"""

from __future__ import annotations

import html
import io
import logging
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC
from pathlib import Path
from typing import Any, Literal
from xml.etree import ElementTree as ET

import numpy as np
from numpy.typing import NDArray
from rasterio.warp import Resampling, calculate_default_transform, reproject
from shapely.geometry.base import BaseGeometry

from ..catalog.models import Measurement, Observation, Site
from ..errors import InputError
from ..files import atomic_path
from ._cartography import lonlat_of
from ._imagery import ImageChip, percentile_stretch, png_bytes, to_rgb
from .exports import Row, change_rows, feature_rows, measurement_lines, ring_rows
from .figures import FEATURE_COLOURS

__all__ = ["GX_NS", "KML_NS", "OverlayMode", "site_kml", "write_site_kmz"]

log = logging.getLogger(__name__)

KML_NS = "http://www.opengis.net/kml/2.2"
GX_NS = "http://www.google.com/kml/ext/2.2"
OverlayMode = Literal["box", "quad"]
_ICON = "files/dot.png"


def _k(tag: str) -> str:
    return f"{{{KML_NS}}}{tag}"


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, _k(tag) if ":" not in tag else tag, attrs)
    if text is not None:
        el.text = text
    return el


def kml_colour(hex_rgb: str, alpha: int = 255) -> str:
    """KML's aabbggrr from ``#rrggbb``."""
    h = hex_rgb.lstrip("#")
    return f"{alpha:02x}{h[4:6]}{h[2:4]}{h[0:2]}"


def _coords(seq: Iterable[Any]) -> str:
    return " ".join(f"{float(c[0]):.7f},{float(c[1]):.7f}" for c in seq)


def _geometry(parent: ET.Element, geom: BaseGeometry) -> None:
    kind = geom.geom_type
    if kind == "Point":
        _sub(_sub(parent, "Point"), "coordinates", _coords(geom.coords))
    elif kind in ("LineString", "LinearRing"):
        line = _sub(parent, "LineString")
        _sub(line, "tessellate", "1")
        _sub(line, "coordinates", _coords(geom.coords))
    elif kind == "Polygon":
        poly = _sub(parent, "Polygon")
        _sub(poly, "tessellate", "1")
        ring = _sub(_sub(poly, "outerBoundaryIs"), "LinearRing")
        _sub(ring, "coordinates", _coords(geom.exterior.coords))
        for inner in geom.interiors:
            ring = _sub(_sub(poly, "innerBoundaryIs"), "LinearRing")
            _sub(ring, "coordinates", _coords(inner.coords))
    elif hasattr(geom, "geoms"):
        multi = _sub(parent, "MultiGeometry")
        for part in geom.geoms:
            _geometry(multi, part)
    else:  # pragma: no cover - shapely has no other kinds
        raise InputError(f"cannot write a {kind} geometry to KML")


def _style(doc: ET.Element, sid: str, colour: str) -> None:
    style = _sub(doc, "Style", id=sid)
    icon_style = _sub(style, "IconStyle")
    _sub(icon_style, "color", kml_colour(colour))
    _sub(icon_style, "scale", "0.9")
    _sub(_sub(icon_style, "Icon"), "href", _ICON)
    _sub(_sub(style, "LabelStyle"), "scale", "0.8")
    line = _sub(style, "LineStyle")
    _sub(line, "color", kml_colour(colour))
    _sub(line, "width", "2.5")
    poly = _sub(style, "PolyStyle")
    _sub(poly, "color", kml_colour(colour, 0x40))


def _placemark(
    folder: ET.Element,
    row: Row,
    name: str,
    style: str,
    description: str = "",
    span: tuple[str, str] | None = None,
) -> None:
    pm = _sub(folder, "Placemark")
    _sub(pm, "name", name)
    if description:
        _sub(pm, "description", description)
    if span is not None:  # shown on Google Earth's time slider between the two dates
        when = _sub(pm, "TimeSpan")
        _sub(when, "begin", span[0])
        _sub(when, "end", span[1])
    _sub(pm, "styleUrl", f"#{style}")
    data = {k: v for k, v in row.properties.items() if v not in (None, "")}
    if data:
        ext = _sub(pm, "ExtendedData")
        for key, value in data.items():
            _sub(_sub(ext, "Data", name=str(key)), "value", str(value))
    _geometry(pm, row.geometry)


def _warp_to_lonlat(
    chip: ImageChip, rgb: NDArray[Any]
) -> tuple[NDArray[Any], NDArray[np.bool_], tuple[float, float, float, float]]:
    left, bottom, right, top = chip.bounds
    dst_t, w, h = calculate_default_transform(
        chip.crs, "EPSG:4326", chip.width, chip.height, left, bottom, right, top
    )
    src = np.moveaxis(rgb, -1, 0).astype(np.float32)
    valid = (
        np.ones((chip.height, chip.width), np.float32)
        if chip.valid is None
        else chip.valid.astype(np.float32)
    )
    src = np.concatenate([src, valid[np.newaxis]])
    dst = np.zeros((4, h, w), np.float32)
    reproject(
        src,
        dst,
        src_transform=chip.transform,
        src_crs=chip.crs,
        dst_transform=dst_t,
        dst_crs="EPSG:4326",
        resampling=Resampling.nearest,
        src_nodata=None,
        dst_nodata=0,
    )
    out = np.moveaxis(dst[:3], 0, -1)
    alpha = dst[3] > 0.5
    west, north = dst_t.c, dst_t.f
    east, south = west + dst_t.a * w, north + dst_t.e * h
    return out, alpha, (north, south, east, west)


def _overlay(
    folder: ET.Element,
    files: dict[str, bytes],
    chip: ImageChip,
    stretch: Any,
    index: int,
    mode: OverlayMode,
) -> None:
    rgb = to_rgb(chip, stretch)
    name = f"files/overlay_{index:03d}_{chip.date_text or 'undated'}.png"
    go = _sub(folder, "GroundOverlay")
    _sub(
        go, "name", " ".join(t for t in (chip.date_text, chip.sensor) if t) or f"image {index + 1}"
    )
    credit = f"Image © {chip.source}" if chip.source else "Image © provider not recorded"
    _sub(
        go,
        "description",
        f"{chip.sensor} {chip.date_text}, {chip.resolution:g} m grid ({chip.crs})"
        f"{f', {colours}' if (colours := chip.composite_text()) else ''}. {credit}.",
    )
    if chip.date_text:
        _sub(_sub(go, "TimeStamp"), "when", chip.date_text)
    _sub(go, "drawOrder", str(index + 1))
    _sub(_sub(go, "Icon"), "href", name)
    if mode == "box":
        warped, alpha, (north, south, east, west) = _warp_to_lonlat(chip, rgb)
        files[name] = png_bytes(warped, alpha)
        box = _sub(go, "LatLonBox")
        for tag, value in (("north", north), ("south", south), ("east", east), ("west", west)):
            _sub(box, tag, f"{value:.8f}")
    else:
        files[name] = png_bytes(rgb, chip.valid)
        left, bottom, right, top = chip.bounds
        corners = [
            lonlat_of(chip.crs, x, y)
            for x, y in ((left, bottom), (right, bottom), (right, top), (left, top))
        ]
        quad = ET.SubElement(go, f"{{{GX_NS}}}LatLonQuad")
        _sub(quad, "coordinates", _coords(corners))


def _icon_png() -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    draw.ellipse((4, 4, 27, 27), fill=(255, 255, 255, 255), outline=(0, 0, 0, 255), width=2)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def site_kml(
    site: Site,
    features: Iterable[Any] = (),
    *,
    overlays: Sequence[ImageChip] = (),
    changes: Iterable[Any] = (),
    rings: Any = (),
    mode: OverlayMode = "box",
    percentiles: tuple[float, float] = (2.0, 98.0),
    observations: Iterable[Observation] = (),
    evidence_files: Mapping[str, Path] | None = None,
    measurements: Iterable[Measurement] = (),
) -> tuple[bytes, dict[str, bytes]]:
    """The KML document (UTF-8 bytes) and the files it references (name -> bytes).

    ``evidence_files`` maps the observations' stored evidence references to their files (see
    :func:`~sitewatch.catalog.evidence.resolve_evidence`); their images are embedded.
    ``measurements`` are listed in the balloon of the feature they measure (the site's own in
    the site's), so that Google Earth shows a berm's height where the berm is."""
    if mode not in ("box", "quad"):
        raise InputError(
            f"unknown overlay mode {mode!r}; choose 'box' (OGC LatLonBox) or 'quad' (gx:LatLonQuad)"
        )
    ET.register_namespace("", KML_NS)
    ET.register_namespace("gx", GX_NS)
    root = ET.Element(_k("kml"))
    doc = _sub(root, "Document")
    _sub(doc, "name", site.name)
    _sub(doc, "open", "1")
    flags = f"{site.category.replace('_', ' ')}, {site.status}, {'declared' if site.declared else 'not declared'}"
    _sub(doc, "description", f"{site.name} ({site.id}): {flags}. {site.notes}".strip())
    kinds = {"site": "#ffffff", **FEATURE_COLOURS, "ring": "#ffff00"}
    for kind, colour in kinds.items():
        _style(doc, f"kind-{kind}", colour)

    site_row = Row(
        site.point,
        {
            "id": site.id,
            "category": site.category,
            "status": site.status,
            "declared": site.declared,
        },
    )
    observations = list(observations)
    measured = measurement_lines(measurements, observations)
    site_text = "<br/>".join(
        x for x in (html.escape(site.notes), *map(html.escape, measured.get(None, []))) if x
    )
    _placemark(doc, site_row, site.name, "kind-site", site_text)
    if site.aoi is not None:
        _placemark(doc, Row(site.aoi, {"id": site.id}), f"{site.name} AOI", "kind-site")

    files: dict[str, bytes] = {_ICON: _icon_png()}
    if overlays:
        folder = _sub(doc, "Folder")
        _sub(folder, "name", "Imagery")
        stretch = percentile_stretch(list(overlays), percentiles)
        for i, chip in enumerate(overlays):
            _overlay(folder, files, chip, stretch, i, mode)
    layers: list[tuple[str, list[Row], str]] = [
        ("Features", feature_rows(features), "kind"),
        ("Change", change_rows(changes), "change"),
        ("Range rings", ring_rows(rings), "ring"),
    ]
    for title, rows, style in layers:
        if not rows:
            continue
        folder = _sub(doc, "Folder")
        _sub(folder, "name", title)
        for row in rows:
            p = row.properties
            text = ""
            span = None
            if style == "kind":
                kind = str(p.get("kind") or "other")
                sid = f"kind-{kind if kind in FEATURE_COLOURS else 'other'}"
                label = str(p.get("name") or kind.replace("_", " "))
                lines = [_feature_text(p), *measured.get(str(p.get("id")), [])]
                text = "<br/>".join(html.escape(t) for t in lines if t)
            elif style == "change":
                sid = "kind-change"
                before, after = str(p.get("before") or "")[:10], str(p.get("after") or "")[:10]
                label = f"change {before} to {after}"
                if p.get("kind"):  # the kind of change with the largest area
                    label += f" ({str(p['kind']).replace('_to_', ' to ').replace('_', ' ')})"
                text = html.escape(_change_text(p))
                span = (before, after) if before and after else None
            else:
                sid = "kind-ring"
                label = str(p.get("label") or p.get("name") or "range ring")
            _placemark(folder, row, label, sid, text, span)
    if observations:
        _observations(doc, files, site, observations, evidence_files or {})
    xml = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return xml, files


def _feature_text(p: Mapping[str, Any]) -> str:
    """``ugf portal · length 26 m · width 10 m · azimuth 105.5° · seen 2023-04-01 →``: what a
    feature's balloon says before its measurements."""
    import json

    attrs = p.get("attributes")
    if isinstance(attrs, str):
        try:
            attrs = json.loads(attrs)
        except ValueError:
            attrs = {}
    parts = [str(p.get("kind") or "").replace("_", " ")]
    for key, value in (attrs or {}).items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            unit = " m" if key.endswith("_m") else "°" if key.endswith("_deg") else ""
            name = key.removesuffix("_m").removesuffix("_deg").replace("_", " ")
            parts.append(f"{name} {value:.4g}{unit}")
        elif isinstance(value, str | bool):
            parts.append(f"{key.replace('_', ' ')} {value}")
    first, last = str(p.get("first_seen") or "")[:10], str(p.get("last_seen") or "")[:10]
    if first or last:
        parts.append(f"seen {first or '?'} → {last}".rstrip())
    return " · ".join(x for x in parts if x)


def _change_text(p: Mapping[str, Any]) -> str:
    """``616 m² changed between 2023-04-01 and 2023-08-25 · cva, magnitude 2.09 · mostly
    within other (97%)``: a change polygon's balloon."""
    from ..analysis.landcover import kind_words

    parts = []
    if isinstance(p.get("area_m2"), int | float):
        parts.append(
            f"{p['area_m2']:,.0f} m² changed between {str(p.get('before'))[:10]} and "
            f"{str(p.get('after'))[:10]}"
        )
    how = str(p.get("method") or "")
    if isinstance(p.get("magnitude"), int | float):
        how += f", magnitude {p['magnitude']:.3g}"
    parts.append(how.strip(", "))
    if p.get("kind") and isinstance(p.get("kind_share"), int | float):
        parts.append(f"mostly {kind_words(str(p['kind']))} ({100 * p['kind_share']:.0f}%)")
    return " · ".join(x for x in parts if x)


_EMBEDDED = (".png", ".jpg", ".jpeg", ".gif")


def _observations(
    doc: ET.Element,
    files: dict[str, bytes],
    site: Site,
    observations: Iterable[Observation],
    evidence_files: Mapping[str, Path],
) -> None:
    """A folder with one placemark per observation at the site, dated for the time slider, its
    balloon holding the text and the evidence: images travel in ``files/evidence/``, web
    addresses are links, other files are named with their SHA-256."""
    folder = _sub(doc, "Folder")
    _sub(folder, "name", "Observations")
    for o in observations:
        phase = o.phase.replace("_", " ") if o.phase else "observation"
        parts = [
            html.escape(t) for t in (o.text, " · ".join(x for x in (o.sensor, o.analyst) if x)) if t
        ]
        for ref in o.evidence:
            path = evidence_files.get(ref)
            if path is not None and path.suffix.lower() in _EMBEDDED:
                name = f"files/evidence/{path.parent.name[:16]}-{path.name}"
                files[name] = path.read_bytes()
                parts.append(f'<img src="{html.escape(name)}" width="400"/>')
            elif ref.startswith(("http://", "https://")):
                parts.append(f'<a href="{html.escape(ref)}">{html.escape(ref)}</a>')
            else:
                parts.append(html.escape(ref))
        pm = _sub(folder, "Placemark")
        _sub(pm, "name", f"{o.acquired.date().isoformat()} {phase}")
        _sub(pm, "description", "<br/>".join(parts))
        stamp = _sub(pm, "TimeStamp")
        _sub(stamp, "when", o.acquired.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        _sub(pm, "styleUrl", "#kind-site")
        _geometry(pm, site.point)


def write_site_kmz(
    path: str | Path,
    site: Site,
    features: Iterable[Any] = (),
    *,
    overlays: Sequence[ImageChip] = (),
    changes: Iterable[Any] = (),
    rings: Any = (),
    mode: OverlayMode = "box",
    percentiles: tuple[float, float] = (2.0, 98.0),
    observations: Iterable[Observation] = (),
    evidence_files: Mapping[str, Path] | None = None,
    measurements: Iterable[Measurement] = (),
) -> Path:
    """Write the site's KMZ (``doc.kml`` first, then ``files/``) atomically; returns the path."""
    target = Path(path)
    if target.suffix.lower() not in (".kmz", ".kml"):
        raise InputError(f"cannot write {target.name}: use a .kmz name (or .kml without overlays)")
    xml, files = site_kml(
        site,
        features,
        overlays=overlays,
        changes=changes,
        rings=rings,
        mode=mode,
        percentiles=percentiles,
        observations=observations,
        evidence_files=evidence_files,
        measurements=measurements,
    )
    with atomic_path(target, parents=True) as tmp:
        if target.suffix.lower() == ".kml":
            if overlays:
                raise InputError("image overlays need a .kmz (the PNGs travel inside it)")
            if any(n.startswith("files/evidence/") for n in files):
                raise InputError("evidence images need a .kmz (they travel inside it)")
            tmp.write_bytes(xml)
        else:
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                zf.writestr("doc.kml", xml)
                for name, data in files.items():
                    zf.writestr(name, data, compress_type=zipfile.ZIP_STORED)
    log.info("wrote %s (%d overlay(s))", target, len(overlays))
    return target
