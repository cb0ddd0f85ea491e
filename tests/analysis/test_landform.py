"""Landform of a site: a tilted plane with known slope and facing, and real SRTM summits/valleys."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from pyproj import CRS, Transformer
from shapely.geometry import Point

from sitewatch.analysis.landform import kapos_class, landform
from sitewatch.analysis.terrain import Dem, read_dem
from sitewatch.errors import ImageryError, InputError
from sitewatch.geo import compass

UTM = CRS.from_epsg(32652)
LON, LAT = 126.108, 38.585  # Sakkanmol
X0, Y0 = Transformer.from_crs("EPSG:4326", UTM, always_xy=True).transform(LON, LAT)


def _plane(top: float, dz_dx: float, size_m: float = 4000.0, cell: float = 10.0) -> Dem:
    """A plane falling ``dz_dx`` m per m eastwards, ``top`` m high at the site."""
    n = int(size_m / cell)
    left, north = X0 - size_m / 2, Y0 + size_m / 2
    xs = left + (np.arange(n) + 0.5) * cell
    z = np.tile(top - dz_dx * (xs - X0), (n, 1))
    return Dem(z, Affine(cell, 0, left, 0, -cell, north), UTM, "plane")


def test_a_plane_falling_east_faces_east_with_its_slope_and_relief() -> None:
    dem = _plane(1200.0, 0.5)
    portal = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True).transform(X0 + 300, Y0)
    form = landform(dem, LON, LAT, radius_m=1000, places=[("p1", "portal-1", Point(*portal))])
    slope = math.degrees(math.atan(0.5))  # 26.57 deg
    assert form.site.slope_deg == pytest.approx(slope, abs=0.1)
    assert form.site.facing_deg == pytest.approx(90.0, abs=0.5) and compass(90.0) == "E"
    assert form.site.elevation_m == pytest.approx(1200.0, abs=0.5 * 10)  # within one cell
    # within 1 km the plane spans 2 km east-west: 1,000 m of relief, all of it steep
    assert form.relief_m == pytest.approx(1000.0, abs=10.0)
    assert form.mean_slope_deg == pytest.approx(slope, abs=0.1) and form.steep_share == 1.0
    assert form.site.below_top_m == pytest.approx(500.0, abs=10.0)
    # the portal 300 m east, 150 m lower, on the same slope
    (p,) = form.places
    assert (p.id, p.name) == ("p1", "portal-1")
    assert p.elevation_m == pytest.approx(1050.0, abs=5.0) and p.below_top_m == pytest.approx(
        650, abs=10
    )
    # 1,000-1,500 m with a slope of 5 deg or more: mountain class 5; the 4 km DEM covers only
    # part of the 7 km circle of the local elevation range, and says so
    assert form.mountain_class == 5 and form.mountainous
    assert 0.0 < form.ler_coverage < 0.15
    assert form.to_dict()["relief_m"] == form.relief_m


def test_a_low_plain_is_not_mountainous() -> None:
    form = landform(_plane(150.0, 0.001), LON, LAT)
    assert form.mountain_class is None and not form.mountainous
    assert form.site.slope_deg == pytest.approx(math.degrees(math.atan(0.001)), abs=0.05)
    flat = landform(_plane(150.0, 0.0), LON, LAT)
    assert flat.site.facing_deg is None and compass(None) == ""


def test_kapos_thresholds() -> None:
    assert kapos_class(4600, 0, 0) == 1 and kapos_class(3600, 0, 0) == 2
    assert kapos_class(2600, 0, 0) == 3
    assert kapos_class(1600, 2.0, 0) == 4 and kapos_class(1600, 1.9, 0) is None
    assert kapos_class(1200, 5.0, 0) == 5 and kapos_class(1200, 1, 301) == 5
    assert kapos_class(1200, 4.9, 300) is None
    assert kapos_class(500, 30, 301) == 6 and kapos_class(500, 30, 300) is None
    assert kapos_class(299, 45, 2000) is None


def test_srtm_summit_and_valley(shared_data: Path) -> None:
    dem = read_dem(shared_data / "srtm" / "N44W072.hgt")
    summit = landform(dem, -71.3033, 44.2706)  # Mount Washington, 1,917 m
    assert summit.site.elevation_m == pytest.approx(1917, abs=25)
    assert summit.mountain_class == 4 and summit.ler_coverage == 1.0
    assert summit.site.below_top_m < 10 and summit.relief_m > 400
    valley = landform(dem, -71.253, 44.257)  # Pinkham Notch, about 620 m
    assert valley.site.elevation_m == pytest.approx(620, abs=40)
    assert valley.mountain_class == 6 and valley.ler_m > 1000
    with pytest.raises(InputError, match="outside the DEM"):
        landform(dem, 126.0, 38.0)
    with pytest.raises(InputError, match="radius"):
        landform(dem, -71.3033, 44.2706, radius_m=0)


def test_mountainous_is_judged_only_when_the_dem_can_tell() -> None:
    """At 300-1,000 m the definition turns on the relief within 7 km. A 4 km DEM shows a lower
    bound of it: over 300 m settles it; 200 m leaves it open, and the text says so."""
    from sitewatch.analysis.landform import landform_lines

    steep = landform(_plane(500.0, 0.2), LON, LAT)  # 800 m across the DEM already
    assert steep.mountain_judged and steep.mountain_class == 6 and steep.ler_m > 300
    gentle = landform(_plane(500.0, 0.05), LON, LAT)  # 200 m across the DEM
    assert not gentle.mountain_judged and gentle.mountain_class is None
    lines, _ = landform_lines(gentle)
    assert any(line.startswith("mountainous or not: cannot tell") for line in lines)
    assert gentle.coverage == 1.0 and "that circle the DEM covers" not in lines[1]
    wide = landform(_plane(500.0, 0.05), LON, LAT, radius_m=3000)  # past the DEM's edges
    assert 0.3 < wide.coverage < 0.6
    assert "of that circle the DEM covers)" in landform_lines(wide)[0][1]


def test_a_picture_given_as_dem_is_refused_in_words_without_gdals_warning(tmp_path: Path) -> None:
    import warnings

    from PIL import Image

    from sitewatch.errors import ImageryError

    png = tmp_path / "photo.png"
    Image.new("L", (8, 8), 128).save(png)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ImageryError, match="has no CRS; give a georeferenced GeoTIFF"):
            read_dem(png)
    assert not [w for w in caught if w.category.__name__ == "NotGeoreferencedWarning"]


def test_a_site_reads_only_its_part_of_a_large_dem(shared_data: Path) -> None:
    """``read_dem(around=...)`` reads the window a site needs; the landform is the same as from
    the whole tile, and a DEM that does not reach the site says so."""
    from sitewatch.analysis.landform import landform_from_file

    path = shared_data / "srtm" / "N44W072.hgt"
    part = read_dem(path, around=(-71.3033, 44.2706, 7500.0))
    assert part.shape[0] < 300 and part.shape[1] < 300  # of the tile's 1201 x 1201
    whole = landform(read_dem(path), -71.3033, 44.2706)
    cut = landform_from_file(path, -71.3033, 44.2706)
    assert cut.site.elevation_m == pytest.approx(whole.site.elevation_m, abs=2.0)
    # the window goes to UTM on a grid of its own (its cells' size, not the tile's): extremes
    # shift by a few percent
    assert cut.relief_m == pytest.approx(whole.relief_m, rel=0.05)
    assert cut.ler_m == pytest.approx(whole.ler_m, rel=0.05) and cut.mountain_class == 4
    with pytest.raises(ImageryError, match=r"does not reach 126\.00000,38\.00000"):
        read_dem(path, around=(126.0, 38.0, 1000.0))
