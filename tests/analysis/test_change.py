"""Change detection on synthetic pairs with known change, the chunked path, thresholds, bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import ndimage as ndi

from sitewatch.analysis import _threshold as th
from sitewatch.analysis.change import (
    METHODS,
    ChangeConfig,
    change_polygons,
    clean_mask,
    common_bands,
    detect_change,
    pca_kmeans,
)
from sitewatch.analysis.changeeval import Scores
from sitewatch.errors import AnalysisError, InputError

BANDS = ("B02", "B03", "B04", "B08", "B11", "B12")


def make_pair(
    size: int = 96, *, seed: int = 0, gain: float = 1.3, offset: float = 150.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A textured 6-band uint16 scene, the same scene later with another gain/offset and noise, and a
    'construction' patch (vegetation -> bright bare soil) in two blocks; returns before, after, truth."""
    rng = np.random.default_rng(seed)
    base = ndi.gaussian_filter(rng.normal(size=(6, size, size)), (0, 3, 3))
    base = (base - base.mean()) / base.std()
    levels = np.array([900, 1000, 900, 2500, 1800, 1200.0])[:, None, None]
    before = levels + 250 * base
    truth = np.zeros((size, size), dtype=bool)
    truth[20:34, 30:48] = True
    truth[60:70, 60:75] = True
    after = before.copy()
    soil = np.array([1500, 1700, 1900, 2100, 3200, 2900.0])
    after[:, truth] = soil[:, None] + 40 * rng.normal(size=(6, int(truth.sum())))
    after = after * gain + offset + 25 * rng.normal(size=after.shape)
    return before.astype(np.uint16), np.clip(after, 0, 65535).astype(np.uint16), truth


@pytest.mark.parametrize(
    "method", ["cva", "irmad", "pca_kmeans", "log_ratio", "ndvi", "ndbi", "bsi"]
)
def test_each_method_finds_the_construction(method: str) -> None:
    before, after, truth = make_pair()
    res = detect_change(before, after, bands=BANDS, config=ChangeConfig(method=method))
    s = Scores.of(res.mask, truth)
    assert s.f1 > 0.65, (method, s.as_dict())
    assert res.magnitude.dtype == np.float32
    assert res.method == method
    assert np.isfinite(res.magnitude).all()


@pytest.mark.parametrize("threshold", ["otsu", "kmeans", "mad"])
def test_thresholds_separate_change_from_no_change(threshold: str) -> None:
    before, after, truth = make_pair(seed=1)
    res = detect_change(before, after, bands=BANDS, config=ChangeConfig(threshold=threshold))
    assert Scores.of(res.mask, truth).f1 > 0.7
    assert res.magnitude[truth].min() > res.threshold or Scores.of(res.mask, truth).recall > 0.9


def test_fixed_threshold_is_applied_as_given() -> None:
    before, after, _ = make_pair()
    res = detect_change(before, after, config=ChangeConfig(threshold="fixed", fixed_value=2.0))
    assert res.threshold == 2.0
    np.testing.assert_array_equal(res.mask, res.magnitude > 2.0)


def test_irmad_gives_chi2_statistic_and_converges() -> None:
    before, after, truth = make_pair(seed=2)
    res = detect_change(
        before, after, bands=BANDS, config=ChangeConfig(method="irmad", smooth_sigma=0)
    )
    assert res.threshold_method == "chi2"
    assert res.extra["converged"]
    rho = np.array(res.extra["rho"])
    assert ((rho > 0) & (rho <= 1)).all()
    # unchanged pixels are about chi-square(6): their median is close to the chi2(6) median 5.35
    assert 3.0 < float(np.median(res.magnitude[~truth])) < 9.0
    assert res.magnitude[truth].mean() > 50 * np.median(res.magnitude[~truth])


def test_invariant_normalisation_recovers_the_gain() -> None:
    before, after, truth = make_pair(seed=3, gain=1.5, offset=-200.0)
    res = detect_change(before, after, bands=BANDS, config=ChangeConfig(normalisation="invariant"))
    g = np.array(res.extra["after_gain"]) / np.array(res.extra["before_gain"])
    np.testing.assert_allclose(g, 1 / 1.5, rtol=0.05)
    assert 0.3 * truth.size < res.extra["invariant_pixels"] < 0.7 * truth.size
    assert Scores.of(res.mask, truth).f1 > 0.7


