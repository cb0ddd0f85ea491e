"""Annotated imagery as published in think-tank reports, before/after pairs and activity plots.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot (no global state,
Agg rendering); :func:`save_figure` writes it as PNG, SVG or PDF atomically. Figures carry:

* labelled callouts with arrows whose tips sit on the features (lon/lat geometries are projected
  into the chip's CRS);
* a scale bar of a round, true ground length (geodesic, so the UTM scale factor is accounted for
  and noted in the caption);
* a north arrow pointing to true north (grid convergence from the CRS);
* a caption with date, sensor, source and "Image © provider";
* an inset locator map: the site on a country/region outline read from a vector file given at run
  time (``boundaries=``), or on a lon/lat graticule without one.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from matplotlib import patheffects
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from shapely.geometry.base import BaseGeometry

from ..errors import InputError
from ..files import atomic_path
from ._cartography import (
    ScaleBar,
    lonlat_of,
    north_angle,
    scale_bar,
    transformer_to,
)
from ._imagery import NO_IMAGE_FILL, ImageChip, Stretch, has_gaps, percentile_stretch, to_rgb
from ._labels import place_labels

__all__ = [
    "FEATURE_COLOURS",
    "PHASE_COLOURS",
    "Annotation",
    "FigureLayout",
    "activity_figure",
    "annotated_figure",
    "before_after_figure",
    "caption_text",
    "save_figure",
]

log = logging.getLogger(__name__)

FEATURE_COLOURS: dict[str, str] = {
    "ugf_portal": "#e41a1c",
    "berm": "#ff7f00",
    "drive_through_shelter": "#ffd92f",
    "hq": "#377eb8",
    "barracks": "#4daf4a",
    "revetment": "#984ea3",
    "road": "#a65628",
    "support": "#66c2a5",
    "launch_pad": "#f781bf",
    "building": "#8da0cb",
    "spoil": "#b3b3b3",
    "fence": "#1b9e77",
    "other": "#00e5ff",
    "change": "#ff00ff",
}
"""Colour of each feature kind, shared by figures and KMZ styles."""

PHASE_COLOURS: dict[str, str] = {
    "no_activity": "#d9d9d9",
    "site_preparation": "#fdd49e",
    "active_construction": "#fc8d59",
    "post_construction": "#91bfdb",
}

_HALO = [patheffects.withStroke(linewidth=2.5, foreground="black")]
_HEADER_IN = 0.45
_FOOTER_IN = 0.75


@dataclass(frozen=True)
class Annotation:
    """A labelled feature to call out: geometry in ``crs`` (lon/lat by default)."""

    geometry: BaseGeometry
    label: str
    kind: str = "other"
    crs: str = "EPSG:4326"
    colour: str | None = None

    @property
    def color(self) -> str:
        """The callout colour: ``colour`` or the colour of the kind."""
        return self.colour or FEATURE_COLOURS.get(self.kind, FEATURE_COLOURS["other"])

    @classmethod
    def from_feature(cls, feature: Any) -> Annotation:
        """From a catalog :class:`~sitewatch.catalog.models.Feature` (lon/lat geometry)."""
        label = feature.name or str(feature.kind).replace("_", " ")
        return cls(feature.geometry, label, str(feature.kind))


@dataclass(frozen=True)
class FigureLayout:
    """Sizes of a figure: width in inches, resolution, and where the furniture goes."""

    width_in: float = 8.0
    dpi: int = 100
    locator: bool = True
    scale_bar_fraction: float = 0.25
    extra: dict[str, Any] = field(default_factory=dict)


# --- geometry helpers ------------------------------------------------------------------------


def _title(fig: Figure, title: str | None, height_in: float) -> None:
    """The bold figure title, centred in the header band."""
    if title:
        fig.text(
            0.5,
            1 - 0.5 * _HEADER_IN / height_in,
            title,
            ha="center",
            va="center",
            fontsize=13,
            fontweight="bold",
        )


def _in_crs(ann: Annotation, crs: str) -> BaseGeometry:
    if ann.crs == crs:
        return ann.geometry
    if ann.crs not in ("EPSG:4326", "OGC:CRS84"):
        from ..geo import to_crs

        return to_crs(ann.geometry, ann.crs, crs)
    t = transformer_to(crs)
    return shapely.transform(
        ann.geometry, lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1]))
    )


def _anchor(geom: BaseGeometry) -> tuple[float, float]:
    p = geom if geom.geom_type == "Point" else geom.representative_point()
    return float(p.x), float(p.y)


def _draw_geometry(ax: Axes, geom: BaseGeometry, colour: str) -> None:
    parts = list(getattr(geom, "geoms", [geom]))
    for part in parts:
        if part.geom_type == "Polygon":
            for ring in [part.exterior, *part.interiors]:
                xs, ys = ring.xy
                ax.plot(xs, ys, color=colour, lw=1.6)
        elif part.geom_type in ("LineString", "LinearRing"):
            xs, ys = part.xy
            ax.plot(xs, ys, color=colour, lw=1.6)


# pixels without an image show light grey (NO_IMAGE_FILL); the caption says so
_NO_IMAGE_NOTE = "Light grey: no image there (outside the scene, nodata or masked)."


# furniture the callouts keep clear of, in axes fractions (x0, y0, x1, y1): the scale bar at the
# bottom left and the north arrow at the top right
_FURNITURE = ((0.0, 0.0, 0.32, 0.14), (0.86, 0.72, 1.0, 1.0))


def label_centres(
    ax: Axes,
    anchors: Sequence[tuple[float, float]],
    labels: Sequence[str],
    *,
    centre: tuple[float, float],
    offset_fraction: float,
    fontsize: float = 9.0,
    box_pad: float = 0.3,
    reserved: Sequence[tuple[float, float, float, float]] = (),
) -> list[tuple[float, float]]:
    """Where, in data coordinates, to put the labels of points ``anchors`` of ``ax`` so that they
    clear one another and the ``reserved`` boxes (axes fractions): each preferably straight out
    from ``centre`` at ``offset_fraction`` of the axes' smaller side (:func:`._labels.place_labels`).
    Call it once the axes' limits and position are final; the labels are ``fontsize`` points
    with a box ``box_pad`` font sizes wide around them."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = ax.get_figure()
    assert isinstance(fig, Figure)
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)  # text extents need a renderer; saving to PDF/SVG still works
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    ax.apply_aspect()
    to_px = ax.transData
    frame = ax.get_window_extent(renderer)
    pad = box_pad * fontsize * fig.dpi / 72.0 + 2.0  # the label box's pad and edge
    sizes = []
    for label in labels:
        probe = ax.text(0.0, 0.0, label, fontsize=fontsize)
        ext = probe.get_window_extent(renderer)
        probe.remove()
        sizes.append((ext.width + 2 * pad, ext.height + 2 * pad))
    points = [(float(px), float(py)) for px, py in to_px.transform(np.asarray(anchors, float))]
    cx, cy = (float(v) for v in to_px.transform(centre))
    preferred = []
    for i, (px, py) in enumerate(points):
        near = math.hypot(px - cx, py - cy) < 1e-6 * max(frame.width, frame.height)
        preferred.append(math.radians(45 + 90 * i) if near else math.atan2(py - cy, px - cx))
    boxes = [
        (
            frame.x0 + f[0] * frame.width,
            frame.y0 + f[1] * frame.height,
            frame.x0 + f[2] * frame.width,
            frame.y0 + f[3] * frame.height,
        )
        for f in reserved
    ]
    inset = 4.0
    placed = place_labels(
        points,
        sizes,
        (frame.x0 + inset, frame.y0 + inset, frame.x1 - inset, frame.y1 - inset),
        preferred=preferred,
        offset=offset_fraction * min(frame.width, frame.height),
        reserved=boxes,
    )
    back = to_px.inverted()
    return [(float(x), float(y)) for x, y in back.transform(np.asarray(placed, float))]


