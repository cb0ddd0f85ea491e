"""DEM reading, derivatives (checked against gdaldem), viewshed and defilade (synthetic and SRTM)."""

from __future__ import annotations

import logging
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import CRS
from shapely.geometry import Point, box

from sitewatch.analysis._viewshed import radial_viewshed
from sitewatch.analysis.terrain import (
    Dem,
    aspect,
    defilade_from_direction,
    defilade_from_point,
    dem_on_grid,
    derive,
    hillshade,
    horizon_angle,
    horizon_uncertainty,
    portal_mouth,
    read_dem,
    relief,
    slope,
    tpi,
    tri,
    viewshed,
)
from sitewatch.errors import ImageryError, InputError
from sitewatch.geo import GEOD, to_crs

WASHINGTON = (-71.3033, 44.2706)  # summit of Mount Washington
PINKHAM = (-71.253, 44.257)  # Pinkham Notch, a deep valley east of it


@pytest.fixture(scope="module")
def srtm(shared_data: Path) -> Dem:
    return read_dem(shared_data / "srtm" / "N44W072.hgt")


@pytest.fixture(scope="module")
def srtm_metric(srtm: Dem) -> Dem:
    return srtm.to_metric()


@pytest.fixture(scope="module")
def summit_view(srtm: Dem) -> tuple[np.ndarray, Dem]:
    return viewshed(srtm, WASHINGTON, observer_height=2.0)


def _write(path: Path, dem: Dem) -> Path:
    prof = {"driver": "GTiff", "height": dem.shape[0], "width": dem.shape[1], "count": 1,
            "dtype": "float32", "crs": dem.crs, "transform": dem.transform, "nodata": -9999.0}  # fmt: skip
    with rasterio.open(path, "w", **prof) as ds:
        ds.write(np.nan_to_num(dem.data, nan=-9999.0).astype("float32"), 1)
    return path


def test_read_srtm_hgt(srtm: Dem) -> None:
    assert srtm.shape == (1201, 1201) and srtm.is_geographic
    assert 100 < np.nanmin(srtm.data) < 400 and 1800 < np.nanmax(srtm.data) < 1950
    dx, dy = srtm.cell_sizes()
    _, _, ew = GEOD.inv(-71.5, 44.5, -71.5 + 1 / 1200, 44.5)
    row = int((45.0 - 44.5) * 1200)
    assert dx[row] == pytest.approx(ew, rel=1e-3)
    assert dy[row] == pytest.approx(92.6, abs=0.5)


def test_read_dem_errors(tmp_path: Path) -> None:
    with pytest.raises(ImageryError, match="does not exist"):
        read_dem(tmp_path / "nope.tif")
    bad = tmp_path / "bad.tif"
    bad.write_text("not a raster")
    with pytest.raises(ImageryError):
        read_dem(bad)


@pytest.mark.parametrize("lat0", [0.0, 60.0])
def test_slope_and_aspect_of_a_plane_on_a_geographic_grid(lat0: float) -> None:
    # z rises 0.1 m per metre northward and 0.05 m per metre eastward
    res = 1 / 3600
    n = 60
    t = Affine(res, 0, 10.0, 0, -res, lat0 + n * res / 2)
    rows, cols = np.mgrid[0:n, 0:n]
    lon = 10.0 + (cols + 0.5) * res
    lat = t.f - (rows + 0.5) * res
    _, _, north = GEOD.inv(
        np.full(lat.shape, 10.0), np.full(lat.shape, lat0), np.full(lat.shape, 10.0), lat
    )
    north = np.sign(lat - lat0) * north
    _, _, east = GEOD.inv(np.full(lon.shape, 10.0), lat, lon, lat)
    z = 0.1 * north + 0.05 * east
    dem = Dem(z, t, CRS.from_epsg(4326))
    s = slope(dem)[2:-2, 2:-2]
    assert np.allclose(s, math.degrees(math.atan(math.hypot(0.1, 0.05))), atol=0.05)
    a = aspect(dem)[2:-2, 2:-2]  # downslope: towards south-south-west
    assert np.allclose(a, (math.degrees(math.atan2(-0.05, -0.1))) % 360, atol=0.2)
    assert np.allclose(tpi(dem)[2:-2, 2:-2], 0.0, atol=1e-6)


