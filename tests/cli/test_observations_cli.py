"""``sitewatch observations``: dated observations with evidence, and scene facts from the archive."""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from affine import Affine
from pyproj import Transformer

from sitewatch.config import get_settings

Runner = Callable[..., Any]
LON, LAT = 126.108, 38.5847


@pytest.fixture
def site(sw: Runner) -> str:
    r = sw("sites", "add", "sakkanmol", "--name", "Sakkanmol", "--lat", str(LAT), "--lon", str(LON))
    assert r.code == 0, r.err
    return "sakkanmol"


def test_add_with_evidence_list_and_resolve(
    sw: Runner, site: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SITEWATCH_EVIDENCE_DIR", str(tmp_path / "team-evidence"))
    shot = tmp_path / "portal 1.png"
    shot.write_bytes(b"\x89PNG not really")
    r = sw("observations", "add", site, "--date", "2024-03-01T02:05:00Z", "--sensor",
           "WorldView-3", "--gsd", "0.31", "--phase", "active_construction", "--text",
           "new spoil at portal 1", "--evidence", str(shot), "--evidence",
           "https://example.org/brief.pdf", "--json")  # fmt: skip
    assert r.code == 0, r.err
    obs = r.json()
    digest = hashlib.sha256(shot.read_bytes()).hexdigest()
    assert obs["evidence"] == [f"evidence:{digest}/portal_1.png", "https://example.org/brief.pdf"]
    assert obs["acquired"] == "2024-03-01T02:05:00+00:00" and obs["analyst"] == "tester"
    assert obs["gsd_m"] == 0.31 and obs["phase"] == "active_construction"
    where = sw("observations", "evidence", obs["evidence"][0])
    assert where.code == 0, where.err
    stored = Path(where.out.strip())
    assert stored.is_relative_to(tmp_path / "team-evidence")
    assert stored.read_bytes() == shot.read_bytes()

    assert (
        sw("observations", "add", site, "--date", "2024-01-10", "--phase", "No activity").code == 0
    )  # a phase as written in prose
    listed = sw("observations", "list", site, "--json").json()
    assert [o["acquired"][:10] for o in listed] == ["2024-01-10", "2024-03-01"]  # oldest first
    assert listed[0]["phase"] == "no_activity"
    active = sw("observations", "list", site, "--phase", "active_construction", "--json").json()
    assert [o["id"] for o in active] == [obs["id"]]
    # the KMZ for Google Earth carries the observation with its evidence image
    kmz = sw("export", "kmz", site, "-o", str(tmp_path / "s.kmz"), "--no-imagery", "--json")
    assert kmz.code == 0 and kmz.json()["observations"] == 2, kmz.err
    with zipfile.ZipFile(tmp_path / "s.kmz") as zf:
        assert zf.read(f"files/evidence/{digest[:16]}-portal_1.png") == shot.read_bytes()
    shown = sw("sites", "show", site)
    assert "2024-03-01 active construction WorldView-3: new spoil at portal 1 (2 evidence)" in (
        shown.out
    )
    # a text of several lines stays inside its item
    r = sw(
        "observations", "add", site, "--date", "2024-05-01", "--text", "berm raised\nsecond portal"
    )
    assert r.code == 0, r.err
    lines = sw("sites", "show", site).out.splitlines()
    first = next(i for i, line in enumerate(lines) if line.endswith(": berm raised"))
    assert lines[first + 1] == "      second portal"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "--date"),
        (("--date", "01/03/2024"), "not an ISO date"),
        (("--date", "2999-01-01"), "in the future"),
        (("--date", "2024-03-01", "--evidence", "no-such-file.png"), "not a file"),
        (("--date", "2024-03-01", "--phase", "busy"), "busy"),
    ],
)
def test_bad_input_stores_nothing(
    sw: Runner, site: str, args: tuple[str, ...], message: str
) -> None:
    r = sw("observations", "add", site, *args)
    assert r.code == 2 and message in r.err
    assert sw("observations", "list", site, "--json").json() == []


