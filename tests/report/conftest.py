"""Factories for report tests: image chips on a UTM grid and a small populated SQLite catalog."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from affine import Affine
from pyproj import Transformer
from shapely.geometry import Point, box

from sitewatch.report import ImageChip

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SITE_LON, SITE_LAT = 125.75, 39.0  # west of the UTM 52N central meridian (129 E)
UTM = "EPSG:32652"


def need_tool(name: str) -> str:
    """The path of a command-line tool; missing fails in CI and skips elsewhere."""
    path = shutil.which(name)
    if path is None:
        msg = f"{name} is not installed (Debian: poppler-utils / gdal-bin; scripts/system-deps.sh)"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def utm_xy(lon: float, lat: float, crs: str = UTM) -> tuple[float, float]:
    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)
    return float(x), float(y)


ChipFactory = Callable[..., ImageChip]


@pytest.fixture
def make_chip() -> ChipFactory:
    """An ImageChip centred on the site: ``fill`` (constant) or a gradient, ``gsd`` metres."""

    def make(
        *,
        width: int = 300,
        height: int = 200,
        gsd: float = 2.0,
        fill: float | None = 1000.0,
        offset: float = 0.0,
        acquired: date | datetime | None = date(2023, 5, 1),
        crs: str = UTM,
        lon: float = SITE_LON,
        lat: float = SITE_LAT,
        seed: int = 0,
    ) -> ImageChip:
        cx, cy = utm_xy(lon, lat, crs)
        left = cx - width * gsd / 2
        top = cy + height * gsd / 2
        if fill is None:
            rng = np.random.default_rng(seed)
            base = np.linspace(500, 2500, width)[np.newaxis, :] + rng.normal(0, 50, (height, width))
            data = np.stack([base, base * 0.9, base * 0.8]) + offset
        else:
            data = np.full((3, height, width), fill + offset)
        return ImageChip(
            data=data.astype(np.float32),
            transform=Affine(gsd, 0, left, 0, -gsd, top),
            crs=crs,
            acquired=acquired,
            sensor="TestSat-1",
            source="Test Imaging Co.",
            bands=("red", "green", "blue"),
        )

    return make


@pytest.fixture
def site_catalog(tmp_path: Path) -> Iterator[Any]:
    """A SQLite catalog holding one site with features, observations, a measurement, a change."""
    from sitewatch.catalog.models import (
        ChangeEvent,
        Feature,
        Measurement,
        Observation,
        Site,
        Source,
    )
    from sitewatch.catalog.store import Catalog

    cat = Catalog(f"sqlite:///{tmp_path / 'report.db'}", actor="tester")
    cat.add_source(
        Source(
            "src-1", "Analyst Group, Hidden Bases Report (2019).", url="https://example.org/report"
        )
    )
    cat.add_site(
        Site(
            "test-base",
            "Test & <Base>",
            SITE_LON,
            SITE_LAT,
            aoi=box(SITE_LON - 0.004, SITE_LAT - 0.003, SITE_LON + 0.004, SITE_LAT + 0.003),
            category="missile_operating_base",
            status="suspected",
            notes="A synthetic base for the report tests.\nSecond line of the notes.",
            source_ids=("src-1",),
        )
    )
    cat.add_site(Site("other-base", "Other Base", 126.5, 40.1, declared=True, status="confirmed"))
    cat.add_feature(
        Feature(
            "f-portal",
            "test-base",
            "ugf_portal",
            Point(SITE_LON + 0.001, SITE_LAT + 0.0005),
            name="Portal A",
        )
    )
    cat.add_feature(
        Feature(
            "f-hq",
            "test-base",
            "hq",
            box(SITE_LON - 0.0015, SITE_LAT - 0.0006, SITE_LON - 0.0009, SITE_LAT - 0.0002),
            name="Headquarters",
            attributes={"height_m": 9.5},
        )
    )
    for i, (day, phase) in enumerate(
        [
            (date(2021, 3, 1), "no_activity"),
            (date(2022, 4, 1), "active_construction"),
            (date(2023, 5, 1), "post_construction"),
        ]
    ):
        cat.add_observation(
            Observation(
                f"obs-{i}",
                "test-base",
                datetime(day.year, day.month, day.day, tzinfo=UTC),
                sensor="TestSat-1",
                gsd_m=2.0,
                phase=phase,
                analyst="tester",
            )
        )
    cat.add_measurement(
        Measurement(
            "m-1",
            "test-base",
            "height",
            12.34,
            "m",
            uncertainty=0.8,
            feature_id="f-portal",
            observation_id="obs-1",
            method="shadow",
            inputs={"sun_elevation": 35.2},
            analyst="tester",
        )
    )
    cat.add_change_event(
        ChangeEvent(
            "c-1",
            "test-base",
            datetime(2021, 3, 1, tzinfo=UTC),
            datetime(2022, 4, 1, tzinfo=UTC),
            "cva",
            1800.0,
            geometry=box(SITE_LON + 0.0015, SITE_LAT - 0.001, SITE_LON + 0.002, SITE_LAT - 0.0006),
            magnitude=3.2,
            details={
                "indices": {"ndvi_before": 0.62, "ndvi_after": 0.11, "ndbi_before": None},
                "kinds": {"vegetation_to_built_or_bare": 1650.0, "within_vegetation": 150.0},
            },
        )
    )
    yield cat
    cat.close()
