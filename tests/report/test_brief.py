"""Site briefs (self-contained HTML, PDF checked through poppler) and the catalog report."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sitewatch.errors import InputError, SiteNotFound
from sitewatch.report import ChangePair, write_catalog_report, write_site_brief

from .conftest import need_tool


def _external_refs(html: str) -> list[str]:
    refs = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', html) + re.findall(r"url\(([^)]*)\)", html)
    return [r for r in refs if not r.startswith("data:") and not r.startswith("#")]


def test_html_brief_is_self_contained_and_complete(site_catalog, make_chip, tmp_path: Path) -> None:
    chips = [
        make_chip(fill=None, offset=200 * i, acquired=date(2021 + i, 5, 1), seed=i)
        for i in range(3)
    ]
    mask = np.zeros((chips[0].height, chips[0].width), bool)
    mask[20:60, 30:90] = True
    files = write_site_brief(
        site_catalog,
        "test-base",
        tmp_path,
        chips=chips,
        formats=("html",),
        change=ChangePair(chips[0], chips[-1], mask, "CVA change mask"),
    )
    assert set(files) >= {
        "html",
        "figure_overview",
        "figure_before_after",
        "figure_activity",
        "figure_timelapse",
        "stac",
    }
    html = files["html"].read_text(encoding="utf-8")
    assert _external_refs(html) == []
    assert html.count('src="data:image/png;base64,') == 3 and 'src="data:image/gif;base64,' in html
    assert "Test &amp; &lt;Base&gt;" in html and "<Base>" not in html  # escaped
    assert "12.34 ± 0.80 m" in html  # the measurement with its uncertainty
    # ... the date of the image it was read from (its observation's) and who measured it
    assert re.search(r"12\.34 ± 0\.80 m</td><td>2022-04-01</td><td>shadow \(tester\)", html)
    # one measurement of the portal: no measured change to report
    assert "Measured change" not in html
    assert "Portal A" in html and "Headquarters" in html
    assert "active construction" in html and "change detected" in html
    assert "NDVI 0.62 \u2192 0.11" in html and "NDBI" not in html  # what kind of change
    assert "vegetation \u2192 built or bare 92%, within vegetation 8%" in html  # by area
    # notes of several lines keep their line breaks (white-space: pre-line)
    assert '<p class="lines">A synthetic base for the report tests.\nSecond line' in html
    assert ".lines { white-space: pre-line; }" in html
    # a citation ending in a full stop is not given a second one
    assert (
        "Analyst Group, Hidden Bases Report (2019). <span>https://example.org/report</span>."
        in html
    )
    assert "Test Imaging Co." in html
    with Image.open(files["figure_overview"]) as im:
        assert im.size[0] == 800


def test_brief_reports_measured_change(site_catalog, tmp_path: Path) -> None:
    """A second height of the portal on a later image: the brief gives the change between the
    first and the last image, with its two-sigma verdict."""
    from sitewatch.catalog.models import Measurement

    site_catalog.add_measurement(
        Measurement(
            "m-2",
            "test-base",
            "height",
            15.0,
            "m",
            uncertainty=0.8,
            feature_id="f-portal",
            observation_id="obs-2",
            method="shadow",
        )
    )
    from sitewatch.catalog.models import Alert

    site_catalog.add_alert(Alert("a1", "test-base", "measured_change", "grew", key="k-a1"))
    files = write_site_brief(site_catalog, "test-base", tmp_path, formats=("html",))
    html = files["html"].read_text(encoding="utf-8")
    row = (
        "<tr><td>Portal A</td><td>height</td><td>2022-04-01: 12.34 ± 0.80 m</td>"
        '<td>2023-05-01: 15.00 ± 0.80 m</td><td class="num">2.7 ± 1.1 m</td>'
        "<td>grew (2 dates)</td></tr>"
    )
    assert "Measured change" in html and row in html
    # the summary answers "is it still being improved?" first
    summary = html.split("<h2>Summary</h2>")[1].split("</dl>")[0]
    assert (
        "<dt>Measured change</dt><dd>Portal A height grew by 2.7 ± 1.1 m "
        "(2022-04-01 to 2023-05-01)</dd>" in summary
    )
    assert "<dt>Open alerts</dt><dd>1</dd>" in summary


def test_brief_gives_the_reach_of_the_missiles_its_tags_name(site_catalog, tmp_path: Path) -> None:
    """A base tagged srbm and nodong: every SRBM class of the table and the Nodong, with their
    published ranges and sources; an untagged site's brief has no such section."""
    import dataclasses

    from sitewatch.analysis.ranges import classes_for_tags, load_missile_table

    table = load_missile_table()
    reach = classes_for_tags(table, ["SRBM ", "nodong", "ugf"])
    assert {m.type for m in reach} == {"SRBM", "MRBM"} and "nodong" in {m.id for m in reach}
    assert all(m.type == "SRBM" or m.id == "nodong" for m in reach)
    site = site_catalog.get_site("test-base")
    site_catalog.update_site(dataclasses.replace(site, tags=("srbm", "nodong", "ugf")))
    html = write_site_brief(site_catalog, "test-base", tmp_path, formats=("html",))["html"]
    text = html.read_text(encoding="utf-8")
    assert "<h2>Reach</h2>" in text
    longest = max(m.max_range_km for m in reach)
    assert f"reach up to {longest:,.0f} km" in text
    for m in reach:
        assert f"<td>{m.name}</td><td>{m.type}</td>" in text and m.source in text
    site_catalog.update_site(dataclasses.replace(site_catalog.get_site("test-base"), tags=()))
    html = write_site_brief(site_catalog, "test-base", tmp_path / "b", formats=("html",))["html"]
    assert "<h2>Reach</h2>" not in html.read_text(encoding="utf-8")


