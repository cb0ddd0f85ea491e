"""``sitewatch demo``: the whole job on the embedded default, end to end."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sitewatch.catalog.store import Catalog


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
        "portals",
        "measured change",
        "ranges",
        "evidence",
        "report",
    }
    assert summary["monitor"]["observations"] == 6 and summary["monitor"]["change_events"] == 5
    heights = {h["feature"]: h for h in summary["heights"]}
    hq = heights["site-1-hq"]
    assert abs(hq["measured"][-1][1] - hq["truth"][-1][1]) < 0.5
    # the berm: measured where its crest casts a shadow, within a metre of the truth
    berm = heights["site-1-berm-1"]
    assert len(berm["measured"]) >= 3 and berm["median_abs_error_m"] < 1.0
    assert summary["berm_volumes"]["site-1-berm-1"]
    # the berm grew (12 -> 18 m in the scenario): the measurements raise the monitor's alerts
    grew = [a for a in summary["measured_change_alerts"] if a.startswith("warning: berm-1 height")]
    assert grew and all(" grew by " in a for a in grew)
    # the structures that did not change raise none
    assert not [a for a in summary["measured_change_alerts"] if "shelter" in a or "hq" in a]
    # the portal: mouth width, defilade from the south, tunnel length from its berm's spoil
    (portal,) = summary["portals"]
    assert abs(portal["width_m"] - 10.0) < 1.0
    assert portal["masked"] in (True, False) and portal["spoil_berm"] == "site-1-berm-1"
    assert portal["tunnel_length_m"] > 0
    with Catalog(summary["catalog"]) as cat:
        stored = cat.list_measurements(feature_id="site-1-portal-1")
    assert {m.kind for m in stored} == {"width", "defilade", "length"}
    assert all(m.uncertainty is not None and m.uncertainty > 0 and m.method for m in stored)
    with Catalog(summary["catalog"]) as cat:  # every measurement says when it was made
        assert all(m.measured_at is not None for m in cat.list_measurements(site_id="valley-base"))
    (defil,) = [m for m in stored if m.kind == "defilade"]
    assert defil.uncertainty is not None and defil.uncertainty < 2.0  # degrees, 0.5 m DEM error
    for key in ("sites_kml", "sites_gpkg", "report_html", "report_pdf", "range_rings_kml"):
        assert Path(summary["files"][key]).stat().st_size > 0, key
    # the analyst's observation cites the newest image's quicklook, shown in the brief
    with Catalog(summary["catalog"]) as cat:
        (mine,) = [o for o in cat.list_observations("valley-base") if o.evidence]
    (stored_file,) = Path(summary["files"]["evidence"]).rglob("*.png")
    assert mine.evidence == (f"evidence:{stored_file.parent.name}/{stored_file.name}",)
    html = Path(summary["files"]["report_html"]).read_text(encoding="utf-8")
    assert "<h2>Evidence</h2>" in html and stored_file.parent.name in html
    assert "<h2>Reach</h2>" in html and "Nodong (Hwasong-7)" in html  # its srbm and mrbm tags
