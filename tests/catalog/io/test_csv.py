"""CSV: column detection and mapping, every bad-input case, streaming of a large file."""

from __future__ import annotations

import logging
import time
import tracemalloc
from pathlib import Path

import pytest

from sitewatch.catalog.io import read_sites, write_sites
from sitewatch.catalog.io.csv import read_csv
from sitewatch.catalog.models import SiteRecord
from sitewatch.errors import InputError


def test_reads_the_reported_missile_bases(shared_data: Path, split) -> None:
    path = shared_data / "north-korea" / "reported-missile-bases.csv"
    records, problems = split(list(read_sites(path)))
    assert problems == []
    assert len(records) == 10
    by_id = {r.site.id: r for r in records}
    assert len(by_id) == 10
    sak = by_id["sakkanmol"].site
    assert (sak.name, sak.lat, sak.lon) == ("Sakkanmol", 38.584698, 126.107945)
    # the columns sitewatch has no field for are kept in the notes
    assert "province: North Hwanghae" in sak.notes
    assert "reported_role: SRBM (Scud-class) missile operating base" in sak.notes
    assert [r.line for r in records] == list(range(2, 12))


def test_round_trip_keeps_every_site_field(records, tmp_path: Path, split) -> None:
    path = tmp_path / "sites.csv"
    assert write_sites(records, path, "csv") == len(records)
    back, problems = split(list(read_sites(path)))
    assert problems == []
    assert [r.site for r in back] == [r.site for r in records]
    # the multi-line note is one record: the next one starts on its physical line
    assert back[0].line == 2
    assert back[1].line == 4


def test_column_mapping_options(write_text, split) -> None:
    path = write_text(
        "odd.csv",
        "Breite;Laenge;Bezeichnung;Kennung;Status\n41.1;126.9;Hoejung-ni;hj-1;confirmed\n",
    )
    with pytest.raises(InputError, match="no latitude/longitude columns"):
        list(read_sites(path))
    records, problems = split(
        list(
            read_sites(
                path, lat_col="breite", lon_col="Laenge", name_col="Bezeichnung", id_col="Kennung"
            )
        )
    )
    assert problems == []
    site = records[0].site
    assert (site.id, site.name, site.lat, site.lon, site.status) == (
        "hj-1",
        "Hoejung-ni",
        41.1,
        126.9,
        "confirmed",
    )


def test_aliases_detected_and_defaults(write_text, split) -> None:
    path = write_text(
        "sites.tsv",
        "Title\tLatitude\tLng\ttags\taliases\n"
        "Yongnim\t40.48\t126.50\ticbm; irbm\tYongrim;Yongnim-up\n",
    )
    records, problems = split(list(read_sites(path, defaults={"country": "KP"})))
    assert problems == []
    site = records[0].site
    assert site.id == "yongnim"
    assert site.tags == ("icbm", "irbm")
    assert site.aliases == ("Yongrim", "Yongnim-up")
    assert site.country == "KP"


def test_unknown_option_is_refused(write_text) -> None:
    path = write_text("a.csv", "name,lat,lon\na,1,2\n")
    with pytest.raises(InputError, match="lat_column"):
        read_sites(path, lat_column="lat")


def test_malformed_rows_report_line_and_reason(write_text, split) -> None:
    path = write_text(
        "bad.csv",
        "name,lat,lon,notes\n"
        'Good,38.5,126.1,"two\nlines"\n'  # lines 2-3
        "Too many,38.5,126.1,x,y\n"  # line 4
        "Not a number,abc,126.1,\n"  # line 5
        "\n"  # line 6: blank, skipped
        ",38.5,126.1,no name\n"  # line 7
        "Good too,38.6,126.2,\n",  # line 8
    )
    records, problems = split(list(read_sites(path)))
    assert [r.site.name for r in records] == ["Good", "Good too"]
    assert [p.line for p in problems] == [4, 5, 7]
    assert "5 fields where the header has 4" in problems[0].reason
    assert "latitude must be a number, got 'abc'" in problems[1].reason
    assert "has no name" in problems[2].reason
    assert str(problems[0]).startswith("line 4: ")


def test_broken_quoting_is_a_problem_not_a_crash(write_text, split) -> None:
    path = write_text("q.csv", 'name,lat,lon\n"Open quote,38.5,126.1\n')
    records, problems = split(list(read_sites(path)))
    assert records == []
    assert problems
    assert problems[0].line == 2


def test_swapped_lat_lon_gives_a_hint(write_text, split) -> None:
    path = write_text("swap.csv", "name,lat,lon\nSino-ri,125.355288,39.644929\n")
    _, problems = split(list(read_sites(path)))
    assert len(problems) == 1
    assert problems[0].line == 2
    assert "look swapped" in problems[0].reason
    assert "lat=39.644929" in problems[0].reason


