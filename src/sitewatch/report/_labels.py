"""Callout label placement: each label near its feature, clear of the other labels.

Report figures call out many features at once (seven portals, their berms, shelters, change
polygons), often metres apart. Labels placed straight out from the image centre then sit on one
another, so :func:`place_labels` tries positions around each feature (angles about the preferred
outward direction, several leader lengths) and keeps, label by label, the one that costs least:
overlap with the labels already placed and with reserved furniture (scale bar, north arrow,
locator) costs most, then covering another feature's anchor, a leader crossing a label (this
one's across those placed, or theirs across this one), and last the departure from the
preferred direction and length. Everything is in display pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

Box = tuple[float, float, float, float]
"""x0, y0, x1, y1 in display pixels (y up)."""

_ANGLES = np.radians([0, 20, -20, 40, -40, 60, -60, 90, -90, 120, -120, 150, -150, 180])
_RADII = (1.0, 0.75, 1.3, 0.55, 1.65, 2.0)
_GAP = 3.0  # pixels kept between two labels


def _overlap(boxes: NDArray[np.float64], box: Box) -> NDArray[np.float64]:
    """Overlap area of ``box`` with each row of ``boxes``."""
    if boxes.size == 0:
        return np.zeros(0)
    w = np.minimum(boxes[:, 2], box[2]) - np.maximum(boxes[:, 0], box[0])
    h = np.minimum(boxes[:, 3], box[3]) - np.maximum(boxes[:, 1], box[1])
    area: NDArray[np.float64] = np.clip(w, 0, None) * np.clip(h, 0, None)
    return area


def _samples(a: tuple[float, float], b: tuple[float, float]) -> NDArray[np.float64]:
    """Points every 2 px along the segment a-b, as (n, 2)."""
    n = max(2, int(math.hypot(b[0] - a[0], b[1] - a[1]) / 2))
    t = np.linspace(0.0, 1.0, n)[:, None]
    return np.hstack([a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])])


def _crosses(boxes: NDArray[np.float64], line: NDArray[np.float64]) -> int:
    """How many of ``boxes`` the sampled ``line`` passes through."""
    if boxes.size == 0:
        return 0
    xs, ys = line[:, :1], line[:, 1:]
    inside = (xs > boxes[:, 0]) & (xs < boxes[:, 2]) & (ys > boxes[:, 1]) & (ys < boxes[:, 3])
    return int(inside.any(axis=0).sum())


def place_labels(
    anchors: Sequence[tuple[float, float]],
    sizes: Sequence[tuple[float, float]],
    frame: Box,
    *,
    preferred: Sequence[float],
    offset: float,
    reserved: Sequence[Box] = (),
) -> list[tuple[float, float]]:
    """Centres of the labels of ``anchors`` (one per anchor), inside ``frame``.

    ``sizes`` are the labels' (width, height), ``preferred`` each label's preferred direction
    (radians, counter-clockwise from +x) and ``offset`` the preferred leader length, all in display
    pixels. Labels are placed in the order given; an earlier label never moves for a later one.
    """
    fx0, fy0, fx1, fy1 = frame
    pts = np.asarray(anchors, dtype=np.float64).reshape(-1, 2)
    held = np.asarray(reserved, dtype=np.float64).reshape(-1, 4)
    placed: list[Box] = []
    leaders: list[NDArray[np.float64]] = []
    centres: list[tuple[float, float]] = []
    for i, ((ax, ay), (w, h), pref) in enumerate(zip(anchors, sizes, preferred, strict=True)):
        others = np.delete(pts, i, axis=0)
        done = np.asarray(placed, dtype=np.float64).reshape(-1, 4)
        best: tuple[float, tuple[float, float]] | None = None
        for rank_r, factor in enumerate(_RADII):
            for d_angle in _ANGLES:
                ang = pref + float(d_angle)
                # clamp into the frame: a label near the edge slides along it
                cx = min(max(ax + factor * offset * math.cos(ang), fx0 + w / 2), fx1 - w / 2)
                cy = min(max(ay + factor * offset * math.sin(ang), fy0 + h / 2), fy1 - h / 2)
                box = (cx - w / 2 - _GAP, cy - h / 2 - _GAP, cx + w / 2 + _GAP, cy + h / 2 + _GAP)
                cost = 100.0 * float(_overlap(done, box).sum()) / (w * h)
                cost += 100.0 * float(_overlap(held, box).sum()) / (w * h)
                if others.size:
                    cost += 8.0 * float(
                        np.sum(
                            (others[:, 0] > box[0])
                            & (others[:, 0] < box[2])
                            & (others[:, 1] > box[1])
                            & (others[:, 1] < box[3])
                        )
                    )
                # the label must not hide its own feature, and the leader must be visible
                gap_x = max(box[0] - ax, ax - box[2], 0.0)
                gap_y = max(box[1] - ay, ay - box[3], 0.0)
                if math.hypot(gap_x, gap_y) < 0.25 * offset:
                    cost += 20.0
                # leaders across labels: this one's across those placed, theirs across this one
                cost += 2.0 * _crosses(done, _samples((ax, ay), (cx, cy)))
                here = np.asarray([box], dtype=np.float64)
                cost += 2.0 * sum(_crosses(here, line) for line in leaders)
                cost += abs(float(d_angle)) / math.pi + 0.3 * rank_r
                if best is None or cost < best[0]:
                    best = (cost, (cx, cy))
        assert best is not None
        cx, cy = best[1]
        centres.append((cx, cy))
        placed.append((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
        leaders.append(_samples((ax, ay), (cx, cy)))
    return centres
