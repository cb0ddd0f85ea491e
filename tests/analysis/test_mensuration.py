"""Heights from shadows, distances, areas, volumes and tunnel lengths.

The shadow tests render small synthetic scenes: flat-roofed boxes on textured ground, shadows as
the footprint swept along the shadow azimuth by ``h / (tan(e) + tan(slope))``, rendered at 4x and
averaged (anti-aliasing), blurred by a Gaussian PSF and given sensor noise.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from affine import Affine
from pyproj import CRS, Proj
from rasterio.features import rasterize
from scipy import ndimage
from shapely import affinity
from shapely.geometry import Polygon, box

from sitewatch.analysis._shadow import shadow_threshold, shorth_location
from sitewatch.analysis.mensuration import (
    ViewGeometry,
    berm_volume,
    geodesic_path_length,
    geodesic_polygon_area,
    grid_azimuth,
    height_from_length,
    height_from_ridge_shadow,
    height_from_shadow_tip,
    heights_from_shadows,
    section_volume,
    trapezoid_section_area,
    tunnel_cross_section,
    tunnel_length,
    volume_from_dems,
)
from sitewatch.errors import GeometryError, InputError
from sitewatch.geo import GEOD, map_scale, to_crs

X0, Y0, GSD, SIZE = 500_000.0, 4_000_000.0, 0.5, 400


def rect(cx: float, cy: float, length: float, width: float, az: float) -> Polygon:
    p = box(-width / 2, -length / 2, width / 2, length / 2)
    return affinity.translate(affinity.rotate(p, -az, origin=(0, 0)), X0 + cx, Y0 + cy)


def render(
    objs: list[tuple[Polygon, float]],
    sun_az: float,
    sun_el: float,
    *,
    slope_deg: float = 0.0,
    view: tuple[float, float] | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, Affine, list[Polygon]]:
    rng = np.random.default_rng(seed)
    ss = 4
    transform = Affine(GSD, 0, X0, 0, -GSD, Y0 + SIZE * GSD)
    fine_t = transform @ Affine.scale(1 / ss)
    shape = (SIZE * ss, SIZE * ss)
    a = math.radians(sun_az + 180)
    d = (math.sin(a), math.cos(a))
    k = math.tan(math.radians(sun_el)) + math.tan(math.radians(slope_deg))
    shadows, roofs, walls = [], [], []
    for poly, h in objs:
        L = h / k
        shadows.append(poly.union(affinity.translate(poly, d[0] * L, d[1] * L)).convex_hull)
        roof = poly
        if view is not None:
            disp = h * math.tan(math.radians(view[0]))
            roof = affinity.translate(
                poly,
                disp * math.sin(math.radians(view[1])),
                disp * math.cos(math.radians(view[1])),
            )
            walls.append(poly.union(roof).convex_hull)
        roofs.append(roof)
    img = 0.30 + 0.3 * ndimage.gaussian_filter(rng.standard_normal(shape), 24)
    if shadows:
        m = rasterize([(s, 1) for s in shadows], out_shape=shape, transform=fine_t).astype(bool)
        img[m] = 0.07 + (img[m] - 0.30) * 0.2
    if walls:
        m = rasterize([(s, 1) for s in walls], out_shape=shape, transform=fine_t).astype(bool)
        img[m] = 0.20
    for r in roofs:
        m = rasterize([(r, 1)], out_shape=shape, transform=fine_t).astype(bool)
        img[m] = 0.55
    img = img.reshape(SIZE, ss, SIZE, ss).mean(axis=(1, 3))
    img = ndimage.gaussian_filter(img, 0.6) + 0.01 * rng.standard_normal((SIZE, SIZE))
    return img, transform, roofs


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_heights_of_random_boxes_within_half_a_metre(seed: int) -> None:
    rng = np.random.default_rng(seed)
    el, az = rng.uniform(30, 60), rng.uniform(0, 360)
    objs = []
    for i in range(6):
        cx = 40 + (i % 3) * 60 + rng.uniform(-5, 5)
        cy = 50 + (i // 3) * 90 + rng.uniform(-5, 5)
        poly = rect(cx, cy, rng.uniform(10, 25), rng.uniform(8, 15), rng.uniform(0, 180))
        objs.append((poly, float(rng.uniform(3, 20))))
    img, t, roofs = render(objs, az, el, seed=seed)
    res = heights_from_shadows(img, t, roofs, sun=(az, el), ids=[f"b{i}" for i in range(6)])
    assert [r.index for r in res] == list(range(6))
    assert [r.id for r in res] == [f"b{i}" for i in range(6)]
    errors = []
    for (_, h), r in zip(objs, res, strict=True):
        assert r.height_m is not None, r.detail
        assert r.uncertainty_m is not None and 0.05 < r.uncertainty_m < 1.0
        assert r.shadow_length_m == pytest.approx(r.height_m / math.tan(math.radians(el)), rel=1e-6)
        errors.append(abs(r.height_m - h))
    assert float(np.median(errors)) <= 0.25
    assert max(errors) <= 0.6


def test_uncertainty_grows_with_elevation_error() -> None:
    h1, s1 = height_from_length(10.0, 40.0, length_sigma_m=0.2, elevation_sigma_deg=0.1)
    h2, s2 = height_from_length(10.0, 40.0, length_sigma_m=0.2, elevation_sigma_deg=2.0)
    assert h1 == pytest.approx(10.0 * math.tan(math.radians(40.0)))
    assert h1 == h2 and s2 > s1 > 0.2 * math.tan(math.radians(40.0))


def test_terrain_slope_correction_with_dem() -> None:
    az, el, slope = 200.0, 40.0, 10.0
    objs = [(rect(60, 120, 15, 10, 20), 12.0), (rect(140, 120, 15, 10, 70), 8.0)]
    img, t, roofs = render(objs, az, el, slope_deg=slope)
    a = math.radians(az + 180)
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    x, y = t @ (cols + 0.5, rows + 0.5)
    dem = math.tan(math.radians(slope)) * (x * math.sin(a) + y * math.cos(a))
    dem -= dem.mean()
    flat = heights_from_shadows(img, t, roofs, sun=(az, el))
    corrected = heights_from_shadows(img, t, roofs, sun=(az, el), dem=dem)
    for (_, h), f, c in zip(objs, flat, corrected, strict=True):
        assert f.height_m is not None and c.height_m is not None
        assert f.height_m < h - 1.0  # the shadow on the rising slope is shorter
        assert abs(c.height_m - h) < 0.4
        assert c.method == "shadow+dem" and c.inputs["terrain_dz_m"] > 0


@pytest.mark.parametrize("view", [(20.0, 90.0), (25.0, 300.0)])
def test_off_nadir_correction(view: tuple[float, float]) -> None:
    az, el = 200.0, 40.0
    objs = [(rect(60, 120, 15, 10, 20), 12.0), (rect(140, 120, 15, 10, 70), 8.0)]
    img, t, roofs = render(objs, az, el, view=view)
    plain = heights_from_shadows(img, t, roofs, sun=(az, el))
    fixed = heights_from_shadows(img, t, roofs, sun=(az, el), view=ViewGeometry(*view))
    for (_, h), p, f in zip(objs, plain, fixed, strict=True):
        assert f.height_m is not None and abs(f.height_m - h) < 0.4
        assert p.height_m is None or abs(p.height_m - h) > abs(f.height_m - h)


def test_null_results_with_reasons() -> None:
    objs = [(rect(100, 100, 15, 10, 0), 15.0), (rect(100, 118, 8, 20, 0), 4.0)]
    img, t, roofs = render(objs, 180.0, 30.0)
    res = heights_from_shadows(img, t, roofs, sun=(180.0, 30.0))
    assert res[0].height_m is None and res[0].reason == "shadow_on_other_footprint"
    assert res[1].height_m is None and res[1].reason == "shadow_on_other_footprint"
    # near the top (north) edge, the northward shadow leaves the image
    img, t, roofs = render([(rect(100, 190, 10, 10, 0), 15.0)], 180.0, 30.0)
    out = heights_from_shadows(img, t, roofs, sun=(180.0, 30.0))[0]
    assert out.reason == "shadow_leaves_image" and out.height_m is None
    # footprint outside the image, sun below the horizon, no object at all
    far = rect(-1000, 100, 10, 10, 0)
    assert heights_from_shadows(img, t, [far], sun=(180, 30))[0].reason == "footprint_outside_image"
    assert heights_from_shadows(img, t, roofs, sun=(180, -3))[0].reason == "sun_below_horizon"
    empty = heights_from_shadows(img, t, [rect(50, 50, 10, 10, 0)], sun=(180.0, 30.0))[0]
    assert empty.height_m is None and empty.reason == "no_shadow_found"
    d = empty.to_dict()
    assert d["height_m"] is None and d["reason"] == "no_shadow_found" and d["detail"]


def test_nodata_under_footprint_is_outside_image() -> None:
    img, t, roofs = render([(rect(100, 100, 10, 10, 0), 10.0)], 180.0, 40.0)
    img[150:250, 150:250] = np.nan
    assert heights_from_shadows(img, t, roofs, sun=(180, 40))[0].reason == "footprint_outside_image"


def test_berm_with_crest_caster() -> None:
    # a berm seen from above: the crest casts the shadow, the toe is the footprint edge
    h, base_w, crest = 6.0, 16.0, 2.0
    az, el = 180.0, 35.0
    base = rect(100, 100, 40, base_w, 90)  # long axis east-west
    crest_poly = rect(100, 100, 40 - (base_w - crest), crest, 90)
    run = (base_w - crest) / 2
    L = h / math.tan(math.radians(el))
    assert run < L
    rng = np.random.default_rng(0)
    transform = Affine(GSD, 0, X0, 0, -GSD, Y0 + SIZE * GSD)
    img = 0.3 + 0.02 * rng.standard_normal((SIZE, SIZE))
    sh = crest_poly.union(affinity.translate(crest_poly, 0, L)).convex_hull.difference(base)
    img[rasterize([(sh, 1)], out_shape=img.shape, transform=transform).astype(bool)] = 0.07
    img[rasterize([(base, 1)], out_shape=img.shape, transform=transform).astype(bool)] = 0.45
    img = ndimage.gaussian_filter(img, 0.6)
    plain = heights_from_shadows(img, transform, [base], sun=(az, el))[0]
    berm = heights_from_shadows(img, transform, [base], sun=(az, el), casters=[crest_poly])[0]
    assert berm.height_m == pytest.approx(h, abs=0.4)
    assert plain.height_m is not None and plain.height_m < h - 2.0


def test_shadow_tip_by_hand() -> None:
    lon, lat, el, az = 126.5, 39.0, 35.0, 150.0
    tip_lon, tip_lat, _ = GEOD.fwd(lon, lat, az + 180.0, 20.0)
    r = height_from_shadow_tip((lon, lat), (tip_lon, tip_lat), sun_azimuth=az, sun_elevation=el)
    assert r.height_m == pytest.approx(20.0 * math.tan(math.radians(el)), rel=1e-6)
    assert r.uncertainty_m is not None and r.uncertainty_m > 0
    with pytest.raises(InputError, match="shadow side"):
        height_from_shadow_tip((tip_lon, tip_lat), (lon, lat), sun_azimuth=az, sun_elevation=el)
    below = height_from_shadow_tip((lon, lat), (tip_lon, tip_lat), sun_azimuth=az, sun_elevation=-1)
    assert below.height_m is None and below.reason == "sun_below_horizon"


def test_grid_azimuth_matches_meridian_convergence() -> None:
    crs = CRS.from_epsg(32652)  # UTM 52N, central meridian 129E
    p = Proj(crs)
    lon, lat = 126.1, 40.0
    x, y = p(lon, lat)
    conv = p.get_factors(lon, lat).meridian_convergence
    got = grid_azimuth(crs, x, y, 100.0)
    # grid azimuth = true azimuth - convergence, convergence ~ (lon - lon0) sin(lat)
    assert conv == pytest.approx((lon - 129.0) * math.sin(math.radians(lat)), abs=0.02)
    assert got == pytest.approx(100.0 - conv, abs=0.01)
    assert grid_azimuth(None, 0, 0, 370.0) == pytest.approx(10.0)


def test_path_length_and_area() -> None:
    pts = [(126.0, 39.0), (126.1, 39.0), (126.1, 39.1)]
    q = geodesic_path_length(pts, position_sigma_m=1.0)
    _, _, d1 = GEOD.inv(126.0, 39.0, 126.1, 39.0)
    _, _, d2 = GEOD.inv(126.1, 39.0, 126.1, 39.1)
    assert q.value == pytest.approx(d1 + d2) and q.unit == "m" and q.uncertainty > 1.0
    with pytest.raises(InputError):
        geodesic_path_length([(126.0, 39.0)])
    # a ~1 km square: area and the shoelace uncertainty sigma * side * sqrt(2)
    lon0, lat0 = 126.0, 39.0
    corners = [(lon0, lat0)]
    for az in (90.0, 0.0, 270.0):
        lo, la, _ = GEOD.fwd(*corners[-1], az, 1000.0)
        corners.append((float(lo), float(la)))
    sq = Polygon(corners)
    a = geodesic_polygon_area(sq, position_sigma_m=2.0)
    assert a.value == pytest.approx(1e6, rel=2e-3)
    assert a.uncertainty == pytest.approx(2.0 * 1000.0 * math.sqrt(2.0), rel=0.01)
    bowtie = Polygon([corners[0], corners[2], corners[1], corners[3]])  # edges cross: lobes cancel
    with pytest.raises(GeometryError, match=r"Self-intersection.*area is ambiguous"):
        geodesic_polygon_area(bowtie)


def test_berm_volume_matches_numerical_integration() -> None:
    length, width, crest, h = 60.0, 14.0, 3.0, 5.0
    run = (width - crest) / 2
    fp = box(0, 0, length, width)
    q = berm_volume(fp, h, crest_width_m=crest, crs="EPSG:32652", height_sigma_m=0.5)
    # numerical: height = min(h, h * distance-to-edge / run) on a fine grid
    step = 0.05
    xs = np.arange(step / 2, length, step)
    ys = np.arange(step / 2, width, step)
    xx, yy = np.meshgrid(xs, ys)
    dist = np.minimum.reduce([xx, length - xx, yy, width - yy])
    z = np.minimum(h, h * dist / run)
    assert q.value == pytest.approx(float(z.sum()) * step * step, rel=5e-3)
    assert q.uncertainty == pytest.approx(q.value * 0.1, rel=0.01)
    assert trapezoid_section_area(width, crest, h) == pytest.approx((width + crest) / 2 * h)
    areas = [trapezoid_section_area(width, crest, h)] * 5
    assert section_volume([0, 15, 30, 45, 60], areas) == pytest.approx(60 * areas[0])
    with pytest.raises(InputError):
        berm_volume(fp, h, crest_width_m=20.0, crs="EPSG:32652")


def test_a_berm_in_parts_is_the_sum_of_its_parts() -> None:
    """Two 60 x 14 m pieces 40 m apart (a berm cut by a road): twice one piece, not a prismoid
    on one rectangle around both; the height's error adds up, the outlines' in quadrature."""
    from shapely.geometry import LineString, MultiPolygon

    one, other = box(0, 0, 60, 14), box(100, 0, 160, 14)
    single = berm_volume(one, 5.0, crest_width_m=3.0, crs="EPSG:32652", height_sigma_m=0.5,
                         position_sigma_m=1.0)  # fmt: skip
    both = berm_volume(MultiPolygon([one, other]), 5.0, crest_width_m=3.0, crs="EPSG:32652",
                       height_sigma_m=0.5, position_sigma_m=1.0)  # fmt: skip
    assert both.value == pytest.approx(2 * single.value)
    h_part = single.value * 0.1  # the height's 10 % error of one part
    outline = math.sqrt(single.uncertainty**2 - h_part**2)
    assert both.uncertainty == pytest.approx(math.hypot(2 * h_part, math.sqrt(2) * outline))
    assert both.inputs["parts"] == [{"length_m": 60.0, "base_width_m": 14.0}] * 2
    # a crest wider than one part names the part
    narrow = MultiPolygon([one, box(100, 0, 160, 2)])
    with pytest.raises(
        InputError, match=r"part 2 of 2 of the footprint: crest width 3\.0 m exceeds"
    ):
        berm_volume(narrow, 5.0, crest_width_m=3.0, crs="EPSG:32652")
    with pytest.raises(InputError, match="must be a polygon, not a linestring"):
        berm_volume(LineString(one.exterior.coords), 5.0, crs="EPSG:32652")


def test_volume_from_two_dems() -> None:
    t = Affine(2.0, 0, 0, 0, -2.0, 200.0)
    before = np.full((100, 100), 50.0)
    after = before.copy()
    after[20:40, 20:60] += 3.0  # a 40 x 80 m heap 3 m high = 9600 m3
    after[70:80, 70:80] -= 2.0  # a pit outside the footprint
    fp = box(0, 100, 160, 200)  # rows 0..50
    dv = volume_from_dems(before, after, t, fp, crs="EPSG:32652", sigma_before_m=1, sigma_after_m=1)
    assert dv.fill_m3 == pytest.approx(9600.0)
    assert dv.cut_m3 == 0 and dv.net_m3 == pytest.approx(9600.0)
    assert dv.area_m2 == pytest.approx(160 * 100)
    assert dv.uncertainty_m3 == pytest.approx(math.sqrt(2) * 16000)
    corr = volume_from_dems(before, after, t, fp, crs="EPSG:32652", correlation_length_m=10.0)
    assert corr.uncertainty_m3 < dv.uncertainty_m3
    whole = volume_from_dems(before, after, t, box(0, 0, 200, 200), crs="EPSG:32652")
    assert whole.cut_m3 == pytest.approx(800.0) and whole.net_m3 == pytest.approx(8800.0)
    with pytest.raises(InputError):
        volume_from_dems(before, after[:50], t, fp, crs="EPSG:32652")


def test_volumes_on_a_web_mercator_grid_are_ground_volumes() -> None:
    """EPSG:3857 lengths are 1.29x ground lengths at 39 N: footprint sizes and cell areas are
    taken on the ground, as for the same berm and heap on a UTM grid."""
    utm = box(350_000, 4_320_000, 350_060, 4_320_014)
    merc = to_crs(utm, "EPSG:32652", "EPSG:3857")
    q_utm = berm_volume(utm, 5.0, crest_width_m=3.0, crs="EPSG:32652")
    q_merc = berm_volume(merc, 5.0, crest_width_m=3.0, crs="EPSG:3857")
    assert q_merc.value == pytest.approx(q_utm.value, rel=0.01)
    x, y = merc.bounds[0], merc.bounds[3]
    t = Affine(2.0, 0, x, 0, -2.0, y)
    before = np.full((50, 50), 50.0)
    after = before.copy()
    after[10:30, 10:30] += 3.0  # 400 cells of 4 grid-m2, 3 m high
    dv = volume_from_dems(before, after, t, box(x, y - 100, x + 100, y), crs="EPSG:3857")
    areal = map_scale("EPSG:3857", x + 50, y - 50).areal
    assert areal == pytest.approx(1.657, abs=0.01)
    assert dv.fill_m3 == pytest.approx(400 * 4.0 * 3.0 / areal, rel=1e-6)


def test_tunnel_length_from_spoil() -> None:
    section = tunnel_cross_section(6.0, 6.0, "horseshoe")
    assert section == pytest.approx(6 * 3 + math.pi * 36 / 8)
    assert tunnel_cross_section(4, 5, "rectangle") == 20
    q = tunnel_length(16_000.0, section, bulking_factor=1.6, spoil_sigma_m3=1600.0)
    assert q.value == pytest.approx(16_000.0 / 1.6 / section)
    assert q.inputs["bulking_factor"] == 1.6
    assert q.uncertainty == pytest.approx(q.value * math.hypot(0.1, 0.1 / 1.6), rel=1e-6)
    assert tunnel_length(16_000.0, section, bulking_factor=1.3).value > q.value
    with pytest.raises(InputError, match="bulking"):
        tunnel_length(100.0, 10.0, bulking_factor=0.8)


# --- ridges (berms): the crest casts the shadow, the lee slope is in its own shadow ----------


def render_berm(
    h: float,
    sun_el: float,
    *,
    base_w: float = 16.0,
    length: float = 40.0,
    crest: float = 2.0,
    dark_north: float | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, Affine, Polygon]:
    """An east-west berm (hip ends) lit from the south: cast and self shadows ray-marched on a
    4x finer grid, Lambertian shading plus skylight, blur and noise. ``dark_north`` darkens the
    ground beyond that northing offset (dark vegetation)."""
    rng = np.random.default_rng(seed)
    ss, n = 4, SIZE * 4
    f = GSD / ss
    xs = (np.arange(n) + 0.5) * f - 100.0  # offsets from the berm centre (100, 100)
    ys = 100.0 - (np.arange(n) + 0.5) * f
    X, Y = np.meshgrid(xs, ys)
    run = (base_w - crest) / 2.0
    dist = np.minimum(length / 2 - np.abs(X), base_w / 2 - np.abs(Y))
    z = h * np.clip(dist / run, 0.0, 1.0)
    # sun from the south: along each column the sun ray rises towards the south (larger rows)
    tan_e = math.tan(math.radians(sun_el))
    s = -Y  # distance towards the sun
    g = z - s * tan_e
    ahead = np.maximum.accumulate(g[::-1], axis=0)[::-1]
    ahead = np.vstack([ahead[1:], np.full((1, n), -np.inf)])
    shadow = ahead > g + 1e-9
    gy, gx = np.gradient(z, f)
    # normal . sun (sun vector: north component -cos(e), up sin(e)); gy is d/d(row) = -dz/dy
    nx, ny, nz = -gx, gy, np.ones_like(z)
    lit = (ny * -math.cos(math.radians(sun_el)) + nz * math.sin(math.radians(sun_el))) / np.sqrt(
        nx**2 + ny**2 + nz**2
    )
    albedo = 0.35 + 0.05 * ndimage.gaussian_filter(rng.standard_normal((n, n)), 8)
    if dark_north is not None:
        albedo[dark_north < Y] *= 0.45
    img = albedo * (
        0.2 + 0.8 * np.where(shadow, 0.0, np.clip(lit, 0.0, None)) / math.sin(math.radians(sun_el))
    )
    img = img.reshape(SIZE, ss, SIZE, ss).mean(axis=(1, 3))
    img = ndimage.gaussian_filter(img, 0.6) + 0.005 * rng.standard_normal((SIZE, SIZE))
    transform = Affine(GSD, 0, X0, 0, -GSD, Y0 + SIZE * GSD)
    return img, transform, rect(100, 100, length, base_w, 90)


@pytest.mark.parametrize(("h", "el"), [(6.0, 30.0), (9.0, 35.0), (12.0, 45.0)])
def test_berm_height_from_its_crest_shadow(h: float, el: float) -> None:
    img, t, base = render_berm(h, el)
    r = heights_from_shadows(img, t, [base], sun=(180.0, el), ridges=[True])[0]
    assert r.height_m is not None, r.detail
    assert r.method == "ridge_shadow"
    assert r.height_m == pytest.approx(h, abs=0.3)
    assert r.uncertainty_m is not None and 0 < r.uncertainty_m < 0.5
    # the crest width (2 m) is found from where the shadow starts
    assert r.inputs["crest_width_m"] == pytest.approx(2.0, abs=0.6)
    # as a box, the footprint edge is taken for the caster: far too low
    box_r = heights_from_shadows(img, t, [base], sun=(180.0, el))[0]
    assert box_r.height_m is None or box_r.height_m < h - 2.0


def test_berm_lee_slope_lit_by_a_high_sun_is_null() -> None:
    # lee slope 6/7 (40.6 deg) below a 55 deg sun: dim, no shadow cast, no height
    img, t, base = render_berm(6.0, 55.0)
    r = heights_from_shadows(img, t, [base], sun=(180.0, 55.0), ridges=[True])[0]
    assert r.height_m is None and r.reason == "no_shadow_found"


def test_berm_null_when_sun_along_ridge_or_shadow_on_cut() -> None:
    img, t, base = render_berm(9.0, 35.0)
    along = height_from_ridge_shadow(img, t, base, sun_azimuth=95.0, sun_elevation=35.0)
    assert along.height_m is None and along.reason == "sun_along_ridge"
    # a portal cut north of the berm, across the whole shadow: every profile is blocked
    cut = rect(100, 100 + 8 + 6, 60, 10, 90)
    r = heights_from_shadows(img, t, [base], sun=(180.0, 35.0), ridges=[True], blockers=[cut])[0]
    assert r.height_m is None and r.reason == "shadow_on_other_footprint"
    # a cut covering only the eastern third: the other profiles still measure the berm
    part = rect(112, 100 + 8 + 6, 14, 10, 90)
    r = heights_from_shadows(img, t, [base], sun=(180.0, 35.0), ridges=[True], blockers=[part])[0]
    assert r.height_m == pytest.approx(9.0, abs=0.3)
    assert r.inputs["rays_used"] < r.inputs["rays"]


def test_berm_shadow_into_dark_ground_keeps_the_bulk() -> None:
    # dark vegetation north of the berm on the western half: those profiles run on; the shorth
    # keeps the others
    img, t, base = render_berm(9.0, 35.0, dark_north=None)
    rng = np.random.default_rng(5)
    L = 9.0 / math.tan(math.radians(35.0))
    tip_row = round((SIZE * GSD - (100 + 1.0 + L)) / GSD)  # crest edge at +1 m
    col0 = round(80 / GSD)
    img[tip_row - 1 : tip_row + 20, col0 : col0 + int(12 / GSD)] *= 0.3 + 0.02 * rng.random()
    r = heights_from_shadows(img, t, [base], sun=(180.0, 35.0), ridges=[True])[0]
    assert r.height_m == pytest.approx(9.0, abs=0.4)


def test_shorth_and_shadow_threshold() -> None:
    rng = np.random.default_rng(0)
    good = rng.normal(10.0, 0.2, 60)
    spoiled = rng.uniform(12.0, 30.0, 40)
    loc, scale = shorth_location(np.concatenate([good, spoiled]))
    assert loc == pytest.approx(10.0, abs=0.15) and scale < 0.6
    # the median is pulled towards the spoiled side, the shorth much less
    assert abs(loc - 10.0) < abs(float(np.median(np.concatenate([good, spoiled]))) - 10.0)
    # shadow, vegetation and bright spoil: the threshold falls between shadow and vegetation
    v = np.concatenate(
        [rng.normal(0.05, 0.01, 300), rng.normal(0.2, 0.03, 600), rng.normal(0.6, 0.05, 300)]
    )
    thr = shadow_threshold(v)
    assert thr is not None and 0.08 < thr < 0.15
    assert shadow_threshold(rng.normal(0.3, 0.02, 500)) is None
