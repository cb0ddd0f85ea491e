"""Callout labels stay readable: clear of each other, of the furniture and inside the image."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image
from shapely.geometry import Point

from sitewatch.report import Annotation, FigureLayout, annotated_figure, save_figure
from sitewatch.report._cartography import lonlat_of
from sitewatch.report._labels import place_labels

from .conftest import SITE_LAT, SITE_LON, utm_xy


def _boxes(centres, sizes):
    return [
        (x - w / 2, y - h / 2, x + w / 2, y + h / 2)
        for (x, y), (w, h) in zip(centres, sizes, strict=True)
    ]


def _overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_labels_of_a_cluster_of_features_do_not_overlap() -> None:
    # seven portals along a valley wall, 12 px apart: labels straight out from the centre collide
    anchors = [(300.0 + 12 * i, 200.0 + 3 * i) for i in range(7)]
    sizes = [(70.0, 20.0)] * 7
    preferred = [math.atan2(y - 200, x - 250) for x, y in anchors]
    frame = (0.0, 0.0, 600.0, 400.0)
    furniture = [(0.0, 0.0, 150.0, 50.0), (520.0, 300.0, 600.0, 400.0)]
    centres = place_labels(
        anchors, sizes, frame, preferred=preferred, offset=80.0, reserved=furniture
    )
    boxes = _boxes(centres, sizes)
    for i, a in enumerate(boxes):
        assert frame[0] <= a[0] and a[2] <= frame[2] and frame[1] <= a[1] and a[3] <= frame[3]
        assert not any(_overlaps(a, f) for f in furniture), f"label {i} covers the furniture"
        for j, b in enumerate(boxes[:i]):
            assert not _overlaps(a, b), f"labels {j} and {i} overlap"
        # no label hides its own feature
        x, y = anchors[i]
        assert not (a[0] <= x <= a[2] and a[1] <= y <= a[3])
    # and no leader runs across another label
    for i, ((x, y), (cx, cy)) in enumerate(zip(anchors, centres, strict=True)):
        for t in np.linspace(0.0, 1.0, 200):
            px, py = x + t * (cx - x), y + t * (cy - y)
            for j, b in enumerate(boxes):
                if j != i:
                    assert not (b[0] < px < b[2] and b[1] < py < b[3]), (
                        f"leader {i} crosses label {j}"
                    )
    # a lone label goes where it is preferred: straight out at the preferred length
    ((cx, cy),) = place_labels(
        [(300.0, 200.0)], [(60.0, 20.0)], frame, preferred=[0.0], offset=80.0
    )
    assert (cx, cy) == (380.0, 200.0)


def test_labels_near_the_edge_stay_inside_the_frame() -> None:
    frame = (0.0, 0.0, 400.0, 300.0)
    anchors = [(395.0, 295.0), (5.0, 5.0), (395.0, 5.0)]
    sizes = [(90.0, 18.0)] * 3
    preferred = [math.atan2(y - 150, x - 200) for x, y in anchors]
    centres = place_labels(anchors, sizes, frame, preferred=preferred, offset=60.0)
    for x0, y0, x1, y1 in _boxes(centres, sizes):
        assert x0 >= 0.0 and x1 <= 400.0 and y0 >= 0.0 and y1 <= 300.0


def test_figure_callouts_of_close_features_are_all_readable(make_chip, tmp_path: Path) -> None:
    chip = make_chip(width=400, height=300, fill=1000.0)
    cx, cy = utm_xy(SITE_LON, SITE_LAT)
    # seven portals 8 m apart (4 px at 2 m), the Sakkanmol case
    anns = [
        Annotation(
            Point(*lonlat_of(chip.crs, cx + 80 + 8 * i, cy + 20)), f"portal-{i + 1}", "ugf_portal"
        )
        for i in range(7)
    ]
    fig = annotated_figure(chip, anns, layout=FigureLayout(locator=True))
    save_figure(fig, tmp_path / "fig.png")  # draws the figure
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    frame = ax.get_window_extent(renderer)
    boxes = []
    for text in ax.texts:
        if text.get_text().startswith("portal-"):
            bb = text.get_bbox_patch().get_window_extent(renderer)
            boxes.append((bb.x0, bb.y0, bb.x1, bb.y1))
    assert len(boxes) == 7
    locator = fig.axes[1].get_window_extent(renderer)
    for i, a in enumerate(boxes):
        assert frame.x0 <= a[0] and a[2] <= frame.x1 and frame.y0 <= a[1] and a[3] <= frame.y1
        assert not _overlaps(a, (locator.x0, locator.y0, locator.x1, locator.y1))
        for j, b in enumerate(boxes[:i]):
            assert not _overlaps(a, b), f"portal-{j + 1} and portal-{i + 1} overlap"


def test_pixels_without_image_are_light_grey_and_the_caption_says_so(
    make_chip, tmp_path: Path
) -> None:
    chip = make_chip(width=200, height=200, fill=0.0)  # a black scene
    valid = np.ones((200, 200), dtype=bool)
    valid[:, :60] = False  # the scene ends 60 px in from the left
    chip = replace(chip, data=chip.data + np.linspace(0, 1, 200, dtype=np.float32), valid=valid)
    fig = annotated_figure(chip, layout=FigureLayout(locator=False, dpi=100))
    img = np.asarray(Image.open(save_figure(fig, tmp_path / "gap.png")).convert("RGB")).astype(int)
    ax = fig.axes[0]
    height = fig.get_size_inches()[1] * fig.dpi
    left, _, bottom, top = chip.extent

    def pixel(x: float, y: float) -> np.ndarray:
        px, py = ax.transData.transform((x, y))
        return img[round(height - py), round(px)]

    mid_y = (bottom + top) / 2
    assert np.all(np.abs(pixel(left + 30 * 2.0, mid_y) - 217) <= 2)  # 0.85 grey, not black
    assert np.all(pixel(left + 62 * 2.0, mid_y) < 60)  # the scene's dark end beside the gap
    captions = " ".join(t.get_text() for t in fig.texts)
    assert "Light grey: no image there" in captions
    whole = make_chip(width=200, height=200)
    fig2 = annotated_figure(whole, layout=FigureLayout(locator=False))
    assert "Light grey" not in " ".join(t.get_text() for t in fig2.texts)


def test_timelapse_frames_show_no_image_light_grey(make_chip, tmp_path: Path) -> None:
    from sitewatch.report import write_timelapse

    chip = make_chip(width=64, height=64, fill=0.0)
    valid = np.ones((64, 64), dtype=bool)
    valid[:, :20] = False  # this date's scene stops short of the site's west side
    chips = [replace(chip, valid=valid), make_chip(width=64, height=64, fill=3000.0)]
    path = write_timelapse(chips, tmp_path / "t.gif")
    with Image.open(path) as gif:
        gif.seek(0)
        frame = np.asarray(gif.convert("RGB")).astype(int)
    h, w = frame.shape[:2]
    gap = frame[h // 2, int(0.1 * w)]
    scene = frame[h // 2, int(0.8 * w)]
    assert np.all(np.abs(gap - 217) <= 3) and np.all(scene < 40)


def test_a_change_preview_of_a_large_pair_pools_the_mask_so_no_change_is_lost(
    tmp_path: Path,
) -> None:
    """A 3,200 px pair is shown one pixel in three; a one-pixel change still shows."""
    from affine import Affine

    from sitewatch.report.preview import PREVIEW_PX, _pooled, write_change_preview

    mask = np.zeros((3200, 3000), dtype=bool)
    mask[1601, 1601] = True  # between the pixels a stride of 3 would keep
    step = -(-3200 // PREVIEW_PX)
    pooled = _pooled(mask, step)
    assert step == 3 and pooled.shape == (1067, 1000) and pooled[1601 // 3, 1601 // 3]
    assert pooled.sum() == 1
    data = np.full((3, 3200, 3000), 1000, dtype=np.uint16)
    path = write_change_preview(tmp_path / "big.png", data, data, mask, bands=("red", "green", "blue"),
                                crs="EPSG:32652", transform=Affine(1, 0, 500000, 0, -1, 4200000))  # fmt: skip
    assert path.stat().st_size > 0
