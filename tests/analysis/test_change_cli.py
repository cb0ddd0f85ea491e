"""``sitewatch change``: detect on GeoTIFF pairs (COG, GeoJSON, catalog event), evaluations, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from sitewatch.catalog.models import Site
from sitewatch.catalog.store import Catalog

from .test_change import BANDS, make_pair

ORIGIN = (500_000.0, 4_200_000.0)  # UTM 52N, 10 m pixels
SITE_LON, SITE_LAT = 129.0055, 37.9433  # inside the 96 x 96 px images from ORIGIN


def write_tif(path: Path, data: np.ndarray, *, crs: str = "EPSG:32652", res: float = 10.0,
              origin: tuple[float, float] = ORIGIN, names: tuple[str, ...] = BANDS) -> Path:  # fmt: skip
    with rasterio.open(
        path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
        dtype=data.dtype, crs=crs, transform=from_origin(*origin, res, res),
    ) as dst:  # fmt: skip
        dst.write(data)
        for i, n in enumerate(names[: data.shape[0]]):
            dst.set_band_description(i + 1, n)
    return path


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path, np.ndarray]:
    before, after, truth = make_pair()
    return (
        write_tif(tmp_path / "before.tif", before),
        write_tif(tmp_path / "after.tif", after),
        truth,
    )


def test_detect_writes_cog_and_polygons(
    sw: Any, pair: tuple[Path, Path, np.ndarray], tmp_path: Path
) -> None:
    b, a, truth = pair
    out = tmp_path / "change.tif"
    r = sw("change", "detect", str(b), str(a), "-o", str(out), "--min-area", "5000", "--json")
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    with rasterio.open(out) as ds:
        assert ds.count == 2 and ds.crs.to_epsg() == 32652
        assert ds.descriptions == ("change_mask", "magnitude")
        assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG" and np.isnan(ds.nodata)
        mask = ds.read(1) == 1
        magnitude = ds.read(2)
        assert magnitude.dtype == np.float32
    assert (mask & truth).sum() / truth.sum() > 0.8
    gj = json.loads(out.with_suffix(".geojson").read_text())
    areas = sorted(f["properties"]["area_m2"] for f in gj["features"])
    # the two construction blocks: 14 x 18 and 10 x 15 pixels of 100 m² (rings may grow by a pixel)
    assert len(areas) == 2
    assert areas[0] == pytest.approx(150 * 100, rel=0.25)
    assert areas[1] == pytest.approx(252 * 100, rel=0.25)
    assert summary["polygons"] == 2
    lon, lat = gj["features"][0]["geometry"]["coordinates"][0][0]
    assert 125 < lon < 130 and 37 < lat < 38.5  # lon/lat, not UTM metres
    # the COG's scratch file and temporary names are gone
    assert sorted(f.name for f in tmp_path.iterdir()) == [
        "after.tif", "before.tif", "change.geojson", "change.tif",
    ]  # fmt: skip
    # each polygon carries its patch's pixels and magnitude, as the COG's bands give them
    from scipy import ndimage

    labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
    patches = sorted(
        (int((labels == i).sum()), float(magnitude[labels == i].mean()),
         float(magnitude[labels == i].max())) for i in range(1, n + 1)
    )  # fmt: skip
    props = sorted(
        (f["properties"]["pixels"], f["properties"]["magnitude_mean"],
         f["properties"]["magnitude_max"]) for f in gj["features"]
    )  # fmt: skip
    assert [p[0] for p in props] == [p[0] for p in patches]
    flat = [v for p in patches for v in p[1:]]
    assert [v for p in props for v in p[1:]] == pytest.approx(flat, abs=1e-4)
    assert props[0][1] > summary["threshold"]  # cva: every changed pixel is above it
    # and its spectral indices before and after: vegetation cleared, ground built on
    for f in gj["features"]:
        p = f["properties"]
        assert p["ndvi_before"] > 0.3 and p["ndvi_after"] < 0.15
        assert p["ndbi_after"] > p["ndbi_before"] + 0.2
        assert p["kind"] == "vegetation_to_built_or_bare"
    # the summary's areas by kind are the polygons' areas
    assert summary["kinds"] == {"vegetation_to_built_or_bare": pytest.approx(sum(areas), abs=0.2)}


def test_detect_keeps_only_patches_ending_in_the_given_covers(
    sw: Any, pair: tuple[Path, Path, np.ndarray], tmp_path: Path
) -> None:
    b, a, _ = pair

    def detect(*extra: str) -> dict[str, Any]:
        r = sw("change", "detect", str(b), str(a), "-o", str(tmp_path / "c.tif"), "--min-area",
               "5000", "--json", *extra)  # fmt: skip
        assert r.code == 0, r.err
        return dict(json.loads(r.out))

    every = detect()
    built = detect("--after-cover", "built_or_bare,other")
    assert built["config"]["after_covers"] == ["built_or_bare", "other"]
    assert built["changed_pixels"] == every["changed_pixels"] > 0  # cleared ground: all kept
    water = detect("--after-cover", "water")
    assert water["changed_pixels"] == 0 and water["polygons"] == 0  # nothing ended as water
    r = sw("change", "detect", str(b), str(a), "-o", str(tmp_path / "c.tif"),
           "--after-cover", "forest")  # fmt: skip
    assert r.code == 2 and "unknown land cover(s) 'forest'" in r.err


def test_detect_reprojects_after_and_uses_common_bands(sw: Any, tmp_path: Path) -> None:
    before, after, truth = make_pair()
    b = write_tif(tmp_path / "b.tif", before)
    # AFTER at 5 m on a shifted grid, and without B12
    a_fine = np.repeat(np.repeat(after[:5], 2, axis=1), 2, axis=2)
    a = write_tif(tmp_path / "a.tif", a_fine, res=5.0, names=BANDS[:5])
    r = sw("change", "detect", str(b), str(a), "-o", str(tmp_path / "o.tif"), "--json")
    assert r.code == 0, r.err
    assert "reprojecting AFTER" in r.err and "B12" in r.err
    assert json.loads(r.out)["bands"] == list(BANDS[:5])
    with rasterio.open(tmp_path / "o.tif") as ds:
        mask = ds.read(1) == 1
    assert (mask & truth).sum() / max(mask.sum(), 1) > 0.6


def test_detect_records_change_event(
    sw: Any, pair: tuple[Path, Path, np.ndarray], tmp_path: Path
) -> None:
    b, a, _ = pair
    url = f"sqlite:///{tmp_path / 'cat.db'}"
    with Catalog(url, actor="tester") as cat:
        cat.add_site(Site(id="test-site", name="Test", lon=SITE_LON, lat=SITE_LAT))
    r = sw("--db", url, "change", "detect", str(b), str(a), "-o", str(tmp_path / "o.tif"),
           "--site", "test-site", "--before-date", "2020-01-01", "--after-date", "2021-06-01", "--json")  # fmt: skip
    assert r.code == 0, r.err
    with Catalog(url, actor="tester") as cat:
        events = cat.list_change_events("test-site")
    assert len(events) == 1
    assert events[0].method == "cva" and events[0].area_m2 > 30_000
    assert events[0].geometry is not None and events[0].id == json.loads(r.out)["change_event"]
    # with what kind of change it is: vegetation cleared to bright soil
    ndvi = (events[0].details["indices"]["ndvi_before"], events[0].details["indices"]["ndvi_after"])
    assert ndvi[0] > 0.3 and ndvi[1] < 0.15
    kinds = events[0].details["kinds"]  # m² by kind, largest first: the cleared blocks
    largest = next(iter(kinds))
    assert largest == "vegetation_to_built_or_bare" and kinds[largest] > 30_000
    assert sum(kinds.values()) == pytest.approx(events[0].area_m2, abs=1.0)
    # the same dates and method again, with a minimum mapping unit: the event is replaced
    r = sw("--db", url, "change", "detect", str(b), str(a), "-o", str(tmp_path / "o.tif"),
           "--site", "test-site", "--before-date", "2020-01-01", "--after-date", "2021-06-01",
           "--min-area", "5000")  # fmt: skip
    assert r.code == 0, r.err
    assert f"change event {events[0].id} of test-site (2020-01-01 -> 2021-06-01) replaced (version 2" in " ".join(r.out.split())  # fmt: skip
    with Catalog(url, actor="tester") as cat:
        (again,) = cat.list_change_events("test-site")
    assert again.id == events[0].id and again.version == 2
    assert again.details["patches"] < events[0].details["patches"]
    listed = sw("--db", url, "change", "events", "test-site")
    assert listed.code == 0 and again.id in listed.out and "2020-01-01" in listed.out
    assert sw("--db", url, "change", "events", "test-site", "--json").json()[0]["version"] == 2
    r = sw("--db", url, "change", "delete", again.id, "--expect-version", "1", "--yes")
    assert r.code != 0 and "version" in r.err
    r = sw("--db", url, "change", "delete", again.id, "--yes")
    assert r.code == 0 and "deleted change event" in r.out
    assert "no change events of test-site" in sw("--db", url, "change", "events", "test-site").out
    r = sw("--db", url, "change", "delete", again.id, "--yes")
    assert r.code != 0 and "`sitewatch change events SITE` lists" in r.err
    r = sw(
        "--db",
        url,
        "change",
        "detect",
        str(b),
        str(a),
        "-o",
        str(tmp_path / "o.tif"),
        "--site",
        "x",
    )
    assert r.code == 2 and "--before-date" in r.err


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "no such file or folder"),
        ("nodata", "0 valid pixel"),
        ("tiny", "window"),
        ("disjoint_bands", "no band in common"),
        ("corner", "only 25 pixel(s) of 9,216 have data in both images"),
        ("output_folder_missing", "does not exist"),
    ],
)
def test_detect_bad_input(sw: Any, tmp_path: Path, setup: str, message: str) -> None:
    before, after, _ = make_pair()
    b = write_tif(tmp_path / "b.tif", before)
    if setup == "missing":
        a = tmp_path / "nope.tif"
    elif setup == "nodata":
        with rasterio.open(
            tmp_path / "a.tif", "w", driver="GTiff", width=96, height=96, count=6, dtype="uint16",
            crs="EPSG:32652", transform=from_origin(*ORIGIN, 10, 10), nodata=0,
        ) as dst:  # fmt: skip
            dst.write(np.zeros_like(after))
            for i, n in enumerate(BANDS):
                dst.set_band_description(i + 1, n)
        a = tmp_path / "a.tif"
    elif setup == "tiny":
        b = write_tif(tmp_path / "b.tif", before[:, :5, :5])
        a = write_tif(tmp_path / "a.tif", after[:, :5, :5])
    elif setup == "output_folder_missing":
        a = write_tif(tmp_path / "a.tif", after)
    elif setup == "corner":  # AFTER covers 5 x 5 of BEFORE's 96 x 96 pixels
        a = write_tif(
            tmp_path / "a.tif", after[:, 40:45, 40:45], origin=(ORIGIN[0] + 400, ORIGIN[1] - 400)
        )
    else:
        a = write_tif(tmp_path / "a.tif", after[:2], names=("x1", "x2"))
    out = tmp_path / ("nope/o.tif" if setup == "output_folder_missing" else "o.tif")
    r = sw("change", "detect", str(b), str(a), "-o", str(out))
    assert r.code == 2
    assert message in r.err
    if setup == "corner":
        assert "AFTER covers only 0.27% of BEFORE (25 of 9,216 px)" in " ".join(r.err.split())
    assert not out.exists() and not out.parent.with_name("nope").exists()


def test_detect_folder_of_band_files(sw: Any, tmp_path: Path) -> None:
    before, after, _ = make_pair()
    for name, arr in (("t0", before), ("t1", after)):
        (tmp_path / name).mkdir()
        for i, band in enumerate(BANDS):
            if band in ("B11", "B12"):  # 20 m bands at half the size
                write_tif(
                    tmp_path / name / f"T52_{band}.tif",
                    arr[i : i + 1, ::2, ::2],
                    res=20.0,
                    names=(band,),
                )
            else:
                write_tif(tmp_path / name / f"T52_{band}.tif", arr[i : i + 1], names=(band,))
    r = sw("change", "detect", str(tmp_path / "t0"), str(tmp_path / "t1"), "-o", str(tmp_path / "o.tif"),
           "--method", "ndbi", "--json")  # fmt: skip
    assert r.code == 0, r.err
    assert json.loads(r.out)["bands"] == sorted(BANDS)


def test_folder_of_same_grid_integer_bands_is_read_as_stored(tmp_path: Path) -> None:
    from sitewatch.analysis._changeio import read_image
    from sitewatch.analysis.change import detect_change

    before, after, _ = make_pair()
    before[:, :5, :5] = 0  # no data in the corner
    stack = write_tif(tmp_path / "stack.tif", before)
    with rasterio.open(stack, "r+") as ds:
        ds.nodata = 0
    (tmp_path / "t0").mkdir()
    for i, band in enumerate(BANDS[:4]):  # the 10 m bands: one grid, one integer type
        write_tif(tmp_path / "t0" / f"T52_{band}.tif", before[i : i + 1], names=(band,))
        with rasterio.open(tmp_path / "t0" / f"T52_{band}.tif", "r+") as ds:
            ds.nodata = 0
    folder = read_image(tmp_path / "t0")
    # uint16 as stored (half the memory of float32) with its no-data value, not NaN
    assert folder.data.dtype == np.uint16 and folder.nodata == 0
    np.testing.assert_array_equal(folder.data, before[:4])
    assert folder.bands == tuple(sorted(BANDS[:4]))
    # the same bands from a multi-band file: the same pixels and the same change map
    whole = read_image(stack, bands=folder.bands)
    np.testing.assert_array_equal(whole.data, folder.data)
    after4 = after[[BANDS.index(b) for b in folder.bands]]
    a = detect_change(folder.data, after4, bands=folder.bands, nodata_before=folder.nodata)
    b = detect_change(whole.data, after4, bands=whole.bands, nodata_before=whole.nodata)
    np.testing.assert_array_equal(a.mask, b.mask)
    assert not a.valid[:5, :5].any() and a.valid[5:, 5:].all()
    # all of a file's bands in its order: its pixels, not a copy
    every = read_image(stack)
    assert read_image(stack, bands=every.bands).data.shape == every.data.shape
    from sitewatch.analysis._changeio import _pick

    assert _pick(every, every.bands, stack).data is every.data
    assert _pick(every, every.bands[::-1], stack).data is not every.data


def test_eval_oscd_one_city(sw: Any, shared_data: Path) -> None:
    r = sw("change", "eval-oscd", str(shared_data / "oscd"), "--cities", "bercy", "--json")
    assert r.code == 0, r.err
    res = json.loads(r.out)
    assert set(res["per_item"]) == {"bercy"}
    pooled = res["pooled"]
    assert set(pooled) >= {"precision", "recall", "f1", "iou", "kappa"}
    assert pooled["tp"] + pooled["fp"] + pooled["fn"] + pooled["tn"] == 395 * 360
    assert pooled["f1"] > 0.1  # far above chance for a 0.7 % change class
    # every detected pixel is counted once under the kind of change of its patch
    by_kind = res["by_kind"]
    assert sum(c["tp"] for c in by_kind.values()) == pooled["tp"]
    assert sum(c["fp"] for c in by_kind.values()) == pooled["fp"]
    sizes = [c["tp"] + c["fp"] for c in by_kind.values()]
    assert sizes == sorted(sizes, reverse=True) and "unknown" not in by_kind
    for c in by_kind.values():
        assert c["precision"] == pytest.approx(c["tp"] / (c["tp"] + c["fp"]), abs=1e-4)
    r = sw("change", "eval-oscd", str(shared_data / "oscd"), "--cities", "bercy")
    assert r.code == 0 and "detected pixels by the kind of change" in r.out
    r = sw("change", "eval-oscd", str(shared_data / "oscd"), "--cities", "atlantis")
    assert r.code == 2 and "no city 'atlantis'" in r.err
    r = sw("change", "eval-oscd", str(shared_data / "oscd"), "--cities", " , ")
    assert r.code == 2 and "no city in ' , '" in r.err  # not silently every city


def test_eval_oscd_coregisters_each_city_unless_told_not_to(sw: Any, tmp_path: Path) -> None:
    """The OSCD per-band files are not registered (the labels were drawn on registered pairs):
    the loader moves AFTER onto BEFORE, reports the shift per city, and scores better for it."""
    from scipy import ndimage

    before, after, truth = make_pair(128)
    moved = ndimage.shift(after.astype(np.float64), (0, 1.5, -1.0), order=1, mode="nearest")
    city = tmp_path / "oscd" / "lyon"
    for folder, img in (("imgs_1", before), ("imgs_2", np.rint(moved).astype(np.uint16))):
        (city / folder).mkdir(parents=True)
        for i, band in enumerate(BANDS):
            write_tif(city / folder / f"T31_{band}.tif", img[i : i + 1], names=(band,))
    (city / "cm").mkdir()
    write_tif(city / "cm" / "lyon-cm.tif", (1 + truth).astype(np.uint8)[None], names=("cm",))
    f1 = {}
    for flag in ("--coregister", "--no-coregister"):
        r = sw("change", "eval-oscd", str(tmp_path / "oscd"), flag, "--json")
        assert r.code == 0, r.err
        item = json.loads(r.out)["per_item"]["lyon"]
        f1[flag] = item["f1"]
        if flag == "--coregister":
            reg = item["coregistration"]
            assert reg["corrected"] and reg["band"] == "B08"
            assert reg["dy_px"] == pytest.approx(-1.5, abs=0.2)
            assert reg["dx_px"] == pytest.approx(1.0, abs=0.2)
        else:
            assert "coregistration" not in item
    assert f1["--coregister"] > 0.85 and f1["--coregister"] > f1["--no-coregister"] + 0.05, f1


def test_oscd_folder_with_an_incomplete_city_names_what_it_lacks(
    sw: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from sitewatch.analysis.changeeval import oscd_cities

    two = tmp_path / "two"  # one complete city beside an incomplete one: a warning
    for city in ("lyon", "paris"):
        (two / city / "imgs_1").mkdir(parents=True)
        (two / city / "imgs_2").mkdir()
    (two / "lyon" / "cm").mkdir()
    (two / "lyon" / "cm" / "lyon-cm.tif").write_bytes(b"")
    with caplog.at_level("WARNING"):  # before the CLI, which replaces the root handlers
        assert oscd_cities(two) == ["lyon"]
    assert "paris lacks cm/paris-cm.tif" in caplog.text
    one = tmp_path / "one"  # no complete city: the error names what each lacks
    (one / "paris" / "imgs_1").mkdir(parents=True)
    (one / "notes").mkdir()  # an unrelated folder is not a city
    r = sw("change", "eval-oscd", str(one))
    assert r.code == 2 and "incomplete: paris lacks imgs_2, cm/paris-cm.tif" in r.err
    assert "notes" not in r.err


def test_eval_pairs(sw: Any, shared_data: Path) -> None:
    r = sw(
        "change",
        "eval-pairs",
        str(shared_data / "change-samples" / "SZTAKI_AirChange_Benchmark"),
        "--json",
    )
    assert r.code == 0, r.err
    res = json.loads(r.out)
    assert set(res["per_item"]) == {"Szada/1", "Tiszadob/3"}
    assert 0.0 < res["pooled"]["f1"] <= 1.0
    assert res["by_kind"] == {}  # RGB pictures allow no spectral index


def _archive_pair(site_id: str) -> np.ndarray:
    """Store the test pair as two archive chips of ``site_id`` (the second clouded over its first
    construction block); returns the truth of the block left clear."""
    from datetime import UTC, datetime

    from sitewatch.config import get_settings
    from sitewatch.imagery.archive import Archive
    from sitewatch.imagery.chips import Chip
    from sitewatch.imagery.scene import Scene

    before, after, truth = make_pair()
    cloud = np.zeros(truth.shape, dtype=bool)
    cloud[15:40, 25:55] = True
    archive = Archive(get_settings().archive_path)
    for i, (data, year) in enumerate(((before, 2020), (after, 2021))):
        scene = Scene(
            id=f"s2-{year}", sensor="sentinel-2", datetime=datetime(year, 6, 1, tzinfo=UTC),
            assets={b: f"{b}.tif" for b in BANDS}, crs="EPSG:32652",
        )  # fmt: skip
        chip = Chip(
            data=data, bands=BANDS, crs="EPSG:32652",
            transform=from_origin(*ORIGIN, 10, 10), valid=np.ones(truth.shape, dtype=bool),
            scene=scene, cloud=cloud if i else None,
        )  # fmt: skip
        archive.add_chip(site_id, chip, source="test")
    return truth & ~cloud


def test_detect_archive_scene_ids(sw: Any, tmp_path: Path) -> None:
    clear = _archive_pair("test-site")
    url = f"sqlite:///{tmp_path / 'cat.db'}"
    with Catalog(url, actor="tester") as cat:
        cat.add_site(Site(id="test-site", name="Test", lon=SITE_LON, lat=SITE_LAT))
    out = tmp_path / "o.tif"
    r = sw("--db", url, "change", "detect", "s2-2020", "s2-2021-10m", "-o", str(out),
           "--site", "test-site", "--json")  # fmt: skip
    assert r.code == 0, r.err
    with rasterio.open(out) as ds:
        mask, valid = ds.read(1) == 1, ds.read(2)
    assert (mask & clear).sum() / clear.sum() > 0.8  # the clear block is found
    assert not mask[15:40, 25:55].any()  # the clouded one is not analysed
    assert np.isnan(valid[20, 30])
    with Catalog(url, actor="tester") as cat:
        (event,) = cat.list_change_events("test-site")
    assert (event.before.year, event.after.year) == (2020, 2021)  # the chips' dates


def test_detect_archive_ids_bad(sw: Any, tmp_path: Path) -> None:
    _archive_pair("site-a")
    _archive_pair("site-b")
    out = str(tmp_path / "o.tif")
    r = sw("change", "detect", "s2-2020", "s2-2021", "-o", out)
    assert r.code == 2 and "names 2 archived chips" in r.err and "--site" in r.err
    r = sw("change", "detect", "s2-2020", "s2-1999", "-o", out, "--site", "site-a")
    assert r.code == 2 and "no chip with that item or scene id" in r.err and "imagery ls" in r.err
    # the chips are found, but --site also records the event: an unknown catalog site is refused
    # before anything is written
    r = sw("change", "detect", "s2-2020", "s2-2021", "-o", out, "--site", "site-b")
    assert r.code == 2 and "no site with id 'site-b'" in r.err
    assert not Path(out).exists()


def test_detect_measures_and_corrects_misregistration(sw: Any, tmp_path: Path) -> None:
    from scipy import ndimage

    before, after, truth = make_pair(128)
    # AFTER lands 1.5 rows down and 1 column left of BEFORE (a typical orthorectification error)
    moved = ndimage.shift(after.astype(np.float64), (0, 1.5, -1.0), order=1, mode="nearest")
    b = write_tif(tmp_path / "b.tif", before)
    a = write_tif(tmp_path / "a.tif", np.rint(moved).astype(np.uint16))
    scores = {}
    # co-registration is on by default, as in eval-oscd, train-oscd and the monitor
    for flag in ((), ("--coregister",), ("--no-coregister",)):
        corrected = flag != ("--no-coregister",)
        out = tmp_path / f"o{len(scores)}.tif"
        r = sw("change", "detect", str(b), str(a), "-o", str(out), "--json", *flag)
        assert r.code == 0, r.err
        reg = json.loads(r.out)["coregistration"]
        assert reg["measured"] and reg["band"] == "B08" and reg["corrected"] == corrected
        assert reg["dy_px"] == pytest.approx(-1.5, abs=0.2)
        assert reg["dx_px"] == pytest.approx(1.0, abs=0.2)
        assert ("misregistered by 1." in r.err) != corrected
        with rasterio.open(out) as ds:
            mask = ds.read(1) == 1
        tp = (mask & truth).sum()
        scores[flag] = 2 * tp / (mask.sum() + truth.sum())
    assert scores[()] == scores[("--coregister",)]
    scores = {c: scores[f] for c, f in ((True, ()), (False, ("--no-coregister",)))}
    # edges of the shifted texture no longer show as change
    assert scores[True] > 0.85 and scores[True] > scores[False] + 0.05, scores


def test_detect_leaves_tile_sized_pairs_uncorrected_unless_told(
    sw: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from scipy import ndimage

    import sitewatch.cli.change as cli_change

    before, after, _ = make_pair(128)
    moved = ndimage.shift(after.astype(np.float64), (0, 1.5, -1.0), order=1, mode="nearest")
    b = write_tif(tmp_path / "b.tif", before)
    a = write_tif(tmp_path / "a.tif", np.rint(moved).astype(np.uint16))
    # a 128 x 128 pair stands in for a tile: above the limit the moved copy of AFTER is not made
    monkeypatch.setattr(cli_change, "_CHUNK_ABOVE_PX", 128 * 128 - 1)
    for flag, corrected in (((), False), (("--coregister",), True)):
        r = sw("change", "detect", str(b), str(a), "-o", str(tmp_path / "o.tif"), "--json", *flag)
        assert r.code == 0, r.err
        reg = json.loads(r.out)["coregistration"]
        assert reg["measured"] and reg["corrected"] == corrected
        assert reg["dy_px"] == pytest.approx(-1.5, abs=0.3)
        assert ("misregistered by 1." in r.err and "--coregister" in r.err) != corrected
    monkeypatch.setattr(cli_change, "_CHUNK_ABOVE_PX", 128 * 128)  # at the limit: on by default
    r = sw("change", "detect", str(b), str(a), "-o", str(tmp_path / "o.tif"), "--json")
    assert r.code == 0 and json.loads(r.out)["coregistration"]["corrected"], r.err


def test_coregistration_leaves_implausible_shifts_alone(caplog: pytest.LogCaptureFixture) -> None:
    """A shift beyond what co-registration corrects, or one that does not make the images more
    alike (phase correlation locked onto a changed scene), is reported and not applied."""
    from scipy import ndimage

    from sitewatch.analysis._changeio import Raster, coregister_pair
    from sitewatch.imagery.coregister import register_stack

    before, after, _ = make_pair(128)
    t = from_origin(*ORIGIN, 10.0, 10.0)
    b = Raster(before.astype(np.float32), BANDS, rasterio.CRS.from_epsg(32652), t, None)
    far = ndimage.shift(after.astype(np.float32), (0, 5.0, 4.0), order=1, mode="nearest")
    with caplog.at_level("WARNING"):
        out, rep = coregister_pair(b, Raster(far, BANDS, b.crs, t, None))
    assert rep["dy_px"] == pytest.approx(-5.0, abs=0.2) and rep["dx_px"] == pytest.approx(
        -4.0, abs=0.2
    )
    assert rep["rejected"] and not rep["corrected"] and np.array_equal(out.data, far)
    assert "beyond the 3 px" in caplog.text and "beyond the 3 px" in rep["reason"]
    # a wholly different scene: whatever shift is measured does not make AFTER more like BEFORE
    other = np.random.default_rng(3).normal(1000, 100, before.shape).astype(np.float32)
    moved, rep = register_stack(b.data, other, BANDS, max_shift_px=1e9)
    assert moved is None and rep["rejected"] and rep["correlation_after"] < 0.2
    same, rep = register_stack(b.data, b.data, BANDS)  # nothing to move: not a rejection
    assert same is None and not rep["rejected"] and rep["magnitude_px"] == 0
    # measuring only (apply=False) checks the shift but moves nothing
    near = ndimage.shift(after.astype(np.float32), (0, 1.0, -0.5), order=1, mode="nearest")
    none, rep = register_stack(b.data, near, BANDS, apply=False)
    assert (
        none is None
        and not rep["rejected"]
        and rep["correlation_after"] > rep["correlation_before"]
    )
    # within reach, it is applied (and raises the correlation)
    out, rep = coregister_pair(b, Raster(near, BANDS, b.crs, t, None))
    assert rep["corrected"] and rep["correlation_after"] > rep["correlation_before"]


def test_detect_checks_both_outputs_before_the_work(sw: Any, tmp_path: Path) -> None:
    before, after, _ = make_pair()
    b, a = write_tif(tmp_path / "b.tif", before), write_tif(tmp_path / "a.tif", after)
    out = tmp_path / "o.tif"
    bad = tmp_path / "nope" / "o.geojson"
    r = sw("change", "detect", str(b), str(a), "-o", str(out), "--geojson", str(bad))
    assert r.code == 2 and "nope does not exist" in r.err
    assert not out.exists()  # no map without its polygons
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tif", "b.tif"]
    r = sw("change", "detect", str(b), str(a), "-o", str(out), "--bands", ",")
    assert r.code == 2 and "names no band" in r.err


def test_change_cog_failing_midway_leaves_the_old_file_and_no_scratch(tmp_path: Path) -> None:
    from rasterio.crs import CRS

    from sitewatch.analysis import _changeio

    out = tmp_path / "c.tif"
    out.write_bytes(b"the previous map")
    mask = np.zeros((300, 40), bool)
    magnitude = np.zeros((300, 40), np.float32)
    valid = np.ones((200, 40), bool)  # shorter than the map: the second block of rows fails
    t = from_origin(*ORIGIN, 10, 10)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_changeio, "WRITE_ROWS", 128)
        with pytest.raises(IndexError):
            _changeio.write_change_cog(out, mask, magnitude, valid, CRS.from_epsg(32652), t)
    assert out.read_bytes() == b"the previous map"
    assert [f.name for f in tmp_path.iterdir()] == ["c.tif"]


def test_chunked_methods_report_the_tasks_of_each_pass() -> None:
    """The chunked path's progress: every dask computation is a pass whose tasks done reach its
    total; IR-MAD's iterations make more passes than CVA."""
    from sitewatch.analysis.change import ChangeConfig, detect_change
    from sitewatch.cli.change import _DaskTasks

    class Bar:
        def __init__(self) -> None:
            self.updates: list[dict[str, Any]] = []

        def update(self, task: Any, **kw: Any) -> None:
            self.updates.append(kw)

    before, after, truth = make_pair(128)
    passes = {}
    for method in ("cva", "irmad"):
        bar = Bar()
        with _DaskTasks(bar, 0) as tasks:
            res = detect_change(before, after, bands=BANDS, config=ChangeConfig(method=method),
                                chunks=64)  # fmt: skip
        assert (res.mask & truth).sum() > 0.8 * truth.sum()
        totals = [u["total"] for u in bar.updates if "total" in u]
        assert len(totals) == tasks.passes >= 2 and min(totals) >= 1
        # no pass counts more tasks done than it has; the last ends with all of them done
        total = 0
        for u in bar.updates:
            total = u.get("total", total)
            assert u["completed"] <= total
        assert tasks.done == tasks.total
        passes[method] = tasks.passes
    assert passes["irmad"] > passes["cva"]
    # outside the context, dask computations no longer report
    before_count = len(bar.updates)
    detect_change(before, after, bands=BANDS, chunks=64)
    assert len(bar.updates) == before_count


