"""End-to-end tests in real headless Chromium (Debian's package) through Playwright.

Covers logging in, editing a site, a triage decision by keyboard and a shadow-height measurement.
A failing test leaves a screenshot in test-artifacts/e2e/.
"""

from __future__ import annotations

import dataclasses
import math
from itertools import pairwise
from pathlib import Path
from typing import Any

from pyproj import Geod
from shapely.geometry import box

from sitewatch.catalog.models import Site
from sitewatch.catalog.store import Catalog


def login(page: Any, server: Any, role: str = "analyst", password: str | None = None) -> None:
    page.goto(server.url + "/")
    page.fill("#login-user", role)
    page.fill("#login-password", password or server.env.passwords[role])
    page.click("#login-submit")


def test_login(page: Any, live_server: Any) -> None:
    login(page, live_server, "viewer", "not-the-password")
    page.wait_for_selector("#login-message:has-text('wrong user name or password')")
    page.fill("#login-password", live_server.env.passwords["viewer"])
    page.click("#login-submit")
    page.wait_for_selector("#site-list li")
    assert page.locator("#whoami").inner_text() == "viewer (viewer)"
    assert page.locator("#site-list li").count() == 2
    # a site's new alerts are counted beside its name (alpha-base: the fixture's one)
    assert page.inner_text("#site-list li[data-site=alpha-base] .site-alerts") == "1"
    assert page.locator("#site-list li[data-site=bravo-depot] .site-alerts").count() == 0
    # markers take the catalog report's status colours (a legend says which), and a row and its
    # marker point each other out
    assert "confirmed" in page.inner_text("#status-legend")
    strokes = page.eval_on_selector_all(
        "#map path.leaflet-interactive", "ps => ps.map((p) => p.getAttribute('stroke'))"
    )
    assert sorted(strokes) == ["#e41a1c", "#ff7f00"]  # bravo confirmed, alpha suspected
    page.hover("#site-list li[data-site=bravo-depot]")
    page.wait_for_selector(".leaflet-tooltip:has-text('Bravo Depot')")
    page.hover("#filter-q")
    page.dispatch_event("#map path.leaflet-interactive[stroke='#ff7f00']", "mouseover")
    page.wait_for_selector("#site-list li[data-site=alpha-base].hover")
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert (
        cookies["sitewatch_session"]["httpOnly"]
        and cookies["sitewatch_session"]["sameSite"] == "Strict"
    )
    # filters narrow the list
    page.select_option("#filter-status", "confirmed")
    page.locator("#site-list li[data-site=alpha-base]").wait_for(state="detached")
    assert page.locator("#site-list li").count() == 1
    assert page.locator("#site-list li").get_attribute("data-site") == "bravo-depot"
    # viewers get a read-only form
    page.click("#site-list li[data-site=bravo-depot]")
    page.wait_for_selector("#site-name")
    assert page.locator("#site-name").is_disabled()
    assert page.locator("#site-save").count() == 0


def test_edit_a_site(page: Any, live_server: Any) -> None:
    login(page, live_server)
    page.wait_for_selector("#site-list li")
    page.click("#site-list li[data-site=bravo-depot]")
    page.wait_for_selector("#site-name")
    # categories read as words, their values stay the API's
    option = page.locator("#site-category option[value=missile_operating_base]")
    assert option.inner_text() == "missile operating base"
    page.fill("#site-name", "Bravo Depot (renamed)")
    page.select_option("#site-status", "inactive")
    page.fill("#site-notes", "entrance blocked since 2024")
    page.click("#site-save")
    page.wait_for_selector("#site-version:has-text('version 2')")
    # the history says what the update changed
    page.wait_for_selector("#history-list li:has-text('update site: changed name, status, notes')")
    with Catalog(live_server.env.url) as cat:
        site = cat.get_site("bravo-depot")
        last = cat.history(entity_id="bravo-depot")[-1]
    assert (site.name, site.status, site.notes) == (
        "Bravo Depot (renamed)",
        "inactive",
        "entrance blocked since 2024",
    )
    assert (last.action, last.actor) == ("update", "analyst")
    # a small base's page opens with its AOI filling the map: 200 m across at zoom 18, not a
    # speck at the zoom that suits a 2 km AOI
    with Catalog(live_server.env.url) as cat:
        d = 0.001  # about 110 m north-south, 85 m east-west
        cat.add_site(Site(id="small-base", name="Small Base", lon=127.0, lat=40.0,
                          aoi=box(127.0 - d, 40.0 - d, 127.0 + d, 40.0 + d)))  # fmt: skip
    page.goto(live_server.url + "/#/site/small-base")
    page.wait_for_selector("#site-name")
    page.wait_for_timeout(800)  # the fit's zoom animation
    aoi = page.locator("#map path[stroke='#f39c12']").bounding_box()
    view = page.locator("#map").bounding_box()
    assert aoi["height"] > 0.25 * view["height"], (aoi, view)  # 15% at the former zoom 16


