"""``/api/ranges``: the missile classes' published ranges, and range rings around a site."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from ..deps import Ctx, Viewer
from ._convert import json_response
from .schemas import MissileClassOut

__all__ = ["router"]

router = APIRouter(tags=["ranges"])


@router.get(
    "/api/ranges/classes",
    response_model=list[MissileClassOut],
    summary="Missile classes and their published ranges, with sources",
)
def missile_classes(_: Viewer) -> Response:
    """The table in use (SITEWATCH_MISSILE_TABLE, default the shipped one), read each time: an
    analyst may correct it while the server runs."""
    from dataclasses import asdict

    from ...analysis.ranges import table_in_use

    return json_response([asdict(m) for m in table_in_use()])


@router.get(
    "/api/sites/{site_id}/range-rings",
    summary="Geodesic range rings around a site (GeoJSON)",
    response_description="A FeatureCollection: one ring per class, largest first, and the origin",
)
def site_range_rings(
    site_id: str,
    ctx: Ctx,
    _: Viewer,
    classes: Annotated[list[str] | None, Query(max_length=64)] = None,
    azimuths: Annotated[int, Query(ge=8, le=3600)] = 180,
) -> Response:
    """Rings of ``classes`` (default: every class of the table) around the site's point; a ring
    crossing the antimeridian or holding a pole is split so that a web map draws it."""
    from ...analysis.ranges import range_rings, rings_to_geojson, select_classes, table_in_use

    site = ctx.reader.get_site(site_id)
    chosen = select_classes(table_in_use(), classes)
    rings = range_rings((site.lon, site.lat), chosen, n=azimuths, origin_name=site.name)
    return json_response(rings_to_geojson(rings))
