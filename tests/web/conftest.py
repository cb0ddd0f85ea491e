"""Fixtures of the web tests: a catalog with sites, records and users, an archive with two chips."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from pyproj import Transformer
from shapely.geometry import Point, box

SITE_LON, SITE_LAT = 126.5, 40.2


@dataclass
class WebEnv:
    """What the web tests get: the catalog URL, archive folder and a token per role."""

    url: str
    archive: Path
    tokens: dict[str, str]
    passwords: dict[str, str]
    chip_items: list[str]

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


def make_chip(day: int, seed: int, *, size: int = 96, res: float = 2.0):  # type: ignore[no-untyped-def]
    """A synthetic 3-band chip centred on the test site (UTM 52N), on the given day of 2024."""
    from sitewatch.imagery.chips import Chip
    from sitewatch.imagery.scene import Scene

    to_utm = Transformer.from_crs("EPSG:4326", "EPSG:32652", always_xy=True)
    cx, cy = to_utm.transform(SITE_LON, SITE_LAT)
    x0, y0 = round(cx - size * res / 2), round(cy + size * res / 2)
    rng = np.random.default_rng(seed)
    data = rng.integers(200, 3000, size=(3, size, size)).astype("uint16")
    data[:, size // 3 : size // 2, size // 3 : size // 2] = 4000  # a bright building
    when = datetime(2024, 3, day, 2, 0, tzinfo=UTC)
    scene = Scene(
        id=f"synthetic-2024-03-{day:02d}",
        sensor="synthetic",
        datetime=when,
        assets={"blue": "b.tif", "green": "g.tif", "red": "r.tif"},
        crs="EPSG:32652",
        gsd=res,
        sun_azimuth=150.0,
        sun_elevation=45.0,
    )
    return Chip(
        data=data,
        bands=("blue", "green", "red"),
        crs="EPSG:32652",
        transform=Affine(res, 0, x0, 0, -res, y0),
        valid=np.ones((size, size), dtype=bool),
        scene=scene,
    )


def populate(url: str, archive: Path) -> list[str]:
    """Sites, features, observations, a change event, alerts and candidates; two archived chips."""
    from sitewatch.catalog.models import (
        Alert,
        Candidate,
        ChangeEvent,
        Feature,
        Observation,
        Site,
    )
    from sitewatch.catalog.store import Catalog
    from sitewatch.imagery.archive import Archive

    with Catalog(url, actor="fixture") as cat:
        aoi = box(SITE_LON - 0.01, SITE_LAT - 0.01, SITE_LON + 0.01, SITE_LAT + 0.01)
        cat.add_site(
            Site(
                id="alpha-base",
                name="Alpha Base",
                lon=SITE_LON,
                lat=SITE_LAT,
                aoi=aoi,
                country="KP",
                category="missile_operating_base",
                tags=("ugf",),
            )
        )
        cat.add_site(
            Site(id="bravo-depot", name="Bravo Depot", lon=127.3, lat=39.1, status="confirmed")
        )
        cat.add_feature(
            Feature(
                id="f-portal",
                site_id="alpha-base",
                kind="ugf_portal",
                geometry=Point(SITE_LON, SITE_LAT),
            )
        )
        cat.add_observation(
            Observation(
                id="obs-1",
                site_id="alpha-base",
                acquired=datetime(2024, 3, 1, 2, tzinfo=UTC),
                sensor="synthetic",
                gsd_m=2.0,
                sun_azimuth=150.0,
                sun_elevation=45.0,
                phase="active_construction",
            )
        )
        cat.add_change_event(
            ChangeEvent(
                id="ch-1",
                site_id="alpha-base",
                before=datetime(2024, 3, 1, tzinfo=UTC),
                after=datetime(2024, 3, 20, tzinfo=UTC),
                method="cva",
                area_m2=1200.0,
                geometry=box(SITE_LON - 0.002, SITE_LAT - 0.002, SITE_LON, SITE_LAT),
                details={
                    "kinds": {"within_built_or_bare": 300.0, "vegetation_to_built_or_bare": 900.0}
                },
            )
        )
        cat.add_alert(
            Alert(
                id="al-1", site_id="alpha-base", rule="change", message="new spoil pile", key="k1"
            )
        )
        cat.add_candidates(
            Candidate(
                id=f"cand-{i}",
                run_id="run1",
                geometry=box(125.0 + i * 0.05, 39.0, 125.02 + i * 0.05, 39.02),
                score=0.9 - i * 0.1,
                rank=i + 1,
            )
            for i in range(3)
        )
    arc = Archive(archive)
    return [arc.add_chip("alpha-base", make_chip(d, d)).item_id for d in (1, 20)]


@pytest.fixture(scope="session")
def web_template(tmp_path_factory: pytest.TempPathFactory) -> WebEnv:
    """The populated catalog and archive, made once; each test gets a copy."""
    from argon2 import PasswordHasher

    from sitewatch.catalog.store import Catalog
    from sitewatch.web.users import UserStore

    root = tmp_path_factory.mktemp("web-template")
    url = f"sqlite:///{root / 'catalog.db'}"
    archive = root / "archive"
    items = populate(url, archive)
    tokens, passwords = {}, {}
    fast = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)  # cheap hashes for tests
    with Catalog(url, actor="fixture") as cat:
        store = UserStore.for_catalog(cat, hasher=fast)
        for role in ("viewer", "analyst", "admin"):
            passwords[role] = f"{role}-password-1"
            store.add(role, passwords[role], role)
            tokens[role] = store.create_token(role, "tests")[1]
    return WebEnv(url, archive, tokens, passwords, items)


@pytest.fixture
def web_env(web_template: WebEnv, tmp_path: Path) -> WebEnv:
    src = Path(web_template.url.removeprefix("sqlite:///"))
    for f in src.parent.glob(src.name + "*"):
        shutil.copy2(f, tmp_path / f.name)
    shutil.copytree(web_template.archive, tmp_path / "archive")
    return WebEnv(
        f"sqlite:///{tmp_path / src.name}",
        tmp_path / "archive",
        web_template.tokens,
        web_template.passwords,
        web_template.chip_items,
    )


@pytest.fixture
def client(web_env: WebEnv) -> Iterator[object]:
    from fastapi.testclient import TestClient

    from sitewatch.web.app import create_app

    app = create_app(web_env.url, archive_root=web_env.archive)
    with TestClient(app) as c:
        yield c


# --- end-to-end: a live server and headless Chromium ---------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(
    os.environ.get("SITEWATCH_E2E_ARTIFACTS")
    or Path(__file__).resolve().parents[2] / "test-artifacts" / "e2e"
)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when == "call":
        item.stash[_FAILED] = report.failed


_FAILED = pytest.StashKey[bool]()


@dataclass
class LiveServer:
    url: str
    env: WebEnv


@pytest.fixture
def live_server(web_env: WebEnv) -> Iterator[LiveServer]:
    import socket
    import threading
    import time

    import uvicorn

    from sitewatch.web.app import create_app

    app = create_app(web_env.url, archive_root=web_env.archive)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    yield LiveServer(f"http://127.0.0.1:{port}", web_env)
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    if not CHROMIUM.exists():
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{CHROMIUM} is missing: CI must install Debian's chromium package")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1280, "height": 860},
        )
        yield context
        context.close()


@pytest.fixture
def page(
    browser: object, live_server: LiveServer, request: pytest.FixtureRequest
) -> Iterator[object]:
    """A fresh page (no cookies); a screenshot is saved in test-artifacts/e2e/ if the test fails."""
    browser.clear_cookies()  # type: ignore[attr-defined]
    pg = browser.new_page()  # type: ignore[attr-defined]
    pg.set_default_timeout(10_000)
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    if request.node.stash.get(_FAILED, False):
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = request.node.name.replace("/", "_").replace("[", "_").replace("]", "")
        pg.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    pg.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