def test_triage_by_keyboard(page: Any, live_server: Any) -> None:
    with Catalog(live_server.env.url) as cat:  # cand-2 lies on a site the catalog holds
        cand = cat.get_candidate("cand-2")
        near = {"id": "alpha-base", "name": "Alpha Base", "distance_m": 0.0}
        cat.update_candidate(dataclasses.replace(cand, details={"catalogued_site": near}))
    login(page, live_server)
    page.wait_for_selector("#site-list li")
    page.click("a[data-nav=triage]")
    page.wait_for_selector("#triage-current[data-candidate=cand-0]")
    # the fixture's runs have no run folder on the server: the card says there is no image
    page.wait_for_selector("#triage-no-chip:has-text('no image')")
    assert not page.locator("#triage-chip").is_visible()
    page.keyboard.press("a")
    page.wait_for_selector("#triage-current[data-candidate=cand-1]")
    assert page.locator("#triage-catalogued").count() == 0  # a place the catalog lacks
    page.keyboard.press("r")
    page.wait_for_selector("#triage-current[data-candidate=cand-2]")
    hint = page.inner_text("#triage-catalogued")
    assert hint == "on the catalogued site Alpha Base: accepting links to it", hint
    with Catalog(live_server.env.url) as cat:
        states = {c.id: (c.state, c.site_id) for c in cat.list_candidates()}
        assert states["cand-1"] == ("rejected", None)
        assert states["cand-2"] == ("pending", None)
        state, site_id = states["cand-0"]
        assert state == "accepted" and site_id is not None
        assert cat.get_site(site_id).status == "suspected"
        assert cat.history(entity_id="cand-0")[-1].actor == "analyst"


def test_shadow_height_measurement(page: Any, live_server: Any) -> None:
    login(page, live_server)
    page.wait_for_selector("#site-list li")
    page.goto(live_server.url + "/#/site/alpha-base")
    page.wait_for_selector("#timeline")
    # the map credits the image shown, as figures do (its sensor is no public programme)
    page.wait_for_selector(
        ".leaflet-control-attribution:has-text('Image © provider not recorded, 2024-03-20')"
    )
    for _ in range(2):
        page.click(".leaflet-control-zoom-in")
        page.wait_for_timeout(300)
    page.click("#tool-shadow")
    box = page.locator("#map").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.click(cx, cy)  # base
    page.mouse.click(cx - 30, cy - 50)  # tip of the shadow (north-west, away from the sun)
    result = page.wait_for_selector("#shadow-height")
    assert "±" in result.inner_text()
    page.click("#shadow-save")
    page.wait_for_selector("#measurement-list li[data-measurement]")
    with Catalog(live_server.env.url) as cat:
        (m,) = cat.list_measurements(site_id="alpha-base")
    assert (m.kind, m.unit, m.analyst) == ("height", "m", "analyst")
    # the stored height follows from the stored clicks and the sun elevation of the image
    (blon, blat), (tlon, tlat) = m.inputs["base"], m.inputs["tip"]
    fwd, _, dist = Geod(ellps="WGS84").inv(blon, blat, tlon, tlat)
    shown = float(result.inner_text().split("±")[0])
    assert shown == round(m.value, 1) or abs(shown - m.value) < 0.051
    assert m.uncertainty is not None and 0 < m.uncertainty < m.value
    # the sun of the image (computed for its time: no observation on that date)
    elev = m.inputs["sun_elevation"]
    assert 0 < elev < 90
    if m.method.startswith("mensuration"):  # the length is taken along the shadow azimuth
        shadow_az = (m.inputs["sun_azimuth"] + 180.0) % 360.0
        dist *= math.cos(math.radians(fwd - shadow_az))
    assert abs(m.value - dist * math.tan(math.radians(elev))) < 0.01


