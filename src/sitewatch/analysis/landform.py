"""The landform of a site: its elevation, slope and facing, the relief around it, whether the
terrain counts as mountainous, and where each of its features sits on the slope.

"Housed in mountainous terrain" is a claim a brief should back with figures: a base whose
portals face east into a valley 300 m deep reads differently from one on a plain. From a DEM,
:func:`landform` gives at the site's point and at each feature (its representative point):

* elevation, slope (Horn) and facing (the downslope direction, as ``aspect``), read from the
  DEM cell holding the point;
* how far below the highest ground within ``radius_m`` it lies (cover behind a portal);

and within ``radius_m`` of the site: the lowest and highest ground, their difference (the local
relief), the mean slope and the share of the ground steeper than :data:`STEEP_DEG`.

Mountainous or not follows the UNEP-WCMC definition of Kapos et al. (2000, *Mountains of the
world*; also Blyth et al. 2002), a fixed published rule tuned on nothing here: elevation of at
least 2,500 m; 1,500-2,500 m with a slope of at least 2°; 1,000-1,500 m with a slope of at least
5° or a local elevation range (LER, within :data:`LER_RADIUS_M`) above 300 m; 300-1,000 m with an
LER above 300 m. The LER is taken over the part of that 7 km circle that the DEM covers, and the
result says how much of it that was. The slope is the mean within ``radius_m`` (1 km by default),
not the slope of the site's own cell: the definition was made on 30-arc-second (about 1 km)
cells, and a summit or a valley floor is flat in a 30 m cell however steep the ground around it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry

from ..errors import InputError
from ..geo import compass, to_crs
from .terrain import Dem, aspect, slope

__all__ = [
    "LER_RADIUS_M",
    "STEEP_DEG",
    "Landform",
    "PlaceForm",
    "feature_places",
    "kapos_class",
    "landform",
    "landform_from_file",
    "landform_lines",
]

STEEP_DEG = 20.0
"""Slope from which ground counts as steep in :attr:`Landform.steep_share`."""

LER_RADIUS_M = 7000.0
"""Radius of the local elevation range of the mountain definition (Kapos et al. 2000)."""


@dataclass(frozen=True)
class PlaceForm:
    """Where one point sits on the terrain."""

    id: str | None
    name: str | None
    elevation_m: float
    slope_deg: float
    facing_deg: float | None
    """The downslope direction (deg from north); None on flat ground."""
    below_top_m: float
    """Highest ground within the radius minus this point's elevation."""