def _callouts(
    ax: Axes,
    chip: ImageChip,
    annotations: Sequence[Annotation],
    reserved: Sequence[tuple[float, float, float, float]] = (),
) -> None:
    """Outline each feature and call it out with a label whose arrow tip sits on it.

    Labels are placed clear of one another and of the figure's furniture (``reserved`` adds boxes
    in axes fractions, such as the locator map) by :func:`._labels.place_labels`.
    """
    left, right, bottom, top = chip.extent
    shown: list[tuple[Annotation, tuple[float, float]]] = []
    for ann in annotations:
        geom = _in_crs(ann, chip.crs)
        _draw_geometry(ax, geom, ann.color)
        x, y = _anchor(geom)
        if not (left <= x <= right and bottom <= y <= top):
            log.info("feature %r lies outside the image; not annotated", ann.label)
            continue
        shown.append((ann, (x, y)))
    if not shown:
        return
    centres = label_centres(
        ax,
        [xy for _, xy in shown],
        [ann.label for ann, _ in shown],
        centre=((left + right) / 2, (bottom + top) / 2),
        offset_fraction=0.2,
        reserved=(*_FURNITURE, *reserved),
    )
    for (ann, xy), (tx, ty) in zip(shown, centres, strict=True):
        # the arrows go below every label box, so that no leader runs across a label
        ax.annotate(
            "",
            xy=xy,
            xytext=(tx, ty),
            textcoords="data",
            arrowprops={
                "arrowstyle": "-|>",
                "color": ann.color,
                "lw": 2.0,
                "shrinkA": 0,
                "shrinkB": 0,
                "mutation_scale": 14,
            },
            zorder=5,
        )
        ax.text(
            tx,
            ty,
            ann.label,
            ha="center",
            va="center",
            fontsize=9,
            color="black",
            bbox={"boxstyle": "round,pad=0.3", "fc": "white", "ec": ann.color, "lw": 1.5},
            zorder=5.5,
        )