def test_ruler_measures_and_saves_a_distance(page: Any, live_server: Any) -> None:
    """Three clicks with the ruler: the length shown is the geodesic length through the stored
    points; saved as a width it lands in the measurement list."""
    login(page, live_server)
    page.wait_for_selector("#site-list li")
    page.goto(live_server.url + "/#/site/alpha-base")
    page.wait_for_selector("#timeline")
    page.click("#tool-ruler")
    box = page.locator("#map").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.click(cx, cy)
    page.mouse.click(cx + 60, cy)
    first = page.wait_for_selector("#ruler-length").inner_text()
    page.mouse.click(cx + 60, cy - 40)
    page.wait_for_function(
        "(t) => document.querySelector('#ruler-length').textContent !== t", arg=first
    )
    assert "2 segment(s)" in page.locator("#ruler-result").inner_text()
    page.select_option("#ruler-kind", "width")
    page.click("#ruler-save")
    page.wait_for_selector("#measurement-list li[data-measurement]")
    with Catalog(live_server.env.url) as cat:
        (m,) = cat.list_measurements(site_id="alpha-base")
    assert (m.kind, m.unit, m.analyst, m.method) == ("width", "m", "analyst", "geodesic_wgs84")
    pts = m.inputs["points"]
    assert len(pts) == 3
    geod = Geod(ellps="WGS84")
    length = sum(geod.inv(*a, *b)[2] for a, b in pairwise(pts))
    assert abs(m.value - length) < 0.01
    shown = page.locator("#ruler-length").inner_text()
    assert shown.endswith(" m") and abs(float(shown.split("±")[0]) - m.value) <= 0.5


def test_change_kinds_on_the_site_page(page: Any, live_server: Any) -> None:
    """A change event's kinds (m² by kind in its details) show, largest first, in its overlay's
    tooltip and in its bar of the activity plot."""
    login(page, live_server, "viewer")
    page.wait_for_selector("#site-list li")
    page.goto(live_server.url + "/#/site/alpha-base")
    page.wait_for_selector("#activity-plot rect")
    kinds = "vegetation → built or bare 75%, within built or bare 25%"  # as briefs say it
    bar = page.locator("#activity-plot rect title").first.text_content()
    assert bar == f"2024-03-20: 1200 m² changed · {kinds}"
    # listed under "Change events", with no retract button for a viewer
    listed = page.locator("#change-events li[data-change=ch-1]").inner_text()
    assert listed == f"2024-03-01 → 2024-03-20: 1,200 m² (cva) · {kinds}"
    assert page.locator("#change-events button.retract").count() == 0
    # a viewer's page leaves out the editing buttons, with no stray "null" in their place
    assert page.locator("#site-save").count() == 0
    assert "null" not in page.locator("#panel").inner_text()
    # once the map has fitted the site's area (2 km across, some 200 px; also when the site is
    # opened while the list's fit is still zooming), hover the change overlay's south-west
    # quarter, away from the portal at its north-east corner
    page.wait_for_function(
        "() => [...document.querySelectorAll(\"path[stroke='#f39c12']\")]"
        ".some((p) => p.getBoundingClientRect().width > 100)"
    )
    box = page.locator("path.leaflet-interactive[stroke='#e74c3c']").first.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 4, box["y"] + box["height"] * 3 / 4)
    tip = page.wait_for_selector(".leaflet-tooltip:has-text('cva:')")
    assert tip.inner_text() == f"cva: 1200 m² (2024-03-01 → 2024-03-20) · {kinds}"


def test_draw_a_feature_and_download_a_report(page: Any, live_server: Any) -> None:
    login(page, live_server)
    page.wait_for_selector("#site-list li")
    page.goto(live_server.url + "/#/site/alpha-base")
    page.wait_for_selector("#feature-list li")
    page.select_option("#draw-kind", "berm")
    page.click("#tool-polygon")
    box = page.locator("#map").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    for dx, dy in ((-80, 60), (0, 120), (80, 60)):
        page.mouse.click(cx + dx, cy + dy)
    page.click("#draw-finish")
    page.wait_for_selector("#feature-list li.sel")
    with Catalog(live_server.env.url) as cat:
        kinds = sorted(f.kind for f in cat.query_features(site_id="alpha-base"))
        (berm,) = cat.query_features(site_id="alpha-base", kind="berm")
    assert kinds == ["berm", "ugf_portal"]
    assert berm.geometry.geom_type == "Polygon" and len(berm.geometry.exterior.coords) == 4
    # reports: progress over server-sent events, then a download link
    page.click("a[data-nav=reports]")
    page.select_option("#report-format", "geojson")
    page.click("#report-start")
    link = page.wait_for_selector("#report-download")
    assert page.locator("#report-progress").get_attribute("value") in ("1", "1.0")
    with page.expect_download() as info:
        link.click()
    path = info.value.path()
    text = Path(path).read_text(encoding="utf-8")
    assert '"Alpha Base"' in text and '"berm"' in text