def test_brief_without_imagery_says_so(site_catalog, tmp_path: Path) -> None:
    files = write_site_brief(site_catalog, "test-base", tmp_path, formats=("html",), stac=False)
    html = files["html"].read_text(encoding="utf-8")
    assert "No imagery of this site" in html
    assert "figure_overview" not in files and "figure_activity" in files  # history still plotted
    with pytest.raises(SiteNotFound):
        write_site_brief(site_catalog, "nope", tmp_path, formats=("html",))
    with pytest.raises(InputError, match="unknown report format"):
        write_site_brief(site_catalog, "test-base", tmp_path, formats=("docx",))


def test_brief_shows_the_evidence(site_catalog, tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from sitewatch.catalog.evidence import store_evidence
    from sitewatch.catalog.models import Observation

    folder = tmp_path / "evidence"
    shot = tmp_path / "portal.png"
    Image.new("RGB", (1200, 600), (200, 90, 40)).save(shot)
    note = tmp_path / "note.txt"
    note.write_text("seen from the ridge")
    image_ref, note_ref = store_evidence(shot, folder), store_evidence(note, folder)
    gone = "evidence:" + "0" * 64 + "/lost.png"
    site_catalog.add_observation(
        Observation(
            "o-evidence",
            "test-base",
            datetime(2024, 3, 1, tzinfo=UTC),
            text="new spoil at Portal A",
            evidence=(image_ref, note_ref, "https://example.org/shot.jpg", gone),
        )
    )
    files = write_site_brief(
        site_catalog, "test-base", tmp_path / "out", formats=("html",), evidence_dir=folder
    )
    html = files["html"].read_text(encoding="utf-8")
    section = html[html.index("<h2>Evidence</h2>") : html.index("<h2>Sources</h2>")]
    assert section.count("new spoil at Portal A") == 4
    assert "SHA-256 " + image_ref[9:73] in section and "note.txt" in section
    assert "https://example.org/shot.jpg" in section and "lost.png" in section
    assert "is not in the evidence folder" in section  # a lost file is said, not hidden
    (thumb,) = re.findall(r'<img src="data:image/png;base64,([^"]+)"', section)
    import base64
    import io

    with Image.open(io.BytesIO(base64.b64decode(thumb))) as im:
        assert im.size == (480, 240)  # scaled to fit, aspect kept
    assert _external_refs(html) == []


def test_pdf_brief_renders_and_holds_the_content(site_catalog, make_chip, tmp_path: Path) -> None:
    pdftoppm = need_tool("pdftoppm")
    pdftotext = need_tool("pdftotext")
    chips = [
        make_chip(fill=None, acquired=date(2022, 5, 1)),
        make_chip(fill=None, offset=300, acquired=date(2023, 5, 1)),
    ]
    files = write_site_brief(
        site_catalog, "test-base", tmp_path, chips=chips, formats=("pdf",), stac=False
    )
    pdf = files["pdf"]
    assert pdf.read_bytes().startswith(b"%PDF") and "html" not in files
    subprocess.run(
        [pdftoppm, "-r", "40", "-png", str(pdf), str(tmp_path / "page")], check=True, timeout=120
    )
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) >= 2
    with Image.open(pages[0]) as im:
        w, h = im.size
        assert h / w == pytest.approx(297 / 210, rel=0.02)  # A4
        assert np.asarray(im.convert("L")).std() > 10  # not blank
    text = subprocess.run(
        [pdftotext, "-layout", str(pdf), "-"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert "Test & <Base>" in text
    assert "12.34 ± 0.80 m" in text
    assert "Portal A" in text and "Sources" in text


def test_catalog_report(site_catalog, tmp_path: Path) -> None:
    files = write_catalog_report(site_catalog, tmp_path, formats=("html",))
    rows = json.loads(files["json"].read_text())
    by_id = {r["id"]: r for r in rows}
    assert by_id["test-base"]["last_activity"] == "2022-04-01"
    assert by_id["test-base"]["features"] == 2 and by_id["test-base"]["changes"] == 1
    assert by_id["other-base"]["declared"] is True and by_id["other-base"]["last_activity"] is None
    html = files["html"].read_text(encoding="utf-8")
    assert "Other Base" in html and "Test &amp; &lt;Base&gt;" in html
    assert _external_refs(html) == []
    assert re.search(r"<dt>Undeclared</dt><dd>1</dd>", html)
    assert (
        by_id["test-base"]["measured_change"] == [] and "<dt>With measured change</dt><dd>0" in html
    )
    assert "2 sites · generated" in html
    site_catalog.delete_site("other-base")
    one = write_catalog_report(site_catalog, tmp_path / "one", formats=("html",))["html"]
    assert "1 site · generated" in one.read_text(encoding="utf-8")  # not "1 sites"


def test_catalog_report_names_the_sites_being_improved(site_catalog, tmp_path: Path) -> None:
    """Which bases are not frozen: the quantities measured larger (or smaller) beyond two sigma
    between their first and last image, and the alerts still open, per site."""
    from sitewatch.catalog.models import Alert, Measurement

    site_catalog.add_measurement(Measurement("m-2", "test-base", "height", 15.0, "m", 0.8,
                                             feature_id="f-portal", observation_id="obs-2"))  # fmt: skip
    site_catalog.add_alert(Alert("a1", "test-base", "measured_change", "grew", key="k1"))
    site_catalog.add_alert(Alert("a2", "test-base", "changed_area", "old", key="k2"))
    site_catalog.set_alert_state("a2", "dismissed")
    files = write_catalog_report(site_catalog, tmp_path, formats=("html",))
    by_id = {r["id"]: r for r in json.loads(files["json"].read_text())}
    assert by_id["test-base"]["measured_change"] == [
        "Portal A height grew by 2.7 ± 1.1 m (2022-04-01 to 2023-05-01)"
    ]
    assert (by_id["test-base"]["open_alerts"], by_id["other-base"]["open_alerts"]) == (1, 0)
    html = files["html"].read_text(encoding="utf-8")
    assert "<td>Portal A height grew by 2.7 ± 1.1 m (2022-04-01 to 2023-05-01)</td>" in html
    assert re.search(r"<dt>With measured change</dt><dd>1</dd>", html)
    assert re.search(r"<dt>Open alerts</dt><dd>1</dd>", html)


def test_history_lists_an_alert_at_the_image_date_it_is_about(site_catalog, tmp_path: Path) -> None:
    """A first monitor run over an archive raises, today, alerts about changes years old: the
    history lists each beside its change, and says when it was raised."""
    from sitewatch.catalog.models import Alert

    site_catalog.add_alert(
        Alert(
            "a-c",
            "test-base",
            "changed_area",
            "1,800 m² changed",
            key="k-c",
            details={"change_event": "c-1"},
        )
    )
    site_catalog.add_alert(
        Alert(
            "a-p",
            "test-base",
            "phase_transition",
            "phase moved",
            key="k-p",
            details={"date": "2023-05-01T00:00:00+00:00"},
        )
    )
    site_catalog.add_alert(Alert("a-x", "test-base", "manual", "looked at", key="k-x"))
    html = write_site_brief(site_catalog, "test-base", tmp_path, formats=("html",))["html"]
    history = html.read_text(encoding="utf-8").split("Change and activity history")[1]
    rows = re.findall(
        r'<tr><td>([\d-]+)</td><td>([^<]*)</td><td class="lines">([^<]*)</td></tr>', history
    )
    order = [(d, what.split(" (")[0], text.split(" (raised")[0]) for d, what, text in rows]
    change = next(i for i, r in enumerate(order) if r[:2] == ("2022-04-01", "change detected"))
    assert order[change + 1] == ("2022-04-01", "alert", "1,800 m² changed")
    assert ("2023-05-01", "alert", "phase moved") in order
    today = datetime.now(UTC).date().isoformat()
    assert rows[change + 1][2] == f"1,800 m² changed (raised {today})"
    # an alert about no image date stays at the day it was raised, last
    assert order[-1] == (today, "alert", "looked at")


def test_catalog_map_names_every_site_clear_of_the_others(tmp_path: Path) -> None:
    """Two bases 100 m apart (a base and its dispersal site) and five others: every site is
    named, no two names overlap and none covers the legend."""
    from sitewatch.report.catalogmap import catalog_map
    from sitewatch.report.figures import save_figure

    spots = [(126.108, 38.585), (126.109, 38.585), (126.72, 38.68), (125.36, 39.64),
             (126.26, 39.45), (126.91, 41.37), (128.54, 40.84)]  # fmt: skip
    rows = [
        {
            "id": f"s{i}",
            "name": f"Base number {i}",
            "lon": lon,
            "lat": lat,
            "status": "suspected" if i % 2 else "confirmed",
            "declared": i == 3,
            "last_activity": None,
            "open_alerts": i,
        }
        for i, (lon, lat) in enumerate(spots)
    ]
    fig = catalog_map(rows, None)
    save_figure(fig, tmp_path / "map.png")
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    named = {t.get_text(): t.get_bbox_patch().get_window_extent(renderer) for t in ax.texts
             if t.get_text().startswith("Base number")}  # fmt: skip
    assert set(named) == {r["name"] for r in rows}
    boxes = list(named.values())
    legend = ax.get_legend().get_window_extent(renderer)
    frame = ax.get_window_extent(renderer)
    for i, a in enumerate(boxes):
        assert not a.overlaps(legend)
        assert frame.x0 <= a.x0 and a.x1 <= frame.x1 and frame.y0 <= a.y0 and a.y1 <= frame.y1
        assert not any(a.overlaps(b) for b in boxes[:i])


def test_brief_with_a_dem_says_where_the_site_sits_on_the_terrain(
    site_catalog, tmp_path: Path
) -> None:
    """A DEM given, the brief has a Terrain section: the site and each feature on the slope."""
    import numpy as np
    import rasterio
    from affine import Affine

    from .conftest import SITE_LAT, SITE_LON, UTM, utm_xy

    x0, y0 = utm_xy(SITE_LON, SITE_LAT)
    n, cell = 400, 10.0  # 4 km, falling 0.5 m per m eastwards from 1,200 m at the site
    xs = x0 - 2000 + (np.arange(n) + 0.5) * cell
    z = np.tile(1200.0 - 0.5 * (xs - x0), (n, 1)).astype("float32")
    dem = tmp_path / "dem.tif"
    with rasterio.open(dem, "w", driver="GTiff", width=n, height=n, count=1, dtype="float32",
                       crs=UTM, transform=Affine(cell, 0, x0 - 2000, 0, -cell, y0 + 2000)) as ds:  # fmt: skip
        ds.write(z, 1)
    html = write_site_brief(site_catalog, "test-base", tmp_path / "b", formats=("html",), dem=dem)
    text = html["html"].read_text(encoding="utf-8")
    section = text.split("<h2>Terrain</h2>")[1].split("<h2>")[0]
    # the site's cell holds 1,200 m within half a cell's fall (2.5 m)
    assert re.search(
        r"at the site: 1,(19[89]|20[01]) m, slope 26\.6°, facing E \((89|90|91)°\)", section
    )
    assert "mountainous: Kapos et al. (2000) class 5" in section
    assert (
        "<li>Portal A (ugf portal): " in section and "From the DEM dem.tif (10 m cells)" in section
    )
    plain = write_site_brief(site_catalog, "test-base", tmp_path / "c", formats=("html",))
    assert "<h2>Terrain</h2>" not in plain["html"].read_text(encoding="utf-8")
    # a DEM that does not reach the site: an error when asked for, else the section says so
    # (a web server's one DEM need not cover all its sites)
    from sitewatch.catalog.models import Site
    from sitewatch.errors import ImageryError

    site_catalog.add_site(Site(id="far-base", name="Far", lon=127.9, lat=41.2))
    with pytest.raises(ImageryError, match="does not reach"):
        write_site_brief(site_catalog, "far-base", tmp_path / "d", formats=("html",), dem=dem)
    far = write_site_brief(site_catalog, "far-base", tmp_path / "e", formats=("html",), dem=dem,
                           dem_required=False)["html"].read_text(encoding="utf-8")  # fmt: skip
    section = far.split("<h2>Terrain</h2>")[1].split("<h2>")[0]
    assert "does not reach 127.90000,41.20000" in section and "m cells" not in section


def test_catalog_map_leaves_out_names_where_sites_crowd(tmp_path: Path) -> None:
    """25 sites within 3 km (an IARPA region) and two far off: no two names overlap, the far
    ones and some of the cluster are named, and the map says how many names it left out."""
    from sitewatch.report.catalogmap import catalog_map
    from sitewatch.report.figures import save_figure

    rng = np.random.default_rng(0)
    spots = [(128.7 + rng.uniform(0, 0.03), 37.65 + rng.uniform(0, 0.03)) for _ in range(25)]
    spots += [(126.108, 38.585), (125.355, 39.645)]
    rows = [
        {"id": f"s{i}", "name": f"Site {i:02d}", "lon": lon, "lat": lat, "status": "suspected",
         "declared": False, "last_activity": None, "open_alerts": 0}
        for i, (lon, lat) in enumerate(spots)
    ]  # fmt: skip
    fig = catalog_map(rows, None)
    save_figure(fig, tmp_path / "map.png")
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    named = [t for t in ax.texts if t.get_text().startswith("Site ")]
    boxes = [t.get_bbox_patch().get_window_extent(renderer) for t in named]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[:i])
    shown = {t.get_text() for t in named}
    assert {"Site 25", "Site 26"} <= shown and 2 < len(shown) < 27
    (note,) = [t.get_text() for t in ax.texts if "left out" in t.get_text()]
    assert note.startswith(f"{27 - len(shown)} site name(s) left out where sites crowd")


def test_measurement_inputs_read_to_four_significant_digits(site_catalog, tmp_path: Path) -> None:
    from sitewatch.catalog.models import Measurement

    site_catalog.add_measurement(
        Measurement("m-9", "test-base", "height", 6.8, "m", uncertainty=0.6, method="shadow",
                    inputs={"shadow_length_m": 6.79607123, "sun_azimuth": 142.066719, "rays": 203})
    )  # fmt: skip
    html = write_site_brief(site_catalog, "test-base", tmp_path, formats=("html",))["html"]
    text = html.read_text(encoding="utf-8")
    assert "shadow_length_m 6.796, sun_azimuth 142.1, rays 203" in text
