"""Tiles of archived chips: rendering, lookup by id only (no paths), caching."""

from __future__ import annotations

import io
from typing import Any

import morecantile
import numpy as np
import pytest
from PIL import Image

from .conftest import SITE_LAT, SITE_LON

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

TMS = morecantile.tms.get("WebMercatorQuad")


def _png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))


def test_imagery_list_and_tiles(client: Any, web_env: Any) -> None:
    h = web_env.auth("viewer")
    chips = client.get("/api/sites/alpha-base/imagery", headers=h).json()
    assert [c["item"] for c in chips] == web_env.chip_items  # oldest first
    assert chips[0]["bands"] == ["blue", "green", "red"] and chips[0]["resolution"] == 2.0
    t = TMS.tile(SITE_LON, SITE_LAT, 17)
    url = chips[1]["tiles"].format(z=t.z, x=t.x, y=t.y)
    r = client.get(url, headers=h)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    img = _png(r.content)
    assert img.shape == (256, 256, 4)
    opaque = img[..., 3] > 0
    assert opaque.mean() > 0.2  # the chip covers part of the tile
    assert img[..., :3][opaque].std() > 10  # stretched, not flat
    # the two dates differ (different random scenes)
    other = _png(client.get(chips[0]["tiles"].format(z=t.z, x=t.x, y=t.y), headers=h).content)
    assert np.abs(other[..., :3].astype(int) - img[..., :3].astype(int))[opaque].mean() > 5


def test_tile_by_scene_id_and_outside(client: Any, web_env: Any) -> None:
    h = web_env.auth("viewer")
    t = TMS.tile(SITE_LON, SITE_LAT, 17)
    r = client.get(f"/tiles/alpha-base/synthetic-2024-03-01/{t.z}/{t.x}/{t.y}.png", headers=h)
    assert r.status_code == 200
    far = TMS.tile(10.0, 50.0, 17)
    r = client.get(
        f"/tiles/alpha-base/{web_env.chip_items[0]}/{far.z}/{far.x}/{far.y}.png", headers=h
    )
    assert r.status_code == 200 and (_png(r.content)[..., 3] == 0).all()


@pytest.mark.parametrize(
    ("site", "item"),
    [
        ("alpha-base", "nope"),
        ("alpha-base", "..%2F..%2Fcatalog.db"),
        ("..", "catalog.db"),
        ("alpha-base", "%2Fetc%2Fpasswd"),
        ("bravo-depot", "synthetic-2024-03-01-2m"),
    ],
)
def test_no_path_reaches_outside_the_archive(
    client: Any, web_env: Any, site: str, item: str
) -> None:
    r = client.get(f"/tiles/{site}/{item}/17/1/1.png", headers=web_env.auth("viewer"))
    assert r.status_code in (404, 422)
    assert r.headers["content-type"].startswith("application/json")


def test_tiles_need_login_and_valid_coordinates(client: Any, web_env: Any) -> None:
    item = web_env.chip_items[0]
    assert client.get(f"/tiles/alpha-base/{item}/3/1/1.png").status_code == 401
    r = client.get(f"/tiles/alpha-base/{item}/3/9/1.png", headers=web_env.auth("viewer"))
    assert r.status_code == 400


def test_renderer_caches_tiles(web_env: Any) -> None:
    from sitewatch.web.tiles import TileRenderer

    r = TileRenderer(web_env.archive, cache_size=2)
    t = TMS.tile(SITE_LON, SITE_LAT, 16)
    first = r.tile("alpha-base", web_env.chip_items[0], t.z, t.x, t.y)
    assert r.tile("alpha-base", web_env.chip_items[0], t.z, t.x, t.y) is first
    for dx in (1, 2):
        r.tile("alpha-base", web_env.chip_items[0], t.z, t.x + dx, t.y)
    assert r.tile("alpha-base", web_env.chip_items[0], t.z, t.x, t.y) is not first  # evicted


def test_a_chip_without_blue_is_drawn_in_false_colour_and_says_so(web_env: Any) -> None:
    from dataclasses import replace

    from fastapi.testclient import TestClient

    from sitewatch.imagery.archive import Archive
    from sitewatch.web.app import create_app

    from .conftest import make_chip

    base = make_chip(25, 25)
    data = np.full_like(base.data, 500)
    data[2, 30:60, 30:60] = 4000  # bright in the near infrared only: vegetation
    scene = replace(base.scene, id="cir-2024-03-25", assets={"green": "g", "red": "r", "nir": "n"},
                    sensor="landsat-8")  # fmt: skip
    chip = replace(base, data=data, bands=("green", "red", "nir"), scene=scene)
    item = Archive(web_env.archive).add_chip("alpha-base", chip).item_id
    app = create_app(web_env.url, archive_root=web_env.archive)
    with TestClient(app) as client:
        h = web_env.auth("viewer")
        chips = {
            c["item"]: c for c in client.get("/api/sites/alpha-base/imagery", headers=h).json()
        }
        # a Landsat-like chip without blue showed its green band in grey
        assert chips[item]["colours"].startswith("false colour (near infrared, red, green")
        assert chips[web_env.chip_items[0]]["colours"] == ""  # true colour needs no words
        # who to credit, for the map's attribution
        assert chips[item]["credit"] == "USGS/NASA Landsat (public domain)"
        assert chips[web_env.chip_items[0]]["credit"] == ""  # a synthetic sensor
        t = TMS.tile(SITE_LON, SITE_LAT, 16)
        img = _png(client.get(chips[item]["tiles"].format(z=t.z, x=t.x, y=t.y), headers=h).content)
    opaque = img[..., 3] > 0
    red, green, blue = (img[..., i].astype(int) for i in range(3))
    vegetation = opaque & (red > 200)
    assert vegetation.sum() > 20  # the near-infrared square, drawn red
    assert (green[vegetation] < 100).all() and (blue[vegetation] < 100).all()
