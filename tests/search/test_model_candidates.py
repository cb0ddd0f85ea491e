from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS
from shapely.geometry import shape

from sitewatch.errors import AnalysisError, InputError
from sitewatch.search.candidates import (
    make_candidates,
    non_max_suppression,
    overlapping,
    suppress_overlaps,
    to_geojson,
)
from sitewatch.search.model import CLIP_MARGIN, SearchModel, fit_model
from sitewatch.search.tiles import TileGrid


@pytest.mark.parametrize("method", ["hybrid", "logistic", "knn"])
def test_model_ranks_positives_first_and_round_trips(tmp_path, method) -> None:
    rng = np.random.default_rng(0)
    neg = rng.normal(0, 1, (500, 6))
    pos = rng.normal(0, 0.3, (8, 6)) + np.array([3, -2, 0, 0, 1, 0])
    names = [f"f{i}" for i in range(6)]
    model = fit_model(pos, neg, names, method=method)
    test_pos = rng.normal(0, 0.3, (20, 6)) + np.array([3, -2, 0, 0, 1, 0])
    test_neg = rng.normal(0, 1, (200, 6))
    s_pos, s_neg = model.score(test_pos), model.score(test_neg)
    assert np.median(s_pos) > np.percentile(s_neg, 95)
    back = SearchModel.load(model.save(tmp_path / "m.json"))
    np.testing.assert_array_equal(back.score(test_neg), s_neg)
    assert json.loads((tmp_path / "m.json").read_text())["method"] == method


def test_model_errors() -> None:
    names = ["a", "b"]
    with pytest.raises(AnalysisError, match="positive"):
        fit_model(np.full((2, 2), np.nan), np.zeros((10, 2)), names)
    model = fit_model(np.ones((2, 2)), np.random.default_rng(1).normal(size=(20, 2)), names)
    with pytest.raises(AnalysisError, match="2 features"):
        model.score(np.zeros((3, 3)))
    with pytest.raises(InputError, match="not a sitewatch search model"):
        SearchModel.from_dict({"format": "other"})
    nan_row = model.score(np.array([[np.nan, np.nan], [0.0, 0.0]]))
    assert np.isnan(nan_row[0]) and np.isfinite(nan_row[1])


def test_nms_keeps_non_overlapping_peaks_best_first() -> None:
    rng = np.random.default_rng(2)
    scores = rng.random((30, 40))
    scores[5, 5] = 10
    scores[5, 6] = 9  # overlaps the best: suppressed
    scores[20, 30] = 8
    scores[3, 3] = np.nan
    peaks = non_max_suppression(scores, top=50, radius=1)
    assert peaks[0][:2] == (5, 5) and peaks[1][:2] == (20, 30)
    assert [p[2] for p in peaks] == sorted((p[2] for p in peaks), reverse=True)
    for i, (r1, c1, _) in enumerate(peaks):
        for r2, c2, _ in peaks[i + 1 :]:
            assert max(abs(r1 - r2), abs(c1 - c2)) > 1
    assert len(non_max_suppression(scores, top=3, radius=1)) == 3


@pytest.mark.parametrize("radius", [0, 1, 3])
def test_nms_on_the_best_tiles_only_equals_the_full_sort(radius: int) -> None:
    # coarse scores (many ties), NaN holes and a cut-off: the partition to the best
    # top * (2 radius + 1)^2 tiles must pick exactly what sorting every tile picks
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(radius)
    # a smooth field: the best tiles sit next to each other, so most are suppressed
    smooth = gaussian_filter(rng.normal(size=(90, 110)), 3.0)
    scores = np.round(smooth / smooth.std(), 1).astype(np.float32)
    scores[rng.random(scores.shape) < 0.1] = np.nan
    flat = scores.astype(np.float64).ravel()
    for top, min_score in [(5, -np.inf), (40, -np.inf), (40, 0.5), (10_000, -np.inf)]:
        finite = np.flatnonzero(np.isfinite(flat) & (flat >= min_score))
        taken = np.zeros(scores.shape, dtype=bool)
        want = []
        for idx in finite[np.lexsort((finite, -flat[finite]))]:
            r, c = divmod(int(idx), scores.shape[1])
            if not taken[r, c] and len(want) < top:
                want.append((r, c, float(flat[idx])))
                taken[max(r - radius, 0) : r + radius + 1, max(c - radius, 0) : c + radius + 1] = 1
        got = non_max_suppression(scores, top=top, radius=radius, min_score=min_score)
        assert got == want and len(got) == min(top, len(want))
    assert non_max_suppression(scores, top=0, radius=1) == []


