"""Range rings (antimeridian, poles, antipodes), the missile table and targets within range."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import shapely

from sitewatch.analysis.ranges import (
    load_missile_table,
    range_area,
    range_rings,
    rings_to_geojson,
    rings_to_kml,
    select_classes,
    targets_in_range,
)
from sitewatch.errors import ImportFormatError, InputError
from sitewatch.geo import GEOD

PYONGYANG = (125.75, 39.03)


def _random_points(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    lon = rng.uniform(-180, 180, n)
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    return lon, lat


@pytest.mark.parametrize(
    ("lon", "lat", "rmax_km", "rmin_km"),
    [
        (127.0, 40.0, 13_000, 0),  # encloses the north pole
        (160.0, 55.0, 3_000, 0),  # crosses the antimeridian
        (-179.5, -85.0, 500, 0),  # near the south pole, across the antimeridian
        (0.0, 0.0, 15_000, 0),  # past a hemisphere: the antipodal cap is outside
        (127.0, 40.0, 13_000, 4_500),  # annulus around the pole
        (10.0, -60.0, 9_000, 1_000),
        (125.75, 39.03, 300, 0),
    ],
)
def test_range_area_contains_exactly_the_points_within_range(
    lon: float, lat: float, rmax_km: float, rmin_km: float
) -> None:
    area = range_area(lon, lat, rmax_km * 1000.0, rmin_km * 1000.0)
    assert area.is_valid and not area.is_empty
    minx, miny, maxx, maxy = area.bounds
    assert minx >= -180 and maxx <= 180 and miny >= -90 and maxy <= 90
    plon, plat = _random_points(4000)
    _, _, d = GEOD.inv(np.full(plon.size, lon), np.full(plon.size, lat), plon, plat)
    truth = (d <= rmax_km * 1000) & (d >= rmin_km * 1000)
    got = shapely.covers(area, shapely.points(plon, plat))
    # away from the rings' edges (the 360-vertex polygon is within 1% of the circle)
    clear = (np.abs(d - rmax_km * 1000) > 0.01 * rmax_km * 1000) & (
        np.abs(d - rmin_km * 1000) > 0.01 * rmax_km * 1000
    )
    assert truth[clear].sum() > 0 or rmax_km < 1000
    assert np.array_equal(got[clear], truth[clear])


def test_pole_enclosing_ring_includes_the_pole() -> None:
    area = range_area(127.0, 40.0, 13_000_000.0)
    assert area.covers(shapely.Point(0.0, 90.0)) and not area.covers(shapely.Point(0.0, -90.0))
    small = range_area(160.0, 55.0, 3_000_000.0)
    assert small.geom_type == "MultiPolygon"  # split at the antimeridian


def test_shipped_table_has_sources() -> None:
    table = load_missile_table()
    ids = [m.id for m in table]
    assert {"scud-b", "scud-c", "nodong", "hwasong-15"} <= set(ids)
    assert all(m.source and m.max_range_km > m.min_range_km for m in table)
    scud = select_classes(table, ["scud-b"])[0]
    assert scud.max_range_km == 300
    with pytest.raises(InputError, match="unknown missile class"):
        select_classes(table, ["nope"])


def test_user_table_errors_are_reported_by_line(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text(
        "# my table\nclass,name,max_range_km,source\na,A,100,me\nb,B,-5,me\nc,C,200,\na,A2,50,me\n"
    )
    with pytest.raises(ImportFormatError) as info:
        load_missile_table(p)
    lines = [pr.line for pr in info.value.problems]
    assert lines == [4, 5, 6]
    p.write_text("class,name\nx,y\n")
    with pytest.raises(ImportFormatError, match="missing column"):
        load_missile_table(p)


def test_rings_geojson_and_kml() -> None:
    table = select_classes(load_missile_table(), ["scud-b", "hwasong-15"])
    rings = range_rings(PYONGYANG, table, origin_name="Pyongyang")
    gj = rings_to_geojson(rings)
    assert [f["properties"].get("class") for f in gj["features"]] == ["hwasong-15", "scud-b", None]
    assert gj["features"][0]["properties"]["source"]
    kml = rings_to_kml(rings)
    root = ET.fromstring(kml)
    ns = {"k": "http://www.opengis.net/kml/2.2"}
    assert len(root.findall(".//k:Placemark", ns)) == 3
    for coords in root.findall(".//k:coordinates", ns):
        for triple in (coords.text or "").split():
            x, y, _ = map(float, triple.split(","))
            assert -180 <= x <= 180 and -90 <= y <= 90
    for n in (7, 36_001):  # an octagon at least; a vertex count that would not hang the writer
        with pytest.raises(InputError, match=f"8 to 36000 azimuths .*got {n}"):
            range_rings(PYONGYANG, table, n=n)


def test_targets_within_range() -> None:
    table = load_missile_table()
    seoul = ("Seoul", 126.98, 37.57)
    tokyo = ("Tokyo", 139.69, 35.69)
    guam = ("Guam", 144.79, 13.44)
    res = targets_in_range(PYONGYANG, [seoul, tokyo, guam], table)
    assert [r.name for r in res] == ["Seoul", "Tokyo", "Guam"]
    assert 180 < res[0].distance_km < 210 and 120 < res[0].bearing_deg < 180
    assert "scud-b" in res[0].classes
    assert "scud-b" not in res[1].classes and "nodong" in res[1].classes
    assert "nodong" not in res[2].classes and "hwasong-12" in res[2].classes
    with pytest.raises(InputError):
        targets_in_range(PYONGYANG, [("bad", 200.0, 0.0)], table)
