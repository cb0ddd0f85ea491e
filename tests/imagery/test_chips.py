"""Chips on the site-local UTM grid: values, masks, overviews, clouds, bad input."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.vrt import WarpedVRT

from sitewatch.errors import ImageryError, InputError
from sitewatch.imagery import ChipGrid, LocalSource, Scene, SceneReader, cloud_score, read_chip
from sitewatch.imagery.chips import _overview_level

from .conftest import DEFAULT_CENTRE, RasterFactory

BANDS = ("blue", "green", "red", "nir")


def _scene(path: Path, bands: tuple[str, ...] = BANDS, **kw: object) -> Scene:
    with rasterio.open(path) as ds:
        from rasterio.warp import transform_bounds

        bounds = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
    return Scene(
        id=path.stem,
        sensor="synthetic",
        datetime=datetime(2020, 1, 1, tzinfo=UTC),
        assets=dict.fromkeys(bands, str(path)),
        band_index={b: i for i, b in enumerate(bands, start=1)},
        bounds=bounds,
        **kw,  # type: ignore[arg-type]
    )


def test_grid_snaps_to_resolution_in_local_utm() -> None:
    g = ChipGrid.around(15.0, 45.0, 1000.0, 10.0)
    assert g.crs == "EPSG:32633"
    assert g.transform.c % 10 == 0 and g.transform.f % 10 == 0
    assert 100 <= g.width <= 101 and 100 <= g.height <= 101
    south = ChipGrid.around(-70.0, -33.0, 500, 5)
    assert south.crs == "EPSG:32719"
    with pytest.raises(InputError):
        ChipGrid.around(15.0, 45.0, -1, 10)
    with pytest.raises(InputError):
        ChipGrid.around(15.0, 45.0, 1000, 0)


@pytest.mark.parametrize("crs", ["EPSG:32633", "EPSG:4326", "EPSG:3857"])
@pytest.mark.parametrize(
    ("dtype", "nodata"), [("uint8", None), ("uint16", 0), ("float32", -9999.0)]
)
def test_chip_matches_a_direct_warp(
    make_raster: RasterFactory, crs: str, dtype: str, nodata: float | None
) -> None:
    r = make_raster(f"img-{crs[5:]}-{dtype}.tif", crs=crs, dtype=dtype, nodata=nodata)
    grid = ChipGrid.around(*DEFAULT_CENTRE, 1000.0, 10.0)
    with SceneReader(_scene(r.path)) as reader:
        chip = read_chip(reader, grid, ["red", "nir"], resampling="nearest")
    assert chip.data.shape == (2, grid.height, grid.width)
    assert chip.data.dtype == np.dtype(dtype)
    assert chip.bands == ("red", "nir")
    # the reference: GDAL's warp of the same file straight onto the grid
    with (
        rasterio.open(r.path) as ds,
        WarpedVRT(
            ds,
            crs=grid.crs,
            transform=grid.transform,
            width=grid.width,
            height=grid.height,
            resampling=rasterio.enums.Resampling.nearest,
        ) as vrt,
    ):
        expected = vrt.read([3, 4])
    ok = chip.valid
    assert ok.any()
    np.testing.assert_array_equal(chip.data[:, ok], expected[:, ok])
    if nodata is not None:
        corner = (expected == nodata).all(axis=0)
        assert corner.sum() > 100  # the generated nodata corner is in the chip ...
        assert not ok[corner].any()  # ... and masked
        assert (chip.data[:, ~ok] == nodata).all()


def test_sentinel2_dn_offsets_make_both_baselines_agree(
    tmp_path: Path, make_raster: RasterFactory
) -> None:
    """The same ground before and after processing baseline 04.00 (+1000 DN) gives one chip."""
    from sitewatch.imagery import Archive
    from sitewatch.imagery.scene import DN_OFFSETS

    rng = np.random.default_rng(0)
    data = rng.integers(300, 3000, size=(4, 64, 64)).astype("uint16")
    data[:, :4, :4] = 500  # dark water: 500 - 1000 would be negative reflectance
    old = make_raster("old.tif", data=data, size=64)
    shifted = data + 1000
    shifted[:, :4, :4] = 800  # the new baseline encodes reflectance -0.02 as 800
    new = make_raster("new.tif", data=shifted, size=64)
    grid = ChipGrid.around(*DEFAULT_CENTRE, 400, 10.0)
    offsets = dict.fromkeys(BANDS, -1000.0)
    with SceneReader(_scene(old.path)) as r:
        before = read_chip(r, grid, resampling="nearest", cloud_mask="none")
    with SceneReader(_scene(new.path, properties={DN_OFFSETS: offsets})) as r:
        after = read_chip(r, grid, resampling="nearest", cloud_mask="none")
    ok = before.valid & after.valid
    assert ok.sum() > 1000 and after.data.dtype == np.uint16
    dark = after.data[0] == 1  # clipped at 1, not 0: still a valid (dark) pixel
    np.testing.assert_array_equal(before.data[:, ok & ~dark], after.data[:, ok & ~dark])
    with SceneReader(_scene(new.path)) as r:  # without the offsets: 1000 DN brighter everywhere
        raw = read_chip(r, grid, resampling="nearest", cloud_mask="none")
    assert (raw.data[:, ok & ~dark].astype(int) - before.data[:, ok & ~dark] == 1000).all()
    # the archive keeps harmonised DN, says so, and does not shift them again when read back
    archive = Archive(tmp_path / "archive")
    s2 = dataclasses.replace(after.scene, sensor="sentinel-2b")
    stored = archive.add_chip("s", dataclasses.replace(after, scene=s2), source="test")
    item = json.loads(stored.path.with_suffix(".json").read_text())
    assert item["properties"]["sitewatch:dn_offsets_applied"] == offsets
    with rasterio.open(stored.path) as ds:
        np.testing.assert_array_equal(ds.read()[:, ok], after.data[:, ok])
    again = LocalSource(archive.root).scenes()
    assert [sc.sensor for sc in again] == ["sentinel-2b"]
    assert not any(DN_OFFSETS in sc.properties for sc in again)


def test_sensors_mix_in_reflectance_and_landsat_clouds_are_not_everywhere(
    make_raster: RasterFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """The same vegetated ground as Sentinel-2 DN (x 10000) and as Landsat collection 2 level-2
    DN ((r + 0.2) / 2.75e-5): one float cube holds one reflectance for both dates; and the
    Landsat DN, read as if x 10000, would make the bare ground a bright white cloud."""
    from sitewatch.imagery import stack_chips
    from sitewatch.imagery.scene import LANDSAT_C2_L2_REFLECTANCE, REFLECTANCE, S2_REFLECTANCE

    refl = np.array([0.12, 0.15, 0.18, 0.22])[:, None, None] * np.ones((4, 64, 64))  # bare soil
    refl[:, 20:30, 20:30] = np.array([0.03, 0.06, 0.04, 0.35])[:, None, None]  # a field
    s2 = make_raster("s2.tif", data=np.rint(refl * 1e4).astype("uint16"), size=64)
    ls = make_raster("ls.tif", data=np.rint((refl + 0.2) / 2.75e-5).astype("uint16"), size=64)
    grid = ChipGrid.around(*DEFAULT_CENTRE, 400, 10.0)
    chips = []
    for path, decl, day in ((s2.path, S2_REFLECTANCE, 1), (ls.path, LANDSAT_C2_L2_REFLECTANCE, 2)):
        scene = dataclasses.replace(
            _scene(path, properties={REFLECTANCE: decl}),
            datetime=datetime(2020, 1, day, tzinfo=UTC),
        )
        with SceneReader(scene) as r:
            chips.append(read_chip(r, grid, resampling="nearest"))
    assert chips[1].cloud_fraction == 0.0
    assert (cloud_score(chips[1].data, chips[1].bands) | ~chips[1].valid).mean() > 0.9
    cube = stack_chips(chips, dtype="float32")
    assert cube.attrs["units"] == "reflectance"
    a, b = cube.values[0], cube.values[1]
    ok = np.isfinite(a) & np.isfinite(b)
    assert ok.sum() > 1000
    np.testing.assert_allclose(a[ok], b[ok], atol=1e-4)
    assert np.nanmax(a[3]) == pytest.approx(0.35, abs=1e-4)
    undeclared = dataclasses.replace(
        chips[1], scene=dataclasses.replace(chips[1].scene, properties={})
    )
    with caplog.at_level("WARNING"):
        raw = stack_chips([chips[0], undeclared], dtype="float32")
    assert (
        raw.attrs["units"] == "dn"
        and "mixes scenes whose reflectance scale is known" in caplog.text
    )


def test_partial_and_outside_coverage(make_raster: RasterFactory) -> None:
    r = make_raster(size=64)
    scene = _scene(r.path)
    _w, s, e, n = r.lonlat_bounds
    with SceneReader(scene) as reader:
        edge = read_chip(reader, ChipGrid.around(e, (s + n) / 2, 400.0, 10.0))
        assert 0.3 < edge.coverage < 0.7
        with pytest.raises(ImageryError, match="does not cover"):
            read_chip(reader, ChipGrid.around(e + 1.0, n + 1.0, 400.0, 10.0))
        with pytest.raises(ImageryError, match="no band swir16"):
            read_chip(reader, ChipGrid.around(*DEFAULT_CENTRE, 400.0, 10.0), ["swir16"])


def test_overviews_used_when_coarser(make_raster: RasterFactory) -> None:
    r = make_raster(size=512, res=2.0)
    with rasterio.open(r.path) as ds:
        assert ds.overviews(1) == [2, 4]
        assert _overview_level(ds, 1, ChipGrid.around(*DEFAULT_CENTRE, 800, 2.0)) is None
        assert _overview_level(ds, 1, ChipGrid.around(*DEFAULT_CENTRE, 800, 4.0)) == 0
        assert _overview_level(ds, 1, ChipGrid.around(*DEFAULT_CENTRE, 800, 9.0)) == 1
    with SceneReader(_scene(r.path)) as reader:
        chip = read_chip(reader, ChipGrid.around(*DEFAULT_CENTRE, 800, 8.0), resampling="average")
        assert chip.coverage > 0.95
        assert ("" + r.path.as_posix(), 1) in {(k[0], k[1]) for k in reader._datasets}


def test_corrupt_and_truncated_files(tmp_path: Path, make_raster: RasterFactory) -> None:
    r = make_raster(size=256, cog=False)
    blob = r.path.read_bytes()
    truncated = tmp_path / "truncated.tif"
    truncated.write_bytes(blob[: len(blob) // 3])
    grid = ChipGrid.around(*DEFAULT_CENTRE, 1000.0, 10.0)
    with SceneReader(_scene(truncated)) as reader, pytest.raises(ImageryError, match="truncated"):
        read_chip(reader, grid)
    garbage = tmp_path / "garbage.tif"
    garbage.write_bytes(b"not a tiff at all" * 100)
    with SceneReader(_scene(r.path)) as reader:
        read_chip(reader, grid)  # the good one reads
    bad = _scene(r.path)
    bad = Scene(**{**bad.__dict__, "assets": dict.fromkeys(BANDS, str(garbage))})
    with SceneReader(bad) as reader, pytest.raises(ImageryError, match="cannot open"):
        read_chip(reader, grid)


def test_file_without_crs(make_raster: RasterFactory) -> None:
    r = make_raster("nocrs.tif", no_crs=True)
    scene = _scene(make_raster("ok.tif").path)
    scene = Scene(**{**scene.__dict__, "assets": dict.fromkeys(BANDS, str(r.path))})
    with SceneReader(scene) as reader, pytest.raises(ImageryError, match="no CRS"):
        read_chip(reader, ChipGrid.around(*DEFAULT_CENTRE, 400.0, 10.0))


def test_antimeridian_aoi(tmp_path: Path, make_raster: RasterFactory) -> None:
    centre = (179.999, -16.5)  # Fiji
    make_raster("m_1234567_ne_60_1_20200101.tif", crs="EPSG:32760", centre=centre, size=200)
    src = LocalSource(tmp_path)
    across = (179.99, -16.51, -179.99, -16.49)  # west > east
    scenes = src.search(across)
    assert len(scenes) == 1
    grid = ChipGrid.around(*centre, 1000.0, 10.0)
    w, _, e, _ = grid.lonlat_bbox()
    assert w > e  # the grid itself spans the antimeridian
    with src.open(scenes[0]) as reader:
        chip = read_chip(reader, grid)
    assert chip.coverage == 1.0
    assert chip.crs == "EPSG:32760"


def _qa_scene(tmp_path: Path, make_raster: RasterFactory, band: str, layer: np.ndarray) -> Scene:
    img = make_raster("img.tif", size=64)
    qa = make_raster(
        f"{band}.tif", count=1, dtype="uint16", size=64, data=layer[None].astype("uint16")
    )
    scene = _scene(img.path)
    return Scene(
        **{
            **scene.__dict__,
            "assets": {**scene.assets, band: str(qa.path)},
            "band_index": {**scene.band_index, band: 1},
        }
    )


def test_scl_cloud_mask(tmp_path: Path, make_raster: RasterFactory) -> None:
    layer = np.full((64, 64), 4)  # vegetation
    layer[:, :32] = 9  # high-probability cloud on the west half
    layer[:16, :] = 0  # no data on the top rows
    scene = _qa_scene(tmp_path, make_raster, "scl", layer)
    with SceneReader(scene) as reader:
        chip = read_chip(reader, ChipGrid.around(*DEFAULT_CENTRE, 500, 10.0))
    assert chip.cloud is not None
    west, east = chip.cloud[:, 10:20], chip.cloud[:, -20:-10]
    assert west[20:].all() and not east.any()
    assert not chip.valid[:5].any() and chip.valid[20:].all()
    assert 0.4 < (chip.cloud_fraction or 0) < 0.6


def test_landsat_qa_cloud_mask(tmp_path: Path, make_raster: RasterFactory) -> None:
    layer = np.full((64, 64), 1 << 6)  # clear
    layer[40:, :] = (1 << 3) | (1 << 1)  # cloud + dilated cloud in the south
    layer[:, :16] = 1  # fill
    scene = _qa_scene(tmp_path, make_raster, "qa_pixel", layer)
    with SceneReader(scene) as reader:
        chip = read_chip(reader, ChipGrid.around(*DEFAULT_CENTRE, 500, 10.0), cloud_mask="qa_pixel")
    assert chip.cloud is not None
    assert chip.cloud[-8:, 20:-5].all() and not chip.cloud[:10].any()
    assert not chip.valid[:, :5].any()


def test_cloud_score() -> None:
    data = np.zeros((4, 10, 10), dtype=np.uint16)
    data[:3] = 800  # dark, coloured ground
    data[2] = 500
    data[3] = 3000  # vegetated
    data[:4, :5, :5] = 6000  # bright, white, flat spectrum: cloud
    mask = cloud_score(data, BANDS)
    assert mask is not None
    assert mask[:5, :5].all() and mask.sum() == 25
    assert cloud_score(data[:2], ("nir", "red")) is None