def test_site_brief_from_the_site_page(page: Any, live_server: Any) -> None:
    login(page, live_server, "viewer")
    page.wait_for_selector("#site-list li")
    page.goto(live_server.url + "/#/site/alpha-base")
    # without a DEM on the server, the Terrain section says how to give it one
    page.wait_for_selector("#terrain:has-text('set SITEWATCH_WEB_DEM')")
    page.click("#site-report")
    assert page.locator("#report-format").input_value() == "brief"
    page.click("#report-start")
    link = page.wait_for_selector("#report-download", timeout=30_000)
    with page.expect_download() as info:
        link.click()
    html = Path(info.value.path()).read_text(encoding="utf-8")
    assert "Alpha Base" in html and "<html" in html.lower()


def test_observation_with_evidence_and_a_cited_source(
    page: Any, live_server: Any, tmp_path: Path
) -> None:
    """An analyst records an observation with an evidence image from the site page, opens the
    evidence again through its link, and adds and cites a source."""
    from PIL import Image

    shot = tmp_path / "portal.png"
    Image.new("RGB", (64, 32), (200, 90, 40)).save(shot)
    login(page, live_server)
    page.wait_for_selector("#site-list li")
    page.goto(live_server.url + "/#/site/alpha-base")
    page.wait_for_selector("#obs-add")
    # a new observation is of the image shown (its date and sensor), and follows the timeline
    assert page.input_value("#obs-date") == "2024-03-20"
    assert page.input_value("#obs-sensor") == "synthetic"
    page.fill("#timeline", "0")
    assert page.input_value("#obs-date") == "2024-03-01"
    page.fill("#obs-text", "vehicles at the portal")
    page.click("#obs-add")
    page.wait_for_selector("#observation-list li:has-text('vehicles at the portal')")
    with Catalog(live_server.env.url) as cat:  # at the image's own acquisition time
        (seen,) = [
            o for o in cat.list_observations("alpha-base") if o.text == "vehicles at the portal"
        ]
    assert (seen.acquired.isoformat(), seen.sensor) == ("2024-03-01T02:00:00+00:00", "synthetic")
    page.fill("#timeline", "1")
    page.fill("#obs-date", "2024-06-02")
    page.select_option("#obs-phase", "active_construction")
    page.fill("#obs-text", "fresh spoil at the portal")
    page.set_input_files("#obs-files", str(shot))
    page.fill("#obs-url", "https://example.org/shot.jpg")
    page.click("#obs-add")
    link = page.locator("#observation-list a[title^='portal.png']")
    link.wait_for()
    page.wait_for_function(  # shown as a thumbnail, fetched with the page's session
        "() => document.querySelector('#observation-list img.evidence-thumb').naturalWidth === 64"
    )
    assert (
        page.locator("#observation-list li")
        .first.inner_text()
        .startswith("2024-06-02 active construction fresh spoil at the portal")
    )  # the newest first
    # a text of several lines (imported IARPA models) keeps its line breaks
    style = page.eval_on_selector(
        "#observation-list .obs-text", "e => getComputedStyle(e).whiteSpace"
    )
    assert style == "pre-line"
    got = page.request.get(live_server.url + str(link.get_attribute("href")))
    assert got.ok and got.body() == shot.read_bytes()  # the same bytes, with the page's session
    # an observation clicked shows the image nearest its date (2024-03-01 of 03-01 and 03-20)
    assert page.locator("#timeline").input_value() == "1"
    page.locator("#observation-list li").last.click()
    assert page.locator("#timeline").input_value() == "0"
    assert page.locator("#timeline-label").inner_text().startswith("2024-03-01")
    with Catalog(live_server.env.url) as cat:
        (obs,) = [o for o in cat.list_observations("alpha-base") if o.text.startswith("fresh")]
    assert obs.phase == "active_construction" and obs.analyst == "analyst"
    assert obs.evidence[0].endswith("/portal.png")
    assert obs.evidence[1] == "https://example.org/shot.jpg"

    page.fill("#source-citation", "Analyst Group, Hidden Bases Report (2019)")
    page.fill("#source-url", "https://example.org/report")
    page.click("#source-add")
    sid = "analyst-group-hidden-bases-report-2019"
    page.wait_for_selector(f"#source-list li[data-source={sid}]")
    assert "https://example.org/report" in page.locator("#source-list").inner_text()
    with Catalog(live_server.env.url) as cat:
        assert cat.get_site("alpha-base").source_ids == (sid,)
    page.click(f"#source-list li[data-source={sid}] button.uncite")
    page.wait_for_selector("#source-list li:has-text('no source cited')")
    with Catalog(live_server.env.url) as cat:
        assert cat.get_site("alpha-base").source_ids == ()
        assert cat.get_source(sid).citation.startswith("Analyst Group")  # the source stays
    assert page.locator("#cite-source option").count() == 1  # and can be cited again


