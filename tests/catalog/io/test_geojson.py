"""GeoJSON FeatureCollections and IARPA SMART site models."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest
from shapely.geometry import Polygon, shape

from sitewatch.catalog.io import detect_format, read_sites, write_sites
from sitewatch.catalog.io._iarpa import mgrs_square
from sitewatch.catalog.models import Observation, Site, SiteRecord
from sitewatch.errors import InputError


def test_round_trip_sites_features_observations(records, tmp_path: Path, split) -> None:
    path = tmp_path / "sites.geojson"
    assert write_sites(records, path, "geojson") == 3
    assert detect_format(path) == "geojson"
    back, problems = split(list(read_sites(path)))
    assert problems == []
    assert back == records
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["type"] == "FeatureCollection"
    kinds = [f["properties"]["record"] for f in doc["features"]]
    assert kinds == ["site", "feature", "feature", "feature", "observation", "measurement",
                     "measurement", "site", "site"]  # fmt: skip
    # a measurement of a feature lies on it (Google Earth and QGIS show it there)
    berm_height = doc["features"][5]
    assert shape(berm_height["geometry"]).within(shape(doc["features"][3]["geometry"]))
    assert doc["features"][6]["geometry"] is None  # the site's own
    # a site with an AOI is drawn as its polygon, with the point kept in the properties
    assert doc["features"][0]["geometry"]["type"] == "Polygon"
    assert doc["features"][-1]["geometry"] == {
        "type": "Point",
        "coordinates": [126.7226, 38.682288],
    }


def test_the_cited_sources_travel_with_their_sites(records, tmp_path: Path, split) -> None:
    from dataclasses import replace
    from datetime import date

    from sitewatch.catalog.io import left_out
    from sitewatch.catalog.models import Source

    csis = Source(
        "beyond-parallel-2018",
        "CSIS Beyond Parallel, Undeclared North Korea: the Sakkanmol base (2018)",
        url="https://beyondparallel.csis.org/",
        licence="all rights reserved",
        accessed=date(2026, 12, 1),
    )
    cited = [replace(records[0], sources=(csis,)), *records[1:]]
    path = tmp_path / "sites.geojson"
    write_sites(cited, path, "geojson")
    back, problems = split(list(read_sites(path)))
    assert problems == [] and back == cited
    assert back[0].sources == (csis,) and back[0].site.source_ids == ("beyond-parallel-2018",)
    # what each format leaves out of these records: GeoJSON nothing
    assert left_out(cited, "geojson") == left_out(cited, "gpkg") == {}
    assert left_out(cited, "kml") == left_out(cited, "kmz") == {}
    assert left_out(cited, "csv") == {
        "features": 3,
        "observations": 1,
        "measurements": 2,
        "sources": 1,
    }
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["features"][0]["properties"]["sources"] = [{"id": "x"}]
    path.write_text(json.dumps(doc), encoding="utf-8")
    _, problems = split(list(read_sites(path)))
    assert "every source needs an id and a citation" in problems[0].reason


def test_foreign_feature_collection(write_text, split) -> None:
    doc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"Name": "Yusang-ni", "brigade": 15, "source": "CSIS"},
                "geometry": {"type": "Point", "coordinates": [126.259682, 39.449886]},
            },
            {
                "type": "Feature",
                "properties": {"title": "Area only"},
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [
                        [[126, 38], [126.2, 38], [126.2, 38.2], [126, 38.2], [126, 38]]
                    ],
                },
            },
            {"type": "Feature", "properties": {"name": "No place"}, "geometry": None},
        ],
    }
    path = write_text("foreign.json", json.dumps(doc))
    records, problems = split(list(read_sites(path)))
    assert [r.site.id for r in records] == ["yusang-ni", "area-only"]
    assert records[0].site.notes == "brigade: 15\nsource: CSIS"
    area = records[1].site
    assert area.aoi is not None
    assert area.aoi.contains(area.point)
    assert len(problems) == 1
    assert "feature #3" in problems[0].reason
    assert "no coordinates" in problems[0].reason


def test_children_must_follow_their_site(write_text, split) -> None:
    site = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [1, 2]}}
    feat = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [1.001, 2]},
        "properties": {"record": "feature", "kind": "hq"},
    }
    doc = {
        "type": "FeatureCollection",
        "features": [
            {**feat, "properties": {**feat["properties"], "site_id": "b"}},  # before its site: ok
            {**site, "properties": {"record": "site", "id": "a", "name": "A"}},
            {**site, "properties": {"record": "site", "id": "b", "name": "B"}},
            {**feat, "properties": {**feat["properties"], "site_id": "a"}},  # too late
            {**feat, "properties": {**feat["properties"], "site_id": "zz"}},  # no such site
            {**feat, "properties": {**feat["properties"], "site_id": "b", "kind": "castle"}},
        ],
    }
    records, problems = split(list(read_sites(write_text("g.geojson", json.dumps(doc)))))
    assert [(r.site.id, len(r.features)) for r in records] == [("a", 0), ("b", 1)]
    reasons = " | ".join(p.reason for p in problems)
    assert "feature #4 belongs to site 'a', which came earlier" in reasons
    assert "unknown feature kind 'castle'" in reasons
    assert "feature #5 belongs to site 'zz', which is not in the file" in reasons


def test_bad_json_is_a_file_error(write_text) -> None:
    with pytest.raises(InputError, match="not valid JSON"):
        list(read_sites(write_text("bad.geojson", '{"type": "FeatureCollection", "features": [')))
    with pytest.raises(InputError, match="not a GeoJSON object"):
        list(read_sites(write_text("list.geojson", "[1, 2]")))


# --- IARPA SMART ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smart_validator(shared_data: Path) -> jsonschema.protocols.Validator:
    schema = json.loads((shared_data / "iarpa-smart" / "smart.schema.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def test_reads_the_smart_site_models(shared_data: Path, split) -> None:
    folder = shared_data / "iarpa-smart" / "site_models"
    assert detect_format(folder / "KR_R001_0003.geojson") == "iarpa"
    assert detect_format(folder) == "iarpa"
    records, problems = split(list(read_sites(folder)))
    assert problems == []
    assert len(records) == 25
    rec = next(r for r in records if r.site.id == "kr_r001_0003")
    raw = json.loads((folder / "KR_R001_0003.geojson").read_text())
    site_feature = raw["features"][0]
    assert rec.site.aoi is not None
    assert rec.site.aoi.equals(shape(site_feature["geometry"]))
    assert rec.site.aoi.contains(rec.site.point)
    assert rec.site.status == "confirmed"  # positive_annotated
    assert "iarpa-status:positive_annotated" in rec.site.tags
    assert rec.site.country == "KR"
    raw_obs = [f["properties"] for f in raw["features"][1:]]
    assert len(rec.observations) == len(raw_obs)
    first = rec.observations[0]
    assert first.acquired == datetime(2015, 7, 3, tzinfo=UTC)
    assert (first.sensor, first.phase) == ("WorldView", "no_activity")
    assert first.scene_id == "15JUL03021500-M1BS-011777484010_01_P001"
    mapped = {
        "No Activity": "no_activity",
        "Site Preparation": "site_preparation",
        "Active Construction": "active_construction",
        "Post Construction": "post_construction",
    }
    by_date = sorted(raw_obs, key=lambda p: p["observation_date"])
    for props, obs in zip(by_date, rec.observations, strict=True):
        if props["current_phase"] in mapped:
            assert obs.phase == mapped[props["current_phase"]]
    phases = {o.phase for r in records for o in r.observations}
    assert {"no_activity", "site_preparation", "active_construction", "post_construction"} <= phases


def test_mixed_phases_take_the_most_advanced(write_text, split) -> None:
    doc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"type": "site", "site_id": "KR_R001_0100", "region_id": "KR_R001"},
                "geometry": {"type": "Polygon", "coordinates": [[[1, 1], [2, 1], [2, 2], [1, 1]]]},
            },
            {
                "type": "Feature",
                "properties": {
                    "type": "observation",
                    "observation_date": "2020-01-02",
                    "current_phase": "Site Preparation, Active Construction, Unknown",
                    "sensor_name": "Sentinel-2",
                    "source": None,
                },
                "geometry": None,
            },
        ],
    }
    records, problems = split(list(read_sites(write_text("m.geojson", json.dumps(doc)))))
    assert problems == []
    assert records[0].observations[0].phase == "active_construction"


def test_reads_a_region_model(shared_data: Path, split) -> None:
    path = shared_data / "iarpa-smart" / "region_models" / "KR_R001.geojson"
    records, problems = split(list(read_sites(path)))
    assert problems == []
    assert len(records) == 25
    assert all(r.site.aoi is not None and r.observations == () for r in records)


def test_written_site_models_validate_and_round_trip(
    records, tmp_path: Path, smart_validator, split
) -> None:
    out = tmp_path / "smart"
    assert write_sites(records, out, "iarpa") == 3
    models = sorted((out / "site_models").glob("*.geojson"))
    assert [m.name for m in models] == [f"ZZ_R000_000{i}.geojson" for i in (1, 2, 3)]
    regions = list((out / "region_models").glob("*.geojson"))
    assert [r.name for r in regions] == ["ZZ_R000.geojson"]
    for path in [*models, *regions]:
        errors = list(smart_validator.iter_errors(json.loads(path.read_text())))
        assert errors == [], f"{path.name}: {errors[0].message}"
    back, problems = split(list(read_sites(out)))
    assert problems == []
    # a SMART model has no place for measurements: export says so (left_out), the rest comes back
    from dataclasses import replace

    from sitewatch.catalog.io import left_out

    assert back == [replace(r, measurements=()) for r in records]
    assert left_out(records, "iarpa") == {"measurements": 2}
    # the visible IARPA properties tell other SMART tools what they need
    first = json.loads(models[0].read_text())["features"]
    assert first[0]["properties"]["mgrs"] == mgrs_square(126.107945, 38.584698) == "52SBH"
    assert first[1]["properties"]["current_phase"] == "Active Construction"
    assert first[1]["properties"]["sensor_name"] == "WorldView"


def test_smart_round_trip_of_the_shared_models(shared_data: Path, tmp_path: Path, split) -> None:
    folder = shared_data / "iarpa-smart" / "site_models"
    records, _ = split(list(read_sites(folder)))
    out = tmp_path / "again"
    write_sites(records, out, "iarpa")
    assert sorted(p.name for p in (out / "site_models").iterdir()) == sorted(
        p.name for p in folder.iterdir()
    )
    back, problems = split(list(read_sites(out / "site_models")))
    assert problems == []
    assert back == records


def test_one_site_model_file(tmp_path: Path, smart_validator, split) -> None:
    site = Site(id="lonely", name="Lonely", lon=10.0, lat=50.0)
    obs = Observation(
        id="o1", site_id="lonely", acquired=datetime(2021, 1, 1, tzinfo=UTC), sensor="drone"
    )
    path = tmp_path / "one.geojson"
    for rec in (SiteRecord(site=site), SiteRecord(site=site, observations=(obs,))):
        write_sites([rec], path, "iarpa")
        doc = json.loads(path.read_text())
        assert list(smart_validator.iter_errors(doc)) == []
        # no AOI: a 100 m circle stands in for the IARPA polygon, but the site keeps no AOI
        assert isinstance(shape(doc["features"][0]["geometry"]), Polygon)
        back, problems = split(list(read_sites(path)))
        assert problems == []
        assert back == [rec]
    with pytest.raises(InputError, match="exactly one site"):
        write_sites([SiteRecord(site=site)] * 2, tmp_path / "two.geojson", "iarpa")
    assert not (tmp_path / "two.geojson").exists()


def test_mgrs_squares() -> None:
    assert mgrs_square(128.67, 37.66) == "52SDG"  # the KR_R001 SMART region
    assert mgrs_square(-0.1276, 51.5072) == "30UXC"  # London
    assert mgrs_square(151.2093, -33.8688) == "56HLH"  # Sydney
