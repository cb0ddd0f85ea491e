"""Callout label placement benchmark: ``report._labels.place_labels`` against a plain loop.

    .venv/bin/python bench/labels.py [--counts 20,60,150] [--repeat 3]

Random anchors in an 800 x 800 px frame (a figure's image axes), 70 x 18 px labels, the preferred
direction straight out from the centre. The peer scores the same 84 candidates of each label with
the same costs and the same 32 points along each leader, one candidate at a time in Python, as a
straightforward implementation would; the placements are asserted identical.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, timed
from sitewatch.report import _labels as lab


def loop_place_labels(
    anchors: Sequence[tuple[float, float]],
    sizes: Sequence[tuple[float, float]],
    frame: tuple[float, float, float, float],
    *,
    preferred: Sequence[float],
    offset: float,
    reserved: Sequence[tuple[float, float, float, float]] = (),
) -> list[tuple[float, float]]:
    """The same placement, candidate by candidate and box by box."""

    def overlap(a: Sequence[float], b: Sequence[float]) -> float:
        w = min(a[2], b[2]) - max(a[0], b[0])
        h = min(a[3], b[3]) - max(a[1], b[1])
        return max(w, 0.0) * max(h, 0.0)

    def inside(x: float, y: float, b: Sequence[float]) -> bool:
        return b[0] < x < b[2] and b[1] < y < b[3]

    fx0, fy0, fx1, fy1 = frame
    placed: list[tuple[float, float, float, float]] = []
    leaders: list[list[tuple[float, float]]] = []
    centres = []
    for i, ((ax, ay), (w, h), pref) in enumerate(zip(anchors, sizes, preferred, strict=True)):
        best, best_cost = (0.0, 0.0), math.inf
        for r, factor in enumerate(lab._RADII):
            for turn in lab._ANGLES:
                ang = pref + float(turn)
                cx = min(max(ax + factor * offset * math.cos(ang), fx0 + w / 2), fx1 - w / 2)
                cy = min(max(ay + factor * offset * math.sin(ang), fy0 + h / 2), fy1 - h / 2)
                box = (cx - w / 2 - lab._GAP, cy - h / 2 - lab._GAP, cx + w / 2 + lab._GAP,
                       cy + h / 2 + lab._GAP)  # fmt: skip
                cost = 100.0 * (sum(overlap(box, p) for p in placed)
                                + sum(overlap(box, q) for q in reserved)) / (w * h)  # fmt: skip
                cost += 8.0 * sum(inside(x, y, box) for j, (x, y) in enumerate(anchors) if j != i)
                gx = max(box[0] - ax, ax - box[2], 0.0)
                gy = max(box[1] - ay, ay - box[3], 0.0)
                cost += 20.0 * (math.hypot(gx, gy) < 0.25 * offset)
                line = [(ax + t * (cx - ax), ay + t * (cy - ay)) for t in lab._SAMPLES]
                cost += 2.0 * sum(any(inside(x, y, p) for x, y in line) for p in placed)
                cost += 2.0 * sum(any(inside(x, y, box) for x, y in other) for other in leaders)
                cost += abs(float(turn)) / math.pi + 0.3 * r
                if cost < best_cost:
                    best, best_cost = (cx, cy), cost
        centres.append(best)
        cx, cy = best
        placed.append((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
        leaders.append([(ax + t * (cx - ax), ay + t * (cy - ay)) for t in lab._SAMPLES])
    return centres


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--counts", default="20,60,150")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rows = []
    for n in (int(c) for c in args.counts.split(",")):
        rng = np.random.default_rng(n)
        anchors = [(float(x), float(y)) for x, y in rng.uniform(100, 700, (n, 2))]
        sizes = [(70.0, 18.0)] * n
        pref = [math.atan2(y - 400, x - 400) for x, y in anchors]
        kw: dict[str, Any] = {"preferred": pref, "offset": 120.0,
                              "reserved": [(0.0, 0.0, 250.0, 110.0)]}  # fmt: skip
        frame = (0.0, 0.0, 800.0, 800.0)
        ours = min(timed(lambda: lab.place_labels(anchors, sizes, frame, **kw))[0]  # noqa: B023
                   for _ in range(args.repeat))  # fmt: skip
        peer, peer_out = timed(lambda: loop_place_labels(anchors, sizes, frame, **kw))  # noqa: B023
        got = lab.place_labels(anchors, sizes, frame, **kw)
        assert np.allclose(got, peer_out), "the placements differ"
        rows.append([n, f"{ours:.3f}", f"{peer:.3f}", f"{peer / ours:.0f}x"])
    print_table("label placement", ["labels", "sitewatch (s)", "loop peer (s)", "speed-up"], rows)


if __name__ == "__main__":
    main()