def test_feature_sizes_and_dates_in_the_editor(page: Any, live_server: Any) -> None:
    login(page, live_server)
    page.wait_for_selector("#site-list li")
    page.goto(live_server.url + "/#/site/alpha-base")
    page.click("#feature-list li[data-feature=f-portal]")
    page.fill("#feature-height_m", "6.5")
    page.fill("#feature-azimuth_deg", "135")
    page.fill("#feature-first_seen", "2016-05-01")
    page.click("#feature-save")
    page.wait_for_selector("#feature-list li[data-feature=f-portal]:has-text('height 6.5 m')")
    with Catalog(live_server.env.url) as cat:
        portal = cat.get_feature("f-portal")
    assert portal.attributes == {"height_m": 6.5, "azimuth_deg": 135}
    assert str(portal.first_seen) == "2016-05-01" and portal.last_seen is None
    # a value cleared is an attribute removed
    page.fill("#feature-height_m", "")
    page.click("#feature-save")
    page.wait_for_selector("#feature-list li[data-feature=f-portal]:has-text('azimuth 135°')")
    with Catalog(live_server.env.url) as cat:
        assert cat.get_feature("f-portal").attributes == {"azimuth_deg": 135}


def test_deleting_a_measured_feature_keeps_its_measurements_when_asked(
    page: Any, live_server: Any
) -> None:
    from sitewatch.catalog.models import Measurement

    with Catalog(live_server.env.url) as cat:
        cat.add_measurement(
            Measurement("m-portal", "alpha-base", "width", 7.0, "m", feature_id="f-portal")
        )
    asked: list[str] = []

    def answer(dialog: Any) -> None:  # "Delete this ugf_portal?" yes; "delete them too?" no
        asked.append(dialog.message)
        dialog.accept() if len(asked) == 1 else dialog.dismiss()

    page.on("dialog", answer)
    login(page, live_server)
    page.wait_for_selector("#site-list li")
    page.goto(live_server.url + "/#/site/alpha-base")
    page.click("#feature-list li[data-feature=f-portal]")
    page.click("#feature-delete")
    page.wait_for_selector("#feature-list li[data-feature=f-portal]", state="detached")
    assert len(asked) == 2 and "1 measurement(s) (width)" in asked[1]
    page.wait_for_selector("#measurement-list li[data-measurement=m-portal]")
    with Catalog(live_server.env.url) as cat:
        (m,) = cat.list_measurements(site_id="alpha-base")
        assert m.feature_id is None and m.inputs["deleted_feature"].startswith("f-portal")
        assert "f-portal" not in {f.id for f in cat.query_features(site_id="alpha-base")}


