"""``sitewatch search run`` and ``sitewatch search triage`` driven as a user would."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer
from rasterio.crs import CRS

CRS_UTM = CRS.from_epsg(32652)


def _scene(
    tmp_path: Path, size: int = 256, n: int = 5, seed: int = 0
) -> tuple[Path, list[tuple[float, float]]]:
    rng = np.random.default_rng(seed)
    img = np.clip(90 + 18 * rng.normal(0, 1, (4, size, size)), 1, 255)
    pix: list[tuple[int, int]] = []
    while len(pix) < n:
        r, c = (int(v) for v in rng.integers(24, size - 24, 2))
        if all(abs(r - a) + abs(c - b) > 60 for a, b in pix):
            pix.append((r, c))
    for r, c in pix:
        img[:, r - 4 : r + 4, c - 6 : c + 6] = 235
        img[:, r - 9 : r - 6, c - 5 : c + 5] = 250
        img[:, r + 9 : r + 11, c - 5 : c + 5] = 15
    t = Affine(10, 0, 300_000, 0, -10, 4_300_000)
    path = tmp_path / "aoi.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=size,
        height=size,
        count=4,
        dtype="uint8",
        crs=CRS_UTM,
        transform=t,
        nodata=0,
        photometric="MINISBLACK",
    ) as dst:
        dst.write(np.rint(img).astype(np.uint8))
    to_ll = Transformer.from_crs(CRS_UTM, "EPSG:4326", always_xy=True)
    return path, [tuple(map(float, to_ll.transform(*(t * (c + 0.5, r + 0.5))))) for r, c in pix]


def _examples(tmp_path: Path, pts: list[tuple[float, float]]) -> Path:
    fc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {},
                "geometry": {"type": "Point", "coordinates": list(p)},
            }
            for p in pts
        ],
    }
    path = tmp_path / "examples.geojson"
    path.write_text(json.dumps(fc))
    return path


@pytest.fixture
def searched(sw, tmp_path: Path) -> tuple[Path, dict, Path]:
    image, pts = _scene(tmp_path)
    db = f"sqlite:///{tmp_path / 'cat.db'}"
    out = tmp_path / "out" / "cands.geojson"
    res = sw(
        "--db",
        db,
        "search",
        "run",
        str(image),
        "--examples",
        str(_examples(tmp_path, pts[:2])),
        "-o",
        str(out),
        "--top",
        "8",
        "--tile",
        "16",
        "--json",
    )
    assert res.code == 0, res.err
    return out, res.json(), Path(db.removeprefix("sqlite:///"))


def test_search_run_writes_ranked_candidates_and_a_summary(searched) -> None:
    out, summary, _ = searched
    gj = json.loads(out.read_text())
    props = [f["properties"] for f in gj["features"]]
    assert [p["rank"] for p in props] == list(range(1, 9))
    assert all(props[i]["score"] >= props[i + 1]["score"] for i in range(7))
    assert summary["area_km2"] == pytest.approx(256 * 256 * 100 / 1e6)
    assert summary["time_s"] > 0 and summary["km2_per_s"] > 0
    assert summary["top_area_fraction"] == pytest.approx(8 * 0.0256 / summary["area_km2"])
    assert summary["stored_candidates"] == 8
    assert (summary["tile_px"], summary["stride_px"]) == (16, 8)
    steps = summary["timings_s"]
    assert list(steps) == ["model", "first_stage", "candidates", "second_stage", "finish"]
    assert all(v >= 0 for v in steps.values()) and steps["first_stage"] > 0
    assert sum(steps.values()) == pytest.approx(summary["time_s"], abs=0.01)
    assert (Path(summary["run_folder"]) / "model.json").exists()


def test_triage_with_piped_keys_feeds_catalog_and_resumes(sw, searched, tmp_path) -> None:
    from sitewatch.catalog.store import Catalog

    _out, summary, db = searched
    url = f"sqlite:///{db}"
    folder = summary["run_folder"]
    model_before = (Path(folder) / "model.json").read_text()
    res = sw("--db", url, "search", "triage", folder, "--json", input="a\nr\nx\ns\nq\n")
    assert res.code == 0, res.err
    got = res.json()
    assert len(got["accepted"]) == 1 and len(got["rejected"]) == 1 and len(got["skipped"]) == 1
    assert got["remaining"] == 5
    assert "unknown key 'x'" in res.err and "chip: " in res.err
    assert (Path(folder) / "model.json").read_text() != model_before  # the model learned
    with Catalog(url) as cat:
        site = cat.get_site(got["sites"][0])
        assert site.status == "suspected" and site.tags == ("search-candidate",)
        assert summary["run_id"] in site.notes and "score" in site.notes
        states = {c.id: c.state for c in cat.list_candidates(run_id=summary["run_id"])}
    assert states[got["accepted"][0]] == "accepted" and states[got["rejected"][0]] == "rejected"
    chips = list((Path(folder) / "chips").glob("*.png"))
    assert len(chips) == 4 and chips[0].read_bytes()[:4] == b"\x89PNG"
    from PIL import Image

    with Image.open(chips[0]) as im:  # the tile and a tile of context around it, outlined in red
        rgb = np.asarray(im.convert("RGB"))
    side = rgb.shape[0] // 3
    assert rgb.shape[0] == rgb.shape[1] and tuple(rgb[side, side + 2]) == (255, 40, 40)
    # a chip is a plain picture: making one warns of no missing georeferencing (GDAL's PNG did,
    # on every candidate shown)
    import warnings

    from sitewatch.search._runstore import find_run
    from sitewatch.search.triage import chip_png

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert chip_png(find_run(folder), 0, 0)[:4] == b"\x89PNG"
    assert not [w for w in caught if w.category.__name__ == "NotGeoreferencedWarning"]
    # resume by run id, single keys without newlines; EOF quits
    res2 = sw("--db", url, "search", "triage", summary["run_id"], "--json", input="rr")
    assert res2.code == 0, res2.err
    again = res2.json()
    assert len(again["rejected"]) == 2 and again["remaining"] == 3
    assert not set(again["rejected"]) & set(got["accepted"] + got["rejected"] + got["skipped"])


def test_triage_links_a_candidate_on_a_catalogued_site(sw, searched) -> None:
    """A site catalogued where the best candidate lies (marked as the run stores candidates):
    triage says so, and accepting it links the candidate to that site, adding none."""
    from dataclasses import replace

    from sitewatch.catalog.models import Site
    from sitewatch.catalog.store import Catalog
    from sitewatch.search.triage import mark_catalogued

    _out, summary, db = searched
    url = f"sqlite:///{db}"
    with Catalog(url) as cat:
        first = min(cat.list_candidates(run_id=summary["run_id"]), key=lambda c: c.rank)
        centre = first.geometry.centroid
        cat.add_site(Site(id="known", name="Known base", lon=centre.x, lat=centre.y))
        n_sites = cat.count_sites()
        cands = cat.list_candidates(run_id=summary["run_id"])
        for c in mark_catalogued(cat, cands):
            if "catalogued_site" in c.details:
                cat.update_candidate(replace(c))
    res = sw("--db", url, "search", "triage", summary["run_folder"], "--json", "--limit", "8",
             input="a" * 8)  # fmt: skip
    assert res.code == 0, res.err
    assert "the catalogued site known (Known base): accepting links to it" in res.err
    with Catalog(url) as cat:
        linked = [c for c in cat.list_candidates(run_id=summary["run_id"]) if c.site_id == "known"]
        assert linked and all(c.state == "accepted" for c in linked)
        assert cat.count_sites() == n_sites + len(res.json()["sites"])
        assert "known" not in res.json()["sites"]
        # every accepted candidate that added no site says which site it was linked to: the
        # known one, or one accepted a moment before from a neighbouring candidate
        accepted = [c for c in cat.list_candidates(run_id=summary["run_id"]) if c.site_id]
        for c in accepted:
            if c.site_id not in res.json()["sites"]:
                assert c.details["catalogued_site"]["id"] == c.site_id


def test_examples_from_the_catalog(sw, tmp_path) -> None:
    """Catalogued sites as examples, by id or by tag, find what the same places in a file find;
    a site outside the image is left out."""
    image, pts = _scene(tmp_path)
    db = f"sqlite:///{tmp_path / 'cat.db'}"
    for i, (lon, lat) in enumerate(pts[:2]):
        r = sw("--db", db, "sites", "add", f"known-{i}", "--name", f"Known {i}", "--lon", str(lon),
               "--lat", str(lat), "--tag", "planted")  # fmt: skip
        assert r.code == 0, r.err
    far = (
        "sites",
        "add",
        "far",
        "--name",
        "Far",
        "--lon",
        "127.5",
        "--lat",
        "40",
        "--tag",
        "planted",
    )
    assert sw("--db", db, *far).code == 0
    common = ("--top", "8", "--tile", "16", "--no-catalog", "--json")
    outs = {}
    for name, given in {
        "file": ("--examples", str(_examples(tmp_path, pts[:2]))),
        "sites": ("--example-site", "known-0", "--example-site", "known-1"),
        "tag": ("--example-tag", "planted"),
    }.items():
        outs[name] = tmp_path / f"{name}.geojson"
        r = sw("--db", db, "search", "run", str(image), *given, "-o", str(outs[name]), *common)
        assert r.code == 0, (name, r.err)
    ranked = {
        k: [f["properties"]["score"] for f in json.loads(v.read_text())["features"]]
        for k, v in outs.items()
    }
    assert ranked["sites"] == ranked["file"] and ranked["tag"] == ranked["file"]
    out = str(tmp_path / "x.geojson")
    r = sw("--db", db, "search", "run", str(image), "-o", out, "--no-catalog")
    assert r.code == 2 and "give examples of known sites" in r.err
    r = sw("--db", db, "search", "run", str(image), "--example-tag", "nope", "-o", out)
    assert r.code == 2 and "no catalogued site has the tag 'nope'" in r.err
    r = sw("--db", db, "search", "run", str(image), "--example-site", "nope", "-o", out)
    assert r.code == 2 and "no site with id 'nope'" in r.err


def test_search_run_errors_are_clear(sw, tmp_path) -> None:
    image, _ = _scene(tmp_path, size=64, n=0)
    far = _examples(tmp_path, [(10.0, 10.0)])
    res = sw("search", "run", str(image), "--examples", str(far), "-o", str(tmp_path / "c.geojson"))
    assert res.code == 2 and "inside the image" in res.err
    res = sw("search", "triage", str(tmp_path / "nope"))
    assert res.code == 2 and "no search run" in res.err


def test_search_run_bad_settings_and_images_are_clear(sw, tmp_path) -> None:
    image, pts = _scene(tmp_path, size=64, n=1)
    ex = str(_examples(tmp_path, pts))
    out = tmp_path / "c.geojson"

    def run(img: Path, *extra: str) -> Any:
        return sw(
            "search", "run", str(img), "--examples", ex, "-o", str(out), "--no-catalog", *extra
        )

    res = run(image, "--top", "0")
    assert res.code == 2 and "'--top'" in res.err
    res = run(image, "--scheduler", "localhost")
    assert res.code == 2 and "not a dask scheduler address" in res.err and "tcp://" in res.err
    res = run(image, "--tile", "80")
    assert res.code == 2 and "tile (80 px) is larger than the image (64 x 64 px)" in res.err
    with rasterio.open(image) as src:
        profile = src.profile
    flat = tmp_path / "flat.tif"
    with rasterio.open(flat, "w", **profile) as dst:
        dst.write(np.full((4, 64, 64), 7, np.uint8))
    res = run(flat)
    assert res.code == 2 and "is constant" in res.err
    cut = tmp_path / "cut.tif"  # a download cut short: the header reads, the pixels do not
    cut.write_bytes(image.read_bytes()[:600])
    res = run(cut)
    assert res.code == 2 and "cannot read or write a raster" in res.err, res.err
    assert "cut.tif" in res.err and "previous exception" not in res.err
    assert not out.exists()
    for bad, said in (([1, 2], "a JSON list"), ({"type": "FeatureCollection"}, "list of features")):
        listed = tmp_path / "bad.geojson"
        listed.write_text(json.dumps(bad))
        res = sw("search", "run", str(image), "--examples", str(listed), "-o", str(out))
        assert res.code == 2 and said in res.err


def test_search_run_tiles_default_to_about_40_m(sw, tmp_path) -> None:
    image, pts = _scene(tmp_path, size=96, n=2)
    out = tmp_path / "c.geojson"
    res = sw("--db", f"sqlite:///{tmp_path / 'c.db'}", "search", "run", str(image),
             "--examples", str(_examples(tmp_path, pts[:1])), "-o", str(out), "--top", "3",
             "--json")  # fmt: skip
    assert res.code == 0, res.err
    assert (res.json()["tile_px"], res.json()["stride_px"]) == (4, 2)  # 40 m at 10 m


def test_search_run_with_a_local_backbone_and_triage_it(sw, tmp_path) -> None:
    torch = pytest.importorskip("torch")
    from tests.search.conftest import resnet_state

    image, pts = _scene(tmp_path, size=128, n=3)
    weights = tmp_path / "rgb.pt"
    torch.save({"model": resnet_state(in_channels=3, blocks=(1, 1))}, weights)
    url = f"sqlite:///{tmp_path / 'b.db'}"
    out = tmp_path / "b.geojson"
    args = ["--db", url, "search", "run", str(image), "--examples",
            str(_examples(tmp_path, pts[:1])), "-o", str(out), "--top", "4", "--tile", "8"]  # fmt: skip
    res = sw(*args, "--backbone", str(weights), "--backbone-bands", "3,2,1",
             "--embed-dims", "4", "--json")  # fmt: skip
    assert res.code == 0, res.err
    emb = res.json()["embedding"]
    assert emb["channels"] == [3, 2, 1] and emb["dims"] == 4 and emb["layer"] == 2
    # the decisions refit the model on descriptors that include the embeddings
    tri = sw("--db", url, "search", "triage", res.json()["run_folder"], "--json", input="a\nr\nq\n")
    assert tri.code == 0, tri.err
    assert len(tri.json()["accepted"]) == 1 and len(tri.json()["rejected"]) == 1
    bad = sw(*args, "--backbone", str(weights), "--backbone-bands", "red,green")
    assert bad.code == 2 and "comma-separated band positions" in bad.err
    wrong = sw(*args, "--backbone", str(weights))  # 3 input channels, 4 bands: first three
    assert wrong.code == 0, wrong.err
    four = sw(*args, "--backbone", str(weights), "--backbone-bands", "1,2,3,4")
    assert four.code == 2 and "takes 3 input channels" in four.err


def test_the_search_summary_reads_for_small_and_large_areas() -> None:
    from sitewatch.cli.search import searched_text

    small = {"area_km2": 0.2025, "time_s": 13.04, "km2_per_s": 0.01553, "candidates": 20,
             "top_area_fraction": 0.15802}  # fmt: skip
    assert searched_text(small) == (
        "searched 0.203 km² in 13.0 s (0.0155 km²/s); the top 20 cover 15.8% of it"
    )
    country = {"area_km2": 120540.0, "time_s": 3600.0, "km2_per_s": 33.48, "candidates": 200,
               "top_area_fraction": 0.00041}  # fmt: skip
    assert searched_text(country) == (
        "searched 120,540 km² in 3600.0 s (33.5 km²/s); the top 200 cover 0.041% of it"
    )


def test_the_web_app_shows_a_candidates_image_as_triage_does(searched) -> None:
    """GET /api/candidates/{id}/chip.png: the image `search triage` shows, for the web's triage."""
    from argon2 import PasswordHasher
    from fastapi.testclient import TestClient

    from sitewatch.catalog.store import Catalog
    from sitewatch.search._runstore import find_run
    from sitewatch.search.triage import chip_png
    from sitewatch.web.app import create_app
    from sitewatch.web.users import UserStore

    _out, summary, db = searched
    url = f"sqlite:///{db}"
    with Catalog(url) as cat:
        store = UserStore.for_catalog(cat, hasher=PasswordHasher(time_cost=1, memory_cost=1024,
                                                                 parallelism=1))  # fmt: skip
        store.add("ana", "a-password-1", "viewer")
        token = store.create_token("ana", "tests")[1]
        (second,) = [c for c in cat.list_candidates(run_id=summary["run_id"]) if c.rank == 2]
    with TestClient(create_app(url)) as client:
        r = client.get(f"/api/candidates/{second.id}/chip.png",
                       headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    run = find_run(summary["run_id"])
    row, col = (int(v) for v in run.cand_tiles[1])
    assert r.content == chip_png(run, row, col)
