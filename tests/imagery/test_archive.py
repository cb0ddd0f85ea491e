"""The archive: COGs with STAC items, checksums, atomic writes, resumable downloads."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pystac
import pytest
import rasterio

from sitewatch.errors import ArchiveError, ConfigError, SourceError
from sitewatch.imagery import Archive, ChipGrid, LocalSource, StacSource, download, find_scenes

from .conftest import RasterFactory, ServerState

NAIP_CENTRE = (-99.155, 47.02)


def test_fetch_store_and_reread(shared_data: Path, tmp_path: Path) -> None:
    src = LocalSource(shared_data / "naip-timeseries")
    found = find_scenes([src], (-99.16, 47.015, -99.15, 47.025), "2018-01-01", "2020-12-31")
    grid = ChipGrid.around(*NAIP_CENTRE, 500.0, 5.0)
    archive = Archive(tmp_path / "archive")
    calls: list[tuple[int, int]] = []
    result = archive.fetch("farm", found, grid, progress=lambda d, t: calls.append((d, t)))
    assert len(result.stored) == 3 and not result.failed
    assert calls[-1] == (3, 3)
    chips = archive.chips("farm")
    assert [c.datetime.year for c in chips] == [2018, 2019, 2020]
    first = chips[0]
    assert first.sha256 == hashlib.sha256(first.path.read_bytes()).hexdigest()
    with rasterio.open(first.path) as ds:
        assert ds.crs.to_epsg() == 32614
        assert ds.descriptions == ("blue", "green", "red", "nir")
        assert ds.tags()["sensor"] == "naip"
    assert archive.verify("farm") == []
    # any STAC tool can read it
    catalog = pystac.Catalog.from_file(str(archive.catalog_path))
    items = list(catalog.get_items(recursive=True))
    assert len(items) == 3
    assert items[0].assets["image"].extra_fields["file:checksum"].startswith("1220")
    rescenes = StacSource(archive.catalog_path).search((-99.16, 47.015, -99.15, 47.025))
    assert [s.bands for s in rescenes] == [("blue", "green", "red", "nir")] * 3
    # fetching again keeps what is there
    again = archive.fetch("farm", found, grid)
    assert not again.stored and len(again.existing) == 3
    # a changed file fails verification and is fetched again
    first.path.write_bytes(first.path.read_bytes()[:-10] + b"0123456789")
    assert archive.verify("farm") == [str(first.path)]
    redo = archive.fetch("farm", found, grid)
    assert len(redo.stored) == 1 and archive.verify("farm") == []
    sums = (archive.site_dir("farm") / "SHA256SUMS").read_text().splitlines()
    assert len(sums) == 6


def test_fetch_cuts_again_when_the_grid_or_the_bands_changed(
    shared_data: Path, tmp_path: Path
) -> None:
    """A chip kept under the same id is cut again when the site's extent changed (it was kept
    on the old grid) or when a band is asked for that it lacks (the bands it had are kept)."""
    src = LocalSource(shared_data / "naip-timeseries")
    found = find_scenes([src], (-99.16, 47.015, -99.15, 47.025), "2018-01-01", "2020-12-31")
    archive = Archive(tmp_path / "archive")
    small = ChipGrid.around(*NAIP_CENTRE, 300.0, 5.0)
    first = archive.fetch("farm", found, small, ["red"])
    assert len(first.stored) == 3 and not first.recut
    more = archive.fetch("farm", found, small, ["red", "nir"])
    assert len(more.stored) == 3 and set(more.recut) == {c.item_id for c in first.stored}
    assert {c.bands for c in archive.chips("farm")} == {("red", "nir")}
    same = archive.fetch("farm", found, small, ["nir"])
    assert not same.stored and len(same.existing) == 3
    wide = ChipGrid.around(*NAIP_CENTRE, 500.0, 5.0)
    moved = archive.fetch("farm", found, wide, ["red"])
    assert len(moved.recut) == 3 and not moved.existing
    for chip in archive.chips("farm"):
        assert chip.bands == ("red", "nir")
        with rasterio.open(chip.path) as ds:
            assert (ds.width, ds.height) == (wide.width, wide.height)
            assert ds.transform.almost_equals(wide.transform)
    assert archive.verify("farm") == []
    assert not archive.fetch("farm", found, wide, ["red"]).stored


def test_fetch_cuts_again_when_the_source_renamed_its_bands(
    shared_data: Path, tmp_path: Path
) -> None:
    """Unnamed multi-band files are kept as b1..b4; once the folder is configured with its band
    order (sources.toml bands = [...]) the same scenes are cut again with those names, not
    served from the archive under the old ones (the monitor then found no red band)."""
    landsat = shared_data / "landsat-timeseries"
    unnamed = LocalSource(landsat)
    named = LocalSource(landsat, bands=["swir16", "nir", "red", "green"])
    grid = ChipGrid.around(-74.45, -8.43, 1500.0, 30.0)
    archive = Archive(tmp_path / "archive")
    first = archive.fetch("puc", find_scenes([unnamed], grid.lonlat_bbox()), grid)
    assert {c.bands for c in first.stored} == {("b1", "b2", "b3", "b4")}
    again = archive.fetch("puc", find_scenes([named], grid.lonlat_bbox()), grid)
    assert len(again.recut) == len(first.stored) and not again.existing
    assert {c.bands for c in archive.chips("puc")} == {("green", "red", "nir", "swir16")}
    assert not archive.fetch("puc", find_scenes([named], grid.lonlat_bbox()), grid).stored


def test_failed_write_leaves_nothing(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = LocalSource(shared_data / "naip-timeseries")
    scene = src.scenes()[0]
    grid = ChipGrid.around(*NAIP_CENTRE, 300.0, 10.0)
    archive = Archive(tmp_path / "archive")
    with src.open(scene) as reader:
        from sitewatch.imagery import read_chip

        chip = read_chip(reader, grid)

    def boom(self: object, dest: Path, chip: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(Archive, "_write_mask", boom)
    with pytest.raises(ArchiveError, match="disk full"):
        archive.add_chip("farm", chip)
    leftovers = [p for p in (tmp_path / "archive").rglob("*") if p.is_file()]
    # the image COG was complete and moved into place; no temp file, no item, no half file
    assert not [p for p in leftovers if p.name.endswith(".tmp") or p.suffix == ".json"]
    assert archive.chips("farm") == []


def test_download_resumes_with_range(
    stac_server: ServerState, make_raster: RasterFactory, tmp_path: Path
) -> None:
    r = make_raster("big.tif", folder=stac_server.root, size=256, cog=False)
    blob = r.path.read_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    stac_server.drop_after = len(blob) // 3
    dest = tmp_path / "dl" / "big.tif"
    seen: list[int] = []
    download(
        f"{stac_server.base}/big.tif",
        dest,
        sha256=digest,
        backoff=0.01,
        progress=lambda d, t: seen.append(d),
    )
    assert dest.read_bytes() == blob
    ranges = [h.get("Range") for m, p, h in stac_server.requests if p == "/big.tif" and m == "GET"]
    assert ranges[0] is None and ranges[1] is not None
    resumed_at = int(ranges[1].removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at <= len(blob) // 3
    assert not (tmp_path / "dl" / "big.tif.part").exists()


def test_download_checksum_mismatch_and_404(
    stac_server: ServerState, make_raster: RasterFactory, tmp_path: Path
) -> None:
    make_raster("x.tif", folder=stac_server.root, size=64, cog=False)
    dest = tmp_path / "x.tif"
    with pytest.raises(SourceError, match="checksum mismatch"):
        download(f"{stac_server.base}/x.tif", dest, sha256="0" * 64)
    assert not dest.exists() and not dest.with_name("x.tif.part").exists()
    with pytest.raises(SourceError, match="HTTP 404"):
        download(f"{stac_server.base}/missing.tif", dest)
    assert not dest.exists()


def test_unreadable_item(tmp_path: Path) -> None:
    folder = tmp_path / "a" / "site" / "it"
    folder.mkdir(parents=True)
    (folder / "it.json").write_text(json.dumps({"id": "it"}))
    with pytest.raises(ArchiveError, match="unreadable"):
        Archive(tmp_path / "a").chips("site")


def test_chips_keep_who_to_credit_for_their_pixels(
    shared_data: Path, tmp_path: Path, make_raster: RasterFactory
) -> None:
    from dataclasses import replace

    from sitewatch.imagery.scene import scene_credit
    from sitewatch.imagery.sources.config import source_from_config
    from sitewatch.report import annotated_figure, as_image_chip

    # every brief of archived imagery said "Image © provider not recorded"
    grid = ChipGrid.around(*NAIP_CENTRE, 300.0, 5.0)
    naip = LocalSource(shared_data / "naip-timeseries")
    found = find_scenes([naip], grid.lonlat_bbox(), "2020-01-01", "2020-12-31")
    archive = Archive(tmp_path / "archive")
    archive.fetch("farm", found, grid)
    (chip,) = archive.chips("farm")
    assert chip.credit == "USDA Farm Service Agency NAIP (public domain)"
    caption = annotated_figure(as_image_chip(chip)).texts[-1].get_text()
    assert "Image © USDA Farm Service Agency NAIP (public domain)." in caption
    assert caption.count("USDA") == 1  # once, not "Source: X. Image © X."
    # a commercial delivery: the source's configured credit, on the chip and in the figure
    vendor = source_from_config(
        "vendor", {"type": "local", "path": str(shared_data / "naip-timeseries"),
                   "credit": "Maxar Technologies"},
    )  # fmt: skip
    found = find_scenes([vendor], grid.lonlat_bbox(), "2019-01-01", "2019-12-31")
    archive.fetch("depot", found, grid)
    (chip,) = archive.chips("depot")
    assert chip.credit == "Maxar Technologies" and chip.to_dict()["credit"] == chip.credit
    assert (
        "Image © Maxar Technologies." in annotated_figure(as_image_chip(chip)).texts[-1].get_text()
    )
    with pytest.raises(ConfigError, match="credit must be the text"):
        source_from_config("vendor", {"type": "local", "path": str(tmp_path), "credit": " "})
    # stored as the item's STAC providers: a fetch from this archive credits it too
    copy = Archive(tmp_path / "copy")
    copy.fetch("x", find_scenes([StacSource(archive.catalog_path)], grid.lonlat_bbox()), grid)
    assert {c.credit for c in copy.chips("x")} == {
        "USDA Farm Service Agency NAIP (public domain)",
        "Maxar Technologies",
    }
    # a chip archived before credits were kept: its sensor's programme
    item = json.loads(chip.item_path.read_text())
    assert item["properties"]["providers"] == [
        {"name": "Maxar Technologies", "roles": ["licensor"]}
    ]
    del item["properties"]["providers"]
    chip.item_path.write_text(json.dumps(item))
    (old,) = archive.chips("depot")
    assert old.credit == "USDA Farm Service Agency NAIP (public domain)"
    # STAC providers licensing the item win over the sensor; Copernicus asks for its own words
    s2 = replace(found[0][1], sensor="sentinel-2a")
    assert scene_credit(s2) == "European Union, contains modified Copernicus Sentinel data 2019"
    licensed = replace(s2, properties={"providers": [
        {"name": "Planet Labs PBC", "roles": ["licensor", "producer"]},
        {"name": "AWS", "roles": ["host"]},
    ]})  # fmt: skip
    assert scene_credit(licensed) == "Planet Labs PBC"
    assert scene_credit(replace(s2, sensor="worldview-3")) is None