def test_retract_a_measurement_and_an_observation(page: Any, live_server: Any) -> None:
    from datetime import UTC, datetime

    from sitewatch.catalog.models import Measurement, Observation

    with Catalog(live_server.env.url) as cat:
        cat.add_measurement(Measurement("m-wrong", "alpha-base", "length", 99.0, "m"))
        cat.add_measurement(
            Measurement(
                "m-dated",
                "alpha-base",
                "height",
                6.0,
                "m",
                inputs={"acquired": "2021-05-06T02:00:00Z"},
            )
        )
        cat.add_observation(
            Observation("o-wrong", "alpha-base", datetime(2020, 1, 2, tzinfo=UTC), text="typo")
        )
        before = {o.id for o in cat.list_observations("alpha-base")}
    page.on("dialog", lambda dialog: dialog.accept())
    login(page, live_server)
    page.wait_for_selector("#site-list li")
    page.goto(live_server.url + "/#/site/alpha-base")
    dated = page.wait_for_selector("#measurement-list li[data-measurement=m-dated]")
    assert "(image 2021-05-06)" in dated.inner_text()  # the date of the image it was read from
    page.click("#measurement-list li[data-measurement=m-wrong] button.retract")
    page.wait_for_selector("#measurement-list li[data-measurement=m-wrong]", state="detached")
    page.click("#observation-list li[data-observation=o-wrong] button.retract")
    page.wait_for_selector("#observation-list li[data-observation=o-wrong]", state="detached")
    with Catalog(live_server.env.url) as cat:
        assert [m.id for m in cat.list_measurements(site_id="alpha-base")] == ["m-dated"]
        assert {o.id for o in cat.list_observations("alpha-base")} == before - {"o-wrong"}
        deleted = {(e.entity, e.entity_id) for e in cat.history(site_id="alpha-base")
                   if e.action == "delete"}  # fmt: skip
    assert {("measurement", "m-wrong"), ("observation", "o-wrong")} <= deleted


def test_retract_a_change_event(page: Any, live_server: Any) -> None:
    """A change event recorded from the wrong images is retracted from the site page: its list
    item, overlay and activity bar go; the history keeps it; the alert raised from it is
    dismissed, and the analyst is told."""
    from datetime import UTC, datetime

    from sitewatch.catalog.models import Alert, ChangeEvent

    with Catalog(live_server.env.url) as cat:
        cat.add_change_event(
            ChangeEvent(
                "ch-wrong",
                "alpha-base",
                datetime(2019, 1, 1, tzinfo=UTC),
                datetime(2019, 6, 1, tzinfo=UTC),
                "cva",
                5_000.0,
            )
        )
        kept = {e.id for e in cat.list_change_events("alpha-base")} - {"ch-wrong"}
        cat.add_alert(Alert("al-wrong", "alpha-base", "changed_area", "5,000 m2 changed", "k-wrong",
                            details={"change_event": "ch-wrong"}))  # fmt: skip
    page.on("dialog", lambda dialog: dialog.accept())
    login(page, live_server)
    page.wait_for_selector("#site-list li")
    page.goto(live_server.url + "/#/site/alpha-base")
    page.wait_for_selector("#change-events li[data-change=ch-wrong]")
    bars = page.locator("#activity-plot rect").count()
    page.click("#change-events li[data-change=ch-wrong] button.retract")
    page.wait_for_selector("#change-events li[data-change=ch-wrong]", state="detached")
    page.wait_for_selector("#toast:has-text('1 open alert(s) raised from it dismissed')")
    page.wait_for_selector("#site-alerts li[data-alert=al-wrong]", state="detached")
    assert page.locator("#activity-plot rect").count() == bars - 1
    assert f"change overlays ({len(kept)})" in page.locator("#panel").inner_text()
    with Catalog(live_server.env.url) as cat:
        assert {e.id for e in cat.list_change_events("alpha-base")} == kept
        assert cat.get_alert("al-wrong").state == "dismissed"
        assert ("change_event", "ch-wrong") in {
            (e.entity, e.entity_id)
            for e in cat.history(site_id="alpha-base")
            if e.action == "delete"
        }


def test_measured_change_on_the_site_page(page: Any, live_server: Any) -> None:
    """The portal's width measured on two image dates shows as a change with its error and
    verdict; retracting the later measurement takes the change away."""
    from sitewatch.catalog.models import Measurement

    with Catalog(live_server.env.url) as cat:
        for mid, day, value, sigma in (
            ("w1", "2021-05-06", 12.0, 0.6),
            ("w2", "2023-05-06", 15.0, 0.8),
        ):
            cat.add_measurement(Measurement(mid, "alpha-base", "width", value, "m", sigma,
                feature_id="f-portal", inputs={"acquired": f"{day}T02:00:00Z"}))  # fmt: skip
    page.on("dialog", lambda dialog: dialog.accept())
    login(page, live_server)
    page.wait_for_selector("#site-list li")
    page.goto(live_server.url + "/#/site/alpha-base")
    trend = page.wait_for_selector("#measured-change li[data-trend='f-portal/width']")
    text = trend.inner_text()
    assert "ugf_portal width: 12.00 ± 0.60 m → 15.00 ± 0.80 m, +3.0 ± 1.0 m grew" in text, text
    assert "2021-05-06 → 2023-05-06, 2 image dates" in text
    measured = page.inner_text("#measurement-list li[data-measurement=w1]")
    assert measured.startswith("width 12.00 ± 0.60 m of ugf_portal (image 2021-05-06)"), measured
    page.click("#measurement-list li[data-measurement=w2] button.retract")
    page.wait_for_selector("#measured-change li[data-trend]", state="detached")
    assert "nothing measured on two image dates yet" in page.inner_text("#measured-change")


