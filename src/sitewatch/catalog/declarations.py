"""Diffing the catalog against a declaration: what is undeclared, what is declared but unknown."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..geo import geodesic_distance
from .models import Declaration, DeclaredSite, Site, slugify

__all__ = ["DeclarationDiff", "diff_declaration"]


@dataclass(frozen=True)
class DeclarationDiff:
    """The result of comparing catalog sites with a declaration."""

    declaration_id: str
    matched: tuple[tuple[DeclaredSite, Site], ...]
    undeclared: tuple[Site, ...]
    """Catalog sites that the declaration does not list."""
    unknown: tuple[DeclaredSite, ...]
    """Declared sites that the catalog does not hold."""


def _names(site: Site) -> set[str]:
    return {slugify(n) for n in (site.name, *site.aliases)} | {site.id}


def diff_declaration(
    sites: Sequence[Site], declaration: Declaration, *, radius_m: float = 2000.0
) -> DeclarationDiff:
    """Match declared entries to sites by name or alias, else by distance within ``radius_m``.

    Each site matches at most one entry; the closest site wins a coordinate match.
    """
    free = {s.id: s for s in sites}
    by_name: dict[str, str] = {}
    for s in sites:
        for n in _names(s):
            by_name.setdefault(n, s.id)
    matched: list[tuple[DeclaredSite, Site]] = []
    unknown: list[DeclaredSite] = []
    for entry in declaration.entries:
        sid = by_name.get(slugify(entry.name))
        if sid is not None and sid in free:
            matched.append((entry, free.pop(sid)))
            continue
        if entry.lon is not None and entry.lat is not None and free:
            best = min(
                free.values(),
                key=lambda s: geodesic_distance(entry.lon, entry.lat, s.lon, s.lat),  # type: ignore[arg-type]
            )
            if geodesic_distance(entry.lon, entry.lat, best.lon, best.lat) <= radius_m:
                matched.append((entry, free.pop(best.id)))
                continue
        unknown.append(entry)
    undeclared = tuple(s for s in sites if s.id in free)
    return DeclarationDiff(declaration.id, tuple(matched), undeclared, tuple(unknown))
