from __future__ import annotations

import numpy as np
import pytest

from sitewatch.errors import InputError
from sitewatch.search.run import SearchParams, run_search

PARAMS = SearchParams(tile=16, stride=8, block_tiles=16, top=20, negatives=600)


def _hit(result, pix) -> set[int]:
    g = result.grid
    found = set()
    for c in result.candidates[:10]:
        for i, (r, col) in enumerate(pix):
            if (
                c.row * g.stride <= r < c.row * g.stride + g.tile
                and c.col * g.stride <= col < c.col * g.stride + g.tile
            ):
                found.add(i)
    return found


def test_search_ranks_look_alikes_first(make_scene) -> None:
    path, lonlat, pix = make_scene(size=384, sites=6, seed=3)
    result = run_search(path, lonlat[:2], params=PARAMS)
    assert set(range(2, 6)) <= _hit(result, pix)  # every held-out site in the top 10
    s = result.summary()
    assert s["area_km2"] == pytest.approx(384 * 384 * 100 / 1e6)
    assert s["km2_per_s"] > 0 and 0 < s["top_area_fraction"] < 1
    assert result.candidate_features.shape == (
        len(result.candidates),
        len(result.model.feature_names),
    )


def test_search_with_dem_adds_terrain_features(make_scene, make_dem) -> None:
    path, lonlat, _ = make_scene(size=128, sites=2, seed=4)
    result = run_search(path, lonlat[:1], dem=make_dem(size=128), params=PARAMS)
    assert "slope_mean" in result.model.feature_names


def test_examples_outside_the_image_are_an_error(make_scene) -> None:
    path, _, _ = make_scene(size=64, sites=0)
    with pytest.raises(InputError, match="inside the image"):
        run_search(path, [(0.0, 0.0)], params=PARAMS)


def test_distributed_cluster_gives_identical_results(make_scene) -> None:
    distributed = pytest.importorskip("distributed")
    path, lonlat, _ = make_scene(size=256, sites=3, seed=5)
    local = run_search(path, lonlat[:1], params=PARAMS)
    with distributed.LocalCluster(
        n_workers=1,
        threads_per_worker=2,
        processes=False,
        protocol="tcp://",
        host="127.0.0.1",
        dashboard_address=":0",  # a free port: 8787 may be taken
    ) as cluster:
        remote = run_search(path, lonlat[:1], params=PARAMS, scheduler=cluster.scheduler_address)
    np.testing.assert_array_equal(local.scores, remote.scores)
    assert [(c.row, c.col, c.score, c.stage1_score) for c in local.candidates] == [
        (c.row, c.col, c.score, c.stage1_score) for c in remote.candidates
    ]
    assert all(c.stage1_score is not None for c in local.candidates)  # second stage on both
    assert remote.area_km2 == local.area_km2


def test_block_size_follows_the_stride_and_does_not_change_the_scores(make_scene) -> None:
    assert SearchParams(tile=32, stride=16).block_tiles == 64
    assert SearchParams(tile=4, stride=2).block_tiles == 512
    assert SearchParams(tile=8, stride=4, block_tiles=10).block_tiles == 10
    with pytest.raises(InputError, match="block_tiles"):
        SearchParams(block_tiles=-1)
    with pytest.raises(InputError, match="stride"):
        SearchParams(tile=8, stride=-2)
    for bad, word in (
        ({"top": 0}, "top"),
        ({"negatives": 10}, "negatives"),
        ({"hard_rounds": -1}, "hard rounds"),
        ({"clip_margin": -0.5}, "clip margin"),
        ({"rerank": 1.5}, "rerank"),
    ):
        with pytest.raises(InputError, match=word):
            SearchParams(**bad)  # type: ignore[arg-type]
    assert SearchParams(tile=16).stride == 8  # half the tile unless given
    # no tile given: about 40 m in the image's pixels, resolved when the image is opened
    unset = SearchParams()
    assert (unset.tile, unset.stride, unset.block_tiles) == (0, 0, 0)
    path, lonlat, _ = make_scene(size=192, sites=3, seed=5)
    small = run_search(path, lonlat[:1], params=SearchParams(tile=4, stride=2, block_tiles=7))
    auto = run_search(path, lonlat[:1], params=SearchParams(tile=4, stride=2))
    assert auto.params.block_tiles == 512
    default = run_search(path, lonlat[:1], params=SearchParams(top=5))
    assert (default.params.tile, default.params.stride, default.params.block_tiles) == (4, 2, 512)
    np.testing.assert_allclose(default.scores, auto.scores, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(auto.scores, small.scores, rtol=1e-9, atol=1e-9)


def test_second_stage_is_capped_in_candidates(make_scene, monkeypatch, caplog) -> None:
    from sitewatch.search import run as run_mod

    path, lonlat, _ = make_scene(size=192, sites=3, seed=6)
    params = SearchParams(tile=8, stride=4, top=10, negatives=300, rerank=0.5)
    monkeypatch.setattr(run_mod, "RERANK_MAX", 40)
    with caplog.at_level("INFO", logger="sitewatch.search.run"):
        result = run_search(path, lonlat[:1], params=params)
    assert "re-ranked the best 40 candidates" in caplog.text
    assert all(c.stage1_score is not None for c in result.candidates)
