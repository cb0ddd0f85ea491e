"""Land cover of a change patch on each date from its index means, and the kind of change."""

from __future__ import annotations

import numpy as np
import pytest

from sitewatch.analysis.change import ChangeConfig
from sitewatch.analysis.landcover import (
    BUILT_OR_BARE,
    VEGETATION_NDVI,
    WATER_MNDWI,
    change_kind,
    cover,
    keep_after_covers,
    kind_areas,
    kind_confusion,
    kind_shares,
    parse_covers,
)
from sitewatch.errors import InputError


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
    assert next(iter(kind_areas(feats))) == "vegetation_to_built_or_bare"
    assert kind_areas([]) == {}


def test_kind_shares_order_by_area_whatever_order_the_store_kept() -> None:
    # as PostgreSQL's JSONB may give them back: keys reordered
    stored = {"within_vegetation": 150.0, "vegetation_to_built_or_bare": 1650.0, "x": 0.0}
    assert kind_shares(stored) == [
        ("vegetation_to_built_or_bare", pytest.approx(1650 / 1800)),
        ("within_vegetation", pytest.approx(150 / 1800)),
    ]
    assert kind_shares({"a": 100.0, "b": 100.0}) == [("a", 0.5), ("b", 0.5)]  # ties by name
    for nothing in (None, [], "within_water", {"a": "12"}, {"a": True}, {}):
        assert kind_shares(nothing) == []


SIX = ("B02", "B03", "B04", "B08", "B11", "B12")
SPECTRA = {  # reflectance x 10000
    "vegetation": (300, 500, 300, 3000, 1500, 800),  # NDVI 0.82
    "bare": (1200, 1400, 1600, 2000, 2800, 2400),  # NDVI 0.11, NDBI 0.17
    "water": (800, 700, 500, 300, 150, 100),  # MNDWI 0.65
}


def scene(patches: list[tuple[tuple[slice, slice], str]], ground: str) -> np.ndarray:
    img = np.empty((6, 40, 40), dtype=np.float32)
    img[:] = np.array(SPECTRA[ground], dtype=np.float32)[:, None, None]
    for (rows, cols), what in patches:
        img[:, rows, cols] = np.array(SPECTRA[what], dtype=np.float32)[:, None, None]
    return img


def test_the_after_cover_filter_keeps_only_patches_ending_in_those_covers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cleared, flooded, regrown, unseen = (
        (slice(2, 10), slice(2, 10)),
        (slice(2, 10), slice(20, 30)),
        (slice(20, 30), slice(2, 10)),
        (slice(20, 30), slice(20, 30)),
    )
    before = scene([(cleared, "vegetation"), (flooded, "bare"), (regrown, "bare")], "vegetation")
    after = scene([(cleared, "bare"), (flooded, "water"), (regrown, "vegetation")], "vegetation")
    before[:, unseen[0], unseen[1]] = np.nan  # a patch without data on BEFORE: cover unknown
    mask = np.zeros((40, 40), dtype=bool)
    for rows, cols in (cleared, flooded, regrown, unseen):
        mask[rows, cols] = True
    kept = keep_after_covers(mask, before, after, SIX, ("built_or_bare", "other"))
    want = np.zeros_like(mask)
    want[cleared] = True
    want[unseen] = True  # kept: nothing tells what it became
    np.testing.assert_array_equal(kept, want)
    # other covers, and the empty filter (everything kept)
    water = keep_after_covers(mask, before, after, SIX, ("water",))
    np.testing.assert_array_equal(water, _only(flooded) | _only(unseen))
    np.testing.assert_array_equal(keep_after_covers(mask, before, after, SIX, ()), mask)
    # with no-data values instead of NaN
    b16 = np.nan_to_num(before, nan=0).astype(np.uint16)
    np.testing.assert_array_equal(
        keep_after_covers(mask, b16, after, SIX, "built_or_bare,other", nodata_before=0), want
    )
    # four bands: no SWIR, so water and bare ground both read as 'other' (with a warning)
    with caplog.at_level("WARNING"):
        four = keep_after_covers(mask, before[:4], after[:4], SIX[:4], ("other",))
    assert "without a SWIR band" in caplog.text
    np.testing.assert_array_equal(four, mask & ~_only(regrown))
    with pytest.raises(InputError, match="allow no spectral index"):
        keep_after_covers(mask, before[:2], after[:2], SIX[:2], ("other",))


def test_kind_confusion_counts_each_detected_pixel_under_its_patch_kind() -> None:
    cleared, flooded = (slice(2, 10), slice(2, 10)), (slice(2, 10), slice(20, 30))
    before = scene([(cleared, "vegetation"), (flooded, "bare")], "vegetation")
    after = scene([(cleared, "bare"), (flooded, "water")], "vegetation")
    pred = _only(cleared) | _only(flooded)
    truth = _only(cleared).copy()
    truth[2:4, 2:10] = False  # 16 of the cleared patch's 64 pixels are not labelled change
    truth[30:35, 30:35] = True  # a missed change counts nowhere here
    assert kind_confusion(pred, truth, before, after, SIX) == {
        "vegetation_to_built_or_bare": {"tp": 48, "fp": 16},
        "built_or_bare_to_water": {"tp": 0, "fp": 80},
    }
    assert kind_confusion(pred, truth, before, after, SIX, by="cover_after") == {
        "built_or_bare": {"tp": 48, "fp": 16},
        "water": {"tp": 0, "fp": 80},
    }
    with pytest.raises(ValueError, match="by must be one of"):
        kind_confusion(pred, truth, before, after, SIX, by="area")
    assert kind_confusion(np.zeros_like(pred), truth, before, after, SIX) == {}
    before[:, 2:10, 20:30] = np.nan  # no data on BEFORE: the kind cannot be told
    assert kind_confusion(pred, truth, before, after, SIX)["unknown"] == {"tp": 0, "fp": 80}
    with pytest.raises(ValueError, match="differ in shape"):
        kind_confusion(pred, truth[:-1], before, after, SIX)


def _only(window: tuple[slice, slice]) -> np.ndarray:
    m = np.zeros((40, 40), dtype=bool)
    m[window] = True
    return m


def test_cover_names_are_checked() -> None:
    assert parse_covers(" Built_or_bare, other ,other") == ("built_or_bare", "other")
    assert parse_covers("") == () and parse_covers([]) == ()
    with pytest.raises(InputError, match=r"unknown land cover.*'forest'.*water, vegetation"):
        parse_covers("forest,water")
    with pytest.raises(InputError, match="unknown land cover"):
        ChangeConfig(after_covers=("urban",))
    assert ChangeConfig(after_covers=("water", "water")).after_covers == ("water",)
