"""``sitewatch features``: record, import, edit and delete the features of a site."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pyproj import Transformer

Runner = Callable[..., Any]

KML = """<?xml version="1.0" encoding="UTF-8"?>
<kml xmlns="http://www.opengis.net/kml/2.2"><Document><name>Sakkanmol</name>
<Folder><name>Portals</name>
<Placemark><name>Portal 2</name><Point><coordinates>126.1085,38.5852,0</coordinates></Point></Placemark>
<Placemark><name>Portal 3</name><Point><coordinates>126.1088,38.5853,0</coordinates></Point></Placemark>
</Folder>
<Folder><name>Berms</name>
<Placemark><name>Berm 2</name><LineString><coordinates>126.1084,38.5850,0 126.1087,38.5851,0</coordinates></LineString></Placemark>
</Folder></Document></kml>
"""


@pytest.fixture
def site(sw: Runner) -> str:
    r = sw(
        "sites", "add", "sakkanmol", "--name", "Sakkanmol", "--lat", "38.5847", "--lon", "126.108"
    )
    assert r.code == 0, r.err
    return "sakkanmol"


def test_add_list_edit_delete_with_history(sw: Runner, site: str) -> None:
    r = sw("features", "add", site, "--kind", "ugf_portal", "--lon", "126.1081", "--lat",
           "38.5849", "--name", "portal 1", "--azimuth-deg", "135", "--attr", "state=active",
           "--json")  # fmt: skip
    assert r.code == 0, r.err
    portal = r.json()
    assert portal["geometry"] == {"type": "Point", "coordinates": [126.1081, 38.5849]}
    assert portal["attributes"] == {"state": "active", "azimuth_deg": 135.0}
    r = sw("features", "add", site, "--kind", "berm", "--wkt",
           "LINESTRING (126.1079 38.5846, 126.1083 38.5846)", "--height-m", "18",
           "--first-seen", "2016-05-01", "--json")  # fmt: skip
    assert r.code == 0, r.err
    berm = r.json()
    assert berm["first_seen"] == "2016-05-01" and berm["attributes"] == {"height_m": 18.0}

    listed = sw("features", "list", site, "--kind", "berm", "--json").json()
    assert [f["id"] for f in listed] == [berm["id"]]
    table = sw("features", "list", site)
    assert "portal 1" in table.out and "2 feature(s)" in table.err
    # a measured length prints to six significant digits, as sites show prints it
    r = sw("features", "add", site, "--kind", "road", "--wkt",
           "LINESTRING (126.1 38.58, 126.11 38.59)", "--length-m", "1086.116015902537",
           "--json")  # fmt: skip
    assert r.code == 0, r.err
    table = sw("features", "list", site, "--kind", "road")
    assert "length_m=1086.12" in table.out and "1086.116" not in table.out
    assert sw("features", "delete", r.json()["id"], "--yes").code == 0

    r = sw("features", "edit", portal["id"], "--name", "portal 1 (north)", "--remove-attr",
           "state", "--height-m", "6", "--json")  # fmt: skip
    assert r.code == 0, r.err
    edited = r.json()
    assert edited["name"] == "portal 1 (north)" and edited["version"] == 2
    assert edited["attributes"] == {"azimuth_deg": 135.0, "height_m": 6.0}
    r = sw("features", "edit", portal["id"], "--name", "x", "--expect-version", "1")
    assert r.code != 0 and "is at version 2, your copy is version 1" in r.err
    r = sw("features", "edit", portal["id"], "--remove-attr", "colour")
    assert r.code == 2 and "has no attribute 'colour'" in r.err

    assert sw("features", "delete", berm["id"], "--yes").code == 0
    assert [f["id"] for f in sw("features", "list", site, "--json").json()] == [portal["id"]]
    history = sw("sites", "history", site, "--json").json()  # the site with its features
    actions = [(h["entity"], h["action"]) for h in history if h["entity"] == "feature"]
    assert ("feature", "update") in actions and ("feature", "delete") in actions


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--kind", "berm"), "--lon and --lat, or --wkt"),
        (("--kind", "berm", "--lon", "126.1", "--lat", "38.5", "--wkt", "POINT (1 2)"), "not both"),
        (("--kind", "berm", "--wkt", "POLYGON ((1 2"), "not valid WKT"),
        (("--kind", "berm", "--lon", "126.1", "--lat", "38.5", "--attr", "oops"), "KEY=VALUE"),
        (("--kind", "silo", "--lon", "126.1", "--lat", "38.5"), "silo"),
        (
            ("--kind", "berm", "--lon", "126.1", "--lat", "38.5", "--attr", "height_m=tall"),
            "height_m is a number (e.g. --height-m 18)",
        ),
        (
            ("--kind", "berm", "--lon", "126.1", "--lat", "38.5", "--attr", "width_m=-3"),
            "finite number >= 0",
        ),
    ],
)
def test_bad_input_is_refused(sw: Runner, site: str, args: tuple[str, ...], message: str) -> None:
    r = sw("features", "add", site, *args)
    assert r.code == 2 and message in r.err
    assert sw("features", "list", site, "--json").json() == []


def test_a_size_given_as_attr_is_stored_as_a_number(sw: Runner, site: str) -> None:
    """``--attr height_m=18`` is the same as ``--height-m 18``: the measuring commands read the
    height of a mapped berm from it, so it must not be kept as the text "18"."""
    r = sw("features", "add", site, "--kind", "berm", "--lon", "126.1", "--lat", "38.5",
           "--attr", "height_m=18", "--attr", "material=rock", "--json")  # fmt: skip
    assert r.code == 0, r.err
    assert r.json()["attributes"] == {"height_m": 18.0, "material": "rock"}


def test_a_measured_feature_is_deleted_only_with_a_choice_for_its_measurements(
    sw: Runner, site: str
) -> None:
    ids = [
        sw(
            "features", "add", site, "--kind", "berm", "--lon", "126.1", "--lat", "38.5", "--json"
        ).json()["id"]
        for _ in range(2)
    ]
    for fid in ids:
        r = sw("measure", "record", site, "--kind", "height", "--value", "18", "--feature", fid)
        assert r.code == 0, r.err
    r = sw("features", "delete", ids[0], "--yes")
    assert r.code == 2 and "--keep-measurements" in r.err and "1 measurement(s) (height)" in r.err
    r = sw("features", "delete", ids[0], "--yes", "--keep-measurements", "--delete-measurements")
    assert r.code == 2 and "not both" in r.err
    assert len(sw("features", "list", site, "--json").json()) == 2
    r = sw("features", "delete", ids[0], "--yes", "--keep-measurements")
    assert r.code == 0 and "1 measurement(s) kept on the site" in r.out
    r = sw("features", "delete", ids[1], "--delete-measurements", input="y\n")
    assert r.code == 0 and "and its 1 measurement(s)?" in r.out, r.out
    shown = sw("sites", "show", site, "--json").json()
    assert [m["feature_id"] for m in shown["measurements"]] == [None]
    assert shown["measurements"][0]["inputs"]["deleted_feature"].startswith(ids[0])


def test_unknown_site(sw: Runner) -> None:
    r = sw("features", "add", "nowhere", "--kind", "berm", "--lon", "1", "--lat", "2")
    assert r.code != 0 and "sitewatch sites list" in r.err


def test_import_google_earth_folders_once(sw: Runner, site: str, tmp_path: Path) -> None:
    kml = tmp_path / "sakkanmol.kml"
    kml.write_text(KML)
    r = sw("features", "import", site, str(kml))
    assert r.code == 2 and "feature 1 (Portal 2) has no kind" in r.err and "--kind-field" in r.err
    assert sw("features", "list", site, "--json").json() == []
    r = sw("features", "import", site, str(kml), "--kind-field", "folder", "--json")
    assert r.code == 0, r.err
    assert r.json()["added"] == 3
    found = {f["name"]: f for f in sw("features", "list", site, "--json").json()}
    assert {n: f["kind"] for n, f in found.items()} == {
        "Portal 2": "ugf_portal",
        "Portal 3": "ugf_portal",
        "Berm 2": "berm",
    }
    assert found["Portal 2"]["geometry"]["coordinates"] == [126.1085, 38.5852]  # 2-D
    again = sw("features", "import", site, str(kml), "--kind-field", "folder", "--json").json()
    assert again["added"] == 0 and again["already_there"] == 3
    # an edited copy: a portal added before the others (twice, by mistake) is the one new feature
    new = "<Placemark><name>Portal 1</name><Point><coordinates>126.1081,38.5849,0</coordinates></Point></Placemark>"
    kml.write_text(KML.replace("<name>Portals</name>", "<name>Portals</name>" + new * 2))
    edited = sw("features", "import", site, str(kml), "--kind-field", "folder", "--json").json()
    assert edited["added"] == 1 and edited["already_there"] == 3
    assert len(sw("features", "list", site, "--json").json()) == 4


def test_import_projected_geojson_all_or_nothing(sw: Runner, site: str, tmp_path: Path) -> None:
    to_utm = Transformer.from_crs("EPSG:4326", "EPSG:32652", always_xy=True)
    x, y = to_utm.transform(126.1085, 38.5852)
    doc = {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": "EPSG:32652"}},
        "features": [
            {"type": "Feature", "properties": {"name": "P", "kind": "Portals", "height_m": 7},
             "geometry": {"type": "Point", "coordinates": [x, y]}},
            {"type": "Feature", "properties": {"name": "Q", "kind": "silo"},
             "geometry": {"type": "Point", "coordinates": [x + 50, y]}},
        ],
    }  # fmt: skip
    path = tmp_path / "portals.geojson"
    path.write_text(json.dumps(doc))
    r = sw("features", "import", site, str(path))
    assert r.code == 2 and "feature 2 (Q): kind 'silo'" in r.err
    assert sw("features", "list", site, "--json").json() == []  # nothing half-imported
    doc["features"] = doc["features"][:1]
    path.write_text(json.dumps(doc))
    assert sw("features", "import", site, str(path)).code == 0
    (f,) = sw("features", "list", site, "--json").json()
    lon, lat = f["geometry"]["coordinates"]
    assert f["kind"] == "ugf_portal" and f["attributes"] == {"height_m": 7}
    assert lon == pytest.approx(126.1085, abs=1e-7) and lat == pytest.approx(38.5852, abs=1e-7)


def test_import_reads_the_first_layer_of_a_geopackage_and_says_so(
    sw: Runner, site: str, tmp_path: Path
) -> None:
    import numpy as np
    import pyogrio.raw
    import shapely
    from shapely.geometry import Point

    gpkg = tmp_path / "digitised.gpkg"
    for i, (layer, kind) in enumerate((("portals", "ugf_portal"), ("berms", "berm"))):
        pyogrio.raw.write(
            gpkg,
            np.array([shapely.to_wkb(Point(126.1085 + i / 1000, 38.5852))], dtype=object),
            [np.array([kind], dtype=object)],
            ["kind"],
            layer=layer,
            geometry_type="Point",
            crs="EPSG:4326",
            driver="GPKG",
            append=i > 0,
        )
    r = sw("features", "import", site, str(gpkg), "--json")
    assert r.code == 0 and r.json()["added"] == 1, r.err
    assert [f["kind"] for f in sw("features", "list", site, "--json").json()] == ["ugf_portal"]
    assert "leaving out 'berms'" in " ".join(r.err.split())


@pytest.mark.parametrize("fmt", ["kml", "geojson"])
def test_import_the_features_of_a_sites_export(
    sw: Runner, site: str, tmp_path: Path, fmt: str
) -> None:
    """A sitewatch export of another site: its features are taken, its site, observation and
    measurement records left (they are for `sites import`), and it says so."""
    berm = sw("features", "add", site, "--kind", "berm", "--lon", "126.108", "--lat", "38.585",
              "--name", "berm 1", "--json").json()["id"]  # fmt: skip
    assert sw("observations", "add", site, "--date", "2024-01-01").code == 0
    assert sw("measure", "record", site, "--kind", "height", "--value", "18",
              "--feature", berm).code == 0  # fmt: skip
    out = tmp_path / f"export.{fmt}"
    assert sw("sites", "export", "-o", str(out)).code == 0
    assert sw("sites", "add", "copy", "--name", "Copy", "--lat", "38.6", "--lon", "126.1").code == 0
    r = sw("features", "import", "copy", str(out), "--json")
    assert r.code == 0, r.err
    assert r.json()["added"] == 1 and "is a sitewatch sites export" in r.err
    (copied,) = sw("features", "list", "copy", "--json").json()
    assert (copied["kind"], copied["name"]) == ("berm", "berm 1")
    # an export whose sites have no features says which command reads it
    assert sw("sites", "add", "bare", "--name", "Bare", "--lat", "38.7", "--lon", "126.2").code == 0
    bare = tmp_path / f"bare.{fmt}"
    assert sw("sites", "export", "-o", str(bare), "--text", "Bare").code == 0
    r = sw("features", "import", "copy", str(bare))
    assert r.code == 2 and "with no features: import it with `sitewatch sites import`" in r.err
