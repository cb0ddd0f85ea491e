"""Scenes, band names, STAC round trips, bboxes across the antimeridian."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sitewatch.errors import ImageryError, InputError
from sitewatch.imagery._bands import common_name
from sitewatch.imagery.scene import (
    Scene,
    bbox_intersects,
    normalize_bbox,
    reflectance_of,
    scene_from_item,
)


@pytest.mark.parametrize(
    ("band", "sensor", "expected"),
    [
        ("B02", "sentinel-2", "blue"),
        ("B8A", "sentinel-2a", "nir08"),
        ("B11", "", "swir16"),
        ("B12", "", "swir22"),
        ("SCL", "", "scl"),
        ("SR_B4", "landsat-8", "red"),
        ("SR_B5", "landsat-8", "nir"),
        ("SR_B4", "landsat-5", "nir"),
        ("B3", "landsat-7", "red"),
        ("QA_PIXEL", "landsat-9", "qa_pixel"),
        ("swir1", "", "swir16"),
        ("Red", "", "red"),
        ("B99", "sentinel-2", None),
        ("foo", "", None),
    ],
)
def test_common_names(band: str, sensor: str, expected: str | None) -> None:
    assert common_name(band, sensor) == expected


def _scene(**kw: object) -> Scene:
    base: dict[str, object] = {
        "id": "s1",
        "sensor": "sentinel-2a",
        "datetime": datetime(2021, 5, 4, 10, 30, tzinfo=UTC),
        "assets": {"red": "/x/r.tif", "nir": "/x/n.tif", "scl": "/x/scl.tif"},
        "crs": "EPSG:32633",
        "bounds": (14.9, 44.9, 15.1, 45.1),
        "gsd": 10.0,
        "sun_azimuth": 150.0,
        "sun_elevation": 55.0,
        "cloud_cover": 12.5,
    }
    base.update(kw)
    return Scene(**base)  # type: ignore[arg-type]


def test_scene_needs_aware_datetime_and_assets() -> None:
    with pytest.raises(InputError, match="time zone"):
        _scene(datetime=datetime(2021, 5, 4))
    with pytest.raises(InputError, match="no assets"):
        _scene(assets={})
    with pytest.raises(InputError, match="cloud cover"):
        _scene(cloud_cover=140.0)


def test_scene_band_order_and_hash() -> None:
    s = _scene()
    assert s.bands == ("red", "nir", "scl")
    assert s.spectral_bands == ("red", "nir")
    assert {s, _scene()} == {s}
    with pytest.raises(TypeError):
        s.assets["blue"] = "x"  # type: ignore[index]


def test_stac_round_trip() -> None:
    s = _scene(assets={"red": "/x/img.tif", "nir": "/x/img.tif"}, band_index={"red": 1, "nir": 2})
    item = s.to_stac_item()
    back = scene_from_item(item)
    assert back.id == s.id
    assert back.datetime == s.datetime
    assert back.assets == s.assets
    assert dict(back.band_index) == {"red": 1, "nir": 2}
    assert back.crs == "EPSG:32633"
    assert (back.sun_azimuth, back.sun_elevation, back.cloud_cover, back.gsd) == (
        150.0,
        55.0,
        12.5,
        10.0,
    )


def test_item_without_known_band_is_refused() -> None:
    item = _scene().to_stac_item()
    item.assets.clear()
    with pytest.raises(ImageryError, match="no image asset"):
        scene_from_item(item)


def test_bbox_intersects_across_antimeridian() -> None:
    crossing = (179.5, -10.0, -179.5, -9.0)
    assert bbox_intersects(crossing, (179.8, -9.5, 179.9, -9.4))
    assert bbox_intersects(crossing, (-179.9, -9.5, -179.8, -9.4))
    assert not bbox_intersects(crossing, (0.0, -9.5, 1.0, -9.4))
    assert normalize_bbox((179.5, 0, 180.5, 1)) == (179.5, 0, -179.5, 1)
    with pytest.raises(InputError):
        normalize_bbox((0, 5, 1, 4))


def _s2_item(props: dict[str, object], raster: dict[str, object] | None = None) -> object:
    import pystac

    def asset(key: str, common: str) -> dict[str, object]:
        a: dict[str, object] = {
            "href": f"https://example.org/{key}.tif",
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "eo:bands": [{"name": key, "common_name": common}],
        }
        if raster is not None:
            a["raster:bands"] = [raster]
        return a

    return pystac.Item.from_dict(
        {
            "type": "Feature",
            "stac_version": "1.0.0",
            "id": "S2B_52SDH_20220301_0_L2A",
            "collection": "sentinel-2-l2a",
            "geometry": {"type": "Point", "coordinates": [125.75, 39.03]},
            "bbox": [125.7, 39.0, 125.8, 39.1],
            "properties": {"datetime": "2022-03-01T02:15:00Z", "platform": "sentinel-2b", **props},
            "links": [],
            "assets": {"red": asset("B04", "red"), "scl": asset("SCL", "scl")},
        }
    )


@pytest.mark.parametrize(
    ("props", "raster", "expected"),
    [
        ({"s2:processing_baseline": "04.00"}, None, -1000.0),  # Planetary Computer
        ({"s2:processing_baseline": "03.01"}, None, None),  # before 25 January 2022
        ({}, {"scale": 0.0001, "offset": -0.1}, -1000.0),  # Copernicus Data Space, E84 C1
        ({}, {"scale": 0.0001, "offset": 0}, None),
        ({"s2:processing_baseline": "05.09", "earthsearch:boa_offset_applied": True},
         {"scale": 0.0001, "offset": -0.1}, None),  # provider already harmonised the DN
    ],
)  # fmt: skip
def test_sentinel2_dn_offsets_from_the_item(
    props: dict[str, object], raster: dict[str, object] | None, expected: float | None
) -> None:
    from sitewatch.imagery.scene import DN_OFFSETS

    scene = scene_from_item(_s2_item(props, raster))  # type: ignore[arg-type]
    offsets = scene.properties.get(DN_OFFSETS)
    if expected is None:
        assert offsets is None
    else:
        assert offsets == {"red": pytest.approx(expected)}  # never the SCL class layer


def test_landsat_offsets_are_left_alone() -> None:
    """Landsat collection 2 has one scale and offset across its archive: nothing to harmonise."""
    from sitewatch.imagery.scene import DN_OFFSETS

    item = _s2_item({"platform": "landsat-8"}, {"scale": 2.75e-05, "offset": -0.2})
    item.collection_id = "landsat-c2-l2"  # type: ignore[attr-defined]
    scene = scene_from_item(item)  # type: ignore[arg-type]
    assert DN_OFFSETS not in scene.properties
    assert reflectance_of(scene) == (2.75e-05, -0.2)  # what reflectance the DN are, though


def test_reflectance_scale_of_sentinel2_and_of_undeclared_items() -> None:
    s2 = scene_from_item(_s2_item({"s2:processing_baseline": "04.00"}))  # type: ignore[arg-type]
    assert reflectance_of(s2) == (1e-4, 0.0)  # after the -1000 DN harmonisation
    other = _s2_item({"platform": "naip"})
    other.collection_id = "naip"  # type: ignore[attr-defined]
    assert reflectance_of(scene_from_item(other)) is None  # type: ignore[arg-type]