def test_index_difference_direction_is_reported() -> None:
    before, after, _ = make_pair(seed=4, gain=1.0, offset=0.0)
    res = detect_change(before, after, bands=BANDS, config=ChangeConfig(method="ndvi"))
    assert res.extra["signed_mean"] < 0  # vegetation lost to bare soil
    res = detect_change(before, after, bands=BANDS, config=ChangeConfig(method="bsi"))
    assert res.extra["signed_mean"] > 0


@pytest.mark.parametrize("method", ["cva", "irmad", "log_ratio", "ndbi", "pca_kmeans"])
def test_chunked_path_matches_in_memory(method: str) -> None:
    before, after, _ = make_pair(size=120, seed=5)
    before = before.astype(np.float32)
    before[:, :7, :9] = np.nan  # nodata straddling a chunk corner
    cfg = ChangeConfig(method=method)
    mem = detect_change(before, after, bands=BANDS, config=cfg)
    chk = detect_change(before, after, bands=BANDS, config=cfg, chunks=64)
    np.testing.assert_array_equal(chk.valid, mem.valid)
    np.testing.assert_array_equal(chk.mask, mem.mask)
    np.testing.assert_allclose(chk.magnitude, mem.magnitude, rtol=1e-4, atol=1e-5, equal_nan=True)
    assert chk.threshold == pytest.approx(mem.threshold, rel=1e-4)
    assert not mem.mask[:7, :9].any()


def test_nodata_pixels_are_never_changed() -> None:
    before, after, truth = make_pair(seed=6)
    after[:, 25:30, 35:40] = 0
    res = detect_change(before, after, config=ChangeConfig(), nodata_after=0)
    assert not res.valid[25:30, 35:40].any()
    assert not res.mask[25:30, 35:40].any()
    assert np.isnan(res.magnitude[25:30, 35:40]).all()
    assert Scores.of(res.mask, truth).f1 > 0.7


def test_all_nodata_is_a_clear_error() -> None:
    before, after, _ = make_pair()
    with pytest.raises(AnalysisError, match="valid pixel"):
        detect_change(before, np.zeros_like(after), nodata_after=0)


@pytest.mark.parametrize("method", ["cva", "irmad", "log_ratio"])
def test_constant_image_is_a_clear_error(method: str) -> None:
    before, _, _ = make_pair()
    flat = np.full_like(before, 1000)
    with pytest.raises(AnalysisError, match="constant"):
        detect_change(before, flat, bands=BANDS, config=ChangeConfig(method=method))


def test_identical_images_report_no_change_or_error() -> None:
    before, _, _ = make_pair()
    with pytest.raises(AnalysisError, match="constant or identical"):
        detect_change(before, before.copy())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not k-means' "one of the clusters is empty"
        with pytest.raises(AnalysisError, match="constant or identical"):
            detect_change(before, before.copy(), config=ChangeConfig(method="pca_kmeans"))


def test_image_smaller_than_window() -> None:
    before, after, _ = make_pair()
    with pytest.raises(AnalysisError, match="smaller than the 9 x 9 window"):
        detect_change(before[:, :6, :6], after[:, :6, :6])
    with pytest.raises(AnalysisError, match="window"):
        detect_change(
            before[:, :12, :12], after[:, :12, :12], config=ChangeConfig(method="pca_kmeans")
        )


def test_shape_and_band_mismatch() -> None:
    before, after, _ = make_pair()
    with pytest.raises(InputError, match="one grid"):
        detect_change(before, after[:, :-1])
    with pytest.raises(InputError, match="band name"):
        detect_change(before, after, bands=("B02",))
    with pytest.raises(InputError, match="needs a nir band"):
        detect_change(
            before[:3], after[:3], bands=("B02", "B03", "B04"), config=ChangeConfig(method="ndvi")
        )
    assert common_bands(["B02", "B03", "B08"], ["b08", "B02"]) == ("B02", "B08")
    with pytest.raises(InputError, match="no band in common"):
        common_bands(["B02"], ["B03"])


