"""Solar position against pvlib's NREL SPA, and sun angles from real scene metadata."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from sitewatch.analysis.sun import (
    SunPosition,
    read_sun_angles,
    solar_position,
    sun_from_landsat_ang,
    sun_from_landsat_mtl,
    sun_from_sentinel2_mtd,
    sun_from_stac,
    sun_position,
)
from sitewatch.errors import ImageryError, InputError, UnsafeInputError

LANDSAT = "landsat-metadata"
MTL = "LC08_L2SP_224078_20200127_02_T1_LC08_L2SP_224078_20200127_20200823_02_T1_MTL.txt"
ANG = "LE07_L2SP_225078_20110306_02_T1_LE07_L2SP_225078_20110306_20200910_02_T1_ANG.txt"
SZA = "LE07_L2SP_225078_20110306_02_T1_SZA.tif"


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    """Random places and times 1960-2090, with pvlib's SPA (nrel_numpy) as the reference."""
    pd = pytest.importorskip("pandas")
    pvlib = pytest.importorskip("pvlib")
    rng = np.random.default_rng(42)
    n = 400
    t0 = np.datetime64("1960-01-01T00:00:00", "s")
    span = int((np.datetime64("2090-01-01", "s") - t0) / np.timedelta64(1, "s"))
    times = t0 + rng.integers(0, span, n).astype("timedelta64[s]")
    lat = rng.uniform(-89.0, 89.0, n)
    lon = rng.uniform(-180.0, 180.0, n)
    rows = []
    for t, la, lo in zip(times, lat, lon, strict=True):
        idx = pd.DatetimeIndex([t], tz="UTC")
        r = pvlib.solarposition.get_solarposition(idx, la, lo, method="nrel_numpy")
        rows.append((r["azimuth"].iloc[0], r["elevation"].iloc[0], r["apparent_elevation"].iloc[0]))
    ref = np.array(rows)
    return {"times": times, "lat": lat, "lon": lon, "az": ref[:, 0], "el": ref[:, 1],
            "app": ref[:, 2]}  # fmt: skip


def _az_error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a - b + 180.0) % 360.0 - 180.0


def test_matches_nrel_spa_within_a_hundredth_of_a_degree(reference: dict[str, np.ndarray]) -> None:
    got = solar_position(reference["lon"], reference["lat"], reference["times"])
    assert got.elevation.shape == reference["lat"].shape
    assert np.abs(got.elevation - reference["el"]).max() < 0.01
    daz = _az_error(got.azimuth, reference["az"])
    # azimuth is ill-defined at the zenith: compare it where the sun is below 85 degrees
    low = reference["el"] < 85.0
    assert np.abs(daz[low]).max() < 0.01
    assert (np.abs(daz) * np.cos(np.radians(reference["el"]))).max() < 0.01
    assert (reference["el"] < 0).any() and (reference["el"] > 45).any()  # both day and night


def test_refraction_gives_apparent_elevation(reference: dict[str, np.ndarray]) -> None:
    geo = solar_position(reference["lon"], reference["lat"], reference["times"])
    app = solar_position(reference["lon"], reference["lat"], reference["times"], refraction=True)
    assert np.abs(app.elevation - reference["app"]).max() < 0.01
    up = geo.elevation > 5.0
    assert np.all(app.elevation[up] > geo.elevation[up])  # refraction lifts the sun
    assert np.allclose(app.azimuth, geo.azimuth)


def test_known_values_and_time_handling() -> None:
    # solar noon at Greenwich near the June solstice: sun due south at 90 - 51.48 + 23.44
    noon = datetime(2024, 6, 20, 12, 1, 30, tzinfo=UTC)
    pos = sun_position(0.0, 51.4779, noon)
    assert pos.elevation == pytest.approx(90.0 - 51.4779 + 23.44, abs=0.05)
    assert pos.azimuth == pytest.approx(180.0, abs=0.5)
    # naive = UTC; aware datetimes are converted; numpy datetime64 works too
    naive = sun_position(126.1, 38.6, datetime(2024, 3, 1, 2, 0))
    korea = timezone(timedelta(hours=9))
    aware = sun_position(126.1, 38.6, datetime(2024, 3, 1, 11, 0, tzinfo=korea))
    assert (naive.azimuth, naive.elevation) == (aware.azimuth, aware.elevation)
    arr = solar_position(126.1, 38.6, np.array(["2024-03-01T02:00"], dtype="datetime64[s]"))
    assert float(arr.elevation[0]) == pytest.approx(naive.elevation, abs=1e-9)
    # broadcasting: one time, a row of places
    lats = np.linspace(-60.0, 60.0, 7)
    row = solar_position(0.0, lats, noon)
    assert row.elevation.shape == (7,) and np.argmax(row.elevation) == 4  # 20 N, nearest 23.4 N
    assert SunPosition(180.0, 45.0).shadow_length(10.0) == pytest.approx(10.0)
    with pytest.raises(InputError, match="below the horizon"):
        SunPosition(180.0, -3.0).shadow_length(10.0)
    with pytest.raises(InputError, match="latitude"):
        solar_position(0.0, 95.0, noon)


def test_landsat_mtl_sun_matches_computed(shared_data: Path) -> None:
    sun = read_sun_angles(shared_data / LANDSAT / MTL)
    assert sun.source == "landsat_mtl"
    assert (sun.azimuth, sun.elevation) == (83.6329676, 57.73214399)
    assert sun.datetime == datetime(2020, 1, 27, 13, 36, 10, 394624, tzinfo=UTC)
    # scene centre from the corner coordinates of the same file
    lats = [-24.94432, -24.91213, -27.07056, -27.03521]
    lons = [-56.07486, -53.76784, -56.05805, -53.70922]
    ours = sun_position(float(np.mean(lons)), float(np.mean(lats)), sun.datetime)
    assert ours.azimuth == pytest.approx(sun.azimuth, abs=0.02)
    assert ours.elevation == pytest.approx(sun.elevation, abs=0.02)