def test_method_names_are_taken_as_typed_in_prose(
    sw: Any, pair: tuple[Path, Path, np.ndarray], tmp_path: Path
) -> None:
    """``pca-kmeans`` and ``Log-Ratio`` name the methods written pca_kmeans and log_ratio; the
    summary says how many pixels were compared."""
    b, a, _ = pair
    for typed, method in (("pca-kmeans", "pca_kmeans"), ("Log-Ratio", "log_ratio")):
        r = sw("change", "detect", str(b), str(a), "-o", str(tmp_path / "o.tif"), "--method", typed, "--json")  # fmt: skip
        assert r.code == 0, r.err
        assert json.loads(r.out)["method"] == method
    r = sw("change", "detect", str(b), str(a), "-o", str(tmp_path / "o.tif"))
    assert r.code == 0, r.err
    assert "of the 9,216 px compared)" in " ".join(r.out.split())
    r = sw("change", "detect", str(b), str(a), "-o", str(tmp_path / "o.tif"), "--method", "pca+kmeans")  # fmt: skip
    assert r.code == 2 and "'pca+kmeans' is not one of" in r.err


def test_detect_dates_files_that_carry_their_dates_and_checks_the_site(
    sw: Any, pair: tuple[Path, Path, np.ndarray], tmp_path: Path
) -> None:
    """--site takes the acquisition dates from files that carry them (here a TIFF datetime tag),
    and refuses a site the images do not reach: its change event would be a silent wrong
    record."""
    b, a, _ = pair
    for path, when in ((b, "2020:01:02 03:04:05"), (a, "2021:06:01 02:00:00")):
        with rasterio.open(path, "r+") as ds:
            ds.update_tags(TIFFTAG_DATETIME=when)
    url = f"sqlite:///{tmp_path / 'cat.db'}"
    with Catalog(url, actor="tester") as cat:
        cat.add_site(Site(id="here", name="Here", lon=SITE_LON, lat=SITE_LAT))
        cat.add_site(Site(id="far", name="Far", lon=127.5, lat=37.9))
    r = sw("--db", url, "change", "detect", str(b), str(a), "-o", str(tmp_path / "o.tif"), "--site", "here")  # fmt: skip
    assert r.code == 0, r.err
    with Catalog(url, actor="tester") as cat:
        (event,) = cat.list_change_events("here")
    assert event.before.date().isoformat() == "2020-01-02" and event.after.year == 2021
    out = tmp_path / "far.tif"
    r = sw("--db", url, "change", "detect", str(b), str(a), "-o", str(out), "--site", "far")
    assert r.code == 2 and "which does not reach site 'far' at 127.5000, 37.9000" in r.err
    assert not out.exists()
    with Catalog(url, actor="tester") as cat:
        assert cat.list_change_events("far") == []


