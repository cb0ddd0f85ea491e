"""Factories for the exchange-format tests: sample records and small files written to tmp_path."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, box

from sitewatch.catalog.models import Feature, Measurement, Observation, Site, SiteRecord
from sitewatch.errors import RecordProblem

OGRINFO = shutil.which("ogrinfo")


def split(
    results: list[SiteRecord | RecordProblem],
) -> tuple[list[SiteRecord], list[RecordProblem]]:
    """(records, problems) of a read."""
    records = [r for r in results if isinstance(r, SiteRecord)]
    problems = [r for r in results if isinstance(r, RecordProblem)]
    return records, problems


def make_records() -> list[SiteRecord]:
    """Sites exercising every field: aliases, tags, AOIs (with a hole, multi-part), unicode."""
    holed = Polygon(
        [(126.10, 38.58), (126.12, 38.58), (126.12, 38.60), (126.10, 38.60)],
        [[(126.105, 38.585), (126.108, 38.585), (126.108, 38.588), (126.105, 38.588)]],
    )
    sak = Site(
        id="sakkanmol",
        name="Sakkanmol",
        lon=126.107945,
        lat=38.584698,
        aoi=holed,
        aliases=("Sakkanmol-ri", "Sak'kanmol"),
        country="KP",
        category="missile_operating_base",
        status="confirmed",
        declared=False,
        confidence=0.8,
        tags=("srbm", "scud", "ugf"),
        notes='Reported SRBM base.\nTwo portals; "quoted" & <angle> text, commas, semicolons;',
        source_ids=("beyond-parallel-2018",),
    )
    sinpo = Site(
        id="sinpo-sub",
        name="신포 잠수함 기지",
        lon=128.18,
        lat=40.02,
        aoi=MultiPolygon([box(128.17, 40.01, 128.175, 40.015), box(128.18, 40.02, 128.19, 40.03)]),
        aliases=("Sinpo", "新浦"),
        country="KP",
        category="naval_base",
        status="suspected",
        declared=True,
        declaration_ref="decl-2024/7",
        tags=("slbm",),
    )
    plain = Site(id="kal-gol", name="Kal-gol", lon=126.7226, lat=38.682288)
    features = (
        Feature(
            id="f-portal-1",
            site_id="sakkanmol",
            kind="ugf_portal",
            geometry=Point(126.1085, 38.5851),
            name="portal 1",
            attributes={"width_m": 8.5, "azimuth_deg": 112},
            first_seen=date(2015, 3, 1),
            last_seen=date(2021, 6, 30),
        ),
        Feature(
            id="f-road",
            site_id="sakkanmol",
            kind="road",
            geometry=LineString([(126.10, 38.58), (126.11, 38.59)]),
        ),
        Feature(
            id="f-berm",
            site_id="sakkanmol",
            kind="berm",
            geometry=box(126.111, 38.591, 126.112, 38.592),
            name="berm ñ",
        ),
    )
    observations = (
        Observation(
            id="obs-1",
            site_id="sakkanmol",
            acquired=datetime(2019, 4, 2, 2, 15, tzinfo=UTC),
            sensor="WorldView",
            scene_id="19APR02021500-P1BS",
            gsd_m=0.5,
            sun_azimuth=140.2,
            sun_elevation=55.0,
            analyst="ana",
            phase="active_construction",
            text="new spoil pile",
            evidence=("chips/2019-04-02.tif",),
        ),
    )
    measurements = (
        Measurement(
            id="m-berm-height",
            site_id="sakkanmol",
            kind="height",
            value=18.3,
            unit="m",
            uncertainty=0.9,
            feature_id="f-berm",
            observation_id="obs-1",
            method="shadow_profile",
            inputs={"sun_elevation": 55.0, "image": "pan.tif", "tip": [126.1, 38.5]},
            analyst="ana",
            measured_at=datetime(2019, 5, 1, 9, 30, tzinfo=UTC),
        ),
        Measurement(
            id="m-fence",
            site_id="sakkanmol",
            kind="distance",
            value=1250.0,
            unit="m",
            method="reported (CSIS 2018)",
        ),
    )
    return [
        SiteRecord(
            site=sak, features=features, observations=observations, measurements=measurements
        ),
        SiteRecord(site=sinpo),
        SiteRecord(site=plain),
    ]


@pytest.fixture
def records() -> list[SiteRecord]:
    return make_records()


@pytest.fixture
def write_text(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write ``text`` to ``tmp_path/name`` and return the path."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return _write


@pytest.fixture(name="split")
def split_fixture() -> Callable[
    [list[SiteRecord | RecordProblem]], tuple[list[SiteRecord], list[RecordProblem]]
]:
    """The :func:`split` helper, for test modules (they cannot import this conftest)."""
    return split


@pytest.fixture
def ogrinfo() -> str:
    """Path of GDAL's ogrinfo; skipped when missing, except in CI where it must exist."""
    if OGRINFO is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("ogrinfo (apt gdal-bin) is missing: CI must have it")
        pytest.skip("ogrinfo not installed (apt-get install gdal-bin)")
    return OGRINFO
