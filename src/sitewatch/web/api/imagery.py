"""``/tiles``: XYZ PNG tiles of archived chips, by site and item (or scene) id."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from anyio import to_thread
from fastapi import APIRouter, Path, Request, Response

from ..deps import Ctx, Viewer

__all__ = ["router"]

router = APIRouter(tags=["imagery"])

_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,255}$"


_CACHE_CONTROL = "private, max-age=3600"


@router.get(
    "/tiles/{site_id}/{item}/{z}/{x}/{y}.png",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}}},
        304: {"description": "not modified (the If-None-Match ETag is current)"},
    },
    summary="A map tile of a chip",
)
async def tile(
    site_id: Annotated[str, Path(pattern=_ID)],
    item: Annotated[str, Path(pattern=_ID)],
    z: Annotated[int, Path(ge=0, le=24)],
    x: Annotated[int, Path(ge=0)],
    y: Annotated[int, Path(ge=0)],
    request: Request,
    ctx: Ctx,
    _: Viewer,
) -> Response:
    """Web Mercator tile ``z/x/y`` of the chip (transparent outside it).

    Answers carry an ``ETag``; a request whose ``If-None-Match`` names it gets 304.
    """
    # a cached tile is answered on the event loop; rendering runs in a worker thread, at most
    # SITEWATCH_WEB_TILE_THREADS at once
    found = ctx.tiles.lookup(site_id, item, z, x, y)
    if found is None:
        render = partial(ctx.tiles.render, site_id, item, z, x, y)
        found = await to_thread.run_sync(render, limiter=ctx.tile_limiter)
    headers = {"Cache-Control": _CACHE_CONTROL, "ETag": found.etag}
    sent = request.headers.get("if-none-match", "")
    if sent and (
        sent.strip() == "*" or found.etag in (s.strip().removeprefix("W/") for s in sent.split(","))
    ):
        return Response(status_code=304, headers=headers)
    return Response(found.png, media_type="image/png", headers=headers)
