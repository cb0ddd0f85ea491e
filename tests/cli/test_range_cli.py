"""``sitewatch range rings|targets``."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry import shape

Runner = Callable[..., Any]


def test_rings_geojson_kml_and_site_origin(sw: Runner, tmp_path: Path) -> None:
    out = tmp_path / "rings.geojson"
    r = sw(
        "range",
        "rings",
        "--from",
        "125.75,39.03",
        "--classes",
        "scud-b,hwasong-15",
        "-o",
        str(out),
        "--json",
    )
    assert r.code == 0, r.err
    fc = json.loads(out.read_text())
    rings = {f["properties"].get("class"): shape(f["geometry"]) for f in fc["features"]}
    assert set(rings) == {"scud-b", "hwasong-15", None}
    assert rings["hwasong-15"].covers(shapely.Point(0, 90))
    assert rings["scud-b"].covers(shapely.Point(126.98, 37.57))  # Seoul
    kml = tmp_path / "rings.kml"
    assert sw("range", "rings", "--from", "125.75,39.03", "-o", str(kml)).code == 0
    root = ET.parse(kml).getroot()
    assert len(root.findall(".//{http://www.opengis.net/kml/2.2}Placemark")) == 10
    assert sw("sites", "add", "--name", "Launch Site", "--lat", "40.0", "--lon", "127.0").code == 0
    r = sw(
        "range", "rings", "--from", "launch-site", "--classes", "nodong", "-o", str(out), "--json"
    )
    assert r.code == 0 and r.json()["origin"] == [127.0, 40.0]
    r = sw("range", "rings", "--from", "nowhere", "-o", str(out))
    assert r.code == 2 and "nowhere" in r.err
    r = sw("range", "rings", "--from", "125.75,39.03", "--classes", "nope", "-o", str(out))
    assert r.code == 2 and "unknown missile class" in r.err
    r = sw("range", "rings", "--from", "125.75,39.03", "-o", str(tmp_path / "x.shp"))
    assert r.code == 2 and ".kml" in r.err


def test_targets_from_csv_and_custom_table(sw: Runner, tmp_path: Path) -> None:
    targets = tmp_path / "t.csv"
    targets.write_text("name,lon,lat\nSeoul,126.98,37.57\nTokyo,139.69,35.69\n")
    r = sw("range", "targets", "--from", "125.75,39.03", "--targets", str(targets), "--json")
    assert r.code == 0, r.err
    rows = r.json()
    assert [x["name"] for x in rows] == ["Seoul", "Tokyo"]
    assert "scud-b" in rows[0]["in_range_of"] and "scud-b" not in rows[1]["in_range_of"]
    table = tmp_path / "mine.csv"
    table.write_text(
        "class,name,min_range_km,max_range_km,source\nshort,Short,,150,analyst estimate\n"
    )
    r = sw(
        "range",
        "targets",
        "--from",
        "125.75,39.03",
        "--targets",
        str(targets),
        "--table",
        str(table),
        "--json",
    )
    assert r.code == 0 and [x["in_range_of"] for x in r.json()] == [[], []]
    gj = tmp_path / "t.geojson"
    gj.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": "Seoul"}, "geometry": {"type": "Point", "coordinates": [126.98, 37.57]}}]}))  # fmt: skip
    r = sw("range", "targets", "--from", "125.75,39.03", "--targets", str(gj), "--json")
    assert r.code == 0 and r.json()[0]["distance_km"] > 180


def test_targets_given_on_the_command_line(sw: Runner, tmp_path: Path) -> None:
    """--target takes NAME=LON,LAT, LON,LAT and catalog site ids beside files, repeatable; the
    same place given each way is at the same distance."""
    targets = tmp_path / "t.csv"
    targets.write_text("name,lon,lat\nSeoul,126.98,37.57\n")
    assert (
        sw(
            "sites", "add", "seoul", "--name", "Seoul city", "--lat", "37.57", "--lon", "126.98"
        ).code
        == 0
    )
    r = sw("range", "targets", "--from", "125.75,39.03", "--target", str(targets),
           "--target", "Capital=126.98,37.57", "--target", "126.98,37.57", "--target", "seoul",
           "--json")  # fmt: skip
    assert r.code == 0, r.err
    rows = r.json()
    assert [x["name"] for x in rows] == ["Seoul", "Capital", "126.98,37.57", "Seoul city"]
    assert len({x["distance_km"] for x in rows}) == 1 and rows[0]["distance_km"] > 180
    text = sw("range", "targets", "--from", "125.75,39.03", "--target", "Capital=126.98,37.57")
    bearing = rows[0]["bearing_deg"]  # south-east of Pyongyang
    assert text.out.startswith(
        f"Capital: {rows[0]['distance_km']:,.1f} km, bearing {bearing:.1f}° (SE); in range of: "
    )
    for bad, says in (("nope.csv", "no such file"), ("=1,2", "give a name before '='"),
                      ("X=200,10", "longitude"), ("no-such-site", "no-such-site")):  # fmt: skip
        r = sw("range", "targets", "--from", "125.75,39.03", "--target", bad)
        assert r.code == 2 and says in r.err, (bad, r.err)


def test_the_table_in_use_comes_from_the_settings(
    sw: Runner, tmp_path: Path, monkeypatch: Any
) -> None:
    """SITEWATCH_MISSILE_TABLE names the analysts' own table for every command; --table wins."""
    mine = tmp_path / "mine.csv"
    mine.write_text("class,name,type,max_range_km,source\nx1,Example,SRBM,500,our estimate\n")
    monkeypatch.setenv("SITEWATCH_MISSILE_TABLE", str(mine))
    out = tmp_path / "rings.geojson"
    assert sw("range", "rings", "--from", "126,39", "-o", str(out)).code == 0
    classes = [f["properties"].get("class") for f in json.loads(out.read_text())["features"]]
    assert classes == ["x1", None]
    assert (
        sw("sites", "add", "b", "--name", "B", "--lat", "39", "--lon", "126", "--tag", "srbm").code
        == 0
    )
    assert "reach       Example 500 km" in sw("sites", "show", "b").out
    other = tmp_path / "other.csv"
    other.write_text("class,name,max_range_km,source\ny2,Other,800,theirs\n")
    r = sw("range", "rings", "--from", "126,39", "--table", str(other), "-o", str(out))
    assert r.code == 0, r.err
    assert [f["properties"].get("class") for f in json.loads(out.read_text())["features"]] == [
        "y2",
        None,
    ]
