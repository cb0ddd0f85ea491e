"""``/tiles``: XYZ PNG tiles of archived chips, by site and item (or scene) id."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response
from starlette.concurrency import run_in_threadpool

from ..deps import Ctx, Viewer

__all__ = ["router"]

router = APIRouter(tags=["imagery"])

_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,255}$"


@router.get(
    "/tiles/{site_id}/{item}/{z}/{x}/{y}.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
    summary="A map tile of a chip",
)
async def tile(
    site_id: Annotated[str, Path(pattern=_ID)],
    item: Annotated[str, Path(pattern=_ID)],
    z: Annotated[int, Path(ge=0, le=24)],
    x: Annotated[int, Path(ge=0)],
    y: Annotated[int, Path(ge=0)],
    ctx: Ctx,
    _: Viewer,
) -> Response:
    """Web Mercator tile ``z/x/y`` of the chip (transparent outside it)."""
    png = await run_in_threadpool(ctx.tiles.tile, site_id, item, z, x, y)
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})