def _scale_bar(ax: Axes, chip: ImageChip, bar: ScaleBar) -> None:
    left, right, bottom, top = chip.extent
    w, h = right - left, top - bottom
    x0, y0 = left + 0.04 * w, bottom + 0.05 * h
    thick = 0.012 * h
    ax.add_patch(Rectangle((x0, y0), bar.units, thick, fc="white", ec="black", lw=0.6, zorder=6))
    ax.text(
        x0 + bar.units / 2,
        y0 + thick + 0.01 * h,
        bar.label,
        ha="center",
        va="bottom",
        color="white",
        fontsize=9,
        fontweight="bold",
        path_effects=_HALO,
        zorder=6,
    )


def _north_arrow(ax: Axes, angle_deg: float) -> None:
    a = math.radians(angle_deg)
    tip = (0.93, 0.86)
    length = 28.0  # points
    for colour, lw, scale in (("black", 4.0, 19), ("white", 2.2, 16)):  # white on a black halo
        ax.annotate(
            "",
            xy=tip,
            xycoords="axes fraction",
            xytext=(-length * math.sin(a), -length * math.cos(a)),
            textcoords="offset points",
            arrowprops={"arrowstyle": "-|>", "color": colour, "lw": lw, "mutation_scale": scale},
            zorder=7,
        )
    ax.annotate(
        "N",
        xy=tip,
        xycoords="axes fraction",
        xytext=(8 * math.sin(a), 8 * math.cos(a)),
        textcoords="offset points",
        ha="center",
        va="center",
        color="white",
        fontsize=11,
        fontweight="bold",
        path_effects=_HALO,
        zorder=7,
    )


def caption_text(chip: ImageChip, *, extra: str = "", bar: ScaleBar | None = None) -> str:
    """The caption: date, sensor, resolution, source, "Image © provider" and the scale note."""
    parts = []
    if chip.date_text:
        parts.append(chip.date_text)
    if chip.sensor:
        parts.append(chip.sensor)
    parts.append(
        f"{chip.resolution:g} m grid" if _is_metric(chip.crs) else f"{chip.resolution:g}° grid"
    )
    if colours := chip.composite_text():
        parts.append(colours)
    line1 = " · ".join(parts)
    # once: "Source: X. Image © X." said the same thing twice
    credit = f"Image © {chip.source}" if chip.source else "Image © provider not recorded"
    lines = [line1, f"{credit}."]
    if bar is not None:
        lines.append(bar.note(chip.crs) + ".")
    if has_gaps(chip):
        lines.append(_NO_IMAGE_NOTE)
    if extra:
        lines.append(extra)
    return "\n".join(lines)


def _is_metric(crs: str) -> bool:
    from ._cartography import _crs

    return not _crs(crs).is_geographic


# --- locator map ----------------------------------------------------------------------------


