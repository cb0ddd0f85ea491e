"""KMZ (GDAL + OGC KML 2.2 schema), GeoJSON/GeoPackage exports, STAC collection, time-lapse."""

from __future__ import annotations

import importlib.resources
import subprocess
import zipfile
from datetime import date
from pathlib import Path

import numpy as np
import pyogrio
import pystac
import pytest
from PIL import Image
from shapely.geometry import mapping

from sitewatch.errors import InputError
from sitewatch.geo import geodesic_buffer
from sitewatch.report import (
    Product,
    site_layers,
    write_layers,
    write_products_collection,
    write_site_kmz,
    write_timelapse,
)
from sitewatch.report._cartography import lonlat_of

from .conftest import IN_CI, SITE_LAT, SITE_LON, need_tool


def _schema(name: str):
    etree = pytest.importorskip("lxml.etree")
    try:
        folder = importlib.resources.files("pykml") / "schemas"
    except ModuleNotFoundError:
        if IN_CI:
            pytest.fail("pykml (dev extra) ships the KML 2.2 schemas; install sitewatch[dev]")
        pytest.skip("pykml is not installed")
    return etree.XMLSchema(etree.parse(str(folder / name)))


def _rings():
    return [
        {
            "type": "Feature",
            "geometry": mapping(geodesic_buffer(SITE_LON, SITE_LAT, r)),
            "properties": {"label": f"{r / 1000:g} km", "radius_m": r},
        }
        for r in (1000.0, 5000.0)
    ]