def test_unknown_enum_names_the_allowed_values(write_text, split) -> None:
    path = write_text("enum.csv", "name,lat,lon,status,category\nA,38,126,rumoured,other\n")
    _, problems = split(list(read_sites(path)))
    assert len(problems) == 1
    assert "unknown site status 'rumoured'" in problems[0].reason
    assert "suspected, confirmed, inactive, dismantled" in problems[0].reason


def test_duplicate_ids_name_both_lines(write_text, split) -> None:
    path = write_text(
        "dup.csv", "name,lat,lon\nSino-ri,39.6,125.3\nKal-gol,38.6,126.7\nSino ri,39.7,125.4\n"
    )
    records, problems = split(list(read_sites(path)))
    assert [r.site.id for r in records] == ["sino-ri", "kal-gol"]
    assert len(problems) == 1
    assert problems[0].line == 4
    assert "'sino-ri'" in problems[0].reason
    assert "line 2 and line 4" in problems[0].reason


BOWTIE = "POLYGON ((126 38, 126.1 38.1, 126.1 38, 126 38.1, 126 38))"


def test_invalid_aoi_is_a_problem_without_repair(write_text, split) -> None:
    path = write_text("aoi.csv", f'name,lat,lon,aoi_wkt\nBow,38.05,126.05,"{BOWTIE}"\n')
    records, problems = split(list(read_sites(path)))
    assert records == []
    assert "AOI is invalid (Self-intersection" in problems[0].reason
    assert "--repair-geometry" in problems[0].reason


def test_invalid_aoi_is_repaired_with_a_warning(write_text, split, caplog) -> None:
    path = write_text("aoi.csv", f'name,lat,lon,aoi_wkt\nBow,38.05,126.05,"{BOWTIE}"\n')
    with caplog.at_level(logging.WARNING, logger="sitewatch.catalog.io"):
        records, problems = split(list(read_sites(path, repair=True)))
    assert problems == []
    aoi = records[0].site.aoi
    assert aoi is not None
    assert aoi.is_valid
    assert aoi.geom_type == "MultiPolygon"
    assert aoi.area == pytest.approx(0.005)
    assert any("repaired" in r.message for r in caplog.records)


def test_aoi_only_rows_get_a_point_inside(write_text, split) -> None:
    path = write_text(
        "aoi.csv", 'name,aoi_wkt\nBox,"POLYGON ((126 38, 127 38, 127 39, 126 39, 126 38))"\n'
    )
    records, problems = split(list(read_sites(path)))
    assert problems == []
    site = records[0].site
    assert site.aoi is not None
    assert site.aoi.contains(site.point)


def test_file_level_errors(tmp_path: Path, write_text) -> None:
    with pytest.raises(InputError, match="no such file"):
        list(read_sites(tmp_path / "missing.csv"))
    with pytest.raises(InputError, match="empty"):
        list(read_sites(write_text("empty.csv", "\n\n")))
    latin = tmp_path / "latin.csv"
    latin.write_bytes("name,lat,lon\nK\xf6nig,1,2\n".encode("latin-1"))
    with pytest.raises(InputError, match="not utf-8-sig text"):
        list(read_sites(latin))
    records = list(read_sites(latin, encoding="latin-1"))
    assert isinstance(records[0], SiteRecord)
    assert records[0].site.name == "König"


def test_large_csv_streams_in_bounded_memory(tmp_path: Path) -> None:
    rows = 50_000  # ~50 MB; tracemalloc slows the reading ~5x, so not more
    path = tmp_path / "big.csv"
    pad = "x" * 950
    with path.open("w", encoding="utf-8") as fh:
        fh.write("id,name,lat,lon,notes\n")
        for i in range(rows):
            fh.write(
                f"s{i},Site {i},{(i % 1700) / 10 - 85:.4f},{(i % 3500) / 10 - 175:.4f},{pad}\n"
            )
    size = path.stat().st_size
    start = time.perf_counter()
    tracemalloc.start()
    try:
        count = 0
        for record in read_csv(path):
            assert isinstance(record, SiteRecord)
            count += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    elapsed = time.perf_counter() - start
    assert count == rows
    # the records themselves would take more than the file size; a stream holds one row
    # (plus the id index for duplicate detection: 16 bytes a site, 2 MB here)
    assert peak < 8e6, f"peak {peak / 1e6:.1f} MB for a {size / 1e6:.1f} MB file"
    assert peak < size / 8
    print(f"\n{rows}-row CSV ({size / 1e6:.0f} MB): {elapsed:.1f} s, peak {peak / 1e6:.1f} MB")