def _read_boundaries(path: Path) -> list[BaseGeometry]:
    import pyogrio

    from ..geo import to_crs

    info = pyogrio.read_info(path)
    _, _, wkb, _ = pyogrio.raw.read(path, read_geometry=True, columns=[])
    geoms = [g for g in shapely.from_wkb(wkb) if g is not None and not g.is_empty]
    src = info.get("crs") or "EPSG:4326"
    out = []
    for g in geoms:
        if src not in ("EPSG:4326", "OGC:CRS84"):
            g = to_crs(g, src, "EPSG:4326")
        out.append(g.simplify(0.01, preserve_topology=True))
    return out


def _locator(
    fig: Figure,
    rect: tuple[float, float, float, float],
    lon: float,
    lat: float,
    boundaries: str | Path | None,
) -> Axes:
    ax = fig.add_axes(rect)
    ax.set_facecolor("white")
    geoms: list[BaseGeometry] = []
    if boundaries is not None:
        path = Path(boundaries)
        if not path.exists():
            raise InputError(
                f"boundaries file {path} does not exist; give a vector file of country or "
                "province outlines (shapefile, GeoPackage, GeoJSON) or leave it out"
            )
        geoms = _read_boundaries(path)
    if geoms:
        for g in geoms:
            for part in getattr(g, "geoms", [g]):
                if part.geom_type == "Polygon":
                    xs, ys = part.exterior.xy
                    ax.fill(xs, ys, fc="#eeeeee", ec="#555555", lw=0.4)
        w, s, e, n = shapely.total_bounds(geoms)
        w, s, e, n = min(w, lon), min(s, lat), max(e, lon), max(n, lat)
        pad = 0.05 * max(e - w, n - s)
        ax.set_xlim(w - pad, e + pad)
        ax.set_ylim(s - pad, n + pad)
    else:  # a graticule of 1-degree lines around the site
        ax.set_xlim(lon - 5, lon + 5)
        ax.set_ylim(lat - 5, lat + 5)
        for v in range(math.floor(lon - 5), math.ceil(lon + 5) + 1):
            ax.axvline(v, color="#bbbbbb", lw=0.4)
        for v in range(math.floor(lat - 5), math.ceil(lat + 5) + 1):
            ax.axhline(v, color="#bbbbbb", lw=0.4)
        ax.text(0.04, 0.04, f"{lat:.2f}°, {lon:.2f}°", transform=ax.transAxes, fontsize=6)
    ax.set_aspect(1.0 / max(math.cos(math.radians(lat)), 0.1), adjustable="box", anchor="NW")
    ax.plot([lon], [lat], marker="*", color="red", markersize=9, markeredgecolor="black")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor("black")
    return ax


# --- figures --------------------------------------------------------------------------------


def _image_axes(
    fig: Figure, rect: tuple[float, float, float, float], chip: ImageChip, rgb: Any
) -> Axes:
    ax = fig.add_axes(rect)
    ax.imshow(rgb, extent=chip.extent, origin="upper", interpolation="nearest")
    left, right, bottom, top = chip.extent
    ax.set_xlim(left, right)
    ax.set_ylim(bottom, top)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def _furniture(ax: Axes, chip: ImageChip, layout: FigureLayout) -> ScaleBar:
    left, right, bottom, top = chip.extent
    cx, cy = (left + right) / 2, (bottom + top) / 2
    bar = scale_bar(chip.crs, chip.extent, layout.scale_bar_fraction)
    _scale_bar(ax, chip, bar)
    _north_arrow(ax, north_angle(chip.crs, cx, cy))
    return bar


