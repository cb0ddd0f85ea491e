"""Geodesic range rings and targets within range, from a user-editable table of missile classes.

The table (``sitewatch/data/missile_ranges.csv`` by default, or the user's own CSV with the same
columns) gives, per class, its minimum and maximum range in km and the public source of each
figure. A range ring is the geodesic circle (WGS84, pyproj ``Geod.fwd`` along 360 azimuths)
around a launch point; the reachable area is the annulus between the minimum and maximum ring.

Rings are returned as lon/lat (Multi)Polygons in the -180..180 frame that render correctly:
a ring that crosses the antimeridian is split into parts on both sides, a ring that encloses a
pole becomes a polygon that includes the pole (closed along the pole's parallel), and a ring
larger than a hemisphere, which encloses the antipode's "unreachable" cap, gives the world minus
that cap.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
import shapely
from shapely.geometry import Polygon, box, mapping
from shapely.geometry.base import BaseGeometry

from ..errors import ImportFormatError, InputError, RecordProblem
from ..geo import GEOD, check_lonlat

__all__ = [
    "MAX_AZIMUTHS",
    "MIN_AZIMUTHS",
    "MissileClass",
    "RangeRing",
    "TargetReach",
    "classes_for_tags",
    "default_table_path",
    "load_missile_table",
    "range_area",
    "range_rings",
    "rings_to_geojson",
    "rings_to_kml",
    "select_classes",
    "table_in_use",
    "targets_in_range",
]

MIN_AZIMUTHS, MAX_AZIMUTHS = 8, 36_000  # vertices per ring: an octagon .. 0.01 degree steps

logger = logging.getLogger(__name__)

_WORLD = box(-180.0, -90.0, 180.0, 90.0)
_HALF_MERIDIAN_M = 20_003_931.5  # pole to pole along a WGS84 meridian
_COLUMNS = (
    "class",
    "name",
    "type",
    "min_range_km",
    "max_range_km",
    "source",
    "source_url",
    "notes",
)


@dataclass(frozen=True)
class MissileClass:
    """One row of the table: a class and its published ranges, with where they come from."""

    id: str
    name: str
    max_range_km: float
    min_range_km: float = 0.0
    type: str = ""
    source: str = ""
    source_url: str = ""
    notes: str = ""

    def __post_init__(self) -> None:
        if not self.max_range_km > 0 or not math.isfinite(self.max_range_km):
            raise InputError(f"missile class {self.id!r}: max range must be > 0 km")
        if not 0 <= self.min_range_km < self.max_range_km:
            raise InputError(
                f"missile class {self.id!r}: min range {self.min_range_km} km must be >= 0 and "
                f"below the max range {self.max_range_km} km"
            )
        if not self.source.strip():
            raise InputError(f"missile class {self.id!r}: every range needs its source")


def default_table_path() -> Path:
    """The table shipped with sitewatch."""
    return Path(str(resources.files("sitewatch") / "data" / "missile_ranges.csv"))


def load_missile_table(path: str | Path | None = None) -> list[MissileClass]:
    """Read a missile table (CSV; ``#`` lines are comments). All bad rows are reported at once."""
    p = Path(path) if path is not None else default_table_path()
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read the missile table {p}: {exc.strerror or exc}") from exc
    lines = [
        (n, line)
        for n, line in enumerate(text.splitlines(), 1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not lines:
        raise ImportFormatError(str(p), [RecordProblem(None, "no rows")])
    reader = csv.DictReader(io.StringIO("\n".join(line for _, line in lines)))
    missing = [c for c in ("class", "max_range_km", "source") if c not in (reader.fieldnames or [])]
    if missing:
        raise ImportFormatError(
            str(p),
            [RecordProblem(lines[0][0], f"missing column(s) {', '.join(missing)}")],
            hint=f"the header must hold: {','.join(_COLUMNS)}",
        )
    out: list[MissileClass] = []
    problems: list[RecordProblem] = []
    seen: set[str] = set()
    for (lineno, _), row in zip(lines[1:], reader, strict=False):
        try:
            cid = (row.get("class") or "").strip()
            if not cid:
                raise InputError("empty class")
            if cid in seen:
                raise InputError(f"class {cid!r} repeats")
            seen.add(cid)
            mc = MissileClass(
                id=cid,
                name=(row.get("name") or cid).strip(),
                max_range_km=float(row["max_range_km"]),
                min_range_km=float(row.get("min_range_km") or 0.0),
                type=(row.get("type") or "").strip(),
                source=(row.get("source") or "").strip(),
                source_url=(row.get("source_url") or "").strip(),
                notes=(row.get("notes") or "").strip(),
            )
            out.append(mc)
        except (InputError, ValueError, TypeError) as exc:
            problems.append(RecordProblem(lineno, str(exc)))
    if problems:
        raise ImportFormatError(str(p), problems)
    return out


def select_classes(table: Sequence[MissileClass], ids: Sequence[str] | None) -> list[MissileClass]:
    """The classes named in ``ids`` (all when None), in the order given."""
    if not ids:
        return list(table)
    by_id = {c.id: c for c in table}
    unknown = [i for i in ids if i not in by_id]
    if unknown:
        raise InputError(f"unknown missile class(es) {unknown}; the table has: {', '.join(by_id)}")
    return [by_id[i] for i in ids]


def table_in_use() -> list[MissileClass]:
    """The table the settings name (SITEWATCH_MISSILE_TABLE), else the shipped one: what the
    CLI, the web app and the briefs read."""
    from ..config import get_settings

    return load_missile_table(get_settings().missile_table)


def classes_for_tags(table: Sequence[MissileClass], tags: Sequence[str]) -> list[MissileClass]:
    """The classes a site's tags name: by type (``srbm``, ``mrbm``: every class of that type)
    or by class id (``nodong``), in the table's order; none for tags that name no missile."""
    wanted = {t.strip().lower() for t in tags}
    return [m for m in table if m.id.lower() in wanted or m.type.strip().lower() in wanted]


# --- geometry ----------------------------------------------------------------------------------


def _ring_coords(lon: float, lat: float, radius_m: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    az = np.arange(n) * (360.0 / n)
    lons, lats, _ = GEOD.fwd(np.full(n, lon), np.full(n, lat), az, np.full(n, radius_m))
    lons = np.asarray(lons, dtype=np.float64)
    lats = np.asarray(lats, dtype=np.float64)
    # unwrap longitudes so that consecutive vertices never jump by more than 180 degrees
    unwrapped = np.degrees(np.unwrap(np.radians(lons)))
    return unwrapped, lats


def _wrap(poly: Polygon) -> BaseGeometry:
    """Cut a polygon with unwrapped longitudes into the -180..180 frame."""
    parts = []
    for shift in (-720.0, -360.0, 0.0, 360.0, 720.0):
        moved = shapely.affinity.translate(poly, xoff=shift)
        if moved.intersects(_WORLD):
            piece = moved.intersection(_WORLD)
            if not piece.is_empty and piece.area > 0:
                parts.append(piece)
    return shapely.union_all(parts) if parts else Polygon()


def _disk(lon: float, lat: float, radius_m: float, n: int) -> BaseGeometry:
    """Lon/lat area within ``radius_m`` (geodesic) of a point, in the -180..180 frame."""
    xs, ys = _ring_coords(lon, lat, radius_m, n)
    turn = xs[-1] - xs[0] + (xs[1] - xs[0] if n > 1 else 0.0)  # total longitude swept
    if abs(turn) > 180.0:
        # the ring winds around a pole: close it along the pole that is within reach
        _, _, to_north = GEOD.inv(lon, lat, lon, 90.0)
        pole = 90.0 if to_north < radius_m else -90.0
        end = xs[0] + math.copysign(360.0, turn)
        coords = [*zip(xs, ys, strict=True), (end, ys[0]), (end, pole), (xs[0], pole)]
        return _wrap(shapely.make_valid(Polygon(coords)))
    poly = shapely.make_valid(Polygon(zip(xs, ys, strict=True)))
    area = _wrap(poly)
    if radius_m > _HALF_MERIDIAN_M / 2.0 and not area.covers(shapely.Point(lon, lat)):
        # a ring past the antipodal hemisphere: the polygon drawn is the unreachable cap
        return _WORLD.difference(area)
    return area


def range_area(
    lon: float, lat: float, max_range_m: float, min_range_m: float = 0.0, *, n: int = 360
) -> BaseGeometry:
    """The lon/lat area between the geodesic circles of ``min_range_m`` and ``max_range_m``."""
    check_lonlat(lon, lat, what="launch point")
    if max_range_m <= 0:
        raise InputError(f"range must be positive, got {max_range_m} m")
    if max_range_m >= 2 * _HALF_MERIDIAN_M - 1000:
        outer: BaseGeometry = _WORLD
    else:
        outer = _disk(lon, lat, max_range_m, n)
    if min_range_m > 0:
        outer = outer.difference(_disk(lon, lat, min_range_m, n))
    return outer


@dataclass(frozen=True)
class RangeRing:
    """The area a class reaches from a launch point, with its table row."""

    missile: MissileClass
    origin: tuple[float, float]
    geometry: BaseGeometry
    origin_name: str = ""

    def properties(self) -> dict[str, Any]:
        m = self.missile
        return {
            "class": m.id,
            "name": m.name,
            "type": m.type,
            "min_range_km": m.min_range_km,
            "max_range_km": m.max_range_km,
            "source": m.source,
            "source_url": m.source_url,
            "notes": m.notes,
            "origin_lon": self.origin[0],
            "origin_lat": self.origin[1],
            "origin": self.origin_name,
        }


def range_rings(
    origin: tuple[float, float],
    classes: Sequence[MissileClass],
    *,
    n: int = 360,
    origin_name: str = "",
) -> list[RangeRing]:
    """One :class:`RangeRing` per class around ``origin`` (lon, lat)."""
    if not MIN_AZIMUTHS <= n <= MAX_AZIMUTHS:
        raise InputError(
            f"a ring needs {MIN_AZIMUTHS} to {MAX_AZIMUTHS} azimuths (vertices), got {n}; "
            "360 (one a degree) is plenty for a map"
        )
    return [
        RangeRing(
            m,
            origin,
            range_area(origin[0], origin[1], m.max_range_km * 1000.0, m.min_range_km * 1000.0, n=n),
            origin_name,
        )
        for m in classes
    ]


def rings_to_geojson(rings: Sequence[RangeRing]) -> dict[str, Any]:
    """A GeoJSON FeatureCollection, largest ring first (so smaller ones draw on top)."""
    feats = [
        {"type": "Feature", "properties": r.properties(), "geometry": mapping(r.geometry)}
        for r in sorted(rings, key=lambda r: -r.missile.max_range_km)
    ]
    if rings:
        o = rings[0].origin
        feats.append(
            {
                "type": "Feature",
                "properties": {"role": "origin", "name": rings[0].origin_name},
                "geometry": {"type": "Point", "coordinates": [o[0], o[1]]},
            }
        )
    return {"type": "FeatureCollection", "features": feats}


_KML_COLOURS = ("ff0000ff", "ff00a5ff", "ff00ffff", "ff00ff00", "ffff0000", "ffff00ff", "ff808080")


def _kml_ring(coords: Iterable[Sequence[float]]) -> str:
    text = " ".join(f"{x:.6f},{y:.6f},0" for x, y, *_ in coords)
    return f"<LinearRing><tessellate>1</tessellate><coordinates>{text}</coordinates></LinearRing>"


def _kml_polygon(p: Polygon) -> str:
    inner = "".join(
        f"<innerBoundaryIs>{_kml_ring(r.coords)}</innerBoundaryIs>" for r in p.interiors
    )
    return f"<Polygon><outerBoundaryIs>{_kml_ring(p.exterior.coords)}</outerBoundaryIs>{inner}</Polygon>"


def rings_to_kml(rings: Sequence[RangeRing], *, name: str = "range rings") -> str:
    """A KML document: one styled placemark per ring (MultiGeometry when split), plus the origin."""
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<kml xmlns="http://www.opengis.net/kml/2.2"><Document>',
        f"<name>{escape(name)}</name>",
    ]
    for i, r in enumerate(sorted(rings, key=lambda r: -r.missile.max_range_km)):
        colour = _KML_COLOURS[i % len(_KML_COLOURS)]
        m = r.missile
        polys = (
            [r.geometry]
            if isinstance(r.geometry, Polygon)
            else list(getattr(r.geometry, "geoms", []))
        )
        polys = [p for p in polys if isinstance(p, Polygon) and not p.is_empty]
        geom = "".join(_kml_polygon(p) for p in polys)
        if len(polys) != 1:
            geom = f"<MultiGeometry>{geom}</MultiGeometry>"
        desc = f"{m.min_range_km:g}-{m.max_range_km:g} km. Source: {m.source} {m.source_url}. {m.notes}"
        out.append(
            f"<Placemark><name>{escape(m.name)}</name><description>{escape(desc)}</description>"
            f"<Style><LineStyle><color>{colour}</color><width>2</width></LineStyle>"
            f"<PolyStyle><color>{'33' + colour[2:]}</color></PolyStyle></Style>{geom}</Placemark>"
        )
    if rings:
        o = rings[0].origin
        out.append(
            f"<Placemark><name>{escape(rings[0].origin_name or 'origin')}</name>"
            f"<Point><coordinates>{o[0]:.6f},{o[1]:.6f},0</coordinates></Point></Placemark>"
        )
    out.append("</Document></kml>")
    return "\n".join(out) + "\n"


# --- targets -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetReach:
    """A target: its distance and bearing from the origin and the classes that reach it."""

    name: str
    lon: float
    lat: float
    distance_km: float
    bearing_deg: float
    classes: tuple[str, ...]
    properties: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "lon": self.lon,
            "lat": self.lat,
            "distance_km": round(self.distance_km, 3),
            "bearing_deg": round(self.bearing_deg, 2),
            "in_range_of": list(self.classes),
        }


def targets_in_range(
    origin: tuple[float, float],
    targets: Sequence[tuple[str, float, float]],
    classes: Sequence[MissileClass],
) -> list[TargetReach]:
    """Distance, bearing and reaching classes for each named ``(name, lon, lat)`` target."""
    check_lonlat(*origin, what="origin")
    out: list[TargetReach] = []
    for name, lon, lat in targets:
        check_lonlat(lon, lat, what=f"target {name!r}")
        az, _, dist = GEOD.inv(origin[0], origin[1], lon, lat)
        km = float(dist) / 1000.0
        reach = tuple(m.id for m in classes if m.min_range_km <= km <= m.max_range_km)
        out.append(TargetReach(name, lon, lat, km, float(az) % 360.0, reach))
    return out
