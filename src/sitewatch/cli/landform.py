"""``sitewatch terrain landform``: elevation, slope, facing and relief of a site and its features,
and whether its terrain counts as mountainous (see :mod:`sitewatch.analysis.landform`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from ..errors import InputError
from ..types import FEATURE_KINDS
from ._geoinputs import point_or_site
from .options import Choice, Finite, console, echo_json, json_option, open_catalog

__all__ = ["landform_cmd"]

_KAPOS = {
    1: "at least 4,500 m",
    2: "3,500-4,500 m",
    3: "2,500-3,500 m",
    4: "1,500-2,500 m with a slope of at least 2°",
    5: "1,000-1,500 m with a slope of at least 5° or over 300 m of relief within 7 km",
    6: "300-1,000 m with over 300 m of relief within 7 km",
}


@click.command("landform")
@click.argument("dem", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--site", "site_id", help="A catalog site: its point, and its mapped features.")
@click.option("--point", help="LON,LAT instead of a site.")
@click.option(
    "--kind",
    "kinds",
    type=Choice(FEATURE_KINDS),
    multiple=True,
    help="With --site: only features of this kind (repeatable), e.g. ugf_portal.",
)
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
    from ..analysis.landform import landform
    from ..analysis.terrain import read_dem

    if (site_id is None) == (point is None):
        raise InputError("give --site SITE or --point LON,LAT (one of them)")
    if kinds and site_id is None:
        raise InputError("--kind picks features of --site")
    places: list[tuple[str | None, str | None, Any]] = []
    if site_id is not None:
        with open_catalog() as cat:
            site = cat.get_site(site_id)
            features = cat.query_features(site_id=site_id)
        where, title = (site.lon, site.lat), f"{site.name} ({site.id})"
        places = [
            (f.id, f.name or f.kind.replace("_", " "), f.geometry)
            for f in features
            if not kinds or f.kind in kinds
        ]
        kinds_of: dict[str, str] = {f.id: str(f.kind) for f in features}
    else:
        assert point is not None
        where, _ = point_or_site(point, "--point")
        title, kinds_of = f"{where[0]:.5f},{where[1]:.5f}", {}
    form = landform(read_dem(dem), where[0], where[1], radius_m=radius, places=places)
    if as_json:
        echo_json({"dem": str(dem), **form.to_dict()})
        return
    out = console()
    out.print(f"{title}: terrain from {dem.name} ({form.cell_m:g} m cells)", highlight=False)
    for line in _lines(form, kinds_of, "site" if site_id is not None else "point"):
        out.print(f"  {line}", highlight=False)


def _place_text(p: Any) -> str:
    from ..analysis.landform import compass

    facing = (
        f"facing {compass(p.facing_deg)} ({p.facing_deg:.0f}°)"
        if p.facing_deg is not None
        else "flat"
    )
    return f"{p.elevation_m:,.0f} m, slope {p.slope_deg:.1f}°, {facing}"


def _lines(form: Any, kinds_of: Mapping[str, str], what: str) -> list[str]:
    r = f"{form.radius_m:,.0f} m"
    lines = [
        f"at the {what}: {_place_text(form.site)}; {form.site.below_top_m:,.0f} m below the "
        f"highest ground within {r}",
        f"within {r}: {form.lowest_m:,.0f}-{form.highest_m:,.0f} m (relief "
        f"{form.relief_m:,.0f} m), mean slope {form.mean_slope_deg:.1f}°, "
        f"{100 * form.steep_share:.0f}% of the ground steeper than 20°",
    ]
    covered = (
        ""
        if form.ler_coverage >= 0.995
        else f"; the DEM covers {100 * form.ler_coverage:.0f}% of that circle"
    )
    ler = f"relief within 7 km {form.ler_m:,.0f} m{covered}"
    if form.mountainous:
        lines.append(
            f"mountainous: Kapos et al. (2000) class {form.mountain_class}, "
            f"{_KAPOS[form.mountain_class]} ({ler})"
        )
    else:
        lines.append(f"not mountainous by Kapos et al. (2000) ({ler})")
    if form.places:
        lines.append("features:")
    for p in form.places:
        head = f"{p.name} ({kinds_of.get(p.id or '', '').replace('_', ' ')})".replace(" ()", "")
        if p.elevation_m != p.elevation_m:  # NaN: off the DEM
            lines.append(f"  {head}: outside the DEM")
            continue
        lines.append(
            f"  {head}: {_place_text(p)}, {p.below_top_m:,.0f} m below the highest ground "
            f"within {r} of the site"
        )
    return lines
