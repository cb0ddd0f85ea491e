"""Settings of the web app from the environment (prefix ``SITEWATCH_WEB_``), titiler style.

``SITEWATCH_WEB_BASEMAP_URL``      an online XYZ basemap template (default: none, the UI works offline
                                   on imagery layers and the shipped country outlines)
``SITEWATCH_WEB_BASEMAP_ATTRIBUTION`` its attribution text
``SITEWATCH_WEB_SESSION_HOURS``    how long a browser session lasts (default 12)
``SITEWATCH_WEB_COOKIE_SECURE``    mark cookies ``Secure`` (set it behind HTTPS; default false)
``SITEWATCH_WEB_LOGIN_ATTEMPTS``   failed logins allowed per user and IP per window (default 5)
``SITEWATCH_WEB_LOGIN_WINDOW_S``   the rate-limit window in seconds (default 60)
``SITEWATCH_WEB_TILE_CACHE``       how many rendered tiles to keep in memory (default 512)
"""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["WebSettings"]


class WebSettings(BaseSettings):
    """What the web app reads from ``SITEWATCH_WEB_*`` variables."""

    model_config = SettingsConfigDict(env_prefix="SITEWATCH_WEB_", extra="ignore")

    basemap_url: str | None = None
    basemap_attribution: str = ""
    session_hours: float = 12.0
    cookie_secure: bool = False
    login_attempts: int = 5
    login_window_s: float = 60.0
    tile_cache: int = 512