def test_detect_writes_a_preview_of_the_pair_with_the_change_outlined(
    sw: Any, pair: tuple[Path, Path, np.ndarray], tmp_path: Path
) -> None:
    from PIL import Image

    b, a, _ = pair
    out, look = tmp_path / "change.tif", tmp_path / "look.png"
    r = sw("change", "detect", str(b), str(a), "-o", str(out), "--min-area", "5000",
           "--preview", str(look), "--json")  # fmt: skip
    assert r.code == 0, r.err
    assert json.loads(r.out)["preview"] == str(look)
    img = np.asarray(Image.open(look).convert("RGB")).astype(int)
    magenta = (img[..., 0] > 200) & (img[..., 1] < 80) & (img[..., 2] > 200)
    cols = np.nonzero(magenta.any(axis=0))[0]
    # the outline is on the AFTER panel (the right half) only
    assert cols.size > 20 and cols.min() > img.shape[1] // 2
    # a preview needs a picture format and a CRS
    text = sw("change", "detect", str(b), str(a), "-o", str(out), "--min-area", "5000")
    assert "by kind: vegetation → built or bare " in text.out  # in words, as briefs say it
    r = sw("change", "detect", str(b), str(a), "-o", str(out), "--preview", str(tmp_path / "x.jpg"))
    assert r.code != 0 and ".png, .svg or .pdf" in r.err
    plain_b = tmp_path / "b.tif"
    plain_a = tmp_path / "a.tif"
    for src, dst in ((b, plain_b), (a, plain_a)):
        with rasterio.open(src) as ds:
            data = ds.read()
        with rasterio.open(dst, "w", driver="GTiff", width=data.shape[2], height=data.shape[1],
                           count=data.shape[0], dtype=data.dtype) as out_ds:  # fmt: skip
            out_ds.write(data)
            for i, n in enumerate(BANDS[: data.shape[0]]):
                out_ds.set_band_description(i + 1, n)
    r = sw("change", "detect", str(plain_b), str(plain_a), "-o", str(tmp_path / "p.tif"),
           "--preview", str(tmp_path / "p.png"))  # fmt: skip
    assert r.code != 0 and "--preview needs georeferenced images" in r.err
