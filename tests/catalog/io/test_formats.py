"""The format-neutral API: detection, dispatch, options, atomic writes, property round trips."""

from __future__ import annotations

import os
import re
import string
import tempfile
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.geometry import box

from sitewatch.catalog.io import FORMATS, detect_format, read_sites, write_sites
from sitewatch.catalog.models import Site, SiteRecord
from sitewatch.errors import InputError, RecordProblem
from sitewatch.types import SITE_CATEGORIES, SITE_STATUSES


def test_formats() -> None:
    assert FORMATS == ("csv", "geojson", "iarpa", "kml", "kmz", "gpkg")


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("a.csv", "csv"),
        ("A.CSV", "csv"),
        ("a.geojson", "geojson"),
        ("a.json", "geojson"),
        ("a.kml", "kml"),
        ("a.kmz", "kmz"),
        ("a.gpkg", "gpkg"),
    ],
)
def test_detect_format_by_extension(name: str, fmt: str, tmp_path: Path) -> None:
    assert detect_format(tmp_path / name) == fmt


def test_detect_format_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"extension \.shp.*--format"):
        detect_format(tmp_path / "a.shp")
    with pytest.raises(InputError, match="extension"):
        detect_format(tmp_path / "noext")
    (tmp_path / "folder").mkdir()
    with pytest.raises(InputError, match="is a folder"):
        detect_format(tmp_path / "folder")


def test_unknown_format_and_options(records, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown format 'shp'; choose one of: csv, geojson"):
        read_sites(tmp_path / "a.csv", "shp")
    with pytest.raises(InputError, match="unknown format"):
        write_sites(records, tmp_path / "a.shp", "shapefile")
    with pytest.raises(InputError, match="do not apply to kml"):
        read_sites(tmp_path / "a.kml", lat_col="y")
    with pytest.raises(InputError, match="region_id do not apply to csv"):
        write_sites(records, tmp_path / "a.csv", "csv", region_id="KR_R001")


def test_format_override(records, tmp_path: Path, split) -> None:
    path = tmp_path / "sites.txt"
    write_sites(records, path, "geojson")
    back, problems = split(list(read_sites(path, "geojson")))
    assert problems == []
    assert back == records


def _failing(records: list[SiteRecord]) -> Iterator[SiteRecord]:
    yield records[0]
    yield records[1]
    raise RuntimeError("catalog went away")


@pytest.mark.parametrize("fmt", ["csv", "geojson", "kml", "kmz", "gpkg", "iarpa"])
def test_writes_are_atomic(fmt: str, records, tmp_path: Path) -> None:
    target = tmp_path / f"out.{fmt}"
    if fmt != "iarpa":
        target.write_bytes(b"previous export")
    with pytest.raises(RuntimeError, match="went away"):
        write_sites(_failing(records), target, fmt)
    if fmt == "iarpa":
        assert not target.exists()
    else:
        assert target.read_bytes() == b"previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ([] if fmt == "iarpa" else [target.name])
    # and a successful write replaces the file, with normal permissions
    assert write_sites(records, target, fmt) == 3
    assert all(isinstance(r, SiteRecord) for r in read_sites(target, fmt))
    if fmt != "iarpa":
        umask = os.umask(0)
        os.umask(umask)
        assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_write_into_missing_folder(records, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        write_sites(records, tmp_path / "nope" / "a.csv", "csv")


def test_iarpa_refuses_a_non_empty_folder(records, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="not an empty folder"):
        write_sites(records, tmp_path / "out", "iarpa")
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


# --- property-based round trips ------------------------------------------------------------------

_text = (
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters=";"),
        min_size=1,
        max_size=20,
    )
    .map(str.strip)
    .filter(bool)
)
_tag = st.text(alphabet=string.ascii_lowercase + string.digits + "-:_", min_size=1, max_size=12)


@st.composite
def _sites(draw: st.DrawFn) -> list[SiteRecord]:
    n = draw(st.integers(min_value=1, max_value=4))
    out = []
    for i in range(n):
        lon = draw(st.floats(min_value=-179.0, max_value=179.0, allow_nan=False))
        lat = draw(st.floats(min_value=-89.0, max_value=89.0, allow_nan=False))
        with_aoi = draw(st.booleans())
        site = Site(
            id=f"site-{i}",
            name=draw(_text),
            lon=lon,
            lat=lat,
            aoi=box(lon - 0.5, lat - 0.5, lon + 0.5, lat + 0.5) if with_aoi else None,
            aliases=tuple(draw(st.lists(_text, max_size=3))),
            country=draw(st.none() | st.sampled_from(["KP", "KR", "IR"])),
            category=draw(st.sampled_from(SITE_CATEGORIES)),
            status=draw(st.sampled_from(SITE_STATUSES)),
            declared=draw(st.booleans()),
            confidence=draw(st.none() | st.floats(min_value=0.0, max_value=1.0)),
            tags=tuple(draw(st.lists(_tag, max_size=3, unique=True))),
            notes=draw(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)),
        )
        out.append(SiteRecord(site=site))
    return out


def _normal(site: Site, fmt: str) -> Site:
    """What a format can carry: XML cannot hold most control characters, KML strips values."""
    notes = site.notes
    if fmt == "gpkg":
        notes = notes.replace("\x00", "")
    if fmt in ("kml", "kmz"):
        notes = re.sub("[\x00-\x08\x0b\x0c\x0e-\x1f]", "", notes).strip()
    return Site(**{**site.__dict__, "notes": notes})


@pytest.mark.parametrize("fmt", ["csv", "geojson", "kml", "gpkg", "iarpa"])
@settings(
    max_examples=int(os.environ.get("SW_EXAMPLES", "15")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(records=_sites())
def test_property_round_trip(fmt: str, records: list[SiteRecord]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"sites.{'d' if fmt == 'iarpa' else fmt}"
        write_sites(records, path, fmt)
        back = list(read_sites(path, fmt))
    assert not [r for r in back if isinstance(r, RecordProblem)]
    got = [_normal(r.site, fmt) for r in back if isinstance(r, SiteRecord)]
    assert got == [_normal(r.site, fmt) for r in records]


@pytest.mark.parametrize("fmt", ["geojson", "kml"])
def test_large_files_stream(fmt: str, tmp_path: Path) -> None:
    """GeoJSON (ijson) and KML (iterparse, parsed placemarks dropped) hold one record at a time."""
    n = 3_000
    pad = "n" * 5000
    records = (
        SiteRecord(site=Site(id=f"s{i}", name=f"S {i}", lon=i / 1000, lat=i / 2000, notes=pad))
        for i in range(n)
    )
    path = tmp_path / f"big.{fmt}"
    write_sites(records, path, fmt)
    size = path.stat().st_size
    tracemalloc.start()
    try:
        count = sum(1 for r in read_sites(path) if isinstance(r, SiteRecord))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == n
    assert peak < size / 5, f"peak {peak / 1e6:.1f} MB for a {size / 1e6:.1f} MB file"