def test_archived_scene_fills_the_acquisition(sw: Runner, site: str) -> None:
    from sitewatch.imagery import Archive, Chip, Scene

    x, y = Transformer.from_crs("EPSG:4326", "EPSG:32652", always_xy=True).transform(LON, LAT)
    scene = Scene(
        id="S2B_52SCG_20240301_0_L2A",
        sensor="sentinel-2b",
        datetime=datetime(2024, 3, 1, 2, 15, tzinfo=UTC),
        assets={"red": "r.tif"},
        crs="EPSG:32652",
        gsd=10.0,
        sun_azimuth=152.5,
        sun_elevation=41.25,
    )
    chip = Chip(
        data=np.full((1, 20, 20), 900, np.uint16),
        bands=("red",),
        crs="EPSG:32652",
        transform=Affine(10, 0, x - 100, 0, -10, y + 100),
        valid=np.ones((20, 20), bool),
        scene=scene,
    )
    Archive(get_settings().archive_path).add_chip(site, chip, source="test")
    r = sw("observations", "add", site, "--scene", scene.id, "--phase", "site_preparation",
           "--json")  # fmt: skip
    assert r.code == 0, r.err
    obs = r.json()
    assert obs["acquired"] == "2024-03-01T02:15:00+00:00" and obs["sensor"] == "sentinel-2b"
    assert obs["scene_id"] == scene.id and obs["gsd_m"] == 10.0
    assert (obs["sun_azimuth"], obs["sun_elevation"]) == (152.5, 41.25)
    # a flag given overrides the archive; an id the archive lacks needs a date
    r = sw("observations", "add", site, "--scene", scene.id, "--sensor", "S2B", "--json")
    assert r.json()["sensor"] == "S2B"
    r = sw("observations", "add", site, "--scene", "104001008F5A3B00")
    assert r.code == 2 and "imagery ls sakkanmol" in r.err
    r = sw("observations", "add", site, "--scene", "104001008F5A3B00", "--date", "2024-05-02",
           "--json")  # fmt: skip
    assert r.code == 0 and r.json()["scene_id"] == "104001008F5A3B00"


def test_edit_and_retract_an_observation(
    sw: Runner, site: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mistyped date is corrected (the history keeps the old one); evidence is added and
    removed by reference; a retracted observation's measurements are kept or deleted."""
    monkeypatch.setenv("SITEWATCH_EVIDENCE_DIR", str(tmp_path / "evidence"))
    shot = tmp_path / "berm.png"
    shot.write_bytes(b"\x89PNG berm")
    obs = sw("observations", "add", site, "--date", "2042-03-01", "--json")
    assert obs.code == 2 and "future" in obs.err
    obs = sw("observations", "add", site, "--date", "2024-03-10", "--evidence",
             "https://example.org/a.pdf", "--json").json()  # fmt: skip
    r = sw("observations", "edit", obs["id"], "--date", "2024-03-01", "--phase",
           "active_construction", "--add-evidence", str(shot), "--remove-evidence",
           "https://example.org/a.pdf", "--json")  # fmt: skip
    assert r.code == 0, r.err
    edited = r.json()
    assert edited["acquired"].startswith("2024-03-01") and edited["version"] == 2
    assert edited["phase"] == "active_construction"
    assert [e.split("/")[-1] for e in edited["evidence"]] == ["berm.png"]
    for args, message in (
        (("--text", "x", "--expect-version", "1"), "version 2, your copy is version 1"),
        (("--remove-evidence", "https://example.org/a.pdf"), "has no evidence"),
        ((), "nothing to change"),
        (("--phase", "no_activity", "--no-phase"), "not both"),
    ):
        r = sw("observations", "edit", obs["id"], *args)
        assert r.code == 2 and message in r.err, (args, r.err)
    r = sw("observations", "edit", obs["id"], "--no-phase", "--json")
    assert r.code == 0 and r.json()["phase"] is None
    r = sw("measure", "record", site, "--kind", "height", "--value", "18", "--observation",
           obs["id"])  # fmt: skip
    assert r.code == 0, r.err
    r = sw("observations", "delete", obs["id"], "--yes")
    assert r.code == 2 and "--keep-measurements" in r.err
    r = sw("observations", "delete", obs["id"], "--yes", "--delete-measurements")
    assert r.code == 0 and "and 1 measurement(s)" in r.out
    assert sw("observations", "list", site, "--json").json() == []
    assert sw("measure", "list", site, "--json").json() == []
    history = sw("sites", "history", site, "--json").json()
    acts = {(h["entity"], h["action"]) for h in history}
    assert {("observation", "update"), ("observation", "delete"), ("measurement", "delete")} <= acts
