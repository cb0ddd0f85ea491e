"""Figures checked as pictures: sizes, scale-bar length, callout tips, north arrow, contrast."""

from __future__ import annotations

import io
import math
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pyproj import Proj
from shapely.geometry import Point, box

from sitewatch.errors import InputError
from sitewatch.report import (
    Annotation,
    FigureLayout,
    ImageChip,
    activity_figure,
    annotated_figure,
    before_after_figure,
    percentile_stretch,
    save_figure,
    scale_bar,
)
from sitewatch.report._cartography import lonlat_of

from .conftest import SITE_LAT, SITE_LON, utm_xy

NO_LOCATOR = FigureLayout(locator=False)


def _png(fig, tmp_path: Path, name: str = "fig.png") -> np.ndarray:
    path = save_figure(fig, tmp_path / name)
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def _to_pixel(fig, ax, x: float, y: float) -> tuple[int, int]:
    px, py = ax.transData.transform((x, y))
    height = fig.get_size_inches()[1] * fig.dpi
    return round(px), round(height - py)


def test_png_size_follows_the_figure_size(make_chip, tmp_path: Path) -> None:
    chip = make_chip(width=300, height=150)
    fig = annotated_figure(chip, layout=FigureLayout(width_in=6.0, dpi=80, locator=False))
    img = _png(fig, tmp_path)
    w, h = fig.get_size_inches() * 80
    assert img.shape[:2] == (round(h), round(w))
    assert img.shape[1] == 480
    # the image axes keeps the chip's aspect ratio (2:1)
    bbox = fig.axes[0].get_window_extent()
    assert bbox.width / bbox.height == pytest.approx(2.0, rel=0.01)


