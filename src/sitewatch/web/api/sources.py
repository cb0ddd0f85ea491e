"""``/api/sources``: the citations behind the catalog; sites cite them by id (``source_ids``)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ...catalog.models import Source, source_id_for
from ..deps import Analyst, Ctx, Viewer
from ._convert import cached_json, json_response
from .schemas import SourceIn, SourceOut

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
