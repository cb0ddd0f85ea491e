"""``/api/users``: user management (admin) and personal API tokens."""

from __future__ import annotations

from fastapi import APIRouter, Response

from ..deps import Admin, Ctx, Viewer
from ._convert import json_response
from .schemas import TokenOut, UserIn, UserOut

__all__ = ["router"]

router = APIRouter(prefix="/api/users", tags=["users"])


@router.get("", response_model=list[UserOut], summary="List users (admin)")
def list_users(ctx: Ctx, _: Admin) -> Response:
    return json_response([u.to_dict() for u in ctx.users.all()])


@router.post("", response_model=UserOut, status_code=201, summary="Add a user (admin)")
def add_user(body: UserIn, ctx: Ctx, who: Admin) -> Response:
    user = ctx.users.add(body.username, body.password, body.role, by=who.username)
    return json_response(user.to_dict(), 201)


@router.delete("/{username}", status_code=204, summary="Remove a user (admin)")
def remove_user(username: str, ctx: Ctx, _: Admin) -> Response:
    ctx.users.remove(username)
    return Response(status_code=204)


@router.post("/me/tokens", response_model=TokenOut, status_code=201, summary="New API token")
def new_token(ctx: Ctx, who: Viewer, name: str = "web") -> Response:
    """A personal API token for scripts (``Authorization: Bearer ...``); shown only once."""
    token, secret = ctx.users.create_token(who.username, name[:128] or "web")
    return json_response({"id": token.id, "name": token.name, "token": secret}, 201)
