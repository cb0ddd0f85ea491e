"""Cubes (time, band, y, x) on one grid, eager and lazy; co-registration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from affine import Affine

from sitewatch.errors import AnalysisError, ImageryError
from sitewatch.imagery import (
    ChipGrid,
    LocalSource,
    apply_shift,
    build_cube,
    cut_chip,
    estimate_shift,
    stack_chips,
)

NAIP_CENTRE = (-99.155, 47.02)


@pytest.fixture(scope="module")
def naip(shared_data: Path) -> LocalSource:
    return LocalSource(shared_data / "naip-timeseries")


def test_naip_cube_of_ten_dates_on_one_grid(naip: LocalSource) -> None:
    scenes = naip.search((-99.16, 47.015, -99.15, 47.025))
    assert len(scenes) == 10
    grid = ChipGrid.around(*NAIP_CENTRE, 1000.0, 5.0)
    cube = build_cube(scenes, grid, source=naip)
    assert cube.dims == ("time", "band", "y", "x")
    assert cube.shape == (10, 4, grid.height, grid.width)
    assert list(cube.band.values) == ["blue", "green", "red", "nir"]
    assert cube.attrs["crs"] == "EPSG:32614"
    assert cube.attrs["transform"] == tuple(grid.transform)[:6]
    assert bool(cube.valid.all())
    times = cube.time.values
    assert (np.diff(times) > np.timedelta64(0)).all()
    assert list(cube.scene_id.values) == [s.id for s in scenes]
    assert cube.sun_elevation.shape == (10,)
    # the dates differ (crops change) but the grid is shared: the same field is in the same pixel
    xs, _ys = grid.coords()
    np.testing.assert_allclose(cube.x.values, xs)
    assert cube.dtype == np.uint8
    assert float(cube.sel(band="nir").std()) > 5


def test_lazy_cube_equals_eager(naip: LocalSource) -> None:
    scenes = naip.scenes()[:3]
    grid = ChipGrid.around(*NAIP_CENTRE, 500.0, 10.0)
    eager = build_cube(scenes, grid, ["red", "nir"], source=naip, dtype="float32")
    lazy = build_cube(scenes, grid, ["red", "nir"], source=naip, dtype="float32", lazy=True)
    assert lazy.chunks is not None
    np.testing.assert_array_equal(lazy.values, eager.values)
    np.testing.assert_array_equal(lazy.valid.values, eager.valid.values)


def test_landsat_cube_and_oscd_pair(shared_data: Path) -> None:
    ls = LocalSource(shared_data / "landsat-timeseries", bands=["swir16", "nir", "red", "green"])
    cube = build_cube(ls.scenes(), ChipGrid.around(-74.45, -8.43, 3000.0, 30.0), source=ls)
    assert cube.shape[:2] == (8, 4)
    assert cube.attrs["crs"] == "EPSG:32718"
    oscd = LocalSource(shared_data / "oscd" / "beirut")
    pair = build_cube(
        oscd.scenes(), ChipGrid.around(35.51, 33.86, 2000.0, 10.0), source=oscd, dtype="float32"
    )
    assert pair.shape[:2] == (2, 6)
    assert 200 <= pair.shape[2] <= 201 and 200 <= pair.shape[3] <= 201
    assert float(pair.sel(band="swir22").mean()) > 0


def test_cube_outside_every_image(naip: LocalSource) -> None:
    grid = ChipGrid.around(-98.0, 47.0, 500.0, 10.0)
    with pytest.raises(ImageryError, match="does not cover"):
        build_cube(naip.scenes()[:2], grid, source=naip)
    with pytest.raises(ImageryError, match="none of the 2 scene"):
        build_cube(naip.scenes()[:2], grid, source=naip, on_error="skip")


def test_stack_chips_refuses_mixed_grids(naip: LocalSource) -> None:
    a = cut_chip(naip, naip.scenes()[0], ChipGrid.around(*NAIP_CENTRE, 300.0, 10.0))
    b = cut_chip(naip, naip.scenes()[1], ChipGrid.around(*NAIP_CENTRE, 300.0, 5.0))
    with pytest.raises(Exception, match="another grid"):
        stack_chips([a, b])


def test_coregistration_recovers_a_subpixel_shift(naip: LocalSource) -> None:
    scene = naip.scenes()[-1]
    grid = ChipGrid.around(*NAIP_CENTRE, 1000.0, 5.0)
    ref = cut_chip(naip, scene, grid)
    t = grid.transform
    moved_grid = ChipGrid(
        grid.crs, Affine(t.a, 0, t.c + 2.3 * t.a, 0, t.e, t.f - 1.6 * t.e), grid.width, grid.height
    )
    moving = cut_chip(naip, scene, moved_grid).replace(transform=grid.transform)
    shift = estimate_shift(ref, moving, upsample=20)
    assert shift.dx == pytest.approx(2.3, abs=0.15)
    assert shift.dy == pytest.approx(-1.6, abs=0.15)
    assert shift.east_m == pytest.approx(11.5, abs=0.75)
    inner = (slice(20, -20), slice(20, -20))
    before = np.abs(moving.band("nir")[inner].astype(float) - ref.band("nir")[inner]).mean()
    fixed = apply_shift(moving, shift)
    after = np.abs(fixed.band("nir")[inner].astype(float) - ref.band("nir")[inner]).mean()
    assert after < before / 4
    assert not fixed.valid[:, 0].any()  # pixels shifted in from outside are invalid
    assert not fixed.valid[-1].any()
    moved = apply_shift(moving, shift, method="transform")
    assert moved.transform.c == pytest.approx(grid.transform.c - 2.3 * 5.0, abs=1.0)
    assert estimate_shift(ref, ref).magnitude_px < 0.05


def test_coregistration_needs_one_grid(naip: LocalSource) -> None:
    a = cut_chip(naip, naip.scenes()[0], ChipGrid.around(*NAIP_CENTRE, 300.0, 10.0))
    b = cut_chip(naip, naip.scenes()[0], ChipGrid.around(-99.16, 47.02, 300.0, 10.0))
    with pytest.raises(AnalysisError, match="different grids"):
        estimate_shift(a, b)
