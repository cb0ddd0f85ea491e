"""``/api/features``: features of sites (portals, berms, shelters, ...), drawn and edited on the map."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response

from ...catalog.models import Feature, new_id
from ..deps import Analyst, Ctx, Viewer
from ._convert import cached_json, geometry, json_response, patch_fields
from .records import MEASUREMENTS_CHOICE
from .schemas import FeatureIn, FeatureOut, FeaturePatch
from .sites import BBOX_PATTERN, parse_bbox

__all__ = ["router"]

router = APIRouter(tags=["features"])


@router.get(
    "/api/sites/{site_id}/features", response_model=list[FeatureOut], summary="Features of a site"
)
async def site_features(site_id: str, request: Request, ctx: Ctx, _: Viewer) -> Response:
    def compute() -> object:
        ctx.reader.get_site(site_id)
        return ctx.reader.query_features(site_id=site_id)

    return await cached_json(ctx, request, compute)


@router.get("/api/features", response_model=list[FeatureOut], summary="Search features")
def list_features(
    ctx: Ctx,
    _: Viewer,
    bbox: Annotated[
        str | None, Query(description="west,south,east,north", pattern=BBOX_PATTERN)
    ] = None,
    kind: Annotated[list[str] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=100000)] = 1000,
) -> Response:
    return json_response(ctx.reader.query_features(bbox=parse_bbox(bbox), kind=kind, limit=limit))


@router.post(
    "/api/sites/{site_id}/features",
    response_model=FeatureOut,
    status_code=201,
    summary="Add a feature",
)
def add_feature(site_id: str, body: FeatureIn, ctx: Ctx, who: Analyst) -> Response:
    geom = geometry(body.geometry, "geometry")
    assert geom is not None
    feature = Feature(
        id=new_id(),
        site_id=site_id,
        kind=body.kind,
        geometry=geom,
        name=body.name,
        attributes=body.attributes,
        first_seen=body.first_seen,
        last_seen=body.last_seen,
    )
    return json_response(ctx.catalog(who).add_feature(feature), 201)


@router.get("/api/features/{feature_id}", response_model=FeatureOut, summary="Read a feature")
def get_feature(feature_id: str, ctx: Ctx, _: Viewer) -> Response:
    return json_response(ctx.reader.get_feature(feature_id))


@router.patch("/api/features/{feature_id}", response_model=FeatureOut, summary="Edit a feature")
def edit_feature(feature_id: str, body: FeaturePatch, ctx: Ctx, who: Analyst) -> Response:
    cat = ctx.catalog(who)
    feature = cat.get_feature(feature_id)
    sent = patch_fields(body, nullable=("first_seen", "last_seen", "geometry"))
    changes: dict[str, Any] = {k: v for k, v in sent.items() if k != "geometry"}
    if body.geometry is not None:
        changes["geometry"] = geometry(body.geometry, "geometry")
    return json_response(cat.update_feature(replace(feature, **changes, version=body.version)))


@router.delete(
    "/api/features/{feature_id}",
    status_code=204,
    summary="Delete a feature",
    responses={409: {"description": "The feature has measurements and no `measurements` choice"}},
)
def delete_feature(
    feature_id: str,
    ctx: Ctx,
    who: Analyst,
    version: Annotated[int | None, Query(ge=1)] = None,
    measurements: Annotated[Literal["keep", "delete"] | None, MEASUREMENTS_CHOICE] = None,
) -> Response:
    ctx.catalog(who).delete_feature(
        feature_id, version=version, measurements=measurements or "refuse"
    )
    return Response(status_code=204)
