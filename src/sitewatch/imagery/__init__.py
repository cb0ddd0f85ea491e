"""Imagery: scenes from local folders and STAC catalogs, site chips on one grid, cubes, an archive.

Typical use::

    from sitewatch.imagery import ChipGrid, LocalSource, build_cube

    with LocalSource("/data/naip") as src:
        scenes = src.search(aoi, "2010-01-01", "2020-12-31")
        cube = build_cube(scenes, ChipGrid.around(lon, lat, 1000, 5), source=src)
"""

from __future__ import annotations

import logging

from .archive import Archive, ArchivedChip, FetchResult, download
from .chips import Chip, ChipGrid, cloud_score, cut_chip, read_chip
from .coregister import Shift, apply_shift, estimate_shift
from .cube import build_cube, stack_chips
from .scene import Scene, scene_from_item
from .sources import ImagerySource, LocalSource, NamePattern, SceneReader, SearchQuery, find_scenes
from .sources.config import load_source_config, open_source
from .sources.stac import StacSource

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "Archive",
    "ArchivedChip",
    "Chip",
    "ChipGrid",
    "FetchResult",
    "ImagerySource",
    "LocalSource",
    "NamePattern",
    "Scene",
    "SceneReader",
    "SearchQuery",
    "Shift",
    "StacSource",
    "apply_shift",
    "build_cube",
    "cloud_score",
    "cut_chip",
    "download",
    "estimate_shift",
    "find_scenes",
    "load_source_config",
    "open_source",
    "read_chip",
    "scene_from_item",
    "stack_chips",
]
