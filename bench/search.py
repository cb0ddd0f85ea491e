"""Broad-area search speed: km2/s at 10 m GSD, against a per-tile Python loop (same features).

The image is a mosaic of real NAIP imagery (10 dates x 8 flips/rotations, stretched to 8 bits,
cropped square and laid edge to edge) repeated to ``--size`` pixels square and written as a tiled, compressed GeoTIFF with 10 m pixels
in /tmp. The search (examples -> model -> every block scored on dask local threads -> NMS) is
timed end to end. The peer computes the same descriptors tile by tile (one read and one
feature computation per tile, no sharing between overlapping tiles) on one block of tiles; both
are checked to give equal features, and the peer's rate is scaled to km2/s by the area a tile
adds to the search (stride^2 pixels).

    .venv/bin/python bench/search.py [--size 8192] [--threads 2] [--site-features]
        [--backbone resnet18.pth] [--no-spectral]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from pyproj import Transformer
from rasterio.crs import CRS

sys.path.insert(0, str(Path(__file__).parent))
from _common import peak_rss_mb, print_table
from sitewatch.search._reference import tile_features
from sitewatch.search.evaluate import FAMILIES, build_background
from sitewatch.search.features import block_features, estimate_scale, read_block
from sitewatch.search.run import SearchParams, run_search
from sitewatch.search.tiles import Block


def _image(shared: Path, size: int, out: Path) -> Path:
    mosaic, boxes = build_background(shared, FAMILIES["naip"])
    # the pieces cropped to one square and laid edge to edge (no nodata gutters: every pixel of
    # the benchmark image is searched)
    side = min(min(h, w) for _, _, h, w in boxes)
    n = len(boxes)
    cols = max(1, round(n**0.5))
    rows = -(-n // cols)
    bg = np.ones((mosaic.shape[0], rows * side, cols * side), dtype=np.uint8)
    for i, (r0, c0, _, _) in enumerate(boxes):
        r, c = divmod(i, cols)
        bg[:, r * side : (r + 1) * side, c * side : (c + 1) * side] = mosaic[
            :, r0 : r0 + side, c0 : c0 + side
        ]
    reps = (-(-size // bg.shape[1]), -(-size // bg.shape[2]))
    crs = CRS.from_epsg(32652)
    with rasterio.open(
        out,
        "w",
        driver="GTiff",
        width=size,
        height=size,
        count=4,
        dtype="uint8",
        crs=crs,
        transform=Affine(10, 0, 300_000, 0, -10, 4_400_000),
        nodata=0,
        tiled=True,
        blockxsize=512,
        blockysize=512,
        compress="deflate",
        photometric="MINISBLACK",
    ) as dst:
        for r0 in range(0, size, 2048):
            h = min(2048, size - r0)
            rows = np.arange(r0, r0 + h) % bg.shape[1]
            cols = np.arange(size) % bg.shape[2]
            block = bg[:, rows][:, :, cols]
            block[block == 0] = 1
            dst.write(block, window=rasterio.windows.Window(0, r0, size, h))
    del reps
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=8192, help="image side in pixels (10 m)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--peer-tiles", type=int, default=24, help="peer block side in tiles")
    ap.add_argument("--tile", type=int, default=32, help="tile side in pixels")
    ap.add_argument("--stride", type=int, default=16, help="tile stride in pixels")
    ap.add_argument("--site-features", action="store_true",
                    help="add the step and site-scale descriptors (SearchParams.site)")  # fmt: skip
    ap.add_argument("--backbone", help="ResNet weights file: add its embeddings (the ml extra; "
                    "only the cost matters here, so any weights of the architecture will do)")  # fmt: skip
    ap.add_argument(
        "--no-spectral",
        action="store_true",
        help="leave out the examples' spectral match (search/spectral.py)",
    )
    ap.add_argument("--data", default=os.environ.get("SITEWATCH_SHARED_DATA", "../shared/data"))
    args = ap.parse_args()
    import dask

    dask.config.set(num_workers=args.threads)
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        path = _image(Path(args.data), args.size, Path(tmp) / "bench.tif")
        params = SearchParams(tile=args.tile, stride=args.stride, top=100, site=args.site_features,
                              backbone=args.backbone, spectral=not args.no_spectral)  # fmt: skip
        with rasterio.open(path) as ds:
            to_ll = Transformer.from_crs(ds.crs, "EPSG:4326", always_xy=True)
            ex = [
                to_ll.transform(*(ds.transform * (c, r))) for r, c in [(1000, 1000), (3000, 2000)]
            ]
        t0 = time.perf_counter()
        result = run_search(path, ex, params=params)
        t_search = time.perf_counter() - t0
        area = result.area_km2
        # the peer: per-tile loop on one block, and the block computation of the same tiles
        cfg = params.features  # the peer has no embeddings: it checks the other descriptors
        n = args.peer_tiles
        block = Block(10, 10, n, n)
        bands = [1, 2, 3, 4]
        with rasterio.open(path) as ds:
            grid = cfg.grid(ds)
            scale = estimate_scale(ds, bands)
            t0 = time.perf_counter()
            raw, valid = read_block(ds, grid.block_window(block, cfg.halo), bands)
            feats, _ = block_features(raw, valid, (n, n), cfg, scale)
            t_block = time.perf_counter() - t0
            t0 = time.perf_counter()
            ref = np.array([
                tile_features(ds, grid, block.row0 + r, block.col0 + c, cfg, scale, bands)
                for r in range(n) for c in range(n)
            ])  # fmt: skip
            t_loop = time.perf_counter() - t0
        np.testing.assert_allclose(feats.reshape(n * n, -1), ref, rtol=1e-5, atol=1e-4)
        tile_area_km2 = grid.stride**2 * 100 / 1e6
        loop_km2_s = n * n * tile_area_km2 / t_loop
        block_km2_s = n * n * tile_area_km2 / t_block
    rows = [
        [
            "search run (dask threads, end to end)",
            f"{args.size}x{args.size}",
            area,
            t_search,
            area / t_search,
        ],
        [
            "block features, one thread",
            f"{n}x{n} tiles",
            n * n * tile_area_km2,
            t_block,
            block_km2_s,
        ],
        [
            "per-tile loop (peer), one thread",
            f"{n}x{n} tiles",
            n * n * tile_area_km2,
            t_loop,
            loop_km2_s,
        ],
    ]
    print_table(
        f"broad-area search, 10 m GSD, 4 bands, tile {args.tile} stride {args.stride}, "
        f"{args.threads} threads",
        ["what", "size", "km2", "s", "km2/s"], rows,
    )  # fmt: skip
    steps = ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items())
    print(f"\nsearch run steps: {steps}")
    if result.embedding is not None:
        e = result.embedding
        print(f"embeddings: {e.arch}, layer {e.layer} (stride {e.stride} px), {e.dims} columns")
    if result.spectral is not None:
        print(f"spectral match: {result.spectral.summary()}")
    print(f"features equal (block vs per-tile): yes ({n * n} tiles, {feats.shape[-1]} features)")
    print(f"ratio block / per-tile loop (same thread, same tiles): {t_loop / t_block:.1f}x")
    print(f"ratio search run / per-tile loop (km2/s): {area / t_search / loop_km2_s:.1f}x")
    print(
        f"target >= 200 km2/s: {'met' if area / t_search >= 200 else 'NOT met'} ({area / t_search:.0f})"
    )
    print(f"peak memory: {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
