"""``sitewatch measure``: heights from an image and footprints, distance, area, volume, tunnel."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.features import rasterize
from scipy import ndimage
from shapely import affinity
from shapely.geometry import box, mapping

from sitewatch.analysis.sun import sun_position
from sitewatch.errors import InputError
from sitewatch.geo import to_crs

Runner = Callable[..., Any]

X0, Y0, GSD, SIZE, EPSG = 350_000.0, 4_320_000.0, 0.5, 300, 32652
HEIGHTS = [12.0, 6.0, 18.0]


def _scene(
    tmp_path: Path, sun_az: float, sun_el: float, *, tags: dict[str, str] | None = None
) -> tuple[Path, Path]:
    """A single-band GeoTIFF with three boxes and their shadows, and their footprints in lon/lat."""
    rng = np.random.default_rng(0)
    t = Affine(GSD, 0, X0, 0, -GSD, Y0 + SIZE * GSD)
    ss = 4
    ft = t @ Affine.scale(1 / ss)
    shape = (SIZE * ss, SIZE * ss)
    a = math.radians(sun_az + 180)
    polys = [
        affinity.rotate(box(X0 + 30, Y0 + 40, X0 + 45, Y0 + 52), 15),
        affinity.rotate(box(X0 + 90, Y0 + 40, X0 + 100, Y0 + 60), -30),
        box(X0 + 40, Y0 + 95, X0 + 52, Y0 + 107),
    ]
    img = np.full(shape, 0.3)
    for p, h in zip(polys, HEIGHTS, strict=True):
        L = h / math.tan(math.radians(sun_el))
        sh = p.union(affinity.translate(p, L * math.sin(a), L * math.cos(a))).convex_hull
        img[rasterize([(sh, 1)], out_shape=shape, transform=ft).astype(bool)] = 0.07
    for p in polys:
        img[rasterize([(p, 1)], out_shape=shape, transform=ft).astype(bool)] = 0.55
    img = ndimage.gaussian_filter(img.reshape(SIZE, ss, SIZE, ss).mean(axis=(1, 3)), 0.6)
    img = img + 0.01 * rng.standard_normal(img.shape)
    path = tmp_path / "scene" / "pan.tif"
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", height=SIZE, width=SIZE, count=1, dtype="uint16",
                       crs=f"EPSG:{EPSG}", transform=t, nodata=0) as ds:  # fmt: skip
        ds.write(np.clip(img * 10000, 1, 65535).astype("uint16"), 1)
        if tags:
            ds.update_tags(**tags)
    feats: list[dict[str, Any]] = []
    for i, p in enumerate(polys):
        ll = to_crs(p, f"EPSG:{EPSG}", "EPSG:4326")
        feats.append(
            {
                "type": "Feature",
                "id": f"b{i}",
                "properties": {"name": f"B{i}"},
                "geometry": mapping(ll),
            }
        )
    outside = to_crs(box(X0 - 500, Y0, X0 - 480, Y0 + 20), f"EPSG:{EPSG}", "EPSG:4326")
    feats.append({"type": "Feature", "properties": {}, "geometry": mapping(outside)})
    feats.append(
        {
            "type": "Feature",
            "properties": {"id": "pt"},
            "geometry": {"type": "Point", "coordinates": [126.0, 39.0]},
        }
    )
    fp = tmp_path / "footprints.geojson"
    fp.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    return path, fp


def _check(rows: list[dict[str, Any]]) -> None:
    assert [r["index"] for r in rows] == [0, 1, 2, 3, 4]
    assert [r["id"] for r in rows] == ["b0", "b1", "b2", None, "pt"]
    for r, h in zip(rows[:3], HEIGHTS, strict=True):
        assert r["height_m"] == pytest.approx(h, abs=0.5), r
        assert (
            r["uncertainty_m"] > 0 and r["shadow_length_m"] > 0 and r["method"].startswith("shadow")
        )
    assert rows[3]["height_m"] is None and rows[3]["reason"] == "footprint_outside_image"
    assert rows[4]["height_m"] is None and rows[4]["reason"] == "not_a_polygon"


def test_heights_with_sun_flags(sw: Runner, tmp_path: Path) -> None:
    img, fp = _scene(tmp_path, 160.0, 40.0)
    r = sw("measure", "heights", str(img), "--footprints", str(fp), "--sun-azimuth", "160",
           "--sun-elevation", "40", "--json")  # fmt: skip
    assert r.code == 0, r.err
    _check(r.json())
    r = sw("measure", "heights", str(img), "--footprints", str(fp), "--sun-azimuth", "160",
           "--sun-elevation", "-2", "--json")  # fmt: skip
    assert {row.get("reason") for row in r.json()} == {"sun_below_horizon", "not_a_polygon"}
    r = sw("measure", "heights", str(img), "--footprints", str(fp))
    assert r.code == 2 and "no sun angles" in r.err
    r = sw("measure", "heights", str(img), "--footprints", str(fp), "--sun-azimuth", "160")
    assert r.code == 2 and "both" in r.err


def test_heights_on_a_web_mercator_image_are_ground_heights(sw: Runner, tmp_path: Path) -> None:
    """An XYZ basemap export is in EPSG:3857, whose metres are 1.29 ground metres at 39 N: the
    image is warped to UTM first, so shadows (and heights) are not 29% too long."""
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    from sitewatch.analysis.mensuration import height_from_shadow

    img, fp = _scene(tmp_path, 160.0, 40.0)
    merc = tmp_path / "pan-3857.tif"
    with rasterio.open(img) as src:
        t, w, h = calculate_default_transform(
            src.crs, "EPSG:3857", src.width, src.height, *src.bounds, resolution=0.5 * 1.29
        )
        profile = {**src.profile, "crs": "EPSG:3857", "transform": t, "width": w, "height": h}
        with rasterio.open(merc, "w", **profile) as dst:
            reproject(rasterio.band(src, 1), rasterio.band(dst, 1), resampling=Resampling.bilinear)
    r = sw("measure", "heights", str(merc), "--footprints", str(fp), "--sun-azimuth", "160",
           "--sun-elevation", "40", "--json")  # fmt: skip
    assert r.code == 0, r.err
    said = " ".join(r.err.split())  # rich wraps log lines
    assert "1.287 grid units to the ground metre" in said and "warping it to EPSG:32652" in said
    _check(r.json())
    with rasterio.open(merc) as ds:  # the Python API refuses the distorted grid outright
        band = ds.read(1).astype(float)
        fp3857 = to_crs(box(X0 + 40, Y0 + 95, X0 + 52, Y0 + 107), f"EPSG:{EPSG}", "EPSG:3857")
        with pytest.raises(InputError, match="not metres"):
            height_from_shadow(band, ds.transform, fp3857, sun_azimuth=160, sun_elevation=40,
                               crs=ds.crs)  # fmt: skip


def test_heights_with_sun_from_stac_item_and_tags(sw: Runner, tmp_path: Path) -> None:
    img, fp = _scene(tmp_path, 200.0, 50.0)
    item = {"type": "Feature", "stac_version": "1.0.0", "id": "scene", "geometry": None,
            "properties": {"datetime": "2024-01-01T02:00:00Z", "view:sun_azimuth": 200.0,
                           "view:sun_elevation": 50.0},
            "assets": {"pan": {"href": "./pan.tif"}}, "links": []}  # fmt: skip
    (img.parent / "scene.json").write_text(json.dumps(item))
    r = sw("measure", "heights", str(img), "--footprints", str(fp), "--json")
    assert r.code == 0, r.err
    rows = r.json()
    _check(rows)
    assert rows[0]["inputs"]["sun_source"].startswith("stac")
    img2, fp2 = _scene(
        tmp_path / "t", 200.0, 50.0, tags={"SUN_AZIMUTH": "200", "SUN_ELEVATION": "50"}
    )
    r = sw("measure", "heights", str(img2), "--footprints", str(fp2), "--json")
    assert r.code == 0, r.err
    _check(r.json())


def test_heights_with_datetime_and_dem_in_other_crs(sw: Runner, tmp_path: Path) -> None:
    when = datetime(2024, 3, 20, 3, 0, tzinfo=UTC)
    lon, lat = to_crs(box(X0, Y0, X0 + 150, Y0 + 150), f"EPSG:{EPSG}", "EPSG:4326").centroid.coords[
        0
    ]
    sp = sun_position(lon, lat, when, refraction=True)
    assert 25 < sp.elevation < 70
    img, fp = _scene(tmp_path, sp.azimuth, sp.elevation)
    dem = tmp_path / "dem.tif"
    t = Affine(0.0005, 0, lon - 0.05, 0, -0.0005, lat + 0.05)
    with rasterio.open(dem, "w", driver="GTiff", height=200, width=200, count=1, dtype="float32",
                       crs="EPSG:4326", transform=t) as ds:  # fmt: skip
        ds.write(np.full((200, 200), 250.0, dtype="float32"), 1)
    r = sw("measure", "heights", str(img), "--footprints", str(fp), "--datetime", when.isoformat(),
           "--dem", str(dem), "--json")  # fmt: skip
    assert r.code == 0, r.err
    rows = r.json()
    _check(rows)
    assert rows[0]["method"] == "shadow+dem" and rows[0]["inputs"]["terrain_dz_m"] == pytest.approx(
        0, abs=0.01
    )
    assert "different CRSs" in r.err
    r = sw("measure", "heights", str(img), "--footprints", str(fp), "--datetime", "yesterday")
    assert r.code == 2 and "ISO 8601" in r.err
    r = sw("measure", "heights", str(img), "--footprints", str(fp), "--datetime", "2024-03-20")
    assert r.code == 2 and "a date without a time" in r.err  # not silently midnight UTC


def test_heights_stored_on_catalog_site(sw: Runner, tmp_path: Path) -> None:
    img, fp = _scene(tmp_path, 160.0, 40.0)
    assert sw("sites", "add", "--name", "Test Base", "--lat", "39.0", "--lon", "126.0").code == 0
    r = sw("measure", "heights", str(img), "--footprints", str(fp), "--sun-azimuth", "160",
           "--sun-elevation", "40", "--site", "test-base", "--json")  # fmt: skip
    assert r.code == 0, r.err
    from sitewatch.catalog.store import Catalog
    from sitewatch.config import get_settings

    def open_catalog() -> Catalog:
        return Catalog(get_settings().catalog_url)

    with open_catalog() as cat:
        ms = cat.list_measurements(site_id="test-base")
    assert len(ms) == 3 and {m.kind for m in ms} == {"height"}
    assert sorted(round(m.value) for m in ms) == sorted(round(h) for h in HEIGHTS)
    assert all(m.uncertainty and m.uncertainty > 0 and m.method.startswith("shadow") for m in ms)
    r = sw("measure", "distance", "126.0,39.0", "126.01,39.0", "--site", "test-base", "--json")
    assert r.code == 0, r.err
    with open_catalog() as cat:
        assert {m.kind for m in cat.list_measurements(site_id="test-base")} == {
            "height",
            "distance",
        }
    r = sw("measure", "distance", "126.0,39.0", "126.01,39.0", "--site", "nope")
    assert r.code == 2 and "nope" in r.err


def _catalog(site: str) -> list[Any]:
    from sitewatch.catalog.store import Catalog
    from sitewatch.config import get_settings

    with Catalog(get_settings().catalog_url) as cat:
        return cat.list_measurements(site_id=site)


def test_heights_of_a_sites_mapped_footprints(sw: Runner, tmp_path: Path) -> None:
    """Without --footprints, --site measures the polygons mapped for the site (of --kind) and
    stores each height on its feature."""
    img, fp = _scene(tmp_path, 160.0, 40.0)
    assert sw("sites", "add", "base", "--name", "Base", "--lat", "39.0", "--lon", "126.0").code == 0
    feats = json.loads(fp.read_text())["features"][:3]
    for f, kind in zip(feats, ("hq", "hq", "berm"), strict=True):
        f["properties"]["kind"] = kind
    mapped = tmp_path / "mapped.geojson"
    mapped.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    r = sw("features", "import", "base", str(mapped), "--json")
    assert r.code == 0, r.err
    ids = {f["name"]: f["id"] for f in sw("features", "list", "base", "--json").json()}
    r = sw("measure", "heights", str(img), "--site", "base", "--kind", "hq", "--sun-azimuth",
           "160", "--sun-elevation", "40", "--json")  # fmt: skip
    assert r.code == 0, r.err
    rows = r.json()
    assert sorted(x["id"] for x in rows) == sorted([ids["B0"], ids["B1"]])
    for x in rows:
        name = next(n for n, i in ids.items() if i == x["id"])
        assert x["height_m"] == pytest.approx(HEIGHTS[int(name[1])], abs=0.5), x
    stored = _catalog("base")
    assert sorted(m.feature_id for m in stored) == sorted([ids["B0"], ids["B1"]])
    assert all(m.kind == "height" and m.unit == "m" for m in stored)
    # every polygon of the site without --kind; none of a kind it lacks is an error
    r = sw("measure", "heights", str(img), "--site", "base", "--sun-azimuth", "160",
           "--sun-elevation", "40", "--json")  # fmt: skip
    assert r.code == 0 and len(r.json()) == 3
    r = sw("measure", "heights", str(img), "--site", "base", "--kind", "ugf_portal",
           "--sun-azimuth", "160", "--sun-elevation", "40")  # fmt: skip
    assert r.code == 2 and "no ugf_portal polygon features" in r.err and "berm (polygon)" in r.err
    r = sw("measure", "heights", str(img), "--sun-azimuth", "160", "--sun-elevation", "40")
    assert r.code == 2 and "--footprints" in r.err and "--site" in r.err
    r = sw("measure", "heights", str(img), "--footprints", str(fp), "--site", "base", "--kind",
           "hq", "--sun-azimuth", "160", "--sun-elevation", "40")  # fmt: skip
    assert r.code == 2 and "--kind picks features of --site" in r.err
    assert len(_catalog("base")) == 5


def test_stored_heights_name_their_image_and_observation(sw: Runner, tmp_path: Path) -> None:
    """A stored height says which picture it was read from (file, scene, acquisition time) and is
    linked to the site's observation of that scene, or to --observation."""
    item = {"type": "Feature", "stac_version": "1.0.0", "id": "WV3-0301", "geometry": None,
            "properties": {"datetime": "2024-03-01T02:00:00Z", "view:sun_azimuth": 160.0,
                           "view:sun_elevation": 40.0},
            "assets": {"pan": {"href": "./pan.tif"}}, "links": []}  # fmt: skip
    img, fp = _scene(tmp_path, 160.0, 40.0)
    (img.parent / "scene.json").write_text(json.dumps(item))
    assert sw("sites", "add", "base", "--name", "Base", "--lat", "39.0", "--lon", "126.0").code == 0
    other = sw("observations", "add", "base", "--date", "2024-02-01", "--json").json()["id"]
    seen = sw("observations", "add", "base", "--scene", "WV3-0301", "--date", "2024-03-01",
              "--json").json()["id"]  # fmt: skip
    r = sw("measure", "heights", str(img), "--footprints", str(fp), "--site", "base")
    assert r.code == 0 and f"linked to observation {seen}" in r.err, r.err
    ms = _catalog("base")
    assert len(ms) == 3 and {m.observation_id for m in ms} == {seen}
    assert all(
        m.inputs["image"] == "pan.tif"
        and m.inputs["scene_id"] == "WV3-0301"
        and m.inputs["acquired"] == "2024-03-01T02:00:00Z"
        for m in ms
    )
    r = sw("measure", "heights", str(img), "--footprints", str(fp), "--site", "base",
           "--observation", other)  # fmt: skip
    assert r.code == 0, r.err
    assert sorted(m.observation_id or "" for m in _catalog("base")) == sorted(
        [seen] * 3 + [other] * 3
    )
    for args, message in (
        (("--site", "base", "--observation", "nope"), "'nope' is no observation of site 'base'"),
        (("--observation", other), "--observation goes with --site"),
    ):
        r = sw("measure", "heights", str(img), "--footprints", str(fp), *args)
        assert r.code == 2 and message in r.err, r.err
    assert len(_catalog("base")) == 6


