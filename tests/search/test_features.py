from __future__ import annotations

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
            for r in range(block.n_rows):
                for c in range(block.n_cols):
                    ref = tile_features(
                        ds, grid, block.row0 + r, block.col0 + c, cfg, scale, [1, 2, 3, 4]
                    )
                    if ref is None:
                        assert not ok[r, c] and np.isnan(feats[r, c]).all()
                    else:
                        np.testing.assert_allclose(feats[r, c], ref, rtol=1e-5, atol=1e-5)
            assert ok.any()


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
