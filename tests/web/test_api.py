"""REST API tests through httpx (Starlette's TestClient): auth, roles, CSRF, CRUD, history, errors."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from pyproj import Geod

from sitewatch.catalog.store import Catalog

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_reads_need_authentication(client: Any) -> None:
    r = client.get("/api/sites")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    r = client.get("/api/sites", headers={"Authorization": "Bearer swt_nonsense"})
    assert r.status_code == 401


def test_site_list_and_filters(client: Any, web_env: Any) -> None:
    h = web_env.auth("viewer")
    ids = [s["id"] for s in client.get("/api/sites", headers=h).json()]
    assert ids == ["alpha-base", "bravo-depot"]  # by name
    assert [s["id"] for s in client.get("/api/sites?status=confirmed", headers=h).json()] == [
        "bravo-depot"
    ]
    assert [s["id"] for s in client.get("/api/sites?q=alpha", headers=h).json()] == ["alpha-base"]
    r = client.get("/api/sites?bbox=127,39,128,40", headers=h)
    assert [s["id"] for s in r.json()] == ["bravo-depot"]
    assert client.get("/api/sites?bbox=1,2,3", headers=h).status_code == 422  # not 4 numbers
    r = client.get("/api/sites?bbox=1,50,3,40", headers=h)  # south > north
    assert r.status_code == 400 and "south" in r.json()["detail"]
    site = client.get("/api/sites/alpha-base", headers=h).json()
    assert site["aoi"]["type"] == "Polygon" and site["version"] == 1


def test_unknown_site_maps_through_the_error_table(client: Any, web_env: Any) -> None:
    r = client.get("/api/sites/nowhere", headers=web_env.auth("viewer"))
    assert r.status_code == 404
    assert r.json()["error"] == "SiteNotFound"
    assert "nowhere" in r.json()["detail"]


def test_status_table() -> None:
    from sitewatch.errors import (
        AuthError,
        ConflictError,
        DuplicateError,
        GeometryError,
        MissingExtraError,
        SiteNotFound,
        SitewatchError,
    )
    from sitewatch.web.errors import status_for

    assert status_for(SiteNotFound("x")) == 404
    assert status_for(ConflictError("x")) == 409
    assert status_for(DuplicateError("x")) == 409
    assert status_for(GeometryError("x")) == 400
    assert status_for(AuthError("x")) == 403
    assert status_for(MissingExtraError("torch", "ml")) == 501
    assert status_for(SitewatchError("x")) == 400
    assert status_for(RuntimeError("x")) == 500


def test_writes_need_the_analyst_role_and_are_recorded_with_the_user(
    client: Any, web_env: Any
) -> None:
    body = {"name": "Charlie Site", "lon": 126.0, "lat": 39.5, "tags": ["new"]}
    r = client.post("/api/sites", json=body, headers=web_env.auth("viewer"))
    assert r.status_code == 403 and r.json()["error"] == "AuthError"
    r = client.post("/api/sites", json=body, headers=web_env.auth("analyst"))
    assert r.status_code == 201, r.text
    assert r.json()["id"] == "charlie-site"
    r = client.patch(
        "/api/sites/charlie-site",
        json={"version": 1, "status": "confirmed", "notes": "seen"},
        headers=web_env.auth("admin"),
    )
    assert r.status_code == 200 and r.json()["version"] == 2
    hist = client.get("/api/sites/charlie-site/history", headers=web_env.auth("viewer")).json()
    assert [(h["action"], h["actor"]) for h in hist] == [("create", "analyst"), ("update", "admin")]
    with Catalog(web_env.url) as cat:
        assert cat.get_site("charlie-site").status == "confirmed"
        assert cat.history(entity_id="charlie-site")[-1].actor == "admin"


def test_stale_edit_is_a_conflict(client: Any, web_env: Any) -> None:
    h = web_env.auth("analyst")
    assert (
        client.patch(
            "/api/sites/alpha-base", json={"version": 1, "name": "A"}, headers=h
        ).status_code
        == 200
    )
    r = client.patch("/api/sites/alpha-base", json={"version": 1, "name": "B"}, headers=h)
    assert r.status_code == 409 and "version 2" in r.json()["detail"]


def test_invalid_input_is_400_or_422(client: Any, web_env: Any) -> None:
    h = web_env.auth("analyst")
    assert (
        client.post("/api/sites", json={"name": "x", "lon": 500, "lat": 0}, headers=h).status_code
        == 422
    )
    r = client.post(
        "/api/sites",
        json={
            "name": "Bad AOI",
            "lon": 1,
            "lat": 1,
            "aoi": {"type": "Point", "coordinates": [1, 1]},
        },
        headers=h,
    )
    assert r.status_code == 400 and "polygon" in r.json()["detail"]
    r = client.post(
        "/api/sites/alpha-base/features",
        json={"kind": "berm", "geometry": {"type": "Nope"}},
        headers=h,
    )
    assert r.status_code == 400 and r.json()["error"] == "GeometryError"


def _login(client: Any, web_env: Any, role: str) -> str:
    r = client.post("/api/auth/login", json={"username": role, "password": web_env.passwords[role]})
    assert r.status_code == 200, r.text
    return str(r.json()["csrf"])


def test_a_null_for_a_field_that_cannot_be_empty_is_400(client: Any, web_env: Any) -> None:
    """PATCH with an explicit null: refused with the field named (it reached the database as a
    NOT NULL violation, a 500), while nullable fields are cleared."""
    h = web_env.auth("analyst")
    for field in ("name", "kind", "attributes"):
        r = client.patch("/api/features/f-portal", json={"version": 1, field: None}, headers=h)
        assert r.status_code == 400 and f"{field} cannot be null" in r.json()["detail"], r.text
    site = client.get("/api/sites/alpha-base", headers=h).json()
    for field in ("name", "tags", "notes", "status", "declared", "lon"):
        r = client.patch(
            "/api/sites/alpha-base", json={"version": site["version"], field: None}, headers=h
        )
        assert r.status_code == 400 and f"{field} cannot be null" in r.json()["detail"], r.text
    r = client.patch(
        "/api/sites/alpha-base", json={"version": site["version"], "country": None}, headers=h
    )
    assert r.status_code == 200 and r.json()["country"] is None
    r = client.patch("/api/features/f-portal", json={"version": 1, "first_seen": None}, headers=h)
    assert r.status_code == 200 and r.json()["first_seen"] is None


def test_session_cookies_and_csrf(client: Any, web_env: Any) -> None:
    r = client.post(
        "/api/auth/login", json={"username": "analyst", "password": "analyst-password-1"}
    )
    assert r.status_code == 200
    cookies = r.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("sitewatch_session="))
    assert "HttpOnly" in session and "SameSite=strict" in session and "Path=/" in session
    csrf_cookie = next(c for c in cookies if c.startswith("sitewatch_csrf="))
    assert "HttpOnly" not in csrf_cookie
    csrf = r.json()["csrf"]
    assert client.get("/api/auth/me").json()["username"] == "analyst"
    body = {"version": 1, "notes": "via browser"}
    r = client.patch("/api/sites/bravo-depot", json=body)
    assert r.status_code == 403 and "X-CSRF-Token" in r.json()["detail"]
    r = client.patch("/api/sites/bravo-depot", json=body, headers={"X-CSRF-Token": "wrong"})
    assert r.status_code == 403
    r = client.patch("/api/sites/bravo-depot", json=body, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200 and r.json()["notes"] == "via browser"
    assert client.post("/api/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    client.cookies.clear()
    assert client.get("/api/auth/me").status_code == 401


def test_logout_ends_the_session_on_the_server(client: Any, web_env: Any) -> None:
    _login(client, web_env, "viewer")
    secret = client.cookies.get("sitewatch_session")
    csrf = client.cookies.get("sitewatch_csrf")
    client.post("/api/auth/logout", headers={"X-CSRF-Token": csrf})
    client.cookies.set("sitewatch_session", secret)  # replaying the old cookie does not work
    assert client.get("/api/auth/me").status_code == 401


def test_login_is_rate_limited(client: Any, web_env: Any) -> None:
    for _ in range(5):
        r = client.post("/api/auth/login", json={"username": "viewer", "password": "wrong-guess"})
        assert r.status_code == 401
    r = client.post("/api/auth/login", json={"username": "viewer", "password": "viewer-password-1"})
    assert r.status_code == 429
    assert 1 <= int(r.headers["retry-after"]) <= 60
    # other users are not locked out
    assert (
        client.post(
            "/api/auth/login", json={"username": "admin", "password": "admin-password-1"}
        ).status_code
        == 200
    )


def test_features_draw_edit_delete(client: Any, web_env: Any) -> None:
    h = web_env.auth("analyst")
    poly = {
        "type": "Polygon",
        "coordinates": [[[126.5, 40.2], [126.501, 40.2], [126.501, 40.201], [126.5, 40.2]]],
    }
    r = client.post(
        "/api/sites/alpha-base/features", json={"kind": "berm", "geometry": poly}, headers=h
    )
    assert r.status_code == 201, r.text
    fid = r.json()["id"]
    r = client.patch(f"/api/features/{fid}", json={"version": 1, "name": "north berm"}, headers=h)
    assert r.json()["name"] == "north berm" and r.json()["geometry"]["type"] == "Polygon"
    kinds = [f["kind"] for f in client.get("/api/sites/alpha-base/features", headers=h).json()]
    assert sorted(kinds) == ["berm", "ugf_portal"]
    assert client.delete(f"/api/features/{fid}?version=2", headers=h).status_code == 204
    assert client.get(f"/api/features/{fid}", headers=h).status_code == 404


def test_deleting_a_measured_feature_asks_what_becomes_of_its_measurements(
    client: Any, web_env: Any
) -> None:
    h = web_env.auth("analyst")
    body = {"kind": "height", "value": 6.5, "unit": "m", "feature_id": "f-portal"}
    r = client.post("/api/sites/alpha-base/measurements", json=body, headers=h)
    assert r.status_code == 201, r.text
    mid = r.json()["id"]
    r = client.delete("/api/features/f-portal", headers=h)
    assert r.status_code == 409 and "1 measurement(s) (height)" in r.json()["detail"]
    assert client.get("/api/features/f-portal", headers=h).status_code == 200
    r = client.delete("/api/features/f-portal?measurements=drop", headers=h)
    assert r.status_code == 422
    r = client.delete("/api/features/f-portal?measurements=keep", headers=h)
    assert r.status_code == 204, r.text
    kept = [m for m in client.get("/api/measurements?site_id=alpha-base", headers=h).json()
            if m["id"] == mid]  # fmt: skip
    assert kept[0]["feature_id"] is None
    assert kept[0]["inputs"]["deleted_feature"].startswith("f-portal (ugf_portal")


def test_records_of_a_site(client: Any, web_env: Any) -> None:
    h = web_env.auth("analyst")
    r = client.post(
        "/api/sites/alpha-base/observations",
        json={"acquired": "2024-05-01T03:00:00Z", "sensor": "S2", "phase": "post_construction"},
        headers=h,
    )
    assert r.status_code == 201 and r.json()["analyst"] == "analyst"
    obs = client.get("/api/sites/alpha-base/observations", headers=h).json()
    assert [o["phase"] for o in obs] == ["active_construction", "post_construction"]
    r = client.post(
        "/api/sites/alpha-base/measurements",
        json={
            "kind": "length",
            "value": 12.5,
            "unit": "m",
            "uncertainty": 0.5,
            "feature_id": "f-portal",
        },
        headers=h,
    )
    assert r.status_code == 201
    ms = client.get("/api/measurements?feature_id=f-portal", headers=h).json()
    assert [m["value"] for m in ms] == [12.5]
    changes = client.get("/api/sites/alpha-base/changes", headers=h).json()
    assert changes[0]["area_m2"] == 1200.0 and changes[0]["geometry"]["type"] == "Polygon"
    # a change event recorded in error is retracted by an analyst, not by a viewer
    viewer = web_env.auth("viewer")
    assert client.delete("/api/changes/ch-1", headers=viewer).status_code == 403
    assert client.delete("/api/changes/ch-1?version=2", headers=h).status_code == 409
    assert client.delete("/api/changes/ch-1?version=1", headers=h).status_code == 204
    assert client.get("/api/sites/alpha-base/changes", headers=h).json() == []
    assert client.delete("/api/changes/ch-1", headers=h).status_code == 404


def test_measured_change_of_a_site(client: Any, web_env: Any) -> None:
    """A portal's width measured on two image dates: the first and last values, the change with
    its error in quadrature and the two-sigma verdict, as `sites show --json` gives them."""
    h, viewer = web_env.auth("analyst"), web_env.auth("viewer")
    assert client.get("/api/sites/alpha-base/measured-change", headers=viewer).json() == []
    ids = []
    for day, value in (("2022-04-01", 9.0), ("2024-04-01", 7.0)):
        obs = client.post("/api/sites/alpha-base/observations",
                          json={"acquired": f"{day}T02:00:00Z"}, headers=h).json()  # fmt: skip
        r = client.post("/api/sites/alpha-base/measurements", json={
            "kind": "width", "value": value, "unit": "m", "uncertainty": 0.3,
            "feature_id": "f-portal", "observation_id": obs["id"]}, headers=h)  # fmt: skip
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    (trend,) = client.get("/api/sites/alpha-base/measured-change", headers=viewer).json()
    assert trend["feature_id"] == "f-portal" and trend["kind"] == "width"
    assert trend["first"] == ["2022-04-01", 9.0, 0.3] and trend["last"] == ["2024-04-01", 7.0, 0.3]
    assert trend["change"] == pytest.approx(-2.0) and trend["sigma"] == pytest.approx(0.3 * 2**0.5)
    assert (trend["verdict"], trend["dates"], trend["measurements"]) == ("shrank", 2, ids)
    r = client.get("/api/sites/nowhere/measured-change", headers=viewer)
    assert r.status_code == 404


def test_observations_corrected_and_records_retracted(client: Any, web_env: Any) -> None:
    h, viewer = web_env.auth("analyst"), web_env.auth("viewer")
    obs = client.post(
        "/api/sites/alpha-base/observations",
        json={"acquired": "2024-05-10T03:00:00Z", "sensor": "S2", "text": "new berm"},
        headers=h,
    ).json()
    patch = {"version": 1, "acquired": "2024-05-01T03:00:00Z", "phase": "site_preparation"}
    assert (
        client.patch(f"/api/observations/{obs['id']}", json=patch, headers=viewer).status_code
        == 403
    )
    r = client.patch(f"/api/observations/{obs['id']}", json=patch, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["acquired"].startswith("2024-05-01") and r.json()["version"] == 2
    assert r.json()["text"] == "new berm"  # fields not sent are kept
    assert client.patch(f"/api/observations/{obs['id']}", json=patch, headers=h).status_code == 409
    r = client.patch(
        f"/api/observations/{obs['id']}", json={"version": 2, "acquired": None}, headers=h
    )
    assert r.status_code == 400 and "acquired cannot be null" in r.json()["detail"]
    r = client.patch(f"/api/observations/{obs['id']}", json={"version": 2, "evidence": ["/etc/passwd"]},
                     headers=h)  # fmt: skip
    assert r.status_code == 400
    r = client.patch(
        f"/api/observations/{obs['id']}", json={"version": 2, "phase": None}, headers=h
    )
    assert r.status_code == 200 and r.json()["phase"] is None
    m = client.post(
        "/api/sites/alpha-base/measurements",
        json={"kind": "length", "value": 40, "unit": "m", "observation_id": obs["id"]},
        headers=h,
    ).json()
    r = client.delete(f"/api/observations/{obs['id']}", headers=h)
    assert r.status_code == 409 and "1 measurement(s) (length)" in r.json()["detail"]
    r = client.delete(f"/api/observations/{obs['id']}?measurements=keep", headers=h)
    assert r.status_code == 204, r.text
    ids = [o["id"] for o in client.get("/api/sites/alpha-base/observations", headers=h).json()]
    assert obs["id"] not in ids
    (kept,) = [x for x in client.get("/api/measurements?site_id=alpha-base", headers=h).json()
               if x["id"] == m["id"]]  # fmt: skip
    assert kept["observation_id"] is None and kept["inputs"]["deleted_observation"].startswith(
        obs["id"]
    )
    assert client.delete(f"/api/measurements/{m['id']}", headers=viewer).status_code == 403
    assert client.delete(f"/api/measurements/{m['id']}?version=1", headers=h).status_code == 409
    assert client.delete(f"/api/measurements/{m['id']}?version=2", headers=h).status_code == 204
    assert client.delete(f"/api/measurements/{m['id']}", headers=h).status_code == 404
    # a measurement names a feature of its own site only
    other = client.post("/api/sites", json={"name": "Other", "lat": 40.0, "lon": 127.0}, headers=h)
    assert other.status_code == 201, other.text
    r = client.post(
        f"/api/sites/{other.json()['id']}/measurements",
        json={"kind": "height", "value": 5, "unit": "m", "feature_id": "f-portal"},
        headers=h,
    )
    assert r.status_code == 400 and "belongs to site 'alpha-base'" in r.json()["detail"]


def test_feature_size_tool(client: Any, web_env: Any) -> None:
    """Area, perimeter and a berm's volume from the height the catalog knows; saved on the
    feature by an analyst only; a point has no size."""
    from shapely.geometry import shape

    from sitewatch.analysis.mensuration import berm_volume, geodesic_polygon_area

    h, viewer = web_env.auth("analyst"), web_env.auth("viewer")
    poly = {"type": "Polygon", "coordinates": [[[126.5, 40.2], [126.5005, 40.2],
            [126.5005, 40.2002], [126.5, 40.2002], [126.5, 40.2]]]}  # fmt: skip
    berm = client.post("/api/sites/alpha-base/features", json={"kind": "berm", "geometry": poly,
                       "attributes": {"height_m": 18}}, headers=h).json()  # fmt: skip
    r = client.post("/api/tools/feature-size", json={"feature_id": berm["id"], "crest_width_m": 3},
                    headers=viewer)  # fmt: skip
    assert r.status_code == 200, r.text
    out = r.json()
    geom = shape(poly)
    assert out["area"]["value"] == pytest.approx(geodesic_polygon_area(geom).value, abs=0.01)
    assert 2 * (42 + 22) < out["length"]["value"] < 2 * (43 + 23)  # 0.0005 x 0.0002 deg at 40 N
    assert out["volume"]["value"] == pytest.approx(
        berm_volume(geom, 18, crest_width_m=3).value, rel=1e-6
    )
    assert "height_m attribute" in out["height_from"] and out["measurements"] == []
    # a height measured for it later wins over the attribute
    client.post("/api/sites/alpha-base/measurements", json={"kind": "height", "value": 12,
                "unit": "m", "uncertainty": 1, "feature_id": berm["id"]}, headers=h)  # fmt: skip
    body = {"feature_id": berm["id"], "save": True}
    assert client.post("/api/tools/feature-size", json=body, headers=viewer).status_code == 403
    r = client.post("/api/tools/feature-size", json=body, headers=h)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["height_from"].startswith("height measurement")
    assert out["volume"]["uncertainty"] > 0 and out["volume"]["inputs"]["height_m"] == 12
    assert [(m["kind"], m["feature_id"]) for m in out["measurements"]] == [
        ("area", berm["id"]), ("volume", berm["id"])]  # fmt: skip
    stored = client.get(f"/api/measurements?feature_id={berm['id']}", headers=h).json()
    assert sorted(m["kind"] for m in stored) == ["area", "height", "volume"]
    # a berm mapped in two pieces: both pieces' volumes, not the larger one's
    parts = {"type": "MultiPolygon", "coordinates": [poly["coordinates"],
             [[[126.501, 40.2], [126.5015, 40.2], [126.5015, 40.2002], [126.501, 40.2002],
               [126.501, 40.2]]]]}  # fmt: skip
    cut = client.post("/api/sites/alpha-base/features", json={"kind": "berm", "geometry": parts,
                      "attributes": {"height_m": 18}}, headers=h).json()  # fmt: skip
    out = client.post("/api/tools/feature-size", json={"feature_id": cut["id"]}, headers=h).json()
    assert out["volume"]["value"] == pytest.approx(berm_volume(shape(parts), 18).value, rel=1e-6)
    assert out["volume"]["value"] == pytest.approx(2 * berm_volume(geom, 18).value, rel=1e-3)
    r = client.post("/api/tools/feature-size", json={"feature_id": "f-portal"}, headers=h)
    assert r.status_code == 400 and "point" in r.json()["detail"]
    r = client.post("/api/tools/feature-size", json={"feature_id": "nope"}, headers=h)
    assert r.status_code == 404


def test_sources_cited_by_a_site(client: Any, web_env: Any) -> None:
    h, viewer = web_env.auth("analyst"), web_env.auth("viewer")
    body = {"citation": "Analyst Group, Hidden Bases Report (2019)", "url": "https://example.org/r"}
    assert client.post("/api/sources", json=body, headers=viewer).status_code == 403
    r = client.post("/api/sources", json=body, headers=h)
    assert r.status_code == 201, r.text
    src = r.json()
    assert src["id"] == "analyst-group-hidden-bases-report-2019"
    assert client.post("/api/sources", json=body, headers=h).status_code == 409  # same id
    bad = client.post(
        "/api/sources", json={"citation": "x", "url": "javascript:alert(1)"}, headers=h
    )
    assert bad.status_code == 422
    assert [s["id"] for s in client.get("/api/sources", headers=viewer).json()] == [src["id"]]
    site = client.get("/api/sites/alpha-base", headers=h).json()
    r = client.patch(
        "/api/sites/alpha-base",
        json={"version": site["version"], "source_ids": [src["id"]]},
        headers=h,
    )
    assert r.status_code == 200 and r.json()["source_ids"] == [src["id"]]
    r = client.patch(
        "/api/sites/alpha-base", json={"version": r.json()["version"], "source_ids": ["nope"]},
        headers=h,
    )  # fmt: skip
    assert r.status_code == 404 and "sources add" in r.json()["detail"]
    # edit (optimistic), and delete only once no site cites it
    url = f"/api/sources/{src['id']}"
    r = client.patch(url, json={"version": 1, "licence": "CC BY 4.0"}, headers=h)
    assert r.status_code == 200 and (r.json()["licence"], r.json()["version"]) == ("CC BY 4.0", 2)
    assert r.json()["citation"] == body["citation"]
    assert client.patch(url, json={"version": 1, "notes": "x"}, headers=h).status_code == 409
    assert client.patch(url, json={"version": 2, "citation": None}, headers=h).status_code in (
        400,
        422,
    )
    assert client.delete(url, headers=viewer).status_code == 403
    r = client.delete(url, headers=h)
    assert r.status_code == 409 and "alpha-base" in r.json()["detail"]
    site = client.get("/api/sites/alpha-base", headers=h).json()
    client.patch("/api/sites/alpha-base", json={"version": site["version"], "source_ids": []},
                 headers=h)  # fmt: skip
    assert client.delete(url, headers=h).status_code == 204
    assert client.get("/api/sources", headers=viewer).json() == []


def test_evidence_upload_observation_and_download(client: Any, web_env: Any) -> None:
    import hashlib

    from sitewatch.web.api.evidence import MAX_EVIDENCE_BYTES

    h, viewer = web_env.auth("analyst"), web_env.auth("viewer")
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    assert client.post("/api/evidence?name=a.png", content=png, headers=viewer).status_code == 403
    r = client.post("/api/evidence?name=..%2F..%2Fportal%201.png", content=png, headers=h)
    assert r.status_code == 201, r.text
    up = r.json()
    digest = hashlib.sha256(png).hexdigest()
    assert up == {
        "reference": f"evidence:{digest}/portal_1.png",
        "name": "portal_1.png",
        "sha256": digest,
        "size": len(png),
    }
    dots = client.post("/api/evidence?name=..", content=b"x", headers=h)
    assert dots.status_code == 201 and dots.json()["name"] == "evidence"
    html = client.post("/api/evidence?name=page.html", content=b"<script>x</script>", headers=h)
    assert html.status_code == 201
    assert client.post("/api/evidence?name=e.png", content=b"", headers=h).status_code in (
        400,
        422,
    )
    big = client.post(
        "/api/evidence?name=big.bin", content=b"\0" * (MAX_EVIDENCE_BYTES + 1), headers=h
    )
    assert big.status_code in (400, 413, 422) and "50 MB" in big.text

    obs = {"acquired": "2024-05-01T03:00:00Z", "text": "new spoil"}
    for bad in ("/etc/passwd", "evidence:" + "0" * 64 + "/gone.png"):
        r = client.post("/api/sites/alpha-base/observations", json={**obs, "evidence": [bad]},
                        headers=h)  # fmt: skip
        assert r.status_code in (400, 404, 422), r.text
    refs = [up["reference"], html.json()["reference"], "https://example.org/shot.jpg"]
    r = client.post("/api/sites/alpha-base/observations", json={**obs, "evidence": refs}, headers=h)
    assert r.status_code == 201 and r.json()["evidence"] == refs

    got = client.get(f"/api/evidence/{digest}/portal_1.png", headers=viewer)
    assert got.status_code == 200 and got.content == png
    assert got.headers["content-type"] == "image/png" and got.headers["x-content-type-options"]
    assert got.headers["content-disposition"].startswith("inline")
    page = client.get("/api/evidence/" + html.json()["reference"][9:], headers=viewer)
    assert page.headers["content-type"] == "application/octet-stream"
    assert page.headers["content-disposition"].startswith("attachment")
    assert "sandbox" in page.headers["content-security-policy"]
    assert client.get(f"/api/evidence/{digest}/other.png", headers=viewer).status_code == 404
    assert client.get(f"/api/evidence/{digest}/portal_1.png").status_code == 401


def test_shadow_height_tool(client: Any, web_env: Any) -> None:
    geod = Geod(ellps="WGS84")
    # a shadow 20 m long pointing away from the sun (azimuth 150 -> shadow towards 330)
    tip_lon, tip_lat, _ = geod.fwd(126.5, 40.2, 330.0, 20.0)
    body = {
        "site_id": "alpha-base",
        "base": [126.5, 40.2],
        "tip": [tip_lon, tip_lat],
        "observation_id": "obs-1",
    }
    r = client.post("/api/tools/shadow-height", json=body, headers=web_env.auth("viewer"))
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["sun_source"] == "observation" and out["sun_elevation_deg"] == 45.0
    assert out["height_m"] == pytest.approx(20.0 * math.tan(math.radians(45.0)), rel=1e-3)
    # 1 px (2 m) at each end, and 0.1 deg of sun elevation: first-order propagation
    expected = math.hypot(math.sqrt(2) * 2.0, 20.0 * 2 * math.radians(0.1))
    assert out["uncertainty_m"] == pytest.approx(expected, rel=0.02)
    assert out["measurement"] is None
    r = client.post(
        "/api/tools/shadow-height", json={**body, "save": True}, headers=web_env.auth("viewer")
    )
    assert r.status_code == 403
    r = client.post(
        "/api/tools/shadow-height", json={**body, "save": True}, headers=web_env.auth("analyst")
    )
    m = r.json()["measurement"]
    assert m["kind"] == "height" and m["analyst"] == "analyst" and m["uncertainty"] > 0
    assert m["inputs"]["base"] == [126.5, 40.2]


def test_shadow_height_computes_the_sun_from_the_time(client: Any, web_env: Any) -> None:
    from datetime import UTC, datetime

    from sitewatch.analysis.sun import sun_position

    when = datetime(2024, 6, 1, 3, 0, tzinfo=UTC)
    sun = sun_position(126.5, 40.2, when, refraction=True)  # the apparent sun casts the shadow
    geod = Geod(ellps="WGS84")
    tip_lon, tip_lat, _ = geod.fwd(126.5, 40.2, (sun.azimuth + 180) % 360, 10.0)
    r = client.post(
        "/api/tools/shadow-height",
        json={
            "site_id": "alpha-base",
            "base": [126.5, 40.2],
            "tip": [tip_lon, tip_lat],
            "acquired": when.isoformat(),
            "gsd_m": 0.5,
        },
        headers=web_env.auth("viewer"),
    )
    out = r.json()
    assert out["sun_source"] == "computed"
    assert out["height_m"] == pytest.approx(10.0 * math.tan(math.radians(sun.elevation)), rel=1e-5)
    # saved, the height keeps the image time that dates it (no observation names it)
    saved = client.post("/api/tools/shadow-height", json={
        "site_id": "alpha-base", "base": [126.5, 40.2], "tip": [tip_lon, tip_lat],
        "acquired": when.isoformat(), "gsd_m": 0.5, "save": True}, headers=web_env.auth("analyst"))  # fmt: skip
    assert saved.json()["measurement"]["inputs"]["acquired"] == "2024-06-01T03:00:00+00:00"
    r = client.post(
        "/api/tools/shadow-height",
        json={
            "site_id": "alpha-base",
            "base": [126.5, 40.2],
            "tip": [126.5, 40.2],
            "sun_elevation": 30,
        },
        headers=web_env.auth("viewer"),
    )
    assert r.status_code == 400


def test_distance_tool(client: Any, web_env: Any) -> None:
    """The ruler: the geodesic length through the clicked points with the click error (1 px of
    the observation's 2 m pixels at each point), saved by an analyst as a width of a feature."""
    geod = Geod(ellps="WGS84")
    lon1, lat1, _ = geod.fwd(126.5, 40.2, 90.0, 30.0)
    lon2, lat2, _ = geod.fwd(lon1, lat1, 0.0, 40.0)
    body = {"site_id": "alpha-base", "points": [[126.5, 40.2], [lon1, lat1], [lon2, lat2]],
            "observation_id": "obs-1"}  # fmt: skip
    r = client.post("/api/tools/distance", json=body, headers=web_env.auth("viewer"))
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["length_m"] == pytest.approx(70.0, abs=1e-6)
    assert out["segments_m"] == pytest.approx([30.0, 40.0], abs=1e-3)
    assert out["azimuth_deg"] == pytest.approx(90.0, abs=1e-6)
    assert out["uncertainty_m"] == pytest.approx(2.0 * math.sqrt(3.0))  # three points, 2 m each
    assert out["measurement"] is None
    save = {**body, "save": True, "kind": "width", "feature_id": "f-portal"}
    assert (
        client.post("/api/tools/distance", json=save, headers=web_env.auth("viewer")).status_code
        == 403
    )
    r = client.post("/api/tools/distance", json=save, headers=web_env.auth("analyst"))
    m = r.json()["measurement"]
    assert (
        m["kind"] == "width" and m["feature_id"] == "f-portal" and m["value"] == pytest.approx(70.0)
    )
    assert m["observation_id"] == "obs-1" and m["inputs"]["acquired"].startswith("2024-03-01")
    # which way each segment was measured is kept (east, then north)
    assert m["inputs"]["azimuths_deg"] == pytest.approx([90.0, 0.0], abs=0.01)
    stored = client.get(
        "/api/measurements?feature_id=f-portal", headers=web_env.auth("viewer")
    ).json()
    assert m["id"] in [x["id"] for x in stored]
    for bad, status in (({**body, "points": [[126.5, 40.2]]}, 422),
                        ({**body, "points": [[126.5, 40.2], [200.0, 40.2]]}, 400),
                        ({**body, "observation_id": "nope"}, 400),
                        ({**save, "feature_id": "nope"}, 404)):  # fmt: skip
        r = client.post("/api/tools/distance", json=bad, headers=web_env.auth("analyst"))
        assert r.status_code == status, (bad, r.text)


def test_alert_inbox(client: Any, web_env: Any) -> None:
    h = web_env.auth("analyst")
    alerts = client.get("/api/alerts?state=new", headers=h).json()
    assert [a["id"] for a in alerts] == ["al-1"]
    # by rule (the fixture's alert is of rule "change")
    assert [a["id"] for a in client.get("/api/alerts?rule=change", headers=h).json()] == ["al-1"]
    assert client.get("/api/alerts?rule=measured_change", headers=h).json() == []
    both = client.get("/api/alerts?rule=measured_change&rule=change", headers=h).json()
    assert [a["id"] for a in both] == ["al-1"]
    r = client.post("/api/alerts/al-1/state", json={"state": "acked", "version": 1}, headers=h)
    assert r.status_code == 200 and r.json()["state"] == "acked"
    assert client.get("/api/alerts?state=new", headers=h).json() == []


def test_triage_accept_creates_a_site_and_reject_does_not(client: Any, web_env: Any) -> None:
    h = web_env.auth("analyst")
    queue = client.get("/api/candidates?state=pending", headers=h).json()
    assert [c["rank"] for c in queue] == [1, 2, 3]
    r = client.post(
        "/api/candidates/cand-0/triage", json={"decision": "accept", "version": 1}, headers=h
    )
    assert r.status_code == 200, r.text
    site_id = r.json()["site_id"]
    assert r.json()["state"] == "accepted" and site_id
    site = client.get(f"/api/sites/{site_id}", headers=h).json()
    assert site["status"] == "suspected" and site["aoi"]["type"] == "Polygon"
    r = client.post(
        "/api/candidates/cand-1/triage", json={"decision": "reject", "version": 1}, headers=h
    )
    assert r.json()["state"] == "rejected" and r.json()["site_id"] is None
    # a stale decision is refused and creates nothing
    n_sites = len(client.get("/api/sites", headers=h).json())
    r = client.post(
        "/api/candidates/cand-1/triage", json={"decision": "accept", "version": 1}, headers=h
    )
    assert r.status_code == 409
    assert len(client.get("/api/sites", headers=h).json()) == n_sites
    assert [c["id"] for c in client.get("/api/candidates?state=pending", headers=h).json()] == [
        "cand-2"
    ]


def test_triage_accept_of_a_catalogued_place_links_to_its_site(client: Any, web_env: Any) -> None:
    """A candidate marked as lying on a catalogued site: accepting links to that site."""
    from shapely.geometry import box

    from sitewatch.catalog.models import Candidate
    from sitewatch.catalog.store import Catalog
    from sitewatch.search.triage import mark_catalogued

    h = web_env.auth("analyst")
    site = client.get("/api/sites/alpha-base", headers=h).json()
    lon, lat = site["lon"], site["lat"]
    with Catalog(web_env.url) as cat:
        (marked,) = mark_catalogued(cat, [Candidate("cand-known", "run2", box(
            lon - 0.0004, lat - 0.0004, lon + 0.0004, lat + 0.0004), 0.8, 1)])  # fmt: skip
        cat.add_candidates([marked])
    n_sites = len(client.get("/api/sites", headers=h).json())
    r = client.post("/api/candidates/cand-known/triage", json={"decision": "accept", "version": 1},
                    headers=h)  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["site_id"] == "alpha-base"
    assert r.json()["details"]["catalogued_site"]["id"] == "alpha-base"
    assert len(client.get("/api/sites", headers=h).json()) == n_sites  # no second site


def _sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in lines:
            events.append((lines["event"], json.loads(lines["data"])))
    return events


@pytest.mark.parametrize("fmt", ["geojson", "csv", "layers"])
def test_report_job_progress_and_download(client: Any, web_env: Any, fmt: str) -> None:
    h = web_env.auth("viewer")
    r = client.post("/api/reports", json={"format": fmt}, headers=h)
    assert r.status_code == 202
    job = r.json()["id"]
    with client.stream("GET", f"/api/reports/{job}/events", headers=h) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        text = "".join(resp.iter_text())
    events = _sse_events(text)
    assert events[-1][0] == "done", events
    assert all(e[1]["progress"] <= 1.0 for e in events)
    r = client.get(f"/api/reports/{job}/download", headers=h)
    assert r.status_code == 200
    if fmt == "geojson":
        feats = r.json()["features"]
        names = sorted(
            f["properties"]["name"] for f in feats if f["properties"]["record"] == "site"
        )
        assert names == ["Alpha Base", "Bravo Depot"]
    elif fmt == "csv":
        assert "alpha-base" in r.text and "bravo-depot" in r.text
    else:
        layers = sorted({f["properties"]["layer"] for f in r.json()["features"]})
        assert layers == ["change_polygons", "features"]
    # another user cannot see it
    assert client.get(f"/api/reports/{job}", headers=web_env.auth("analyst")).status_code == 404


def test_report_of_unknown_site_fails_fast(client: Any, web_env: Any) -> None:
    r = client.post(
        "/api/reports",
        json={"format": "kml", "site_ids": ["ghost"]},
        headers=web_env.auth("viewer"),
    )
    assert r.status_code == 404


def test_users_api_is_admin_only(client: Any, web_env: Any) -> None:
    assert client.get("/api/users", headers=web_env.auth("analyst")).status_code == 403
    r = client.post(
        "/api/users",
        json={"username": "dana", "password": "long-enough", "role": "analyst"},
        headers=web_env.auth("admin"),
    )
    assert r.status_code == 201
    names = [u["username"] for u in client.get("/api/users", headers=web_env.auth("admin")).json()]
    assert names == ["admin", "analyst", "dana", "viewer"]
    tok = client.post("/api/users/me/tokens", headers=web_env.auth("viewer")).json()["token"]
    assert (
        client.get("/api/auth/me", headers={"Authorization": f"Bearer {tok}"}).json()["role"]
        == "viewer"
    )


def test_security_headers_and_ui(client: Any) -> None:
    r = client.get("/")
    assert r.status_code == 200
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" not in client.get("/docs").headers  # CDN-hosted viewer
    cfg = client.get("/api/config").json()
    assert cfg["basemap_url"] is None and "berm" in cfg["feature_kinds"]
    assert cfg["mensuration"] in ("sitewatch.analysis.mensuration", "builtin")
    spec = client.get("/openapi.json").json()
    assert "/api/candidates/{candidate_id}/triage" in spec["paths"]


def test_read_cache_follows_writes_from_other_processes(client: Any, web_env: Any) -> None:
    from dataclasses import replace

    h = web_env.auth("viewer")
    assert client.get("/api/sites/bravo-depot", headers=h).json()["name"] == "Bravo Depot"
    with Catalog(web_env.url, actor="cli-user") as cat:  # e.g. `sitewatch sites edit` meanwhile
        cat.update_site(replace(cat.get_site("bravo-depot"), name="Bravo (CLI)"))
    assert client.get("/api/sites/bravo-depot", headers=h).json()["name"] == "Bravo (CLI)"
    assert [s["name"] for s in client.get("/api/sites", headers=h).json()][1] == "Bravo (CLI)"


def test_site_brief_report(client: Any, web_env: Any) -> None:
    h = web_env.auth("viewer")
    r = client.post("/api/reports", json={"format": "brief"}, headers=h)
    assert r.status_code == 400 and "exactly one" in r.json()["detail"]
    r = client.post("/api/reports", json={"format": "brief", "site_ids": ["alpha-base"]}, headers=h)
    job = r.json()["id"]
    with client.stream("GET", f"/api/reports/{job}/events", headers=h) as resp:
        events = _sse_events("".join(resp.iter_text()))
    assert events[-1][0] == "done", events
    r = client.get(f"/api/reports/{job}/download", headers=h)
    assert r.headers["content-type"].startswith("text/html")
    assert "Alpha Base" in r.text and "data:image/png;base64" in r.text


def test_nan_and_infinity_in_a_request_are_refused(client: Any, web_env: Any) -> None:
    """Python's JSON reader takes NaN/Infinity; no stored number or tool input may be one."""
    h = {**web_env.auth("analyst"), "content-type": "application/json"}
    before = client.get("/api/measurements?site_id=alpha-base", headers=h).json()
    for value in ("NaN", "Infinity", "-Infinity"):
        body = f'{{"kind": "length", "value": {value}, "unit": "m", "feature_id": "f-portal"}}'
        r = client.post("/api/sites/alpha-base/measurements", content=body, headers=h)
        assert r.status_code == 422, (value, r.text)
    assert client.get("/api/measurements?site_id=alpha-base", headers=h).json() == before
    body = '{"site_id": "alpha-base", "base": [NaN, 40.2], "tip": [126.5, 40.2]}'
    r = client.post("/api/tools/shadow-height", content=body, headers=h)
    assert r.status_code == 422, r.text


def test_a_site_named_without_latin_letters_gets_the_import_id(client: Any, web_env: Any) -> None:
    from sitewatch.catalog.models import site_id_for

    h = web_env.auth("analyst")
    r = client.post("/api/sites", json={"name": "신포", "lon": 128.2, "lat": 40.0}, headers=h)
    assert r.status_code == 201, r.text
    assert r.json()["id"] == site_id_for("신포") and r.json()["id"].startswith("site-")
    r = client.post("/api/sites", json={"name": " ", "lon": 128.2, "lat": 40.0}, headers=h)
    assert r.status_code == 400 and "not blank" in r.json()["detail"]


def test_range_rings_of_a_site(
    client: Any, web_env: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The classes of the table in use, and geodesic rings around a site, as the CLI's."""
    from shapely.geometry import shape

    from sitewatch.analysis.ranges import load_missile_table, range_area

    viewer = web_env.auth("viewer")
    classes = client.get("/api/ranges/classes", headers=viewer).json()
    assert [c["id"] for c in classes] == [m.id for m in load_missile_table()]
    assert all(c["source"] for c in classes)
    first = classes[0]
    r = client.get(f"/api/sites/alpha-base/range-rings?classes={first['id']}&azimuths=90",
                   headers=viewer)  # fmt: skip
    assert r.status_code == 200, r.text
    ring, origin = r.json()["features"]
    assert ring["properties"]["class"] == first["id"] and origin["properties"]["role"] == "origin"
    site = client.get("/api/sites/alpha-base", headers=viewer).json()
    want = range_area(site["lon"], site["lat"], first["max_range_km"] * 1000,
                      first["min_range_km"] * 1000, n=90)  # fmt: skip
    assert shape(ring["geometry"]).symmetric_difference(want).area < 1e-9
    everything = client.get("/api/sites/alpha-base/range-rings", headers=viewer).json()
    assert len(everything["features"]) == len(classes) + 1
    r = client.get("/api/sites/alpha-base/range-rings?classes=nope", headers=viewer)
    assert r.status_code == 400 and "unknown missile class" in r.json()["detail"]
    assert client.get("/api/sites/nowhere/range-rings", headers=viewer).status_code == 404
    # the analysts' own table, as for the CLI
    table = tmp_path / "mine.csv"
    table.write_text("class,name,max_range_km,source\nx1,Example,500,our estimate\n")
    monkeypatch.setenv("SITEWATCH_MISSILE_TABLE", str(table))
    assert [c["id"] for c in client.get("/api/ranges/classes", headers=viewer).json()] == ["x1"]


def test_candidate_chip_of_a_run_not_on_the_server_says_where_to_triage(
    client: Any, web_env: Any
) -> None:
    h = web_env.auth("viewer")
    r = client.get("/api/candidates/cand-0/chip.png", headers=h)
    assert r.status_code == 404 and "is not on this server" in r.json()["detail"]
    assert "sitewatch search triage" in r.json()["detail"]
    assert client.get("/api/candidates/no-such/chip.png", headers=h).status_code == 404
    assert client.get("/api/candidates/cand-0/chip.png").status_code == 401


def test_site_landform_from_the_servers_dem(client: Any, web_env: Any, tmp_path: Any) -> None:
    """GET /api/sites/{id}/landform: 404 naming SITEWATCH_WEB_DEM without a DEM; with one, the
    site's elevation, slope and facing, its features, and whether it is mountainous."""
    import numpy as np
    import rasterio
    from fastapi.testclient import TestClient
    from pyproj import Transformer
    from rasterio.transform import from_origin

    from sitewatch.web.app import create_app
    from sitewatch.web.settings import WebSettings

    from .conftest import SITE_LAT, SITE_LON

    h = web_env.auth("viewer")
    r = client.get("/api/sites/alpha-base/landform", headers=h)
    assert r.status_code == 404 and "SITEWATCH_WEB_DEM" in r.json()["detail"]
    # a plane falling 0.5 m per m eastwards, 1,200 m high at the site, 16 km across
    x0, y0 = Transformer.from_crs("EPSG:4326", "EPSG:32652", always_xy=True).transform(
        SITE_LON, SITE_LAT
    )
    n, cell = 800, 20.0
    xs = x0 - 8000 + (np.arange(n) + 0.5) * cell
    z = np.tile(1200.0 - 0.5 * (xs - x0), (n, 1)).astype("float32")
    dem = tmp_path / "dem.tif"
    with rasterio.open(dem, "w", driver="GTiff", width=n, height=n, count=1, dtype="float32",
                       crs="EPSG:32652", transform=from_origin(x0 - 8000, y0 + 8000, cell, cell)) as ds:  # fmt: skip
        ds.write(z, 1)
    app = create_app(web_env.url, archive_root=web_env.archive, settings=WebSettings(dem=dem))
    with TestClient(app) as c:
        r = c.get("/api/sites/alpha-base/landform", headers=h)
        assert r.status_code == 200, r.text
        t = r.json()
        assert t["dem"] == "dem.tif" and t["mountain_class"] == 5
        assert t["site"]["slope_deg"] == pytest.approx(26.6, abs=0.2)
        assert t["site"]["facing_deg"] == pytest.approx(90, abs=2)
        assert t["lines"][0].startswith("at the site: 1,") and len(t["places"]) == len(
            t["features"]
        )
        assert c.get("/api/sites/alpha-base/landform?radius=0", headers=h).status_code == 422
        assert c.get("/api/sites/no-such/landform", headers=h).status_code == 404
        far = c.get("/api/sites/bravo-depot/landform", headers=h)  # 150 km off the DEM
        assert far.status_code == 422 and "does not reach" in far.json()["detail"]
        assert c.get("/api/sites/alpha-base/landform").status_code == 401