def test_slope_of_a_plane_on_a_web_mercator_grid(caplog: pytest.LogCaptureFixture) -> None:
    """EPSG:3857 metres are 2x ground metres at 60 N: slope must come out as on the ground, and
    line-of-sight work must run on a true-scale (UTM) grid."""
    from pyproj import Transformer

    x0, y0 = Transformer.from_crs(4326, 3857, always_xy=True).transform(10.0, 60.0)
    n, res = 60, 60.0
    t = Affine(res, 0, x0, 0, -res, y0 + n * res / 2)
    rows, cols = np.mgrid[0:n, 0:n]
    x = t.c + (cols + 0.5) * res
    y = t.f - (rows + 0.5) * res
    lon, lat = Transformer.from_crs(3857, 4326, always_xy=True).transform(x, y)
    _, _, north = GEOD.inv(
        np.full(lat.shape, 10.0), np.full(lat.shape, 60.0), np.full(lat.shape, 10.0), lat
    )
    north = np.sign(lat - 60.0) * north
    _, _, east = GEOD.inv(np.full(lon.shape, 10.0), lat, lon, lat)
    z = 0.1 * north + 0.05 * east
    dem = Dem(z, t, CRS.from_epsg(3857))
    assert dem.distorted
    s = slope(dem)[2:-2, 2:-2]
    assert np.allclose(s, math.degrees(math.atan(math.hypot(0.1, 0.05))), atol=0.1)
    with caplog.at_level(logging.WARNING):
        metric = dem.to_metric()
    assert metric.crs.to_epsg() == 32632 and "off true scale" in caplog.text
    assert not metric.distorted and 25.0 < abs(metric.transform.a) < 35.0  # ~30 m on the ground