def test_area_and_volume_of_a_mapped_feature(sw: Runner) -> None:
    """--feature gives the polygon measured and the site it is stored on; a berm's volume takes
    the height stored for it last (or its height_m attribute); a wrong feature is refused before
    anything is stored."""
    wkt = "POLYGON((126 39, 126.0005 39, 126.0005 39.0002, 126 39.0002, 126 39))"
    for site in ("base", "other"):
        assert sw("sites", "add", site, "--name", site, "--lat", "39", "--lon", "126").code == 0
    berm = sw("features", "add", "base", "--kind", "berm", "--wkt", wkt, "--height-m", "18",
              "--json").json()["id"]  # fmt: skip
    portal = sw("features", "add", "base", "--kind", "ugf_portal", "--lon", "126.0001", "--lat",
                "39.0001", "--json").json()["id"]  # fmt: skip
    by_wkt = sw("measure", "area", "--polygon", wkt, "--json").json()
    r = sw("measure", "area", "--feature", berm, "--json")
    assert r.code == 0, r.err
    assert r.json()["value"] == by_wkt["value"] and "on feature" in r.err
    r = sw("measure", "volume", "--feature", berm, "--crest-width", "2", "--json")
    assert r.code == 0, r.err
    from_attr = r.json()
    assert from_attr["inputs"]["height_m"] == 18.0
    assert "height_m attribute" in from_attr["inputs"]["height_from"]
    same = sw("measure", "volume", "--polygon", wkt, "--height", "18", "--crest-width", "2",
              "--json").json()  # fmt: skip
    assert from_attr["value"] == same["value"]
    r = sw("measure", "record", "base", "--kind", "height", "--value", "12", "--uncertainty",
           "1.5", "--feature", berm)  # fmt: skip
    assert r.code == 0, r.err
    r = sw("measure", "volume", "--feature", berm, "--crest-width", "2", "--json")
    assert r.code == 0, r.err
    measured = r.json()
    assert measured["inputs"]["height_m"] == 12.0 and measured["inputs"]["height_sigma_m"] == 1.5
    assert measured["value"] < from_attr["value"] and measured["uncertainty"] > 0
    stored = {(m.kind, m.feature_id) for m in _catalog("base")}
    assert stored == {("area", berm), ("volume", berm), ("height", berm)}
    assert len(_catalog("base")) == 4
    # refused, nothing stored
    for args, message in (
        (("area", "--feature", portal), "is a point, not a polygon"),
        (("area", "--feature", berm, "--site", "other"), "belongs to site 'base', not 'other'"),
        (("area", "--feature", "nope"), "nope"),
        (("area",), "give --polygon"),
        (("volume", "--feature", portal, "--polygon", wkt), "no height measurement"),
        (("tunnel", "--spoil-volume", "900", "--width", "6", "--height", "6", "--feature",
          "nope"), "nope"),
    ):  # fmt: skip
        r = sw("measure", *args)
        assert r.code == 2 and message in r.err, (args, r.err)
    assert len(_catalog("base")) == 4 and _catalog("other") == []


