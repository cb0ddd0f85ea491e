"""Change detection throughput: Mpx/s of every method, in memory and chunked (dask), against a
straightforward NumPy implementation of the same method on the same pair, and peak memory.

    .venv/bin/python bench/change.py             # 4096 x 4096, 5 bands, uint16
    .venv/bin/python bench/change.py --size 2048
    .venv/bin/python bench/change.py --full [--method irmad]   # a 10980 x 10980 x 4 tile pair
    .venv/bin/python bench/change.py --cli [--workdir DIR]     # the same through the CLI
    .venv/bin/python bench/change.py --cli --model             # ... with a learned model
    .venv/bin/python bench/change.py --model-tiles --size 2048 # the model's tiled inference

The NumPy peers (``bench/_change_peers.py``) write each method out on whole arrays (z-scores,
IR-MAD from ``np.cov`` and ``eigh``, invariant pixels and major-axis regression, Celik's
neighbourhood PCA and k-means, log ratios, index differences). The run asserts that every peer's
magnitude equals the library's, that the library's threshold applied to it gives the library's
mask exactly, and that the chunked path gives the in-memory mask. The ``--full`` run builds the
tile pair lazily (dask random blocks) so that only the method's own memory is measured; its peak
RSS must stay under 4 GB. The ``--cli`` run writes such a pair as two GeoTIFFs (2 GB of disk)
and runs ``sitewatch change detect`` on them, reading, writing the COG and the polygons included;
its peer is a process that only reads the two files with rasterio (the floor of any tool that
holds both images in memory), and its peak RSS must stay under 4 GB too. With ``--model`` the
CLI runs a Siamese U-Net of the default architecture instead of CVA (seeded, untrained weights,
its output bias at a 1 % change prior, without the 8-fold test-time augmentation of trained
models, which multiplies the network's time by 8 and nothing else): the memory of inference
does not depend on what the weights learnt.
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _change_peers import peer_change
from _common import peak_rss_mb, print_table, timed
from sitewatch.analysis.change import ChangeConfig, detect_change

BANDS = ("B02", "B03", "B04", "B08", "B11")
METHODS = ("cva", "irmad", "pca_kmeans", "log_ratio", "ndvi", "ndbi", "bsi")
IRMAD_ITER = 10


def make_pair(size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = len(BANDS)
    small = rng.normal(size=(n, size // 8, size // 8)).astype(np.float32)
    base = np.stack([ndi.zoom(b, 8, order=1) for b in small])[:, :size, :size]
    levels = np.array([900, 1000, 900, 2500, 1800], dtype=np.float32)[:, None, None]
    before = levels + 300 * base + 20 * rng.standard_normal((n, size, size), dtype=np.float32)
    after = 1.2 * before + 100 + 20 * rng.standard_normal((n, size, size), dtype=np.float32)
    for _ in range(200):
        y, x = rng.integers(0, size - 40, 2)
        after[:, y : y + 30, x : x + 30] += rng.uniform(300, 1200, (n, 1, 1)).astype(np.float32)
    return before.astype(np.uint16), after.astype(np.uint16)


def run(size: int, full: bool, full_method: str = "cva") -> None:
    rows = []
    if not full:
        before, after = make_pair(size)
        mpx = size * size / 1e6
        for method in METHODS:
            cfg = ChangeConfig(method=method, irmad_max_iter=IRMAD_ITER)
            t_mem, mem = timed(partial(detect_change, before, after, bands=BANDS, config=cfg))
            t_chk, chk = timed(
                partial(detect_change, before, after, bands=BANDS, config=cfg, chunks=1024)
            )
            assert np.array_equal(mem.mask, chk.mask), f"{method}: chunked mask differs"
            t_ref, (ref, t_peer) = timed(
                partial(peer_change, before, after, method, BANDS, IRMAD_ITER)
            )
            # the magnitudes agree to float32 rounding, and the library's threshold applied to
            # the peer's magnitude gives the library's mask exactly; with its own exact-median
            # threshold the peer's mask differs only by the histogram's resolution of the median
            scale = float(np.nanmax(np.abs(mem.magnitude)))
            np.testing.assert_allclose(ref, mem.magnitude, rtol=1e-3, atol=1e-4 * scale)
            assert np.array_equal(ref > mem.threshold, mem.mask), f"{method}: mask differs"
            differ = int(((ref > t_peer) != mem.mask).sum())
            rows.append((
                method, mem.threshold_method, f"{mem.threshold:.5g}", f"{t_peer:.5g}",
                int(mem.mask.sum()), differ, round(mpx / t_mem, 2), round(mpx / t_chk, 2),
                round(mpx / t_ref, 2), round(t_ref / t_mem, 2), round(t_ref / t_chk, 2),
            ))  # fmt: skip
        print_table(
            f"change detection, {size} x {size} x {len(BANDS)} bands uint16 (Mpx/s; masks "
            "identical to the NumPy peer's)",
            [
                "method",
                "threshold",
                "value",
                "peer's threshold",
                "changed px",
                "px the peer's own threshold flips",
                "in-memory",
                "chunked (dask, 1024 px)",
                "NumPy peer",
                "in-memory / peer speed",
                "chunked / peer speed",
            ],
            rows,
        )
        tracemalloc.start()
        detect_change(before, after, bands=BANDS, chunks=1024)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(
            f"\ncva chunked: tracemalloc peak {peak / 1e6:.0f} MB; process peak RSS {peak_rss_mb():.0f} MB"
        )
        return
    import dask.array as da

    n = 10980
    chunk = 1024

    def lazy(seed: int) -> da.Array:
        rs = da.random.RandomState(seed)  # type: ignore[no-untyped-call]
        tile: da.Array = rs.normal(1500, 300, size=(4, n, n), chunks=(4, chunk, chunk))
        return tile.astype(np.uint16)  # type: ignore[no-untyped-call,no-any-return]

    tile_before, tile_after = lazy(1), lazy(2)
    t0 = time.perf_counter()
    cfg = ChangeConfig(method=full_method)
    res = detect_change(tile_before, tile_after, bands=BANDS[:4], config=cfg)
    dt = time.perf_counter() - t0
    print(f"full tile {n} x {n} x 4 {full_method} (chunked, lazily generated input): {dt:.1f} s, "
          f"{n * n / 1e6 / dt:.2f} Mpx/s, {res.changed_pixels} changed px, peak RSS {peak_rss_mb():.0f} MB")  # fmt: skip
    assert peak_rss_mb() < 4096, "over the 4 GB budget"


_CHILD_PEAK = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)
"""Runs a command as its only child and prints that child's peak RSS (KiB)."""