def test_config_validation() -> None:
    with pytest.raises(InputError, match="unknown change method"):
        ChangeConfig(method="magic")
    with pytest.raises(InputError, match="chi-square"):
        ChangeConfig(method="cva", threshold="chi2")
    with pytest.raises(InputError, match="needs a value"):
        ChangeConfig(threshold="fixed")
    assert set(METHODS) >= {"cva", "irmad", "pca_kmeans", "log_ratio", "ndvi", "ndbi", "bsi"}


def test_clean_mask_opening_and_minimum_mapping_unit() -> None:
    mask = np.zeros((40, 40), dtype=bool)
    mask[5:15, 5:15] = True  # 100 px
    mask[30:33, 30:33] = True  # 9 px
    mask[20, 2] = True  # speckle
    opened = clean_mask(mask, opening_radius=1)
    assert not opened[20, 2] and opened[10, 10]
    kept = clean_mask(mask, min_area_m2=20 * 100.0, pixel_area_m2=100.0)  # 20 px at 10 m
    assert kept[10, 10] and not kept[31, 31] and not kept[20, 2]
    assert kept.sum() == 100
    with pytest.raises(AnalysisError, match="pixel area"):
        clean_mask(mask, min_area_m2=100.0)


def test_minimum_mapping_unit_with_pixel_areas_per_row() -> None:
    """On a grid whose pixels shrink northwards (Web Mercator, geographic), two patches of the
    same pixel count are not the same area: a patch's area is the sum of its pixels' areas."""
    mask = np.zeros((40, 40), dtype=bool)
    mask[2:6, 5:9] = True  # 16 px in the north, 50 m2 each: 800 m2
    mask[32:36, 5:9] = True  # 16 px in the south, 100 m2 each: 1,600 m2
    rows = np.linspace(50.0, 100.0, 40)
    rows[:10], rows[30:] = 50.0, 100.0
    kept = clean_mask(mask, min_area_m2=1_000.0, pixel_area_m2=rows)
    assert kept[33, 6] and not kept[3, 6] and kept.sum() == 16
    # one value at the centre row (75 m2 a pixel: 1,200 m2 each) would have kept both
    assert clean_mask(mask, min_area_m2=1_000.0, pixel_area_m2=75.0).sum() == 32
    with pytest.raises(AnalysisError, match="one value for each of the mask's 40 rows"):
        clean_mask(mask, min_area_m2=1_000.0, pixel_area_m2=rows[:20])
    with pytest.raises(AnalysisError, match="pixel area"):
        clean_mask(mask, min_area_m2=1_000.0, pixel_area_m2=np.zeros(40))


def test_min_area_through_detect() -> None:
    before, after, _ = make_pair(seed=7)
    res = detect_change(
        before, after, config=ChangeConfig(min_area_m2=200 * 100.0), pixel_area_m2=100.0
    )
    # only the 14x18 block (252 px) is larger than 200 px; the 10x15 one is dropped
    assert res.mask[20:34, 30:48].mean() > 0.8
    assert not res.mask[60:70, 60:75].any()


def test_histogram_thresholds_on_known_distribution() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, 9000), rng.normal(10, 1, 1000)]).reshape(100, 100)
    valid = np.ones_like(x, dtype=bool)
    hist = th.histogram_of(x, valid)
    assert hist.total == 10000
    assert 3 < th.otsu_threshold(hist) < 7
    assert 3 < th.kmeans_threshold(hist) < 7
    assert hist.quantile(0.5) == pytest.approx(np.median(x), abs=0.02)
    t = th.mad_threshold(hist, k=3)
    assert 2.5 < t < 4.5
    assert th.chi2_threshold(4, alpha=0.05) == pytest.approx(9.4877, abs=1e-3)
    with pytest.raises(AnalysisError):
        th.chi2_threshold(4, alpha=0.0)