@pytest.mark.parametrize(("mode", "schema"), [("box", "ogckml22.xsd"), ("quad", "kml22gx.xsd")])
def test_kmz_opens_with_gdal_and_validates(
    site_catalog, make_chip, tmp_path: Path, mode: str, schema: str
) -> None:
    from lxml import etree

    site = site_catalog.get_site("test-base")
    chips = [
        make_chip(fill=None, acquired=date(2022, 1, 1)),
        make_chip(fill=None, offset=300, acquired=date(2023, 1, 1)),
    ]
    path = write_site_kmz(
        tmp_path / f"{mode}.kmz",
        site,
        site_catalog.query_features(site_id="test-base"),
        overlays=chips,
        changes=site_catalog.list_change_events("test-base"),
        rings=_rings(),
        mode=mode,
        observations=site_catalog.list_observations("test-base"),
        measurements=site_catalog.list_measurements(site_id="test-base"),
    )
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        assert names[0] == "doc.kml"
        doc = etree.fromstring(zf.read("doc.kml"))
        pngs = [n for n in names if n.startswith("files/overlay_")]
        assert len(pngs) == 2
        with zf.open(pngs[0]) as png, Image.open(png) as img:
            assert img.mode == ("RGBA" if mode == "box" else "RGB")
    assert _schema(schema).validate(etree.ElementTree(doc)), _schema(schema).error_log
    ns = {"k": "http://www.opengis.net/kml/2.2", "gx": "http://www.google.com/kml/ext/2.2"}
    assert doc.findtext("k:Document/k:name", namespaces=ns) == "Test & <Base>"
    styles = doc.xpath("//k:Placemark[k:name='Portal A']/k:styleUrl/text()", namespaces=ns)
    assert styles == ["#kind-ugf_portal"]
    # its kind, then its measurement, with the date of the image it was read from, are in its
    # balloon; the HQ's mapped height and size too
    balloon = doc.xpath("//k:Placemark[k:name='Portal A']/k:description/text()", namespaces=ns)
    assert balloon == ["ugf portal<br/>height 12.34 ± 0.80 m · shadow · 2022-04-01"]
    hq = doc.xpath("//k:Placemark[k:name='Headquarters']/k:description/text()", namespaces=ns)
    assert hq == ["hq · height 9.5 m"]
    # the change polygon is named by its dates and the kind of change with the largest area
    change = "change 2021-03-01 to 2022-04-01 (vegetation to built or bare)"
    assert doc.xpath(f"//k:Placemark[k:name='{change}']/k:styleUrl/text()", namespaces=ns) == [
        "#kind-change"
    ]
    # on the time slider between its two images, and its balloon says what changed
    span = doc.xpath(f"//k:Placemark[k:name='{change}']/k:TimeSpan", namespaces=ns)[0]
    assert [span.findtext(f"k:{t}", namespaces=ns) for t in ("begin", "end")] == [
        "2021-03-01",
        "2022-04-01",
    ]
    assert doc.xpath(f"//k:Placemark[k:name='{change}']/k:description/text()", namespaces=ns) == [
        "1,800 m² changed between 2021-03-01 and 2022-04-01 · cva, magnitude 3.2 · "
        "mostly vegetation → built or bare (92%)"
    ]
    assert doc.xpath("//k:GroundOverlay/k:TimeStamp/k:when/text()", namespaces=ns) == [
        "2022-01-01",
        "2023-01-01",
    ]
    # the overlay is placed where the chip is
    left, bottom, right, top = chips[0].bounds
    corners = np.array(
        [
            lonlat_of(chips[0].crs, x, y)
            for x, y in ((left, bottom), (right, bottom), (right, top), (left, top))
        ]
    )
    if mode == "box":
        box = doc.xpath("//k:GroundOverlay[1]/k:LatLonBox", namespaces=ns)[0]
        n, s, e, w = (
            float(box.findtext(f"k:{t}", namespaces=ns)) for t in ("north", "south", "east", "west")
        )
        assert w <= corners[:, 0].min() + 1e-6 and e >= corners[:, 0].max() - 1e-6
        assert s <= corners[:, 1].min() + 1e-6 and n >= corners[:, 1].max() - 1e-6
        assert e - w < (corners[:, 0].max() - corners[:, 0].min()) * 1.05
    else:
        text = doc.xpath("//gx:LatLonQuad/k:coordinates/text()", namespaces=ns)[0]
        quad = np.array([[float(v) for v in p.split(",")] for p in text.split()])
        assert np.allclose(quad, corners, atol=1e-6)
    ogrinfo = need_tool("ogrinfo")
    out = subprocess.run(
        [ogrinfo, "-ro", "-al", "-so", str(path)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "Layer name: Features" in out.stdout and "Feature Count: 2" in out.stdout
    assert "Layer name: Range rings" in out.stdout


def test_kmz_rejects_bad_names_and_modes(site_catalog, make_chip, tmp_path: Path) -> None:
    site = site_catalog.get_site("test-base")
    with pytest.raises(InputError, match=r"\.kmz"):
        write_site_kmz(tmp_path / "a.zip", site)
    with pytest.raises(InputError, match="overlay mode"):
        write_site_kmz(tmp_path / "a.kmz", site, mode="warp")  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"need a \.kmz"):
        write_site_kmz(tmp_path / "a.kml", site, overlays=[make_chip()])
    assert not [p for p in tmp_path.iterdir() if "report.db" not in p.name]  # nothing half-written


def test_geojson_and_gpkg_exports(site_catalog, tmp_path: Path) -> None:
    layers = site_layers(
        site_catalog.query_features(site_id="test-base"),
        site_catalog.list_change_events("test-base"),
        _rings(),
    )
    assert {k: len(v) for k, v in layers.items()} == {
        "features": 2,
        "change_polygons": 1,
        "range_rings": 2,
    }
    gj = write_layers(layers, tmp_path / "site.geojson")
    import json

    fc = json.loads(gj.read_text())
    by_layer = {}
    for f in fc["features"]:
        by_layer.setdefault(f["properties"]["layer"], []).append(f)
    assert len(by_layer["features"]) == 2
    assert by_layer["change_polygons"][0]["properties"]["area_m2"] == 1800.0
    # the kind of change with the largest area, and its share (1650 of 1800 m²)
    change = by_layer["change_polygons"][0]["properties"]
    assert (change["kind"], change["kind_share"]) == ("vegetation_to_built_or_bare", 0.917)
    assert by_layer["range_rings"][1]["properties"]["radius_m"] == 5000.0
    gpkg = write_layers(layers, tmp_path / "site.gpkg")
    names = [n for n, _ in pyogrio.list_layers(gpkg)]
    assert names == ["features", "change_polygons", "range_rings"]
    meta, _, geoms, fields = pyogrio.raw.read(gpkg, layer="features")
    assert len(geoms) == 2 and "EPSG" in str(meta["crs"]) and "4326" in str(meta["crs"])
    kinds = list(fields[meta["fields"].tolist().index("kind")])
    assert sorted(kinds) == ["hq", "ugf_portal"]
    # the change's dates are typed date-times in UTC (QGIS's temporal controller reads them),
    # written as the GeoPackage format asks ("...Z"); text fields stay text
    meta, _, _, fields = pyogrio.raw.read(gpkg, layer="change_polygons")
    names = meta["fields"].tolist()
    assert meta["dtypes"][names.index("before")].startswith("datetime64")
    assert fields[names.index("before")][0] == np.datetime64("2021-03-01T00:00:00")
    assert meta["dtypes"][names.index("method")] == "object"
    import sqlite3

    with sqlite3.connect(gpkg) as db:
        (stored,) = db.execute("select after from change_polygons").fetchone()
    assert stored == "2022-04-01T00:00:00Z"
    with pytest.raises(InputError, match=r"\.gpkg"):
        write_layers(layers, tmp_path / "site.shp")


def test_stac_collection_of_products(site_catalog, tmp_path: Path) -> None:
    site = site_catalog.get_site("test-base")
    (tmp_path / "a.html").write_text("<html></html>")
    (tmp_path / "figs").mkdir()
    (tmp_path / "figs" / "b.png").write_bytes(b"\x89PNG")
    path = write_products_collection(
        tmp_path,
        site,
        [Product(tmp_path / "a.html", "brief"), Product(tmp_path / "figs" / "b.png", "figure")],
    )
    col = pystac.Collection.from_file(str(path))
    items = list(col.get_items())
    assert len(items) == 2
    for item in items:
        href = item.assets["data"].get_absolute_href()
        assert href is not None and Path(href).is_file()
        assert item.properties["sitewatch:site"] == "test-base"
    assert {i.assets["data"].media_type for i in items} == {"text/html", "image/png"}
    with pytest.raises(InputError, match="does not exist"):
        write_products_collection(tmp_path, site, [Product(tmp_path / "nope.pdf", "brief")])


def test_timelapse_gif_has_dated_frames_in_order(make_chip, tmp_path: Path) -> None:
    chips = [
        make_chip(fill=500.0 + 400 * i, acquired=date(2020 + i, 6, 1), width=64, height=48)
        for i in (2, 0, 1)
    ]
    path = write_timelapse(chips, tmp_path / "t.gif", fps=2)
    with Image.open(path) as gif:
        assert gif.n_frames == 3
        assert gif.info["duration"] == 500
        means = []
        for i in range(3):
            gif.seek(i)
            frame = np.asarray(gif.convert("RGB")).astype(int)
            assert frame.shape[1] >= 256  # upscaled to a viewable size
            means.append(frame[frame.shape[0] // 2 :].mean())
            label = frame[:10, :40]
            assert (label.max(axis=2) > 200).any() and (
                label.max(axis=2) < 30
            ).any()  # white text on black
        assert means[0] < means[1] < means[2]  # oldest (darkest) first, one common stretch
    with pytest.raises(InputError, match=r"\.gif"):
        write_timelapse(chips, tmp_path / "t.avi")


def test_timelapse_mp4(make_chip, tmp_path: Path) -> None:
    pytest.importorskip("imageio_ffmpeg")
    chips = [
        make_chip(fill=None, offset=100 * i, acquired=date(2020 + i, 1, 1), width=64, height=48)
        for i in range(3)
    ]
    path = write_timelapse(chips, tmp_path / "t.mp4")
    assert path.read_bytes()[4:8] == b"ftyp"


def test_kmz_carries_the_observations_and_their_evidence_images(
    site_catalog, tmp_path: Path
) -> None:
    from datetime import UTC, datetime

    from lxml import etree

    from sitewatch.catalog.evidence import resolve_evidence, store_evidence
    from sitewatch.catalog.models import Observation

    folder = tmp_path / "evidence"
    shot = tmp_path / "portal.png"
    Image.new("RGB", (40, 20), (10, 200, 30)).save(shot)
    note = tmp_path / "note.txt"
    note.write_text("ridge")
    refs = [
        store_evidence(shot, folder),
        store_evidence(note, folder),
        "https://example.org/a?b=1&c=2",
    ]
    site_catalog.add_observation(
        Observation(
            "o-ev",
            "test-base",
            datetime(2024, 3, 1, 2, 5, tzinfo=UTC),
            text="spoil <fresh>",
            evidence=tuple(refs),
        )
    )
    observations = site_catalog.list_observations("test-base")
    files = {r: resolve_evidence(r, folder) for r in refs[:2]}
    path = write_site_kmz(
        tmp_path / "obs.kmz",
        site_catalog.get_site("test-base"),
        observations=observations,
        evidence_files=files,
    )
    ns = {"k": "http://www.opengis.net/kml/2.2"}
    with zipfile.ZipFile(path) as zf:
        doc = etree.fromstring(zf.read("doc.kml"))
        (image,) = [n for n in zf.namelist() if n.startswith("files/evidence/")]
        assert image.endswith("-portal.png") and zf.read(image) == shot.read_bytes()
    assert _schema("ogckml22.xsd").validate(etree.ElementTree(doc)), _schema(
        "ogckml22.xsd"
    ).error_log
    names = doc.xpath("//k:Folder[k:name='Observations']/k:Placemark/k:name/text()", namespaces=ns)
    assert len(names) == len(observations) == 4 and "2024-03-01 observation" in names
    when = doc.xpath("//k:Placemark[k:name='2024-03-01 observation']/k:TimeStamp/k:when/text()",
                     namespaces=ns)  # fmt: skip
    assert when == ["2024-03-01T02:05:00Z"]
    text = doc.xpath("//k:Placemark[k:name='2024-03-01 observation']/k:description/text()",
                     namespaces=ns)[0]  # fmt: skip
    assert "spoil &lt;fresh&gt;" in text and f'<img src="{image}"' in text
    assert "note.txt" in text and '<a href="https://example.org/a?b=1&amp;c=2">' in text
    with pytest.raises(InputError, match=r"need a \.kmz"):
        write_site_kmz(
            tmp_path / "obs.kml",
            site_catalog.get_site("test-base"),
            observations=observations,
            evidence_files=files,
        )


@pytest.mark.parametrize(
    ("value", "unc", "expected"),
    [
        (18.2913, 0.914, "18.29 ± 0.91 m"),
        (5581.48, 315.475, "5,581 ± 315 m³"),
        (52000.0, None, "52,000 m³ (no uncertainty recorded)"),
        (1234567.0, None, "1,234,567 m³ (no uncertainty recorded)"),
        (0.000123456, None, "0.0001235 m³ (no uncertainty recorded)"),
        (0.0, None, "0 m³ (no uncertainty recorded)"),
        (-2.5, 0.42, "-2.50 ± 0.42 m"),
    ],
)
def test_value_text_never_in_exponent_notation(
    value: float, unc: float | None, expected: str
) -> None:
    from sitewatch.report.exports import value_parts, value_text

    unit = expected.split(" (")[0].split()[-1]
    assert value_text(value, unc, unit) == expected
    # the same rounding, split for a table's value and +/- columns (measure list)
    shown, sigma = value_parts(value, unc)
    assert expected.startswith(f"{shown} ± {sigma} " if sigma else f"{shown} ")
    assert (sigma == "") == (unc is None)


def test_a_features_kmz_balloon_reads_its_kind_sizes_and_dates() -> None:
    from sitewatch.report.kmz import _feature_text

    props = {"kind": "ugf_portal", "first_seen": "2016-05-01", "last_seen": None,
             "attributes": '{"azimuth_deg": 105.5241, "length_m": 1086.116015902537, '
                           '"state": "active", "width_m": 10.0}'}  # fmt: skip
    assert _feature_text(props) == (
        "ugf portal · azimuth 105.5° · length 1086 m · state active · width 10 m · seen 2016-05-01 →"
    )
    assert _feature_text({"kind": "berm", "attributes": "not json"}) == "berm"
