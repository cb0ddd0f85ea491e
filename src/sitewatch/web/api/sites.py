"""``/api/sites``: list with filters, read, create, edit, delete, history and imagery of sites."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from ...catalog.models import Site, site_id_for
from ...geo import parse_bbox as geo_bbox
from ...imagery._bands import display_composite
from ...types import BBox
from ..deps import Analyst, Ctx, Viewer
from ._convert import cached_json, dumps, geometry, json_response, patch_fields
from .schemas import ChipOut, HistoryOut, SiteIn, SiteOut, SitePatch

__all__ = ["router"]

router = APIRouter(prefix="/api/sites", tags=["sites"])

_NUM = r"-?\d+(?:\.\d+)?"
BBOX_PATTERN = rf"^{_NUM},{_NUM},{_NUM},{_NUM}$"


def parse_bbox(text: str | None) -> BBox | None:
    """``west,south,east,north`` in degrees, or None."""
    return geo_bbox(text, "bbox") if text else None


@router.get("", response_model=list[SiteOut], summary="List sites")
async def list_sites(
    request: Request,
    ctx: Ctx,
    _: Viewer,
    q: Annotated[
        str | None, Query(max_length=200, description="text in id, name, aliases, notes")
    ] = None,
    bbox: Annotated[
        str | None, Query(description="west,south,east,north (degrees)", pattern=BBOX_PATTERN)
    ] = None,
    status: Annotated[list[str] | None, Query()] = None,
    category: Annotated[list[str] | None, Query()] = None,
    tag: Annotated[list[str] | None, Query()] = None,
    declared: bool | None = None,
    limit: Annotated[int | None, Query(ge=1, le=100000)] = None,
) -> Response:
    """Sites matching every given filter, by name."""
    box = parse_bbox(bbox)
    return await cached_json(
        ctx,
        request,
        lambda: ctx.reader.query_sites(
            bbox=box,
            text=q,
            status=status,
            category=category,
            tags=tag,
            declared=declared,
            limit=limit,
        ),
    )


@router.post("", response_model=SiteOut, status_code=201, summary="Create a site")
def create_site(body: SiteIn, ctx: Ctx, who: Analyst) -> Response:
    """Store a new site (analyst)."""
    site_id = body.id or site_id_for(body.name)
    site = Site(
        id=site_id,
        name=body.name,
        lon=body.lon,
        lat=body.lat,
        aoi=geometry(body.aoi, "aoi"),
        aliases=tuple(body.aliases),
        country=body.country,
        category=body.category,
        status=body.status,
        declared=body.declared,
        declaration_ref=body.declaration_ref,
        confidence=body.confidence,
        tags=tuple(body.tags),
        notes=body.notes,
    )
    return json_response(ctx.catalog(who).add_site(site), 201)


@router.get("/{site_id}", response_model=SiteOut, summary="Read a site")
async def get_site(site_id: str, request: Request, ctx: Ctx, _: Viewer) -> Response:
    return await cached_json(ctx, request, lambda: ctx.reader.get_site(site_id))


@router.patch("/{site_id}", response_model=SiteOut, summary="Edit a site")
def edit_site(site_id: str, body: SitePatch, ctx: Ctx, who: Analyst) -> Response:
    """Change the given fields; ``version`` must be the one read (409 if it changed since)."""
    cat = ctx.catalog(who)
    site = cat.get_site(site_id)
    sent = patch_fields(body, nullable=("aoi", "country", "declaration_ref", "confidence"))
    changes: dict[str, Any] = {
        k: v
        for k, v in sent.items()
        if k not in ("aoi", "clear_aoi", "aliases", "tags", "source_ids")
    }
    if body.source_ids is not None:
        changes["source_ids"] = tuple(body.source_ids)
    if body.aliases is not None:
        changes["aliases"] = tuple(body.aliases)
    if body.tags is not None:
        changes["tags"] = tuple(body.tags)
    if body.aoi is not None:
        changes["aoi"] = geometry(body.aoi, "aoi")
    elif body.clear_aoi:
        changes["aoi"] = None
    edited = replace(site, **changes, version=body.version)
    return json_response(cat.update_site(edited))


@router.delete("/{site_id}", status_code=204, summary="Delete a site")
def delete_site(
    site_id: str, ctx: Ctx, who: Analyst, version: Annotated[int | None, Query(ge=1)] = None
) -> Response:
    """Delete a site and its records (the history keeps a full snapshot)."""
    ctx.catalog(who).delete_site(site_id, version=version)
    return Response(status_code=204)


@router.get("/{site_id}/history", response_model=list[HistoryOut], summary="History of a site")
def site_history(
    site_id: str, ctx: Ctx, _: Viewer, limit: Annotated[int, Query(ge=1, le=10000)] = 200
) -> Response:
    """Who changed the site and its features and records, when, from what to what (the newest
    ``limit`` entries, oldest first)."""
    ctx.reader.get_site(site_id)
    return json_response(ctx.reader.history(site_id=site_id, limit=limit))


@router.get("/{site_id}/imagery", response_model=list[ChipOut], summary="Imagery of a site")
def site_imagery(site_id: str, request: Request, ctx: Ctx, _: Viewer) -> Response:
    """The archived chips of a site, oldest first, each with its tile URL template."""
    ctx.cached(f"site exists: {site_id}", lambda: dumps(ctx.reader.get_site(site_id).id))
    chips = ctx.tiles.chips(site_id)
    root = request.scope.get("root_path", "")
    return json_response(
        [
            {
                "item": c.item_id,
                "scene": c.scene_id,
                "datetime": c.datetime,
                "sensor": c.sensor,
                "bands": list(c.bands),
                "resolution": c.resolution,
                "cloud_fraction": c.cloud_fraction,
                "coverage": c.coverage,
                "colours": display_composite(c.bands, len(c.bands))[1],
                "credit": c.credit,
                "tiles": f"{root}/tiles/{site_id}/{c.item_id}/{{z}}/{{x}}/{{y}}.png",
            }
            for c in chips
        ]
    )
