"""Settings from the environment (prefix ``SITEWATCH_``), titiler-style.

``SITEWATCH_DATABASE_URL``  catalog URL (default: SQLite file ``catalog.db`` in the home folder)
``SITEWATCH_HOME``          where sitewatch keeps its catalog, archive and cache
``SITEWATCH_SHARED_DATA``   the folder of real shared data read by tests, benchmarks and evaluations
``SITEWATCH_USER``          the analyst recorded in the history (default: the login name)
``SITEWATCH_SCHEDULER``     dask.distributed scheduler address (default: local threads)
``SITEWATCH_SOURCES_FILE``  TOML file of named imagery sources
``SITEWATCH_MONITOR_FILE``  TOML file of monitoring rules and alert sinks
"""

from __future__ import annotations

import getpass
import math
import os
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "config_value", "default_home", "get_settings"]


_KINDS: dict[str, str] = {
    "text": "a text",
    "texts": "a text or a list of texts",
    "table": "a table of texts",
    "number": "a number of at least 0",
    "seconds": "a number of seconds above 0",
    "count": "a whole number of at least 0",
    "flag": "true or false",
}


def config_value(key: str, value: Any, kind: str) -> Any:
    """``value`` of ``key`` in a TOML configuration file (``sources.toml``, ``monitor.toml``),
    checked to be of ``kind`` (see :data:`_KINDS`; ``texts`` makes a lone text a list of one),
    else a :class:`~sitewatch.errors.ConfigError`: a typo (``"false"`` in quotes, ``"30 s"``)
    must not become a silent wrong setting."""
    from .errors import ConfigError

    number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "texts" and isinstance(value, str):
        value = [value]
    ok = {
        "text": isinstance(value, str),
        "texts": isinstance(value, list) and all(isinstance(v, str) for v in value),
        "table": isinstance(value, dict) and all(isinstance(v, str) for v in value.values()),
        "number": number and math.isfinite(value) and value >= 0,
        "seconds": number and math.isfinite(value) and value > 0,
        "count": isinstance(value, int) and not isinstance(value, bool) and value >= 0,
        "flag": isinstance(value, bool),
    }[kind]
    if not ok:
        raise ConfigError(f"{key} must be {_KINDS[kind]}, not {value!r}")
    return value


def default_home() -> Path:
    """The per-user data folder: ``$XDG_DATA_HOME/sitewatch`` or ``~/.local/share/sitewatch``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "sitewatch"


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        return "unknown"


class Settings(BaseSettings):
    """Everything configurable, read from ``SITEWATCH_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="SITEWATCH_", extra="ignore")

    home: Path = Field(default_factory=default_home)
    database_url: str | None = None
    shared_data: Path = Path("../shared/data")
    user: str = Field(default_factory=_user)
    scheduler: str | None = None
    sources_file: Path | None = None
    monitor_file: Path | None = None
    archive_dir: Path | None = None
    cache_dir: Path | None = None
    evidence_dir: Path | None = None
    missile_table: Path | None = None
    """The missile classes' ranges (CSV); default: the table shipped with sitewatch."""

    @property
    def catalog_url(self) -> str:
        """The catalog database URL, defaulting to a SQLite file in :attr:`home`."""
        if self.database_url:
            return self.database_url
        return self.default_catalog_url

    @property
    def default_catalog_url(self) -> str:
        """The SQLite file ``catalog.db`` in :attr:`home`, the catalog without a URL given."""
        return f"sqlite:///{(self.home / 'catalog.db').resolve()}"

    @property
    def archive_path(self) -> Path:
        """The local imagery archive folder."""
        return self.archive_dir or self.home / "archive"

    @property
    def cache_path(self) -> Path:
        """The download cache folder."""
        return self.cache_dir or self.home / "cache"

    @property
    def evidence_path(self) -> Path:
        """The folder of observations' evidence files (a shared folder for a team)."""
        return self.evidence_dir or self.home / "evidence"

    @property
    def monitor_path(self) -> Path:
        """The TOML file of monitoring rules and alert sinks."""
        return self.monitor_file or self.home / "monitor.toml"

    @property
    def sources_path(self) -> Path:
        """The TOML file of named imagery sources."""
        return self.sources_file or self.home / "sources.toml"


def get_settings() -> Settings:
    """Read the settings now (not cached, so tests and the CLI can change the environment)."""
    return Settings()
