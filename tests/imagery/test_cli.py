"""``sitewatch imagery sources|search|fetch|ls`` end to end."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sitewatch.config import get_settings

from .conftest import CliResult, RasterFactory

Run = Callable[..., CliResult]


@pytest.fixture
def naip_site() -> str:
    from sitewatch.catalog.models import Site
    from sitewatch.catalog.store import Catalog

    cat = Catalog(get_settings().catalog_url, actor="tester")
    try:
        cat.add_site(Site(id="naip-farm", name="NAIP farm", lon=-99.155, lat=47.02))
    finally:
        cat.close()
    return "naip-farm"


def test_sources(sw: Run) -> None:
    r = sw("imagery", "sources", "--json")
    assert r.code == 0, r.err
    data = r.json()
    assert data["config"].endswith("sources.toml")
    assert [s["name"] for s in data["sources"]] == ["earth-search"]


def test_search_by_bbox_and_site(sw: Run, shared_data: Path, naip_site: str) -> None:
    folder = str(shared_data / "naip-timeseries")
    r = sw(
        "imagery",
        "search",
        "--bbox",
        "-99.16,47.01,-99.15,47.02",
        "--from",
        "2015-01-01",
        "--to",
        "2020-12-31",
        "--source",
        folder,
        "--json",
    )
    assert r.code == 0, r.err
    data = r.json()
    assert data["count"] == 6
    assert data["query"]["start"].startswith("2015-01-01")
    assert {s["sensor"] for s in data["scenes"]} == {"naip"}
    r = sw("imagery", "search", naip_site, "--source", folder, "--json")
    assert r.json()["count"] == 10
    r = sw("imagery", "search", naip_site, "--source", folder)
    assert r.code == 0 and "10 scene(s)" in r.err
    # dated by their file names: the day, with no made-up time of day
    assert "2009-08-18 " in r.out and "00:00" not in r.out


def test_search_nothing_found_says_what_was_searched(sw: Run, shared_data: Path) -> None:
    r = sw(
        "imagery",
        "search",
        "--bbox",
        "179.9,-16.6,-179.9,-16.4",
        "--from",
        "2020-01-01",
        "--to",
        "2020-02-01",
        "--source",
        str(shared_data / "naip-timeseries"),
    )
    assert r.code == 2
    assert "no scenes found in naip-timeseries" in r.err
    assert "179.90000" in r.err and "2020-01-01..2020-02-01" in r.err


def test_bad_arguments(sw: Run, naip_site: str) -> None:
    assert sw("imagery", "search", "--bbox", "1,2,3").code == 2
    r = sw("imagery", "search", "no-such-site", "--source", ".")
    assert r.code == 2 and "no-such-site" in r.err
    r = sw("imagery", "search", naip_site, "--source", "/no/where")
    assert r.code == 2 and "unknown imagery source" in r.err


def test_fetch_and_ls(sw: Run, shared_data: Path, naip_site: str) -> None:
    folder = str(shared_data / "naip-timeseries")
    r = sw(
        "imagery",
        "fetch",
        naip_site,
        "--source",
        folder,
        "--from",
        "2019-01-01",
        "--resolution",
        "10",
        "--size",
        "400",
        "--bands",
        "red,nir",
        "--json",
    )
    assert r.code == 0, r.err
    data = r.json()
    assert len(data["stored"]) == 2 and data["grid"]["resolution"] == 10.0
    assert data["grid"]["crs"] == "EPSG:32614"
    assert data["stored"][0]["bands"] == ["red", "nir"]
    r = sw("imagery", "ls", naip_site, "--json")
    chips = r.json()["chips"]
    assert [c["datetime"][:4] for c in chips] == ["2019", "2020"]
    assert all(Path(c["path"]).is_file() for c in chips)
    r = sw(
        "imagery",
        "fetch",
        naip_site,
        "--source",
        folder,
        "--from",
        "2019-01-01",
        "--resolution",
        "10",
        "--size",
        "400",
        "--bands",
        "red,nir",
    )
    assert r.code == 0 and "0 chip(s) stored, 2 already there" in r.out
    r = sw("sites", "add", "other-site", "--name", "Other", "--lat", "47.1", "--lon", "-99.1")
    assert r.code == 0, r.err
    r = sw("imagery", "ls", "other-site")
    assert r.code == 0 and "no chips of other-site" in r.err
    # a site the catalog does not know is named as such, not sent to `imagery fetch`
    r = sw("imagery", "ls", "no-such-site")
    assert r.code == 2 and "no site with id 'no-such-site'" in r.err and "fetch" not in r.err


def test_fetch_exits_1_when_a_scene_cannot_be_read(
    sw: Run, shared_data: Path, naip_site: str, tmp_path: Path
) -> None:
    folder = tmp_path / "scenes"
    folder.mkdir()
    names = ["m_4709963_se_14_1_20190904.tif", "m_4709963_se_14_1_20200831.tif"]
    for name in names:
        (folder / name).write_bytes((shared_data / "naip-timeseries" / name).read_bytes())
    damaged = folder / names[1]
    blob = damaged.read_bytes()
    # its header and tile index read, its compressed pixels do not
    damaged.write_bytes(blob[:4096] + bytes(len(blob) - 8192) + blob[-4096:])
    args = ["imagery", "fetch", naip_site, "--source", str(folder), "--size", "400"]
    r = sw(*args, "--resolution", "5", "--json")  # full resolution: the damaged tiles
    assert r.code == 1, r.err
    data = r.json()
    assert len(data["stored"]) == 1 and data["empty"] == []
    assert len(data["failed"]) == 1 and "2020" in data["failed"][0]["scene"]
    r = sw(*args, "--resolution", "5")
    assert r.code == 1 and "1 already there" in r.out and "1 failed" in r.out
    assert "failed" in r.err
    damaged.write_bytes(blob)  # repaired: the next run stores it and succeeds
    r = sw(*args, "--resolution", "5")
    assert r.code == 0 and "1 chip(s) stored, 1 already there" in r.out


def test_search_keeps_libtiffs_tag_remarks_for_debugging(sw: Run, shared_data: Path) -> None:
    # the Pucallpa Landsat files have four samples, one marked grey: libtiff remarks on it at
    # every read, which said nothing an analyst could act on between the rows of a table
    args = ("imagery", "search", "--bbox", "-74.46,-8.44,-74.44,-8.42")
    folder = ("--source", str(shared_data / "landsat-timeseries"))
    r = sw("-vv", *args, *folder)
    assert r.code == 0 and "8 scene(s)" in r.err
    assert "ExtraSamples" in r.err
    r = sw(*args, *folder)
    assert r.code == 0 and "8 scene(s)" in r.err
    assert "ExtraSamples" not in r.err and "TIFFReadDirectory" not in r.err
    assert " 89 " in r.out and "89.033" not in r.out  # the pixel size to 3 digits


def test_fetch_cuts_at_the_scenes_own_pixel_size(sw: Run, shared_data: Path) -> None:
    # Landsat resampled to 0.0008° (89 m here): cutting it at a fixed 10 m stored 79x the
    # pixels and showed "10 m" in `imagery ls`
    folder = str(shared_data / "landsat-timeseries")
    r = sw("sites", "add", "puc", "--name", "Pucallpa", "--lon", "-74.45", "--lat", "-8.43")
    assert r.code == 0, r.err
    args = ("imagery", "fetch", "puc", "--source", folder, "--size", "3000", "--from", "2015-01-01")
    r = sw(*args, "--json")
    assert r.code == 0, r.err
    data = r.json()
    # 3 km and the ring of surroundings the monitor cuts (widened to hold 1,000 pixels)
    assert data["grid"]["resolution"] == 89.0 and data["grid"]["width"] == 49
    assert [c["resolution"] for c in data["stored"]] == [89.0, 89.0]
    # an explicit size is kept, with a word on what it costs
    r = sw(*args, "--resolution", "10", "--from", "2020-01-01")
    assert r.code == 0 and "1 chip(s) stored" in r.out and "pixels of 10 m" in r.out
    assert "79x their pixels and no more detail" in " ".join(r.err.split())
    # later fetches keep the site's grid: the size of most of its archived chips
    r = sw(*args[:-2], "--from", "2005-01-01", "--json")
    assert r.code == 0, r.err
    data = r.json()
    assert data["grid"]["resolution"] == 89.0
    assert len(data["existing"]) == 2 and len(data["stored"]) == 2


def test_verbose_is_about_sitewatchs_work_not_its_libraries(
    sw: Run, shared_data: Path, tmp_path: Path
) -> None:
    r = sw("-v", "--db", f"sqlite:///{tmp_path / 'a.db'}", "sites", "list")  # migrations run
    assert r.code == 0, r.err
    assert "setup plugin" not in r.err and "Context impl" not in r.err
    folder = str(shared_data / "landsat-timeseries")
    r = sw("-v", "imagery", "search", "--bbox", "-74.46,-8.44,-74.44,-8.42", "--source", folder)
    assert r.code == 0 and "8 scene(s), 0 file(s) skipped" in " ".join(r.err.split())
    r = sw("-vv", "--db", f"sqlite:///{tmp_path / 'b.db'}", "sites", "list")
    assert r.code == 0 and "Context impl" in r.err


def test_monitor_reuses_the_chips_fetch_stored(sw: Run, shared_data: Path) -> None:
    # fetch cut 1 km squares and the monitor 2.12 km ones: every monitor run after a fetch cut
    # every scene again
    get_settings().sources_path.write_text(
        f'[sources.puc]\ntype = "local"\npath = "{shared_data / "landsat-timeseries"}"\n'
        'bands = ["swir16", "nir", "red", "green"]\n'
    )
    r = sw("sites", "add", "puc", "--name", "Pucallpa", "--lon", "-74.45", "--lat", "-8.43")
    assert r.code == 0, r.err
    r = sw("imagery", "fetch", "puc", "--source", "puc", "--json")
    assert r.code == 0, r.err
    stored = {
        c["item"]: (c["sha256"], Path(c["path"]).stat().st_mtime_ns) for c in r.json()["stored"]
    }
    assert len(stored) == 8
    r = sw("monitor", "run", "--site", "puc", "--source", "puc", "--json")
    assert r.code == 0, r.err
    assert r.json()["sites"][0]["new_scenes"] == 8
    r = sw("imagery", "ls", "puc", "--json")
    after = {
        c["item"]: (c["sha256"], Path(c["path"]).stat().st_mtime_ns) for c in r.json()["chips"]
    }
    assert after == stored


def test_fetch_keeps_a_chip_of_fine_imagery_within_2048_pixels(
    sw: Run, make_raster: RasterFactory, tmp_path: Path
) -> None:
    # 0.5 m imagery of a 1.5 km site: 3,240 pixels a side at the scenes' own size, and a
    # monitor's series of such chips several GB; the default coarsens it, and says how not to
    folder = tmp_path / "vhr"
    make_raster("vhr_20230601.tif", folder=folder, count=1, size=200, res=0.5)
    r = sw("sites", "add", "vhr", "--name", "VHR", "--lon", "15.0", "--lat", "45.0")
    assert r.code == 0, r.err
    r = sw("imagery", "fetch", "vhr", "--source", str(folder), "--size", "1500", "--json")
    assert r.code == 0, r.err
    grid = r.json()["grid"]
    assert grid["resolution"] == 0.8 and max(grid["width"], grid["height"]) <= 2048
    err = " ".join(r.err.split())
    assert "not the scenes' 0.5 m" in err and "give --resolution 0.5 for the full detail" in err
