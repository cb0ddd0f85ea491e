"""Review order in triage: the run's ranking first, then blended with the retrained model."""

from __future__ import annotations

import numpy as np

from sitewatch.search.triage import _review_order


def test_before_any_decision_the_runs_second_stage_ranking_is_kept() -> None:
    run_scores = [0.9, 0.5, 0.7, float("nan")]
    first_stage = np.array([0.0, 1.0, 0.5, 0.2])  # disagrees entirely
    assert _review_order(run_scores, first_stage, decided=False).tolist() == [0, 2, 1, 3]


def test_after_decisions_the_retrained_model_moves_candidates() -> None:
    run_scores = [0.9, 0.8, 0.7, 0.6, 0.5]
    retrained = np.array([0.1, 0.2, 0.3, 0.95, 0.4])  # the decisions favour candidate 3
    order = _review_order(run_scores, retrained, decided=True).tolist()
    assert order == [3, 0, 1, 2, 4]
    # agreeing rankings leave the order alone
    same = _review_order(run_scores, np.array([0.5, 0.4, 0.3, 0.2, 0.1]), decided=True)
    assert same.tolist() == [0, 1, 2, 3, 4]
