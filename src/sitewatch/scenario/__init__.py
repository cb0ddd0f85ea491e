"""Synthetic, physically consistent scene series with exact ground truth.

``make_scenario(outdir, ScenarioSpec(...))`` writes dated COGs with a static STAC catalog and the
truth beside them (feature footprints and heights, change masks, dates of each change);
``demo_spec()`` is the preset of the demo: a mountain valley holding a missile operating base
whose berms grow and where a new portal appears.
"""

from __future__ import annotations

from .generator import DEFAULT_CENTER, make_scenario
from .spec import (
    BAND_INFO,
    DEFAULT_BANDS,
    FeatureSpec,
    ScenarioResult,
    ScenarioSpec,
    acquisition_times,
    demo_spec,
)

__all__ = [
    "BAND_INFO",
    "DEFAULT_BANDS",
    "DEFAULT_CENTER",
    "FeatureSpec",
    "ScenarioResult",
    "ScenarioSpec",
    "acquisition_times",
    "demo_spec",
    "make_scenario",
]
