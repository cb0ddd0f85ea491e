"""``sitewatch range``: geodesic range rings and targets within range of a launch point."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import click

from ..analysis.ranges import MAX_AZIMUTHS, MIN_AZIMUTHS
from ..errors import InputError
from ..files import write_text
from ._geoinputs import point_or_site, read_geofile
from .options import console, echo_json, json_option

__all__ = ["range_group"]


def _classes(table: Path | None, classes: str | None) -> list:  # type: ignore[type-arg]
    from ..analysis.ranges import load_missile_table, select_classes, table_in_use

    ids = [c.strip() for c in classes.split(",") if c.strip()] if classes else None
    return select_classes(load_missile_table(table) if table else table_in_use(), ids)


def _targets(path: Path) -> list[tuple[str, float, float]]:
    """Named points from a CSV (name, lon, lat columns) or a vector file (name property)."""
    from ..geo import to_crs

    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            cols = {c.lower(): c for c in reader.fieldnames or []}
            lon_c = cols.get("lon") or cols.get("longitude") or cols.get("x")
            lat_c = cols.get("lat") or cols.get("latitude") or cols.get("y")
            name_c = cols.get("name") or cols.get("id")
            if not lon_c or not lat_c:
                raise InputError(f"{path}: needs lon and lat columns (and a name column)")
            out = []
            for n, row in enumerate(reader, 2):
                try:
                    out.append(
                        (
                            (row.get(name_c) if name_c else None) or f"row {n}",
                            float(row[lon_c]),
                            float(row[lat_c]),
                        )
                    )
                except (TypeError, ValueError):
                    raise InputError(f"{path} line {n}: lon/lat are not numbers") from None
            return out
    geoms, props, crs = read_geofile(path)
    out = []
    for i, (g, p) in enumerate(zip(geoms, props, strict=True)):
        if g is None:
            continue
        if not crs.equals("EPSG:4326"):
            g = to_crs(g, crs, "EPSG:4326")
        pt = g if g.geom_type == "Point" else g.representative_point()
        out.append((str(p.get("name") or p.get("id") or f"feature {i}"), pt.x, pt.y))
    return out


def _target_arg(arg: str) -> list[tuple[str, float, float]]:
    """The named points one --target gives: a file's, ``NAME=LON,LAT``, ``LON,LAT`` or a site's."""
    from ._geoinputs import parse_lonlat

    path = Path(arg)
    if path.is_file():
        return _targets(path)
    name, sep, where = arg.rpartition("=")
    if sep and not name.strip():
        raise InputError(f"--target {arg!r}: give a name before '=' (NAME=LON,LAT)")
    if "," in where:
        lon, lat = parse_lonlat(where, "--target")
        return [(name.strip() or where.strip(), lon, lat)]
    if any(c in arg for c in "/\\.") and not sep:
        raise InputError(f"--target {arg!r}: no such file; give a CSV or vector file, "
                         "NAME=LON,LAT, LON,LAT or a catalog site id")  # fmt: skip
    (lon, lat), site_name = point_or_site(where, "--target")
    return [(name.strip() or site_name or where, lon, lat)]


@click.group("range")
def range_group() -> None:
    """Missile range rings and targets within range (table of public ranges with sources)."""


@range_group.command("rings")
@click.option("--from", "origin", required=True, help="Launch point: LON,LAT or a catalog site id.")
@click.option("--classes", help="Comma-separated class ids (default: every class in the table).")
@click.option(
    "--table",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Your own missile table (CSV; default: the shipped one or SITEWATCH_MISSILE_TABLE).",
)
@click.option(
    "--azimuths",
    type=click.IntRange(MIN_AZIMUTHS, MAX_AZIMUTHS),
    default=360,
    show_default=True,
    help="Vertices per ring.",
)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help=".geojson or .kml",
)
@json_option
def rings(
    origin: str, classes: str | None, table: Path | None, azimuths: int, output: Path, as_json: bool
) -> None:
    """Write range rings around a launch point as GeoJSON or KML."""
    from ..analysis.ranges import range_rings, rings_to_geojson, rings_to_kml

    (lon, lat), name = point_or_site(origin, "--from")
    rs = range_rings((lon, lat), _classes(table, classes), n=azimuths, origin_name=name)
    suffix = output.suffix.lower()
    if suffix in (".geojson", ".json"):
        write_text(output, json.dumps(rings_to_geojson(rs)))
    elif suffix == ".kml":
        write_text(output, rings_to_kml(rs, name=f"range rings from {name or f'{lon},{lat}'}"))
    else:
        raise InputError(f"unknown output format {suffix!r}; use .geojson or .kml")
    summary = {"output": str(output), "origin": [lon, lat], "classes": [r.missile.id for r in rs]}
    if as_json:
        echo_json(summary)
    else:
        console().print(f"{len(rs)} ring(s) -> {output}")


@range_group.command("targets")
@click.option("--from", "origin", required=True, help="Launch point: LON,LAT or a catalog site id.")
@click.option(
    "--targets",
    "--target",
    "target_args",
    required=True,
    multiple=True,
    help="A CSV (name,lon,lat) or vector file of named points, NAME=LON,LAT, LON,LAT or a "
    "catalog site id; repeatable.",
)
@click.option("--classes", help="Comma-separated class ids (default: all).")
@click.option(
    "--table",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Your own missile table (CSV; default: the shipped one or SITEWATCH_MISSILE_TABLE).",
)
@json_option
def targets(
    origin: str,
    target_args: tuple[str, ...],
    classes: str | None,
    table: Path | None,
    as_json: bool,
) -> None:
    """Distance, bearing and the classes in range for each target."""
    from ..analysis.ranges import targets_in_range

    (lon, lat), _ = point_or_site(origin, "--from")
    points = [t for arg in target_args for t in _target_arg(arg)]
    res = targets_in_range((lon, lat), points, _classes(table, classes))
    rows = [r.to_dict() for r in res]
    if as_json:
        echo_json(rows)
        return
    from ..geo import compass

    for r in rows:
        console().print(
            f"{r['name']}: {r['distance_km']:,.1f} km, bearing {r['bearing_deg']:.1f}° "
            f"({compass(r['bearing_deg'])}); in range of: {', '.join(r['in_range_of']) or 'none'}",
            highlight=False,
        )  # fmt: skip
