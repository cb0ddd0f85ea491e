"""``sitewatch sites ...`` end to end on the default SQLite catalog (SITEWATCH_HOME)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sitewatch import __version__

Runner = Callable[..., Any]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def test_version_and_help(sw: Runner) -> None:
    r = sw("--version")
    assert r.code == 0 and __version__ in r.out
    r = sw("--help")
    assert r.code == 0 and "sites" in r.out and "demo" in r.out


def test_add_list_show_edit_delete(sw: Runner) -> None:
    r = sw(
        "sites",
        "add",
        "--name",
        "Sakkanmol",
        "--lat",
        "38.5847",
        "--lon",
        "126.1079",
        "--category",
        "missile_operating_base",
        "--tag",
        "ugf",
        "--json",
    )
    assert r.code == 0, r.err
    assert r.json()["id"] == "sakkanmol"
    r = sw("sites", "list", "--json")
    assert [s["id"] for s in r.json()] == ["sakkanmol"]
    r = sw("sites", "list", "--near", "126.1,38.58,2", "--json")
    assert [s["id"] for s in r.json()] == ["sakkanmol"]
    r = sw("sites", "list", "--near", "127.1,38.58,2", "--json")
    assert r.json() == []
    r = sw("sites", "edit", "sakkanmol", "--status", "confirmed", "--add-tag", "berm", "--json")
    assert r.code == 0 and r.json()["version"] == 2 and r.json()["tags"] == ["berm", "ugf"]
    # an edit to what is already stored changes nothing and says so
    r = sw("sites", "edit", "sakkanmol", "--status", "confirmed")
    assert r.code == 0 and "nothing changed: site sakkanmol already has those values" in r.out
    assert sw("sites", "show", "sakkanmol", "--json").json()["version"] == 2
    # a stale edit is refused and says what to do
    r = sw("sites", "edit", "sakkanmol", "--notes", "stale", "--expect-version", "1")
    assert r.code == 2 and "version 2, your copy is version 1" in r.err
    r = sw("sites", "show", "sakkanmol", "--json")
    assert r.json()["status"] == "confirmed" and r.json()["notes"] == ""
    r = sw("sites", "history", "sakkanmol", "--json")
    assert [h["action"] for h in r.json()] == ["create", "update"]
    assert {h["actor"] for h in r.json()} == {"tester"}
    r = sw("sites", "delete", "sakkanmol", "--yes")
    assert r.code == 0
    r = sw("sites", "show", "sakkanmol")
    assert r.code == 2 and "no site with id 'sakkanmol'" in r.err
    # the history keeps a deleted site; an id never stored is an error, not an empty table
    r = sw("sites", "history", "sakkanmol", "--json")
    assert [h["action"] for h in r.json()] == ["create", "update", "delete"]
    r = sw("sites", "history", "sakkanmo")
    assert r.code == 2 and "no history for 'sakkanmo'" in r.err


def test_bad_input_messages(sw: Runner) -> None:
    r = sw("sites", "add", "--name", "X", "--lat", "126.1", "--lon", "38.5")
    assert r.code == 2 and "look swapped" in r.err
    r = sw("sites", "list", "--bbox", "1,2,3")
    assert r.code == 2 and "W,S,E,N" in r.err
    r = sw("sites", "add", "x", "--name", "X", "--lat", "1", "--lon", "1", "--aoi", "POLYGON((")
    assert r.code == 2 and "not valid WKT" in r.err
    r = sw("sites", "add", "--name", "  ", "--lat", "1", "--lon", "1")
    assert r.code == 2 and "a site needs a name that is not blank" in r.err


def test_a_catalog_url_with_no_file_behind_it_is_named(sw: Runner, tmp_path: Path) -> None:
    """--db (or SITEWATCH_DATABASE_URL) pointing where no catalog is makes a new, empty one, and
    says so: a typo in the path must not look like the analyst's sites were gone. The default
    catalog in SITEWATCH_HOME is made without a word."""
    url = f"sqlite:///{tmp_path / 'catalgo.db'}"
    first = sw("--db", url, "sites", "list")
    assert first.code == 0 and "0 site(s)" in first.err
    said = "".join(first.err.split())  # rich folds the long path anywhere
    assert "".join(f"no catalog was at {tmp_path / 'catalgo.db'}: a new, empty one".split()) in said
    again = sw("--db", url, "sites", "list")
    assert again.code == 0 and "no catalog was at" not in again.err
    home = sw("sites", "list")
    assert home.code == 0 and "no catalog was at" not in home.err


def test_a_name_without_latin_letters_gets_the_id_an_import_would_give(
    sw: Runner, tmp_path: Path
) -> None:
    r = sw("sites", "add", "--name", "삭간몰", "--lat", "38.58", "--lon", "126.11", "--json")
    assert r.code == 0, r.err
    site_id = r.json()["id"]
    assert site_id.startswith("site-") and len(site_id) == 15
    csv = tmp_path / "bases.csv"
    csv.write_text("name,lat,lon\n삭간몰,38.58,126.11\n", encoding="utf-8")
    r = sw("sites", "import", str(csv))  # the same site again, not a second one
    assert r.code == 2 and f"site id '{site_id}' is already in the catalog" in r.err
    assert sw("sites", "import", str(csv), "--on-duplicate", "skip").code == 0
    r = sw("sites", "list", "--json")
    assert [s["id"] for s in r.json()] == [site_id]


def test_import_a_folder_of_iarpa_site_models(
    sw: Runner, shared_data: Path, tmp_path: Path
) -> None:
    """The SMART site models come as one GeoJSON per site in a folder: the folder is imported
    whole (its 25 sites, all or nothing); a folder of anything else says what it takes."""
    folder = shared_data / "iarpa-smart" / "site_models"
    r = sw("sites", "import", str(folder), "--json")
    assert r.code == 0, r.err
    assert r.json()["format"] == "iarpa" and r.json()["added"] == len(
        list(folder.glob("*.geojson"))
    )
    assert r.json()["observations"] > 0
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x")
    r = sw("sites", "import", str(tmp_path / "notes"))
    assert r.code == 2 and "only a folder of IARPA SMART site models" in r.err


def test_import_reported_bases_and_export(sw: Runner, shared_data: Path, tmp_path: Path) -> None:
    csv_path = shared_data / "north-korea" / "reported-missile-bases.csv"
    r = sw("sites", "import", str(csv_path), "--json")
    assert r.code == 0, r.err
    assert r.json()["added"] == 10
    r = sw("sites", "list", "--json")
    names = {s["name"] for s in r.json()}
    assert len(names) == 10 and {"Sakkanmol", "Sino-ri", "Yeongjeo-dong"} <= names
    # importing again is refused as a whole, nothing duplicated
    r = sw("sites", "import", str(csv_path))
    assert r.code == 2 and "already in the catalog" in r.err
    assert len(sw("sites", "list", "--json").json()) == 10
    for fmt in ("kml", "kmz", "gpkg", "geojson", "csv"):
        out = tmp_path / f"x.{fmt}"
        r = sw("sites", "export", "--format", fmt, "-o", str(out))
        assert r.code == 0, r.err
        assert out.stat().st_size > 0
    r = sw("sites", "export", "-o", str(tmp_path / "y.geojson"))  # format from the extension
    assert r.code == 0 and "(geojson)" in r.out
    assert (tmp_path / "y.geojson").read_bytes() == (tmp_path / "x.geojson").read_bytes()
    r = sw("sites", "export", "-o", str(tmp_path / "y.dat"))
    assert r.code == 2 and "cannot tell the format of y.dat" in r.err
    ogrinfo = shutil.which("ogrinfo")
    if ogrinfo is None:
        if IN_CI:
            pytest.fail("ogrinfo (gdal-bin) must be installed by make test")
        pytest.skip("ogrinfo not installed")
    for fmt in ("kml", "kmz", "gpkg"):
        path = tmp_path / f"x.{fmt}"
        src = f"/vsizip/{path}/doc.kml" if fmt == "kmz" else str(path)
        info = subprocess.run(
            [ogrinfo, "-ro", "-so", "-al", src], capture_output=True, text=True, check=True
        ).stdout
        counts = [
            int(line.split(":")[1])
            for line in info.splitlines()
            if line.startswith("Feature Count")
        ]
        assert 10 in counts, info


def test_malformed_csv_imports_nothing(sw: Runner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("name,lat,lon\nA,38.5,126.1\nB,95.0,126.2\nC,abc,126.3\nD,38.7,126.4\n")
    r = sw("sites", "import", str(bad))
    assert r.code == 2
    assert "line 3" in r.err and "line 4" in r.err and "nothing was imported" in r.err
    assert sw("sites", "list", "--json").json() == []
    r = sw("sites", "import", str(bad), "--skip-invalid", "--json")
    assert r.code == 0 and r.json()["added"] == 2 and len(r.json()["problems"]) == 2
    assert {s["name"] for s in sw("sites", "list", "--json").json()} == {"A", "D"}


def test_diff_declaration(sw: Runner, tmp_path: Path) -> None:
    for name, lat, lon in (
        ("Sakkanmol", "38.5847", "126.1079"),
        ("Sino-ri", "39.6449", "125.3553"),
        ("Hidden", "40.0", "127.0"),
    ):
        assert sw("sites", "add", "--name", name, "--lat", lat, "--lon", lon).code == 0
    decl = tmp_path / "declared.csv"
    decl.write_text(
        "name,lat,lon\nSakkanmol,38.5847,126.1079\nSinori base,39.645,125.356\nElsewhere,41.0,129.0\n"
    )
    r = sw("sites", "diff-declaration", str(decl), "--json")
    assert r.code == 0, r.err
    data = r.json()
    assert [s["id"] for s in data["undeclared_sites"]] == ["hidden"]
    assert [e["name"] for e in data["declared_not_in_catalog"]] == ["Elsewhere"]
    assert {m["site"] for m in data["matched"]} == {"sakkanmol", "sino-ri"}
    assert sw("sites", "list", "--declared", "--json").json() == []  # a diff changes nothing
    # --mark: the matched sites become declared, by this declaration, in the history
    r = sw("sites", "diff-declaration", str(decl), "--party", "KP", "--mark")
    assert r.code == 0 and "marked 2 site(s) declared (kp-declared): " in r.out, r.err
    declared = {s["id"]: s for s in sw("sites", "list", "--declared", "--json").json()}
    assert set(declared) == {"sakkanmol", "sino-ri"}
    assert declared["sino-ri"]["declaration_ref"] == "kp-declared"
    again = sw("sites", "diff-declaration", str(decl), "--party", "KP", "--mark", "--json").json()
    assert (again["marked_declared"], again["marked_undeclared"]) == ([], [])
    # a revised list without Sino-ri takes back what it marked
    decl.write_text("name,lat,lon\nSakkanmol,38.5847,126.1079\n")
    r = sw("sites", "diff-declaration", str(decl), "--party", "KP", "--mark", "--json")
    assert r.json()["marked_undeclared"] == ["sino-ri"]
    assert [s["id"] for s in sw("sites", "list", "--declared", "--json").json()] == ["sakkanmol"]
    history = sw("sites", "history", "sino-ri", "--json").json()
    assert [h["action"] for h in history] == ["create", "update", "update"]


def test_list_in_a_pipe_keeps_long_ids_whole(sw: Runner) -> None:
    """Written to a pipe or a file (no terminal), a table is as wide as its rows: a long id is
    printed whole, not cut to the 80 columns a console assumes without a terminal."""
    site_id = "north-hwanghae-sakkanmol-missile-operating-base-east-valley"
    r = sw("sites", "add", site_id, "--name", "Sakkanmol east valley portal group",
           "--lat", "38.5847", "--lon", "126.1079", "--tag", "ugf", "--tag", "berm")  # fmt: skip
    assert r.code == 0, r.err
    r = sw("sites", "list")
    assert r.code == 0, r.err
    row = next(line for line in r.out.splitlines() if site_id in line)
    assert "Sakkanmol east valley portal group" in row and "…" not in r.out


def test_table_folds_cells_on_a_narrow_terminal() -> None:
    """On a terminal too narrow for the table, cells fold onto more lines instead of ending in
    an ellipsis, so that an id can still be read (and copied) whole; numbers are not broken."""
    import io

    from rich.console import Console

    from sitewatch.cli.options import table

    scene = "S2B_MSIL2A_20220301T021329_N0400_R060_T52SDH_20220301T045411"
    t = table("date", "scene", "cloud", right=("cloud",), whole=("date",))
    t.add_row("2022-03-01", scene, "12.5")
    buf = io.StringIO()
    Console(file=buf, width=48, force_terminal=False, color_system=None).print(t)
    lines = buf.getvalue().splitlines()
    assert "…" not in buf.getvalue() and max(len(line) for line in lines) <= 48
    cells = [line.split("│") for line in lines if line.startswith("│")]
    assert "".join(c[2].strip() for c in cells) == scene
    assert "2022-03-01" in cells[0][1] and "12.5" in cells[0][3]


def test_import_sets_category_status_country_and_tags_on_every_site(
    sw: Runner, tmp_path: Path
) -> None:
    """A published list (name, lat, lon, a free-text role) is filed in the catalog's terms in one
    command; the batch tag is added to the tags a file gives, in CSV and GeoJSON alike."""
    import json

    csv_path = tmp_path / "reported.csv"
    csv_path.write_text(
        "name,lat,lon,reported_role,tags\n"
        "Sakkanmol,38.5847,126.1079,SRBM base,ugf\n"
        "Kal-gol,38.6823,126.7226,SRBM/MRBM base,\n",
        encoding="utf-8",
    )
    r = sw("sites", "import", str(csv_path), "--category", "missile_operating_base",
           "--status", "confirmed", "--country", " KP ", "--undeclared", "--tag", "reported-2018",
           "--tag", "ugf")  # fmt: skip
    assert r.code == 0, r.err
    got = {s["id"]: s for s in sw("sites", "list", "--tag", "reported-2018", "--json").json()}
    assert set(got) == {"sakkanmol", "kal-gol"}
    for s in got.values():
        assert (s["category"], s["status"], s["country"], s["declared"]) == (
            "missile_operating_base", "confirmed", "KP", False,
        )  # fmt: skip
    assert got["sakkanmol"]["tags"] == got["kal-gol"]["tags"] == ["reported-2018", "ugf"]
    assert "reported_role: SRBM base" in got["sakkanmol"]["notes"]

    gj = tmp_path / "more.geojson"
    gj.write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "geometry": {"type": "Point", "coordinates": [125.355, 39.644]},
        "properties": {"name": "Sino-ri", "category": "storage", "declared": True},
    }]}), encoding="utf-8")  # fmt: skip
    r = sw("sites", "import", str(gj), "--category", "missile_operating_base", "--tag", "batch-2")
    assert r.code == 0, r.err
    s = sw("sites", "show", "sino-ri", "--json").json()
    assert (s["category"], s["declared"], s["tags"]) == (
        "missile_operating_base",
        True,
        ["batch-2"],
    )
    # bad values are refused before anything is stored
    r = sw("sites", "import", str(gj), "--tag", " ", "--on-duplicate", "update")
    assert r.code == 2 and "--tag is empty" in r.err
    r = sw("sites", "import", str(gj), "--status", "rumoured")
    assert r.code == 2 and "rumoured" in r.err
    assert sw("sites", "show", "sino-ri", "--json").json()["version"] == 1


def test_show_lists_change_events_with_their_kinds(sw: Runner) -> None:
    from datetime import UTC, datetime

    from sitewatch.catalog.models import ChangeEvent
    from sitewatch.catalog.store import Catalog

    assert sw("sites", "add", "base", "--name", "Base", "--lat", "38.5", "--lon", "126.1").code == 0
    with Catalog() as cat:
        cat.add_change_event(
            ChangeEvent(
                "ch-1",
                "base",
                datetime(2024, 3, 1, tzinfo=UTC),
                datetime(2024, 3, 20, tzinfo=UTC),
                "cva",
                1200.0,
                details={
                    "kinds": {"within_built_or_bare": 300.0, "vegetation_to_built_or_bare": 900.0}
                },
            )
        )
    out = sw("sites", "show", "base").out
    assert (
        "change 2024-03-01 → 2024-03-20: 1,200 m² (cva); vegetation → built or bare 75%, "
        "within built or bare 25%"
    ) in out


def test_show_gives_the_reach_of_the_missiles_its_tags_name(sw: Runner) -> None:
    from sitewatch.analysis.ranges import load_missile_table

    srbm = [m for m in load_missile_table() if m.type == "SRBM"]
    r = sw("sites", "add", "b", "--name", "B", "--lat", "38.5", "--lon", "126.1", "--tag", "srbm")
    assert r.code == 0, r.err
    shown = sw("sites", "show", "b").out
    line = next(x for x in shown.splitlines() if x.strip().startswith("reach"))
    assert all(f"{m.name} {m.max_range_km:,.0f} km" in line for m in srbm), line
    assert [m["id"] for m in sw("sites", "show", "b", "--json").json()["reach"]] == [
        m.id for m in srbm
    ]
    assert sw("sites", "edit", "b", "--remove-tag", "srbm").code == 0
    assert "reach" not in sw("sites", "show", "b").out
