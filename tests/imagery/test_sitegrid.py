"""The chip grid of a site: AOI (or a square around its point) plus a ring of surroundings."""

from __future__ import annotations

import pytest
from shapely.geometry import box

from sitewatch.geo import local_utm_crs, to_crs
from sitewatch.imagery.sitegrid import SURROUNDINGS_PX, ring_width, site_aoi, site_grid

LON, LAT = 126.108, 38.585


def test_the_square_of_a_site_without_aoi_is_north_up_and_inside_its_grid() -> None:
    # four geodesic points made a diamond: its corners stuck 414 m out of the 2.12 km grid,
    # and the "ring" was the grid's four corner triangles
    square = site_aoi(LON, LAT, None, 2000.0)
    local = to_crs(square, "EPSG:4326", local_utm_crs(LON, LAT))
    w, s, e, n = local.bounds
    assert (e - w, n - s) == (pytest.approx(2000.0, abs=0.01), pytest.approx(2000.0, abs=0.01))
    assert local.area == pytest.approx(4e6, rel=1e-6)  # a square fills its bounds
    grid = site_grid(LON, LAT, None, 10.0)
    gw, gs, ge, gn = grid.bounds
    assert gw < w and gs < s and ge > e and gn > n
    assert 2 * 55 <= (ge - gw) - (e - w) <= 2 * 70  # the 60 m ring, to whole pixels


def test_the_ring_holds_enough_pixels_at_any_resolution() -> None:
    assert ring_width(8000.0, 60.0, 10.0) == 60.0  # 4,800 pixels of 10 m already
    for res, perimeter in ((30.0, 2000.0), (89.0, 8000.0), (10.0, 800.0)):
        ring = ring_width(perimeter, 60.0, res)
        assert ring > 60.0 and ring % res == pytest.approx(0.0, abs=1e-9)
        # a square AOI of that perimeter grown by the ring
        side = perimeter / 4.0
        aoi = box(0, 0, side, side)
        pixels = (aoi.buffer(ring).area - aoi.area) / res**2
        assert SURROUNDINGS_PX <= pixels <= 1.5 * SURROUNDINGS_PX
    # a site's own AOI keeps its shape; the grid covers it and the ring
    aoi = box(LON - 0.002, LAT - 0.001, LON + 0.002, LAT + 0.001)
    assert site_aoi(LON, LAT, aoi, 2000.0) is aoi
    grid = site_grid(LON, LAT, aoi, 10.0)
    local = to_crs(aoi, "EPSG:4326", grid.crs)
    gw, gs, ge, gn = grid.bounds
    w, s, e, n = local.bounds
    assert gw <= w - 60 and gs <= s - 60 and ge >= e + 60 and gn >= n + 60
