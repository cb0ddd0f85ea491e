"""``sitewatch sources`` and the sites that cite them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Runner = Callable[..., Any]


def test_sources_cited_by_sites(sw: Runner) -> None:
    r = sw("sources", "add", "--citation",
           "CSIS Beyond Parallel, Undeclared North Korea: The Sakkanmol Missile Operating Base "
           "(2018)", "--url", "https://beyondparallel.csis.org/", "--licence",
           "all rights reserved", "--accessed", "2026-12-01", "--json")  # fmt: skip
    assert r.code == 0, r.err
    src = r.json()
    assert src["id"] == "csis-beyond-parallel-undeclared-north" and src["accessed"] == "2026-12-01"
    assert sw("sources", "add", "nk-db", "--citation", "CNS North Korea Missile Test DB").code == 0
    r = sw("sources", "add", "nk-db", "--citation", "again")
    assert r.code != 0 and "already exists" in r.err
    r = sw("sources", "add", "Bad Id", "--citation", "x")
    assert r.code == 2 and "'bad-id'" in r.err
    r = sw("sources", "add", "x", "--citation", "x", "--url", "javascript:alert(1)")
    assert r.code == 2 and "not a web address" in r.err

    r = sw("sites", "add", "sakkanmol", "--name", "Sakkanmol", "--lat", "38.58", "--lon", "126.1",
           "--source", src["id"])  # fmt: skip
    assert r.code == 0, r.err
    r = sw("sites", "add", "kal-gol", "--name", "Kal-gol", "--lat", "38.68", "--lon", "126.72",
           "--source", "nope")  # fmt: skip
    assert r.code != 0 and "unknown source id(s) 'nope'" in r.err and "sources add" in r.err
    r = sw("sites", "edit", "sakkanmol", "--add-source", "nk-db", "--json")
    assert r.code == 0 and r.json()["source_ids"] == [src["id"], "nk-db"]
    r = sw("sites", "edit", "sakkanmol", "--remove-source", "other")
    assert r.code == 2 and "does not cite 'other'" in r.err

    listed = {s["id"]: s["sites"] for s in sw("sources", "list", "--json").json()}
    assert listed == {src["id"]: ["sakkanmol"], "nk-db": ["sakkanmol"]}
    shown = sw("sites", "show", "sakkanmol", "--json").json()
    assert [s["citation"] for s in shown["sources"]][1] == "CNS North Korea Missile Test DB"
    text = sw("sites", "show", "sakkanmol").out
    assert "https://beyondparallel.csis.org/" in text and "(all rights reserved)" in text
    r = sw("sites", "edit", "sakkanmol", "--remove-source", "nk-db", "--json")
    assert r.json()["source_ids"] == [src["id"]]
    assert sw("sources", "list", "--json").json()[1]["sites"] == []


def test_edit_and_delete_a_source(sw: Runner) -> None:
    assert sw("sources", "add", "nk-db", "--citation", "CNS DB", "--url", "https://a.org").code == 0
    assert sw("sites", "add", "s1", "--name", "S1", "--lat", "38", "--lon", "126", "--source",
              "nk-db").code == 0  # fmt: skip
    r = sw("sources", "edit", "nk-db", "--citation", "CNS North Korea Missile Test Database",
           "--accessed", "2026-11-30", "--json")  # fmt: skip
    assert r.code == 0, r.err
    edited = r.json()
    assert edited["version"] == 2 and edited["url"] == "https://a.org"
    assert edited["accessed"] == "2026-11-30" and edited["citation"].startswith("CNS North")
    r = sw("sources", "edit", "nk-db", "--notes", "x", "--expect-version", "1")
    assert r.code != 0 and "is at version 2" in r.err
    assert sw("sources", "edit", "nk-db", "--url", "ftp://x").code == 2
    r = sw("sources", "delete", "nk-db", "--yes")
    assert r.code != 0 and "cited by 1 site(s) (s1)" in r.err and "--remove-source" in r.err
    assert sw("sites", "edit", "s1", "--remove-source", "nk-db").code == 0
    assert sw("sources", "delete", "nk-db", "--yes").code == 0
    assert sw("sources", "list", "--json").json() == []
    history = sw("sites", "history", "--json").json()
    assert [h["action"] for h in history if h["entity"] == "source"] == [
        "create",
        "update",
        "delete",
    ]


def test_a_geojson_export_carries_the_citations_to_another_catalog(sw: Runner, tmp_path) -> None:
    assert sw("sources", "add", "nk-db", "--citation", "CNS North Korea Missile Test DB").code == 0
    assert sw("sites", "add", "s1", "--name", "S1", "--lat", "38", "--lon", "126", "--source",
              "nk-db").code == 0  # fmt: skip
    hq = sw("features", "add", "s1", "--kind", "hq", "--lon", "126", "--lat", "38", "--json")
    r = sw("measure", "record", "s1", "--kind", "height", "--value", "9.5", "--uncertainty",
           "0.5", "--feature", hq.json()["id"], "--method", "reported")  # fmt: skip
    assert r.code == 0, r.err
    for fmt in ("geojson", "gpkg"):  # each carries the whole record
        r = sw("sites", "export", "-o", str(tmp_path / f"s.{fmt}"))
        assert r.code == 0 and "warning" not in r.err
        other = ["--db", f"sqlite:///{tmp_path / f'other-{fmt}.db'}"]
        r = sw(*other, "sites", "import", str(tmp_path / f"s.{fmt}"))
        assert r.code == 0 and "measurements: 1 added" in r.out, r.err
        (src,) = sw(*other, "sources", "list", "--json").json()
        assert src["citation"] == "CNS North Korea Missile Test DB" and src["sites"] == ["s1"]
        (m,) = sw(*other, "measure", "list", "s1", "--json").json()
        assert (m["value"], m["uncertainty"], m["feature_id"], m["method"]) == (
            9.5, 0.5, hq.json()["id"], "reported")  # fmt: skip
    # a format that cannot carry them says so
    r = sw("sites", "export", "-o", str(tmp_path / "s.csv"))
    assert r.code == 0
    assert "csv does not carry the features (1), measurements (1), sources (1)" in " ".join(
        r.err.split()
    )