def test_landsat_ang_sun_vector(shared_data: Path) -> None:
    import rasterio
    from pyproj import Transformer

    sun = sun_from_landsat_ang(shared_data / LANDSAT / ANG)
    assert sun.source == "landsat_ang"
    assert sun.datetime is not None and sun.datetime.date().isoformat() == "2011-03-06"
    # BAND01_MEAN_L1T_LINE_SAMP (3533.139, 4055.555) on the 30 m grid from UL (430500, -2768400)
    x, y = 430500.0 + 4055.555 * 30.0, -2768400.0 - 3533.139 * 30.0
    with rasterio.open(shared_data / LANDSAT / SZA) as ds:
        r, c = ds.index(x, y)
        zenith = ds.read(1)[r, c] / 100.0  # hundredths of a degree
    assert 90.0 - sun.elevation == pytest.approx(zenith, abs=0.01)
    lon, lat = Transformer.from_crs("EPSG:32721", "EPSG:4326", always_xy=True).transform(
        x, y + 10_000_000.0
    )  # the file's UTM 21N grid with negative northings = UTM 21S
    line_time = sun.datetime + timedelta(seconds=0.754379 + 3533.139 / 16 * 0.071154)
    ours = sun_position(lon, lat, line_time)
    assert ours.azimuth == pytest.approx(sun.azimuth, abs=0.05)
    assert ours.elevation == pytest.approx(sun.elevation, abs=0.05)
    assert read_sun_angles(shared_data / LANDSAT / ANG) == sun


_MTD = """<?xml version="1.0" encoding="UTF-8"?>
<n1:Level-1C_Tile_ID xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/S2_PDI_Level-1C_Tile_Metadata.xsd">
  <n1:General_Info>
    <TILE_ID metadataLevel="Brief">S2A_OPER_MSI_L1C_TL_SGS__20180312T033911_A014206_T52SCG_N02.06</TILE_ID>
    <SENSING_TIME metadataLevel="Standard">2018-03-12T02:21:51.456Z</SENSING_TIME>
  </n1:General_Info>
  <n1:Geometric_Info>
    <Tile_Angles metadataLevel="Standard">
      <Mean_Sun_Angle>
        <ZENITH_ANGLE unit="deg">48.2316069263372</ZENITH_ANGLE>
        <AZIMUTH_ANGLE unit="deg">148.412843562505</AZIMUTH_ANGLE>
      </Mean_Sun_Angle>
    </Tile_Angles>
  </n1:Geometric_Info>
</n1:Level-1C_Tile_ID>
"""


def test_sentinel2_tile_metadata(tmp_path: Path) -> None:
    path = tmp_path / "MTD_TL.xml"
    path.write_text(_MTD)
    sun = read_sun_angles(path)
    assert sun.source == "sentinel2_mtd"
    assert sun.elevation == pytest.approx(90.0 - 48.2316069263372)
    assert sun.azimuth == pytest.approx(148.412843562505)
    assert sun.datetime == datetime(2018, 3, 12, 2, 21, 51, 456000, tzinfo=UTC)


def test_sentinel2_refuses_unsafe_and_incomplete_xml(tmp_path: Path) -> None:
    evil = tmp_path / "MTD_TL.xml"
    evil.write_text(
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        "<r><Mean_Sun_Angle><ZENITH_ANGLE>&x;</ZENITH_ANGLE></Mean_Sun_Angle></r>"
    )
    with pytest.raises(UnsafeInputError):
        sun_from_sentinel2_mtd(evil)
    empty = tmp_path / "other.xml"
    empty.write_text("<root><a>1</a></root>")
    with pytest.raises(ImageryError, match="Mean_Sun_Angle"):
        sun_from_sentinel2_mtd(empty)


def test_stac_properties(tmp_path: Path) -> None:
    pystac = pytest.importorskip("pystac")
    props = {"datetime": "2024-05-01T02:00:00Z", "view:sun_azimuth": 140.5,
             "view:sun_elevation": 61.25}  # fmt: skip
    item = pystac.Item("x", None, None, datetime(2024, 5, 1, 2, tzinfo=UTC), props)
    for source in (item, item.to_dict(), props):
        sun = sun_from_stac(source)
        assert (sun.azimuth, sun.elevation) == (140.5, 61.25)
        assert sun.datetime == datetime(2024, 5, 1, 2, tzinfo=UTC)
    path = tmp_path / "item.json"
    path.write_text(json.dumps(item.to_dict()))
    assert read_sun_angles(path).elevation == 61.25
    with pytest.raises(ImageryError, match="view:sun_elevation"):
        sun_from_stac({"id": "bare", "properties": {"view:sun_azimuth": 1.0}})


def test_bad_files(tmp_path: Path) -> None:
    junk = tmp_path / "scene_MTL.txt"
    junk.write_text("GROUP = X\n  FOO = 1\nEND_GROUP = X\n")
    with pytest.raises(ImageryError, match="SUN_AZIMUTH"):
        sun_from_landsat_mtl(junk)
    with pytest.raises(ImageryError, match="cannot read"):
        sun_from_landsat_mtl(tmp_path / "missing_MTL.txt")
    with pytest.raises(ImageryError, match="unknown metadata"):
        read_sun_angles(tmp_path / "scene.hdf")
    assert math.isfinite(SunPosition(10.0, 20.0).zenith)
