"""Review order in triage: the run's ranking first, then both stages refitted on the decisions."""

from __future__ import annotations

import numpy as np

from sitewatch.search._runstore import find_run, save_run
from sitewatch.search.rerank import near_tiles
from sitewatch.search.run import SearchParams, run_search
from sitewatch.search.spectral import fuse_ranks
from sitewatch.search.triage import SecondStage, _review_order


def test_before_any_decision_the_runs_second_stage_ranking_is_kept() -> None:
    run_scores = [0.9, 0.5, 0.7, float("nan")]
    first_stage = np.array([0.0, 1.0, 0.5, 0.2])  # disagrees entirely
    assert _review_order(run_scores, first_stage, None, decided=False).tolist() == [0, 2, 1, 3]


def test_after_decisions_the_retrained_models_move_candidates() -> None:
    run_scores = [0.9, 0.8, 0.7, 0.6, 0.5]
    retrained = np.array([0.1, 0.2, 0.3, 0.95, 0.4])  # the decisions favour candidate 3
    order = _review_order(run_scores, retrained, None, decided=True).tolist()
    assert order == [3, 0, 1, 2, 4]
    # agreeing rankings leave the order alone
    same = _review_order(run_scores, np.array([0.5, 0.4, 0.3, 0.2, 0.1]), None, decided=True)
    assert same.tolist() == [0, 1, 2, 3, 4]
    # the refitted second stage replaces the run's own second-stage score
    second = np.array([0.0, 0.1, 0.2, 0.3, 0.9])
    first = np.array([0.0, 0.1, 0.2, 0.3, 0.8])
    assert _review_order(run_scores, first, second, decided=True).tolist()[0] == 4


def test_after_decisions_the_spectral_match_is_fused_as_in_the_run() -> None:
    run_scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    first = np.array([0.6, 0.5, 0.4, 0.3, 0.2, 0.1])  # agrees with the run: order 0..5
    match = np.array([0.0, 0.1, 0.2, 0.3, 0.4, 0.9])  # ranks 5 first, then 4, 3, ...
    plain = _review_order(run_scores, first, None, decided=True)
    assert plain.tolist() == [0, 1, 2, 3, 4, 5]
    fused = _review_order(run_scores, first, None, decided=True, match=match)
    # reciprocal rank fusion of 0..5 with 5, 4, 3, 2, 1, 0: the two ends tie and keep their
    # order, the middle follows
    want, _ = fuse_ranks([float(match[i]) for i in plain])
    assert fused.tolist() == want == [0, 5, 1, 4, 2, 3]
    # before any decision the run's stored (already fused) order is kept as it is
    assert _review_order(run_scores, first, None, decided=False, match=match).tolist() == [
        0, 1, 2, 3, 4, 5,
    ]  # fmt: skip


def test_second_stage_learns_from_accepts_and_rejects(make_scene, tmp_path) -> None:
    path, lonlat, _ = make_scene(size=320, sites=6, seed=5)
    params = SearchParams(tile=16, stride=8, block_tiles=16, top=40, negatives=600, rerank=0.2)
    result = run_search(path, lonlat[:2], params=params)
    run = find_run(str(save_run(result, tmp_path / "run")))
    assert run.examples == [tuple(p) for p in lonlat[:2]]
    stage = SecondStage(run)
    assert stage.scores(list(range(1, len(run.cand_tiles) + 1)), []) is None  # nothing decided
    # decide on the best candidate that is not an example, then look at the five most like it
    # (one neighbour alone can move either way by a few hundredths in a 100-tree forest)
    near = near_tiles(run.cand_tiles, stage.example_tiles, 2 * run.grid.cells_per_tile)
    k = int(np.flatnonzero(~near)[0]) + 1
    pending = [r for r in range(1, len(run.cand_tiles) + 1) if r != k]
    feats = stage.features
    dist = np.linalg.norm(feats[np.array(pending) - 1] - feats[k - 1], axis=1)
    nearest = np.argsort(dist)[:5]
    accepted = stage.scores(pending, [{"rank": k, "state": "accepted"}])
    rejected = stage.scores(pending, [{"rank": k, "state": "rejected"}])
    assert accepted is not None and rejected is not None
    assert accepted.shape == rejected.shape == (len(pending),)
    assert np.isfinite(accepted).all() and np.isfinite(rejected).all()
    assert (accepted - rejected)[nearest].mean() > 0.1
