"""Search candidates on places the catalog already holds: marked, and linked when accepted."""

from __future__ import annotations

from pathlib import Path

import pytest
from shapely.geometry import Point, box

from sitewatch.catalog.models import Candidate, Site
from sitewatch.catalog.store import Catalog
from sitewatch.geo import geodesic_buffer
from sitewatch.search.triage import catalogued_site, mark_catalogued

LON, LAT = 126.108, 38.585


def _candidate(rank: int, lon: float, lat: float) -> Candidate:
    return Candidate(f"c{rank}", "run", geodesic_buffer(lon, lat, 40.0, n=8), 0.9, rank)


def test_candidates_on_or_near_a_catalogued_site_are_marked(tmp_path: Path) -> None:
    with Catalog(f"sqlite:///{tmp_path / 'c.db'}") as cat:
        aoi = box(LON - 0.003, LAT - 0.002, LON + 0.003, LAT + 0.002)
        cat.add_site(Site(id="sakkanmol", name="Sakkanmol", lon=LON, lat=LAT, aoi=aoi))
        cat.add_site(Site(id="far", name="Far", lon=LON + 0.5, lat=LAT))
        inside = _candidate(1, LON + 0.002, LAT)  # on the AOI
        near = _candidate(2, LON, LAT + 0.0065)  # 500 m north of the AOI, 720 m of the point
        away = _candidate(3, LON + 0.1, LAT)  # about 8.7 km east
        marked = mark_catalogued(cat, [inside, near, away])
        assert marked[0].details["catalogued_site"] == {
            "id": "sakkanmol", "name": "Sakkanmol", "distance_m": 0.0}  # fmt: skip
        d = marked[1].details["catalogued_site"]["distance_m"]
        assert d == pytest.approx(500.0, abs=5.0)  # to the nearest point of the site
        assert "catalogued_site" not in marked[2].details and marked[2] == away
        assert mark_catalogued(cat, [near], radius_m=450.0) == [near]
        near = catalogued_site(cat, marked[1])
        assert near is not None and near[0].id == "sakkanmol" and near[1] == d
        cat.delete_site("sakkanmol")
        assert catalogued_site(cat, marked[1]) is None  # deleted since: a new site on accept
        assert catalogued_site(cat, away) is None
        # a site catalogued after the run (accepted from a neighbouring candidate) counts too
        cat.add_site(Site(id="new", name="New", lon=LON + 0.1, lat=LAT + 0.001))
        late = catalogued_site(cat, away)
        assert late is not None and late[0].id == "new" and late[1] == pytest.approx(111, abs=5)
        assert Point(LON, LAT).within(aoi)
