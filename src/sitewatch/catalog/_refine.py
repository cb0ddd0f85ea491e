"""Exact geodesic refinement of index candidates for radius queries."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry

from ..geo import GEOD, aeqd_crs, to_crs

__all__ = ["within_radius"]


def within_radius(
    geoms: Sequence[BaseGeometry], lon: float, lat: float, radius_m: float
) -> list[bool]:
    """For each lon/lat geometry, whether its nearest point lies within ``radius_m`` (geodesic).

    Points are tested with the exact inverse geodesic; other geometries are projected to an
    azimuthal equidistant frame centred on the query point, where distances from the centre are
    geodesic, and densified so that the nearest boundary point is found to within a metre or so.
    """
    out = [False] * len(geoms)
    pts = [i for i, g in enumerate(geoms) if g.geom_type == "Point"]
    if pts:
        lons = np.array([geoms[i].x for i in pts])
        lats = np.array([geoms[i].y for i in pts])
        _, _, dist = GEOD.inv(np.full_like(lons, lon), np.full_like(lats, lat), lons, lats)
        for i, d in zip(pts, np.atleast_1d(dist), strict=True):
            out[i] = bool(d <= radius_m)
    others = [i for i, g in enumerate(geoms) if g.geom_type != "Point"]
    if others:
        crs = aeqd_crs(lon, lat)
        centre = Point(0.0, 0.0)
        for i in others:
            g = geoms[i]
            if g.contains(Point(lon, lat)):
                out[i] = True
                continue
            local = to_crs(g.segmentize(0.001), "EPSG:4326", crs)
            out[i] = bool(local.distance(centre) <= radius_m)
    return out
