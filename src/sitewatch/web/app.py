"""The FastAPI application factory: REST API, tiles, and the browser UI's static files.

``create_app(catalog_url)`` builds an app over a catalog (``SITEWATCH_DATABASE_URL`` or the default
SQLite file when not given). The API is documented at ``/docs`` (OpenAPI at ``/openapi.json``);
the UI is served from ``/`` out of the built assets shipped in ``sitewatch/web/static``.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from anyio import CapacityLimiter, to_thread
from fastapi import FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..catalog.store import Catalog
from ..config import get_settings
from .api import ROUTERS
from .api.reports import ReportJobs
from .api.schemas import ERRORS
from .auth import LoginLimiter
from .deps import AppContext
from .errors import add_exception_handlers
from .settings import WebSettings
from .tiles import TileRenderer
from .users import UserStore

__all__ = ["STATIC_DIR", "create_app"]

log = logging.getLogger(__name__)

_DOC_PAGES = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})
STATIC_DIR = Path(str(resources.files("sitewatch.web").joinpath("static")))


class SecurityHeaders:
    """Adds a strict Content-Security-Policy and related headers to every response."""

    def __init__(self, app: ASGIApp, basemap_url: str | None = None) -> None:
        self.app = app
        img = "'self' data: blob:"
        if basemap_url:
            parts = urlsplit(basemap_url.replace("{s}", "a"))
            host = parts.netloc.replace("a.", "*.", 1) if "{s}" in basemap_url else parts.netloc
            img += f" {parts.scheme}://{host}"
        csp = (
            "default-src 'self'; "
            f"img-src {img}; "
            "style-src 'self'; script-src 'self'; connect-src 'self'; "
            "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
        )
        self.base = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"same-origin"),
            (b"x-frame-options", b"DENY"),
        ]
        self.headers = [(b"content-security-policy", csp.encode()), *self.base]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # FastAPI's /docs and /redoc pages load their viewers from a CDN: no CSP there
        extra = self.base if scope["path"] in _DOC_PAGES else self.headers

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(
    catalog_url: str | None = None,
    *,
    archive_root: Path | str | None = None,
    settings: WebSettings | None = None,
) -> FastAPI:
    """The sitewatch web app over the catalog at ``catalog_url``.

    ``archive_root`` is the imagery archive whose chips are served as tiles (default: the
    ``SITEWATCH_ARCHIVE_DIR`` / ``SITEWATCH_HOME/archive`` setting).
    """
    core = get_settings()
    web = settings or WebSettings()
    url = catalog_url or core.catalog_url
    archive = Path(archive_root) if archive_root is not None else core.archive_path
    reader = Catalog(url, actor="web")
    workdir = Path(tempfile.mkdtemp(prefix="sitewatch-web-"))
    ctx = AppContext(
        catalog_url=url,
        settings=web,
        archive_root=archive,
        workdir=workdir,
        evidence_root=core.evidence_path,
        reader=reader,
        users=UserStore.for_catalog(reader, cache_s=web.auth_cache_s),
        tiles=TileRenderer(
            archive,
            cache_size=web.tile_cache,
            zlevel=web.tile_zlevel,
            chip_cache_mb=web.tile_chip_cache_mb,
        ),
        limiter=LoginLimiter(web.login_attempts, web.login_window_s),
    )
    jobs = ReportJobs(reader, workdir, chips=ctx.tiles.chips, dem=web.dem)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # blocking handlers (sync endpoints, tile rendering) share this many threads
        to_thread.current_default_thread_limiter().total_tokens = web.threads
        ctx.tile_limiter = CapacityLimiter(web.tile_threads or os.cpu_count() or 2)
        yield
        jobs.close()
        ctx.close()
        shutil.rmtree(workdir, ignore_errors=True)

    app = FastAPI(
        title="sitewatch",
        version=__version__,
        description=(
            "Review and edit the site catalog: sites, features, observations, measurements, "
            "change events, alerts, search candidates, reports and imagery tiles.\n\n"
            "Authenticate with `Authorization: Bearer <token>` (`sitewatch users token NAME`) or "
            "a browser session (`POST /api/auth/login`; unsafe requests then need the "
            "`X-CSRF-Token` header). Reads need the viewer role, writes analyst."
        ),
        lifespan=lifespan,
    )
    app.state.sitewatch = ctx
    app.state.report_jobs = jobs
    add_exception_handlers(app)
    for router in ROUTERS:
        app.include_router(router, responses=ERRORS)
    _mount_ui(app)
    app.add_middleware(SecurityHeaders, basemap_url=web.basemap_url)
    log.info("web app over %s, archive %s", reader.safe_url, archive)
    return app


def _mount_ui(app: FastAPI) -> None:
    index = STATIC_DIR / "index.html"

    @app.get("/", include_in_schema=False, response_model=None)
    def ui() -> Any:
        if not index.is_file():
            return RedirectResponse("/docs")
        return FileResponse(index, headers={"Cache-Control": "no-cache"})

    if STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
