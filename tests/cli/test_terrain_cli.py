"""``sitewatch terrain derive|viewshed|defilade`` on a crop of the SRTM tile N44W072."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

Runner = Callable[..., Any]
WASHINGTON = "-71.3033,44.2706"


@pytest.fixture
def dem(shared_data: Path, tmp_path: Path) -> Path:
    """A 301 x 301 crop (3 arc-seconds, geographic) around Mount Washington."""
    with rasterio.open(shared_data / "srtm" / "N44W072.hgt") as src:
        win = Window(836 - 150, 875 - 150, 301, 301)
        data = src.read(1, window=win)
        prof = src.profile | {"driver": "GTiff", "width": 301, "height": 301,
                              "transform": src.window_transform(win)}  # fmt: skip
    out = tmp_path / "dem.tif"
    with rasterio.open(out, "w", **prof) as dst:
        dst.write(data, 1)
    return out


def test_derive_writes_products(sw: Runner, dem: Path, tmp_path: Path) -> None:
    r = sw("terrain", "derive", str(dem), "-o", str(tmp_path / "out"), "--products", "slope,hillshade,relief",
           "--window", "5", "--json")  # fmt: skip
    assert r.code == 0, r.err
    rep = r.json()
    assert set(rep) == {"slope", "hillshade", "relief"}
    with rasterio.open(rep["slope"]["path"]) as ds:
        s = ds.read(1, masked=True)
        assert ds.crs.to_epsg() == 4326 and ds.shape == (301, 301)
    assert float(s.min()) >= 0 and 20 < float(s.max()) < 80  # steep headwalls, no cliffs
    assert rep["hillshade"]["min"] >= 1 and rep["hillshade"]["max"] <= 255
    r = sw("terrain", "derive", str(dem), "-o", str(tmp_path / "o2"), "--products", "slope,bogus")
    assert r.code == 2 and "bogus" in r.err


def test_viewshed_summit_vs_valley(sw: Runner, dem: Path, tmp_path: Path) -> None:
    r = sw("terrain", "viewshed", str(dem), "--observer", WASHINGTON, "--height", "2", "-o",
           str(tmp_path / "vs.tif"), "--json")  # fmt: skip
    assert r.code == 0, r.err
    summit = r.json()
    with rasterio.open(tmp_path / "vs.tif") as ds:
        v = ds.read(1)
        assert ds.crs.is_projected and set(np.unique(v)) <= {0, 1, 255}
    r = sw("terrain", "viewshed", str(dem), "--observer", "-71.253,44.257", "-o", str(tmp_path / "v2.tif"),
           "--json")  # fmt: skip
    assert r.code == 0, r.err
    assert summit["visible_fraction"] > 3 * r.json()["visible_fraction"]
    r = sw("terrain", "viewshed", str(dem), "--observer", "10,10", "-o", str(tmp_path / "v3.tif"))
    assert r.code == 2 and "outside the DEM" in r.err


def test_defilade_direction_and_point(sw: Runner, dem: Path, tmp_path: Path) -> None:
    feats = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": "summit", "properties": {}, "geometry": {"type": "Point", "coordinates": [-71.3033, 44.2706]}},
        {"type": "Feature", "properties": {"id": "notch"}, "geometry": {"type": "Point", "coordinates": [-71.253, 44.257]}},
        {"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": [10.0, 10.0]}},
    ]}  # fmt: skip
    fp = tmp_path / "f.geojson"
    fp.write_text(json.dumps(feats))
    r = sw("terrain", "defilade", str(dem), "--features", str(fp), "--threat-azimuth", "270",
           "--threat-elevation", "10", "--json")  # fmt: skip
    assert r.code == 0, r.err
    rows = r.json()
    assert [x["id"] for x in rows] == ["summit", "notch", None]
    assert rows[0]["masked"] is False and rows[1]["masked"] is True
    assert rows[2]["masked"] is None and rows[2]["reason"] == "outside_dem"
    assert "horizon_sigma_deg" not in rows[0]
    r = sw("terrain", "defilade", str(dem), "--features", str(fp), "--threat-azimuth", "270",
           "--threat-elevation", "10")  # fmt: skip
    lines = r.out.splitlines()
    exposed = f"summit: EXPOSED from 270° at 10°: 0% of its 1 point(s) masked, lowest horizon {rows[0]['horizon_deg']:.1f}°"
    assert lines[0] == exposed
    assert (
        lines[1]
        == f"notch: masked from 270° at 10°: all 1 point(s) masked, lowest horizon {rows[1]['horizon_deg']:.1f}°"
    )
    assert rows[1]["horizon_deg"] > 10 > rows[0]["horizon_deg"]
    assert (
        lines[2]
        == "feature 3: no answer: the feature lies outside the DEM; give a DEM that covers it"
    )
    r = sw("terrain", "defilade", str(dem), "--features", str(fp), "--threat-azimuth", "270",
           "--threat-elevation", "10", "--dem-sigma", "6", "--json")  # fmt: skip
    assert r.code == 0, r.err
    summit, notch = (x["horizon_sigma_deg"] for x in r.json()[:2])
    # from the summit the horizon is the next cell down (90 m away): a 6 m DEM error matters;
    # from the notch it is a ridge kilometres away: it hardly does
    assert 2.0 < summit < 10.0 and 0.0 < notch < 1.0, (summit, notch)
    r = sw(
        "terrain",
        "defilade",
        str(dem),
        "--features",
        str(fp),
        "--threat-point",
        "-71.40,44.30",
        "--json",
    )
    assert r.code == 0, r.err
    assert all(x["masked"] in (True, False) for x in r.json()[:2])
    r = sw("terrain", "defilade", str(dem), "--features", str(fp), "--threat-point", "-71.4,44.3",
           "--threat-azimuth", "10")  # fmt: skip
    assert r.code == 2 and "either" in r.err


def test_a_dem_cut_short_is_named_with_gdal_words(sw: Runner, dem: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.tif"
    cut.write_bytes(dem.read_bytes()[:4000])
    r = sw("terrain", "viewshed", str(cut), "--observer", WASHINGTON, "-o", str(tmp_path / "v.tif"))
    assert r.code == 2 and "cannot read DEM" in r.err and "cut.tif" in r.err
    assert "previous exception" not in r.err  # rasterio's placeholder, replaced by GDAL's text
    assert not (tmp_path / "v.tif").exists()


def test_observer_and_threat_point_can_be_catalog_sites(
    sw: Runner, dem: Path, tmp_path: Path
) -> None:
    """--observer and --threat-point take a catalog site id as range --from does: the viewshed
    from the site is the one from its coordinates; an unknown id says so."""
    lon, lat = WASHINGTON.split(",")
    r = sw("sites", "add", "summit-radar", "--name", "Summit radar", "--lat", lat, "--lon", lon)
    assert r.code == 0, r.err
    by_site = sw("terrain", "viewshed", str(dem), "--observer", "summit-radar", "-o",
                 str(tmp_path / "a.tif"), "--json")  # fmt: skip
    by_point = sw("terrain", "viewshed", str(dem), "--observer", WASHINGTON, "-o",
                  str(tmp_path / "b.tif"), "--json")  # fmt: skip
    assert by_site.code == 0 and by_point.code == 0, by_site.err
    assert by_site.json()["visible_area_km2"] == by_point.json()["visible_area_km2"] > 0
    fp = tmp_path / "f.geojson"
    fp.write_text(json.dumps({"type": "Feature", "properties": {"id": "notch"},
                              "geometry": {"type": "Point", "coordinates": [-71.253, 44.257]}}))  # fmt: skip
    r = sw("terrain", "defilade", str(dem), "--features", str(fp), "--threat-point",
           "summit-radar", "--json")  # fmt: skip
    assert r.code == 0, r.err
    assert r.json()[0]["id"] == "notch" and r.json()[0]["masked"] in (True, False)
    r = sw(
        "terrain", "viewshed", str(dem), "--observer", "no-such-site", "-o", str(tmp_path / "c.tif")
    )
    assert r.code != 0 and "no-such-site" in r.err


def test_defilade_of_a_sites_mapped_portals_is_stored(sw: Runner, dem: Path) -> None:
    """--site takes the targets from the catalog (of --kind) and stores each answer as a
    defilade measurement of its feature: the horizon angle from a direction, the hidden share
    from a point; --no-store only prints."""
    lon, lat = WASHINGTON.split(",")
    assert sw("sites", "add", "ridge", "--name", "Ridge", "--lat", lat, "--lon", lon).code == 0
    summit = sw("features", "add", "ridge", "--kind", "ugf_portal", "--lon", lon, "--lat", lat,
                "--json").json()["id"]  # fmt: skip
    notch = sw("features", "add", "ridge", "--kind", "ugf_portal", "--lon", "-71.253", "--lat",
               "44.257", "--json").json()["id"]  # fmt: skip
    assert (
        sw("features", "add", "ridge", "--kind", "hq", "--lon", "-71.26", "--lat", "44.26").code
        == 0
    )
    args = ("terrain", "defilade", str(dem), "--site", "ridge", "--kind", "ugf_portal",
            "--threat-azimuth", "270", "--threat-elevation", "10", "--dem-sigma", "6")  # fmt: skip
    r = sw(*args, "--json")
    assert r.code == 0, r.err
    rows = {x["id"]: x for x in r.json()}
    assert set(rows) == {summit, notch}
    assert rows[summit]["masked"] is False and rows[notch]["masked"] is True
    assert "stored 2 defilade measurement(s)" in r.err
    from sitewatch.catalog.store import Catalog
    from sitewatch.config import get_settings

    with Catalog(get_settings().catalog_url) as cat:
        ms = {m.feature_id: m for m in cat.list_measurements(site_id="ridge")}
    assert set(ms) == {summit, notch}
    for fid, m in ms.items():
        assert m.kind == "defilade" and m.unit == "deg"
        assert m.value == rows[fid]["horizon_deg"]
        assert m.uncertainty == rows[fid]["horizon_sigma_deg"]
        assert m.inputs["threat_azimuth"] == 270 and m.inputs["masked"] is rows[fid]["masked"]
    assert ms[notch].value > 10 > ms[summit].value
    r = sw(*args, "--no-store")
    assert r.code == 0 and "stored" not in r.err and "masked" in r.out
    r = sw("terrain", "defilade", str(dem), "--site", "ridge", "--threat-point",
           "-71.40,44.30", "--json")  # fmt: skip
    assert r.code == 0, r.err
    assert len(r.json()) == 3  # every feature without --kind
    with Catalog(get_settings().catalog_url) as cat:
        shares = [m for m in cat.list_measurements(site_id="ridge") if m.unit == "fraction"]
    assert len(shares) == 3 and all(0 <= m.value <= 1 for m in shares)
    assert all(m.inputs["threat_point"] == "-71.40,44.30" for m in shares)
    r = sw("terrain", "defilade", str(dem), "--site", "ridge", "--kind", "berm",
           "--threat-azimuth", "270", "--threat-elevation", "10")  # fmt: skip
    assert r.code == 2 and "no berm features" in r.err and "ugf_portal (point)" in r.err
    r = sw("terrain", "defilade", str(dem), "--threat-azimuth", "270", "--threat-elevation", "10")
    assert r.code == 2 and "--features" in r.err and "--site" in r.err
    fp = dem.parent / "targets.geojson"
    fp.write_text(json.dumps({"type": "Feature", "properties": {"id": "notch"},
                              "geometry": {"type": "Point", "coordinates": [-71.253, 44.257]}}))  # fmt: skip
    r = sw("terrain", "defilade", str(dem), "--features", str(fp), "--site", "nope",
           "--threat-azimuth", "270", "--threat-elevation", "10")  # fmt: skip
    assert r.code == 2 and "no site with id 'nope'" in r.err and "masked" not in r.out


def test_landform_of_a_site_and_its_portals(sw: Runner, dem: Path) -> None:
    """``terrain landform``: the summit site is mountainous (class 4) and its portal, mapped in
    the notch below, lies a thousand metres lower; --kind picks features; JSON carries the same."""
    lon, lat = WASHINGTON.split(",")
    assert sw("sites", "add", "summit", "--name", "Summit", "--lat", lat, "--lon", lon).code == 0
    for kind, name, where in (("ugf_portal", "notch portal", ("-71.253", "44.257")),
                              ("hq", "summit hq", (lon, lat))):  # fmt: skip
        r = sw("features", "add", "summit", "--kind", kind, "--name", name,
               "--lon", where[0], "--lat", where[1])  # fmt: skip
        assert r.code == 0, r.err
    r = sw("terrain", "landform", str(dem), "--site", "summit", "--kind", "ugf_portal")
    assert r.code == 0, r.err
    assert r.out.startswith("Summit (summit): terrain from dem.tif")
    assert "mountainous: Kapos et al. (2000) class 4, 1,500-2,500 m" in r.out
    assert "notch portal (ugf portal): " in r.out and "summit hq" not in r.out
    j = sw("terrain", "landform", str(dem), "--site", "summit", "--json").json()
    assert j["mountain_class"] == 4 and j["site"]["elevation_m"] > 1850
    portal = next(p for p in j["places"] if p["name"] == "notch portal")
    assert j["site"]["elevation_m"] - portal["elevation_m"] > 1000
    assert portal["below_top_m"] > 1000 and 0 <= portal["facing_deg"] < 360
    # the same by coordinates, and the errors
    pt = sw("terrain", "landform", str(dem), "--point", WASHINGTON, "--json").json()
    assert pt["site"] == j["site"] and pt["places"] == []
    for args, said in (((), "give --site SITE or --point"),
                       (("--site", "summit", "--point", WASHINGTON), "one of them"),
                       (("--point", "126,38"), "does not reach 126.00000,38.00000"),
                       (("--point", WASHINGTON, "--kind", "hq"), "--kind picks features of --site")):  # fmt: skip
        r = sw("terrain", "landform", str(dem), *args)
        assert r.code != 0 and said in r.err, r.err
