"""The chip grid of a site: its AOI (or a square around its point) and a ring of surroundings, in
the site's local UTM zone.

``imagery fetch`` and ``monitor run`` cut this one grid, so that the chips one stores the other
reuses (they cut 1 km and 2.12 km squares before, and every monitor run after a fetch cut every
scene again). The ring is what activity judges a site's change against: it shares the site's
seasonal light and phenology. Its pixel size, when none is given, is chosen here too
(:func:`choose_grid`): the archive stores chips, it does not decide their grid.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

from shapely.geometry import Point, box
from shapely.geometry.base import BaseGeometry

from ..geo import local_utm_crs, to_crs
from .archive import Archive
from .chips import ChipGrid
from .scene import Scene

__all__ = [
    "DEFAULT_RESOLUTION",
    "DEFAULT_RING_M",
    "DEFAULT_SIZE_M",
    "MAX_SIDE_PX",
    "SURROUNDINGS_PX",
    "choose_grid",
    "finest_gsd",
    "native_resolution",
    "resolution_note",
    "ring_width",
    "site_aoi",
    "site_grid",
]

log = logging.getLogger(__name__)

DEFAULT_SIZE_M = 2000.0
"""Side (m) of the square taken as the AOI of a site that has none."""
DEFAULT_RING_M = 60.0
"""Surroundings (m) cut around the AOI, at least."""
MAX_SIDE_PX = 2048
"""Widest chip (pixels a side) cut at the scenes' own pixel size when none is given: a 2 km site
at 0.5 m would be 4,240 pixels a side, and a monitor's series of them several GB."""
SURROUNDINGS_PX = 1000
"""Fewest pixels the ring should hold: twice the 500 that activity needs of a kind of ground to
model its change (``ActivityConfig.min_background_px``)."""


DEFAULT_RESOLUTION = 10.0
"""Chip pixel size (m) when neither the user, the site's archive nor the scenes give one."""


def native_resolution(gsd: float) -> float:
    """A scene's pixel size to two significant digits, as a chip grid's: 89.03 m → 89 m."""
    return float(f"{gsd:.2g}")


def finest_gsd(scenes: Sequence[Scene | tuple[Any, Scene]]) -> float | None:
    """The finest pixel size (m) of scenes (or of ``(source, scene)`` pairs), None if none says."""
    gsds = [
        sc.gsd
        for item in scenes
        if (sc := item[1] if isinstance(item, tuple) else item).gsd is not None and sc.gsd > 0
    ]
    return min(gsds) if gsds else None


def resolution_note(resolution: float, scenes: Sequence[Scene | tuple[Any, Scene]]) -> str | None:
    """A warning when chips at ``resolution`` m would be much finer than every scene (the pixels
    multiply and no detail comes with them), else None."""
    finest = finest_gsd(scenes)
    if finest is None or resolution * 2 > finest:
        return None
    return (
        f"chips at {resolution:g} m from scenes of {finest:.2g} m and coarser hold "
        f"{(finest / resolution) ** 2:.0f}x their pixels and no more detail; leave --resolution "
        "out to cut at the scenes' own pixel size"
    )


def site_aoi(lon: float, lat: float, aoi: BaseGeometry | None, size_m: float) -> BaseGeometry:
    """The lon/lat AOI: the site's own, or a north-up square of ``size_m`` around its point in
    the local UTM zone (the chip grid's own square: a geodesic "square" of four points was a
    diamond whose corners the grid cut off)."""
    if aoi is not None:
        return aoi
    crs = local_utm_crs(lon, lat)
    centre = to_crs(Point(lon, lat), "EPSG:4326", crs)
    h = size_m / 2.0
    square = box(centre.x - h, centre.y - h, centre.x + h, centre.y + h)
    return to_crs(square, crs, "EPSG:4326")


