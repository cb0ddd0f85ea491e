from __future__ import annotations

import numpy as np
import pytest
import rasterio

from sitewatch.errors import AnalysisError
from sitewatch.search.evaluate import Family, build_background
from sitewatch.search.features import BandScale, FeatureConfig, block_features
from sitewatch.search.rerank import (
    _lbp_hist,
    _percentiles,
    cross_fitted_scores,
    positive_descriptors,
    read_windows,
    rerank_names,
    window_descriptors,
)
from sitewatch.search.run import SearchParams, run_search
from sitewatch.search.tiles import TileGrid


def _chips(n: int = 6, size: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    chips = rng.uniform(-0.2, 1.3, (n, 4, size, size)).astype(np.float32)
    chips[:, :, 8:14, 10:20] = 1.4  # a bright rectangle
    chips[:, :, 14:16, 10:20] = -0.3  # and its shadow
    valid = np.ones((n, size, size), dtype=bool)
    valid[0, :, :5] = False
    chips *= valid[:, None]
    return chips, valid


def test_percentiles_match_numpy_on_the_valid_entries() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=(7, 50))
    ok = rng.random((7, 50)) > 0.3
    ok[3] = False
    got = _percentiles(a, ok, [5.0, 50.0, 95.0])
    for i in range(7):
        for q, g in zip([5.0, 50.0, 95.0], got, strict=True):
            want = np.percentile(a[i][ok[i]], q) if ok[i].any() else 0.0
            assert g[i] == pytest.approx(want)


def test_lbp_of_stacked_windows_equals_one_window_at_a_time() -> None:
    chips, valid = _chips()
    lum = chips.mean(axis=1)
    together = _lbp_hist(lum, valid)
    for i in range(len(lum)):
        np.testing.assert_allclose(together[i], _lbp_hist(lum[i : i + 1], valid[i : i + 1])[0])
    np.testing.assert_allclose(together[:, :10].sum(axis=1), 1.0)


def test_descriptors_do_not_depend_on_the_orientation() -> None:
    chips, valid = _chips()
    names = rerank_names(4)
    base = window_descriptors(chips, valid)
    assert base.shape == (len(chips), len(names)) and np.isfinite(base).all()
    keep = [i for i, n in enumerate(names) if not n.startswith("orient8_")]
    for k in (1, 2, 3):
        rot = window_descriptors(
            np.ascontiguousarray(np.rot90(chips, k, axes=(2, 3))),
            np.ascontiguousarray(np.rot90(valid, k, axes=(1, 2))),
        )
        np.testing.assert_allclose(rot[:, keep], base[:, keep], rtol=1e-5, atol=1e-6)
    # a quarter turn moves the 8 orientation bins by 4: the rolled histogram is the same
    rot = window_descriptors(
        np.ascontiguousarray(np.rot90(chips, 1, axes=(2, 3))),
        np.ascontiguousarray(np.rot90(valid, 1, axes=(1, 2))),
    )
    o = [i for i, n in enumerate(names) if n == "orient8_ortho"]
    np.testing.assert_allclose(rot[:, o], base[:, o], rtol=1e-5, atol=1e-6)
    assert positive_descriptors(chips[:2], valid[:2]).shape == (16, len(names))


def test_bright_object_and_its_shadow_are_described() -> None:
    chips = np.full((2, 4, 32, 32), 0.5, dtype=np.float32)
    valid = np.ones((2, 32, 32), dtype=bool)
    chips[1, :, 8:14, 10:20] = 1.4
    chips[1, :, 14:16, 10:20] = -0.3
    d = dict(zip(rerank_names(4), window_descriptors(chips, valid).T, strict=True))
    assert d["bright_share"][0] == 0 and d["bright_share"][1] == pytest.approx(60 / 1024)
    assert d["bright_objects"][1] == 1 and d["dark_objects"][1] == 1
    assert d["bright_rectangularity"][1] == pytest.approx(1.0, abs=0.05)
    assert d["bright_elongation"][1] == pytest.approx(10 / 6, rel=0.1)
    assert d["bright_dark_adjacent"][1] > 0.3 and d["bright_dark_adjacent"][0] == 0


