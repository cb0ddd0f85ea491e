"""Land cover of a change patch on each date from its index means, and the kind of change."""

from __future__ import annotations

import pytest

from sitewatch.analysis.landcover import (
    BUILT_OR_BARE,
    VEGETATION_NDVI,
    WATER_MNDWI,
    change_kind,
    cover,
    kind_areas,
)


def means(when: str, **values: float | None) -> dict[str, float | None]:
    return {f"{k}_{when}": v for k, v in values.items()}


def test_covers_follow_the_published_thresholds_in_order() -> None:
    # a field in leaf, the same field harvested, a roof, a pond, sparse scrub
    assert cover(means("before", ndvi=0.72, ndbi=-0.3, mndwi=-0.5, bsi=-0.2), "before") == (
        "vegetation"
    )
    assert cover(means("after", ndvi=0.12, ndbi=0.05, mndwi=-0.2, bsi=0.08), "after") == (
        "built_or_bare"
    )
    assert cover(means("after", ndvi=0.05, ndbi=-0.05, mndwi=-0.1, bsi=0.02), "after") == (
        "built_or_bare"  # BSI alone is enough
    )
    # water first: its NDBI can be positive too
    assert cover(means("after", ndvi=-0.1, ndbi=0.2, mndwi=0.4, bsi=0.1), "after") == "water"
    assert cover(means("after", ndvi=0.2, ndbi=-0.1, mndwi=-0.2, bsi=-0.05), "after") == "other"
    # each threshold is where the cover starts or stops
    assert cover(means("b", ndvi=VEGETATION_NDVI), "before") is None  # another date's keys
    assert cover(means("before", ndvi=VEGETATION_NDVI), "before") == "vegetation"
    assert cover(means("before", ndvi=VEGETATION_NDVI - 0.01), "before") == "other"
    assert cover(means("before", mndwi=WATER_MNDWI), "before") == "other"
    assert cover(means("before", mndwi=WATER_MNDWI + 0.01), "before") == "water"
    assert cover(means("before", ndbi=BUILT_OR_BARE + 0.01), "before") == "built_or_bare"


def test_bands_without_swir_tell_vegetation_from_the_rest_only() -> None:
    assert cover(means("before", ndvi=0.5), "before") == "vegetation"
    assert cover(means("after", ndvi=0.05), "after") == "other"
    # no index at all (no band pair, or no pixel with data on both dates)
    assert cover(means("after", ndvi=None), "after") is None
    assert cover({}, "after") is None
    with pytest.raises(ValueError, match="'before' or 'after'"):
        cover({}, "later")


def test_change_kind_names_both_covers_or_the_one_it_stays_in() -> None:
    assert change_kind("vegetation", "built_or_bare") == "vegetation_to_built_or_bare"
    assert change_kind("built_or_bare", "water") == "built_or_bare_to_water"
    assert change_kind("built_or_bare", "built_or_bare") == "within_built_or_bare"
    assert change_kind(None, "water") is None and change_kind("water", None) is None
    with pytest.raises(ValueError, match="unknown cover 'forest'"):
        change_kind("forest", "water")


def test_kind_areas_sum_the_polygons_largest_first() -> None:
    feats = [
        {"properties": {"area_m2": 300.0, "kind": "within_built_or_bare"}},
        {"properties": {"area_m2": 1200.0, "kind": "vegetation_to_built_or_bare"}},
        {"properties": {"area_m2": 250.0, "kind": "within_built_or_bare"}},
        {"properties": {"area_m2": 100.0, "kind": None}},
        {"properties": {"area_m2": 50.0}},
    ]
    assert kind_areas(feats) == {
        "vegetation_to_built_or_bare": 1200.0,
        "within_built_or_bare": 550.0,
        "unknown": 150.0,
    }
    assert list(kind_areas(feats))[0] == "vegetation_to_built_or_bare"
    assert kind_areas([]) == {}
