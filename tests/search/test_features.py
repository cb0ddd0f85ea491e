from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from sitewatch.errors import AnalysisError
from sitewatch.search._reference import tile_features
from sitewatch.search.features import (
    BandScale,
    FeatureConfig,
    block_features,
    estimate_scale,
    feature_names,
    read_block,
)
from sitewatch.search.run import _read_dem
from sitewatch.search.tiles import Block


def _assert_per_tile(ds, grid, block, cfg, scale, feats, ok) -> None:
    """Every tile of the block as computed alone by the per-tile reference."""
    for r in range(block.n_rows):
        for c in range(block.n_cols):
            ref = tile_features(ds, grid, block.row0 + r, block.col0 + c, cfg, scale, [1, 2, 3, 4])
            if ref is None:
                assert not ok[r, c] and np.isnan(feats[r, c]).all()
            else:
                np.testing.assert_allclose(feats[r, c], ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("context", "site"), [(True, False), (False, False), (True, True), (False, True)]
)
def test_block_features_equal_the_per_tile_computation(
    make_scene, context: bool, site: bool
) -> None:
    path, _, _ = make_scene(size=160, sites=2, nodata_corner=True)
    cfg = FeatureConfig(tile=16, stride=8, context=context, site=site)
    with rasterio.open(path) as ds:
        grid = cfg.grid(ds)
        scale = estimate_scale(ds, [1, 2, 3, 4])
        for block in [Block(0, 0, 7, 9), Block(5, 11, grid.n_rows - 5, grid.n_cols - 11)]:
            raw, valid = read_block(ds, grid.block_window(block, cfg.halo), [1, 2, 3, 4])
            feats, ok = block_features(raw, valid, (block.n_rows, block.n_cols), cfg, scale)
            n = len(feature_names(4, False, site))
            assert feats.shape == (block.n_rows, block.n_cols, n)
            _assert_per_tile(ds, grid, block, cfg, scale, feats, ok)
            assert ok.any()


