"""The web app: a FastAPI service (REST API, tiles) and a browser UI over the catalog.

Needs the ``web`` extra (``pip install 'sitewatch[web]'``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["create_app"]


def create_app(catalog_url: str | None = None, **options: Any) -> FastAPI:
    """Build the app (see :func:`sitewatch.web.app.create_app`); names the extra if missing."""
    try:
        from .app import create_app as _create
    except ImportError as exc:
        from ..errors import MissingExtraError

        raise MissingExtraError(exc.name or "fastapi", "web", "the web app") from exc
    return _create(catalog_url, **options)
