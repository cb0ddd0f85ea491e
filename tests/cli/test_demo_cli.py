"""``sitewatch demo``: the whole job on the embedded default, end to end."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any


def test_demo_runs_every_step(sw: Callable[..., Any], tmp_path: Path) -> None:
    out = tmp_path / "demo"
    r = sw("demo", "--out", str(out), "--json")
    assert r.code == 0, r.err
    summary = r.json()
    assert summary["catalog_sites"] == 6
    assert set(summary["step_seconds"]) == {
        "catalog",
        "scenario",
        "monitor",
        "mensuration",
        "ranges",
        "report",
    }
    assert summary["monitor"]["observations"] == 6 and summary["monitor"]["change_events"] == 5
    heights = {h["feature"]: h for h in summary["heights"]}
    hq = heights["site-1-hq"]
    assert abs(hq["measured"][-1][1] - hq["truth_last"]) < 0.5
    for key in ("sites_kml", "sites_gpkg", "report_html", "report_pdf", "range_rings_kml"):
        assert Path(summary["files"][key]).stat().st_size > 0, key