def test_scale_bar_has_the_true_ground_length_for_a_known_gsd(make_chip, tmp_path: Path) -> None:
    chip = make_chip(width=440, height=200, gsd=2.0, fill=1000.0)  # 880 m wide, mid grey
    fig = annotated_figure(chip, layout=FigureLayout(width_in=8.0, dpi=100, locator=False))
    img = _png(fig, tmp_path)
    ax = fig.axes[0]
    # independent expectation: pyproj's point scale factor k at the centre
    cx, _cy = utm_xy(SITE_LON, SITE_LAT)
    k = Proj("EPSG:32652").get_factors(SITE_LON, SITE_LAT).parallel_scale
    bar = scale_bar(chip.crs, chip.extent)
    assert bar.metres == 200.0  # the largest 1-2-5 length within a quarter of 880 m
    px_per_unit = ax.get_window_extent().width / (chip.extent[1] - chip.extent[0])
    expected_px = bar.metres * k * px_per_unit
    # find the white bar: the longest run of white pixels in the lower fifth of the image axes
    _, top = _to_pixel(fig, ax, cx, chip.extent[3])
    _, bottom = _to_pixel(fig, ax, cx, chip.extent[2])
    best = 0
    for row in range(bottom - (bottom - top) // 5, bottom):
        white = np.all(img[row] >= 250, axis=1)
        run = longest = 0
        for v in white:
            run = run + 1 if v else 0
            longest = max(longest, run)
        best = max(best, longest)
    assert best == pytest.approx(expected_px, abs=2.5)
    assert "k = " in fig.texts[-1].get_text() or any("k = " in t.get_text() for t in fig.texts)


def test_scale_bar_in_a_geographic_crs_uses_geodesic_length() -> None:
    from sitewatch.geo import geodesic_distance

    extent = (125.0, 125.01, 39.0, 39.01)
    bar = scale_bar("EPSG:4326", extent)
    lon0 = 125.005 - bar.units / 2
    true_m = geodesic_distance(lon0, 39.005, lon0 + bar.units, 39.005)
    assert true_m == pytest.approx(bar.metres, rel=1e-4)
    assert bar.scale_factor is None


def test_callout_arrow_tips_sit_on_the_features(make_chip, tmp_path: Path) -> None:
    chip = make_chip(fill=1000.0)  # uniform grey: only the annotations are coloured
    cx, cy = utm_xy(SITE_LON, SITE_LAT)
    spots = [(cx + 150.0, cy + 80.0), (cx - 200.0, cy - 90.0)]
    anns = [
        Annotation(Point(*lonlat_of(chip.crs, x, y)), f"portal {i}", "ugf_portal")
        for i, (x, y) in enumerate(spots)
    ]
    fig = annotated_figure(chip, anns, layout=NO_LOCATOR)
    img = _png(fig, tmp_path)
    ax = fig.axes[0]
    red = (np.abs(img[..., 0] - 228) < 40) & (img[..., 1] < 80) & (img[..., 2] < 80)
    for x, y in spots:
        col, row = _to_pixel(fig, ax, x, y)
        ys, xs = np.nonzero(red[row - 15 : row + 16, col - 15 : col + 16])
        dist = np.hypot(xs - 15, ys - 15)
        assert dist.min() <= 3.5, f"the arrow does not reach the feature at {(col, row)}"
        assert (dist <= 12).sum() >= 20, f"no arrow head at {(col, row)}"
    # a place away from features and callouts stays plain grey
    col, row = _to_pixel(fig, ax, cx + 250.0, cy - 150.0)
    assert not red[row - 5 : row + 6, col - 5 : col + 6].any()
    # the polygon outline of a feature is drawn in its kind's colour along its edge
    hq = box(cx - 60, cy - 40, cx - 20, cy - 10)
    fig2 = annotated_figure(chip, [Annotation(hq, "HQ", "hq", crs=chip.crs)], layout=NO_LOCATOR)
    img2 = _png(fig2, tmp_path, "hq.png")
    col, row = _to_pixel(fig2, fig2.axes[0], cx - 40, cy - 10)  # middle of the top edge
    blue = (
        (np.abs(img2[..., 0] - 55) < 40) & (np.abs(img2[..., 1] - 126) < 40) & (img2[..., 2] > 150)
    )
    assert blue[row - 2 : row + 3, col - 2 : col + 3].any()


def test_north_arrow_follows_grid_convergence(make_chip, tmp_path: Path) -> None:
    # polar stereographic (EPSG:3413, central meridian 45 W) at 0 E: true north is 45 deg left of up
    chip = make_chip(crs="EPSG:3413", lon=0.0, lat=75.0, fill=0.0, width=300, height=300, gsd=10.0)
    fig = annotated_figure(chip, layout=NO_LOCATOR)
    img = _png(fig, tmp_path)
    ax = fig.axes[0]
    bbox = ax.get_window_extent()
    height = fig.get_size_inches()[1] * fig.dpi
    x0, x1 = int(bbox.x0 + 0.75 * bbox.width), int(bbox.x1)
    y0, y1 = int(height - bbox.y1), int(height - (bbox.y0 + 0.6 * bbox.height))
    white = np.argwhere(np.all(img[y0:y1, x0:x1] >= 200, axis=2))
    assert len(white) > 20
    rows, cols = white[:, 0].astype(float), white[:, 1].astype(float)
    up, right = -(rows - rows.mean()), cols - cols.mean()
    cov = np.cov(np.vstack([right, up]))
    vals, vecs = np.linalg.eigh(cov)
    dx, dy = vecs[:, np.argmax(vals)]
    angle = math.degrees(math.atan2(dx, dy))  # clockwise from up, modulo 180
    angle = (angle + 90) % 180 - 90
    assert angle == pytest.approx(-45.0, abs=8.0)


def test_before_after_uses_one_stretch_for_both(make_chip, tmp_path: Path) -> None:
    before = make_chip(fill=None, acquired=date(2020, 1, 1))
    after = make_chip(fill=None, offset=600.0, acquired=date(2023, 1, 1))
    st = percentile_stretch([before, after])
    assert st[0, 0] < np.percentile(after.data[0], 2)  # pooled, not the after chip's own
    fig = before_after_figure(before, after, layout=FigureLayout(width_in=10.0, locator=False))
    img = _png(fig, tmp_path)
    means = []
    height = fig.get_size_inches()[1] * fig.dpi
    for ax in fig.axes[:2]:
        b = ax.get_window_extent()
        crop = img[
            int(height - b.y1) + 40 : int(height - b.y0) - 40, int(b.x0) + 40 : int(b.x1) - 60
        ]
        means.append(crop.mean())
    assert means[1] > means[0] + 20  # the brighter scene looks brighter: contrast is matched
    texts = " ".join(t.get_text() for t in fig.texts)
    assert "2020-01-01" in texts and "2023-01-01" in texts and "Image ©" in texts


def test_before_after_outlines_the_change_mask(make_chip, tmp_path: Path) -> None:
    chip = make_chip(fill=1000.0)
    mask = np.zeros((chip.height, chip.width), bool)
    mask[50:100, 100:180] = True
    fig = before_after_figure(chip, chip, change_mask=mask, layout=FigureLayout(locator=False))
    img = _png(fig, tmp_path)
    magenta = (img[..., 0] > 200) & (img[..., 1] < 80) & (img[..., 2] > 200)
    ax = fig.axes[1]
    t = chip.transform
    col, row = _to_pixel(fig, ax, t.c + 140 * t.a, t.f + 50 * t.e)  # top edge of the mask
    assert magenta[row - 3 : row + 4, col - 3 : col + 4].any()
    with pytest.raises(InputError, match="change mask shape"):
        before_after_figure(chip, chip, change_mask=mask[:10])


def test_caption_and_locator(make_chip, tmp_path: Path) -> None:
    chip = make_chip()
    outline = tmp_path / "country.geojson"
    outline.write_text(
        '{"type":"FeatureCollection","features":[{"type":"Feature","properties":{},"geometry":'
        '{"type":"Polygon","coordinates":[[[124,38],[130,38],[130,43],[124,43],[124,38]]]}}]}'
    )
    fig = annotated_figure(chip, title="Test", boundaries=outline, site_lonlat=(SITE_LON, SITE_LAT))
    caption = fig.texts[-1].get_text()
    assert (
        "2023-05-01" in caption and "TestSat-1" in caption and "Image © Test Imaging Co." in caption
    )
    assert len(fig.axes) == 2  # image + locator
    locator = fig.axes[1]
    assert len(locator.patches) >= 1  # the outline polygon
    xmin, xmax = locator.get_xlim()
    assert xmin <= 124 and xmax >= 130
    # without boundaries: a graticule around the site
    fig2 = annotated_figure(chip)
    assert len(fig2.axes[1].lines) > 5
    with pytest.raises(InputError, match="does not exist"):
        annotated_figure(chip, boundaries=tmp_path / "missing.shp")


def test_without_a_blue_band_the_figure_is_a_named_false_colour_composite(make_chip) -> None:
    # Landsat as green, red, nir, swir16: the first three bands showed as red, green, blue,
    # vegetation blue, and no caption said which bands were shown
    base = make_chip(fill=None)
    four = np.concatenate([base.data, base.data[:1] * 1.5])

    def chip(bands: tuple[str, ...], data: np.ndarray = four) -> ImageChip:
        return replace(base, data=data, bands=bands)

    landsat = chip(("green", "red", "nir", "swir16"))
    assert landsat.display_bands() == [2, 1, 0]
    assert "near infrared, red, green as red, green, blue" in landsat.composite_text()
    cap = annotated_figure(landsat).texts[-1].get_text()
    assert "false colour (near infrared, red, green" in cap and "vegetation shows red" in cap
    ba = before_after_figure(landsat, landsat).texts[-1].get_text()
    assert "vegetation shows red" in ba
    swir = chip(("red", "nir", "swir16", "coastal"))
    assert swir.display_bands() == [2, 1, 0] and "short-wave infrared 1.6" in swir.composite_text()
    # true colour, and three bands of an image that names none, need no words
    assert base.composite_text() == "" and base.display_bands() == [0, 1, 2]
    assert chip((), base.data).composite_text() == ""
    assert "false colour" not in annotated_figure(base).texts[-1].get_text()
    assert chip(("coastal", "red", "rededge1", "nir")).composite_text() == (
        "bands coastal, red, rededge1 as red, green, blue"
    )
    assert chip(()).composite_text() == "bands 1, 2, 3 as red, green, blue"
    assert chip(("nir",), four[2:3]).composite_text() == "one band (nir), grey"


def test_locator_with_real_boundaries(make_chip, shared_data: Path) -> None:
    provinces = shared_data / "north-korea" / "boundaries" / "nkprovinces.shp"
    fig = annotated_figure(make_chip(), boundaries=provinces, site_lonlat=(SITE_LON, SITE_LAT))
    locator = fig.axes[1]
    assert len(locator.patches) >= 9
    xmin, xmax = locator.get_xlim()
    assert 123 < xmin < SITE_LON < xmax < 132


def test_activity_figure_and_formats(tmp_path: Path) -> None:
    fig = activity_figure(
        [date(2021, 1, 1), date(2020, 1, 1), date(2022, 1, 1)],
        [0.5, 0.1, 0.3],
        phases=[
            (date(2020, 1, 1), date(2021, 1, 1), "site_preparation"),
            (date(2021, 1, 1), date(2022, 1, 1), "active_construction"),
        ],
        events=[date(2021, 6, 1)],
    )
    ax = fig.axes[0]
    assert len(ax.patches) == 2
    xs = ax.lines[0].get_xdata()
    assert list(xs) == sorted(xs)  # plotted in date order
    svg = save_figure(fig, tmp_path / "a.svg")
    assert b"<svg" in svg.read_bytes()[:2000]
    pdf = save_figure(fig, tmp_path / "a.pdf")
    assert pdf.read_bytes().startswith(b"%PDF")
    with pytest.raises(InputError, match=r"\.png"):
        save_figure(fig, tmp_path / "a.jpg")
    with pytest.raises(InputError, match="one value per date"):
        activity_figure([date(2020, 1, 1)], [1.0, 2.0])
    # changed areas of hundreds of thousands of m² read with thousands separators
    areas = activity_figure([date(2020, 1, 1), date(2021, 1, 1)], [7921.0, 411892.0])
    areas.canvas.draw()
    ticks = [t.get_text() for t in areas.axes[0].get_yticklabels()]
    assert "400,000" in ticks and "400000" not in ticks
    fig.canvas.draw()
    small = [t.get_text() for t in ax.get_yticklabels()]
    assert "0.3" in small and all("," not in t for t in small)
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_image_chip_rejects_rotated_grids(make_chip) -> None:
    from affine import Affine

    from sitewatch.report import ImageChip

    with pytest.raises(InputError, match="north-up"):
        ImageChip(np.zeros((1, 4, 4)), Affine(1, 0.2, 0, 0, -1, 0), "EPSG:32652")
    _ = io  # keep the import used for readers of this module