def ring_width(perimeter_m: float, ring_m: float, resolution: float, label: str = "") -> float:
    """The ring (m) around an AOI of that perimeter: ``ring_m``, widened to whole pixels where it
    would hold fewer than :data:`SURROUNDINGS_PX` (60 m around a 2 km site is 60 pixels of 89 m)."""
    want = SURROUNDINGS_PX * resolution**2  # m² of surroundings
    # a buffer of r adds about perimeter * r + pi * r² to an area
    need = (-perimeter_m + math.sqrt(perimeter_m**2 + 4.0 * math.pi * want)) / (2.0 * math.pi)
    if need <= ring_m:
        return ring_m
    ring = math.ceil(need / resolution) * resolution
    log.info(
        "%ssurroundings widened from %g m to %g m, so that they hold %d pixels of %g m",
        f"{label}: " if label else "", ring_m, ring, SURROUNDINGS_PX, resolution,
    )  # fmt: skip
    return float(ring)


def site_grid(
    lon: float,
    lat: float,
    aoi: BaseGeometry | None,
    resolution: float,
    *,
    size_m: float = DEFAULT_SIZE_M,
    ring_m: float = DEFAULT_RING_M,
    label: str = "",
) -> ChipGrid:
    """The grid of a site: its AOI (a square of ``size_m`` around its point without one) plus
    its ring (:func:`ring_width`), in the local UTM zone."""
    if aoi is None:
        ring = ring_width(4.0 * size_m, ring_m, resolution, label)
        return ChipGrid.around(lon, lat, size_m + 2.0 * ring, resolution)
    c = aoi.centroid
    crs = local_utm_crs(((c.x + 180.0) % 360.0) - 180.0, c.y)
    local: Any = to_crs(aoi, "EPSG:4326", crs)
    grown = local.buffer(ring_width(float(local.length), ring_m, resolution, label))
    return ChipGrid.for_bounds(grown.bounds, crs, resolution)


def choose_grid(
    archive: Archive,
    site_id: str,
    scenes: Sequence[Any],
    make_grid: Callable[[float], ChipGrid],
    resolution: float | None = None,
    label: str = "",
) -> ChipGrid:
    """The grid to cut a site's scenes on: ``make_grid`` at ``resolution`` when given (with a
    warning when that is much finer than every scene), else at the pixel size of most of the
    site's archived chips (a series stays on one grid), else at the scenes' own (the finest, to
    two significant digits: cutting a 30 m scene at 10 m stores 9x the pixels and no more
    detail; 10 m when no scene says), coarsened where a chip would be wider than
    :data:`MAX_SIDE_PX` (with a warning naming the full-detail ``--resolution``)."""
    prefix = f"{label}: " if label else ""
    if resolution is not None:
        if note := resolution_note(resolution, scenes):
            log.warning("%s%s", prefix, note)
        return make_grid(resolution)
    archived = archive.archived_resolution(site_id)
    if archived is not None:
        log.info("%schips at %g m, as %d archived chip(s) of the site", prefix, *archived)
        return make_grid(archived[0])
    finest = finest_gsd(scenes)
    resolution = DEFAULT_RESOLUTION if finest is None else native_resolution(finest)
    log.info("%schips at %g m, the scenes' own pixel size", prefix, resolution)
    grid = make_grid(resolution)
    side = max(grid.width, grid.height)
    if side <= MAX_SIDE_PX:
        return grid
    coarser = _nice_up(resolution * side / MAX_SIDE_PX)
    log.warning(
        "%schips at %g m, not the scenes' %g m, so that a chip stays within %d pixels a side "
        "(it would be %d); give --resolution %g for the full detail",
        prefix, coarser, resolution, MAX_SIDE_PX, side, resolution,
    )  # fmt: skip
    return make_grid(coarser)


_NICE = (1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)


def _nice_up(x: float) -> float:
    """The smallest of 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 times a power of ten at least ``x``
    (1.035 → 1.2, 0.79 → 0.8): a pixel size a reader takes in, that keeps the chip in bounds."""
    scale = 10.0 ** math.floor(math.log10(x))
    return round(next(n for n in _NICE if n * scale >= x * (1 - 1e-9)) * scale, 12)