@dataclass(frozen=True)
class Landform:
    """The landform of a site (see the module)."""

    site: PlaceForm
    radius_m: float
    lowest_m: float
    highest_m: float
    mean_slope_deg: float
    steep_share: float
    cell_m: float
    ler_m: float
    """Local elevation range within :data:`LER_RADIUS_M`."""
    ler_coverage: float
    """Share of the 7 km circle the DEM covers."""
    mountain_class: int | None
    """Kapos et al. (2000) class 1-6, None when not mountainous or not judged."""
    mountain_judged: bool = True
    """False when the class turns on the 7 km relief and the DEM covers too little to tell."""
    coverage: float = 1.0
    """Share of the ``radius_m`` circle the DEM covers (the relief and slopes are over it)."""
    places: list[PlaceForm] = field(default_factory=list)

    @property
    def relief_m(self) -> float:
        return self.highest_m - self.lowest_m

    @property
    def mountainous(self) -> bool:
        return self.mountain_class is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: a feature off the DEM has None (not NaN) for its figures."""
        out = asdict(self)
        out["relief_m"] = self.relief_m
        out["mountainous"] = self.mountainous
        for place in out["places"]:
            for key, value in place.items():
                if isinstance(value, float) and not math.isfinite(value):
                    place[key] = None
        return out


def kapos_class(elevation_m: float, slope_deg: float, ler_m: float) -> int | None:
    """The mountain class of Kapos et al. (2000), or None below all its thresholds."""
    if elevation_m >= 4500:
        return 1
    if elevation_m >= 3500:
        return 2
    if elevation_m >= 2500:
        return 3
    if elevation_m >= 1500:
        return 4 if slope_deg >= 2.0 else None
    if elevation_m >= 1000:
        return 5 if slope_deg >= 5.0 or ler_m > 300.0 else None
    if elevation_m >= 300:
        return 6 if ler_m > 300.0 else None
    return None


def _crop(metric: Dem, x: float, y: float, radius: float) -> tuple[Dem, NDArray[np.bool_]]:
    """The part of ``metric`` within ``radius`` of x/y (one cell of margin for the slope), and
    which of its cells lie within the circle."""
    from affine import Affine

    rows, cols = metric.shape
    xs = np.array([x - radius, x + radius, x - radius, x + radius])
    ys = np.array([y + radius, y + radius, y - radius, y - radius])
    corners = metric.rowcol(xs, ys)
    lo_r = min(rows, max(0, math.floor(corners[:, 0].min()) - 1))
    hi_r = max(lo_r, min(rows, math.floor(corners[:, 0].max()) + 2))
    lo_c = min(cols, max(0, math.floor(corners[:, 1].min()) - 1))
    hi_c = max(lo_c, min(cols, math.floor(corners[:, 1].max()) + 2))
    t = metric.transform
    part = Dem(
        metric.data[lo_r:hi_r, lo_c:hi_c],
        t * Affine.translation(lo_c, lo_r),
        metric.crs,
        metric.source,
    )
    pr, pc = np.mgrid[lo_r:hi_r, lo_c:hi_c] + 0.5
    cx = t.c + pc * t.a + pr * t.b
    cy = t.f + pc * t.d + pr * t.e
    return part, np.hypot(cx - x, cy - y) <= radius


def landform(
    dem: Dem,
    lon: float,
    lat: float,
    *,
    radius_m: float = 1000.0,
    places: Sequence[tuple[str | None, str | None, BaseGeometry]] = (),
) -> Landform:
    """The landform around ``lon``/``lat`` and of ``places`` (id, name, lon/lat geometry)."""
    if not radius_m > 0:
        raise InputError(f"the radius must be above 0 m, got {radius_m:g}")
    metric = dem.to_metric()
    x, y = to_crs(Point(lon, lat), "EPSG:4326", metric.crs).coords[0]
    part, inside = _crop(metric, x, y, radius_m)
    z = part.data
    ok = inside & np.isfinite(z)
    if not np.isfinite(_cell(part, z, x, y)) or not ok.any():
        raise InputError(
            f"the point {lon:.5f},{lat:.5f} is outside the DEM {dem.source} or on its no-data "
            "cells; give a DEM that covers the site"
        )
    sl = slope(part)
    highest = float(np.nanmax(np.where(ok, z, np.nan)))
    cell = math.sqrt(abs(metric.transform.a * metric.transform.e))

    def place(pid: str | None, name: str | None, px: float, py: float) -> PlaceForm:
        # a few cells around the point: its slope and facing, wherever it lies on the DEM
        near, _ = _crop(metric, px, py, 2.0 * cell)
        e = _cell(near, near.data, px, py)
        if not math.isfinite(e):
            return PlaceForm(pid, name, math.nan, math.nan, None, math.nan)
        f = _cell(near, aspect(near), px, py)
        return PlaceForm(
            pid,
            name,
            round(e, 1),
            round(_cell(near, slope(near), px, py), 1),
            None if not math.isfinite(f) else round(f, 0),
            round(highest - e, 1),
        )

    site = place(None, None, x, y)
    forms = []
    for pid, name, geom in places:
        p = geom if geom.geom_type == "Point" else geom.representative_point()
        px, py = to_crs(p, "EPSG:4326", metric.crs).coords[0]
        forms.append(place(pid, name, px, py))
    wide, wide_in = _crop(metric, x, y, LER_RADIUS_M)
    wok = wide_in & np.isfinite(wide.data)
    ler = float(np.ptp(wide.data[wok])) if wok.any() else 0.0
    mean_slope = float(np.nanmean(np.where(ok, sl, np.nan)))
    coverage = min(1.0, float(wok.sum()) * cell * cell / (math.pi * LER_RADIUS_M**2))
    # the relief over part of the 7 km circle is a lower bound of the whole circle's: above 300 m
    # it settles the question; at or below, only a DEM covering the circle can
    low = kapos_class(site.elevation_m, mean_slope, 0.0)
    high = kapos_class(site.elevation_m, mean_slope, math.inf)
    judged = low == high or ler > 300.0 or coverage >= 0.995
    return Landform(
        site=site,
        radius_m=radius_m,
        lowest_m=round(float(np.nanmin(np.where(ok, z, np.nan))), 1),
        highest_m=round(highest, 1),
        mean_slope_deg=round(mean_slope, 1),
        steep_share=round(float(np.mean(sl[ok] >= STEEP_DEG)), 3),
        cell_m=round(cell, 2),
        ler_m=round(ler, 1),
        ler_coverage=round(coverage, 3),
        mountain_class=kapos_class(site.elevation_m, mean_slope, ler) if judged else None,
        mountain_judged=judged,
        coverage=round(min(1.0, float(ok.sum()) * cell * cell / (math.pi * radius_m**2)), 3),
        places=forms,
    )


def feature_places(
    features: Iterable[Any],
) -> tuple[list[tuple[str | None, str | None, BaseGeometry]], dict[str, str]]:
    """The ``places`` of :func:`landform` for mapped features (anything with ``id``, ``name``,
    ``kind`` and a lon/lat ``geometry``: catalog features), named by their name else their kind,
    and each id's kind for :func:`landform_lines`."""
    chosen = list(features)
    places = [(f.id, f.name or str(f.kind).replace("_", " "), f.geometry) for f in chosen]
    return places, {f.id: str(f.kind) for f in chosen}