def test_candidates_are_lonlat_polygons_with_rank_score_and_cluster() -> None:
    grid = TileGrid(
        400, 400, Affine(10, 0, 300_000, 0, -10, 4_300_000), CRS.from_epsg(32652), 16, 8
    )
    scores = np.zeros(grid.shape, dtype=np.float32)
    scores[10, 10], scores[10, 12], scores[40, 40] = 5, 4, 3  # the first two are neighbours
    cands = make_candidates(scores, grid, top=3)
    assert [c.rank for c in cands] == [1, 2, 3]
    assert cands[0].cluster == cands[1].cluster == 1 and cands[2].cluster == 3
    c0 = cands[0]
    assert 126 < c0.lon < 127 and 38 < c0.lat < 39.5
    assert c0.polygon.contains(c0.polygon.centroid)
    assert c0.area_km2 == pytest.approx(0.0256)
    assert not cands[0].polygon.overlaps(cands[1].polygon)
    gj = json.loads(json.dumps(to_geojson(cands, run_id="r1")))
    props = gj["features"][0]["properties"]
    assert props["rank"] == 1 and props["score"] == 5 and props["run_id"] == "r1"
    assert shape(gj["features"][0]["geometry"]).equals_exact(c0.polygon, 1e-9)


def test_suppress_overlaps_keeps_the_first_of_overlapping_candidates() -> None:
    grid = TileGrid(
        400, 400, Affine(10, 0, 300_000, 0, -10, 4_300_000), CRS.from_epsg(32652), 16, 8
    )  # 16 px tiles, stride 8: a tile overlaps those one row or column away
    scores = np.zeros(grid.shape, dtype=np.float32)
    for r, c, v in [(10, 10, 5), (20, 20, 4), (10, 13, 3), (30, 5, 2)]:
        scores[r, c] = v
    cands = make_candidates(scores, grid, top=4)
    moved = [replace(cands[1], row=11, col=11), replace(cands[0], row=21, col=19)]
    # in this order: (10,10), (11,11) overlaps it, (20,20), (21,19) overlaps it, (10,13), (30,5)
    ordered = [cands[0], moved[0], cands[1], moved[1], cands[2], cands[3]]
    assert suppress_overlaps(ordered, grid) == [0, 2, 4, 5]
    # the later one of an overlapping pair wins when it comes first
    assert suppress_overlaps([moved[0], cands[0], cands[1]], grid) == [0, 2]
    near = overlapping(grid, [(10, 10), (0, 0)])
    assert near[9:12, 9:12].all() and near[0:2, 0:2].all()
    assert near.sum() == 9 + 4 and not near[10, 12] and not near[12, 10]


def test_model_does_not_reward_values_beyond_the_examples(tmp_path) -> None:
    rng = np.random.default_rng(2)
    neg = rng.normal(0, 1, (2000, 3))
    pos = rng.normal(0, 0.2, (10, 3)) + np.array([3.0, 0.0, 0.0])
    names = ["a", "b", "c"]
    clipped = fit_model(pos, neg, names, method="logistic", clip_margin=CLIP_MARGIN)
    free = fit_model(pos, neg, names, method="logistic")
    assert free.lower is None and free.upper is None
    site = np.array([[3.0, 0.0, 0.0]])
    wild = np.array([[6.0, 0.0, 0.0]])  # far beyond every example on the site's side
    wilder = np.array([[9.0, 0.0, 0.0]])
    assert free.score(wilder)[0] > free.score(wild)[0] > free.score(site)[0]
    assert clipped.score(wilder)[0] == clipped.score(wild)[0]  # saturates past the examples
    edge = clipped.center + clipped.scale * clipped.upper  # the margin beyond the last example
    assert edge[0] == pytest.approx(pos[:, 0].max() + CLIP_MARGIN * clipped.scale[0])
    assert clipped.score(wild)[0] == pytest.approx(clipped.score(np.array([[edge[0], 0, 0]]))[0])
    back = SearchModel.load(clipped.save(tmp_path / "m.json"))
    np.testing.assert_array_equal(back.score(wild), clipped.score(wild))


def test_hard_negative_rounds_push_down_the_look_alikes() -> None:
    rng = np.random.default_rng(3)
    bulk = rng.normal(0, 1, (3000, 2))
    # a rare background class that shares the site's first feature but not its second
    look_alike = rng.normal(0, 0.2, (60, 2)) + np.array([3.0, -1.5])
    pos = rng.normal(0, 0.2, (10, 2)) + np.array([3.0, 1.5])
    names = ["a", "b"]
    neg = np.vstack([bulk, look_alike])
    once = fit_model(pos, neg, names, method="logistic", hard_rounds=0, clip_margin=None)
    hard = fit_model(pos, neg, names, method="logistic", hard_rounds=2, clip_margin=None)

    def margin(m: SearchModel) -> float:
        return float(np.median(m.score(pos)) - np.percentile(m.score(look_alike), 90))

    assert margin(hard) > margin(once)
