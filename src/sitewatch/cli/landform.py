"""``sitewatch terrain landform``: elevation, slope, facing and relief of a site and its features,
and whether its terrain counts as mountainous (see :mod:`sitewatch.analysis.landform`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from ..errors import InputError
from ._geoinputs import point_or_site
from .options import Finite, console, echo_json, json_option, open_catalog, site_kind_option

__all__ = ["landform_cmd"]


@click.command("landform")
@click.argument("dem", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--site", "site_id", help="A catalog site: its point, and its mapped features.")
@click.option("--point", help="LON,LAT instead of a site.")
@site_kind_option
@click.option(
    "--radius",
    type=Finite(min=0, min_open=True),
    default=1000.0,
    show_default=True,
    help="Radius (m) of the surroundings: relief, mean slope, steep share.",
)
@json_option
def landform_cmd(
    dem: Path,
    site_id: str | None,
    point: str | None,
    kinds: Sequence[str],
    radius: float,
    as_json: bool,
) -> None:
    """Where SITE sits on the terrain of DEM: elevation, slope and facing of the site and of each
    of its features, the relief and steepness around it, and whether it is mountainous by the
    UNEP-WCMC definition (Kapos et al. 2000)."""
    from ..analysis.landform import feature_places, landform_from_file, landform_lines

    if (site_id is None) == (point is None):
        raise InputError("give --site SITE or --point LON,LAT (one of them)")
    if kinds and site_id is None:
        raise InputError("--kind picks features of --site")
    places: list[tuple[str | None, str | None, Any]] = []
    kinds_of: dict[str, str] = {}
    if site_id is not None:
        with open_catalog() as cat:
            site = cat.get_site(site_id)
            features = cat.query_features(site_id=site_id)
        where, title = (site.lon, site.lat), f"{site.name} ({site.id})"
        places, kinds_of = feature_places(f for f in features if not kinds or f.kind in kinds)
    else:
        assert point is not None
        where, _ = point_or_site(point, "--point")
        title = f"{where[0]:.5f},{where[1]:.5f}"
    form = landform_from_file(dem, where[0], where[1], radius_m=radius, places=places)
    if as_json:
        echo_json({"dem": str(dem), **form.to_dict()})
        return
    out = console()
    out.print(f"{title}: terrain from {dem.name} ({form.cell_m:g} m cells)", highlight=False)
    lines, per_feature = landform_lines(form, kinds_of, "site" if site_id is not None else "point")
    for line in lines:
        out.print(f"  {line}", highlight=False)
    if per_feature:
        out.print("  features:", highlight=False)
    for line in per_feature:
        out.print(f"    {line}", highlight=False)
