"""Fixtures of the reliability tests: seed records in every exchange format, helpers to run the CLI
in a subprocess and to count what a catalog holds."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, box

from sitewatch.catalog.models import Feature, Observation, Site, SiteRecord

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


def seed_records() -> list[SiteRecord]:
    """Three sites that use every field: AOIs (holed, multi-part), features, observations, unicode."""
    holed = Polygon(
        [(126.10, 38.58), (126.12, 38.58), (126.12, 38.60), (126.10, 38.60)],
        [[(126.105, 38.585), (126.108, 38.585), (126.108, 38.588), (126.105, 38.588)]],
    )
    a = Site(
        id="sakkanmol",
        name="Sakkanmol",
        lon=126.107945,
        lat=38.584698,
        aoi=holed,
        aliases=("Sakkanmol-ri",),
        country="KP",
        category="missile_operating_base",
        status="confirmed",
        confidence=0.8,
        tags=("srbm", "ugf"),
        notes='two portals; "quoted" & <angle>',
    )
    b = Site(
        id="sinpo",
        name="신포",
        lon=128.18,
        lat=40.02,
        aoi=MultiPolygon([box(128.17, 40.01, 128.175, 40.015), box(128.18, 40.02, 128.19, 40.03)]),
        declared=True,
        declaration_ref="d/7",
    )
    c = Site(id="kal-gol", name="Kal-gol", lon=126.7226, lat=38.682288)
    feats = (
        Feature(
            id="f-portal",
            site_id="sakkanmol",
            kind="ugf_portal",
            geometry=Point(126.1085, 38.5851),
            attributes={"width_m": 8.5},
            first_seen=date(2015, 3, 1),
        ),
        Feature(
            id="f-road",
            site_id="sakkanmol",
            kind="road",
            geometry=LineString([(126.10, 38.58), (126.11, 38.59)]),
        ),
    )
    obs = (
        Observation(
            id="o-1",
            site_id="sakkanmol",
            acquired=datetime(2020, 5, 1, 2, 0, tzinfo=UTC),
            sensor="WV3",
            phase="active_construction",
            text="new spoil",
        ),
    )
    return [
        SiteRecord(site=a, features=feats, observations=obs),
        SiteRecord(site=b),
        SiteRecord(site=c),
    ]


@pytest.fixture(scope="session")
def seed_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The seed records written in every exchange format (the fuzzers mutate these)."""
    from sitewatch.catalog.io import write_sites

    folder = tmp_path_factory.mktemp("seeds")
    out: dict[str, Path] = {}
    for fmt, name in (
        ("csv", "s.csv"),
        ("geojson", "s.geojson"),
        ("iarpa", "m.geojson"),
        ("kml", "s.kml"),
        ("kmz", "s.kmz"),
        ("gpkg", "s.gpkg"),
    ):
        recs = seed_records() if fmt != "iarpa" else seed_records()[:1]
        write_sites(recs, folder / name, fmt)
        out[fmt] = folder / name
    return out


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a ``sitewatch`` subprocess: its own home, no colour."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SITEWATCH_")}
    env.update(
        SITEWATCH_HOME=str(home),
        SITEWATCH_USER="tester",
        NO_COLOR="1",
        COLUMNS="120",
        PYTHONPATH=str(REPO / "src"),
    )
    env.update(extra)
    return env


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``sitewatch ARGS`` in a subprocess writing stdout+stderr to ``log``."""
    with log.open("wb") as fh:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [PYTHON, "-c", "from sitewatch.cli.main import main; main()", *args],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            cwd=str(REPO),
        )


@pytest.fixture
def home() -> Path:
    """This test's SITEWATCH_HOME (set by the hermetic fixture), shared with its subprocesses."""
    return Path(os.environ["SITEWATCH_HOME"])


# --- generated inputs for the crash and load tests -------------------------------------------------

LON0, LAT0 = 126.108, 38.585


def write_sites_csv(path: Path, n: int) -> Path:
    """A CSV of ``n`` sites with unique ids on a grid around (LON0, LAT0)."""
    with path.open("w", encoding="utf-8") as fh:
        fh.write("id,name,lat,lon,country,status,tags,notes\n")
        for i in range(n):
            fh.write(
                f"gen-{i:07d},Generated site {i},{LAT0 + (i % 1000) * 1e-4:.6f},"
                f"{LON0 + (i // 1000) * 1e-4:.6f},KP,suspected,gen;bulk,row {i}\n"
            )
    return path


def write_scenes(
    folder: Path, n: int, *, size: int = 64, lon: float = LON0, lat: float = LAT0, seed: int = 0
) -> Path:
    """``n`` dated 4-band 10 m GeoTIFFs centred on lon/lat (a LocalSource folder): a pad is
    cleared from the third date on, so the monitor sees change."""
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin
    from shapely.geometry import Point

    from sitewatch.geo import local_utm_crs, to_crs

    rng = np.random.default_rng(seed)
    crs = local_utm_crs(lon, lat)
    c = to_crs(Point(lon, lat), "EPSG:4326", crs)
    transform = from_origin(c.x - size * 5, c.y + size * 5, 10, 10)
    veg = np.array([0.04, 0.08, 0.05, 0.35], np.float32)[:, None, None]
    soil = np.array([0.15, 0.18, 0.22, 0.26], np.float32)[:, None, None]
    folder.mkdir(parents=True, exist_ok=True)
    mid = size // 2
    for i in range(n):
        when = datetime(2018, 1, 1, 2, tzinfo=UTC) + (date(2018, 1, 1 + i % 28) - date(2018, 1, 1))
        when = when.replace(year=2018 + i // 28)
        img = veg * (1 + 0.05 * rng.standard_normal((1, size, size)).astype(np.float32))
        if i >= 2:
            img[:, mid - 8 : mid + 8, mid - 8 : mid + 8] = soil
        img = img + 0.003 * rng.standard_normal((4, size, size)).astype(np.float32)
        with rasterio.open(
            folder / f"scene_{when:%Y%m%d}.tif",
            "w",
            driver="GTiff",
            width=size,
            height=size,
            count=4,
            dtype="float32",
            crs=crs,
            transform=transform,
        ) as ds:
            ds.write(img.astype(np.float32))
            ds.update_tags(datetime=when.isoformat(), sensor="testsat", cloud_cover="0")
            for b, name in enumerate(("blue", "green", "red", "nir"), 1):
                ds.set_band_description(b, name)
    return folder
