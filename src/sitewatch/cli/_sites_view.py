"""How sites and history print on the terminal and in ``--json``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table

from ..catalog._codec import jsonable
from ..catalog.models import HistoryEntry, Site
from .options import table as make_table

__all__ = ["history_table", "site_json", "sites_table"]


def site_json(site: Site) -> dict[str, Any]:
    """The stable JSON form of a site (``aoi`` as GeoJSON or null)."""
    data: dict[str, Any] = jsonable(site)
    return data


def sites_table(sites: Sequence[Site]) -> Table:
    """A rich table of sites."""
    table = make_table(
        "id",
        "name",
        "lat",
        "lon",
        "category",
        "status",
        "declared",
        "tags",
        right=("lat", "lon"),
        whole=("status", "declared"),
    )
    for s in sites:
        table.add_row(
            s.id,
            s.name,
            f"{s.lat:.5f}",
            f"{s.lon:.5f}",
            s.category,
            s.status,
            "yes" if s.declared else "no",
            ", ".join(s.tags),
        )
    return table


def history_table(entries: Sequence[HistoryEntry]) -> Table:
    """A rich table of history entries with the fields that changed."""
    table = make_table(
        "#",
        "when (UTC)",
        "who",
        "what",
        "id",
        "action",
        "changed",
        right=("#",),
        whole=("when (UTC)",),
    )
    for h in entries:
        table.add_row(
            str(h.seq),
            h.at.strftime("%Y-%m-%d %H:%M:%S"),
            h.actor,
            h.entity,
            h.entity_id,
            h.action,
            ", ".join(changed_fields(h)),
        )
    return table


def changed_fields(entry: HistoryEntry) -> list[str]:
    """Names of the fields that differ between before and after."""
    before, after = entry.before or {}, entry.after or {}
    if not before or not after:
        return []
    skip = {"version", "updated_at"}
    return sorted(
        k for k in set(before) | set(after) if k not in skip and before.get(k) != after.get(k)
    )


def attributes_text(attributes: dict[str, Any]) -> str:
    """A feature's attributes as ``sites show`` and ``features list`` print them: numbers to six
    significant digits (``length_m=1086.12``, not ``1086.116015902537``)."""
    return ", ".join(
        f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in attributes.items()
    )