def test_shadow_distance_area_volume_tunnel(sw: Runner, tmp_path: Path) -> None:
    r = sw("measure", "shadow", "--base", "126.0,39.0", "--tip", "126.0,39.0001", "--sun-azimuth", "180",
           "--sun-elevation", "45", "--json")  # fmt: skip
    assert r.code == 0, r.err
    assert r.json()["height_m"] == pytest.approx(11.1, abs=0.1)
    r = sw("measure", "distance", "126.0,39.0", "126.1,39.0", "--json")
    assert (
        r.code == 0
        and r.json()["value"] == pytest.approx(8649, rel=0.01)
        and r.json()["unit"] == "m"
    )
    r = sw("measure", "distance", "126.0,39.0", "200,39.0")
    assert r.code == 2 and "longitude" in r.err
    wkt = "POLYGON((126 39, 126.01 39, 126.01 39.01, 126 39.01, 126 39))"
    r = sw("measure", "area", "--polygon", wkt, "--position-sigma", "1", "--json")
    assert r.code == 0 and r.json()["value"] == pytest.approx(865.5 * 1111.1, rel=0.01)
    r = sw("measure", "volume", "--polygon", wkt, "--height", "3", "--crest-width", "2", "--json")
    assert r.code == 0 and r.json()["value"] > 0 and r.json()["unit"] == "m3"
    # two DEMs in a UTM grid: a 3 m rise over the polygon
    before, after = tmp_path / "b.tif", tmp_path / "a.tif"
    poly = to_crs(box(X0 + 20, Y0 + 20, X0 + 80, Y0 + 60), f"EPSG:{EPSG}", "EPSG:4326")
    (tmp_path / "poly.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": mapping(poly)}]}))  # fmt: skip
    t = Affine(1.0, 0, X0, 0, -1.0, Y0 + 100)
    for path, add in ((before, 0.0), (after, 3.0)):
        z = np.full((100, 100), 100.0, dtype="float32")
        z[40:80, 20:80] += add
        with rasterio.open(path, "w", driver="GTiff", height=100, width=100, count=1, dtype="float32",
                           crs=f"EPSG:{EPSG}", transform=t) as ds:  # fmt: skip
            ds.write(z, 1)
    r = sw("measure", "volume", "--polygon", str(tmp_path / "poly.geojson"), "--dem-before", str(before),
           "--dem-after", str(after), "--json")  # fmt: skip
    assert r.code == 0, r.err
    assert r.json()["net_m3"] == pytest.approx(3 * 60 * 40, rel=0.05)
    r = sw("measure", "volume", "--polygon", wkt)
    assert r.code == 2 and "--height" in r.err
    r = sw(
        "measure", "tunnel", "--spoil-volume", "16000", "--width", "6", "--height", "6", "--json"
    )
    assert r.code == 0 and r.json()["inputs"]["bulking_factor"] == 1.6 and r.json()["value"] > 300
    r = sw("measure", "tunnel", "--spoil-volume", "16000", "--width", "6", "--height", "6", "--bulking", "1.3",
           "--json")  # fmt: skip
    assert r.json()["inputs"]["bulking_factor"] == 1.3


