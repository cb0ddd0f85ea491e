"""StacSource over static catalogs and a loopback STAC API; TOML-configured sources."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sitewatch.config import get_settings
from sitewatch.errors import ConfigError, ImageryError, SourceError
from sitewatch.imagery import ChipGrid, LocalSource, StacSource, cut_chip, open_source
from sitewatch.imagery.sources.config import load_source_config

from .conftest import DEFAULT_CENTRE, RasterFactory, ServerState, stac_item

AOI = (14.99, 44.99, 15.01, 45.01)


def test_static_catalog_search_and_read(make_static_catalog: Callable[..., Path]) -> None:
    path = make_static_catalog(clouds=[5.0, 60.0, 10.0])
    with StacSource(path) as src:
        assert src.kind == "stac-static"
        scenes = src.search(AOI)
        assert [s.id for s in scenes] == ["scene-20200301", "scene-20200601", "scene-20200901"]
        assert [s.id for s in src.search(AOI, max_cloud=20)] == ["scene-20200301", "scene-20200901"]
        assert [s.id for s in src.search(AOI, "2020-05-01", "2020-06-30")] == ["scene-20200601"]
        assert src.search((100.0, 0.0, 101.0, 1.0)) == []
        assert src.search(AOI, min_gsd=20.0) == []
        s = scenes[0]
        assert s.bands == ("blue", "green", "red", "nir")
        assert s.crs == "EPSG:32633"
        assert (s.sun_azimuth, s.sun_elevation, s.gsd) == (150.0, 40.0, 10.0)
        chip = cut_chip(src, s, ChipGrid.around(*DEFAULT_CENTRE, 500.0, 10.0))
        assert chip.coverage == 1.0
    # the folder of the catalog works as well, and open_source picks a static catalog for it
    assert isinstance(open_source(str(path.parent)), StacSource)
    assert len(StacSource(path.parent).search(AOI)) == 3


def test_static_catalog_errors(tmp_path: Path) -> None:
    with pytest.raises(ImageryError, match="does not exist"):
        StacSource(tmp_path / "nope.json").search(AOI)
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ImageryError, match="cannot read"):
        StacSource(tmp_path / "broken.json").search(AOI)


def _serve(state: ServerState, make_raster: RasterFactory, n: int = 2) -> list[dict[str, object]]:
    items = []
    for i in range(n):
        r = make_raster(f"s{i}.tif", folder=state.root)
        items.append(
            stac_item(
                r,
                f"api-{i}",
                datetime(2021, 1 + i, 1, tzinfo=UTC),
                href=f"{state.base}/{r.path.name}",
            )
        )
    state.items = items
    return items


def test_api_search_and_remote_read(stac_server: ServerState, make_raster: RasterFactory) -> None:
    _serve(stac_server, make_raster)
    seen: list[str] = []

    def sign(href: str) -> str:
        seen.append(href)
        return href + "?token=abc"

    def add_auth(request: object) -> None:
        request.headers["Authorization"] = "Bearer secret"  # type: ignore[attr-defined]

    with StacSource(
        stac_server.base,
        collections=["c"],
        sign=sign,
        request_modifier=add_auth,
        retries=0,
        allow_private=True,
    ) as src:
        assert src.kind == "stac-api"
        scenes = src.search(AOI, "2021-01-01", "2021-12-31")
        assert [s.id for s in scenes] == ["api-0", "api-1"]
        assert src.search((100.0, 0.0, 101.0, 1.0)) == []
        chip = cut_chip(src, scenes[0], ChipGrid.around(*DEFAULT_CENTRE, 300.0, 10.0))
    assert chip.coverage == 1.0
    assert seen and all(h.startswith(stac_server.base) for h in seen)
    searches = [r for r in stac_server.requests if r[1].startswith("/search")]
    assert searches and all(r[2].get("Authorization") == "Bearer secret" for r in searches)
    assert any("token=abc" in r[1] for r in stac_server.requests if r[1].startswith("/s0.tif"))


def test_api_server_error(stac_server: ServerState, make_raster: RasterFactory) -> None:
    _serve(stac_server, make_raster, 1)
    stac_server.search_mode = "error"
    with pytest.raises(SourceError, match=r"search failed.*database is down"):
        StacSource(stac_server.base, retries=0, allow_private=True).search(AOI)


def test_api_timeout(stac_server: ServerState, make_raster: RasterFactory) -> None:
    _serve(stac_server, make_raster, 1)
    stac_server.search_mode = "slow"
    stac_server.slow_seconds = 1.5
    with pytest.raises(SourceError, match=r"did not answer within 0\.3 s"):
        StacSource(stac_server.base, timeout=0.3, retries=0, allow_private=True).search(AOI)


def test_api_unreachable() -> None:
    with pytest.raises(SourceError, match="cannot open"):
        StacSource("http://127.0.0.1:9/stac", timeout=0.5, retries=0, allow_private=True).search(
            AOI
        )


def test_sources_toml(
    tmp_path: Path, make_raster: RasterFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_raster("m_4500101_ne_33_1_20200101.tif", folder=tmp_path / "imgs")
    toml = tmp_path / "sources.toml"
    toml.write_text(
        """
[sources.mine]
type = "local"
path = "imgs"
sensor = "naip"

[sources.api]
type = "stac-api"
url = "https://example.invalid/v1"
collections = ["sentinel-2-l2a"]
"""
    )
    monkeypatch.setenv("SITEWATCH_SOURCES_FILE", str(toml))
    configs = load_source_config(get_settings().sources_path)
    assert {"earth-search", "mine", "api"} <= set(configs)
    mine = open_source("mine")
    assert isinstance(mine, LocalSource) and mine.name == "mine"
    assert len(mine.search(AOI)) == 1
    api = open_source("api")
    assert isinstance(api, StacSource) and api.collections == ["sentinel-2-l2a"]
    toml.write_text('[sources.bad]\ntype = "ftp"\n')
    with pytest.raises(ConfigError, match="type 'ftp'"):
        load_source_config(toml)
    toml.write_text("[sources.x\n")
    with pytest.raises(ConfigError, match="cannot read"):
        load_source_config(toml)
    # a typo in a key or a value of the wrong type is refused, not ignored or guessed at
    api_head = '[sources.api]\ntype = "stac-api"\nurl = "https://example.invalid/v1"\n'
    for extra, message in (('colections = ["s2"]\n', "unknown key(s) colections"),
                           ("timeout = \"30 s\"\n", "timeout must be a number of seconds"),
                           ("retries = 2.5\n", "retries must be a whole number"),
                           ("headers = { key = 1 }\n", "headers must be a table of texts")):  # fmt: skip
        toml.write_text(api_head + extra)
        with pytest.raises(ConfigError, match=rf"sources\.api: {re.escape(message)}"):
            load_source_config(toml)
    toml.write_text(
        '[sources.mine]\ntype = "local"\npath = "imgs"\npatterns = "(?P<date>\\\\d{8})"\n'
    )
    assert load_source_config(toml)["mine"]["patterns"] == ["(?P<date>\\d{8})"]  # a list of one
    toml.unlink()
    with pytest.raises(ConfigError, match="unknown imagery source"):
        open_source(str(tmp_path / "missing"))
    assert json.loads(json.dumps(api.describe()))["type"] == "stac-api"
