"""``/api/auth``: log in and out, who am I; ``/api/config``: what the UI needs to start."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse

from ...errors import AuthError
from ...types import (
    ACTIVITY_PHASES,
    FEATURE_KINDS,
    MEASUREMENT_KINDS,
    SITE_CATEGORIES,
    SITE_STATUSES,
)
from ..auth import CSRF_COOKIE, SESSION_COOKIE, authenticate
from ..deps import Ctx, Viewer
from .schemas import ConfigOut, LoginIn, MeOut
from .tools import mensuration_backend

__all__ = ["router"]

router = APIRouter(tags=["auth"])


@router.post(
    "/api/auth/login",
    response_model=MeOut,
    summary="Log in (sets the session and CSRF cookies)",
    responses={
        401: {"description": "wrong user name or password"},
        429: {"description": "too many failed attempts"},
    },
)
def login(body: LoginIn, request: Request, ctx: Ctx) -> Response:
    """Check the password and start a browser session."""
    client = request.client.host if request.client else "?"
    key = f"{body.username.lower()}|{client}"
    wait = ctx.limiter.retry_after(key)
    if wait is not None:
        raise HTTPException(
            429,
            detail=f"too many failed logins for {body.username!r}; try again in {wait} s",
            headers={"Retry-After": str(wait)},
        )
    try:
        user = ctx.users.authenticate(body.username, body.password)
    except AuthError as exc:
        ctx.limiter.failed(key)
        raise HTTPException(401, detail=str(exc)) from None
    ctx.limiter.succeeded(key)
    secret, csrf = ctx.users.create_session(user.username, hours=ctx.settings.session_hours)
    resp = JSONResponse({"username": user.username, "role": user.role, "csrf": csrf})
    max_age = int(ctx.settings.session_hours * 3600)
    secure = ctx.settings.cookie_secure
    resp.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=max_age,
        httponly=True,
        samesite="strict",
        secure=secure,
        path="/",
    )
    resp.set_cookie(
        CSRF_COOKIE,
        csrf,
        max_age=max_age,
        httponly=False,
        samesite="strict",
        secure=secure,
        path="/",
    )
    return resp


@router.post("/api/auth/logout", status_code=204, summary="Log out")
def logout(request: Request, ctx: Ctx) -> Response:
    """End the browser session (needs the CSRF header like every write)."""
    principal = authenticate(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    if principal.via == "session" and cookie:
        ctx.users.end_session(cookie)
    resp = Response(status_code=204)
    resp.delete_cookie(SESSION_COOKIE, path="/")
    resp.delete_cookie(CSRF_COOKIE, path="/")
    return resp


@router.get("/api/auth/me", response_model=MeOut, summary="Who am I")
def me(who: Viewer) -> MeOut:
    return MeOut(username=who.username, role=who.user.role, csrf=who.csrf)


@router.get("/api/config", response_model=ConfigOut, summary="UI configuration")
def config(ctx: Ctx) -> ConfigOut:
    """Vocabularies, basemap and capabilities (public: the login page reads it)."""
    from .reports import _SUFFIX

    return ConfigOut(
        basemap_url=ctx.settings.basemap_url,
        basemap_attribution=ctx.settings.basemap_attribution,
        categories=list(SITE_CATEGORIES),
        statuses=list(SITE_STATUSES),
        feature_kinds=list(FEATURE_KINDS),
        measurement_kinds=list(MEASUREMENT_KINDS),
        phases=list(ACTIVITY_PHASES),
        report_formats=list(_SUFFIX),
        mensuration=mensuration_backend(),
    )
