"""Validation in the catalog's value objects."""

from __future__ import annotations

from datetime import datetime

import pytest
from shapely.geometry import LineString, Point, Polygon

from sitewatch.catalog.models import Feature, Observation, Site, slugify
from sitewatch.errors import CoordinateError, GeometryError, InputError


def test_swapped_coordinates_get_a_hint() -> None:
    with pytest.raises(CoordinateError, match=r"look swapped: did you mean lat=38\.5, lon=126\.1"):
        Site(id="x", name="X", lon=38.5, lat=126.1)
    with pytest.raises(CoordinateError, match="longitude 200"):
        Site(id="x", name="X", lon=200.0, lat=10.0)


def test_enums_list_the_choices() -> None:
    with pytest.raises(InputError, match="unknown site status 'active'; choose one of: suspected"):
        Site(id="x", name="X", lon=1, lat=1, status="active")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="unknown feature kind"):
        Feature(id="f", site_id="x", kind="bunker", geometry=Point(1, 1))  # type: ignore[arg-type]


def test_ids_geometries_dates() -> None:
    with pytest.raises(InputError, match=r"not a slug.*'sino-ri-hq'"):
        Site(id="Sino-ri (HQ)", name="X", lon=1, lat=1)
    assert slugify("Sino-ri (HQ)") == "sino-ri-hq"
    bowtie = Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])
    with pytest.raises(GeometryError, match="Self-intersection"):
        Site(id="x", name="X", lon=0.5, lat=0.5, aoi=bowtie)
    with pytest.raises(InputError, match="AOI must be a polygon"):
        Site(id="x", name="X", lon=0.5, lat=0.5, aoi=LineString([(0, 0), (1, 1)]))
    with pytest.raises(InputError, match="time zone"):
        Observation(id="o", site_id="x", acquired=datetime(2020, 1, 1))
    with pytest.raises(InputError, match="confidence"):
        Site(id="x", name="X", lon=1, lat=1, confidence=2)
