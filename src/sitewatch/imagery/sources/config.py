"""Named imagery sources from a TOML file (``Settings.sources_path``), and sources given as paths.

Example ``sources.toml``::

    [sources.earth-search]
    type = "stac-api"
    url = "https://earth-search.aws.element84.com/v1"
    collections = ["sentinel-2-l2a"]

    [sources.local-naip]
    type = "local"
    path = "/data/naip"
    bands = ["red", "green", "blue", "nir"]     # optional: band order of unnamed multi-band files
    patterns = ['(?P<date>\\d{8})']              # optional: file-name regexes
    sensor = "naip"                              # optional
    credit = "USDA Farm Service Agency"          # optional: "Image © ..." in figures

    [sources.vendor]
    type = "local"
    path = "/data/vendor-deliveries"
    credit = "Maxar Technologies"                # commercial imagery: its licence's credit line

    [sources.scenario]
    type = "stac-static"
    path = "/data/scenario/catalog.json"

    [sources.office-stac]
    type = "stac-api"
    url = "http://10.0.0.7:8080"
    allow_private = true                         # a server on the analyst's own network, on purpose

STAC URLs must resolve to public addresses unless the source sets ``allow_private = true``
(server-side request forgery guard, :func:`sitewatch.network.check_url`). ``headers`` (API keys)
are sent to the server only; they are never logged.

``credit`` is what report figures, briefs and KMZ overlays credit the source's images with
("Image © ..."); without it, a scene's STAC providers or its sensor's public programme
(Copernicus Sentinel, USGS Landsat, USDA NAIP) are credited, and other images say "provider
not recorded".
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...config import Settings, config_value, get_settings
from ...errors import ConfigError
from .base import ImagerySource
from .local import LocalSource
from .stac import StacSource

__all__ = ["BUILTIN_SOURCES", "load_source_config", "open_source", "source_from_config"]

BUILTIN_SOURCES: dict[str, dict[str, Any]] = {
    "earth-search": {
        "type": "stac-api",
        "url": "https://earth-search.aws.element84.com/v1",
        "collections": ["sentinel-2-l2a", "landsat-c2-l2"],
    },
}
"""Sources known without any configuration (public, no sign-in)."""

_TYPES = ("local", "stac-api", "stac-static")


def load_source_config(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """Built-in sources overlaid with the ``[sources.NAME]`` tables of the TOML file (if it exists)."""
    path = path or get_settings().sources_path
    out = {k: dict(v) for k, v in BUILTIN_SOURCES.items()}
    if not path.is_file():
        return out
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read the sources file {path}: {exc}") from exc
    tables = data.get("sources", {})
    if not isinstance(tables, dict):
        raise ConfigError(f"{path}: [sources] must be a table of [sources.NAME] tables")
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: sources.{name} must be a table")
        kind = table.get("type")
        if kind not in _TYPES:
            raise ConfigError(
                f"{path}: sources.{name} has type {kind!r}; use one of {', '.join(_TYPES)}"
            )
        need = "path" if kind in ("local",) else "url" if kind == "stac-api" else None
        if need and not table.get(need):
            raise ConfigError(f"{path}: sources.{name} ({kind}) needs `{need} = ...`")
        if kind == "stac-static" and not (table.get("path") or table.get("url")):
            raise ConfigError(f"{path}: sources.{name} (stac-static) needs `path = ...`")
        try:
            out[name] = _checked(table, _KEYS[kind])
        except ConfigError as exc:
            raise ConfigError(f"{path}: sources.{name}: {exc}") from None
    return out


_KEYS: dict[str, dict[str, str]] = {
    "local": {"type": "text", "path": "text", "bands": "texts", "patterns": "texts",
              "sensor": "text", "credit": "text"},
    "stac-api": {"type": "text", "url": "text", "collections": "texts", "headers": "table",
                 "timeout": "seconds", "retries": "count", "allow_private": "flag",
                 "credit": "text"},
    "stac-static": {"type": "text", "path": "text", "url": "text", "collections": "texts",
                    "timeout": "seconds", "retries": "count", "allow_private": "flag",
                    "credit": "text"},
}  # fmt: skip
"""The keys each type of source takes, and what each holds."""


def _checked(table: Mapping[str, Any], keys: Mapping[str, str]) -> dict[str, Any]:
    """``table`` with its values checked against ``keys`` (:func:`~sitewatch.config.config_value`);
    an unknown key, a typo, is refused rather than ignored."""
    unknown = sorted(set(table) - set(keys))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(unknown)}; this type takes {', '.join(sorted(keys))}"
        )
    return {key: config_value(key, value, keys[key]) for key, value in table.items()}


def source_from_config(
    name: str, table: Mapping[str, Any], base: Path | None = None, *, allow_private: bool = False
) -> ImagerySource:
    """Build one source from its TOML table (relative paths are relative to ``base``).

    ``allow_private`` (or ``allow_private = true`` in the table) lets a STAC source reach private
    and loopback addresses.
    """
    kind = table.get("type")

    def resolve(p: str) -> str:
        q = Path(p).expanduser()
        return str(q if q.is_absolute() or base is None or "://" in p else base / q)

    source: ImagerySource
    if kind == "local":
        source = LocalSource(
            resolve(str(table["path"])),
            patterns=list(table.get("patterns", [])),
            bands=table.get("bands"),
            sensor=table.get("sensor"),
            name=name,
        )
    elif kind in ("stac-api", "stac-static"):
        href = str(table.get("url") or table.get("path"))
        source = StacSource(
            resolve(href) if kind == "stac-static" else href,
            collections=table.get("collections"),
            static=kind == "stac-static",
            headers=table.get("headers"),
            timeout=float(table.get("timeout", 30.0)),
            retries=int(table.get("retries", 3)),
            name=name,
            allow_private=allow_private or table.get("allow_private") is True,
        )
    else:
        raise ConfigError(
            f"source {name!r} has unknown type {kind!r}; use one of {', '.join(_TYPES)}"
        )
    credit = table.get("credit")
    if credit is not None and (not isinstance(credit, str) or not credit.strip()):
        raise ConfigError(
            f"source {name!r}: credit must be the text figures credit its images with, e.g. "
            'credit = "Maxar Technologies"'
        )
    source.credit = credit.strip() if credit else None
    return source


def open_source(
    spec: str, settings: Settings | None = None, *, allow_private: bool = False
) -> ImagerySource:
    """A source by configured name, or by path (folder, ``catalog.json``) or STAC API URL.

    A URL given here must resolve to a public address unless ``allow_private`` is set
    (``--allow-private``); a configured source may opt in with ``allow_private = true``.
    """
    settings = settings or get_settings()
    configs = load_source_config(settings.sources_path)
    if spec in configs:
        return source_from_config(
            spec, configs[spec], settings.sources_path.parent, allow_private=allow_private
        )
    if "://" in spec and not spec.startswith("file://"):
        return StacSource(spec, allow_private=allow_private)
    path = Path(spec.removeprefix("file://")).expanduser()
    if path.is_file() and path.suffix.lower() == ".json":
        return StacSource(str(path), static=True)
    if path.is_dir():
        if (path / "catalog.json").is_file() or (path / "collection.json").is_file():
            return StacSource(str(path), static=True)
        return LocalSource(path)
    if path.is_file():
        return LocalSource(path)
    raise ConfigError(
        f"unknown imagery source {spec!r}: not a configured name ({', '.join(sorted(configs))}), "
        f"not an existing folder or catalog.json, not a URL; configure it in {settings.sources_path}"
    )