def test_open_alerts_on_the_site_page(page: Any, live_server: Any) -> None:
    """The site's new and acknowledged alerts are listed on its page and dealt with there."""
    from sitewatch.catalog.models import Alert

    with Catalog(live_server.env.url) as cat:
        cat.add_alert(Alert("a-berm", "alpha-base", "measured_change",
                            "berm height grew by 6.0 ± 1.4 m", key="k-berm", severity="warning"))  # fmt: skip
        cat.add_alert(Alert("a-old", "alpha-base", "changed_area", "old news", key="k-old"))
        cat.set_alert_state("a-old", "dismissed")
        cat.add_alert(Alert("a-other", "bravo-depot", "changed_area", "elsewhere", key="k-other"))
    login(page, live_server)
    page.wait_for_selector("#site-list li")
    page.goto(live_server.url + "/#/site/alpha-base")
    item = page.wait_for_selector("#site-alerts li[data-alert=a-berm]")
    assert "berm height grew by 6.0 ± 1.4 m" in item.inner_text()
    assert "measured change · raised " in item.inner_text()
    listed = page.eval_on_selector_all(
        "#site-alerts li[data-alert]", "els => els.map(e => e.dataset.alert)"
    )
    assert set(listed) == {"a-berm", "al-1"}  # not the dismissed one, nor another site's
    page.click("#site-alerts li[data-alert=a-berm] button.ack")
    page.wait_for_selector("#site-alerts li[data-alert=a-berm]:has-text('acknowledged')")
    page.click("#site-alerts li[data-alert=a-berm] button.dismiss")
    page.wait_for_selector("#site-alerts li[data-alert=a-berm]", state="detached")
    assert page.is_visible("#site-alerts li[data-alert=al-1]")
    with Catalog(live_server.env.url) as cat:
        assert cat.get_alert("a-berm").state == "dismissed"


def test_alert_inbox_by_rule(page: Any, live_server: Any) -> None:
    from sitewatch.catalog.models import Alert

    with Catalog(live_server.env.url) as cat:
        cat.add_alert(Alert("a-grew", "alpha-base", "measured_change", "berm grew", key="k-grew"))
    login(page, live_server)
    page.wait_for_selector("#site-list li")
    page.click("a[data-nav=alerts]")
    page.wait_for_selector("#alert-list li[data-alert=a-grew]")
    assert page.locator("#alert-list li[data-alert=al-1]").count() == 1
    page.select_option("#alert-rule", "measured_change")
    page.wait_for_selector("#alert-list li[data-alert=al-1]", state="detached")
    assert page.locator("#alert-list li[data-alert=a-grew]").count() == 1
    meta = page.inner_text("#alert-list li[data-alert=a-grew] .muted")
    assert meta.startswith("Alpha Base · measured change · raised ") and meta.endswith(" · new")
    # the inbox's buttons are the site page's: dismissed from here, gone from the new ones
    page.click("#alert-list li[data-alert=a-grew] button.dismiss")
    page.wait_for_selector("#alert-list li[data-alert=a-grew]", state="detached")
    with Catalog(live_server.env.url) as cat:
        assert cat.get_alert("a-grew").state == "dismissed"


