from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS

from sitewatch.errors import InputError
from sitewatch.search._plant import plant_site, reflectance_gain
from sitewatch.search.evaluate import Family, build_background, evaluate


def test_planted_site_is_bright_compact_and_shadowed() -> None:
    rng = np.random.default_rng(0)
    img = np.full((4, 120, 120), 80.0) + rng.normal(0, 2, (4, 120, 120))
    before = img.copy()
    bands = ("red", "green", "blue", "nir")
    site = plant_site(img, 60, 60, 5.0, bands, reflectance_gain(img, bands), rng)
    diff = np.abs(img - before).max(axis=0)
    changed = diff > 5
    rows, cols = np.nonzero(changed)
    assert site.n_features >= 5
    assert changed.sum() > 50
    assert np.abs(rows - 60).max() <= site.radius_px and np.abs(cols - 60).max() <= site.radius_px
    assert (img[:3] - before[:3]).max() > 100  # concrete and roofs are much brighter than grass
    assert (img[0] - before[0]).min() < -20  # cast shadows darken the ground


def test_background_uses_flips_and_rotations(tmp_path: Path) -> None:
    d = tmp_path / "bg"
    d.mkdir()
    data = np.random.default_rng(1).integers(1, 200, (4, 40, 60)).astype(np.uint8)
    with rasterio.open(
        d / "a.tif",
        "w",
        driver="GTiff",
        width=60,
        height=40,
        count=4,
        dtype="uint8",
        crs=CRS.from_epsg(32614),
        transform=Affine(5, 0, 0, 0, -5, 0),
    ) as dst:
        dst.write(data)
    fam = Family("t", ("bg/*.tif",), ("red", "green", "blue", "nir"), 5.0, 16, 8, "test")
    mosaic, boxes = build_background(tmp_path, fam)
    assert len(boxes) == 8 and mosaic.dtype == np.uint8
    assert {(h, w) for _, _, h, w in boxes} == {(40, 60), (60, 40)}


def test_evaluate_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown background"):
        evaluate(tmp_path, "nope")
    with pytest.raises(InputError, match="0 < k < n_sites"):
        evaluate(tmp_path, "naip", n_sites=3, k=3)
    with pytest.raises(InputError, match="no background images"):
        evaluate(tmp_path, "naip")
