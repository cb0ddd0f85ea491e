"""KML and KMZ: round trip, Google Earth files, unsafe XML and zip files, GDAL can read ours."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pytest

from sitewatch.catalog.io import detect_format, read_sites, write_sites
from sitewatch.catalog.models import SiteRecord
from sitewatch.errors import InputError, UnsafeInputError


@pytest.mark.parametrize("fmt", ["kml", "kmz"])
def test_round_trip(fmt: str, records, tmp_path: Path, split) -> None:
    """A site's whole record comes back: features, observations, measurements (with their
    links and inputs) and the sources it cites."""
    from dataclasses import replace

    from sitewatch.catalog.models import Source

    cited = [replace(records[0], sources=(Source("csis-2018", "CSIS (2018) <Sakkanmol>"),))]
    cited[0] = replace(cited[0], site=replace(cited[0].site, source_ids=("csis-2018",)))
    records = cited + records[1:]
    path = tmp_path / f"sites.{fmt}"
    assert write_sites(records, path, fmt) == 3
    assert detect_format(path) == fmt
    back, problems = split(list(read_sites(path)))
    assert problems == []
    assert back == records
    assert back[0].measurements[0].inputs == {"sun_elevation": 55.0, "image": "pan.tif",
                                              "tip": [126.1, 38.5]}  # fmt: skip


def test_kml_layout_for_google_earth(records, tmp_path: Path) -> None:
    path = tmp_path / "sites.kml"
    write_sites(records, path, "kml")
    text = path.read_text(encoding="utf-8")
    assert text.startswith(
        '<?xml version="1.0" encoding="UTF-8"?>\n<kml xmlns="http://www.opengis.net/kml/2.2">'
    )
    assert "<Folder><name>sites</name>" in text
    assert "<Folder><name>Sakkanmol features</name>" in text
    assert '<Data name="aliases"><value>Sakkanmol-ri;Sak\'kanmol</value></Data>' in text
    assert "&lt;angle&gt; text" in text  # notes escaped in the description
    assert "<MultiGeometry><Point>" in text  # point and AOI together
    assert "<innerBoundaryIs>" in text
    # observations on Google Earth's time slider, measurements labelled with their value
    assert "<Folder><name>Sakkanmol observations</name>" in text
    assert "<name>2019-04-02 active construction</name><description>new spoil pile" in text
    assert "<TimeStamp><when>2019-04-02T02:15:00Z</when></TimeStamp>" in text
    assert "<Folder><name>Sakkanmol measurements</name>" in text
    assert "<Placemark><name>height 18.30 ± 0.90 m</name>" in text  # as briefs round it


GOOGLE_EARTH = """<?xml version="1.0" encoding="UTF-8"?>
<kml xmlns="http://www.opengis.net/kml/2.2" xmlns:gx="http://www.google.com/kml/ext/2.2">
<Document>
  <name>My Places</name>
  <Style id="s"><IconStyle><scale>1.1</scale></IconStyle></Style>
  <Folder>
    <name>NK</name>
    <Placemark>
      <name>Sino-ri</name>
      <description><![CDATA[<b>Nodong</b> brigade HQ]]></description>
      <styleUrl>#s</styleUrl>
      <Point><coordinates>125.355288,39.644929,0</coordinates></Point>
    </Placemark>
    <Placemark>
      <name>Sakkanmol area</name>
      <Polygon><outerBoundaryIs><LinearRing><coordinates>
        126.10,38.58,0 126.12,38.58,0 126.12,38.60,0 126.10,38.60,0 126.10,38.58,0
      </coordinates></LinearRing></outerBoundaryIs></Polygon>
    </Placemark>
    <Placemark>
      <name>신포</name>
      <ExtendedData><SchemaData schemaUrl="#x"><SimpleData name="unit">8th</SimpleData></SchemaData></ExtendedData>
      <Point><coordinates>128.18,40.02</coordinates></Point>
    </Placemark>
    <Placemark><name>Broken</name><Point><coordinates>abc,def</coordinates></Point></Placemark>
  </Folder>
</Document>
</kml>
"""


def test_google_earth_file_without_extended_data(write_text, split) -> None:
    records, problems = split(list(read_sites(write_text("places.kml", GOOGLE_EARTH))))
    assert [r.site.name for r in records] == ["Sino-ri", "Sakkanmol area", "신포"]
    sino, area, sinpo = (r.site for r in records)
    assert (sino.id, sino.lon, sino.lat) == ("sino-ri", 125.355288, 39.644929)
    assert sino.notes == "<b>Nodong</b> brigade HQ"
    assert area.id == "sakkanmol-area"
    assert area.aoi is not None
    assert area.aoi.contains(area.point)
    assert sinpo.id.startswith("site-")  # no ASCII in the name: a stable hashed id
    assert sinpo.notes == "unit: 8th"
    assert len(problems) == 1
    assert "placemark #4" in problems[0].reason
    assert "bad KML coordinate 'abc,def'" in problems[0].reason


XXE = """<?xml version="1.0"?>
<!DOCTYPE kml [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<kml xmlns="http://www.opengis.net/kml/2.2"><Document>
<Placemark><name>&secret;</name><Point><coordinates>1,2</coordinates></Point></Placemark>
</Document></kml>
"""

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol9 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
]>
<kml xmlns="http://www.opengis.net/kml/2.2"><Document>
<Placemark><name>&lol9;</name><Point><coordinates>1,2</coordinates></Point></Placemark>
</Document></kml>
"""


@pytest.mark.parametrize(("text", "what"), [(XXE, "secret"), (BILLION_LAUGHS, "lol")])
def test_unsafe_kml_is_refused(text: str, what: str, write_text) -> None:
    path = write_text("evil.kml", text)
    with pytest.raises(UnsafeInputError, match=f"refused unsafe XML.*Forbidden.*{what}"):
        list(read_sites(path))


def test_unsafe_kml_inside_kmz_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.kmz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("doc.kml", XXE)
    with pytest.raises(UnsafeInputError):
        list(read_sites(path))


def test_not_kml(write_text) -> None:
    with pytest.raises(InputError, match="not a KML file"):
        list(read_sites(write_text("x.kml", "<html><body/></html>")))
    with pytest.raises(InputError, match="not well-formed XML"):
        list(read_sites(write_text("y.kml", "<kml><Document><Placemark>")))


def test_truncated_kmz(records, tmp_path: Path) -> None:
    good = tmp_path / "good.kmz"
    write_sites(records, good, "kmz")
    data = good.read_bytes()
    bad = tmp_path / "cut.kmz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated"):
        list(read_sites(bad))


