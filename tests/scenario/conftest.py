"""Factories of small scenarios for the scenario tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sitewatch.scenario import ScenarioResult, ScenarioSpec, make_scenario


def small_spec(**overrides: Any) -> ScenarioSpec:
    """A fast scene: 320 x 320 px at 1 m, one base, three dates."""
    base = ScenarioSpec(seed=11, sites=1, dates=3, size_px=(320, 320), gsd=1.0, margin_px=16)
    return replace(base, **overrides)


@pytest.fixture
def make_small(tmp_path: Path) -> Callable[..., ScenarioResult]:
    """Write a small scenario under tmp_path; keyword arguments override :func:`small_spec`."""
    counter = iter(range(1000))

    def factory(subdir: str | None = None, **overrides: Any) -> ScenarioResult:
        out = tmp_path / (subdir or f"scn{next(counter)}")
        return make_scenario(out, small_spec(**overrides))

    return factory


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]
