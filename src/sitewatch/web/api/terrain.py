"""``/api/sites/{id}/landform``: where a site and its features sit on the terrain of the DEM the
server is given (``SITEWATCH_WEB_DEM``), as ``sitewatch terrain landform`` prints it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from ...errors import NotFound
from ..deps import Ctx, Viewer
from ._convert import json_response

__all__ = ["router"]

router = APIRouter(tags=["terrain"])


@router.get(
    "/api/sites/{site_id}/landform",
    summary="Elevation, slope, facing and relief of a site and its features; mountainous or not",
)
def site_landform(
    site_id: str,
    ctx: Ctx,
    _: Viewer,
    radius: Annotated[float, Query(gt=0, le=50_000)] = 1000.0,
) -> Response:
    """The landform (see :mod:`sitewatch.analysis.landform`) with its lines in words: ``lines``
    about the site, ``features`` one per mapped feature. 404 when the server has no DEM."""
    from ...analysis.landform import feature_places, landform_from_file, landform_lines

    dem = ctx.settings.dem
    if dem is None:
        raise NotFound(
            "no DEM is configured on this server: set SITEWATCH_WEB_DEM to a DEM covering the "
            "sites (GeoTIFF, SRTM .hgt or a VRT mosaic) and restart it"
        )
    site = ctx.reader.get_site(site_id)
    places, kinds = feature_places(ctx.reader.query_features(site_id=site_id))
    form = landform_from_file(dem, site.lon, site.lat, radius_m=radius, places=places)
    lines, per_feature = landform_lines(form, kinds)
    return json_response(
        {"dem": dem.name, **form.to_dict(), "lines": lines, "features": per_feature}
    )
