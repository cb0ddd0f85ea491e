from __future__ import annotations

import math
from pathlib import Path
from typing import Any

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


def test_recall_counts_a_tile_that_covers_the_site_and_reports_the_centre_rule() -> None:
    from types import SimpleNamespace

    from sitewatch.search._plant import PlantedSite
    from sitewatch.search.evaluate import _recall

    def site(row: int, col: int, half: int) -> PlantedSite:
        rr, cc = np.mgrid[row - half : row + half + 1, col - half : col + half + 1]
        return PlantedSite(float(row), float(col), half, 5, rr.ravel(), cc.ravel())

    # tiles of 8 px on a stride of 4: tile (r, c) spans rows 4r..4r+7, cols 4c..4c+7
    sites = [site(100, 100, 2), site(40, 40, 6), site(202, 202, 5), site(300, 40, 6)]

    def cand(row: int, col: int) -> Any:
        return SimpleNamespace(row=row, col=col, area_km2=1.0)

    # known example first (not counted), then: a tile holding site 1's centre, a tile beside
    # site 2 holding 16 of its 121 pixels (>= 10%) but not its centre, a tile holding 9 of
    # site 3's (< 10%), then background
    cands = [cand(24, 24), cand(9, 9), cand(51, 51), cand(76, 11)] + [cand(0, k) for k in range(20)]
    result: Any = SimpleNamespace(
        grid=SimpleNamespace(tile=8, stride=4), candidates=cands, area_km2=24.0
    )
    got, got_c = _recall(result, sites, 1, (8, 24))
    # budget at 8x: 3 km2 = the first three reviewed candidates; at 24x the first one. Held-out
    # sites are numbered from the first after the example: site 1 is 0, site 2 is 1
    assert got == {8: {0, 1}, 24: {0}} and got_c == {8: {0}, 24: {0}}


def test_recall_by_background_splits_the_pooled_sites_by_brightness() -> None:
    from sitewatch.search._plant import PlantedSite
    from sitewatch.search.evaluate import EvalReport, SeedResult, _brightness

    rep = EvalReport("landsat", "", 5, 1, (100, 500), 1.0)

    # two seeds of 4 held-out sites; the darkest half all found at 100x, the brightest half none
    def seed(n: int, lum: tuple[float, ...], at100: set[int], at500: set[int]) -> SeedResult:
        found = {100: len(at100), 500: len(at500)}
        hits = {100: frozenset(at100), 500: frozenset(at500)}
        return SeedResult(n, {}, found, 4, 1.0, 1.0, 1.0, {}, found, lum, hits)

    rep.seeds.append(seed(0, (60.0, 150.0, 70.0, 140.0), {0, 2}, {0}))
    rep.seeds.append(seed(1, (80.0, 90.0, 200.0, 130.0), {0, 1}, set()))
    parts = rep.by_background(2)
    assert [p["brightness"] for p in parts] == [[60.0, 90.0], [130.0, 200.0]]
    assert [p["sites"] for p in parts] == [4, 4]
    assert [p["recall"] for p in parts] == [{"100x": 1.0, "500x": 0.25}, {"100x": 0.0, "500x": 0.0}]
    assert rep.to_dict()["recall_by_background"] == rep.by_background(4)
    assert len(rep.by_background(4)) == 4 and len(rep.by_background(20)) == 8
    # the brightness of a site's ground: valid pixels only, all bands
    bg = np.zeros((2, 20, 20), np.uint8)
    bg[0, :, :10], bg[1, :, :10] = 100, 50  # left half valid, the rest nodata
    assert _brightness(bg, PlantedSite(10.0, 10.0, 3.0, 1)) == pytest.approx(75.0)


def test_recall_interval_is_the_wilson_interval_of_the_pooled_sites() -> None:
    from sitewatch.search.evaluate import EvalReport, SeedResult

    rep = EvalReport("landsat", "", 25, 5, (100, 500), 1000.0)
    for seed, (a, b) in enumerate([(16, 13), (14, 11), (20, 16)]):  # found at 100x, 500x of 20
        found = {100: a, 500: b}
        rep.seeds.append(SeedResult(seed, {}, found, 20, 1000.0, 10.0, 100.0, {}, found))
    ci = rep.recall_interval()
    z = 1.959963984540054
    for f, found in ((100, 50), (500, 40)):
        p, n = found / 60, 60
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        assert ci[f] == pytest.approx((centre - half, centre + half), abs=1e-9)
    assert ci[500] == pytest.approx((0.541, 0.773), abs=1e-3)  # 40 of 60: about +-0.12
    assert rep.to_dict()["recall_ci95"]["500x"] == [round(v, 4) for v in ci[500]]
    assert EvalReport("naip", "", 25, 5, (500,), 1.0).recall_interval() == {}


def test_search_eval_end_to_end_reports_recall_by_background(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sw: Any
) -> None:
    from sitewatch.search import evaluate as ev

    # a small background: a dark half (forest-like) and a bright half, mottled
    rng = np.random.default_rng(3)
    data = rng.integers(20, 60, (4, 160, 160)).astype(np.uint8)
    data[:, :, 80:] = rng.integers(150, 230, (4, 160, 80)).astype(np.uint8)
    d = tmp_path / "bg"
    d.mkdir()
    profile = dict(driver="GTiff", width=160, height=160, count=4, dtype="uint8",
                   crs=CRS.from_epsg(32614), transform=Affine(5, 0, 0, 0, -5, 0))  # fmt: skip
    with rasterio.open(d / "a.tif", "w", **profile) as dst:
        dst.write(data)
    fam = Family("naip", ("bg/*.tif",), ("red", "green", "blue", "nir"), 5.0, 8, 4, "test")
    monkeypatch.setitem(ev.FAMILIES, "naip", fam)
    r = sw("search", "eval", "--data", str(tmp_path), "--sites", "12", "-k", "3",
           "--seeds", "4", "--negatives", "200", "--json")  # fmt: skip
    assert r.code == 0, r.err
    rep = r.json()["evaluations"][0]
    parts = rep["recall_by_background"]
    assert sum(p["sites"] for p in parts) == 9 and len(parts) == 4
    lows = [p["brightness"][0] for p in parts]
    assert lows == sorted(lows) and parts[0]["brightness"][1] < 100 < parts[-1]["brightness"][0]
    for f in ("100x", "500x", "1000x"):  # the parts' recalls add up to the pooled recall
        pooled = sum(p["recall"][f] * p["sites"] for p in parts) / 9
        assert pooled == pytest.approx(rep["recall"][f], abs=1e-3)
    r = sw("search", "eval", "--data", str(tmp_path), "--sites", "12", "-k", "3",
           "--seeds", "4", "--negatives", "200")  # fmt: skip
    assert r.code == 0, r.err
    assert "recall by the brightness of the sites' ground" in r.out
