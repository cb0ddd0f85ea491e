"""Conversions between the catalog's dataclasses and the wire formats."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry
from starlette.concurrency import run_in_threadpool

from ...catalog._codec import jsonable
from ...errors import GeometryError, InputError

if TYPE_CHECKING:
    from ..deps import AppContext

__all__ = ["cached_json", "dumps", "geometry", "json_response", "out", "out_list", "patch_fields"]


def geometry(obj: dict[str, Any] | None, what: str) -> BaseGeometry | None:
    """A shapely geometry from GeoJSON; :class:`GeometryError` naming ``what`` when it is not one."""
    if obj is None:
        return None
    try:
        geom = shape(obj)
    except Exception as exc:  # shapely raises many types on bad GeoJSON
        raise GeometryError(
            f"{what} is not a GeoJSON geometry ({exc}); send e.g. "
            '{"type": "Point", "coordinates": [lon, lat]}'
        ) from None
    if geom.is_empty:
        raise GeometryError(f"{what} is empty")
    return geom


def out(obj: Any) -> Any:
    """A JSON-ready form of a catalog value (or a list of them)."""
    return jsonable(obj)


def dumps(data: Any) -> bytes:
    """Compact JSON bytes of a catalog value."""
    return json.dumps(
        out(data), ensure_ascii=False, separators=(",", ":"), allow_nan=False
    ).encode()


def json_response(data: Any, status_code: int = 200) -> Response:
    """A JSON response without a second validation pass (the data is already JSON-ready)."""
    return Response(dumps(data), status_code=status_code, media_type="application/json")


async def cached_json(ctx: AppContext, request: Request, compute: Callable[[], Any]) -> Response:
    """A JSON response of a catalog read, cached until the catalog changes.

    A current cached body is answered on the event loop (see :meth:`AppContext.peek`); the
    database reads of a miss run in a worker thread.
    """
    key = request.scope["path"] + "?" + request.scope["query_string"].decode("latin-1")
    body = ctx.peek(key)
    if body is None:
        body = await run_in_threadpool(ctx.cached, key, lambda: dumps(compute()))
    return Response(body, media_type="application/json")


def out_list(items: Iterable[Any]) -> list[Any]:
    """JSON-ready forms of many values."""
    return [jsonable(i) for i in items]


def patch_fields(body: BaseModel, nullable: Collection[str] = ()) -> dict[str, Any]:
    """The fields a PATCH request sent (``version`` apart); a ``null`` for a field that cannot be
    empty is an :class:`InputError` (400) naming it, not a database error."""
    sent = body.model_dump(exclude_unset=True, exclude={"version"})
    bad = sorted(k for k, v in sent.items() if v is None and k not in nullable)
    if bad:
        raise InputError(
            f"{', '.join(bad)} cannot be null: send a value, or leave the field out to keep it"
        )
    return sent