def test_shadow_with_the_sun_from_the_time_stored_on_a_feature(sw: Runner) -> None:
    """measure shadow computes the sun at the base from --datetime (the same height as with the
    angles that time gives), stores the height on --feature dated by the acquisition, and says
    how to give the sun when it is missing or given twice; distances take site ids."""
    from sitewatch.analysis.sun import sun_position

    assert sw("sites", "add", "b", "--name", "B", "--lat", "39.0", "--lon", "126.0").code == 0
    fid = sw(
        "features", "add", "b", "--kind", "hq", "--lon", "126", "--lat", "39", "--json"
    ).json()["id"]
    when = "2024-03-01T02:05:00Z"
    sun = sun_position(126.0, 39.0, datetime(2024, 3, 1, 2, 5, tzinfo=UTC), refraction=True)
    pts = ("--base", "126.0,39.0", "--tip", "125.9999,39.0001")
    by_time = sw("measure", "shadow", *pts, "--datetime", when, "--feature", fid, "--json")
    assert by_time.code == 0, by_time.err
    by_angles = sw("measure", "shadow", *pts, "--sun-azimuth", str(sun.azimuth),
                   "--sun-elevation", str(sun.elevation), "--json")  # fmt: skip
    assert by_time.json()["height_m"] == pytest.approx(by_angles.json()["height_m"], abs=0.01)
    assert by_time.json()["inputs"]["sun_source"] == "computed"
    (m,) = sw("measure", "list", "b", "--json").json()
    assert m["feature_id"] == fid and m["method"] == "shadow_tip"
    assert m["value"] == pytest.approx(by_time.json()["height_m"], abs=0.01)
    assert m["inputs"]["acquired"] == "2024-03-01T02:05:00+00:00"
    text = sw("measure", "shadow", *pts, "--datetime", when).out
    assert text.startswith(f"height {by_time.json()['height_m']:.2f} ± ") and "computed" in text
    for extra, says in (((), "give the sun one way"),
                        (("--datetime", when, "--sun-azimuth", "1", "--sun-elevation", "2"), "one way"),
                        (("--datetime", "2024-03-01"), "date without a time"),
                        (("--sun-azimuth", "150"), "both --sun-azimuth and --sun-elevation"),
                        (("--datetime", when, "--observation", "o1"), "goes with --site")):  # fmt: skip
        r = sw("measure", "shadow", *pts, *extra)
        assert r.code == 2 and says in r.err, (extra, r.err)
    assert sw("sites", "add", "c", "--name", "C", "--lat", "39.0", "--lon", "126.1").code == 0
    by_coords = sw("measure", "distance", "126.0,39.0", "126.1,39.0", "--json").json()["value"]
    r = sw("measure", "distance", "b", "c")
    assert r.code == 0 and r.out.strip() == f"distance: {by_coords:,.0f} m (geodesic_wgs84)"
    assert 8_600 < by_coords < 8_700


