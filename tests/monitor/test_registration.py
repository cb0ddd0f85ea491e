"""The monitor moves a misregistered chip onto its predecessor before change detection."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from sitewatch.monitor.job import MISREGISTERED_PX, _registered

BANDS = ["red", "green", "blue", "nir"]


def _scene(seed: int = 0, size: int = 120) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.normal(size=(4, size, size)), (0, 2, 2)).astype(np.float32)


def test_a_shifted_chip_is_moved_back() -> None:
    before = _scene()
    after = ndimage.shift(before, (0, 1.2, -0.9), order=1, mode="nearest").astype(np.float32)
    moved, shift = _registered(before, after, BANDS)
    assert shift == pytest.approx(1.5, abs=0.1)
    inner = (slice(None), slice(5, -5), slice(5, -5))
    err_before = np.abs(after[inner] - before[inner]).mean()
    err_after = np.abs(moved[inner] - before[inner]).mean()
    assert err_after < 0.25 * err_before
    assert np.isnan(moved[:, -1, :]).all()  # rows shifted in from outside carry no data


def test_a_registered_chip_is_left_alone() -> None:
    before = _scene()
    after = ndimage.shift(before, (0, 0.2, 0.1), order=1, mode="nearest").astype(np.float32)
    moved, shift = _registered(before, after, BANDS)
    assert moved is after
    assert shift is not None and shift < MISREGISTERED_PX


def test_a_mostly_clouded_chip_is_not_measured() -> None:
    before = _scene()
    after = _scene(1)
    after[:, :90, :] = np.nan
    moved, shift = _registered(before, after, BANDS)
    assert moved is after and shift is None
