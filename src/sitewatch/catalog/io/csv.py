"""CSV sites: one row per site, lat/lon/name columns detected or mapped, read row by row."""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ...errors import InputError, RecordProblem
from ...files import atomic_path
from ..models import SiteRecord
from ._helpers import SITE_ATTRIBUTES, SITE_COLUMNS, DuplicateIds, site_from_fields, site_to_fields

__all__ = ["read_csv", "write_csv"]

log = logging.getLogger(__name__)

_ALIASES: dict[str, tuple[str, ...]] = {
    "lat": ("lat", "latitude", "y"),
    "lon": ("lon", "lng", "long", "longitude", "x"),
    "name": ("name", "title"),
    "id": ("id", "site_id"),
    "aoi_wkt": ("aoi_wkt", "aoi", "wkt"),
}
_KNOWN = SITE_ATTRIBUTES
_DELIMITERS = (",", ";", "\t", "|")
_OPTION_COLUMNS = {"lat_col": "lat", "lon_col": "lon", "name_col": "name", "id_col": "id"}


def _sniff_delimiter(path: Path, encoding: str) -> str:
    with path.open(encoding=encoding, newline="") as fh:
        first = fh.readline()
    counts = {d: first.count(d) for d in _DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > 0 else ","


def _map_header(header: list[str], options: Mapping[str, str | None]) -> dict[int, str]:
    """Column index -> site field (or ``"column:<name>"`` for a column kept in the notes)."""
    lowered = [h.strip().lower() for h in header]
    mapping: dict[int, str] = {}
    taken: set[str] = set()
    for opt, fieldname in _OPTION_COLUMNS.items():
        wanted = options.get(opt)
        if wanted is None:
            continue
        if wanted.strip().lower() not in lowered:
            raise InputError(
                f"{opt}={wanted!r} is not a column of the file; its columns are: {', '.join(header)}"
            )
        mapping[lowered.index(wanted.strip().lower())] = fieldname
        taken.add(fieldname)
    for fieldname, aliases in _ALIASES.items():
        if fieldname in taken:
            continue
        for alias in aliases:
            if alias in lowered and lowered.index(alias) not in mapping:
                mapping[lowered.index(alias)] = fieldname
                taken.add(fieldname)
                break
    for i, col in enumerate(lowered):
        if i in mapping:
            continue
        if col in _KNOWN and col not in taken:
            mapping[i] = col
            taken.add(col)
        else:
            mapping[i] = "column:" + header[i].strip()
    has_point = "lat" in taken and "lon" in taken
    if not has_point and "aoi_wkt" not in taken:
        raise InputError(
            f"no latitude/longitude columns found among: {', '.join(header)}; name them lat and lon "
            "or map them with lat_col=/lon_col= (--lat-col/--lon-col)"
        )
    if "name" not in taken and "id" not in taken:
        raise InputError(
            f"no name column found among: {', '.join(header)}; add a name column or map one "
            "with name_col= (--name-col)"
        )
    return mapping


def read_csv(
    path: str | Path,
    *,
    repair: bool = False,
    lat_col: str | None = None,
    lon_col: str | None = None,
    name_col: str | None = None,
    id_col: str | None = None,
    delimiter: str | None = None,
    encoding: str = "utf-8-sig",
    defaults: Mapping[str, str] | None = None,
) -> Iterator[SiteRecord | RecordProblem]:
    """Stream the sites of a CSV file, one row at a time.

    Column names are matched case-insensitively: ``lat|latitude|y``, ``lon|lng|long|longitude|x``,
    ``name|title``, ``id|site_id`` and the site fields (``aliases`` and ``tags`` are ``;``-separated,
    ``aoi_wkt`` a WKT polygon). Other columns are kept as ``column: value`` lines in the notes.
    ``defaults`` gives values for fields that a row leaves empty (e.g. ``{"country": "KP"}``).
    Bad rows are yielded as :class:`RecordProblem` with the physical line number.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if delimiter is None:
        try:
            delimiter = _sniff_delimiter(path, encoding)
        except UnicodeDecodeError as exc:
            raise InputError(
                f"{path}: not {encoding} text on line 1 ({exc.reason}); "
                "save it as UTF-8 or pass the encoding"
            ) from None
    options = {"lat_col": lat_col, "lon_col": lon_col, "name_col": name_col, "id_col": id_col}
    dupes = DuplicateIds()
    with path.open(encoding=encoding, newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter, strict=True)
        header: list[str] | None = None
        mapping: dict[int, str] = {}
        last_line = 0
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                yield RecordProblem(last_line + 1, f"malformed CSV: {exc}")
                last_line = reader.line_num
                continue
            except UnicodeDecodeError as exc:
                raise InputError(
                    f"{path}: not {encoding} text after line {last_line} ({exc.reason}); "
                    "save it as UTF-8 or pass the encoding"
                ) from None
            start, last_line = last_line + 1, reader.line_num
            if not row or all(not cell.strip() for cell in row):
                continue
            if header is None:
                header = row
                mapping = _map_header(header, options)
                continue
            yield _row_record(row, header, mapping, start, dupes, repair, defaults)
        if header is None:
            raise InputError(
                f"{path}: the file is empty (expected a header row with lat, lon, name)"
            )


def _row_record(
    row: list[str],
    header: list[str],
    mapping: dict[int, str],
    line: int,
    dupes: DuplicateIds,
    repair: bool,
    defaults: Mapping[str, str] | None,
) -> SiteRecord | RecordProblem:
    if len(row) != len(header):
        return RecordProblem(
            line,
            f"{len(row)} fields where the header has {len(header)} "
            "(a value with the delimiter needs quotes; every row needs every column)",
        )
    fields: dict[str, Any] = dict(defaults or {})
    extra: list[str] = []
    for i, value in enumerate(row):
        target = mapping[i]
        if target.startswith("column:"):
            if value.strip():
                extra.append(f"{target[7:]}: {value.strip()}")
        elif value.strip() or target not in fields:
            fields[target] = value
    if extra:
        notes = str(fields.get("notes") or "")
        fields["notes"] = "\n".join([notes, *extra] if notes else extra)
    try:
        site = site_from_fields(fields, repair=repair, what="site")
    except InputError as exc:
        return RecordProblem(line, str(exc))
    if (dupe := dupes.check(site.id, line)) is not None:
        return RecordProblem(line, dupe)
    return SiteRecord(site=site, line=line)


def write_csv(records: Iterable[SiteRecord], path: str | Path, *, delimiter: str = ",") -> int:
    """Write one row per site with every site field (AOI as WKT); atomic. Returns the count."""
    count = 0
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8", newline="") as fh:
        # CRLF (RFC 4180): then values holding a lone CR are quoted too
        writer = csv.writer(fh, delimiter=delimiter, lineterminator="\r\n")
        writer.writerow(SITE_COLUMNS)
        for record in records:
            fields = site_to_fields(record.site)
            writer.writerow([fields[c] for c in SITE_COLUMNS])
            count += 1
    log.info("wrote %d sites to %s", count, path)
    return count