def test_cross_fitting_never_scores_a_candidate_with_a_model_told_it_is_background() -> None:
    rng = np.random.default_rng(2)
    pos = rng.normal(3.0, 0.3, (10, 3))
    bg = rng.normal(0.0, 1.0, (200, 3))
    # hard negatives: candidates that look like the examples in the first two features only
    hard = np.c_[rng.normal(3.0, 0.3, (60, 2)), rng.normal(-2.0, 0.3, 60)]
    cands = np.vstack([hard, rng.normal(3.0, 0.3, (1, 3))])
    s = cross_fitted_scores(pos, bg, cands, seed=0)
    assert np.argmax(s) == 60  # the look-alike among the candidates comes first
    assert s[60] > np.percentile(s[:60], 95) + 1.0
    # a forest told that every candidate (the look-alike too) is background scores it lower
    leaky = cross_fitted_scores(pos, np.vstack([bg, cands]), cands, folds=1, seed=0)
    assert leaky[60] < s[60]
    # without hard negatives (one fold: only the random background) the look-alikes tie with it
    only_bg = cross_fitted_scores(pos, bg, cands, folds=1, seed=0)
    assert np.median(only_bg[:60]) > np.median(s[:60])
    with pytest.raises(AnalysisError, match="positive"):
        cross_fitted_scores(pos[:0], bg, cands)


def test_each_fold_learns_from_at_most_hard_max_candidates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sklearn.ensemble import ExtraTreesClassifier

    rows: list[int] = []
    fit = ExtraTreesClassifier.fit

    def counting_fit(self, X, y, sample_weight=None):
        rows.append(len(X))
        return fit(self, X, y, sample_weight)

    monkeypatch.setattr(ExtraTreesClassifier, "fit", counting_fit)
    rng = np.random.default_rng(3)
    pos, bg, cands = rng.normal(2, 1, (8, 4)), rng.normal(0, 1, (50, 4)), rng.normal(0, 1, (400, 4))
    a = cross_fitted_scores(pos, bg, cands, folds=4, trees=20, seed=1, hard_max=40)
    assert rows == [8 + 50 + 40] * 4  # each fold: the positives, background and 40 candidates
    b = cross_fitted_scores(pos, bg, cands, folds=4, trees=20, seed=1, hard_max=40)
    np.testing.assert_array_equal(a, b)  # the draw follows the seed
    rows.clear()
    cross_fitted_scores(pos, bg, cands, folds=4, trees=20, seed=1, hard_max=10_000)
    assert all(8 + 50 + 250 < n < 8 + 50 + 350 for n in rows)  # about 3/4 of the 400


def test_read_windows_reads_the_tiles(make_scene) -> None:
    path, _, _ = make_scene(size=96, sites=0, nodata_corner=True)
    with rasterio.open(path) as ds:
        grid = TileGrid.of(ds, 16, 8)
        scale = BandScale((0.0,) * 4, (255.0,) * 4)
        chips, valid = read_windows(ds, grid, [(0, 0), (5, 5), (11, 11)], scale, [1, 2, 3, 4])
        raw = ds.read()
    assert chips.shape == (3, 4, 16, 16)
    assert not valid[0].any()  # in the nodata corner
    assert valid[2, :8, :8].all() and not valid[2, 8:].any()  # runs past the raster edge
    np.testing.assert_allclose(chips[1], raw[:, 40:56, 40:56] / 255.0, rtol=1e-6)


