"""Exchange formats of the catalog: CSV, GeoJSON, IARPA SMART site models, KML/KMZ, GeoPackage.

:func:`read_sites` streams a file as :class:`~sitewatch.catalog.models.SiteRecord` values (one per
good site, with its features and observations where the format carries them) and
:class:`~sitewatch.errors.RecordProblem` values (one per bad record: where and why). It raises only
for problems with the whole file (missing, not that format, unsafe XML). :func:`write_sites`
writes atomically: a temporary file beside the target replaces it only when complete.

Example::

    records = [r for r in read_sites("bases.csv") if isinstance(r, SiteRecord)]
    write_sites(records, "bases.kml", "kml")
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from ...errors import InputError, RecordProblem
from ..models import SiteRecord
from .csv import read_csv, write_csv
from .geojson import is_iarpa, read_geojson, read_iarpa, write_geojson, write_iarpa
from .gpkg import read_gpkg, write_gpkg
from .kml import read_kml, read_kmz, write_kml, write_kmz

__all__ = [
    "CARRIES",
    "FORMATS",
    "RecordProblem",
    "SiteRecord",
    "detect_format",
    "left_out",
    "read_sites",
    "write_sites",
]

log = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("csv", "geojson", "iarpa", "kml", "kmz", "gpkg")
"""The exchange formats, as named by ``--format``."""

CARRIES: dict[str, frozenset[str]] = {
    "csv": frozenset(),
    "geojson": frozenset({"features", "observations", "measurements", "sources"}),
    "iarpa": frozenset({"features", "observations"}),
    "kml": frozenset({"features", "observations", "measurements", "sources"}),
    "kmz": frozenset({"features", "observations", "measurements", "sources"}),
    "gpkg": frozenset({"features", "observations", "measurements", "sources"}),
}
"""What each format carries besides the sites themselves (whose ``source_ids`` every format
keeps): GeoJSON, GeoPackage and KML/KMZ carry a site's whole record."""


def left_out(records: Iterable[SiteRecord], format: str) -> dict[str, int]:
    """How many features, observations, measurements and sources (citations) of ``records`` the
    format leaves out; only the non-zero counts."""
    carried = CARRIES[_check_format(format)]
    counts = {"features": 0, "observations": 0, "measurements": 0, "sources": 0}
    cited: set[str] = set()
    for r in records:
        counts["features"] += len(r.features)
        counts["observations"] += len(r.observations)
        counts["measurements"] += len(r.measurements)
        cited.update(s.id for s in r.sources)
    counts["sources"] = len(cited)
    return {k: n for k, n in counts.items() if n and k not in carried}


_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".geojson": "geojson",
    ".json": "geojson",
    ".kml": "kml",
    ".kmz": "kmz",
    ".gpkg": "gpkg",
}
_READERS: dict[str, Callable[..., Iterator[SiteRecord | RecordProblem]]] = {
    "csv": read_csv,
    "geojson": read_geojson,
    "iarpa": read_iarpa,
    "kml": read_kml,
    "kmz": read_kmz,
    "gpkg": read_gpkg,
}
_WRITERS: dict[str, Callable[..., int]] = {
    "csv": write_csv,
    "geojson": write_geojson,
    "iarpa": write_iarpa,
    "kml": write_kml,
    "kmz": write_kmz,
    "gpkg": write_gpkg,
}


def _check_format(fmt: str) -> str:
    name = fmt.lower().strip()
    if name not in FORMATS:
        raise InputError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    return name


def detect_format(path: str | Path) -> str:
    """The format of ``path`` from its extension; GeoJSON holding IARPA SMART models is ``iarpa``.

    A folder is read as IARPA site models when its first ``.geojson`` file is one.
    """
    p = Path(path)
    if p.is_dir():
        first = next(iter(sorted(p.rglob("*.geojson"))), None)
        if first is not None and is_iarpa(first):
            return "iarpa"
        raise InputError(
            f"{p} is a folder; only a folder of IARPA SMART site models can be read as a whole"
        )
    fmt = _EXTENSIONS.get(p.suffix.lower())
    if fmt is None:
        raise InputError(
            f"cannot tell the format of {p.name} from its extension {p.suffix or '(none)'}; "
            f"use .csv .geojson .json .kml .kmz .gpkg or give --format ({', '.join(FORMATS)})"
        )
    if fmt == "geojson" and p.is_file() and is_iarpa(p):
        return "iarpa"
    return fmt


def _check_options(func: Callable[..., Any], fmt: str, options: dict[str, Any]) -> None:
    allowed = [
        name
        for name, param in inspect.signature(func).parameters.items()
        if param.kind is inspect.Parameter.KEYWORD_ONLY and name != "repair"
    ]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise InputError(
            f"option(s) {', '.join(unknown)} do not apply to {fmt}; "
            f"{fmt} takes: {', '.join(allowed) or 'no options'}"
        )


def read_sites(
    path: str | Path, format: str | None = None, *, repair: bool = False, **options: Any
) -> Iterator[SiteRecord | RecordProblem]:
    """Stream the records of an exchange file: a :class:`SiteRecord` per good site and a
    :class:`RecordProblem` per bad record; the caller decides what to do with problems.

    ``format`` defaults to :func:`detect_format`. ``repair=True`` repairs invalid AOI and feature
    geometries (with a logged warning) instead of reporting them. ``options`` go to the reader:
    CSV takes ``lat_col``, ``lon_col``, ``name_col``, ``id_col``, ``delimiter``, ``encoding`` and
    ``defaults``; GeoPackage takes ``layer``.
    """
    fmt = _check_format(format) if format is not None else detect_format(path)
    reader = _READERS[fmt]
    _check_options(reader, fmt, options)
    log.debug("reading %s as %s", path, fmt)
    return reader(path, repair=repair, **options)


def write_sites(
    records: Iterable[SiteRecord], path: str | Path, format: str, **options: Any
) -> int:
    """Write ``records`` to ``path`` in ``format``, atomically; returns the number of sites.

    ``iarpa`` writes one site model to a ``.geojson`` path, or a folder of site models (and a
    region model) to any other path; it takes ``region_id`` and ``originator``.
    """
    fmt = _check_format(format)
    writer = _WRITERS[fmt]
    _check_options(writer, fmt, options)
    return writer(records, path, **options)