def test_kmz_without_kml_or_with_unsafe_path(tmp_path: Path) -> None:
    empty = tmp_path / "empty.kmz"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("images/a.png", b"png")
    with pytest.raises(InputError, match=r"must contain a \.kml"):
        list(read_sites(empty))
    slip = tmp_path / "slip.kmz"
    with zipfile.ZipFile(slip, "w") as zf:
        zf.writestr("../../doc.kml", GOOGLE_EARTH)
    with pytest.raises(UnsafeInputError, match="unsafe path"):
        list(read_sites(slip))


def test_kmz_bomb_is_refused(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.kmz"
    with (
        zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf,
        zf.open("doc.kml", "w") as fh,
    ):
        block = b" " * (1 << 20)
        for _ in range(80):  # 80 MB of blanks, a few kB compressed
            fh.write(block)
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(UnsafeInputError, match="zip bomb"):
        list(read_sites(bomb))


def test_kmz_reads_only_its_kml(tmp_path: Path, split) -> None:
    path = tmp_path / "multi.kmz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("files/icon.png", b"\x89PNG")
        zf.writestr("doc.kml", GOOGLE_EARTH)
        zf.writestr("other.kml", "<not xml")
    records, _ = split(list(read_sites(path)))
    assert len(records) == 3


def test_duplicate_placemark_names(write_text, split) -> None:
    text = GOOGLE_EARTH.replace("<name>Sakkanmol area</name>", "<name>Sino ri</name>")
    records, problems = split(list(read_sites(write_text("dup.kml", text))))
    assert [r.site.id for r in records] == ["sino-ri", site_id_of(records, "신포")]
    assert any("placemark #1 and placemark #2" in p.reason for p in problems)


def test_a_bad_observation_or_measurement_placemark_is_a_problem_of_its_own(
    records, tmp_path: Path, split
) -> None:
    """Records edited by hand in a KML: a broken JSON field, an unknown record or a measurement
    without a value is named by its placemark; the site and its other records still come."""
    path = tmp_path / "sites.kml"
    write_sites(records[:1], path, "kml")
    text = path.read_text(encoding="utf-8")
    text = text.replace('<Data name="evidence"><value>[', '<Data name="evidence"><value>[oops', 1)
    text = text.replace('<Data name="record"><value>measurement</value></Data><Data name="id">'
                        '<value>m-fence</value>', '<Data name="record"><value>measurment</value>'
                        '</Data><Data name="id"><value>m-fence</value>')  # fmt: skip
    path.write_text(text, encoding="utf-8")
    back, problems = split(list(read_sites(path)))
    reasons = sorted(p.reason for p in problems)
    assert len(reasons) == 2, reasons
    assert reasons[0].startswith("placemark #5 ('2019-04-02 active construction'): evidence is not")
    assert "unknown record 'measurment'; use site, feature" in reasons[1]
    (site,) = back
    assert site.observations == () and [m.id for m in site.measurements] == ["m-berm-height"]
    assert site.features == records[0].features


def test_a_hand_made_sources_field_stays_in_the_notes(write_text, split) -> None:
    """A Google Earth user's own "sources" field (text, not our JSON list) is not a citation
    list to refuse: it is kept in the site's notes, as other fields are."""
    text = GOOGLE_EARTH.replace(
        "<styleUrl>#s</styleUrl>",
        '<ExtendedData><Data name="sources"><value>38 North, 2019</value></Data></ExtendedData>'
        "<styleUrl>#s</styleUrl>",
        1,
    )
    records, problems = split(list(read_sites(write_text("mine.kml", text))))
    assert ["Broken" in p.reason for p in problems] == [True]  # the fixture's broken placemark
    sino = next(r for r in records if r.site.name == "Sino-ri")
    assert "sources: 38 North, 2019" in sino.site.notes and sino.sources == ()


def site_id_of(records: list[SiteRecord], name: str) -> str:
    return next(r.site.id for r in records if r.site.name == name)


@pytest.mark.parametrize("fmt", ["kml", "kmz"])
def test_ogrinfo_lists_every_site(
    fmt: str, shared_data: Path, tmp_path: Path, ogrinfo: str
) -> None:
    records = [
        r
        for r in read_sites(shared_data / "north-korea" / "reported-missile-bases.csv")
        if isinstance(r, SiteRecord)
    ]
    path = tmp_path / f"bases.{fmt}"
    write_sites(records, path, fmt)
    summary = subprocess.run(
        [ogrinfo, "-ro", "-so", "-al", str(path)], capture_output=True, text=True, check=True
    ).stdout
    assert "Layer name: sites" in summary
    assert "Feature Count: 10" in summary
    full = subprocess.run(
        [ogrinfo, "-ro", "-al", "-q", str(path)], capture_output=True, text=True, check=True
    ).stdout
    for rec in records:
        assert f"= {rec.site.name}\n" in full
