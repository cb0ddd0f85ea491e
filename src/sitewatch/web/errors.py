"""The one table mapping sitewatch exceptions to HTTP status codes (titiler's ``core/errors.py``).

The most specific class listed for an exception wins (the table is searched along the exception's
MRO), so ``SiteNotFound`` is a 404 because ``NotFound`` is, and any other ``SitewatchError`` is a 400.
Bodies are ``{"detail": message, "error": class name}``.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
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


def _json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as text: strict JSON has no literal for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


async def _invalid(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 body, which would fail to encode when the rejected input was NaN (500)."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else [str(exc)]
    return JSONResponse({"detail": _json_safe(jsonable_encoder(errors))}, status_code=422)


def add_exception_handlers(app: FastAPI) -> None:
    """Register the table's handler for every sitewatch exception, and the 422 of bad bodies."""
    app.add_exception_handler(SitewatchError, _handle)
    app.add_exception_handler(RequestValidationError, _invalid)
