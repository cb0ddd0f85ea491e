"""Activity index, change points and phases on synthetic series with known construction dates."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from sitewatch.analysis.activity import ActivityConfig, activity_series, change_points
from sitewatch.errors import AnalysisError

BANDS = ("blue", "green", "red", "nir")


def series(
    seed: int,
    n: int = 8,
    clear_at: int = 3,
    build_at: tuple[int, ...] = (4, 5),
    cloudy: tuple[int, ...] = (),
) -> tuple[np.ndarray, list[datetime], np.ndarray]:
    rng = np.random.default_rng(seed)
    size = 96
    veg = np.array([0.04, 0.08, 0.05, 0.35])
    soil = np.array([0.15, 0.18, 0.22, 0.26])
    concrete = np.array([0.35, 0.36, 0.37, 0.38])
    base = np.broadcast_to(veg[:, None, None], (4, size, size)).copy()
    base *= 1 + 0.1 * rng.standard_normal((1, size, size))  # texture fixed in time
    stack = []
    for t in range(n):
        img = base.copy()
        if t >= clear_at:
            img[:, 30:70, 30:70] = soil[:, None, None]
        for k, tb in enumerate(build_at):
            if t >= tb:
                img[:, 35 + 10 * k : 42 + 10 * k, 35:65] = concrete[:, None, None]
        img += 0.004 * rng.standard_normal(img.shape)
        stack.append(img)
    data = np.stack(stack)
    cloud = np.zeros((n, size, size), bool)
    for t in cloudy:
        cloud[t, :, :80] = True
        data[t, :, :, :80] = 0.9
    times = [datetime(2018 + t // 4, 1 + 3 * (t % 4), 15, 2, 0, tzinfo=UTC) for t in range(n)]
    return data, times, cloud


def test_phases_and_onset() -> None:
    data, times, cloud = series(0)
    act = activity_series(data, BANDS, times, cloud=cloud)
    assert act.phases == ("no_activity",) * 3 + (
        "site_preparation",
        "active_construction",
        "active_construction",
        "post_construction",
        "post_construction",
    )
    assert act.onset == times[3]
    assert [tr.after for tr in act.transitions] == [
        "site_preparation",
        "active_construction",
        "post_construction",
    ]
    assert act.changed[0] == 0.0 and act.changed[1] < 0.004
    assert act.bare[2] < 0.01 < 0.1 < act.bare[3]
    assert 3 in act.breakpoints or 4 in act.breakpoints
    rec = act.as_records()
    assert rec[3]["phase"] == "site_preparation" and rec[3]["active"]


def test_cloudy_dates_inherit_and_are_skipped() -> None:
    data, times, cloud = series(1, n=9, clear_at=5, build_at=(6,), cloudy=(2, 5))
    act = activity_series(data, BANDS, times, cloud=cloud)
    assert not act.clear[2] and not act.clear[5]
    # clearing happened at 5 under cloud: first seen on the next clear date, within one acquisition
    assert act.onset == times[6]
    assert act.phases[5] == "no_activity"
    assert act.phases[-1] == "post_construction"


@pytest.mark.parametrize("seed", range(10))
def test_onset_within_one_acquisition(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    clear_at = int(rng.integers(2, 6))
    data, times, cloud = series(seed, n=9, clear_at=clear_at, build_at=(clear_at + 1, clear_at + 2))
    act = activity_series(data, BANDS, times, cloud=cloud)
    assert act.onset is not None
    assert abs(times.index(act.onset) - clear_at) <= 1


def test_no_activity_series_stays_quiet() -> None:
    data, times, _ = series(3, clear_at=99, build_at=())
    act = activity_series(data, BANDS, times)
    assert set(act.phases) == {"no_activity"} and act.onset is None


def test_bad_input() -> None:
    data, times, cloud = series(0)
    with pytest.raises(AnalysisError, match="red and nir") as named:
        activity_series(data[:, :2], ("blue", "green"), times)
    assert "do not name their bands" not in str(named.value)
    # files that do not name their bands (b1, b2...): how to name them
    with pytest.raises(AnalysisError, match=r"do not name their bands.*sources\.toml.*bands = "):
        activity_series(data[:, :2], ("b1", "b2"), times)
    with pytest.raises(AnalysisError, match="at least two"):
        activity_series(data[:1], BANDS, times[:1])
    with pytest.raises(AnalysisError, match="no clear date"):
        activity_series(data, BANDS, times, cloud=np.ones_like(cloud))
    with pytest.raises(AnalysisError, match="8 images but 7 dates"):
        activity_series(data, BANDS, times[:7])
    with pytest.raises(AnalysisError, match="AOI covers no pixel"):
        activity_series(data, BANDS, times, aoi=np.zeros(data.shape[2:], bool))
    assert 0 < ActivityConfig().change_quantile < 1


def test_change_points_simple() -> None:
    y = np.array([0, 0, 0, 0, 5, 5, 5, 0, 0, 0], float)
    assert change_points(y) == (4, 7)
    assert change_points(np.zeros(5)) == ()


def ringed(seed: int, build_at: int | None) -> tuple[np.ndarray, list[datetime], np.ndarray]:
    """A gravel pad (the AOI) amid fields and bare ground; every date brings a scene-wide change of
    gain per band and of greenness, which the site and its surroundings share."""
    rng = np.random.default_rng(seed)
    n, size = 7, 120
    veg = np.array([0.04, 0.08, 0.05, 0.35])
    soil = np.array([0.15, 0.18, 0.22, 0.26])
    gravel = np.array([0.11, 0.12, 0.135, 0.18])
    roof = np.array([0.18, 0.20, 0.21, 0.23])
    aoi = np.zeros((size, size), bool)
    aoi[30:90, 30:90] = True
    texture = 1 + 0.08 * rng.standard_normal((size, size))
    stack = []
    for t in range(n):
        green = 0.5 + 0.5 * np.cos(2 * np.pi * t / 4)
        plant = soil + (0.4 + 0.6 * green) * (veg - soil)
        img = np.broadcast_to(plant[:, None, None], (4, size, size)).copy()
        img[:, :, :15] = soil[:, None, None]  # bare ground outside the site
        img[:, 40:80, 40:80] = gravel[:, None, None]
        if build_at is not None and t >= build_at:
            img[:, 50:60, 45:70] = roof[:, None, None]
        img *= texture * rng.uniform(0.85, 1.15, (4, 1, 1))  # gain per date and band
        img += 0.004 * rng.standard_normal(img.shape)
        stack.append(img)
    times = [datetime(2020, 1 + t, 10, tzinfo=UTC) for t in range(n)]
    return np.stack(stack), times, aoi


@pytest.mark.parametrize("seed", range(4))
def test_site_change_judged_against_its_surroundings(seed: int) -> None:
    data, times, aoi = ringed(seed, build_at=3)
    act = activity_series(data, BANDS, times, aoi=aoi, pixel_m=1.0)
    assert act.onset == times[3]
    assert act.active.tolist() == [False, False, False, True, False, False, False]
    assert 0.05 < act.changed[3] < 0.12  # the roof: 250 of 3600 site pixels (+ its blurred rim)
    quiet_data, _, _ = ringed(seed, build_at=None)
    quiet = activity_series(quiet_data, BANDS, times, aoi=aoi, pixel_m=1.0)
    assert quiet.onset is None and not quiet.active.any()


def test_small_patches_are_not_activity() -> None:
    data, times, aoi = ringed(0, build_at=3)
    # the roof is 250 m2 at 1 m pixels; with 5 m pixels' worth of minimum patch it is too small
    act = activity_series(
        data, BANDS, times, aoi=aoi, pixel_m=1.0, config=ActivityConfig(min_blob_m2=400.0)
    )
    assert act.onset is None


def test_no_surroundings_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    data, times, aoi = ringed(0, build_at=3)
    with caplog.at_level("WARNING", logger="sitewatch.analysis.activity"):
        activity_series(data, BANDS, times, aoi=aoi, pixel_m=1.0)
        assert "no surroundings" not in caplog.text
        activity_series(data, BANDS, times, pixel_m=1.0)
    assert "no surroundings" in caplog.text and "--ring" in caplog.text
