"""The one table mapping sitewatch exceptions to HTTP status codes (titiler's ``core/errors.py``).

The most specific class listed for an exception wins (the table is searched along the exception's
MRO), so ``SiteNotFound`` is a 404 because ``NotFound`` is, and any other ``SitewatchError`` is a 400.
Bodies are ``{"detail": message, "error": class name}``.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ..errors import (
    AnalysisError,
    ArchiveError,
    AuthError,
    ConfigError,
    ConflictError,
    DuplicateError,
    ImageryError,
    InputError,
    MissingExtraError,
    NoScenesFound,
    NotFound,
    SitewatchError,
    SourceError,
)

__all__ = ["STATUS_CODES", "add_exception_handlers", "status_for"]

log = logging.getLogger(__name__)

STATUS_CODES: dict[type[Exception], int] = {
    SitewatchError: 400,
    InputError: 400,
    AnalysisError: 422,
    NotFound: 404,
    NoScenesFound: 404,
    DuplicateError: 409,
    ConflictError: 409,
    AuthError: 403,
    MissingExtraError: 501,
    ImageryError: 422,
    ArchiveError: 500,
    SourceError: 502,
    ConfigError: 500,
}


def status_for(exc: Exception) -> int:
    """The HTTP status of ``exc``: the entry of the nearest class in its MRO (500 if none)."""
    for cls in type(exc).__mro__:
        code = STATUS_CODES.get(cls)
        if code is not None:
            return code
    return 500


async def _handle(request: Request, exc: Exception) -> JSONResponse:
    code = status_for(exc)
    if code >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, exc)
    return JSONResponse({"detail": str(exc), "error": type(exc).__name__}, status_code=code)


def add_exception_handlers(app: FastAPI) -> None:
    """Register the table's handler for every sitewatch exception."""
    app.add_exception_handler(SitewatchError, _handle)