def test_dem_in_feet_and_scaled_integers_reads_in_metres(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """County LiDAR in State Plane US feet: a 10% slope with elevations in metres stays 5.71 deg
    (not 1.74 deg from feet taken as metres); elevations declared in feet come out in metres;
    int16 with a GDAL scale is unscaled."""
    ft = 1200 / 3937
    rows = np.mgrid[0:40, 0:40][0]
    cell_ft = 10.0
    z_m = 300.0 + 0.1 * (39 - rows) * cell_ft * ft  # rises 0.1 m per metre northward
    t = Affine(cell_ft, 0, 980_000.0, 0, -cell_ft, 200_000.0)

    def write(name: str, z: np.ndarray, unit: str | None) -> Path:
        path = tmp_path / name
        with rasterio.open(path, "w", driver="GTiff", height=40, width=40, count=1,
                           dtype="float32", crs="EPSG:2263", transform=t) as ds:  # fmt: skip
            ds.write(z.astype("float32"), 1)
            if unit:
                ds.set_band_unit(1, unit)
        return path

    dem = read_dem(write("dem_m.tif", z_m, None))
    assert np.allclose(slope(dem)[2:-2, 2:-2], math.degrees(math.atan(0.1)), atol=0.05)
    with caplog.at_level(logging.WARNING):
        metric = dem.to_metric()
    assert "units are not metres" in caplog.text
    assert metric.crs.to_epsg() == 32618 and 2.5 < abs(metric.transform.a) < 3.5  # ~3.05 m
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        in_feet = read_dem(write("dem_ft.tif", z_m / ft, "US survey foot"))
    assert "converting them to metres" in caplog.text
    np.testing.assert_allclose(in_feet.data, dem.data, rtol=1e-6)
    scaled = tmp_path / "dem_dm.tif"
    with rasterio.open(scaled, "w", driver="GTiff", height=40, width=40, count=1, dtype="int16",
                       crs="EPSG:32652", transform=Affine(30, 0, 350_000, 0, -30, 4_320_000),
                       nodata=-32768) as ds:  # fmt: skip
        ds.write(np.full((40, 40), 1234, dtype="int16"), 1)  # decimetres
        ds.scales = (0.1,)
    assert np.nanmean(read_dem(scaled).data) == pytest.approx(123.4)
    with pytest.raises(ImageryError, match=r"bands 1\.\.1, not 2"):
        read_dem(scaled, band=2)


def test_relief_tri_on_small_grid() -> None:
    z = np.arange(25, dtype=float).reshape(5, 5)
    dem = Dem(z, Affine(10, 0, 0, 0, -10, 50), CRS.from_epsg(32633))
    r = relief(dem, window=3)
    assert r[2, 2] == 12.0  # (18 - 6)
    t = tri(dem)
    assert t[2, 2] == pytest.approx(math.sqrt(2 * (1 + 25 + 36 + 16)))
    with pytest.raises(InputError):
        relief(dem, window=4)
    with pytest.raises(InputError):
        derive(dem, ["slope", "nonsense"])


@pytest.mark.skipif(shutil.which("gdaldem") is None, reason="gdaldem (gdal-bin) not installed")
@pytest.mark.parametrize(
    ("product", "args", "tol"),
    [
        ("hillshade", [], 0.51),
        ("slope", [], 1e-3),
        ("aspect", [], 0.1),
        ("TRI", ["-alg", "Riley"], 1e-3),
        ("TPI", [], 1e-3),
    ],
)
def test_derivatives_match_gdaldem(
    srtm_metric: Dem, tmp_path: Path, product: str, args: list[str], tol: float
) -> None:
    crop = Dem(srtm_metric.data[600:900, 500:800].copy(),
               srtm_metric.transform @ Affine.translation(500, 600), srtm_metric.crs)  # fmt: skip
    src = _write(tmp_path / "dem.tif", crop)
    out = tmp_path / "g.tif"
    subprocess.run(["gdaldem", product, str(src), str(out), *args, "-q"], check=True)
    with rasterio.open(out) as ds:
        ref = ds.read(1, masked=True).astype(float).filled(np.nan)
    mine = {"hillshade": hillshade, "slope": slope, "aspect": aspect, "TRI": tri, "TPI": tpi}[
        product
    ](crop)
    ok = np.isfinite(ref) & np.isfinite(mine)
    ok[:1] = ok[-1:] = False
    ok[:, :1] = ok[:, -1:] = False
    assert ok.sum() > 0.95 * (298 * 298)
    diff = np.abs(ref - mine)[ok]
    if product == "aspect":
        diff = np.minimum(diff, 360 - diff)
    assert float(diff.max()) <= tol


def test_viewshed_on_flat_earth_reaches_the_horizon() -> None:
    n, cell = 401, 100.0
    z = np.zeros((n, n))
    vis = radial_viewshed(z, (n / 2, n / 2), (cell, cell), observer_height=10.0, curvature=False)
    assert vis.all()
    vis = radial_viewshed(z, (n / 2, n / 2), (cell, cell), observer_height=10.0, curvature=True)
    rows, cols = np.mgrid[0:n, 0:n]
    dist = np.hypot(rows + 0.5 - n / 2, cols + 0.5 - n / 2) * cell
    horizon = math.sqrt(2 * 6_371_008.8 * 10.0 / (1 - 0.13))
    assert vis[dist < 0.9 * horizon].all()
    assert not vis[dist > 1.1 * horizon].any()


def test_viewshed_wall_hides_what_is_behind_it() -> None:
    z = np.zeros((101, 101))
    z[:, 60] = 50.0  # a 50 m wall north-south, east of the observer
    vis = radial_viewshed(z, (50.5, 20.5), (10.0, 10.0), observer_height=2.0, curvature=False)
    assert vis[:, :60].all() and vis[50, 60]
    assert not vis[40:61, 62:].any()


def _brute_los(
    z: np.ndarray, a: tuple[int, int], b: tuple[int, int], h: float, cell: float
) -> bool:
    from scipy import ndimage

    (r0, c0), (r1, c1) = a, b
    n = int(4 * max(abs(r1 - r0), abs(c1 - c0))) + 2
    f = np.linspace(0, 1, n)[1:-1]
    rr, cc = r0 + f * (r1 - r0), c0 + f * (c1 - c0)
    zz = ndimage.map_coordinates(z, [rr, cc], order=1)
    z0, z1 = z[r0, c0] + h, z[r1, c1]
    line = z0 + f * (z1 - z0)
    return bool(np.all(zz <= line + 1e-6))


def test_viewshed_agrees_with_brute_force_line_of_sight(srtm_metric: Dem) -> None:
    z = srtm_metric.data[700:900, 500:700].copy()
    cell = (abs(srtm_metric.transform.a), abs(srtm_metric.transform.e))
    obs = (100, 100)
    vis = radial_viewshed(
        z, (obs[0] + 0.5, obs[1] + 0.5), cell, observer_height=2.0, curvature=False
    )
    rng = np.random.default_rng(0)
    cells = rng.integers(0, 200, size=(300, 2))
    agree = [vis[r, c] == _brute_los(z, obs, (r, c), 2.0, cell[0]) for r, c in cells]
    assert np.mean(agree) > 0.95
    assert 0.02 < vis.mean() < 0.98


def test_viewshed_from_mount_washington_sees_more_than_the_valley(
    srtm: Dem, summit_view: tuple[np.ndarray, Dem]
) -> None:
    summit, metric = summit_view
    valley, _ = viewshed(srtm, PINKHAM, observer_height=2.0)
    assert summit.shape == metric.shape and not metric.is_geographic
    assert summit.mean() > 5 * valley.mean()
    # mutual visibility: points the summit sees mostly see the summit
    rng = np.random.default_rng(1)
    rows, cols = np.nonzero(summit & np.isfinite(metric.data))
    pick = rng.choice(rows.size, 4, replace=False)
    sx, sy = to_crs(Point(*WASHINGTON), "EPSG:4326", metric.crs).coords[0]
    seen_back = 0
    for k in pick:
        x, y = metric.transform @ (cols[k] + 0.5, rows[k] + 0.5)
        reach = math.hypot(x - sx, y - sy) + 1000.0
        lon, lat = to_crs(Point(x, y), metric.crs, "EPSG:4326").coords[0]
        back, _ = viewshed(metric, (lon, lat), observer_height=2.0, max_distance=reach)
        rc = np.floor(metric.rowcol(np.array([sx]), np.array([sy]))[0]).astype(int)
        seen_back += bool(back[max(rc[0] - 1, 0) : rc[0] + 2, max(rc[1] - 1, 0) : rc[1] + 2].any())
    assert seen_back >= 3
    with pytest.raises(InputError, match="outside the DEM"):
        viewshed(srtm, (10.0, 10.0))


def test_defilade_valley_masked_summit_exposed(srtm_metric: Dem) -> None:
    pts = [Point(*WASHINGTON), Point(*PINKHAM)]
    low_west = defilade_from_direction(srtm_metric, pts, threat_azimuth=270, threat_elevation=10.0)
    assert low_west[0].masked is False and low_west[1].masked is True
    assert low_west[1].horizon_deg is not None and low_west[1].horizon_deg > 10.0
    for az in (0, 90, 180, 270):
        r = defilade_from_direction(srtm_metric, pts[:1], threat_azimuth=az, threat_elevation=0.0)
        assert r[0].masked is False
    # a steeper threat angle cannot mask more
    steep = defilade_from_direction(srtm_metric, pts, threat_azimuth=270, threat_elevation=30.0)
    assert steep[1].masked is False
    h, _ = horizon_angle(srtm_metric, [PINKHAM], 270)
    assert h[0] == pytest.approx(low_west[1].horizon_deg, abs=1e-6)


def test_defilade_polygon_fraction_and_outside(srtm_metric: Dem) -> None:
    poly = box(PINKHAM[0] - 0.01, PINKHAM[1] - 0.01, PINKHAM[0] + 0.01, PINKHAM[1] + 0.01)
    res = defilade_from_direction(srtm_metric, [poly, Point(10, 10)], ids=["a", "b"],
                                  threat_azimuth=270, threat_elevation=12.0)  # fmt: skip
    assert res[0].points > 10 and 0.0 <= (res[0].masked_fraction or 0) <= 1.0
    assert res[0].id == "a"
    assert res[1].masked is None and res[1].reason == "outside_dem"
    with pytest.raises(InputError):
        defilade_from_direction(srtm_metric, [poly], threat_azimuth=0, threat_elevation=95)


def test_defilade_from_threat_point_matches_viewshed(
    srtm: Dem, summit_view: tuple[np.ndarray, Dem]
) -> None:
    pts = [Point(*PINKHAM), Point(-71.35, 44.30)]
    res = defilade_from_point(srtm, pts, threat=WASHINGTON, threat_height=2.0)
    vis, metric = summit_view
    for p, r in zip(pts, res, strict=True):
        x, y = to_crs(p, "EPSG:4326", metric.crs).coords[0]
        rc = np.floor(metric.rowcol(np.array([x]), np.array([y]))[0]).astype(int)
        assert r.masked is (not vis[rc[0], rc[1]])


def test_dem_on_grid_warns_when_crs_differs(srtm: Dem, caplog: pytest.LogCaptureFixture) -> None:
    t = Affine(30.0, 0, 310000.0, 0, -30.0, 4905000.0)
    with caplog.at_level(logging.WARNING, logger="sitewatch.analysis.terrain"):
        out = dem_on_grid(srtm, "EPSG:32619", t, (100, 100))
    assert "different CRSs" in caplog.text
    assert np.isfinite(out).all() and 100 < out.mean() < 2000
    from sitewatch.errors import AnalysisError

    with pytest.raises(AnalysisError, match="does not cover"):
        dem_on_grid(srtm, "EPSG:32652", t, (10, 10))


def _utm_dem(z: np.ndarray, cell: float = 5.0) -> Dem:
    # EPSG:32652 near 39 N 126.5 E; north-up, origin chosen so the scene lies inside the zone
    return Dem(z, Affine(cell, 0, 300_000.0, 0, -cell, 4_320_000.0), CRS.from_epsg(32652))


def test_horizon_uncertainty_follows_the_distance_to_the_horizon() -> None:
    z = np.zeros((400, 200))
    dem = _utm_dem(z)
    x0, y0 = 300_000.0 + 100.5 * 5, 4_320_000.0 - 100.5 * 5  # centre of cell (100, 100)
    wall_rows = slice(100 + 80, 100 + 82)  # a 20 m wall 400-410 m south of the point
    z[wall_rows, :] = 20.0
    lon, lat = to_crs(Point(x0, y0), dem.crs, "EPSG:4326").coords[0]
    sigma = horizon_uncertainty(dem, lon, lat, 180.0, dem_sigma_m=0.5)
    ang = math.atan(20.0 / 400.0)
    expected = math.degrees(math.sqrt(2.0) * 0.5 / 400.0 * math.cos(ang) ** 2)
    assert sigma == pytest.approx(expected, rel=0.03)
    # a farther wall gives a smaller error; looking away from it, the flat ground sets the horizon
    z[wall_rows, :] = 0.0
    z[100 + 200 : 100 + 202, :] = 20.0
    assert horizon_uncertainty(dem, lon, lat, 180.0, dem_sigma_m=0.5) < sigma


def test_portal_mouth_is_the_lower_short_side_of_the_cut() -> None:
    rows = np.arange(400)[:, None] * np.ones((1, 200))
    dem = _utm_dem(300.0 - 0.3 * 5.0 * rows)  # ground rises to the north
    cx, cy = 300_000.0 + 500.0, 4_320_000.0 - 1000.0
    cut = box(cx - 5.0, cy - 15.0, cx + 5.0, cy + 15.0)  # 10 m wide, 30 m into the slope
    mouth = portal_mouth(to_crs(cut, dem.crs, "EPSG:4326"), dem)
    ys = [to_crs(Point(*p), "EPSG:4326", dem.crs).y for p in mouth]
    assert ys == pytest.approx([cy - 15.0, cy - 15.0], abs=0.5)  # the southern, lower side
    (lon1, lat1), (lon2, lat2) = mouth
    assert GEOD.inv(lon1, lat1, lon2, lat2)[2] == pytest.approx(10.0, abs=0.3)
    dem_flipped = _utm_dem(300.0 + 0.3 * 5.0 * rows)  # ground rises to the south
    mouth2 = portal_mouth(to_crs(cut, dem.crs, "EPSG:4326"), dem_flipped)
    ys2 = [to_crs(Point(*p), "EPSG:4326", dem.crs).y for p in mouth2]
    assert ys2 == pytest.approx([cy + 15.0, cy + 15.0], abs=0.5)