def test_range_rings_on_the_site_page(page: Any, live_server: Any) -> None:
    """Rings of the chosen classes drawn around the site, named with their ranges; off again."""
    from sitewatch.analysis.ranges import load_missile_table

    table = {m.id: m for m in load_missile_table()}
    with Catalog(live_server.env.url) as cat:  # a base of short-range missiles
        site = cat.get_site("alpha-base")
        cat.update_site(dataclasses.replace(site, tags=(*site.tags, "srbm")))
    login(page, live_server)
    page.wait_for_selector("#site-list li")
    page.goto(live_server.url + "/#/site/alpha-base")
    page.wait_for_selector("#ring-classes option[value=nodong]")
    chosen = page.eval_on_selector("#ring-classes", "s => [...s.selectedOptions].map(o => o.value)")
    assert chosen == [m.id for m in table.values() if m.type == "SRBM"]  # from the site's tags
    paths = "#map .leaflet-overlay-pane path"
    before = page.locator(paths).count()
    page.select_option("#ring-classes", ["scud-b", "nodong"])
    page.check("#show-rings")
    page.wait_for_selector("#ring-info:has-text('km')")
    info = page.inner_text("#ring-info")
    for cid in ("nodong", "scud-b"):
        assert f"{table[cid].name} {table[cid].max_range_km:,.0f} km" in info, info
    assert page.locator(paths).count() == before + 2
    page.uncheck("#show-rings")
    page.wait_for_function(f"document.querySelectorAll('{paths}').length === {before}")


def test_size_of_a_mapped_berm_from_the_editor(page: Any, live_server: Any) -> None:
    from shapely.geometry import box

    from sitewatch.catalog.models import Feature

    with Catalog(live_server.env.url) as cat:
        portal = cat.get_feature("f-portal").geometry
        footprint = box(portal.x + 0.0005, portal.y, portal.x + 0.001, portal.y + 0.0002)
        cat.add_feature(
            Feature("f-berm", "alpha-base", "berm", footprint, attributes={"height_m": 18})
        )
    login(page, live_server)
    page.wait_for_selector("#site-list li")
    page.goto(live_server.url + "/#/site/alpha-base")
    page.click("#feature-list li[data-feature=f-berm]")
    page.fill("#feature-crest", "3")
    page.click("#feature-measure")
    shown = page.wait_for_selector("#feature-size:has-text('volume')").inner_text()
    assert "area" in shown and "perimeter" in shown and "height_m attribute" in shown
    page.click("#feature-measure-save")
    page.wait_for_selector("#measurement-list li:has-text('volume')")
    with Catalog(live_server.env.url) as cat:
        stored = {m.kind: m for m in cat.list_measurements(feature_id="f-berm")}
    assert set(stored) == {"area", "volume"}
    assert stored["volume"].inputs["crest_width_m"] == 3 and stored["volume"].analyst == "analyst"
    assert f"{round(stored['area'].value):,}" in shown


def test_correct_an_observation(page: Any, live_server: Any) -> None:
    from datetime import UTC, datetime

    from sitewatch.catalog.models import Observation

    with Catalog(live_server.env.url) as cat:
        cat.add_observation(
            Observation(
                "o-typo",
                "alpha-base",
                datetime(2020, 1, 2, 3, 4, tzinfo=UTC),
                sensor="S2",
                text="new spoil",
                evidence=("https://example.org/a", "https://example.org/wrong-site"),
            )
        )
    login(page, live_server)
    page.wait_for_selector("#site-list li")
    page.goto(live_server.url + "/#/site/alpha-base")
    assert not page.is_visible("#obs-cancel") and not page.is_visible("#obs-keep")
    page.click("#observation-list li[data-observation=o-typo] button.obs-edit")
    assert page.is_visible("#obs-cancel")
    assert (
        page.input_value("#obs-date") == "2020-01-02"
        and page.input_value("#obs-text") == "new spoil"
    )
    page.fill("#obs-text", "new spoil at portal 2")
    # the evidence of another site was cited by mistake: untick it
    page.uncheck("#obs-keep input[data-ref='https://example.org/wrong-site']")
    assert page.is_checked("#obs-keep input[data-ref='https://example.org/a']")
    page.select_option("#obs-phase", "active_construction")
    page.click("#obs-add")
    page.wait_for_selector("#observation-list li[data-observation=o-typo]:has-text('portal 2')")
    with Catalog(live_server.env.url) as cat:
        o = cat.get_observation("o-typo")
        assert (o.version, o.text, o.phase) == (2, "new spoil at portal 2", "active_construction")
        assert o.acquired == datetime(2020, 1, 2, 3, 4, tzinfo=UTC)  # the same day keeps its time
        assert o.evidence == ("https://example.org/a",) and o.sensor == "S2"
    assert page.inner_text("#obs-add") == "Add observation"  # back to adding