def test_heights_on_a_scenario_scene(sw: Runner, tmp_path: Path) -> None:
    """End to end on the scenario generator's output: sun from the STAC item beside the band."""
    scenario = pytest.importorskip("sitewatch.scenario")
    spec = scenario.ScenarioSpec(seed=1, sites=1, dates=1, size_px=(768, 768), gsd=0.5,
                                 sun_angles=((200.0, 48.0),), name="m")  # fmt: skip
    res = scenario.make_scenario(tmp_path / "scn", spec)
    band = res.items[0].parent / "red.tif"
    r = sw("measure", "heights", str(band), "--footprints", str(res.features_utm_geojson),
           "--dem", str(res.dem), "--json")  # fmt: skip
    assert r.code == 0, r.err
    truth = {f["properties"]["id"]: f["properties"]
             for f in json.loads(res.features_utm_geojson.read_text())["features"]}  # fmt: skip
    boxes = [row for row in r.json() if truth[row["id"]]["profile"] == "box"]
    assert boxes and all(row["inputs"]["sun_source"].startswith("stac") for row in boxes)
    errors = [
        abs(row["height_m"] - truth[row["id"]]["height_m"])
        for row in boxes
        if row["height_m"] is not None
    ]
    assert len(errors) >= 3
    assert float(np.median(errors)) <= 0.5


