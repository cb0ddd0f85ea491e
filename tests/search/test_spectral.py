"""The examples' per-pixel spectral match (search/spectral.py) and its fusion into a search."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer
from rasterio.crs import CRS

from sitewatch.errors import AnalysisError
from sitewatch.search import run as search_run
from sitewatch.search.candidates import make_candidates
from sitewatch.search.run import SearchParams, _with_match_peaks, run_search
from sitewatch.search.spectral import RRF_K, SpectralMatch, fuse_ranks, prepare_spectral
from sitewatch.search.tiles import TileGrid

GROUND = {"vegetation": (60.0, 150.0, 40.0, 50.0), "sand": (175.0, 165.0, 170.0, 175.0)}
ROOF = (205.0, 115.0, 150.0, 150.0)  # as bright as the sand, another spectral shape


def _scene(tmp_path: Path, size: int = 256, seed: int = 0) -> tuple[Path, list[tuple[int, int]]]:
    """Left half vegetation, right half sand with strong 1-px texture (a town at 30 m); 8 roofs
    of 6 x 6 px, four on each ground, with the ground's texture on them too."""
    rng = np.random.default_rng(seed)
    img = np.empty((4, size, size))
    for b in range(4):
        img[b, :, : size // 2] = GROUND["vegetation"][b]
        img[b, :, size // 2 :] = GROUND["sand"][b]
    bright = rng.normal(0.0, 30.0, (size, size))  # brightness texture shared by the bands
    img += bright[None] + rng.normal(0.0, 6.0, img.shape)
    sites = [(40, 40), (120, 60), (200, 30), (70, 100), (50, 170), (130, 200), (210, 160),
             (90, 230)]  # fmt: skip
    sites = [(r, c) for r, c in sites if r + 3 <= size and c + 3 <= size]
    for r, c in sites:
        for b in range(4):
            patch = bright[r - 3 : r + 3, c - 3 : c + 3] + rng.normal(0.0, 6.0, (6, 6))
            img[b, r - 3 : r + 3, c - 3 : c + 3] = ROOF[b] + patch
    path = tmp_path / "roofs.tif"
    with rasterio.open(
        path, "w", driver="GTiff", width=size, height=size, count=4, dtype="uint8",
        crs="EPSG:32652", transform=Affine(10.0, 0, 300_000.0, 0, -10.0, 4_300_000.0), nodata=0,
        photometric="MINISBLACK",  # 4 uint8 bands are not RGB + alpha
    ) as dst:  # fmt: skip
        dst.write(np.clip(np.rint(img), 1, 255).astype(np.uint8))
    return path, sites


def test_the_match_learns_the_examples_material_not_their_ground(tmp_path: Path) -> None:
    path, sites = _scene(tmp_path)
    examples = [(r + 0.5, c + 0.5) for r, c in (sites[0], sites[4], sites[5])]  # 2 on sand
    with rasterio.open(path) as ds:
        model = prepare_spectral(ds, (1, 2, 3, 4), examples, tile=4, seed=0)
        raw = ds.read()
    assert model.n_bands == 4 and model.levels == 32 and model.lut.size == 32**4
    score = model.pixel_scores(raw)
    roof = np.zeros(score.shape, dtype=bool)
    for r, c in sites:
        roof[r - 3 : r + 3, c - 3 : c + 3] = True
    held_out = np.zeros_like(roof)
    for r, c in (sites[1], sites[2], sites[3], sites[6], sites[7]):
        held_out[r - 2 : r + 2, c - 2 : c + 2] = True  # their cores
    sand = ~roof
    sand[:, : raw.shape[2] // 2] = False
    # the roofs not given as examples score high, on either ground; the sand the examples
    # stand on (and the vegetation) almost never does
    core = np.percentile(score[held_out], 10)
    assert core > 2.0
    assert np.percentile(score[sand], 99) < 0.5 * core
    assert np.percentile(score[~roof], 99) < 0.5 * core
    assert model.summary()["matching_bins"] > 0


def test_tile_means_are_the_mean_pixel_score_of_each_tile(tmp_path: Path) -> None:
    path, _ = _scene(tmp_path, size=96)
    with rasterio.open(path) as ds:
        model = prepare_spectral(ds, (1, 2, 3, 4), [(40.5, 40.5)], tile=4)
        raw = ds.read()
    valid = np.ones(raw.shape[1:], dtype=bool)
    valid[:10, :] = False
    stride, k, halo, shape = 2, 2, 3, (20, 25)
    got = model.tile_means(raw[:, : 2 * halo + 42, : 2 * halo + 52], valid[: 2 * halo + 42, : 2 * halo + 52],
                           shape, stride, k, halo)  # fmt: skip
    score = np.where(valid, model.pixel_scores(raw), 0.0)
    want = np.array([
        [score[halo + i * 2 : halo + i * 2 + 4, halo + j * 2 : halo + j * 2 + 4].mean()
         for j in range(shape[1])]
        for i in range(shape[0])
    ])  # fmt: skip
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    with pytest.raises(AnalysisError, match="fitted on 4 bands, got 3"):
        model.pixel_scores(raw[:3])


def test_fuse_ranks_is_reciprocal_rank_fusion() -> None:
    # the search's order is 0, 1, 2, 3, 4; the match ranks 3 first, then 4, then 0, 1, 2 (NaN)
    order, fused = fuse_ranks([0.2, 0.1, float("nan"), 0.9, 0.5])
    assert order[:2] == [0, 3] or order[:2] == [3, 0]
    want = {
        0: 1 / RRF_K + 1 / (RRF_K + 2), 1: 1 / (RRF_K + 1) + 1 / (RRF_K + 3),
        2: 1 / (RRF_K + 2) + 1 / (RRF_K + 4), 3: 1 / (RRF_K + 3) + 1 / RRF_K,
        4: 1 / (RRF_K + 4) + 1 / (RRF_K + 1),
    }  # fmt: skip
    assert order == sorted(want, key=lambda i: (-want[i], i))
    np.testing.assert_allclose(fused, [want[i] for i in order])
    assert fuse_ranks([]) == ([], [])


def test_a_search_with_the_match_finds_roofs_on_sand(tmp_path: Path) -> None:
    path, sites = _scene(tmp_path)
    with rasterio.open(path) as ds:
        to_ll = Transformer.from_crs(ds.crs, "EPSG:4326", always_xy=True)
        lonlat = [to_ll.transform(*(ds.transform * (c + 0.5, r + 0.5))) for r, c in sites]
    params = SearchParams(tile=4, stride=2, top=40, negatives=300)
    examples = [lonlat[0], lonlat[4], lonlat[5]]
    result = run_search(path, examples, params=params)
    assert result.model.feature_names[-1] == "spectral_match"
    assert result.summary()["spectral"]["bins"] == 32**4
    held = [sites[i] for i in (1, 2, 3, 6, 7)]

    def found(res: object, n: int) -> set[int]:
        cands = res.candidates[:n]  # type: ignore[attr-defined]
        return {
            i for i, (r, c) in enumerate(held) for cand in cands
            if cand.row * 2 <= r < cand.row * 2 + 4 and cand.col * 2 <= c < cand.col * 2 + 4
        }  # fmt: skip

    assert found(result, 10) == set(range(5))  # the descriptors alone: 4 of 5 (roof 2 at rank > 10)
    assert all(c.stage1_score is not None for c in result.candidates)
    assert [c.rank for c in result.candidates] == list(range(1, 41))
    # the match's own peaks joined the pool as other positions: still no two candidates overlap
    rc = [(c.row, c.col) for c in result.candidates]
    assert all(max(abs(a - c), abs(b - d)) > 1 for i, (a, b) in enumerate(rc) for c, d in rc[:i])
    # runs saved before the match existed load without it
    old = {k: v for k, v in params.to_dict().items() if k != "spectral"}
    assert SearchParams.from_dict(old).spectral is False
    plain = run_search(path, examples, params=SearchParams.from_dict(old))
    assert plain.spectral is None and "spectral_match" not in plain.model.feature_names


def test_the_match_offers_other_positions_of_the_pools_places(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(search_run, "MATCH_PEAKS", 3.0)  # the match's best 6 peaks for 2
    grid = TileGrid(
        400, 400, Affine(10, 0, 300_000, 0, -10, 4_300_000), CRS.from_epsg(32652), 16, 8
    )
    scores = np.zeros(grid.shape, dtype=np.float32)
    scores[10, 10], scores[20, 20], scores[30, 30] = 5, 4, 3
    cands = make_candidates(scores, grid, top=3)
    match = np.zeros(grid.shape, dtype=np.float32)
    match[11, 9] = 9  # overlaps the first candidate: another position of that place
    match[20, 20] = 8  # the second candidate itself: nothing new
    match[40, 40] = 7  # overlaps no candidate: not offered
    scores[11, 9] = 1.5
    got, n_pool = _with_match_peaks(cands[:2], 2, match, scores, grid)
    assert n_pool == 3 and [(c.row, c.col) for c in got] == [(10, 10), (20, 20), (11, 9)]
    assert got[2].score == 1.5  # ranked by the first stage's score at its tile
    got, n_pool = _with_match_peaks(cands, 2, match, scores, grid)
    assert n_pool == 3 and [(c.row, c.col) for c in got][3:] == [(30, 30)]  # the rest stay last
    # under the second stage's cap the pool's last candidate makes room, and stays a candidate
    got, n_pool = _with_match_peaks(cands, 2, match, scores, grid, limit=2)
    assert n_pool == 2 and [(c.row, c.col) for c in got] == [(10, 10), (11, 9), (20, 20), (30, 30)]


def test_too_few_example_pixels_is_refused(tmp_path: Path) -> None:
    path, _ = _scene(tmp_path, size=64)
    with rasterio.open(path) as ds, pytest.raises(AnalysisError, match="at least one example"):
        prepare_spectral(ds, (1, 2, 3, 4), [], tile=4)
    with rasterio.open(path) as ds, pytest.raises(AnalysisError, match="too few valid pixels"):
        prepare_spectral(ds, (1, 2, 3, 4), [(-500.0, -500.0)], tile=4)


def test_levels_keep_the_table_small() -> None:
    from sitewatch.search.spectral import LUT_MAX, _levels

    assert [_levels(n) for n in (1, 3, 4, 5, 6, 13)] == [32, 32, 32, 16, 10, 2]
    assert all(_levels(n) ** n <= LUT_MAX for n in range(1, 14))
    one = SpectralMatch((0.0,), (10.0,), np.array([0.0, 3.0], np.float32))
    assert one.levels == 2
    with pytest.raises(AnalysisError, match="does not fit 2 dimensions"):
        SpectralMatch((0.0, 0.0), (1.0, 1.0), np.zeros(8, np.float32))
    np.testing.assert_array_equal(one.pixel_scores(np.array([[[0, 4, 6, 99]]])), [[0, 0, 3, 3]])


def test_more_than_four_bands_are_projected_before_the_table(tmp_path: Path) -> None:
    """Eight bands, the roofs told from the sand by bands 5-8 alone (bands 1-4 are the sand's):
    the table is built on four projected dimensions of 32 levels, not 8 bands of 5 levels."""
    rng = np.random.default_rng(3)
    size = 256
    veg = (60, 150, 40, 50, 70, 90, 110, 60)
    sand = (175, 165, 170, 175, 170, 172, 168, 174)
    roof = (175, 165, 170, 175, 120, 215, 135, 205)
    img = np.empty((8, size, size))
    for b in range(8):
        img[b, :, : size // 2], img[b, :, size // 2 :] = veg[b], sand[b]
    bright = rng.normal(0.0, 20.0, (size, size))
    img += bright[None] + rng.normal(0.0, 5.0, img.shape)
    sites = [(40, 40), (120, 60), (200, 30), (50, 170), (130, 200), (210, 160), (90, 230)]
    for r, c in sites:
        for b in range(8):
            img[b, r - 3 : r + 3, c - 3 : c + 3] = (
                roof[b] + bright[r - 3 : r + 3, c - 3 : c + 3] + rng.normal(0.0, 5.0, (6, 6))
            )
    raw = np.clip(np.rint(img), 1, 255).astype(np.uint8)
    path = tmp_path / "eight.tif"
    with rasterio.open(
        path, "w", driver="GTiff", width=size, height=size, count=8, dtype="uint8",
        crs="EPSG:32652", transform=Affine(10.0, 0, 300_000.0, 0, -10.0, 4_300_000.0), nodata=0,
        photometric="MINISBLACK",
    ) as dst:  # fmt: skip
        dst.write(raw)
    examples = [(r + 0.5, c + 0.5) for r, c in (sites[0], sites[3], sites[4])]  # 2 on sand
    with rasterio.open(path) as ds:
        model = prepare_spectral(ds, tuple(range(1, 9)), examples, tile=4, seed=0)
    assert model.n_bands == 8 and model.levels == 32 and model.lut.size == 32**4
    assert model.summary()["dims"] == 4 and model.summary()["projected"] is True
    score = model.pixel_scores(raw)
    held_out = np.zeros(score.shape, dtype=bool)
    roof_px = np.zeros(score.shape, dtype=bool)
    for i, (r, c) in enumerate(sites):
        roof_px[r - 3 : r + 3, c - 3 : c + 3] = True
        if i in (1, 2, 5, 6):
            held_out[r - 2 : r + 2, c - 2 : c + 2] = True
    sand_px = ~roof_px
    sand_px[:, : size // 2] = False
    core = np.percentile(score[held_out], 10)
    assert core > 2.0
    assert np.percentile(score[sand_px], 99) < 0.5 * core
    with pytest.raises(AnalysisError, match="fitted on 8 bands, got 4"):
        model.pixel_scores(raw[:4])
    with pytest.raises(AnalysisError, match="projection does not fit"):
        SpectralMatch(model.low, model.high, model.lut, model.weights, None)


def test_a_float_image_with_nan_and_no_nodata(tmp_path: Path) -> None:
    """NaN pixels of a float image that declares no nodata are left out of the fit and score 0."""
    path, sites = _scene(tmp_path, size=128)
    with rasterio.open(path) as src:
        data = src.read().astype(np.float32) / 255.0
        profile = src.profile | {"dtype": "float32", "nodata": None}
    data[:, 60:70, :] = np.nan
    data[2, 5, 5] = np.inf
    fpath = tmp_path / "float.tif"
    with rasterio.open(fpath, "w", **profile) as dst:
        dst.write(data)
    with rasterio.open(fpath) as ds:
        model = prepare_spectral(ds, (1, 2, 3, 4), [(40.5, 40.5), (50.5, 120.5)], tile=4)
    assert all(np.isfinite(model.low)) and all(np.isfinite(model.high))
    score = model.pixel_scores(data)
    assert np.isfinite(score).all()
    r, c = sites[1]
    assert score[r - 2 : r + 2, c - 2 : c + 2].mean() > score[60:70].mean()
