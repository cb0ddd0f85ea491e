"""``/api/sources``: the citations behind the catalog; sites cite them by id (``source_ids``)."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from ...catalog.models import Source, source_id_for
from ..deps import Analyst, Ctx, Viewer
from ._convert import cached_json, json_response, patch_fields
from .schemas import SourceIn, SourceOut, SourcePatch

__all__ = ["router"]

router = APIRouter(prefix="/api/sources", tags=["sources"])


@router.get("", response_model=list[SourceOut], summary="List sources")
async def list_sources(request: Request, ctx: Ctx, _: Viewer) -> Response:
    return await cached_json(ctx, request, ctx.reader.list_sources)


@router.post("", response_model=SourceOut, status_code=201, summary="Add a source")
def add_source(body: SourceIn, ctx: Ctx, who: Analyst) -> Response:
    """Store a citation (analyst); cite it from a site with PATCH /api/sites/{id} source_ids."""
    source = Source(
        id=body.id or source_id_for(body.citation),
        citation=body.citation,
        url=body.url,
        licence=body.licence,
        accessed=body.accessed,
        notes=body.notes,
    )
    return json_response(ctx.catalog(who).add_source(source), 201)


@router.patch("/{source_id}", response_model=SourceOut, summary="Edit a source")
def edit_source(source_id: str, body: SourcePatch, ctx: Ctx, who: Analyst) -> Response:
    """Change the given fields (null clears url, licence or accessed); ``version`` must be the
    one read (409 if it changed since)."""
    cat = ctx.catalog(who)
    source = cat.get_source(source_id)
    changes = patch_fields(body, nullable=("url", "licence", "accessed"))
    return json_response(cat.update_source(replace(source, **changes, version=body.version)))


@router.delete("/{source_id}", status_code=204, summary="Delete a source no site cites")
def delete_source(
    source_id: str, ctx: Ctx, who: Analyst, version: Annotated[int | None, Query(ge=1)] = None
) -> Response:
    """Delete a source (409 naming the sites while any cites it; the history keeps it)."""
    ctx.catalog(who).delete_source(source_id, version=version)
    return Response(status_code=204)
