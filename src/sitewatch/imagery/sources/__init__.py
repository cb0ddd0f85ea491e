"""Imagery sources: local folders and STAC catalogs behind one :class:`ImagerySource` ABC."""

from __future__ import annotations

from .base import ImagerySource, SceneReader, SearchQuery, find_scenes
from .local import LocalSource, NamePattern

__all__ = [
    "ImagerySource",
    "LocalSource",
    "NamePattern",
    "SceneReader",
    "SearchQuery",
    "find_scenes",
]
