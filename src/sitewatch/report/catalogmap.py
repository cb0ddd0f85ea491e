"""The catalog report's map: every site by status, filled when undeclared, and named where the
names fit (those of crowded sites are left out, and the map says how many)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

__all__ = ["catalog_map"]


def catalog_map(rows: Sequence[Mapping[str, Any]], boundaries: str | Path | None) -> Figure:
    """The catalog report's map: every site by status (filled when undeclared) and named, on
    ``boundaries``' outlines or a lon/lat grid."""
    from .figures import _read_boundaries

    fig = Figure(figsize=(7, 6), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    if boundaries is not None:
        for g in _read_boundaries(Path(boundaries)):
            for part in getattr(g, "geoms", [g]):
                if part.geom_type == "Polygon":
                    xs, ys = part.exterior.xy
                    ax.fill(xs, ys, fc="#f2f2f2", ec="#777777", lw=0.4)
    colours = {
        "suspected": "#ff7f00",
        "confirmed": "#e41a1c",
        "inactive": "#999999",
        "dismantled": "#377eb8",
    }
    for status, colour in colours.items():
        sel = [r for r in rows if r["status"] == status]
        if not sel:
            continue
        lons = np.array([r["lon"] for r in sel])
        lats = np.array([r["lat"] for r in sel])
        filled = np.array([not r["declared"] for r in sel])
        ax.scatter(
            lons[filled], lats[filled], c=colour, edgecolors="black", s=40, label=status, zorder=3
        )
        ax.scatter(
            lons[~filled],
            lats[~filled],
            facecolors="none",
            edgecolors=colour,
            s=40,
            lw=1.5,
            zorder=3,
        )
    mean_lat = float(np.mean([r["lat"] for r in rows]))
    ax.set_aspect(1.0 / max(math.cos(math.radians(mean_lat)), 0.1))
    ax.set_xlabel("longitude (°)")
    ax.set_ylabel("latitude (°)")
    ax.grid(True, alpha=0.3)
    if boundaries is None:  # room around the sites for their names
        xs, ys = [r["lon"] for r in rows], [r["lat"] for r in rows]
        span = max(max(xs) - min(xs), max(ys) - min(ys), 0.2)
        ax.set_xlim(min(xs) - 0.15 * span, max(xs) + 0.15 * span)
        ax.set_ylim(min(ys) - 0.15 * span, max(ys) + 0.15 * span)
    legend = ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    _name_sites(ax, rows, legend)
    return fig


_MAP_NAMES = 40
"""The most sites named on the catalog map; with more, the names would hide the map."""


def _name_sites(ax: Any, rows: Sequence[Mapping[str, Any]], legend: Any) -> None:
    """Each site's name beside its marker, clear of the other names and the legend (up to
    :data:`_MAP_NAMES` sites: those with open alerts, then recorded activity, first). Where
    sites crowd too close for their names at the map's scale, the names that would cover one
    another are left out (the later in that order), and the map says how many."""
    from .figures import label_centres

    ordered = sorted(
        rows, key=lambda r: (-int(r.get("open_alerts") or 0), r["last_activity"] is None)
    )
    ranked = ordered[:_MAP_NAMES]
    frame = ax.get_window_extent()
    box = legend.get_window_extent()
    held = (
        (box.x0 - frame.x0) / frame.width,
        (box.y0 - frame.y0) / frame.height,
        (box.x1 - frame.x0) / frame.width,
        (box.y1 - frame.y0) / frame.height,
    )
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    points = [(float(r["lon"]), float(r["lat"])) for r in ranked]
    centres = label_centres(
        ax,
        points,
        [str(r["name"]) for r in ranked],
        centre=((x0 + x1) / 2, (y0 + y1) / 2),
        offset_fraction=0.07,
        fontsize=7.5,
        box_pad=0.2,
        reserved=(held, (0.0, 0.0, 1.0, 0.045)),  # the legend; the strip of the crowding note
    )
    renderer = ax.get_figure().canvas.get_renderer()
    kept: list[Any] = []
    left_out = len(ordered) - len(ranked)
    for xy, (tx, ty), r in zip(points, centres, ranked, strict=True):
        label = ax.text(
            tx,
            ty,
            str(r["name"]),
            ha="center",
            va="center",
            fontsize=7.5,
            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "#999999", "lw": 0.5},
            zorder=5,
        )
        extent = label.get_window_extent(renderer).padded(3.0)
        if any(extent.overlaps(other) for other in kept):
            label.remove()
            left_out += 1
            continue
        kept.append(extent)
        ax.annotate(
            "",
            xy=xy,
            xytext=(tx, ty),
            arrowprops={"arrowstyle": "-", "color": "#555555", "lw": 0.6},
            zorder=4,
        )
    if left_out:
        ax.text(
            0.01,
            0.01,
            f"{left_out} site name(s) left out where sites crowd; the table lists every site",
            transform=ax.transAxes,
            fontsize=7,
            color="#555555",
            va="bottom",
        )
