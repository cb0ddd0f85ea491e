"""The server's fast paths keep the semantics: remembered logins, tile caching and ETags, workers."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import morecantile
import pytest

from sitewatch.catalog.store import Catalog
from sitewatch.errors import AuthError
from sitewatch.web.users import UserStore

from .conftest import SITE_LAT, SITE_LON

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

TMS = morecantile.tms.get("WebMercatorQuad")


def _fast_store(catalog: Catalog, cache_s: float) -> UserStore:
    from argon2 import PasswordHasher

    hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    return UserStore.for_catalog(catalog, hasher=hasher, cache_s=cache_s)


def test_remembered_lookups_end_with_changes_made_through_the_store(catalog: Catalog) -> None:
    store = _fast_store(catalog, cache_s=60.0)
    store.add("ana", "long-enough", "analyst")
    token, secret = store.create_token("ana", "script")
    assert store.cached_token_user(secret) is None  # nothing remembered before a lookup
    assert store.user_for_token(secret).username == "ana"
    assert store.cached_token_user(secret) == store.get("ana")
    store.revoke_token(token.id)
    assert store.cached_token_user(secret) is None
    with pytest.raises(AuthError, match="unknown API token"):
        store.user_for_token(secret)

    session, csrf = store.create_session("ana", hours=1)
    assert store.session(session) == (store.get("ana"), csrf)
    assert store.cached_session(session) == (store.get("ana"), csrf)
    store.end_session(session)
    with pytest.raises(AuthError, match="session has ended"):
        store.session(session)

    _, secret = store.create_token("ana", "again")
    store.user_for_token(secret)
    store.remove("ana")
    with pytest.raises(AuthError):
        store.user_for_token(secret)


def test_changes_made_elsewhere_show_within_the_cache_time(catalog: Catalog) -> None:
    store = _fast_store(catalog, cache_s=0.3)
    cli = _fast_store(catalog, cache_s=0.0)  # e.g. `sitewatch users token --revoke` meanwhile
    store.add("bot", "long-enough", "analyst")
    token, secret = store.create_token("bot", "nightly")
    assert store.user_for_token(secret).username == "bot"
    cli.revoke_token(token.id)
    with pytest.raises(AuthError):  # a store without a cache asks the database every time
        cli.user_for_token(secret)
    time.sleep(0.35)
    with pytest.raises(AuthError, match="unknown API token"):
        store.user_for_token(secret)


def test_a_remembered_session_still_expires(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sitewatch.catalog.models import utcnow

    store = _fast_store(catalog, cache_s=3600.0)
    store.add("ana", "long-enough")
    session, _ = store.create_session("ana", hours=1)
    store.session(session)
    later = utcnow() + timedelta(hours=2)
    monkeypatch.setattr("sitewatch.web.users.utcnow", lambda: later)
    assert store.cached_session(session) is None
    with pytest.raises(AuthError, match="session has ended"):
        store.session(session)


def test_removing_a_user_through_the_api_locks_out_its_token_at_once(
    client: Any, web_env: Any
) -> None:
    h = web_env.auth("viewer")
    assert client.get("/api/sites", headers=h).status_code == 200  # now remembered
    assert client.delete("/api/users/viewer", headers=web_env.auth("admin")).status_code == 204
    assert client.get("/api/sites", headers=h).status_code == 401


def test_a_token_revoked_by_another_process_stops_within_the_cache_time(web_env: Any) -> None:
    from fastapi.testclient import TestClient

    from sitewatch.web.app import create_app
    from sitewatch.web.settings import WebSettings

    app = create_app(
        web_env.url, archive_root=web_env.archive, settings=WebSettings(auth_cache_s=0.3)
    )
    h = web_env.auth("analyst")
    with TestClient(app) as client:
        assert client.get("/api/sites", headers=h).status_code == 200
        with Catalog(web_env.url) as cat:
            users = UserStore.for_catalog(cat)
            for token in users.list_tokens("analyst"):
                users.revoke_token(token.id)
        time.sleep(0.35)
        assert client.get("/api/sites", headers=h).status_code == 401


def test_remembered_sessions_keep_the_csrf_check(client: Any, web_env: Any) -> None:
    r = client.post(
        "/api/auth/login", json={"username": "analyst", "password": web_env.passwords["analyst"]}
    )
    csrf = r.json()["csrf"]
    assert client.get("/api/auth/me").status_code == 200  # the session is now remembered
    site = {"name": "Csrf Check", "lon": 126.0, "lat": 39.0}
    assert client.post("/api/sites", json=site).status_code == 403
    r = client.post("/api/sites", json=site, headers={"X-CSRF-Token": "wrong"})
    assert r.status_code == 403
    assert client.post("/api/sites", json=site, headers={"X-CSRF-Token": csrf}).status_code == 201


def test_tiles_have_etags_and_answer_304(client: Any, web_env: Any) -> None:
    h = web_env.auth("viewer")
    t = TMS.tile(SITE_LON, SITE_LAT, 17)
    first, second = (f"/tiles/alpha-base/{i}/{t.z}/{t.x}/{t.y}.png" for i in web_env.chip_items)
    r = client.get(first, headers=h)
    etag = r.headers["etag"]
    assert r.status_code == 200 and r.headers["cache-control"] == "private, max-age=3600"
    again = client.get(first, headers=h)  # from the cache: same bytes, same tag
    assert again.content == r.content and again.headers["etag"] == etag
    for sent in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        r304 = client.get(first, headers={**h, "If-None-Match": sent})
        assert r304.status_code == 304 and r304.content == b"" and r304.headers["etag"] == etag
    assert client.get(first, headers={**h, "If-None-Match": '"other"'}).status_code == 200
    other_date = client.get(second, headers=h).headers["etag"]
    next_tile = f"/tiles/alpha-base/{web_env.chip_items[0]}/{t.z}/{t.x + 1}/{t.y}.png"
    other_tile = client.get(next_tile, headers=h).headers["etag"]
    assert len({etag, other_date, other_tile}) == 3
    assert client.get(first, headers={"If-None-Match": etag}).status_code == 401


def test_tile_cache_follows_the_chip_content(web_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from sitewatch.imagery.archive import Archive
    from sitewatch.web.tiles import TileRenderer

    from .conftest import make_chip

    monkeypatch.setattr("sitewatch.web.tiles._LIST_TTL_S", 0.0)  # list the archive every time
    r = TileRenderer(web_env.archive)
    t = TMS.tile(SITE_LON, SITE_LAT, 17)
    item = web_env.chip_items[0]
    before = r.render("alpha-base", item, t.z, t.x, t.y)
    assert r.render("alpha-base", item, t.z, t.x, t.y).png is before.png  # cached
    again = Archive(web_env.archive).add_chip("alpha-base", make_chip(1, seed=99))
    assert again.item_id == item  # the same item, archived anew with other pixels
    after = r.render("alpha-base", item, t.z, t.x, t.y)
    assert after.png != before.png and after.etag != before.etag
    r.close()


def test_cached_tiles_are_answered_from_memory(web_env: Any) -> None:
    from sitewatch.web.tiles import TileRenderer

    r = TileRenderer(web_env.archive)
    t = TMS.tile(SITE_LON, SITE_LAT, 16)
    item = web_env.chip_items[1]
    assert r.lookup("alpha-base", item, t.z, t.x, t.y) is None
    rendered = r.render("alpha-base", item, t.z, t.x, t.y)
    assert r.lookup("alpha-base", item, t.z, t.x, t.y) == rendered
    assert r.lookup("alpha-base", "no-such-item", t.z, t.x, t.y) is None
    empty = TileRenderer(web_env.archive, cache_size=0)
    empty.render("alpha-base", item, t.z, t.x, t.y)
    assert empty.lookup("alpha-base", item, t.z, t.x, t.y) is None
    r.close()
    empty.close()


def test_serve_with_workers_hands_the_app_factory_to_uvicorn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    from sitewatch.cli.main import main
    from sitewatch.web.app import create_app

    monkeypatch.delenv("SITEWATCH_ARCHIVE_DIR", raising=False)  # restored after the test
    calls: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    url = f"sqlite:///{tmp_path / 'c.db'}"
    Catalog(url).close()
    main(["--db", url, "serve", "--port", "0", "--workers", "3", "--archive", str(tmp_path)])
    (target, kw) = calls[0]
    assert target == "sitewatch.web.app:create_app"
    assert kw["factory"] is True and kw["workers"] == 3
    app = create_app()  # what each worker process does, from the environment set by serve
    assert app.state.sitewatch.catalog_url == url
    assert app.state.sitewatch.archive_root == tmp_path.resolve()
    main(["--db", url, "serve", "--port", "0"])  # one process: the app object itself
    assert calls[1][0] is not None and not isinstance(calls[1][0], str)
    assert "workers" not in calls[1][1]


def test_the_thread_limits_come_from_the_settings(web_env: Any) -> None:
    from anyio import to_thread
    from fastapi.testclient import TestClient

    from sitewatch.web.app import create_app
    from sitewatch.web.settings import WebSettings

    settings = WebSettings(threads=3, tile_threads=2)
    app = create_app(web_env.url, archive_root=web_env.archive, settings=settings)
    with TestClient(app) as client:
        assert app.state.sitewatch.tile_limiter.total_tokens == 2
        t = TMS.tile(SITE_LON, SITE_LAT, 17)
        tile = f"/tiles/alpha-base/{web_env.chip_items[0]}/{t.z}/{t.x}/{t.y}.png"
        assert client.get(tile, headers=web_env.auth("viewer")).status_code == 200
        limit = client.portal.call(lambda: to_thread.current_default_thread_limiter().total_tokens)  # type: ignore[union-attr]
    assert limit == 3


def test_serve_says_when_no_one_can_log_in_or_the_catalog_is_new(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import uvicorn

    from sitewatch.catalog.models import Site
    from sitewatch.cli.main import main

    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: None)
    # a typo in --db: a new, empty catalog, no users; the server showed a login no password opened
    url = f"sqlite:///{tmp_path / 'typo.db'}"
    main(["--db", url, "serve", "--port", "0"])
    err = " ".join(capsys.readouterr().err.split())
    assert "no catalog was at" in err and "typo.db" in err
    assert "no user can log in yet: add one first with `sitewatch users add NAME" in err
    assert "the catalog holds no sites yet" in err
    with Catalog(url) as cat:
        UserStore.for_catalog(cat).add("ana", "a long password", "analyst", by="test")
        cat.add_site(Site(id="s", name="S", lon=126.0, lat=39.0))
    main(["--db", url, "serve", "--port", "0"])
    err = capsys.readouterr().err
    assert "no catalog was at" not in err and "no user" not in err and "no sites" not in err
