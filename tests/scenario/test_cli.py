"""``sitewatch scenario make``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from sitewatch.cli.main import cli, main


def test_scenario_make_json(tmp_path: Path) -> None:
    out = tmp_path / "scn"
    result = CliRunner().invoke(
        cli,
        ["scenario", "make", str(out), "--seed", "4", "--sites", "1", "--dates", "2",
         "--gsd", "1.0", "--size", "320", "320", "--bands", "red,nir", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert Path(data["catalog"]).exists() and Path(data["truth"]).exists()
    assert len(data["items"]) == 2 and len(data["change_masks"]) == 1
    assert data["sites"][0]["id"] == "site-1"
    assert {"from", "to", "features"} <= set(data["changes"][0])
    item = json.loads((out / data["items"][0]["item"]).read_text())
    assert set(item["assets"]) == {"red", "nir"}


def test_scenario_make_bad_band_exits_2(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as info:
        main(["scenario", "make", str(tmp_path / "x"), "--bands", "red,thermal"])
    assert info.value.code == 2
