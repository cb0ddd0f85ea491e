from __future__ import annotations

import types

import numpy as np
import pytest
import rasterio
from affine import Affine

from sitewatch.errors import ImageryError, InputError
from sitewatch.search.tiles import TileGrid, build_vrt, default_tile, iter_tiles


def _grid(w: int = 100, h: int = 70, tile: int = 32, stride: int = 16) -> TileGrid:
    return TileGrid(w, h, Affine(10, 0, 1000, 0, -10, 5000), None, tile, stride)


def test_grid_covers_every_pixel_with_overlap() -> None:
    g = _grid()
    assert g.shape == (4, 6)  # ceil((70-32)/16)+1, ceil((100-32)/16)+1
    last = g.window(g.n_rows - 1, g.n_cols - 1)
    assert last.row_off + last.height >= 70 and last.col_off + last.width >= 100
    w1, w2 = g.window(0, 0), g.window(0, 1)
    assert w2.col_off - w1.col_off == 16 and w1.width == 32
    assert g.tile_transform(1, 2) == Affine(10, 0, 1000 + 32 * 10, 0, -10, 5000 - 16 * 10)


def test_tiles_containing_a_point() -> None:
    g = _grid()
    x, y = g.transform * (40.5, 20.5)  # pixel col 40, row 20
    found = g.tiles_containing(x, y)
    assert sorted(found) == [(0, 1), (0, 2), (1, 1), (1, 2)]
    for r, c in found:
        w = g.window(r, c)
        assert w.col_off <= 40 < w.col_off + w.width and w.row_off <= 20 < w.row_off + w.height


def test_grid_rejects_bad_stride() -> None:
    with pytest.raises(InputError, match="multiple of the stride"):
        _grid(tile=32, stride=12)


def test_blocks_partition_the_grid() -> None:
    g = _grid(w=500, h=300)
    seen = np.zeros(g.shape, dtype=int)
    for b in g.blocks(7):
        seen[b.row0 : b.row0 + b.n_rows, b.col0 : b.col0 + b.n_cols] += 1
    assert (seen == 1).all()


def test_iter_tiles_is_lazy_and_skips_nodata(make_scene) -> None:
    path, _, _ = make_scene(size=128, sites=1, nodata_corner=True)
    with rasterio.open(path) as ds:
        g = TileGrid.of(ds, 16, 8)
        gen = iter_tiles(ds, g, block_tiles=4)
        assert isinstance(gen, types.GeneratorType)
        tiles = list(gen)
        mask = ds.dataset_mask() > 0
    assert 0 < len(tiles) < g.n_rows * g.n_cols
    kept = {(t.row, t.col) for t in tiles}
    for r in range(g.n_rows):
        for c in range(g.n_cols):
            w = g.window(r, c)
            any_valid = mask[
                int(w.row_off) : int(w.row_off + w.height),
                int(w.col_off) : int(w.col_off + w.width),
            ].any()
            assert ((r, c) in kept) == bool(any_valid)


def test_build_vrt_mosaics_side_by_side(tmp_path, make_scene) -> None:
    a, _, _ = make_scene(size=64, sites=0, seed=1, name="a.tif")
    with rasterio.open(a) as ds:
        profile = ds.profile
        data = ds.read()
        t = ds.transform
    b = tmp_path / "b.tif"
    profile.update(transform=Affine(t.a, 0, t.c + 64 * t.a, 0, t.e, t.f))
    with rasterio.open(b, "w", **profile) as dst:
        dst.write(255 - data)
    vrt = build_vrt([a, b], tmp_path / "m.vrt")
    with rasterio.open(vrt) as ds:
        assert (ds.width, ds.height, ds.count) == (128, 64, 4)
        mosaic = ds.read()
    assert np.array_equal(mosaic[:, :, :64], data)
    assert np.array_equal(mosaic[:, :, 64:], 255 - data)


def test_build_vrt_refuses_mixed_grids(tmp_path, make_scene) -> None:
    a, _, _ = make_scene(size=32, sites=0, name="a.tif")
    b, _, _ = make_scene(size=32, sites=0, gsd=20.0, name="b.tif")
    with pytest.raises(ImageryError, match="reproject"):
        build_vrt([a, b], tmp_path / "m.vrt")
    same = tmp_path / "." / "a.tif"  # the same file under another spelling
    with pytest.raises(InputError, match="given twice"):
        build_vrt([a, same], tmp_path / "m.vrt")
    assert not (tmp_path / "m.vrt").exists()


@pytest.mark.parametrize(
    ("crs", "res", "want"),
    [("EPSG:32652", 10.0, 4), ("EPSG:32652", 5.0, 8), ("EPSG:32652", 0.5, 80),
     ("EPSG:32652", 3.0, 14), ("EPSG:32652", 30.0, 4), ("EPSG:4326", 4.5e-5, 8)],
)  # fmt: skip
def test_default_tile_is_about_40_m_on_the_ground(crs: str, res: float, want: int) -> None:
    from rasterio.io import MemoryFile

    x0, y0 = (300_000.0, 4_400_000.0) if crs != "EPSG:4326" else (126.0, 0.0)
    with MemoryFile() as mem, mem.open(
        driver="GTiff", width=64, height=64, count=1, dtype="uint8", crs=crs,
        transform=Affine(res, 0, x0, 0, -res, y0),
    ) as ds:  # fmt: skip
        assert default_tile(ds) == want