def test_pca_kmeans_on_difference_image() -> None:
    d = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    d[10:30, 10:30] += 5
    mask, score = pca_kmeans(d, np.ones_like(d, dtype=bool))
    assert mask[12:28, 12:28].all()
    assert mask.mean() < 0.2
    assert score.dtype == np.float32


def test_scores() -> None:
    pred = np.array([1, 1, 0, 0, 1], dtype=bool)
    truth = np.array([1, 0, 1, 0, 1], dtype=bool)
    s = Scores.of(pred, truth)
    assert (s.tp, s.fp, s.fn, s.tn) == (2, 1, 1, 1)
    assert s.precision == pytest.approx(2 / 3)
    assert s.f1 == pytest.approx(2 / 3)
    assert s.iou == pytest.approx(0.5)
    # kappa: po = 3/5, pe = (3*3 + 2*2)/25 = 13/25
    assert s.kappa == pytest.approx((0.6 - 13 / 25) / (1 - 13 / 25))


def test_closed_form_chi_square_survival_matches_scipy() -> None:
    from scipy import stats

    from sitewatch.analysis._irmad import chi2_sf

    x = np.linspace(0.0, 200.0, 2001)
    for df in (1, 2, 3, 4, 6, 13):
        np.testing.assert_allclose(chi2_sf(x, df), stats.chi2.sf(x, df), rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"threshold": "fixed", "fixed_value": float("nan")}, "finite"),
        ({"mad_k": -1.0}, "mad k"),
        ({"mad_k": float("inf")}, "mad k"),
        ({"chi2_alpha": 2.0}, "p-value"),
        ({"method": "irmad", "chi2_alpha": 0.0}, "p-value"),
        ({"min_area_m2": -5.0}, "min_area_m2"),
        ({"irmad_max_iter": 0}, "irmad_max_iter"),
    ],
)
def test_config_refuses_settings_that_mean_nothing(settings: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        ChangeConfig(**settings)


def test_change_polygons_carry_each_patch_pixels_and_magnitude() -> None:
    from rasterio.crs import CRS
    from rasterio.transform import from_origin

    mask = np.zeros((40, 40), bool)
    mask[5:25, 5:25] = True
    mask[10:20, 10:20] = False  # a ring, whose hole holds a second patch
    mask[13:17, 13:17] = True
    mask[30:33, 30:33] = True  # a third patch, its magnitude partly without data
    magnitude = np.arange(1600, dtype=np.float32).reshape(40, 40) / 100
    magnitude[30, 30:33] = np.nan
    t, crs = from_origin(500_000, 4_200_000, 10, 10), CRS.from_epsg(32652)
    feats = change_polygons(mask, t, crs, magnitude)
    props = {f["properties"]["pixels"]: f["properties"] for f in feats}
    assert sorted(props) == [9, 16, 300]  # the ring's hole is not counted as its pixels
    labels, _ = ndi.label(mask, structure=np.ones((3, 3)))
    for n, lab in ((300, labels[5, 5]), (16, labels[15, 15])):
        values = magnitude[labels == lab]
        assert props[n]["magnitude_mean"] == pytest.approx(values.mean(), abs=1e-4)
        assert props[n]["magnitude_max"] == pytest.approx(values.max(), abs=1e-4)
    # no-data magnitudes are left out of the mean, not counted as zero
    assert props[9]["magnitude_mean"] == pytest.approx(np.nanmean(magnitude[30:33, 30:33]), 1e-4)
    magnitude[30:33, 30:33] = np.nan
    props = {
        f["properties"]["pixels"]: f["properties"] for f in change_polygons(mask, t, crs, magnitude)
    }
    assert props[9]["magnitude_mean"] is None and props[9]["magnitude_max"] is None
    assert "pixels" not in change_polygons(mask, t, crs)[0]["properties"]  # without a magnitude
    with pytest.raises(ValueError, match="differ in shape"):
        change_polygons(mask, t, crs, magnitude[:-1])


def test_change_polygons_carry_each_patch_spectral_indices_before_and_after() -> None:
    """Cleared and built-on ground shows as NDVI falling and NDBI rising over the patch; the
    means are over the patch's pixels with data on both dates, computed from the changed pixels'
    values alone."""
    from rasterio.crs import CRS
    from rasterio.transform import from_origin

    from sitewatch.analysis.change import ChangedPixels, _index, _index_positions

    before, after, truth = make_pair()
    after[:, 21, 31] = 0  # one changed pixel without data in AFTER
    t, crs = from_origin(500_000, 4_200_000, 10, 10), CRS.from_epsg(32652)
    changed = ChangedPixels.of(truth, before, after, BANDS, nodata_after=0)
    assert changed.before.shape == (6, int(truth.sum())) and changed.indices() == (
        "ndvi",
        "ndbi",
        "mndwi",
        "bsi",
    )
    assert np.isnan(changed.after).sum() == 6 and not np.isnan(changed.before).any()
    feats = change_polygons(truth, t, crs, changed=changed)
    props = {f["properties"]["pixels"]: f["properties"] for f in feats}
    assert sorted(props) == [150, 252]
    big = props[252]
    assert big["ndvi_before"] > 0.3 and big["ndvi_after"] < 0.15  # vegetation cleared
    assert big["ndbi_after"] > big["ndbi_before"] + 0.2 and big["bsi_after"] > big["bsi_before"]
    # and the covers those means give: vegetation before, built-up or bare ground after
    assert (big["cover_before"], big["cover_after"]) == ("vegetation", "built_or_bare")
    assert big["kind"] == "vegetation_to_built_or_bare"
    # the exact means, over the 251 pixels with data on both dates
    ok = truth.copy()
    ok[21, 31] = False
    ok[60:70, 60:75] = False
    for name in ("ndvi", "mndwi"):
        pos = _index_positions(BANDS, name)
        for when, image in (("before", before), ("after", after)):
            want = _index(image[:, ok].astype(np.float64), pos, name).mean()
            assert big[f"{name}_{when}"] == pytest.approx(want, abs=5e-4)
    # over all the changed pixels with data on both dates, as a change event records them
    everywhere = truth.copy()
    everywhere[21, 31] = False
    pos = _index_positions(BANDS, "ndbi")
    want = _index(after[:, everywhere].astype(np.float64), pos, "ndbi").mean()
    assert changed.index_means()["ndbi_after"] == pytest.approx(want, abs=5e-4)
    # four bands without SWIR allow NDVI alone
    four = ChangedPixels.of(truth, before[:4], after[:4], BANDS[:4])
    p4 = change_polygons(truth, t, crs, changed=four)[0]["properties"]
    assert "ndvi_after" in p4 and "ndbi_after" not in p4 and "magnitude_mean" not in p4
    assert (p4["cover_before"], p4["cover_after"]) == ("vegetation", "other")
    assert p4["kind"] == "vegetation_to_other"
    assert "kind" not in change_polygons(truth, t, crs)[0]["properties"]  # without the values
    other = truth.copy()
    other[0, 0] = True  # values gathered on another mask
    with pytest.raises(ValueError, match="changed pixels"):
        change_polygons(truth, t, crs, changed=ChangedPixels.of(other, before, after, BANDS))


def test_mad_finding_nothing_where_most_changed_says_so(caplog: pytest.LogCaptureFixture) -> None:
    """The mad threshold assumes that most pixels did not change: when the changed ones are the
    majority (decades apart) it rises above them all, and an empty map is warned of with the
    thresholds that do find them (Otsu here finds the changed majority)."""
    rng = np.random.default_rng(3)
    before = 1000 + 20 * rng.normal(size=(4, 80, 80))
    wide = np.zeros((80, 80), dtype=bool)
    wide[:, :56] = True  # 70% of the scene changed by about 10 noise SDs in every band
    after = before + 20 * rng.normal(size=before.shape)
    after[:, wide] += 200
    config = {"method": "cva", "normalisation": "none", "smooth_sigma": 0.0}
    mad = detect_change(before, after, config=ChangeConfig(**config))
    otsu = detect_change(before, after, config=ChangeConfig(**config, threshold="otsu"))
    assert mad.changed_pixels == 0
    assert "no pixel reached the mad threshold" in caplog.text and "otsu" in caplog.text
    assert (otsu.mask == wide).mean() > 0.99