def test_read_geofile_gpkg_and_legacy_crs(shared_data: Path, tmp_path: Path) -> None:
    from pyogrio.raw import read, write

    from sitewatch.cli._geoinputs import read_geofile

    src = shared_data / "spacenet" / "geotiff_labels.geojson"
    geoms, props, crs = read_geofile(src)  # GeoJSON with a legacy "crs" member
    assert crs.to_epsg() == 32616 and len(geoms) == 43 and geoms[0] is not None
    assert 733_000 < geoms[0].centroid.x < 735_000
    meta, _, wkb, fields = read(src)
    gpkg = tmp_path / "f.gpkg"
    write(
        gpkg,
        wkb,
        fields,
        fields=meta["fields"],
        crs=meta["crs"],
        geometry_type="Polygon",
        driver="GPKG",
    )
    g2, p2, crs2 = read_geofile(gpkg)
    assert crs2.to_epsg() == 32616 and len(g2) == 43
    assert g2[5].equals_exact(geoms[5], 1e-6) and p2[5]["osm_id"] == props[5]["osm_id"]


@pytest.mark.parametrize(
    ("doc", "said"),
    [([1, 2], "got a JSON list/value"), ({"type": "FeatureCollection", "features": [3]},
     "'features' must be a list"), ({"type": "Topology"}, "got 'Topology'")],
)  # fmt: skip
def test_read_geofile_refuses_json_that_is_not_features(
    tmp_path: Path, doc: object, said: str
) -> None:
    from sitewatch.cli._geoinputs import read_geofile
    from sitewatch.errors import InputError

    path = tmp_path / "f.geojson"
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match=said):
        read_geofile(path)