def annotated_figure(
    chip: ImageChip,
    annotations: Sequence[Annotation] = (),
    *,
    title: str = "",
    caption: str = "",
    stretch: Stretch | None = None,
    boundaries: str | Path | None = None,
    site_lonlat: tuple[float, float] | None = None,
    layout: FigureLayout | None = None,
) -> Figure:
    """One image with callouts, scale bar, north arrow, caption and inset locator map.

    ``site_lonlat`` places the locator's star (default: the chip's centre); ``boundaries`` is a
    vector file of outlines for the locator (read at run time, never shipped).
    """
    layout = layout or FigureLayout()
    left, right, bottom, top = chip.extent
    aspect = (top - bottom) / (right - left)
    margin = 0.02
    aw = layout.width_in * (1 - 2 * margin)
    ah = aw * aspect
    height = ah + _HEADER_IN + _FOOTER_IN
    fig = Figure(figsize=(layout.width_in, height), dpi=layout.dpi)
    fig.patch.set_facecolor("white")
    rect = (margin, _FOOTER_IN / height, 1 - 2 * margin, ah / height)
    ax = _image_axes(fig, rect, chip, to_rgb(chip, stretch, fill=NO_IMAGE_FILL))
    size = 0.22 * min(aw, ah)
    locator_rect = (
        margin + 0.01,
        rect[1] + rect[3] - size / height - 0.01,
        size / layout.width_in,
        size / height,
    )
    held = []
    if layout.locator:  # the locator's box in the image axes' fractions
        x0 = (locator_rect[0] - rect[0]) / rect[2]
        y0 = (locator_rect[1] - rect[1]) / rect[3]
        held.append((x0, y0, x0 + locator_rect[2] / rect[2], y0 + locator_rect[3] / rect[3]))
    _callouts(ax, chip, annotations, held)
    bar = _furniture(ax, chip, layout)
    _title(fig, title, height)
    fig.text(
        margin,
        0.1 * _FOOTER_IN / height,
        caption_text(chip, extra=caption, bar=bar),
        ha="left",
        va="bottom",
        fontsize=7.5,
        linespacing=1.4,
    )
    if layout.locator:
        lon, lat = site_lonlat or lonlat_of(chip.crs, (left + right) / 2, (bottom + top) / 2)
        _locator(fig, locator_rect, lon, lat, boundaries)
    return fig


def before_after_figure(
    before: ImageChip,
    after: ImageChip,
    annotations: Sequence[Annotation] = (),
    *,
    title: str = "",
    caption: str = "",
    percentiles: tuple[float, float] = (2.0, 98.0),
    change_mask: Any = None,
    layout: FigureLayout | None = None,
) -> Figure:
    """Before and after side by side with one stretch computed on both (matched contrast).

    ``change_mask`` (a boolean (y, x) array on the after chip's grid) is outlined on the after panel.
    """
    layout = layout or FigureLayout(width_in=10.0)
    if before.crs != after.crs:
        raise InputError(
            f"before ({before.crs}) and after ({after.crs}) chips must share a CRS; "
            "cut both on the same site grid"
        )
    stretch = percentile_stretch([before, after], percentiles)
    left, right, bottom, top = after.extent
    aspect = (top - bottom) / (right - left)
    margin, gap = 0.015, 0.01
    aw = layout.width_in * (1 - 2 * margin - gap) / 2
    ah = aw * aspect
    height = ah + _HEADER_IN + 0.25 + _FOOTER_IN
    fig = Figure(figsize=(layout.width_in, height), dpi=layout.dpi)
    fig.patch.set_facecolor("white")
    y0 = _FOOTER_IN / height
    bar = None
    for i, chip in enumerate((before, after)):
        rect = (margin + i * (aw / layout.width_in + gap), y0, aw / layout.width_in, ah / height)
        ax = _image_axes(fig, rect, chip, to_rgb(chip, stretch, fill=NO_IMAGE_FILL))
        _callouts(ax, chip, annotations)
        bar = _furniture(ax, chip, layout)
        if i == 1 and change_mask is not None:
            mask = np.asarray(change_mask, dtype=bool)
            if mask.shape != (chip.height, chip.width):
                raise InputError(
                    f"change mask shape {mask.shape} does not match the after chip {(chip.height, chip.width)}"
                )
            xs = np.linspace(left, right, chip.width)
            ys = np.linspace(top, bottom, chip.height)
            ax.contour(
                xs,
                ys,
                mask.astype(np.float32),
                levels=[0.5],
                colors=[FEATURE_COLOURS["change"]],
                linewidths=1.2,
            )
        label = f"{'Before' if i == 0 else 'After'}: {chip.date_text or 'date unknown'}"
        fig.text(
            rect[0] + rect[2] / 2,
            y0 + ah / height + 0.1 / height,
            label,
            ha="center",
            va="bottom",
            fontsize=10,
            fontweight="bold",
        )
    _title(fig, title, height)
    credits = sorted({c.source for c in (before, after) if c.source})
    sensors = " / ".join(dict.fromkeys(c.sensor for c in (before, after) if c.sensor))
    when = (
        f"{before.date_text or 'date unknown'} and {after.date_text or 'date unknown'}"
        if before.date_text or after.date_text
        else "dates unknown"
    )
    colours = after.composite_text()
    text = (
        f"{when} · {sensors or 'sensor not recorded'} · "
        f"same contrast stretch ({percentiles[0]:g}-{percentiles[1]:g} percentiles of both images)"
        f"{f' · {colours}' if colours else ''}\n"
        f"Image © {', '.join(credits) if credits else 'provider not recorded'}."
    )
    if bar is not None:
        text += "\n" + bar.note(after.crs) + "."
    if has_gaps(before) or has_gaps(after):
        text += "\n" + _NO_IMAGE_NOTE
    if caption:
        text += "\n" + caption
    fig.text(
        margin,
        0.1 * _FOOTER_IN / height,
        text,
        ha="left",
        va="bottom",
        fontsize=7.5,
        linespacing=1.4,
    )
    return fig


