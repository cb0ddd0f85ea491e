"""Geodesy helpers: UTM zones, geodesic measures, radius boxes, swapped-coordinate hints."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio.crs
from shapely.geometry import Point, Polygon, box

from sitewatch.errors import CoordinateError, GeometryError
from sitewatch.geo import (
    GEOD,
    check_lonlat,
    geodesic_area,
    geodesic_buffer,
    geodesic_distance,
    local_utm_crs,
    map_scale,
    radius_bboxes,
    split_bbox,
    to_crs,
    valid_geometry,
)


@pytest.mark.parametrize(
    ("lon", "lat", "epsg"),
    [
        (126.1, 38.58, 32652),
        (-0.1, 51.5, 32630),
        (5.0, 60.0, 32632),
        (-71.0, -33.0, 32719),
        (15.0, 78.0, 32633),
        (0.0, 85.0, 32661),
        (0.0, -85.0, 32761),
        (180.0, 0.0, 32601),
    ],
)
def test_local_utm(lon: float, lat: float, epsg: int) -> None:
    assert local_utm_crs(lon, lat).to_epsg() == epsg


def test_distance_area_against_known_values() -> None:
    # one degree of latitude at the equator on WGS84 is 110,574 m
    assert geodesic_distance(0, 0, 0, 1) == pytest.approx(110_574.4, abs=1.0)
    # a 1 km square drawn in UTM has 1,000,000 m2 of geodesic area (to the scale factor)
    utm = local_utm_crs(126.1, 38.58)
    centre = to_crs(Point(126.1, 38.58), "EPSG:4326", utm)
    sq = box(centre.x, centre.y, centre.x + 1000, centre.y + 1000)
    ll = to_crs(sq, utm, "EPSG:4326")
    assert geodesic_area(ll) == pytest.approx(1_000_000, rel=2e-3)
    assert geodesic_area(Polygon(list(ll.exterior.coords)[::-1])) == pytest.approx(
        geodesic_area(ll)
    )


def test_buffer_and_radius_boxes_contain_the_circle() -> None:
    for lon, lat, r in [
        (126.0, 38.0, 50_000.0),
        (179.9, 0.0, 30_000.0),
        (10.0, 89.9, 20_000.0),
        (-179.95, -60.0, 100_000.0),
    ]:
        boxes = radius_bboxes(lon, lat, r)
        lons, lats, _ = GEOD.fwd([lon] * 72, [lat] * 72, list(range(0, 360, 5)), [r] * 72)
        for x, y in zip(lons, lats, strict=True):
            assert any(w <= x <= e and s <= y <= n for w, s, e, n in boxes), (x, y, boxes)
    ring = geodesic_buffer(126.0, 38.0, 10_000.0)
    assert ring.is_valid
    assert geodesic_area(ring) == pytest.approx(3.14159 * 1e8, rel=0.01)
    assert split_bbox((170, 0, -170, 10)) == [(170, 0, 180.0, 10), (-180.0, 0, -170, 10)]
    with pytest.raises(GeometryError):
        radius_bboxes(0, 0, -1)


def test_lonlat_checks_and_geometry_repair() -> None:
    with pytest.raises(CoordinateError, match="swapped"):
        check_lonlat(45.0, 120.0)
    with pytest.raises(CoordinateError, match="finite"):
        check_lonlat(float("nan"), 0)
    bowtie = Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])
    with pytest.raises(GeometryError, match="--repair-geometry"):
        valid_geometry(bowtie)
    fixed = valid_geometry(bowtie, repair=True)
    assert fixed.is_valid and fixed.area == pytest.approx(0.5)


def test_parse_bbox_is_the_one_bbox_parser() -> None:
    from sitewatch.errors import CoordinateError
    from sitewatch.geo import parse_bbox

    assert parse_bbox("125,38,127.5,40") == (125.0, 38.0, 127.5, 40.0)
    assert parse_bbox("179,-10,-179,10") == (179.0, -10.0, -179.0, 10.0)  # antimeridian
    for bad, said in (
        ("1,2,3", "four comma-separated finite numbers"),
        ("nan,1,2,3", "four comma-separated finite numbers"),
        ("a,b,c,d", "four comma-separated finite numbers"),
        ("1,3,2,1", "south 3.0 must be below north 1.0"),
        ("1,95,2,96", "latitude 95.0 is outside -90..90"),
        ("200,1,201,2", "longitude 200.0 is outside -180..180"),
    ):
        with pytest.raises(CoordinateError, match=said):
            parse_bbox(bad, "--bbox")


def _merc(lon: float, lat: float) -> tuple[float, float]:
    from pyproj import Transformer

    x, y = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True).transform(lon, lat)
    return float(x), float(y)


def test_map_scale_flags_web_mercator_and_passes_utm() -> None:
    import math

    from pyproj import CRS

    m = map_scale("EPSG:3857", *_merc(125.75, 39.03))
    assert m.parallel == pytest.approx(1 / math.cos(math.radians(39.03)), rel=1e-3)
    assert m.distorted and m.area_factor == pytest.approx(m.parallel * m.meridional)
    utm = map_scale(local_utm_crs(125.75, 39.03), 350_000.0, 4_320_000.0)
    assert 0.999 < utm.parallel < 1.001 and not utm.distorted and utm.area_factor == 1.0
    assert map_scale("EPSG:4326", 125.75, 39.03) == (1.0, 1.0, 1.0, 1.0)
    feet = map_scale("EPSG:2263", 980_000.0, 200_000.0)  # New York State Plane, US survey feet
    assert feet.parallel == pytest.approx(3.2808, rel=1e-3) and feet.distorted
    assert not feet.off_true_scale and feet.area_factor == pytest.approx(10.764, rel=1e-3)
    sinusoidal = CRS.from_proj4("+proj=sinu +R=6371007.181 +units=m")  # MODIS: equal-area
    s = map_scale(sinusoidal, *_sinu(sinusoidal, 125.75, 60.0))
    assert s.distorted and s.area_factor == 1.0  # lengths off, areas true


def _sinu(crs: object, lon: float, lat: float) -> tuple[float, float]:
    from pyproj import Transformer

    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)
    return float(x), float(y)


def test_pixel_areas_on_web_mercator_are_ground_areas() -> None:
    """A 10 x 10 m (grid) Web Mercator pixel at 39 N covers ~36 m2 of ground, not 100."""
    from affine import Affine

    from sitewatch.analysis._changeio import Raster, pixel_area_m2
    from sitewatch.geo import pixel_area_m2 as geo_pixel_area
    from sitewatch.search.tiles import TileGrid

    x, y = _merc(125.75, 39.03)
    t = Affine(10.0, 0, x, 0, -10.0, y)
    ll = to_crs(box(x, y - 10.0, x + 10.0, y), "EPSG:3857", "EPSG:4326")
    truth = geodesic_area(ll)
    assert truth == pytest.approx(100 / 1.657, rel=0.01)
    r = Raster(np.zeros((1, 20, 20), np.float32), ("b",), rasterio.crs.CRS.from_epsg(3857), t)
    per_row = pixel_area_m2(r)
    assert isinstance(per_row, np.ndarray) and per_row.shape == (20,)
    assert per_row[0] == pytest.approx(truth, rel=0.01)
    # a Web Mercator export 300 km (grid) tall: the pixels' ground area grows by ~6% from top
    # to bottom, each row's (interpolated between sampled rows) within 0.01% of its own
    tall = Raster(
        np.zeros((1, 3000, 4), np.float32), ("b",), rasterio.crs.CRS.from_epsg(3857),
        Affine(10.0, 0, x, 0, -100.0, y),
    )  # fmt: skip
    areas = pixel_area_m2(tall)
    assert isinstance(areas, np.ndarray) and np.all(np.diff(areas) > 0)  # larger southwards
    assert 1.05 < areas[-1] / areas[0] < 1.07
    for row in (0, 1234, 2999):
        want = geo_pixel_area(rasterio.crs.CRS.from_epsg(3857), tall.transform, 2.0, row)
        assert areas[row] == pytest.approx(want, rel=1e-4)
    utm_r = Raster(
        np.zeros((1, 20, 20), np.float32), ("b",), rasterio.crs.CRS.from_epsg(32652),
        Affine(10.0, 0, 350_000, 0, -10.0, 4_320_000),
    )  # fmt: skip
    assert pixel_area_m2(utm_r) == 100.0  # one value on a true-scale grid
    grid = TileGrid(
        width=20, height=20, transform=t, crs=rasterio.crs.CRS.from_epsg(3857), tile=4, stride=2
    )
    assert grid.pixel_area_m2() == pytest.approx(truth, rel=0.01)
    utm = TileGrid(
        20,
        20,
        Affine(10.0, 0, 350_000, 0, -10.0, 4_320_000),
        rasterio.crs.CRS.from_epsg(32652),
        4,
        2,
    )
    assert utm.pixel_area_m2() == 100.0  # true-scale grids are used as they are
    ft = Affine(10.0, 0, 980_000.0, 0, -10.0, 200_000.0)  # 10 x 10 US survey feet
    feet = TileGrid(20, 20, ft, rasterio.crs.CRS.from_epsg(2263), 4, 2)
    assert feet.pixel_area_m2() == pytest.approx(100 * (1200 / 3937) ** 2, rel=1e-3)