_READ_BOTH = (
    "import sys, rasterio\n"
    "keep = []\n"
    "for f in sys.argv[1:]:\n"
    "    with rasterio.open(f) as ds: keep.append(ds.read())\n"
)


def _child_peak(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of ``cmd`` run alone in a child process."""
    import subprocess

    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", _CHILD_PEAK, *cmd], check=True, capture_output=True, text=True
    )
    return time.perf_counter() - t0, int(out.stdout.split()[-1]) / 1024.0


def _write_tile_pair(folder: Path, n: int = 10980) -> tuple[Path, Path]:
    """A 4-band uint16 tile pair with a changed block every 700 px, written a strip at a time."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    profile: dict[str, object] = {
        "driver": "GTiff", "width": n, "height": n, "count": 4, "dtype": "uint16",
        "crs": "EPSG:32652", "transform": from_origin(500_000, 4_200_000, 10, 10),
        "tiled": True, "blockxsize": 512, "blockysize": 512,
    }  # fmt: skip
    paths = folder / "before.tif", folder / "after.tif"
    rng = np.random.default_rng(0)
    strip = 1098
    with rasterio.open(paths[0], "w", **profile) as b, rasterio.open(paths[1], "w", **profile) as a:
        for i, name in enumerate(BANDS[:4]):
            b.set_band_description(i + 1, name)
            a.set_band_description(i + 1, name)
        for r in range(0, n, strip):
            rows = min(strip, n - r)
            base = rng.normal(1500, 150, (4, rows, n)).astype(np.float32)
            later = base + rng.normal(0, 40, base.shape).astype(np.float32)
            for c in range(0, n - 200, 700):
                later[:, 300:340, c : c + 50] += 900  # 40 x 50 px in each strip
            window = Window(0, r, n, rows)
            b.write(np.clip(base, 0, 65535).astype(np.uint16), window=window)
            a.write(np.clip(later, 0, 65535).astype(np.uint16), window=window)
    return paths


def _write_model(folder: Path) -> Path:
    """A seeded, untrained model of the default architecture for the tile's four bands."""
    import torch

    from sitewatch.analysis.models.changemodel import ChangeModel, ModelMeta

    torch.manual_seed(0)
    model = ChangeModel(ModelMeta(bands=BANDS[:4], tta=False))
    model.net.start_at_prior(0.01)
    path = folder / "model.pt"
    model.save(path)
    return path


