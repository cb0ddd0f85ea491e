"""GeoPackage: round trip, layers for QGIS, files made elsewhere, GDAL can read ours."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import numpy as np
import pyogrio
import pyogrio.raw
import pytest
import shapely
from shapely.geometry import Point, box

from sitewatch.catalog.io import detect_format, read_sites, write_sites
from sitewatch.catalog.io import gpkg as gpkg_module
from sitewatch.catalog.models import Site, SiteRecord
from sitewatch.errors import InputError
from sitewatch.geo import to_crs


def test_round_trip(records, tmp_path: Path, split) -> None:
    path = tmp_path / "sites.gpkg"
    assert write_sites(records, path, "gpkg") == 3
    assert detect_format(path) == "gpkg"
    layers = {name: kind for name, kind in pyogrio.list_layers(path)}
    assert layers == {
        "sites": "Point",
        "site_aoi": "MultiPolygon",
        "features": "Unknown",
        "observations": "Point",
        "measurements": "Point",
    }
    back, problems = split(list(read_sites(path)))
    assert problems == []
    assert [r.site for r in back] == [r.site for r in records]
    assert [r.features for r in back] == [r.features for r in records]
    assert [r.observations for r in back] == [r.observations for r in records]
    assert [r.measurements for r in back] == [r.measurements for r in records]
    info = pyogrio.read_info(path, layer="sites")
    assert info["features"] == 3
    assert {"id", "name", "aliases", "tags", "status", "confidence", "lon", "lat"} <= set(
        info["fields"]
    )


def test_batches_and_no_aoi_layer_when_unused(tmp_path: Path, monkeypatch, split) -> None:
    monkeypatch.setattr(gpkg_module, "BATCH_SIZE", 7)
    sites = [
        SiteRecord(site=Site(id=f"s{i}", name=f"Site {i}", lon=i / 10, lat=-i / 20))
        for i in range(30)
    ]
    path = tmp_path / "many.gpkg"
    assert write_sites(sites, path, "gpkg") == 30
    assert [str(n) for n, _ in pyogrio.list_layers(path)] == ["sites"]
    back, problems = split(list(read_sites(path)))
    assert problems == []
    assert [r.site for r in back] == [r.site for r in sites]


def test_aoi_only_in_a_later_batch(tmp_path: Path, monkeypatch, split) -> None:
    monkeypatch.setattr(gpkg_module, "BATCH_SIZE", 2)
    sites = [Site(id=f"s{i}", name=f"S{i}", lon=10 + i, lat=10) for i in range(5)]
    sites[4] = dataclasses.replace(sites[4], aoi=box(13.9, 9.9, 14.1, 10.1))
    path = tmp_path / "late.gpkg"
    write_sites([SiteRecord(site=s) for s in sites], path, "gpkg")
    back, _ = split(list(read_sites(path)))
    assert [r.site for r in back] == sites


def test_empty_export_is_a_valid_geopackage(tmp_path: Path) -> None:
    path = tmp_path / "none.gpkg"
    assert write_sites([], path, "gpkg") == 0
    assert list(read_sites(path)) == []


def test_foreign_geopackage_in_another_crs(tmp_path: Path, split) -> None:
    path = tmp_path / "theirs.gpkg"
    pts = [Point(125.355288, 39.644929), Point(126.722600, 38.682288)]
    merc = [to_crs(p, "EPSG:4326", "EPSG:3857") for p in pts]
    pyogrio.raw.write(
        str(path),
        geometry=np.array(shapely.to_wkb(merc), dtype=object),
        field_data=[np.array(["Sino-ri", "Kal-gol"], dtype=object), np.array([3, 4])],
        fields=["Title", "brigade"],
        layer="bases",
        driver="GPKG",
        geometry_type="Point",
        crs="EPSG:3857",
    )
    records, problems = split(list(read_sites(path)))
    assert problems == []
    assert [r.site.id for r in records] == ["sino-ri", "kal-gol"]
    assert records[0].site.lon == pytest.approx(125.355288, abs=1e-9)
    assert records[0].site.lat == pytest.approx(39.644929, abs=1e-9)
    assert records[1].site.notes == "brigade: 4"
    with pytest.raises(InputError, match="no layer 'sites'"):
        list(read_sites(path, layer="sites"))


def test_not_a_geopackage(write_text) -> None:
    with pytest.raises(InputError, match="not a GeoPackage"):
        list(read_sites(write_text("fake.gpkg", "hello")))


def test_ogrinfo_lists_every_site(shared_data: Path, tmp_path: Path, ogrinfo: str) -> None:
    records = [
        r
        for r in read_sites(shared_data / "north-korea" / "reported-missile-bases.csv")
        if isinstance(r, SiteRecord)
    ]
    path = tmp_path / "bases.gpkg"
    write_sites(records, path, "gpkg")
    summary = subprocess.run(
        [ogrinfo, "-ro", "-so", "-al", str(path)], capture_output=True, text=True, check=True
    )
    assert "Layer name: sites" in summary.stdout
    assert "Feature Count: 10" in summary.stdout
    assert "partially supported" not in summary.stderr  # GeoPackage 1.2 for older GDAL/QGIS
    full = subprocess.run(
        [ogrinfo, "-ro", "-al", "-q", str(path), "sites"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for rec in records:
        assert f"name (String) = {rec.site.name}\n" in full


def test_the_cited_sources_and_evidence_travel(records, tmp_path: Path, split) -> None:
    from datetime import date

    from sitewatch.catalog.models import Source

    csis = Source(
        "beyond-parallel-2018", "CSIS (2018)", url="https://x.org", accessed=date(2026, 1, 2)
    )
    obs = dataclasses.replace(
        records[0].observations[0], evidence=("evidence:" + "a" * 64 + "/p.png", "https://x.org/b")
    )
    cited = [dataclasses.replace(records[0], sources=(csis,), observations=(obs,)), *records[1:]]
    path = tmp_path / "cited.gpkg"
    write_sites(cited, path, "gpkg")
    back, problems = split(list(read_sites(path)))
    assert problems == [] and back[0].sources == (csis,) and back[1].sources == ()
    assert back[0].observations == (obs,)
