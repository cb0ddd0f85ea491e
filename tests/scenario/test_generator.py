"""The scenario generator: shadows, change masks, determinism, STAC, truth, clouds, real DEMs."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from rasterio.features import rasterize
from shapely.geometry import shape

from sitewatch.analysis.mensuration import grid_azimuth
from sitewatch.analysis.sun import solar_position, sun_from_stac
from sitewatch.errors import InputError
from sitewatch.scenario import FeatureSpec, ScenarioResult, ScenarioSpec, demo_spec, make_scenario

# --- shadows ---------------------------------------------------------------------------------

SHADOW_CASES = [
    (h, az, el)
    for h in (4.0, 9.0, 18.0)
    for az, el in ((180.0, 30.0), (135.0, 45.0), (200.0, 60.0), (101.0, 38.0))
]


def _shadow_scene(tmp_path: Path, oversample: int = 2) -> ScenarioResult:
    """Flat uniform grass, one 10 m square box per date, sun set per date; no blur or noise."""
    heights = sorted({h for h, _, _ in SHADOW_CASES})
    feats = tuple(
        FeatureSpec(
            id=f"box-{h:g}",
            kind="building",
            x=0.0,
            y=0.0,
            length_m=10.0,
            width_m=10.0,
            azimuth_deg=0.0,
            heights_m=tuple(hh if hh == h else 0.0 for hh, _, _ in SHADOW_CASES),
            profile="box",
        )
        for h in heights
    )
    spec = ScenarioSpec(
        seed=1,
        sites=0,
        dates=tuple(datetime(2024, 1, 1 + i, 3, tzinfo=UTC) for i in range(len(SHADOW_CASES))),
        size_px=(192, 192),
        gsd=0.5,
        terrain="flat",
        landcover="grass",
        texture=0.0,
        noise=0.0,
        psf_sigma_px=0.0,
        shadow_oversample=oversample,
        sun_angles=tuple((az, el) for _, az, el in SHADOW_CASES),
        features=feats,
        margin_px=8,
    )
    return make_scenario(tmp_path / "shadows", spec)


def _measured_shadow_length(red: np.ndarray, footprint: np.ndarray, az: float, w: float) -> float:
    """Shadow length (m) from the image: shadowed area on the ground / width across the sun."""
    a = red.astype(float)
    ground = ~footprint
    lit = np.median(a[ground])
    dark = a[ground].min()
    assert lit - dark > 200, "no shadow in the image"
    frac = np.clip((lit - a) / (lit - dark), 0.0, 1.0)
    frac[footprint] = 0.0
    area = frac.sum() * 0.5 * 0.5
    across = w * (abs(math.sin(math.radians(az))) + abs(math.cos(math.radians(az))))
    return float(area / across)


def test_shadow_lengths_match_heights_within_half_a_pixel(tmp_path: Path) -> None:
    result = _shadow_scene(tmp_path)
    errors = []
    for (h, az, el), item_path in zip(SHADOW_CASES, result.items, strict=True):
        item = pystac.Item.from_file(str(item_path))
        sun = sun_from_stac(item)
        assert sun.azimuth == pytest.approx(az) and sun.elevation == pytest.approx(el)
        with rasterio.open(item_path.parent / "red.tif") as ds:
            red = ds.read(1)
            footprint = rasterize(
                [shape(f["geometry"]) for f in _features(result) if f["properties"]["heights_m"]
                 [item.datetime.strftime("%Y-%m-%d")] > 0],
                out_shape=red.shape, transform=ds.transform,
            ).astype(bool)  # fmt: skip
            b = ds.bounds  # the sun's azimuth is true; the box sits square on the UTM grid
            grid_az = grid_azimuth(ds.crs, (b.left + b.right) / 2, (b.bottom + b.top) / 2, az)
        assert footprint.sum() == 20 * 20  # the 10 m box on whole pixels
        measured = _measured_shadow_length(red, footprint, grid_az, 10.0)
        expected = h / math.tan(math.radians(el))
        errors.append((measured - expected) / 0.5)
    errors_px = np.abs(errors)
    assert errors_px.max() < 0.5, f"shadow length errors in pixels: {np.round(errors, 3)}"


def test_shadow_falls_away_from_the_sun(tmp_path: Path) -> None:
    result = _shadow_scene(tmp_path)
    # first case: sun due south at 30 deg: the shadow lies north of the box, none south of it
    with rasterio.open(result.items[0].parent / "red.tif") as ds:
        red = ds.read(1).astype(float)
    c = red.shape[0] // 2
    lit = np.median(red)
    north = red[c - 10 - 12 : c - 10, c - 8 : c + 8]
    south = red[c + 10 : c + 22, c - 8 : c + 8]
    assert north.mean() < 0.5 * lit
    assert south.mean() == pytest.approx(lit, rel=0.01)


def _features(result: ScenarioResult) -> list[dict]:
    return json.loads(result.features_utm_geojson.read_text())["features"]


# --- change masks ------------------------------------------------------------------------------


def test_change_masks_match_what_was_built(make_small: Callable[..., ScenarioResult]) -> None:
    dates = tuple(datetime(2021 + i, 5, 20, 2, tzinfo=UTC) for i in range(3))  # same day of year
    result = make_small(dates=dates, sun_angles=((150.0, 55.0),) * 3, noise=0.0)
    truth = result.truth
    feats = {f["id"]: f for f in _features(result)}
    assert len(truth["changes"]) == 2
    total_changed = 0
    for change, mask_path in zip(truth["changes"], result.change_masks, strict=True):
        with rasterio.open(mask_path) as ds:
            mask = ds.read(1).astype(bool)
            transform = ds.transform
        changed = [c["feature_id"] for c in change["features"]]
        # every change recorded agrees with the per-date heights of the features
        for c in change["features"]:
            props = feats[c["feature_id"]]["properties"]["heights_m"]
            assert props[change["from"]] == c["height_before_m"]
            assert props[change["to"]] == c["height_after_m"]
        unchanged = [
            fid for fid, f in feats.items()
            if f["properties"]["heights_m"][change["from"]]
            == f["properties"]["heights_m"][change["to"]]
        ]  # fmt: skip
        assert set(changed).isdisjoint(unchanged)
        expected = np.zeros(mask.shape, dtype=bool)
        if changed:
            expected = rasterize(
                [shape(feats[fid]["geometry"]) for fid in changed],
                out_shape=mask.shape, transform=transform,
            ).astype(bool)  # fmt: skip
        disagree = (mask != expected).sum()
        assert disagree <= 0.01 * max(expected.sum(), 1), (change, disagree)
        total_changed += int(mask.sum())
        # the imagery really changed there, and (noise-free, same sun) nowhere far from it
        a = _read_band(result, change["from"], "nir")
        b = _read_band(result, change["to"], "nir")
        diff = np.abs(a - b)
        if mask.any():
            assert diff[mask].mean() > 0.01
        from scipy import ndimage

        far = ~ndimage.binary_dilation(mask, iterations=40)
        assert diff[far].max() < 1e-3
    assert total_changed > 0


def _read_band(result: ScenarioResult, day: str, band: str) -> np.ndarray:
    item = next(i for i in result.truth["items"] if i["datetime"].startswith(day))
    with rasterio.open(result.outdir / Path(item["item"]).parent / f"{band}.tif") as ds:
        return ds.read(1).astype(float) / 10000.0


# --- determinism -------------------------------------------------------------------------------


def _digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_same_seed_gives_identical_bytes(make_small: Callable[..., ScenarioResult]) -> None:
    a = make_small("a", dates=2, clouds=True)
    b = make_small("b", dates=2, clouds=True)
    da, db = _digest(a.outdir), _digest(b.outdir)
    assert len(da) > 10
    assert da == db
    c = make_small("c", dates=2, clouds=True, seed=12)
    dc = _digest(c.outdir)
    assert len(dc) == len(da)
    assert not set(dc.values()) & {v for k, v in da.items() if k.endswith("red.tif")}


# --- STAC and truth ----------------------------------------------------------------------------


def test_stac_catalog_reads_like_real_imagery(make_small: Callable[..., ScenarioResult]) -> None:
    result = make_small(bands=("blue", "green", "red", "nir", "swir16"))
    cat = pystac.Catalog.from_file(str(result.catalog))
    items = sorted(cat.get_items(recursive=True), key=lambda i: i.datetime)
    assert len(items) == 3
    lon, lat = result.truth["center"]["lon"], result.truth["center"]["lat"]
    for item in items:
        props = item.properties
        raw = json.loads(Path(item.get_self_href()).read_text())["properties"]
        assert raw["proj:epsg"] == result.epsg  # pystac migrates it to proj:code on reading
        assert props.get("proj:code", f"EPSG:{props.get('proj:epsg')}") == f"EPSG:{result.epsg}"
        assert props["proj:shape"] == [320, 320]
        assert props["gsd"] == 1.0
        assert 0.0 <= props["eo:cloud_cover"] <= 100.0
        assert set(item.assets) == {"blue", "green", "red", "nir", "swir16"}
        # the sun recorded is the sun computed for the place and time (apparent elevation)
        sun = solar_position(lon, lat, item.datetime, refraction=True)
        assert props["view:sun_azimuth"] == pytest.approx(float(sun.azimuth), abs=1e-4)
        assert props["view:sun_elevation"] == pytest.approx(float(sun.elevation), abs=1e-4)
        for key, asset in item.assets.items():
            assert asset.extra_fields["eo:bands"][0]["common_name"] == key
            with rasterio.open(asset.get_absolute_href()) as ds:
                assert ds.crs.to_epsg() == result.epsg
                assert list(ds.transform)[:6] == pytest.approx(props["proj:transform"])
                assert ds.profile["tiled"] and ds.overviews(1)  # cloud-optimised layout
                band = ds.read(1)
                assert band.dtype == np.uint16 and band.min() >= 1
    text = (result.items[0]).read_text()
    assert "created" not in text and str(result.outdir) not in text
    # figures credit the producer of simulated pixels, not "provider not recorded"
    from sitewatch.imagery.scene import scene_credit, scene_from_item

    assert scene_credit(scene_from_item(items[0])) == "sitewatch scenario (synthetic imagery)"


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # affine, inside odc-stac
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # shapely.ops, inside odc-geo
def test_stac_items_load_with_odc_stac(make_small: Callable[..., ScenarioResult]) -> None:
    odc_stac = pytest.importorskip("odc.stac")
    result = make_small(dates=2)
    items = list(pystac.Catalog.from_file(str(result.catalog)).get_items(recursive=True))
    ds = odc_stac.load(items, bands=["red", "nir"], chunks=None)
    assert ds.sizes["time"] == 2
    assert ds["red"].shape[1:] == (320, 320)


def test_truth_geometries_in_both_crs(make_small: Callable[..., ScenarioResult]) -> None:
    result = make_small()
    ll = json.loads(result.features_geojson.read_text())["features"]
    utm = _features(result)
    assert [f["id"] for f in ll] == [f["id"] for f in utm]
    from sitewatch.geo import to_crs

    for a, b in zip(ll, utm, strict=True):
        back = to_crs(shape(a["geometry"]), "EPSG:4326", f"EPSG:{result.epsg}")
        assert (
            back.symmetric_difference(shape(b["geometry"])).area
            < 0.01 * shape(b["geometry"]).area + 0.5
        )
    kinds = {f["properties"]["kind"] for f in utm}
    assert {"ugf_portal", "berm", "drive_through_shelter", "revetment"} <= kinds
    berms = [f for f in utm if f["properties"]["kind"] == "berm"]
    assert all(f["properties"]["height_m"] > 0 for f in berms)
    with rasterio.open(result.dem) as ds:
        assert ds.crs.to_epsg() == result.epsg and ds.read(1).std() > 5.0  # mountains


def test_clouds_have_masks_and_cover(make_small: Callable[..., ScenarioResult]) -> None:
    result = make_small(dates=3, clouds=True, cloud_cover=0.3)
    covers = []
    for item_path in result.items:
        item = pystac.Item.from_file(str(item_path))
        assert "cloud_mask" in item.assets
        with rasterio.open(item.assets["cloud_mask"].get_absolute_href()) as ds:
            mask = ds.read(1)
        assert set(np.unique(mask)) <= {0, 1, 2}
        cover = item.properties["eo:cloud_cover"]
        assert cover == pytest.approx(100.0 * (mask == 1).mean(), abs=1e-3)
        covers.append(cover)
    assert covers[0] == 0.0 and max(covers) > 1.0


def test_demo_preset_tells_its_story(tmp_path: Path) -> None:
    spec = demo_spec()
    assert spec.n_dates == 6 and spec.sites == 1
    result = make_scenario(tmp_path / "demo", spec)
    feats = {f["id"]: f["properties"] for f in _features(result)}
    berm = feats["site-1-berm-1"]["heights_m"]
    assert list(berm.values()) == sorted(berm.values()) and max(berm.values()) == 18.0
    portal2 = feats["site-1-portal-2"]
    assert portal2["first_seen"] not in (None, result.truth["dates"][0])
    appeared = [
        f["feature_id"] for c in result.truth["changes"] for f in c["features"]
        if f["change"] == "appeared"
    ]  # fmt: skip
    assert "site-1-portal-2" in appeared
    assert result.seconds < 60.0  # ~6 s alone on this machine; generous for loaded CI


# --- real DEM and bad input ------------------------------------------------------------------


def test_real_srtm_dem(shared_data: Path, tmp_path: Path) -> None:
    hgt = shared_data / "srtm" / "N44W072.hgt"
    spec = ScenarioSpec(
        seed=2, sites=0, dates=1, dem=hgt, size_px=(256, 256), gsd=2.0, margin_px=8,
        features=(FeatureSpec("b", "building", 0.0, 0.0, 20.0, 12.0, 30.0, (8.0,)),),
    )  # fmt: skip
    result = make_scenario(tmp_path / "srtm", spec)
    with rasterio.open(result.dem) as ours, rasterio.open(hgt) as src:
        dem = ours.read(1)
        lon, lat = result.truth["center"]["lon"], result.truth["center"]["lat"]
        r, c = src.index(lon, lat)
        ref = float(src.read(1)[r, c])
        assert abs(float(dem[128, 128]) - ref) < 40.0  # 90 m SRTM cell vs 2 m resample
        assert dem.max() - dem.min() > 20.0
    assert 44.0 < lat < 45.0 and -72.0 < lon < -71.0


def test_bad_input_messages(tmp_path: Path, shared_data: Path) -> None:
    with pytest.raises(InputError, match="unknown band"):
        ScenarioSpec(bands=("red", "thermal"))
    with pytest.raises(InputError, match="sites fit"):
        make_scenario(tmp_path / "x", ScenarioSpec(sites=9, size_px=(256, 256), dates=1))
    with pytest.raises(InputError, match="not inside DEM"):
        make_scenario(
            tmp_path / "y",
            ScenarioSpec(dem=shared_data / "srtm" / "N44W072.hgt", center=(10.0, 10.0), dates=1),
        )
    with pytest.raises(InputError, match="above the horizon"):
        make_scenario(
            tmp_path / "z",
            ScenarioSpec(sites=0, size_px=(64, 64), dates=(datetime(2024, 1, 1, 15, tzinfo=UTC),)),
        )
