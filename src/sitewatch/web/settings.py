"""Settings of the web app from the environment (prefix ``SITEWATCH_WEB_``), titiler style.

``SITEWATCH_WEB_BASEMAP_URL``      an online XYZ basemap template (default: none, the UI works offline
                                   on imagery layers and the shipped country outlines)
``SITEWATCH_WEB_BASEMAP_ATTRIBUTION`` its attribution text
``SITEWATCH_WEB_SESSION_HOURS``    how long a browser session lasts (default 12)
``SITEWATCH_WEB_COOKIE_SECURE``    mark cookies ``Secure`` (set it behind HTTPS; default false)
``SITEWATCH_WEB_LOGIN_ATTEMPTS``   failed logins allowed per user and IP per window (default 5)
``SITEWATCH_WEB_LOGIN_WINDOW_S``   the rate-limit window in seconds (default 60)
``SITEWATCH_WEB_TILE_CACHE``       how many rendered tiles to keep in memory (default 512)
``SITEWATCH_WEB_TILE_ZLEVEL``      PNG compression of rendered tiles, 1 (fast, the default) to 9
                                   (smallest); level 1 encodes 1.3-2.4x faster than GDAL's default
                                   6 for 8-20% larger tiles
``SITEWATCH_WEB_TILE_CHIP_CACHE_MB`` memory for chips decoded for drawing tiles, per process
                                   (default 256; 0: draw every tile with rio-tiler). A tile of a held
                                   chip renders in ~1-2 ms instead of ~13; a chip over a quarter of
                                   it is drawn by rio-tiler
``SITEWATCH_WEB_TILE_THREADS``     tiles rendered at once per process (default 0: one per CPU core);
                                   more requests wait their turn, so a burst of new tiles neither
                                   slows every render down nor takes the threads of other requests
``SITEWATCH_WEB_AUTH_CACHE_S``     seconds a token or session lookup is remembered (default 2; 0: ask
                                   the database on every request). Logout, revoking a token or
                                   removing a user through the server take effect at once; the same
                                   done with the CLI within this time.
``SITEWATCH_WEB_DEM``              a DEM covering the sites (GeoTIFF, SRTM .hgt, a VRT mosaic of
                                   tiles): site pages then show where each site and its features
                                   sit on the terrain (as ``sitewatch terrain landform``)
``SITEWATCH_WEB_THREADS``          worker threads for blocking work (database reads that miss the
                                   response cache, writes, tile rendering) per process (default
                                   40, anyio's; cached reads and tiles are answered without one)
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["WebSettings"]


class WebSettings(BaseSettings):
    """What the web app reads from ``SITEWATCH_WEB_*`` variables."""

    model_config = SettingsConfigDict(env_prefix="SITEWATCH_WEB_", extra="ignore")

    dem: Path | None = None
    """A DEM covering the sites (GeoTIFF, SRTM .hgt, a VRT mosaic): the site page's Terrain."""
    basemap_url: str | None = None
    basemap_attribution: str = ""
    session_hours: float = 12.0
    cookie_secure: bool = False
    login_attempts: int = 5
    login_window_s: float = 60.0
    tile_cache: int = 512
    tile_zlevel: int = Field(1, ge=1, le=9)
    tile_chip_cache_mb: float = Field(256.0, ge=0)
    tile_threads: int = Field(0, ge=0)
    auth_cache_s: float = 2.0
    threads: int = Field(40, ge=1)
