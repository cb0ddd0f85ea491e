"""The NumPy peers of ``bench/change.py`` agree with the library, method by method.

The benchmark's speed ratios are only meaningful if the peer computes the same thing; this keeps
the two from drifting apart (a change to a method without its peer fails here, not in a bench run).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from sitewatch.analysis.change import METHODS, ChangeConfig, detect_change

BANDS = ("B02", "B03", "B04", "B08", "B11")


@pytest.fixture(scope="module")
def peers() -> ModuleType:
    bench = str(Path(__file__).resolve().parents[2] / "bench")
    sys.path.insert(0, bench)
    try:
        return importlib.import_module("_change_peers")
    finally:
        sys.path.remove(bench)


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    levels = np.array([900, 1000, 900, 2500, 1800], dtype=np.float64)[:, None, None]
    texture = np.cumsum(np.cumsum(rng.normal(size=(5, 160, 160)), axis=1), axis=2)
    before = levels + 240 * texture / texture.std() + 15 * rng.standard_normal((5, 160, 160))
    after = 1.1 * before + 60 + 15 * rng.standard_normal((5, 160, 160))
    for y, x in ((20, 30), (90, 100), (120, 20)):
        after[:, y : y + 16, x : x + 16] += rng.uniform(300, 900, (5, 1, 1))
    return before.astype(np.uint16), after.astype(np.uint16)


@pytest.mark.parametrize("method", METHODS)
def test_peer_gives_the_library_output(
    peers: ModuleType, pair: tuple[np.ndarray, np.ndarray], method: str
) -> None:
    before, after = pair
    lib = detect_change(before, after, bands=BANDS, config=ChangeConfig(method=method))
    ref = peers.peer_magnitude(before, after, method, BANDS, 30)
    scale = float(np.nanmax(np.abs(lib.magnitude)))
    np.testing.assert_allclose(ref, lib.magnitude, rtol=1e-3, atol=1e-4 * scale)
    assert np.array_equal(ref > lib.threshold, lib.mask)
    # the planted squares are found by every method (not a vacuous agreement on empty masks)
    assert lib.mask[24:32, 34:42].mean() > 0.5
    assert lib.mask.mean() < 0.5


def test_exact_mad_threshold_is_close_to_the_histogram_one(
    peers: ModuleType, pair: tuple[np.ndarray, np.ndarray]
) -> None:
    before, after = pair
    lib = detect_change(before, after, bands=BANDS)
    exact = peers.exact_mad_threshold(lib.magnitude)
    span = float(lib.magnitude.max() - lib.magnitude.min())
    assert abs(exact - lib.threshold) < 5 * span / 4096
