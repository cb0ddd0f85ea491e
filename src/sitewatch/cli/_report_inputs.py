"""Shared inputs of ``sitewatch report`` and ``sitewatch export``: archive chips, boundaries, rings."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click
from shapely.geometry import mapping

from ..config import get_settings
from ..errors import ArchiveError, ImageryError
from ..geo import geodesic_buffer

__all__ = ["archive_chips", "imagery_options", "range_rings"]

log = logging.getLogger(__name__)


def imagery_options(func: Any) -> Any:
    """``--archive``, ``--max-chips``, ``--no-imagery``, ``--boundaries``."""
    for option in reversed(
        [
            click.option(
                "--archive",
                "archive_dir",
                type=click.Path(file_okay=False, path_type=Path),
                default=None,
                help="Local imagery archive (default: SITEWATCH_ARCHIVE_DIR or SITEWATCH_HOME/archive).",
            ),
            click.option(
                "--max-chips",
                type=click.IntRange(min=1),
                default=12,
                show_default=True,
                help="Use at most this many of the newest archived chips.",
            ),
            click.option("--no-imagery", is_flag=True, help="Leave imagery out."),
            click.option(
                "--boundaries",
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                envvar="SITEWATCH_BOUNDARIES",
                default=None,
                help="Vector file of country/province outlines for locator maps (env SITEWATCH_BOUNDARIES).",
            ),
        ]
    ):
        func = option(func)
    return func


def archive_chips(
    site_id: str, archive_dir: Path | None, max_chips: int, no_imagery: bool
) -> tuple[list[Any], str]:
    """The newest archived chips of a site (oldest first) and a note when there are none."""
    if no_imagery:
        return [], "Imagery was left out of this brief (--no-imagery)."
    from ..imagery.archive import Archive

    root = archive_dir or get_settings().archive_path
    try:
        chips = Archive(root).chips(site_id)
    except (ArchiveError, ImageryError, OSError) as exc:
        log.warning("cannot read the imagery archive %s: %s", root, exc)
        return (
            [],
            f"The imagery archive {root} could not be read ({exc}); this brief has no image figures.",
        )
    if not chips:
        return [], (
            f"No imagery of this site is in the local archive ({root}), so this brief has no image "
            "figures; fetch chips into the archive and write the brief again."
        )
    return list(chips[-max_chips:]), ""


def range_rings(lon: float, lat: float, radii_km: tuple[float, ...]) -> list[dict[str, Any]]:
    """Geodesic range rings around a point as GeoJSON features."""
    return [
        {
            "type": "Feature",
            "geometry": mapping(geodesic_buffer(lon, lat, km * 1000.0)),
            "properties": {"label": f"{km:g} km", "radius_m": km * 1000.0},
        }
        for km in sorted(radii_km)
    ]
