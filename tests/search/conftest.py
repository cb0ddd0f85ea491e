"""Factories of small test rasters for the search tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer
from rasterio.crs import CRS

CRS_UTM = CRS.from_epsg(32652)  # UTM 52N (Korean peninsula)
ORIGIN = (300_000.0, 4_300_000.0)


def _background(rng: np.random.Generator, size: int, bands: int) -> np.ndarray:
    base = rng.normal(0, 1, (bands, size // 8, size // 8))
    up = np.kron(base, np.ones((1, 8, 8)))
    noise = rng.normal(0, 0.4, (bands, size, size))
    img = 90 + 18 * (up + noise)
    return np.clip(img, 1, 255)


def _stamp(img: np.ndarray, r: int, c: int) -> None:
    """A bright compound: two shelters, an apron and a dark portal."""
    img[:, r - 4 : r + 4, c - 6 : c + 6] = 230
    img[:, r - 9 : r - 6, c - 5 : c + 5] = 250
    img[:, r + 6 : r + 9, c - 5 : c + 5] = 250
    img[:, r - 2 : r + 2, c + 8 : c + 10] = 5
    img[:, r + 9 : r + 11, c - 5 : c + 5] = 20  # shadow


SceneFactory = Callable[..., tuple[Path, list[tuple[float, float]], list[tuple[int, int]]]]


@pytest.fixture
def make_scene(tmp_path: Path) -> SceneFactory:
    """Write a 4-band uint8 UTM GeoTIFF with bright compounds planted at known pixels.

    Returns the path, the planted sites as (lon, lat) and as (row, col).
    """

    def make(
        size: int = 384,
        sites: int = 6,
        seed: int = 0,
        nodata_corner: bool = False,
        gsd: float = 10.0,
        name: str = "scene.tif",
    ) -> tuple[Path, list[tuple[float, float]], list[tuple[int, int]]]:
        rng = np.random.default_rng(seed)
        img = _background(rng, size, 4)
        pix: list[tuple[int, int]] = []
        while len(pix) < sites:
            r, c = (int(v) for v in rng.integers(24, size - 24, 2))
            if all(abs(r - a) + abs(c - b) > 60 for a, b in pix):
                pix.append((r, c))
        for r, c in pix:
            _stamp(img, r, c)
        data = np.rint(img).astype(np.uint8)
        if nodata_corner:
            data[:, : size // 3, : size // 3] = 0
        transform = Affine(gsd, 0, ORIGIN[0], 0, -gsd, ORIGIN[1])
        path = tmp_path / name
        with rasterio.open(
            path,
            "w",
            driver="GTiff",
            width=size,
            height=size,
            count=4,
            dtype="uint8",
            crs=CRS_UTM,
            transform=transform,
            nodata=0,
            photometric="MINISBLACK",
        ) as dst:
            dst.write(data)
        to_ll = Transformer.from_crs(CRS_UTM, "EPSG:4326", always_xy=True)
        lonlat = [to_ll.transform(*(transform * (c + 0.5, r + 0.5))) for r, c in pix]
        return path, [(float(a), float(b)) for a, b in lonlat], pix

    return make


@pytest.fixture
def make_dem(tmp_path: Path) -> Callable[..., Path]:
    """A planar DEM z = 1000 + gx * x_m over the scene's footprint (10 m pixels)."""

    def make(size: int = 384, gx: float = 0.1, gsd: float = 10.0) -> Path:
        cols = np.arange(size) * gsd
        z = 1000.0 + gx * np.broadcast_to(cols, (size, size))
        path = tmp_path / "dem.tif"
        with rasterio.open(
            path,
            "w",
            driver="GTiff",
            width=size,
            height=size,
            count=1,
            dtype="float32",
            crs=CRS_UTM,
            transform=Affine(gsd, 0, ORIGIN[0], 0, -gsd, ORIGIN[1]),
        ) as dst:
            dst.write(z.astype(np.float32), 1)
        return path

    return make
