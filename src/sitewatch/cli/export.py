"""``sitewatch export``: a site as KMZ for Google Earth, or its features as GeoJSON/GeoPackage."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import click

from ..catalog.models import Observation
from ..config import get_settings
from ..errors import SitewatchError
from ._report_inputs import archive_chips, imagery_options, range_rings
from .options import Choice, Finite, console, echo_json, err_console, json_option, open_catalog

__all__ = ["export"]

logger = logging.getLogger(__name__)


@click.group("export")
def export() -> None:
    """Exchange files of a site: KMZ with image overlays, GeoJSON, GeoPackage."""


_RING = click.option(
    "--ring",
    "rings_km",
    type=Finite(min=0, min_open=True),
    multiple=True,
    help="Add a geodesic range ring of this radius in km around the site (repeat).",
)


def _evidence_files(observations: Sequence[Observation]) -> dict[str, Path]:
    """The stored files of the observations' evidence; one missing or altered is left out with
    a warning, so that it does not stop the export."""
    from ..catalog.evidence import EVIDENCE_SCHEME, resolve_evidence

    folder = get_settings().evidence_path
    found: dict[str, Path] = {}
    for ref in {r for o in observations for r in o.evidence if r.startswith(EVIDENCE_SCHEME)}:
        try:
            found[ref] = resolve_evidence(ref, folder)
        except SitewatchError as exc:
            logger.warning("evidence left out of the KMZ: %s", exc)
    return found


@export.command("kmz")
@click.argument("site_id", metavar="SITE")
@click.option(
    "-o",
    "--out",
    "path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Output .kmz file.",
)
@click.option(
    "--overlay",
    "mode",
    type=Choice(["box", "quad"]),
    default="box",
    show_default=True,
    help="box: chips warped to lon/lat (OGC LatLonBox); quad: chip pixels on gx:LatLonQuad.",
)
@_RING
@imagery_options
@json_option
def kmz_cmd(
    site_id: str,
    path: Path,
    mode: str,
    rings_km: tuple[float, ...],
    archive_dir: Path | None,
    max_chips: int,
    no_imagery: bool,
    boundaries: Path | None,
    as_json: bool,
) -> None:
    """Write SITE with its features (their measurements in their balloons), change polygons,
    archived image overlays and observations (with their evidence images) as a KMZ."""
    from ..report._imagery import as_image_chip
    from ..report.kmz import write_site_kmz

    del boundaries  # KMZ has no locator map
    chips, note = archive_chips(site_id, archive_dir, max_chips, no_imagery)
    with open_catalog() as cat, err_console().status(f"writing {path.name}"):
        site = cat.get_site(site_id)
        features = cat.query_features(site_id=site_id)
        changes = cat.list_change_events(site_id)
        observations = cat.list_observations(site_id)
        measurements = cat.list_measurements(site_id=site_id)
        overlays = [as_image_chip(c) for c in chips]
        write_site_kmz(
            path,
            site,
            features,
            overlays=overlays,
            changes=changes,
            rings=range_rings(site.lon, site.lat, rings_km),
            mode=mode,  # type: ignore[arg-type]
            observations=observations,
            evidence_files=_evidence_files(observations),
            measurements=measurements,
        )
    result = {
        "site": site_id,
        "path": str(path),
        "features": len(features),
        "changes": len(changes),
        "overlays": len(overlays),
        "rings": len(rings_km),
        "observations": len(observations),
        "measurements": len(measurements),
    }
    if as_json:
        echo_json(result)
        return
    if note and not no_imagery:
        err_console().print(f"note: {note}")
    console().print(
        f"wrote {path}: {len(features)} features, {len(changes)} change polygons, {len(overlays)} image overlays"
    )


@export.command("features")
@click.argument("site_id", metavar="SITE")
@click.option(
    "-o",
    "--out",
    "path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Output .geojson or .gpkg file.",
)
@_RING
@json_option
def features_cmd(site_id: str, path: Path, rings_km: tuple[float, ...], as_json: bool) -> None:
    """Write SITE's features, change polygons and range rings as GeoJSON or GeoPackage layers."""
    from ..report.exports import site_layers, write_layers

    with open_catalog() as cat:
        site = cat.get_site(site_id)
        layers = site_layers(
            cat.query_features(site_id=site_id),
            cat.list_change_events(site_id),
            range_rings(site.lon, site.lat, rings_km),
        )
    write_layers(layers, path)
    counts = {name: len(rows) for name, rows in layers.items()}
    if as_json:
        echo_json({"site": site_id, "path": str(path), "layers": counts})
        return
    summary = ", ".join(f"{n} {k}" for k, n in counts.items())
    console().print(
        f"wrote {path}: "
        + (summary or "an empty collection (the site has no features, change polygons or rings)")
    )
