"""From a grid of tile scores to ranked, non-overlapping candidate polygons.

Greedy non-maximum suppression keeps the best tile, drops every tile whose footprint overlaps it,
and repeats, so the top N candidates never overlap and cover exactly N tile areas. Candidates
closer than a distance are then grouped into clusters (one site often lights up several
neighbouring tiles); each cluster is named by its best candidate's rank.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray
from pyproj import Transformer
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from shapely.geometry import Polygon, mapping

from .tiles import TileGrid

__all__ = [
    "RankedCandidate",
    "candidates_at",
    "make_candidates",
    "non_max_suppression",
    "overlapping",
    "reorder_candidates",
    "suppress_overlaps",
    "to_geojson",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RankedCandidate:
    """One candidate: its tile, score, rank (1 = best), cluster and footprint in lon/lat.

    ``score`` is what the candidates are ranked by: the second stage's score when the search
    re-ranked them (then ``stage1_score`` is the first stage's), else the first stage's.
    """

    rank: int
    score: float
    row: int
    col: int
    cluster: int
    polygon: Polygon
    lon: float
    lat: float
    area_km2: float
    stage1_score: float | None = None


def non_max_suppression(
    scores: NDArray[np.floating], top: int, radius: int, min_score: float = -np.inf
) -> list[tuple[int, int, float]]:
    """Greedy NMS on a score grid: at most ``top`` peaks ``(row, col, score)``, best first.

    A picked tile suppresses every tile within ``radius`` rows and columns (Chebyshev
    distance), i.e. every overlapping tile when ``radius = cells per tile - 1``. NaN is no score.
    """
    flat = np.asarray(scores).ravel()
    if flat.dtype.kind != "f":
        flat = flat.astype(np.float64)
    n_rows, n_cols = scores.shape
    usable = np.isfinite(flat) & (flat >= min_score)
    if top <= 0:
        return []
    # Each pick suppresses at most (2 radius + 1)^2 - 1 other tiles, so the first `top` picks
    # come from the best `top * (2 radius + 1)^2` tiles: only those (and every tile tied with
    # the last of them) are sorted, not the whole AOI (a partition is linear in the tiles).
    need = top * (2 * radius + 1) ** 2
    if need < flat.size:
        vals = np.where(usable, flat, -np.inf)
        threshold = np.partition(vals, vals.size - need)[vals.size - need]
        if np.isfinite(threshold):
            usable &= vals >= threshold
    finite = np.flatnonzero(usable)
    if finite.size == 0:
        return []
    # stable order: by score descending, then by index, so ties resolve the same everywhere
    order = finite[np.lexsort((finite, -flat[finite]))]
    taken = np.zeros((n_rows, n_cols), dtype=bool)
    out: list[tuple[int, int, float]] = []
    for idx in order.tolist():
        r, c = divmod(idx, n_cols)
        if taken[r, c]:
            continue
        out.append((r, c, float(flat[idx])))
        if len(out) >= top:
            break
        _claim(taken, r, c, radius)
    return out


def _clusters(points: NDArray[np.float64], distance: float) -> NDArray[np.intp]:
    n = len(points)
    if n == 0:
        return np.zeros(0, dtype=np.intp)
    pairs = cKDTree(points).query_pairs(distance, output_type="ndarray")
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    out: NDArray[np.intp] = labels.astype(np.intp)
    return out


def _cluster_labels(
    tiles: list[tuple[int, int]], grid: TileGrid, cluster_distance_m: float | None
) -> NDArray[np.intp]:
    """Cluster labels of candidate tiles closer than the distance (default 1.5 tile sides)."""
    peaks = [(r, c, 0.0) for r, c in tiles]
    rc = np.array(tiles, dtype=np.int64).reshape(-1, 2)
    centres = np.column_stack(grid.points(rc[:, 0], rc[:, 1], grid.tile / 2.0, grid.tile / 2.0))
    px = abs(grid.transform.a)
    dist = cluster_distance_m if cluster_distance_m is not None else None
    if grid.crs is not None and grid.crs.is_geographic:
        # cluster in pixel units: the tile diagonal and a half by default
        pts = np.array([(c * grid.stride, r * grid.stride) for r, c, _ in peaks], dtype=float)
        d_px = (dist / (px * 111_320.0)) if dist is not None else 1.5 * grid.tile
        labels = _clusters(pts, d_px)
    else:
        labels = _clusters(centres, dist if dist is not None else 1.5 * grid.tile * px)
    return labels


def _claim(taken: NDArray[np.bool_], row: int, col: int, radius: int) -> None:
    taken[max(row - radius, 0) : row + radius + 1, max(col - radius, 0) : col + radius + 1] = True


def overlapping(grid: TileGrid, tiles: list[tuple[int, int]]) -> NDArray[np.bool_]:
    """The grid's tiles (a boolean grid) whose footprint overlaps one of ``tiles``."""
    radius = grid.cells_per_tile - 1
    taken = np.zeros(grid.shape, dtype=bool)
    for r, c in tiles:
        _claim(taken, r, c, radius)
    return taken


def suppress_overlaps(ordered: list[RankedCandidate], grid: TileGrid) -> list[int]:
    """Indices of the candidates kept, in their order: every one whose tile overlaps a tile
    kept before it is dropped (greedy non-maximum suppression of an ordered list)."""
    radius = grid.cells_per_tile - 1
    taken = np.zeros(grid.shape, dtype=bool)
    out = []
    for i, c in enumerate(ordered):
        if taken[c.row, c.col]:
            continue
        out.append(i)
        _claim(taken, c.row, c.col, radius)
    return out


def reorder_candidates(
    ordered: list[RankedCandidate],
    grid: TileGrid,
    scores: list[float] | None = None,
    cluster_distance_m: float | None = None,
    keep_stage1: bool = False,
) -> list[RankedCandidate]:
    """The same candidates in a new order, ranks and clusters renamed.

    The first ``len(scores)`` take ``scores`` (the second stage's, or the fused one) as their
    ``score`` and keep the first stage's as ``stage1_score`` (with ``keep_stage1``, the
    ``stage1_score`` they already have: candidates re-ranked twice).
    """
    from dataclasses import replace

    labels = _cluster_labels([(c.row, c.col) for c in ordered], grid, cluster_distance_m)
    first: dict[int, int] = {}
    for i, lab in enumerate(labels):
        first.setdefault(int(lab), i + 1)
    rs = scores or []
    return [
        replace(
            c,
            rank=i + 1,
            cluster=first[int(labels[i])],
            score=float(rs[i]) if i < len(rs) else c.score,
            stage1_score=c.score if i < len(rs) and not keep_stage1 else c.stage1_score,
        )
        for i, c in enumerate(ordered)
    ]


def make_candidates(
    scores: NDArray[np.floating],
    grid: TileGrid,
    *,
    top: int = 100,
    cluster_distance_m: float | None = None,
    min_score: float = -np.inf,
) -> list[RankedCandidate]:
    """Ranked candidates from the tile scores of ``grid`` (NMS, then clusters)."""
    radius = grid.cells_per_tile - 1
    peaks = non_max_suppression(scores, top, radius, min_score)
    return candidates_at(peaks, grid, cluster_distance_m)


def candidates_at(
    peaks: list[tuple[int, int, float]], grid: TileGrid, cluster_distance_m: float | None = None
) -> list[RankedCandidate]:
    """Ranked candidates (rank, footprint, cluster) of the tiles ``(row, col, score)``, in order."""
    if not peaks:
        return []
    labels = _cluster_labels([(r, c) for r, c, _ in peaks], grid, cluster_distance_m)
    # name clusters by the rank of their best member
    first: dict[int, int] = {}
    for i, lab in enumerate(labels):
        first.setdefault(int(lab), i + 1)
    to_ll = (
        Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True)
        if grid.crs is not None
        else None
    )
    tile_area = grid.pixel_area_m2() * grid.tile * grid.tile / 1e6
    rows = np.array([r for r, _, _ in peaks], dtype=np.int64)
    cols = np.array([c for _, c, _ in peaks], dtype=np.int64)
    n = grid.tile
    # every corner ring and centre at once: one coordinate transformation for all candidates
    offsets = ((0, 0), (n, 0), (n, n), (0, n), (0, 0), (n / 2.0, n / 2.0))
    xy = [grid.points(rows, cols, dx, dy) for dx, dy in offsets]
    xs = np.stack([x for x, _ in xy], axis=1)
    ys = np.stack([y for _, y in xy], axis=1)
    if to_ll is not None:
        lon, lat = to_ll.transform(xs.ravel(), ys.ravel())
        xs, ys = np.reshape(lon, xs.shape), np.reshape(lat, ys.shape)
    geographic = grid.crs is not None and grid.crs.is_geographic
    # all footprints in one vectorised call (a Polygon built one by one costs ~15 us)
    rings = shapely.polygons(np.stack([xs[:, :5], ys[:, :5]], axis=-1))
    out = []
    for i, (r, c, sc) in enumerate(peaks):
        area = grid.pixel_area_m2(r * grid.stride) * n * n / 1e6 if geographic else tile_area
        out.append(
            RankedCandidate(
                rank=i + 1,
                score=sc,
                row=r,
                col=c,
                cluster=first[int(labels[i])],
                polygon=rings[i],
                lon=float(xs[i, 5]),
                lat=float(ys[i, 5]),
                area_km2=float(area),
            )
        )
    return out


def to_geojson(candidates: list[RankedCandidate], **properties: Any) -> dict[str, Any]:
    """A GeoJSON FeatureCollection of the candidates (``score`` and ``rank`` per feature)."""
    feats = []
    for cand in candidates:
        feats.append(
            {
                "type": "Feature",
                "geometry": mapping(cand.polygon),
                "properties": {
                    "rank": cand.rank,
                    "score": cand.score,
                    "cluster": cand.cluster,
                    "tile_row": cand.row,
                    "tile_col": cand.col,
                    "lon": cand.lon,
                    "lat": cand.lat,
                    "area_km2": cand.area_km2,
                    "stage1_score": cand.stage1_score,
                    **properties,
                },
            }
        )
    return {"type": "FeatureCollection", "features": feats}
