"""A small imagery time series of a site that gets built up, as a LocalSource folder."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import Point

from sitewatch.geo import local_utm_crs, to_crs

LON, LAT = 126.108, 38.585
BANDS = ("blue", "green", "red", "nir")
DATES = [datetime(2018, m, 10, 2, 0, tzinfo=UTC) for m in (1, 3, 5, 7, 9, 11)]
CLEAR_AT = 2  # vegetation cleared at the third date
BUILD_AT = 3  # a building appears at the fourth date


def write_series(
    folder: Path,
    *,
    seed: int = 0,
    lon: float = LON,
    lat: float = LAT,
    clear_at: int = CLEAR_AT,
    build_at: int = BUILD_AT,
    size: int = 200,
) -> Path:
    """Six 4-band 10 m GeoTIFFs (GDAL tags give dates and bands) centred on lon/lat."""
    rng = np.random.default_rng(seed)
    crs = local_utm_crs(lon, lat)
    c = to_crs(Point(lon, lat), "EPSG:4326", crs)
    transform = from_origin(c.x - size * 5, c.y + size * 5, 10, 10)
    veg = np.array([0.04, 0.08, 0.05, 0.35], np.float32)
    soil = np.array([0.15, 0.18, 0.22, 0.26], np.float32)
    roof = np.array([0.35, 0.36, 0.37, 0.38], np.float32)
    texture = 1 + 0.08 * rng.standard_normal((1, size, size)).astype(np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    mid = size // 2
    for i, when in enumerate(DATES):
        img = (veg[:, None, None] * texture).astype(np.float32)
        if i >= clear_at:
            img[:, mid - 20 : mid + 20, mid - 20 : mid + 20] = soil[:, None, None]
        if i >= build_at:
            img[:, mid - 8 : mid + 4, mid - 10 : mid + 10] = roof[:, None, None]
        img += 0.003 * rng.standard_normal(img.shape).astype(np.float32)
        path = folder / f"site_{when:%Y%m%d}.tif"
        with rasterio.open(
            path,
            "w",
            driver="GTiff",
            width=size,
            height=size,
            count=4,
            dtype="float32",
            crs=crs,
            transform=transform,
            nodata=None,
        ) as ds:
            ds.write(img)
            ds.update_tags(
                datetime=when.isoformat(),
                sensor="testsat",
                sun_azimuth="150",
                sun_elevation="45",
                cloud_cover="0",
            )
            for b, name in enumerate(BANDS, 1):
                ds.set_band_description(b, name)
    return folder


class SeriesKit:
    """The series generator and its known truth, for tests."""

    DATES = DATES
    CLEAR_AT = CLEAR_AT
    BUILD_AT = BUILD_AT
    LON = LON
    LAT = LAT
    write = staticmethod(write_series)


@pytest.fixture
def kit() -> type[SeriesKit]:
    return SeriesKit


@pytest.fixture
def series_dir(tmp_path: Path) -> Path:
    return write_series(tmp_path / "imagery")
