"""Analyses on arrays and value objects: they never open the catalog or the network."""

from __future__ import annotations

__all__ = ["sun"]
