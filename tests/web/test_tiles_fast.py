"""Tiles drawn from chips decoded in memory match rio-tiler's; the decoded-chip cache is bounded."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import morecantile
import numpy as np
import pytest
from PIL import Image

from .conftest import SITE_LAT, SITE_LON, make_chip

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

TMS = morecantile.tms.get("WebMercatorQuad")


def _rgba(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGBA")).astype(int)


def _archive(tmp_path: Path, chips: dict[str, object]) -> list[str]:
    from sitewatch.imagery.archive import Archive

    archive = Archive(tmp_path / "archive")
    return [archive.add_chip(site, chip).item_id for site, chip in chips.items()]  # type: ignore[arg-type]


def _tiles(zooms: tuple[int, ...]) -> list[tuple[int, int, int]]:
    out = []
    for z in zooms:
        c = TMS.tile(SITE_LON, SITE_LAT, z)
        out += [(z, c.x + dx, c.y + dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)]
    return out


def _compare(renderer: object, site: str, item: str, zooms: tuple[int, ...]) -> int:
    """Draw each tile both ways; assert they agree; return how many tiles showed the chip."""
    from sitewatch.web.tiles import TileRenderer

    assert isinstance(renderer, TileRenderer)
    chip = renderer.resolve(site, item)
    style = renderer.style(chip)
    shown = 0
    for z, x, y in _tiles(zooms):
        fast = _rgba(renderer._draw(chip, style, z, x, y))
        slow = _rgba(renderer.draw_with_rio_tiler(chip, style, z, x, y))
        # the same footprint (transparent outside the chip), to a sliver of edge pixels
        assert (fast[..., 3] != slow[..., 3]).mean() <= 0.002, (z, x, y)
        both = (fast[..., 3] > 0) & (slow[..., 3] > 0)
        if both.sum() < 200:
            continue
        shown += 1
        diff = np.abs(fast[..., :3] - slow[..., :3])[both]
        assert diff.mean() < 2.0, (z, x, y, diff.mean())
        # nearest neighbour both ways: the same source pixel almost everywhere
        assert (diff == 0).all(axis=-1).mean() > 0.98, (z, x, y)
    return shown


def test_fast_tiles_match_rio_tiler(tmp_path: Path) -> None:
    from sitewatch.web.tiles import TileRenderer

    # a 2 m chip (no overviews) and a 1 m chip big enough for overviews, both random noise (the
    # hardest case: one pixel off shows)
    small = make_chip(1, seed=3, size=96, res=2.0)
    big = make_chip(2, seed=4, size=700, res=1.0)
    items = _archive(tmp_path, {"a": small, "b": big})
    r = TileRenderer(tmp_path / "archive", cache_size=0)
    assert _compare(r, "a", items[0], (16, 17, 18, 19)) >= 4
    assert _compare(r, "b", items[1], (14, 15, 16, 17, 18)) >= 8
    decoded = r.decoded.get(
        (str(r.resolve("b", items[1]).path), r.resolve("b", items[1]).sha256),
        r.resolve("b", items[1]).path,
        (3, 2, 1),
        r.style(r.resolve("b", items[1])).in_range,
    )
    assert decoded is not None and len(decoded.levels) >= 2  # overviews were used
    assert r.decoded.nbytes > 0
    r.close()


def test_grid_mapping_is_within_an_eighth_of_a_pixel(tmp_path: Path) -> None:
    from sitewatch.web.fasttiles import decode_chip, tile_pixel_coords

    items = _archive(tmp_path, {"a": make_chip(1, seed=3, size=96, res=2.0)})
    path = tmp_path / "archive" / "a" / items[0] / f"{items[0]}.tif"
    chip = decode_chip(path, (3, 2, 1), ((0.0, 4000.0),) * 3, max_bytes=2**30)
    assert chip is not None
    for z in (8, 12, 15, 18, 21):
        c = TMS.tile(SITE_LON, SITE_LAT, z)
        col, row = tile_pixel_coords(chip, z, c.x, c.y)
        ecol, erow = tile_pixel_coords(chip, z, c.x, c.y, exact=True)
        # in pixels of the level drawn at this zoom (the full resolution or a coarser overview)
        step = max(1.0, abs(ecol[0, 1] - ecol[0, 0]))
        err = np.hypot(col - ecol, row - erow).max() / step
        assert err < 0.125, (z, err)


def test_nodata_and_outside_are_transparent(tmp_path: Path) -> None:
    from sitewatch.web.tiles import TileRenderer, empty_tile

    chip = make_chip(1, seed=5, size=128, res=2.0)
    data = chip.data.copy()
    data[:, :40, :] = 0  # the chip's top third is nodata
    chip = dataclasses.replace(chip, data=data, nodata=0)
    items = _archive(tmp_path, {"a": chip})
    r = TileRenderer(tmp_path / "archive", cache_size=0)
    c = TMS.tile(SITE_LON, SITE_LAT, 17)
    png = r.tile("a", items[0], 17, c.x, c.y)
    img = _rgba(png)
    assert (img[..., 3] == 0).mean() > 0.2 and (img[..., 3] == 255).mean() > 0.2
    assert set(np.unique(img[..., 3])) <= {0, 255}
    assert (img[..., :3][img[..., 3] == 0] == 0).all()  # nothing drawn under transparent pixels
    assert _compare(r, "a", items[0], (16, 17, 18)) >= 3  # the same footprint as rio-tiler
    far = TMS.tile(10.0, 50.0, 17)
    assert r.tile("a", items[0], 17, far.x, far.y) == empty_tile()
    r.close()


def test_opaque_tiles_are_rgb_and_valid_png(tmp_path: Path) -> None:
    from sitewatch.web.tiles import TileRenderer

    items = _archive(tmp_path, {"a": make_chip(1, seed=6, size=400, res=2.0)})
    r = TileRenderer(tmp_path / "archive", cache_size=0)
    c = TMS.tile(SITE_LON, SITE_LAT, 19)  # well inside the chip
    inside = Image.open(io.BytesIO(r.tile("a", items[0], 19, c.x, c.y)))
    inside.load()
    assert inside.mode == "RGB" and inside.size == (256, 256)
    c = TMS.tile(SITE_LON, SITE_LAT, 14)  # the chip is a small part of it
    edge = Image.open(io.BytesIO(r.tile("a", items[0], 14, c.x, c.y)))
    edge.load()
    assert edge.mode == "RGBA"
    r.close()


def test_decoded_chips_are_bounded_in_memory(tmp_path: Path) -> None:
    from sitewatch.web.fasttiles import ChipCache

    chips = {f"s{i}": make_chip(1, seed=i, size=200, res=2.0) for i in range(5)}
    items = _archive(tmp_path, chips)
    paths = [tmp_path / "archive" / s / i / f"{i}.tif" for s, i in zip(chips, items, strict=True)]
    one = 200 * 200 * 4  # RGBA bytes of a 200x200 chip (no overviews at this size)
    cache = ChipCache(max_bytes=4 * one + one // 2)  # room for 4 chips; a chip is under a quarter
    ranges = ((0.0, 4000.0),) * 3
    for i, path in enumerate(paths):
        assert cache.get((str(path), str(i)), path, (3, 2, 1), ranges) is not None
        assert cache.nbytes <= cache.max_bytes
    assert cache.nbytes == 4 * one  # the oldest was let go
    # the newest are still held (the same object back), the oldest decoded anew
    first = cache.get((str(paths[4]), "4"), paths[4], (3, 2, 1), ranges)
    assert cache.get((str(paths[4]), "4"), paths[4], (3, 2, 1), ranges) is first
    small = ChipCache(max_bytes=3 * one)  # a chip is over a quarter of it: left to rio-tiler
    assert small.get((str(paths[0]), "0"), paths[0], (3, 2, 1), ranges) is None
    assert small.nbytes == 0


def test_rio_tiler_draws_what_the_cache_cannot_hold(tmp_path: Path) -> None:
    from sitewatch.web.tiles import TileRenderer

    items = _archive(tmp_path, {"a": make_chip(1, seed=7, size=200, res=2.0)})
    c = TMS.tile(SITE_LON, SITE_LAT, 17)
    for mb in (0.0, 0.1):  # no cache at all; a cache a quarter of which is under the chip
        r = TileRenderer(tmp_path / "archive", cache_size=0, chip_cache_mb=mb)
        chip = r.resolve("a", items[0])
        png = r.tile("a", items[0], c.z, c.x, c.y)
        assert png == r.draw_with_rio_tiler(chip, r.style(chip), c.z, c.x, c.y)
        assert r.decoded.nbytes == 0
        r.close()