def test_record_a_reported_measurement(sw: Any) -> None:
    assert (
        sw("sites", "add", "sakkanmol", "--name", "S", "--lat", "38.58", "--lon", "126.1").code == 0
    )
    assert sw("sites", "add", "other", "--name", "O", "--lat", "38.6", "--lon", "126.2").code == 0
    berm = sw("features", "add", "sakkanmol", "--kind", "berm", "--lon", "126.1", "--lat", "38.58",
              "--json").json()["id"]  # fmt: skip
    obs = sw("observations", "add", "sakkanmol", "--date", "2017-11-01", "--json").json()["id"]
    r = sw("measure", "record", "sakkanmol", "--kind", "height", "--value", "18",
           "--uncertainty", "3", "--feature", berm, "--observation", obs, "--method",
           "reported (CSIS 2018)", "--input", "source=csis-2018", "--json")  # fmt: skip
    assert r.code == 0, r.err
    m = r.json()
    assert (m["kind"], m["value"], m["unit"], m["uncertainty"]) == ("height", 18.0, "m", 3.0)
    assert m["feature_id"] == berm and m["observation_id"] == obs and m["analyst"] == "tester"
    assert m["inputs"] == {"source": "csis-2018"} and m["method"] == "reported (CSIS 2018)"
    r = sw("measure", "record", "sakkanmol", "--kind", "volume", "--value", "52000", "--json")
    assert r.json()["unit"] == "m3" and r.json()["method"] == "manual"
    for args, message in [
        (("other", "--feature", berm), "not a feature of site 'other'"),
        (("other", "--observation", obs), "no observation of site 'other'"),
        (("sakkanmol", "--input", "source"), "KEY=VALUE"),
        (("sakkanmol", "--value", "nan"), "not a finite number"),
    ]:
        r = sw("measure", "record", *args[:1], "--kind", "height", "--value", "1", *args[1:])
        assert r.code == 2 and message in r.err, (args, r.err)
    shown = sw("sites", "show", "sakkanmol", "--json").json()
    assert [x["kind"] for x in shown["measurements"]] == ["height", "volume"]
    text = sw("sites", "show", "sakkanmol").out
    assert "height 18.0 ± 3.0 m of berm (reported (CSIS 2018); image 2017-11-01)" in text
    assert "volume 52,000 m³ (no uncertainty recorded) of site (manual)" in text