def run_cli(workdir: Path | None, with_model: bool = False) -> None:
    """``sitewatch change detect`` on a written tile pair against reading the pair alone."""
    import json
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="sw-tile-", dir=workdir))
    try:
        t0 = time.perf_counter()
        before, after = _write_tile_pair(folder)
        print(f"wrote the tile pair in {time.perf_counter() - t0:.0f} s ({folder})")
        t_read, peak_read = _child_peak([sys.executable, "-c", _READ_BOTH, str(before), str(after)])
        cli = str(Path(sys.executable).with_name("sitewatch"))
        out = folder / "change.tif"
        how = ["--model", str(_write_model(folder))] if with_model else []
        t_cli, peak_cli = _child_peak([cli, "-q", "change", "detect", str(before), str(after),
                                       "-o", str(out), *how, "--json"])  # fmt: skip
        n = 10980 * 10980 / 1e6
        polygons = len(json.loads(out.with_suffix(".geojson").read_text())["features"])
        what = "learned model, untrained weights, no TTA" if with_model else "cva, chunked"
        print_table(
            f"sitewatch change detect on a 10980 x 10980 x 4 uint16 tile pair ({what}; "
            f"{polygons} polygons)",
            ["run", "s", "Mpx/s", "peak RSS MB", "x the read-only peer"],
            [
                ["rasterio: read both files (peer)", t_read, n / t_read, peak_read, 1.0],
                ["sitewatch change detect", t_cli, n / t_cli, peak_cli, peak_cli / peak_read],
            ],
        )
        assert peak_cli < 4096, f"change detect peaked at {peak_cli:.0f} MB: over the 4 GB budget"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _peer_logits(model: Any, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The peer: the same tiles and blending as ``ChangeModel.logits``, written plainly, the
    network's weights and activations in PyTorch's default (N, C, H, W) layout."""
    import torch

    from sitewatch.analysis.models.changemodel import _starts, _taper

    size, overlap = model.meta.tile, model.meta.overlap
    h, w = a.shape[1:]
    acc = np.zeros((h, w), dtype=np.float32)
    weight = np.zeros((h, w), dtype=np.float32)
    taper = np.outer(_taper(size, overlap // 2), _taper(size, overlap // 2))
    model.net.eval()
    with torch.inference_mode():
        for y0 in _starts(h, size, size - overlap):
            for x0 in _starts(w, size, size - overlap):
                win = np.s_[y0 : y0 + size, x0 : x0 + size]
                ta = torch.from_numpy(np.ascontiguousarray(a[(slice(None), *win)][None]))
                tb = torch.from_numpy(np.ascontiguousarray(b[(slice(None), *win)][None]))
                acc[win] += model.net(ta, tb)[0, 0].numpy() * taper
                weight[win] += taper
    return acc / weight


def run_model_tiles(size: int, threads: int) -> None:
    """``ChangeModel.logits`` (channels-last weights) against the plain NCHW loop, no TTA."""
    import torch

    from sitewatch.analysis.models.changemodel import ChangeModel, ModelMeta

    torch.set_num_threads(threads)
    before, after = make_pair(size)
    rows = []
    for tile in (256, 384, 512):
        torch.manual_seed(0)
        model = ChangeModel(ModelMeta(bands=BANDS[:4], tile=tile, overlap=64))
        a, b = (model.prepare(x[:4], BANDS[:4]) for x in (before, after))
        t_lib, got = timed(partial(model.logits, a, b))
        t_peer, ref = timed(partial(_peer_logits, model, a, b))
        diff = float(np.abs(got - ref).max())
        assert diff < 1e-3, f"tile {tile}: logits differ from the peer's by {diff}"
        mpx = size * size / 1e6
        rows.append([tile, mpx / t_lib, mpx / t_peer, t_peer / t_lib, f"{diff:.1e}"])
    print_table(
        f"learned model inference, {size} x {size}, default architecture, untrained seeded "
        f"weights, tiles overlapping by 64 px, no TTA, {threads} thread(s) (Mpx/s)",
        ["tile px", "ChangeModel.logits", "plain NCHW loop (peer)", "x the peer", "max |diff|"],
        rows,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--full", action="store_true", help="a 10980 x 10980 tile pair, chunked")
    p.add_argument("--method", default="cva", choices=METHODS[:5], help="method of the --full run")
    p.add_argument(
        "--cli", action="store_true", help="the tile pair through sitewatch change detect"
    )
    p.add_argument("--workdir", type=Path, default=None, help="where --cli writes its 2 GB pair")
    p.add_argument(
        "--model", action="store_true", help="with --cli: a learned model rather than CVA"
    )
    p.add_argument(
        "--model-tiles",
        action="store_true",
        help="the learned model's tiled inference on a --size pair against a plain NCHW loop",
    )
    p.add_argument("--threads", type=int, default=2, help="torch threads of --model-tiles")
    args = p.parse_args()
    if args.model_tiles:
        run_model_tiles(args.size, args.threads)
    elif args.cli:
        run_cli(args.workdir, args.model)
    else:
        run(args.size, args.full, args.method)


if __name__ == "__main__":
    main()
