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
from typing import Any

import numpy as np
from numpy.typing import NDArray

Box = tuple[float, float, float, float]
"""x0, y0, x1, y1 in display pixels (y up)."""

_ANGLES = np.radians([0, 20, -20, 40, -40, 60, -60, 90, -90, 120, -120, 150, -150, 180])
_RADII = (1.0, 0.75, 1.3, 0.55, 1.65, 2.0)
_GAP = 3.0  # pixels kept between two labels
_SAMPLES = np.linspace(0.0, 1.0, 32)  # points along a leader where it is checked against labels


def _overlaps(cands: NDArray[np.float64], boxes: NDArray[np.float64]) -> NDArray[np.float64]:
    """Summed overlap area of each candidate box (rows of ``cands``) with all ``boxes``."""
    if boxes.size == 0:
        return np.zeros(len(cands))
    w = np.minimum(cands[:, None, 2], boxes[None, :, 2]) - np.maximum(
        cands[:, None, 0], boxes[None, :, 0]
    )
    h = np.minimum(cands[:, None, 3], boxes[None, :, 3]) - np.maximum(
        cands[:, None, 1], boxes[None, :, 1]
    )
    area: NDArray[np.float64] = (np.clip(w, 0, None) * np.clip(h, 0, None)).sum(axis=1)
    return area


def _inside(xs: NDArray[np.float64], ys: NDArray[np.float64], boxes: NDArray[np.float64]) -> Any:
    """Whether points (any shape) lie strictly inside each box: shape (*points, boxes)."""
    x, y = xs[..., None], ys[..., None]
    return (x > boxes[:, 0]) & (x < boxes[:, 2]) & (y > boxes[:, 1]) & (y < boxes[:, 3])


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
    The candidates of one label are scored together (about 1 s for 150 labels).
    """
    fx0, fy0, fx1, fy1 = frame
    pts = np.asarray(anchors, dtype=np.float64).reshape(-1, 2)
    held = np.asarray(reserved, dtype=np.float64).reshape(-1, 4)
    factors = np.repeat(np.asarray(_RADII, dtype=np.float64), len(_ANGLES))
    turns = np.tile(_ANGLES, len(_RADII))
    # preference: straight out at the preferred length first
    bias = np.abs(turns) / math.pi + 0.3 * np.repeat(np.arange(len(_RADII)), len(_ANGLES))
    placed = np.empty((0, 4))
    leaders = np.empty((0, len(_SAMPLES), 2))  # the placed leaders, sampled
    centres: list[tuple[float, float]] = []
    for i, ((ax, ay), (w, h), pref) in enumerate(zip(anchors, sizes, preferred, strict=True)):
        ang = pref + turns
        # clamp into the frame: a label near the edge slides along it
        cx = np.clip(ax + factors * offset * np.cos(ang), fx0 + w / 2, fx1 - w / 2)
        cy = np.clip(ay + factors * offset * np.sin(ang), fy0 + h / 2, fy1 - h / 2)
        cands = np.column_stack(
            [cx - w / 2 - _GAP, cy - h / 2 - _GAP, cx + w / 2 + _GAP, cy + h / 2 + _GAP]
        )
        cost = 100.0 * (_overlaps(cands, placed) + _overlaps(cands, held)) / (w * h)
        others = np.delete(pts, i, axis=0)
        if others.size:  # covering another feature's anchor
            cost += 8.0 * _inside(others[:, 0], others[:, 1], cands).sum(axis=0)
        # the label must not hide its own feature, and the leader must be visible
        gap_x = np.maximum.reduce([cands[:, 0] - ax, ax - cands[:, 2], np.zeros(len(cx))])
        gap_y = np.maximum.reduce([cands[:, 1] - ay, ay - cands[:, 3], np.zeros(len(cx))])
        cost += 20.0 * (np.hypot(gap_x, gap_y) < 0.25 * offset)
        # leaders across labels: this one's across those placed, theirs across this one
        if len(placed):
            lx = ax + _SAMPLES[None, :] * (cx[:, None] - ax)
            ly = ay + _SAMPLES[None, :] * (cy[:, None] - ay)
            cost += 2.0 * _inside(lx, ly, placed).any(axis=1).sum(axis=1)
            theirs = _inside(leaders[..., 0], leaders[..., 1], cands)  # (leaders, samples, cands)
            cost += 2.0 * theirs.any(axis=1).sum(axis=0)
        best = int(np.argmin(cost + bias))
        centres.append((float(cx[best]), float(cy[best])))
        placed = np.vstack([placed, [cx[best] - w / 2, cy[best] - h / 2, cx[best] + w / 2,
                                     cy[best] + h / 2]])  # fmt: skip
        line = np.column_stack([ax + _SAMPLES * (cx[best] - ax), ay + _SAMPLES * (cy[best] - ay)])
        leaders = np.concatenate([leaders, line[None]])
    return centres
