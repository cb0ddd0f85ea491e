"""Network safety: SSRF guard on user-given STAC URLs, path traversal in tile/report/archive paths,
secrets never logged nor stored in plain text."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from sitewatch.errors import ArchiveError, ConfigError, SitewatchError
from sitewatch.imagery.sources.config import load_source_config, open_source, source_from_config
from sitewatch.imagery.sources.stac import StacSource
from sitewatch.network import UnsafeUrlError

AOI = (126.0, 38.0, 127.0, 39.0)
SECRETS = {
    "api_key": "sk-live-Zq8tHEADERSECRET41",
    "webhook": "whsec-W3bh00kSECRET-9",
    "smtp": "smtp-pw-S3cretPASSW0RD",
    "password": "user-pw-Corr3ctHorseBattery",
}


# --- a tiny STAC API on loopback ---------------------------------------------------------------


class _Stac(BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, str]]] = []

    def _json(self, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        type(self).seen.append(dict(self.headers))
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        if self.path.startswith("/search"):
            self._json({"type": "FeatureCollection", "features": [], "links": []})
            return
        self._json(
            {
                "type": "Catalog",
                "id": "t",
                "description": "t",
                "stac_version": "1.0.0",
                "conformsTo": [
                    "https://api.stacspec.org/v1.0.0/core",
                    "https://api.stacspec.org/v1.0.0/item-search",
                ],
                "links": [
                    {"rel": "self", "href": base},
                    {"rel": "root", "href": base},
                    {"rel": "search", "href": f"{base}/search", "method": "GET"},
                ],
            }
        )

    do_POST = do_GET  # noqa: N815 - the name http.server looks up

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def stac_api() -> Iterator[str]:
    _Stac.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stac)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# --- server-side request forgery ------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/stac",
        "http://localhost/stac",
        "http://10.1.2.3/v1",
        "http://192.168.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:9000/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0/",
        "https://user:pw@example.com/",
        "ftp://example.com/catalog.json",
    ],
)
def test_user_stac_urls_to_internal_addresses_are_refused(url: str) -> None:
    with pytest.raises(UnsafeUrlError):
        open_source(url).search(AOI)


def test_remote_static_catalog_and_asset_hrefs_are_checked() -> None:
    with pytest.raises(UnsafeUrlError, match="static STAC catalog"):
        StacSource("http://127.0.0.1:1/catalog.json").search(AOI)
    src = StacSource("/nowhere/catalog.json")
    with pytest.raises(UnsafeUrlError, match="asset URL"):
        src._asset_href("http://169.254.169.254/x.tif")
    assert src._asset_href("/data/x.tif") == "/data/x.tif"  # local files are not URLs


def test_loopback_server_needs_an_explicit_opt_in(
    stac_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(UnsafeUrlError, match="allow_private"):
        open_source(stac_api).search(AOI)
    assert _Stac.seen == []  # refused before any request left
    assert open_source(stac_api, allow_private=True).search(AOI) == []
    assert _Stac.seen
    toml = tmp_path / "sources.toml"
    toml.write_text(
        f'[sources.lan]\ntype = "stac-api"\nurl = "{stac_api}"\n'
        f'[sources.open]\ntype = "stac-api"\nurl = "{stac_api}"\nallow_private = true\n'
    )
    monkeypatch.setenv("SITEWATCH_SOURCES_FILE", str(toml))
    with pytest.raises(UnsafeUrlError):
        open_source("lan").search(AOI)
    assert open_source("open").search(AOI) == []
    toml.write_text(f'[sources.x]\ntype = "stac-api"\nurl = "{stac_api}"\nallow_private = "yes"\n')
    with pytest.raises(ConfigError, match="allow_private must be true or false"):
        load_source_config(toml)


def test_cli_allow_private_flag(stac_api: str, sw: Any) -> None:
    refused = sw("imagery", "search", "--bbox", "126,38,127,39", "--source", stac_api)
    assert refused.code == 2 and "request forgery" in refused.err
    ok = sw(
        "imagery",
        "search",
        "--bbox",
        "126,38,127,39",
        "--source",
        stac_api,
        "--allow-private",
        "--json",
    )
    assert "request forgery" not in ok.err
    assert ok.code == 0 or "no scenes found" in ok.err, ok.err


# --- path traversal ------------------------------------------------------------------------------


def _chip(day: int = 1) -> Any:
    import numpy as np
    from affine import Affine

    from sitewatch.imagery.chips import Chip
    from sitewatch.imagery.scene import Scene

    scene = Scene(
        id=f"s-{day}",
        sensor="synthetic",
        datetime=datetime(2024, 3, day, tzinfo=UTC),
        assets={"red": "r.tif"},
        crs="EPSG:32652",
        gsd=2.0,
    )
    data = np.full((1, 16, 16), 100 * day, dtype="uint16")
    return Chip(
        data=data,
        bands=("red",),
        crs="EPSG:32652",
        transform=Affine(2.0, 0, 500000, 0, -2.0, 4450000),
        valid=np.ones((16, 16), dtype=bool),
        scene=scene,
    )


@pytest.mark.parametrize("site_id", ["..", ".", "../../etc", "/etc/passwd", "%2e%2e", "a/../../b"])
def test_archive_site_folders_stay_inside(tmp_path: Path, site_id: str) -> None:
    from sitewatch.imagery.archive import Archive

    root = tmp_path / "archive"
    archive = Archive(root)
    folder = archive.site_dir(site_id)
    assert folder.resolve().is_relative_to(root.resolve()) and folder.resolve() != root.resolve()
    stored = archive.add_chip(site_id, _chip())
    assert stored.path.resolve().is_relative_to(root.resolve())
    assert [p for p in tmp_path.iterdir()] == [root]  # nothing written beside the archive


def test_archive_refuses_hrefs_and_symlinks_out(tmp_path: Path) -> None:
    from sitewatch.imagery.archive import Archive

    root = tmp_path / "archive"
    archive = Archive(root)
    chip = archive.add_chip("site", _chip())
    secret = tmp_path / "secret.tif"
    secret.write_bytes(b"outside")
    item = json.loads(chip.item_path.read_text())
    for href in ("../../../secret.tif", str(secret), "./../../../secret.tif"):
        item["assets"]["image"]["href"] = href
        chip.item_path.write_text(json.dumps(item))
        with pytest.raises(ArchiveError, match="outside the archive"):
            archive.chips("site")
    # a chip file replaced by a symlink to a file outside the archive
    archive = Archive(tmp_path / "archive2")
    chip = archive.add_chip("site", _chip())
    chip.path.unlink()
    chip.path.symlink_to(secret)
    with pytest.raises(ArchiveError, match="symlink"):
        archive.chips("site")
    # a whole site folder that is a symlink out of the archive
    outside = tmp_path / "elsewhere"
    Archive(outside).add_chip("site", _chip())
    archive3 = Archive(tmp_path / "archive3")
    archive3.root.mkdir()
    (archive3.root / "site").symlink_to(outside / "site")
    with pytest.raises(ArchiveError):
        archive3.chips("site")


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, dict[str, str], Path]]:
    from argon2 import PasswordHasher
    from fastapi.testclient import TestClient

    from sitewatch.catalog.models import Site
    from sitewatch.catalog.store import Catalog
    from sitewatch.imagery.archive import Archive
    from sitewatch.web.app import create_app
    from sitewatch.web.users import UserStore

    tmp_path = tmp_path_factory.mktemp("web")
    url = f"sqlite:///{tmp_path / 'c.db'}"
    archive = Archive(tmp_path / "archive")
    archive.add_chip("site", _chip())
    (tmp_path / "secret.txt").write_text("TOP SECRET FILE")
    with Catalog(url, actor="t") as cat:
        cat.add_site(Site(id="site", name="Site", lon=129.0, lat=40.2))
        store = UserStore.for_catalog(cat, hasher=PasswordHasher(time_cost=1, memory_cost=1024))
        store.add("ana", SECRETS["password"], "admin")
        token = store.create_token("ana", "t")[1]
    app = create_app(url, archive_root=archive.root)
    with TestClient(app) as client:
        yield client, {"Authorization": f"Bearer {token}"}, tmp_path


@pytest.mark.parametrize(
    "path",
    [
        "/api/tiles/../../secret.txt/x/0/0/0.png",
        "/api/tiles/%2e%2e/%2e%2e/0/0/0.png",
        "/api/tiles/site/..%2F..%2Fsecret.txt/0/0/0.png",
        "/api/tiles/site/%2e%2e%2f%2e%2e%2fsecret.txt/0/0/0.png",
        "/api/tiles/%2Fetc%2Fpasswd/x/0/0/0.png",
        "/api/tiles/site/..%5C..%5Csecret.txt/0/0/0.png",
        "/api/sites/..%2F..%2Fsecret.txt/imagery",
        "/api/sites/%2e%2e/imagery",
        "/api/reports/..%2F..%2Fsecret.txt/download",
        "/api/reports/%2e%2e%2f%2e%2e%2fsecret.txt/download",
        "/api/reports/%2Fetc%2Fpasswd/download",
        "/static/..%2F..%2F..%2Fsecret.txt",
        "/static/%2e%2e/%2e%2e/%2e%2e/secret.txt",
    ],
)
def test_web_paths_cannot_traverse(web: tuple[Any, dict[str, str], Path], path: str) -> None:
    client, auth, _ = web
    resp = client.get(path, headers=auth)
    assert resp.status_code in (400, 404, 405, 422), (path, resp.status_code)
    assert b"TOP SECRET" not in resp.content and b"root:" not in resp.content


def test_web_tile_of_a_real_chip_still_works(web: tuple[Any, dict[str, str], Path]) -> None:
    client, auth, _ = web
    chips = client.get("/api/sites/site/imagery", headers=auth)
    assert chips.status_code == 200, chips.text


# --- secrets -------------------------------------------------------------------------------------


def test_secrets_never_logged(
    stac_api: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    web: tuple[Any, dict[str, str], Path],
) -> None:
    from sitewatch.catalog.models import Alert, Site
    from sitewatch.monitor.sinks import deliver, sink_from_config

    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "pystac_client", "sitewatch", "httpx", "rasterio"):
        caplog.set_level(logging.DEBUG, logger=name)  # restored after the test
    # a provider key in sources.toml, sent to a STAC API
    toml = tmp_path / "sources.toml"
    toml.write_text(
        f'[sources.prov]\ntype = "stac-api"\nurl = "{stac_api}"\nallow_private = true\n'
        f'headers = {{ "X-Api-Key" = "{SECRETS["api_key"]}" }}\n'
    )
    monkeypatch.setenv("SITEWATCH_SOURCES_FILE", str(toml))
    src = source_from_config("prov", load_source_config(toml)["prov"])
    assert src.search(AOI) == []
    assert any(h.get("X-Api-Key") == SECRETS["api_key"] for h in _Stac.seen)
    repr(src), src.describe()
    # webhook secret and SMTP password from the environment; deliveries fail (nothing listens)
    monkeypatch.setenv("HOOK_SECRET", SECRETS["webhook"])
    monkeypatch.setenv("SMTP_PW", SECRETS["smtp"])
    hook = sink_from_config(
        {
            "type": "webhook",
            "url": "http://127.0.0.1:9/h",
            "secret_env": "HOOK_SECRET",
            "allow_private": True,
            "timeout_s": 0.5,
        }
    )
    mail = sink_from_config(
        {
            "type": "email",
            "host": "127.0.0.1",
            "port": 9,
            "sender": "a@b.org",
            "to": ["c@d.org"],
            "username": "u",
            "password_env": "SMTP_PW",
        }
    )
    site = Site(id="s", name="S", lon=1.0, lat=2.0)
    alert = Alert(id="a1", site_id="s", rule="r", message="m", key="k", severity="critical")
    result = deliver([(alert, site)], [hook, mail])
    assert len(result.failed) == 2
    # the web app: a login with the password, a token, a bad login
    client, auth, _ = web
    assert client.get("/api/sites", headers=auth).status_code == 200
    client.post("/api/auth/login", json={"username": "ana", "password": SECRETS["password"]})
    client.post("/api/auth/login", json={"username": "ana", "password": SECRETS["password"] + "x"})
    token = auth["Authorization"].split()[1]
    logged = caplog.text + "".join(
        repr(r.args) + repr(getattr(r, "__dict__", {})) for r in caplog.records
    )
    out, err = capfd.readouterr()
    assert caplog.records, "nothing was logged: the test would prove nothing"
    for what, secret in {**SECRETS, "token": token}.items():
        assert secret not in logged, f"{what} was logged"
        assert secret not in out + err, f"{what} was printed"
        assert secret not in repr(hook) + repr(mail)


def test_secrets_not_stored_in_plain_text(web: tuple[Any, dict[str, str], Path]) -> None:
    from sitewatch.catalog.store import Catalog
    from sitewatch.web.users import UserStore

    client, auth, tmp = web
    token = auth["Authorization"].split()[1]
    login = client.post(
        "/api/auth/login", json={"username": "ana", "password": SECRETS["password"]}
    )
    from sitewatch.web.auth import SESSION_COOKIE

    # the CSRF token is not a credential (readable by the page, by design); the session one is
    cookies = [c for c in client.cookies.jar if c.name == SESSION_COOKIE]
    assert cookies
    with Catalog(f"sqlite:///{tmp / 'c.db'}", actor="t") as cat:
        store = UserStore.for_catalog(cat)
        second = store.create_token("ana", "second")[1]
        cat.engine.dispose()
    blob = b"".join(p.read_bytes() for p in tmp.glob("c.db*"))
    assert len(blob) > 10_000
    secrets = [SECRETS["password"], token, second] + [c.value for c in cookies if c.value]
    assert login.status_code in (200, 201, 204), login.text
    for secret in secrets:
        for encoded in (secret.encode(), secret.encode("utf-16-le")):
            assert encoded not in blob, "a secret is stored in plain text in the catalog"


@pytest.mark.parametrize(
    "url", ["https://user:hunter2@example.com/stac", "ftp://user:hunter2@example.com/c.json"]
)
def test_url_credentials_are_not_echoed(url: str) -> None:
    with pytest.raises(SitewatchError) as info:
        open_source(url).search(AOI)
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    "href", ["https://example.com/a/..", "https://example.com/.", "https://e.com/%2e%2e"]
)
def test_cached_asset_names_stay_in_the_cache(
    tmp_path: Path, href: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sitewatch.imagery import archive as archive_mod

    written: list[Path] = []
    monkeypatch.setattr(archive_mod, "download", lambda url, dest, **kw: written.append(dest))
    scene = _chip().scene
    scene = type(scene)(**{**scene.__dict__, "assets": {"red": href}})
    archive_mod.cache_scene(scene, tmp_path / "cache")
    (dest,) = written
    assert dest.resolve().parent == (tmp_path / "cache" / scene.id).resolve()