def test_read_windows_in_one_read_equal_tile_by_tile(
    make_scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sitewatch.search.rerank as rerank_mod

    path, _, _ = make_scene(size=96, sites=1, nodata_corner=True)
    rng = np.random.default_rng(0)
    with rasterio.open(path) as ds:
        grid = TileGrid.of(ds, 8, 4)
        tiles = [(int(r), int(c)) for r, c in rng.integers(-1, grid.n_rows + 1, size=(40, 2))]
        scale = BandScale((0.0,) * 4, (255.0,) * 4)
        out = {}
        for px in (0, 10**9):  # every tile read alone / every group read at once
            monkeypatch.setattr(rerank_mod, "_READ_PX_PER_TILE", px)
            out[px] = read_windows(ds, grid, tiles, scale, [1, 2, 3, 4])
    np.testing.assert_array_equal(out[0][0], out[10**9][0])
    np.testing.assert_array_equal(out[0][1], out[10**9][1])
    assert out[0][1].any() and not out[0][1].all()


def test_search_reranks_its_best_candidates(make_scene) -> None:
    path, lonlat, _ = make_scene(size=256, sites=4, seed=7)
    params = SearchParams(
        tile=16, stride=8, block_tiles=16, top=12, negatives=600, rerank=0.2, spectral=False
    )  # the second stage alone (test_spectral.py fuses the spectral match after it)
    result = run_search(path, lonlat[:1], params=params)
    n_rerank = int(np.ceil(result.area_km2 * 0.2 / (0.16 * 0.16)))  # 52 > top
    assert len(result.candidates) == 12 and all(
        c.stage1_score is not None for c in result.candidates
    )
    scores = [c.score for c in result.candidates]
    assert scores == sorted(scores, reverse=True)  # ranked by the second stage
    assert [c.rank for c in result.candidates] == list(range(1, 13))
    old = {k: v for k, v in params.to_dict().items() if k != "rerank"}
    assert SearchParams.from_dict(old).rerank == 0.0  # runs saved before the second stage
    first = run_search(
        path, lonlat[:1], params=SearchParams.from_dict({**old, "top": n_rerank})
    ).candidates
    assert all(c.stage1_score is None for c in first)
    # the second stage re-orders the first stage's best candidates, it adds none
    assert {(c.row, c.col) for c in result.candidates} <= {(c.row, c.col) for c in first}
    by_tile = {(c.row, c.col): c.score for c in first}
    assert all(by_tile[c.row, c.col] == c.stage1_score for c in result.candidates)
    # with fewer candidates in the area share than asked for, all those returned are re-ranked
    few = run_search(path, lonlat[:1], params=SearchParams(**{**params.to_dict(), "rerank": 1e-4}))
    assert all(c.stage1_score is not None for c in few.candidates)


def test_tiles_mostly_on_nodata_are_not_scored() -> None:
    cfg = FeatureConfig(tile=16, stride=8, context=False)
    P = cfg.halo
    raw = np.full((4, 3 * 8 + 8 + 2 * P, 3 * 8 + 8 + 2 * P), 100, dtype=np.uint8)
    valid = np.ones(raw.shape[1:], dtype=bool)
    valid[:, : P + 8 + 4] = False  # tile column 0 is 1/4 valid, column 1 is 3/4 valid
    raw[:, ~valid] = 0
    _, ok = block_features(raw, valid, (3, 3), cfg, BandScale((0.0,) * 4, (255.0,) * 4))
    assert not ok[:, 0].any() and ok[:, 1:].all()


def test_background_pieces_are_kept_apart(tmp_path) -> None:
    d = tmp_path / "bg"
    d.mkdir()
    data = np.random.default_rng(1).integers(1, 200, (4, 40, 60)).astype(np.uint8)
    from affine import Affine
    from rasterio.crs import CRS

    with rasterio.open(
        d / "a.tif", "w", driver="GTiff", width=60, height=40, count=4, dtype="uint8",
        crs=CRS.from_epsg(32614), transform=Affine(5, 0, 0, 0, -5, 0),
    ) as dst:  # fmt: skip
        dst.write(data)
    fam = Family("t", ("bg/*.tif",), ("red", "green", "blue", "nir"), 5.0, 8, 4, "test")
    mosaic, boxes = build_background(tmp_path, fam)
    assert len(boxes) == 8
    for r0, c0, h, w in boxes:
        assert (mosaic[:, r0 : r0 + h, c0 : c0 + w] > 0).all()
    # nodata outside the pieces, and a gutter of two tiles (16 px) between any two of them
    valid = (mosaic > 0).any(axis=0)
    inside = np.zeros_like(valid)
    for r0, c0, h, w in boxes:
        inside[r0 : r0 + h, c0 : c0 + w] = True
    assert (valid == inside).all()
    for i, (r0, c0, h, w) in enumerate(boxes):
        for r1, c1, h1, w1 in boxes[i + 1 :]:
            gap_r = max(r1 - (r0 + h), r0 - (r1 + h1))
            gap_c = max(c1 - (c0 + w), c0 - (c1 + w1))
            assert max(gap_r, gap_c) >= 16