@pytest.mark.parametrize(("tile", "stride"), [(4, 2), (32, 16)])
def test_small_and_large_cells_in_sub_blocks_equal_the_per_tile_computation(
    make_scene, monkeypatch: pytest.MonkeyPatch, tile: int, stride: int
) -> None:
    # stride 2 sums cells by strided slices, stride 16 by a reshape; sub-blocks of 3 tiles
    # (so a block splits unevenly) must give the per-tile values
    import sitewatch.search.features as features_mod

    monkeypatch.setattr(features_mod, "_SUB_PX", 3 * stride)
    path, _, _ = make_scene(size=160, sites=2, nodata_corner=True)
    cfg = FeatureConfig(tile=tile, stride=stride, context=True, site=True)
    with rasterio.open(path) as ds:
        grid = cfg.grid(ds)
        scale = estimate_scale(ds, [1, 2, 3, 4])
        e = max(0, (160 // 3) // stride - 3)  # straddles the nodata corner's edge
        edge = Block(e, e, min(7, grid.n_rows - e), min(8, grid.n_cols - e))
        last = Block(grid.n_rows - 7, grid.n_cols - 8, 7, 8)
        n_ok = []
        for block in [Block(0, 0, 3, 4), edge, last]:
            raw, valid = read_block(ds, grid.block_window(block, cfg.halo), [1, 2, 3, 4])
            feats, ok = block_features(raw, valid, (block.n_rows, block.n_cols), cfg, scale)
            _assert_per_tile(ds, grid, block, cfg, scale, feats, ok)
            n_ok.append(int(ok.sum()))
    assert n_ok[0] < 12 and 0 < n_ok[1] < edge.n_rows * edge.n_cols and n_ok[2] >= 55


def test_sub_blocks_with_a_dem_equal_one_block(
    make_scene, make_dem, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sitewatch.search.features as features_mod

    path, _, _ = make_scene(size=96, sites=1)
    dem = make_dem(size=96, gx=0.1)
    cfg = FeatureConfig(tile=8, stride=4)
    with rasterio.open(path) as ds:
        grid = cfg.grid(ds)
        scale = estimate_scale(ds, [1, 2, 3, 4])
        block = Block(0, 0, grid.n_rows, grid.n_cols)
        win = grid.block_window(block, cfg.halo)
        raw, valid = read_block(ds, win, [1, 2, 3, 4])
    z = _read_dem(str(dem), grid, win)
    whole, ok_whole = block_features(raw, valid, grid.shape, cfg, scale, z, (10.0, 10.0))
    monkeypatch.setattr(features_mod, "_SUB_PX", 20)  # 5 tiles: uneven sub-blocks
    split, ok_split = block_features(raw, valid, grid.shape, cfg, scale, z, (10.0, 10.0))
    assert grid.shape[0] > 10 and whole.shape[-1] == len(feature_names(4, True))
    np.testing.assert_array_equal(ok_split, ok_whole)
    np.testing.assert_allclose(split, whole, rtol=1e-12, atol=1e-12)


def test_bright_compound_stands_out(make_scene) -> None:
    path, _, pix = make_scene(size=128, sites=1)
    cfg = FeatureConfig(tile=16, stride=8)
    names = feature_names(4, False)
    with rasterio.open(path) as ds:
        grid = cfg.grid(ds)
        scale = estimate_scale(ds, [1, 2, 3, 4])
        block = Block(0, 0, grid.n_rows, grid.n_cols)
        raw, valid = read_block(ds, grid.block_window(block, cfg.halo), [1, 2, 3, 4])
    feats, _ = block_features(raw, valid, grid.shape, cfg, scale)
    r, c = pix[0]
    i, j = (r - 8) // 8, (c - 8) // 8  # the tile centred on the site
    bright = feats[..., names.index("bright_fraction")]
    assert bright[i, j] > 0.2 and np.median(bright) < 0.05
    edges = feats[..., names.index("edge_density")]
    assert edges[i, j] > np.percentile(edges, 90)


def test_terrain_context_from_a_plane(make_scene, make_dem) -> None:
    path, _, _ = make_scene(size=96, sites=0)
    dem = make_dem(size=96, gx=0.1)
    cfg = FeatureConfig(tile=16, stride=8)
    names = feature_names(4, True)
    with rasterio.open(path) as ds:
        grid = cfg.grid(ds)
        scale = estimate_scale(ds, [1, 2, 3, 4])
        block = Block(1, 1, 4, 4)
        win = grid.block_window(block, cfg.halo)
        raw, valid = read_block(ds, win, [1, 2, 3, 4])
    z = _read_dem(str(dem), grid, win)
    feats, _ = block_features(raw, valid, (4, 4), cfg, scale, z, (10.0, 10.0))
    slope = np.degrees(np.arctan(0.1))
    np.testing.assert_allclose(feats[..., names.index("slope_mean")], slope, atol=0.05)
    np.testing.assert_allclose(feats[..., names.index("slope_max")], slope, atol=0.05)
    # relief across a 16 px (160 m) tile on a 10% slope: 15 px * 10 m * 0.1
    np.testing.assert_allclose(feats[..., names.index("relief")], 15.0, atol=0.2)


def test_block_shape_is_checked() -> None:
    cfg = FeatureConfig(tile=16, stride=8)
    raw = np.zeros((4, 50, 50), dtype=np.uint8)
    with pytest.raises(AnalysisError, match="need"):
        block_features(raw, np.ones((50, 50), bool), (2, 2), cfg, BandScale((0,) * 4, (1,) * 4))


def test_steps_and_site_scale_descriptors(make_scene) -> None:
    path, _, pix = make_scene(size=128, sites=1)
    names = feature_names(4, False, site=True)
    assert "site_step_density" not in feature_names(4, False)
    out = {}
    for context in (True, False):
        cfg = FeatureConfig(tile=16, stride=8, context=context, site=True)
        with rasterio.open(path) as ds:
            grid = cfg.grid(ds)
            scale = estimate_scale(ds, [1, 2, 3, 4])
            block = Block(0, 0, grid.n_rows, grid.n_cols)
            raw, valid = read_block(ds, grid.block_window(block, cfg.halo), [1, 2, 3, 4])
        out[context], _ = block_features(raw, valid, grid.shape, cfg, scale)
    r, c = pix[0]
    i, j = (r - 8) // 8, (c - 8) // 8
    feats = out[True]
    # the compound's bright roofs next to their shadow and portal: steps the background lacks
    step = feats[..., names.index("step_density")]
    assert step[i - 1 : i + 2, j - 1 : j + 2].max() > 0.02 and np.median(step) == 0.0
    site_step = feats[..., names.index("site_step_density")]
    assert site_step[i, j] > 0 and np.median(site_step) == 0.0
    # the 48 px site window still sees the compound from a tile two cells away; the tile does not
    assert site_step[i + 2, j] > 0 and step[i + 3, j] == 0.0
    # without context the site window is the tile itself
    flat = out[False]
    for a, b in [("site_edge_density", "edge_density"), ("site_b1_std", "b1_std"),
                 ("site_bright_fraction", "bright_fraction")]:  # fmt: skip
        np.testing.assert_allclose(flat[..., names.index(a)], flat[..., names.index(b)])


def test_mask_reads_of_an_rgba_image_with_nodata_are_quiet_in_threads(tmp_path: Path) -> None:
    """4 uint8 bands written as RGBA with a nodata value make rasterio warn on every mask read;
    block tasks on several threads read masks at once, and the warning must not leak from one
    thread's suppression into another's read (the test suite turns warnings into errors)."""
    from concurrent.futures import ThreadPoolExecutor

    from affine import Affine
    from rasterio.windows import Window

    data = np.full((4, 64, 64), 7, dtype=np.uint8)
    data[:, :, :8] = 0
    path = tmp_path / "rgba.tif"
    with rasterio.open(path, "w", driver="GTiff", width=64, height=64, count=4, dtype="uint8",
                       crs="EPSG:32652", transform=Affine(10, 0, 0, 0, -10, 0), nodata=0) as dst:  # fmt: skip
        dst.write(data)

    def read(i: int) -> int:
        with rasterio.open(path) as ds:
            _, valid = read_block(ds, Window(i % 16, 0, 32, 32), [1, 2, 3, 4])
        return int(valid.sum())

    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(read, range(400)))
    assert got == [32 * 32 - max(0, 8 - i % 16) * 32 for i in range(400)]