def test_list_and_retract_measurements(sw: Runner) -> None:
    assert sw("sites", "add", "base", "--name", "Base", "--lat", "39", "--lon", "126").code == 0
    berm = sw("features", "add", "base", "--kind", "berm", "--lon", "126", "--lat", "39",
              "--name", "north berm", "--json").json()["id"]  # fmt: skip
    ids = [
        sw("measure", "record", "base", "--kind", kind, "--value", value, *extra, "--json").json()[
            "id"
        ]
        for kind, value, extra in (
            ("height", "18", ("--feature", berm)),
            ("length", "400", ()),
        )
    ]
    r = sw("measure", "list", "base")
    assert r.code == 0 and "north berm" in r.out and "2 measurement(s)" in r.err
    assert [
        m["id"] for m in sw("measure", "list", "base", "--kind", "height", "--json").json()
    ] == [ids[0]]
    assert [m["id"] for m in sw("measure", "list", "base", "--feature", berm, "--json").json()] == [
        ids[0]
    ]
    r = sw("measure", "delete", ids[0], "--expect-version", "7", "--yes")
    assert r.code != 0 and "version" in r.err
    r = sw("measure", "delete", ids[0], input="n\n")
    assert r.code != 0 and "delete the height 18 m of site base?" in r.out
    assert sw("measure", "delete", ids[0], "--yes").code == 0
    assert [m["id"] for m in sw("measure", "list", "base", "--json").json()] == [ids[1]]
    history = sw("sites", "history", "base", "--json").json()
    assert ("measurement", ids[0], "delete") in {
        (h["entity"], h["entity_id"], h["action"]) for h in history
    }
    r = sw("measure", "delete", "nope", "--yes")
    assert r.code != 0 and "nope" in r.err


def test_sites_show_gives_the_measured_change(sw: Runner) -> None:
    assert sw("sites", "add", "base", "--name", "Base", "--lat", "39", "--lon", "126").code == 0
    berm = sw("features", "add", "base", "--kind", "berm", "--lon", "126", "--lat", "39",
              "--name", "north berm", "--json").json()["id"]  # fmt: skip
    for day, value in (("2019-05-01", "12"), ("2021-05-01", "18")):
        obs = sw("observations", "add", "base", "--date", day, "--json").json()["id"]
        r = sw("measure", "record", "base", "--kind", "height", "--value", value,
               "--uncertainty", "1", "--feature", berm, "--observation", obs)  # fmt: skip
        assert r.code == 0, r.err
    # storing the second says it is a significant change, which the monitor alerts on
    assert "north berm height grew by 6.0 ± 1.4 m since 2019-05-01 (the monitor" in r.err
    r = sw("sites", "show", "base")
    assert r.code == 0, r.err
    assert (
        "north berm height 12.0 ± 1.0 m → 18.0 ± 1.0 m from 2019-05-01 to 2021-05-01: "
        "6.0 ± 1.4 m, grew" in r.out
    )
    # each measurement with the date of its image; no alert until the monitor has run
    assert "height 12.0 ± 1.0 m of north berm (manual; image 2019-05-01)" in r.out
    assert "open alerts 0" in r.out
    (trend,) = sw("sites", "show", "base", "--json").json()["measured_change"]
    assert trend["feature_id"] == berm and trend["verdict"] == "grew" and trend["dates"] == 2