def _as_datetime(value: date | datetime) -> datetime:
    return value if isinstance(value, datetime) else datetime(value.year, value.month, value.day)


def _num(value: datetime) -> float:
    from matplotlib.dates import date2num

    return float(date2num(value))  # type: ignore[no-untyped-call]


def activity_figure(
    dates: Sequence[date | datetime],
    values: Sequence[float],
    *,
    phases: Sequence[tuple[date | datetime, date | datetime, str]] = (),
    events: Sequence[date | datetime] = (),
    title: str = "Activity",
    ylabel: str = "activity index",
    width_in: float = 8.0,
    dpi: int = 100,
) -> Figure:
    """An activity index through time with the activity phases shaded and change events marked."""
    if len(dates) != len(values):
        raise InputError(f"{len(dates)} dates but {len(values)} values; give one value per date")
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.ticker import StrMethodFormatter

    fig = Figure(figsize=(width_in, width_in * 0.4), dpi=dpi)
    ax = fig.add_subplot(1, 1, 1)
    pairs = sorted(zip((_as_datetime(d) for d in dates), (float(v) for v in values), strict=True))
    xs = [_num(d) for d, _ in pairs]
    ys = [v for _, v in pairs]
    seen: set[str] = set()
    for start, end, phase in phases:
        colour = PHASE_COLOURS.get(phase, "#eeeeee")
        label = phase.replace("_", " ") if phase not in seen else None
        seen.add(phase)
        x0, x1 = _num(_as_datetime(start)), _num(_as_datetime(end))
        ax.axvspan(x0, x1, color=colour, alpha=0.6, lw=0, label=label)
    if xs:
        ax.plot(xs, ys, marker="o", ms=3.5, color="#08306b", lw=1.4, label=ylabel)
    for i, ev in enumerate(events):
        x = _num(_as_datetime(ev))
        ax.axvline(
            x,
            color=FEATURE_COLOURS["change"],
            lw=1.0,
            ls="--",
            label="change detected" if i == 0 else None,
        )
    locator = AutoDateLocator()  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    ax.set_title(title, fontsize=11)
    ax.set_ylabel(ylabel)
    # areas of hundreds of thousands of m² read with thousands separators, not "400000"
    ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.6g}"))
    ax.grid(True, alpha=0.3)
    if xs or phases or events:
        ax.legend(fontsize=7, loc="upper left", framealpha=0.8)
    fig.tight_layout()
    return fig


def save_figure(fig: Figure, path: str | Path, *, dpi: float | None = None) -> Path:
    """Write ``fig`` atomically; the format follows the suffix (.png, .svg, .pdf)."""
    target = Path(path)
    fmt = target.suffix.lower().lstrip(".")
    if fmt not in ("png", "svg", "pdf"):
        raise InputError(f"cannot write a figure as {target.name}: use a .png, .svg or .pdf name")
    with atomic_path(target, parents=True) as tmp:
        fig.savefig(
            tmp,
            format=fmt,
            dpi=dpi or fig.dpi,
            facecolor=fig.get_facecolor(),
            metadata=_metadata(fmt),
        )
    return target


def _metadata(fmt: str) -> Mapping[str, Any] | None:
    if fmt == "svg":
        return {"Date": None}
    if fmt == "pdf":
        return {"CreationDate": None}
    return None


def figure_png(fig: Figure, *, dpi: float | None = None) -> bytes:
    """PNG bytes of a figure (for data URIs and KMZ screen overlays)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi or fig.dpi, facecolor=fig.get_facecolor())
    return buf.getvalue()
