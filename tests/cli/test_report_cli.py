"""``sitewatch report`` and ``sitewatch export`` run in-process on a small catalog and archive."""

from __future__ import annotations

import subprocess
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyogrio
import pytest
from affine import Affine
from pyproj import Transformer
from shapely.geometry import Point, box

from sitewatch.catalog.models import Feature, Site
from sitewatch.catalog.store import Catalog
from sitewatch.config import get_settings

LON, LAT = 125.75, 39.0


@pytest.fixture
def populated() -> str:
    """The default catalog (in the test's SITEWATCH_HOME) with one site and two features."""
    with Catalog() as cat:
        cat.add_site(
            Site(
                "cli-base",
                "CLI Base",
                LON,
                LAT,
                aoi=box(LON - 0.003, LAT - 0.002, LON + 0.003, LAT + 0.002),
            )
        )
        cat.add_feature(
            Feature("p1", "cli-base", "ugf_portal", Point(LON + 0.0005, LAT), name="Portal 1")
        )
        cat.add_feature(
            Feature(
                "h1",
                "cli-base",
                "hq",
                box(LON - 0.001, LAT - 0.001, LON - 0.0005, LAT - 0.0005),
                name="HQ",
            )
        )
    return "cli-base"


def _archive_chips(site_id: str, n: int = 2) -> None:
    from sitewatch.imagery import Archive, Chip, Scene

    x, y = Transformer.from_crs("EPSG:4326", "EPSG:32652", always_xy=True).transform(LON, LAT)
    archive = Archive(get_settings().archive_path)
    for i in range(n):
        scene = Scene(
            id=f"scene-{i}",
            sensor="sentinel-2",
            datetime=datetime(2021 + i, 6, 1, tzinfo=UTC),
            assets={"red": "r.tif", "green": "g.tif", "blue": "b.tif"},
            crs="EPSG:32652",
        )
        data = (np.random.default_rng(i).integers(300, 3000, (3, 60, 80)) + 200 * i).astype(
            np.uint16
        )
        chip = Chip(
            data=data,
            bands=("red", "green", "blue"),
            crs="EPSG:32652",
            transform=Affine(10, 0, x - 400, 0, -10, y + 300),
            valid=np.ones((60, 80), bool),
            scene=scene,
        )
        archive.add_chip(site_id, chip, source="test")


def test_report_site_with_archive_imagery(sw, populated: str, tmp_path: Path) -> None:
    _archive_chips(populated)
    res = sw("report", "site", populated, "-o", str(tmp_path / "out"), "--json")
    assert res.code == 0, res.err
    data = res.json()
    assert data["chips"] == 2
    files = data["files"]
    assert {"html", "figure_overview", "figure_before_after", "stac"} <= set(files)
    html = Path(files["html"]).read_text(encoding="utf-8")
    assert "CLI Base" in html and "No imagery" not in html and "2022-06-01" in html


def test_report_site_without_imagery_and_pdf(sw, populated: str, tmp_path: Path) -> None:
    res = sw(
        "report", "site", populated, "-o", str(tmp_path), "--format", "html", "--format", "pdf"
    )
    assert res.code == 0, res.err
    assert (tmp_path / "cli-base-brief.pdf").read_bytes().startswith(b"%PDF")
    assert "No imagery of this site" in (tmp_path / "cli-base-brief.html").read_text(
        encoding="utf-8"
    )
    assert "note:" in res.err


def test_report_catalog(sw, populated: str, tmp_path: Path) -> None:
    res = sw("report", "catalog", "-o", str(tmp_path), "--json")
    assert res.code == 0, res.err
    assert Path(res.json()["files"]["html"]).is_file()
    assert "CLI Base" in (tmp_path / "catalog-report.html").read_text(encoding="utf-8")


def test_unknown_site_is_a_clear_error(sw, populated: str, tmp_path: Path) -> None:
    res = sw("report", "site", "nowhere", "-o", str(tmp_path))
    assert res.code == 2 and "error:" in res.err and "nowhere" in res.err
    res = sw("export", "kmz", "nowhere", "-o", str(tmp_path / "x.kmz"))
    assert res.code == 2 and "sites list" in res.err


def test_export_features_of_a_bare_site_says_what_it_wrote(
    sw, populated: str, tmp_path: Path
) -> None:
    with Catalog() as cat:
        cat.add_site(Site("bare", "Bare", LON + 0.1, LAT))
    res = sw("export", "features", "bare", "-o", str(tmp_path / "bare.geojson"))
    assert res.code == 0, res.err
    assert "an empty collection (the site has no features" in res.out
    res = sw("export", "features", "bare", "-o", str(tmp_path / "bare.gpkg"))
    assert res.code == 2 and "nothing to write" in res.err
    assert not (tmp_path / "bare.gpkg").exists()


def test_export_kmz_and_features(sw, populated: str, tmp_path: Path) -> None:
    _archive_chips(populated, n=1)
    fid = sw("features", "list", populated, "--json").json()[0]["id"]
    r = sw("measure", "record", populated, "--kind", "height", "--value", "18", "--uncertainty",
           "2", "--feature", fid, "--method", "reported")  # fmt: skip
    assert r.code == 0, r.err
    kmz = tmp_path / "site.kmz"
    res = sw("export", "kmz", populated, "-o", str(kmz), "--ring", "5", "--ring", "1", "--json")
    assert res.code == 0, res.err
    assert res.json() == {
        "site": "cli-base",
        "path": str(kmz),
        "features": 2,
        "changes": 0,
        "overlays": 1,
        "rings": 2,
        "observations": 0,
        "measurements": 1,
    }
    with zipfile.ZipFile(kmz) as zf:
        assert any(n.startswith("files/overlay_") for n in zf.namelist())
        # the feature's balloon gives its measurement
        assert "height 18.0 ± 2.0 m · reported" in zf.read("doc.kml").decode("utf-8")
    if (ogrinfo := __import__("shutil").which("ogrinfo")) is not None:
        out = subprocess.run(
            [ogrinfo, "-ro", "-so", str(kmz)], capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0 and "Features" in out.stdout
    gpkg = tmp_path / "site.gpkg"
    res = sw("export", "features", populated, "-o", str(gpkg), "--ring", "10")
    assert res.code == 0, res.err
    assert [n for n, _ in pyogrio.list_layers(gpkg)] == ["features", "range_rings"]