def landform_from_file(
    path: str | Path,
    lon: float,
    lat: float,
    *,
    radius_m: float = 1000.0,
    places: Sequence[tuple[str | None, str | None, BaseGeometry]] = (),
) -> Landform:
    """:func:`landform` of the DEM file at ``path``, reading only the part it needs (the 7 km
    circle of the relief, or ``radius_m`` when larger), so that a national DEM will do."""
    from .terrain import read_dem

    reach = max(radius_m, LER_RADIUS_M) * 1.05
    return landform(
        read_dem(path, around=(lon, lat, reach)), lon, lat, radius_m=radius_m, places=places
    )


def _cell(part: Dem, grid: NDArray[np.float64], x: float, y: float) -> float:
    """The value of ``grid`` (on ``part``) in the cell holding x/y, NaN outside."""
    r, c = (int(v) for v in np.floor(part.rowcol(np.array([x]), np.array([y])))[0])
    if not (0 <= r < grid.shape[0] and 0 <= c < grid.shape[1]):
        return math.nan
    return float(grid[r, c])


_KAPOS = {
    1: "at least 4,500 m",
    2: "3,500-4,500 m",
    3: "2,500-3,500 m",
    4: "1,500-2,500 m with a mean slope of at least 2°",
    5: "1,000-1,500 m with a mean slope of at least 5° or over 300 m of relief within 7 km",
    6: "300-1,000 m with over 300 m of relief within 7 km",
}


def _share(x: float) -> str:
    return "under 1%" if x < 0.005 else f"{100 * x:.0f}%"


def _place_text(p: PlaceForm) -> str:
    facing = (
        f"facing {compass(p.facing_deg)} ({p.facing_deg:.0f}°)"
        if p.facing_deg is not None
        else "flat"
    )
    return f"{p.elevation_m:,.0f} m, slope {p.slope_deg:.1f}°, {facing}"


def landform_lines(
    form: Landform, kinds: Mapping[str, str] | None = None, what: str = "site"
) -> tuple[list[str], list[str]]:
    """The landform in words, as ``terrain landform`` prints it and briefs show it: lines about
    the ``what`` ("site" or "point") and its surroundings, and one line per feature (``kinds``
    names each feature id's kind)."""
    r = f"{form.radius_m:,.0f} m"
    part = (
        ""
        if form.coverage >= 0.995
        else f" (the {_share(form.coverage)} of that circle the DEM covers)"
    )
    lines = [
        f"at the {what}: {_place_text(form.site)}; {form.site.below_top_m:,.0f} m below the "
        f"highest ground within {r}",
        f"within {r}{part}: {form.lowest_m:,.0f}-{form.highest_m:,.0f} m (relief "
        f"{form.relief_m:,.0f} m), mean slope {form.mean_slope_deg:.1f}°, "
        f"{100 * form.steep_share:.0f}% of the ground steeper than {STEEP_DEG:g}°",
    ]
    covered = (
        ""
        if form.ler_coverage >= 0.995
        else f"; the DEM covers {_share(form.ler_coverage)} of that circle"
    )
    ler = f"relief within 7 km {form.ler_m:,.0f} m{covered}"
    if not form.mountain_judged:
        lines.append(
            f"mountainous or not: cannot tell ({ler}): at {form.site.elevation_m:,.0f} m the "
            "definition of Kapos et al. (2000) turns on the relief within 7 km; give a DEM that "
            "covers 7 km around the site"
        )
    elif form.mountain_class is not None:
        lines.append(
            f"mountainous: Kapos et al. (2000) class {form.mountain_class}, "
            f"{_KAPOS[form.mountain_class]} ({ler})"
        )
    else:
        lines.append(f"not mountainous by Kapos et al. (2000) ({ler})")
    per_feature = []
    for p in form.places:
        kind = (kinds or {}).get(p.id or "", "").replace("_", " ")
        head = f"{p.name} ({kind})" if kind and kind != p.name else str(p.name or p.id)
        if not math.isfinite(p.elevation_m):
            per_feature.append(f"{head}: outside the DEM")
            continue
        per_feature.append(
            f"{head}: {_place_text(p)}, {p.below_top_m:,.0f} m below the highest ground within "
            f"{r} of the {what}"
        )
    return lines, per_feature
