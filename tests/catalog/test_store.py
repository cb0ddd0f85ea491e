"""The Catalog on SQLite and PostgreSQL: CRUD, queries, concurrency, history, imports."""

from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from shapely.geometry import Point, box

from sitewatch.catalog.models import (
    Alert,
    Candidate,
    ChangeEvent,
    Declaration,
    DeclaredSite,
    Feature,
    Measurement,
    Observation,
    Site,
    SiteRecord,
    Source,
    new_id,
)
from sitewatch.catalog.store import Catalog
from sitewatch.errors import (
    ConflictError,
    DuplicateError,
    ImportFormatError,
    InputError,
    NotFound,
    RecordProblem,
    SiteNotFound,
)
from sitewatch.geo import geodesic_distance


def make_site(i: int = 0, **kw: object) -> Site:
    base: dict[str, object] = {
        "id": f"site-{i}",
        "name": f"Site {i}",
        "lon": 126.0 + i * 0.01,
        "lat": 38.5 + i * 0.01,
    }
    base.update(kw)
    return Site(**base)  # type: ignore[arg-type]


def test_add_get_roundtrip_all_fields(catalog: Catalog) -> None:
    src = catalog.add_source(
        Source(id="csis", citation="CSIS Beyond Parallel", url="https://x.org")
    )
    site = make_site(
        aoi=box(126.0, 38.5, 126.02, 38.51),
        aliases=("Sakkanmol-ri", "사칸몰"),
        country="KP",
        category="missile_operating_base",
        status="confirmed",
        declared=True,
        declaration_ref="decl-1",
        confidence=0.8,
        tags=("ugf", "srbm"),
        notes="seven portals",
        source_ids=(src.id,),
    )
    stored = catalog.add_site(site)
    got = catalog.get_site(site.id)
    assert got == stored
    assert got.version == 1
    assert got.aoi is not None and got.aoi.equals(site.aoi)
    assert got.aliases == ("Sakkanmol-ri", "사칸몰")
    assert set(got.tags) == {"ugf", "srbm"}
    assert got.source_ids == ("csis",)
    assert got.created_at is not None and got.created_at.tzinfo is not None


def test_duplicate_and_missing(catalog: Catalog) -> None:
    catalog.add_site(make_site())
    with pytest.raises(DuplicateError, match="already exists"):
        catalog.add_site(make_site())
    with pytest.raises(SiteNotFound, match="sitewatch sites list"):
        catalog.get_site("nope")
    with pytest.raises(LookupError):
        catalog.get_site("nope")
    with pytest.raises(NotFound, match="unknown source"):
        catalog.add_site(make_site(1, source_ids=("ghost",)))
    assert catalog.count_sites() == 1


def test_update_is_optimistic(catalog: Catalog, catalog_url: str) -> None:
    catalog.add_site(make_site())
    alice = catalog.get_site("site-0")
    other = Catalog(catalog_url, actor="bob")
    bob = other.get_site("site-0")
    saved = other.update_site(dataclasses.replace(bob, status="confirmed"))
    assert saved.version == 2
    with pytest.raises(ConflictError, match="version 2, your copy is version 1"):
        catalog.update_site(dataclasses.replace(alice, notes="alice's edit"))
    # nothing of alice's edit was written, bob's stays
    now = catalog.get_site("site-0")
    assert now.status == "confirmed" and now.notes == ""
    fresh = catalog.update_site(dataclasses.replace(now, notes="alice again"))
    assert fresh.version == 3 and fresh.notes == "alice again"
    other.close()


def test_an_edit_that_changes_nothing_is_no_new_version(catalog: Catalog) -> None:
    """Saving a record as it is (the web form saved unchanged, a script re-run) writes nothing:
    no new version that would make a colleague's open copy stale, no empty history entry; a
    stale copy is still refused."""
    catalog.add_site(make_site(tags=("ugf", "berm")))
    site = catalog.get_site("site-0")
    feature = catalog.add_feature(Feature("f1", "site-0", "berm", Point(126.0, 38.5), name="b"))
    before = len(catalog.history(site_id="site-0"))
    same = catalog.update_site(dataclasses.replace(site, tags=("berm", "ugf", "berm")))
    assert same.version == 1 and same.updated_at == site.updated_at
    assert catalog.update_feature(dataclasses.replace(feature)).version == 1
    assert len(catalog.history(site_id="site-0")) == before
    assert catalog.update_feature(dataclasses.replace(feature, name="B1")).version == 2
    with pytest.raises(ConflictError, match="version 2, your copy is version 1"):
        catalog.update_feature(dataclasses.replace(feature))


def test_history_records_who_and_what(catalog: Catalog) -> None:
    catalog.add_site(make_site())
    site = catalog.get_site("site-0")
    catalog.update_site(dataclasses.replace(site, tags=("berm",)))
    catalog.delete_site("site-0")
    entries = catalog.history(entity_id="site-0")
    assert [e.action for e in entries] == ["create", "update", "delete"]
    assert all(e.actor == "tester" for e in entries)
    assert entries[1].before is not None and entries[1].before["tags"] == []
    assert entries[1].after is not None and entries[1].after["tags"] == ["berm"]
    assert entries[2].before is not None and entries[2].before["site"]["name"] == "Site 0"
    assert entries[0].at <= entries[1].at <= entries[2].at


def test_history_is_append_only(catalog: Catalog) -> None:
    catalog.add_site(make_site())
    engine = sa.create_engine(catalog._engine.url)
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(sa.text("UPDATE history SET actor = 'mallory'"))
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM history"))
    engine.dispose()
    assert catalog.history()[0].actor == "tester"


def test_delete_cascades_and_checks_version(catalog: Catalog) -> None:
    catalog.add_site(make_site())
    catalog.add_feature(
        Feature(id="f1", site_id="site-0", kind="berm", geometry=Point(126.0, 38.5))
    )
    with pytest.raises(ConflictError):
        catalog.delete_site("site-0", version=7)
    catalog.delete_site("site-0", version=1)
    assert catalog.query_features() == []
    with pytest.raises(NotFound):
        catalog.get_feature("f1")


def test_bbox_query_points_polygons_antimeridian(catalog: Catalog) -> None:
    catalog.add_site(make_site(0))  # 126.00, 38.50
    catalog.add_site(make_site(50))  # 126.50, 39.00
    catalog.add_site(
        make_site(1, id="poly", lon=125.0, lat=37.0, aoi=box(124.9, 36.9, 125.5, 37.5))
    )
    catalog.add_site(make_site(2, id="east", lon=179.9, lat=10.0))
    catalog.add_site(make_site(3, id="west", lon=-179.9, lat=10.0))
    ids = {s.id for s in catalog.query_sites(bbox=(125.9, 38.4, 126.1, 38.6))}
    assert ids == {"site-0"}
    # polygon AOI overlaps the box though its point does not
    ids = {s.id for s in catalog.query_sites(bbox=(125.4, 37.4, 125.6, 37.6))}
    assert ids == {"poly"}
    # across the antimeridian (west > east)
    ids = {s.id for s in catalog.query_sites(bbox=(179.0, 9.0, -179.0, 11.0))}
    assert ids == {"east", "west"}
    with pytest.raises(InputError, match="south"):
        catalog.query_sites(bbox=(0, 10, 1, 5))


def test_radius_query_is_geodesic(catalog: Catalog) -> None:
    centre = (126.0, 38.5)
    # points at about 9.9 km and 10.1 km due east
    from sitewatch.geo import GEOD

    near_lon, near_lat, _ = GEOD.fwd(*centre, 90.0, 9_900.0)
    far_lon, far_lat, _ = GEOD.fwd(*centre, 90.0, 10_100.0)
    catalog.add_site(make_site(0, id="near", lon=near_lon, lat=near_lat))
    catalog.add_site(make_site(1, id="far", lon=far_lon, lat=far_lat))
    # a polygon whose point is far but whose edge comes within 5 km
    edge_lon, _, _ = GEOD.fwd(*centre, 270.0, 5_000.0)
    catalog.add_site(
        make_site(
            2,
            id="poly",
            lon=edge_lon - 0.2,
            lat=38.5,
            aoi=box(edge_lon - 0.3, 38.45, edge_lon, 38.55),
        )
    )
    found = {s.id for s in catalog.query_sites(near=(*centre, 10_000.0))}
    assert found == {"near", "poly"}
    assert geodesic_distance(*centre, near_lon, near_lat) == pytest.approx(9_900.0, abs=0.01)
    # near the pole and across the antimeridian
    catalog.add_site(make_site(3, id="polar", lon=-170.0, lat=89.9))
    assert {s.id for s in catalog.query_sites(near=(10.0, 89.95, 20_000.0))} == {"polar"}
    catalog.add_site(make_site(4, id="dateline", lon=-179.99, lat=0.0))
    assert {s.id for s in catalog.query_sites(near=(179.99, 0.0, 5_000.0))} == {"dateline"}


def test_text_status_tag_category_declared(catalog: Catalog) -> None:
    catalog.add_site(
        make_site(
            0,
            name="Sakkanmol",
            aliases=("Sakkanmol-ri",),
            tags=("srbm", "ugf"),
            category="missile_operating_base",
            status="confirmed",
        )
    )
    catalog.add_site(
        make_site(1, name="Sino-ri", tags=("mrbm",), declared=True, notes="100% sure_")
    )
    catalog.add_site(make_site(2, name="Other", tags=("ugf",), status="inactive"))
    assert [s.id for s in catalog.query_sites(text="SAKKAN")] == ["site-0"]
    assert [s.id for s in catalog.query_sites(text="mol-ri")] == ["site-0"]
    assert [s.id for s in catalog.query_sites(text="100%")] == ["site-1"]
    assert [s.id for s in catalog.query_sites(text="%")] == ["site-1"]
    assert {s.id for s in catalog.query_sites(status=["confirmed", "inactive"])} == {
        "site-0",
        "site-2",
    }
    assert {s.id for s in catalog.query_sites(tags=["ugf"])} == {"site-0", "site-2"}
    assert {s.id for s in catalog.query_sites(tags=["ugf", "srbm"])} == {"site-0"}
    assert [s.id for s in catalog.query_sites(category="missile_operating_base")] == ["site-0"]
    assert [s.id for s in catalog.query_sites(declared=True)] == ["site-1"]
    assert len(catalog.query_sites(limit=2)) == 2


def test_features_crud_and_queries(catalog: Catalog) -> None:
    catalog.add_site(make_site())
    portal = catalog.add_feature(
        Feature(
            id=new_id(),
            site_id="site-0",
            kind="ugf_portal",
            geometry=Point(126.001, 38.501),
            attributes={"azimuth_deg": 135.0},
            first_seen=date(2017, 5, 1),
        )
    )
    berm = catalog.add_feature(
        Feature(
            id=new_id(),
            site_id="site-0",
            kind="berm",
            geometry=box(126.002, 38.502, 126.003, 38.503),
            attributes={"height_m": 18.0},
        )
    )
    with pytest.raises(SiteNotFound):
        catalog.add_feature(Feature(id=new_id(), site_id="ghost", kind="hq", geometry=Point(1, 1)))
    assert {f.id for f in catalog.query_features(site_id="site-0")} == {portal.id, berm.id}
    assert [f.id for f in catalog.query_features(kind="berm")] == [berm.id]
    assert [f.id for f in catalog.query_features(bbox=(126.0015, 38.5015, 126.0025, 38.5025))] == [
        berm.id
    ]
    assert [f.id for f in catalog.query_features(near=(126.001, 38.501, 50.0))] == [portal.id]
    edited = catalog.update_feature(dataclasses.replace(berm, attributes={"height_m": 19.5}))
    assert edited.version == 2 and edited.attributes == {"height_m": 19.5}
    with pytest.raises(ConflictError):
        catalog.update_feature(dataclasses.replace(berm, name="stale"))
    catalog.delete_feature(portal.id)
    assert [f.id for f in catalog.query_features()] == [berm.id]


def test_records_observations_measurements_events(catalog: Catalog) -> None:
    catalog.add_site(make_site())
    feat = catalog.add_feature(
        Feature(id="b1", site_id="site-0", kind="berm", geometry=Point(126, 38.5))
    )
    t1 = datetime(2018, 3, 1, 2, 30, tzinfo=UTC)
    t2 = datetime(2017, 3, 1, 2, 30, tzinfo=UTC)
    catalog.add_observation(
        Observation(
            id="o1",
            site_id="site-0",
            acquired=t1,
            sensor="WV3",
            phase="active_construction",
            evidence=("a.png",),
        )
    )
    catalog.add_observation(Observation(id="o2", site_id="site-0", acquired=t2, sensor="S2"))
    assert [o.id for o in catalog.list_observations("site-0")] == ["o2", "o1"]
    assert catalog.list_observations("site-0")[1].evidence == ("a.png",)
    m = catalog.add_measurement(
        Measurement(
            id="m1",
            site_id="site-0",
            feature_id=feat.id,
            kind="height",
            value=18.2,
            unit="m",
            uncertainty=0.6,
            method="shadow",
            inputs={"sun_elevation": 41.2},
        )
    )
    assert catalog.list_measurements(feature_id="b1") == [m]
    with pytest.raises(NotFound):
        catalog.add_measurement(
            Measurement(
                id="m2", site_id="site-0", feature_id="ghost", kind="height", value=1, unit="m"
            )
        )
    ev = catalog.add_change_event(
        ChangeEvent(
            id="c1",
            site_id="site-0",
            before=t2,
            after=t1,
            method="irmad",
            area_m2=1250.0,
            geometry=box(126, 38.5, 126.001, 38.501),
        )
    )
    assert catalog.list_change_events("site-0") == [ev]
    # corrected (a new version) and retracted, with both steps in the history
    fixed = catalog.update_change_event(dataclasses.replace(ev, area_m2=900.0))
    assert fixed.version == 2 and catalog.get_change_event("c1").area_m2 == 900.0
    # the alerts raised from it go with it (dismissed), unless kept; others stay
    for key, event in (("a1", "c1"), ("a2", "other")):
        catalog.add_alert(Alert(key, "site-0", "changed_area", "m", key,
                                details={"change_event": event}))  # fmt: skip
    with pytest.raises(ConflictError):
        catalog.delete_change_event("c1", version=1)
    assert catalog.get_alert("a1").state == "new"  # the refused retraction dismissed nothing
    assert catalog.delete_change_event("c1", version=2) == ["a1"]
    assert catalog.get_alert("a1").state == "dismissed" and catalog.get_alert("a2").state == "new"
    assert catalog.list_change_events("site-0") == []
    steps = [h.action for h in catalog.history(entity="change_event", entity_id="c1")]
    assert sorted(steps) == ["create", "delete", "update"]
    with pytest.raises(NotFound):
        catalog.get_change_event("c1")
    kept = catalog.add_change_event(dataclasses.replace(ev, id="c2", version=1))
    catalog.add_alert(
        Alert("a3", "site-0", "changed_area", "m", "a3", details={"change_event": "c2"})
    )
    assert catalog.delete_change_event(kept.id, dismiss_alerts=False) == []
    assert catalog.get_alert("a3").state == "new"


def test_deleting_a_measured_feature_never_drops_its_measurements_silently(
    catalog: Catalog,
) -> None:
    """The measurements' foreign key would unlink them without a history row: the catalog
    refuses, keeps them on the site (naming the feature) or deletes them, with history."""
    catalog.add_site(make_site())
    for fid in ("b1", "b2", "b3"):
        catalog.add_feature(Feature(fid, "site-0", "berm", Point(126, 38.5), name=f"berm {fid}"))
    for i, fid in enumerate(("b1", "b1", "b2")):
        catalog.add_measurement(
            Measurement(f"m{i}", "site-0", "height", 18.0 + i, "m", feature_id=fid)
        )
    with pytest.raises(ConflictError, match=r"'b1' has 2 measurement\(s\) \(height\)"):
        catalog.delete_feature("b1")
    assert {f.id for f in catalog.query_features()} == {"b1", "b2", "b3"}
    assert catalog.delete_feature("b1", measurements="keep") == 2
    kept = {m.id: m for m in catalog.list_measurements(site_id="site-0")}
    assert set(kept) == {"m0", "m1", "m2"}
    for mid in ("m0", "m1"):
        assert kept[mid].feature_id is None and kept[mid].version == 2
        assert kept[mid].inputs == {"deleted_feature": "b1 (berm berm b1)"}
    assert catalog.delete_feature("b2", measurements="delete") == 1
    assert {m.id for m in catalog.list_measurements(site_id="site-0")} == {"m0", "m1"}
    assert catalog.delete_feature("b3") == 0  # nothing measured: nothing to choose
    rows = [(e.entity, e.entity_id, e.action) for e in catalog.history(site_id="site-0")]
    for row in (("measurement", "m0", "update"), ("measurement", "m1", "update"),
                ("feature", "b1", "delete"), ("measurement", "m2", "delete"),
                ("feature", "b2", "delete"), ("feature", "b3", "delete")):  # fmt: skip
        assert row in rows, row
    with pytest.raises(InputError, match="refuse, keep or delete"):
        catalog.delete_feature("b1", measurements="drop")  # type: ignore[arg-type]


def test_observations_corrected_and_retracted_measurements_retracted(catalog: Catalog) -> None:
    catalog.add_site(make_site(0))
    catalog.add_site(make_site(1))
    t1 = datetime(2024, 3, 1, 2, 30, tzinfo=UTC)
    o1 = catalog.add_observation(Observation("o1", "site-0", t1, sensor="WV3"))
    catalog.add_observation(Observation("o2", "site-0", t1, sensor="S2"))
    catalog.add_observation(Observation("o9", "site-1", t1))
    fixed = catalog.update_observation(
        dataclasses.replace(o1, acquired=datetime(2024, 3, 2, tzinfo=UTC), phase="site_preparation")
    )
    assert fixed.version == 2 and fixed.phase == "site_preparation"
    assert catalog.get_observation("o1") == fixed
    with pytest.raises(ConflictError):
        catalog.update_observation(dataclasses.replace(o1, text="stale"))
    with pytest.raises(InputError, match="cannot move to another site"):
        catalog.update_observation(dataclasses.replace(fixed, site_id="site-1"))
    m = catalog.add_measurement(
        Measurement("m1", "site-0", "height", 18.0, "m", observation_id="o1")
    )
    catalog.add_measurement(Measurement("m2", "site-0", "height", 9.0, "m", observation_id="o2"))
    # a measurement is stored on the site of what it measures
    with pytest.raises(InputError, match="observation 'o9' belongs to site 'site-1'"):
        catalog.add_measurement(Measurement("mx", "site-0", "height", 1, "m", observation_id="o9"))
    catalog.add_feature(Feature("f9", "site-1", "berm", Point(126, 38.5)))
    with pytest.raises(InputError, match="feature 'f9' belongs to site 'site-1'"):
        catalog.add_measurement(Measurement("my", "site-0", "height", 1, "m", feature_id="f9"))
    with pytest.raises(ConflictError, match=r"observation 'o1' has 1 measurement"):
        catalog.delete_observation("o1")
    assert catalog.delete_observation("o1", measurements="keep") == 1
    kept = catalog.get_measurement("m1")
    assert kept.observation_id is None and kept.version == m.version + 1
    assert kept.inputs["deleted_observation"] == "o1 (2024-03-02 WV3)"
    assert catalog.delete_observation("o2", measurements="delete") == 1
    assert [o.id for o in catalog.list_observations("site-0")] == []
    with pytest.raises(ConflictError):
        catalog.delete_measurement("m1", version=1)
    catalog.delete_measurement("m1")
    assert catalog.list_measurements(site_id="site-0") == []
    with pytest.raises(NotFound):
        catalog.get_measurement("m1")
    rows = [(e.entity, e.entity_id, e.action) for e in catalog.history(site_id="site-0")]
    for row in (("observation", "o1", "update"), ("observation", "o1", "delete"),
                ("measurement", "m1", "update"), ("measurement", "m1", "delete"),
                ("measurement", "m2", "delete"), ("observation", "o2", "delete")):  # fmt: skip
        assert row in rows, row


def test_alerts_idempotent_and_states(catalog: Catalog) -> None:
    catalog.add_site(make_site())
    a = Alert(
        id="a1", site_id="site-0", rule="area", message="2,000 m2 changed", key="site-0/area/2018"
    )
    _, created = catalog.add_alert(a)
    again, created_again = catalog.add_alert(dataclasses.replace(a, id="a2"))
    assert created and not created_again and again.id == "a1"
    acked = catalog.set_alert_state("a1", "acked")
    assert acked.state == "acked" and acked.version == 2
    assert catalog.list_alerts(state="new") == []
    b = Alert("b1", "site-0", "measured_change", "berm grew", key="site-0/measured_change/m1")
    catalog.add_alert(b)
    assert [x.id for x in catalog.list_alerts(rule="measured_change")] == ["b1"]
    assert [x.id for x in catalog.list_alerts(rule=["area"], state=["acked"])] == ["a1"]
    assert catalog.list_alerts(rule="area", state="new") == []
    assert {x.id for x in catalog.list_alerts(rule=("area", "measured_change"))} == {"a1", "b1"}
    with pytest.raises(InputError, match="unknown alert state"):
        catalog.set_alert_state("a1", "bogus")


def test_candidates(catalog: Catalog) -> None:
    n = catalog.add_candidates(
        Candidate(
            id=f"c{i}",
            run_id="run1",
            geometry=box(i, 0, i + 0.1, 0.1),
            score=1 - i / 10,
            rank=i + 1,
        )
        for i in range(5)
    )
    assert n == 5
    cands = catalog.list_candidates(run_id="run1")
    assert [c.rank for c in cands] == [1, 2, 3, 4, 5]
    catalog.update_candidate(dataclasses.replace(cands[0], state="accepted"))
    assert [c.id for c in catalog.list_candidates(state="accepted")] == ["c0"]


def test_declaration_diff(catalog: Catalog) -> None:
    catalog.add_site(make_site(0, name="Sakkanmol"))
    catalog.add_site(make_site(1, name="Sino-ri", aliases=("Sinori",)))
    catalog.add_site(make_site(2, name="Hidden", lon=127.0, lat=39.0))
    decl = Declaration(
        id="d1",
        party="KP",
        entries=(
            DeclaredSite(name="Sinori"),
            DeclaredSite(name="Renamed base", lon=126.0005, lat=38.5005),
            DeclaredSite(name="Somewhere else", lon=129.0, lat=41.0),
        ),
    )
    catalog.add_declaration(decl)
    diff = catalog.diff_declaration("d1")
    assert {s.id for _, s in diff.matched} == {"site-0", "site-1"}
    assert [s.id for s in diff.undeclared] == ["site-2"]
    assert [e.name for e in diff.unknown] == ["Somewhere else"]
    assert catalog.get_declaration("d1").entries == decl.entries


def test_import_all_or_nothing(catalog: Catalog) -> None:
    catalog.add_site(make_site(99))
    good = [SiteRecord(site=make_site(i), line=i + 2) for i in range(5)]
    bad: list[SiteRecord | RecordProblem] = [
        *good,
        RecordProblem(8, "latitude 95 is outside -90..90"),
    ]
    with pytest.raises(ImportFormatError, match="line 8: latitude 95") as err:
        catalog.import_records(bad, path="x.csv")
    assert "nothing was imported" in str(err.value)
    assert catalog.count_sites() == 1
    dup = [*good, SiteRecord(site=make_site(1), line=9)]
    with pytest.raises(
        ImportFormatError, match=r"line 9: duplicate site id 'site-1' \(first at line 3\)"
    ):
        catalog.import_records(dup, path="x.csv")
    assert catalog.count_sites() == 1
    report = catalog.import_records(bad, path="x.csv", skip_invalid=True)
    assert (report.added, report.skipped) == (5, 1)
    assert catalog.count_sites() == 6
    # ids already stored
    with pytest.raises(ImportFormatError, match="already in the catalog"):
        catalog.import_records([SiteRecord(site=make_site(0), line=2)], path="y.csv")
    rep = catalog.import_records(
        [SiteRecord(site=make_site(0, name="Renamed"), line=2)], on_duplicate="update"
    )
    assert rep.updated == 1 and catalog.get_site("site-0").name == "Renamed"
    rep = catalog.import_records([SiteRecord(site=make_site(0), line=2)], on_duplicate="skip")
    assert rep.skipped == 1 and catalog.get_site("site-0").name == "Renamed"


def test_import_with_sources_features_observations(catalog: Catalog) -> None:
    src = Source(id="iarpa", citation="IARPA SMART annotations")
    rec = SiteRecord(
        site=make_site(0, source_ids=("iarpa",)),
        features=(Feature(id="f", site_id="site-0", kind="building", geometry=Point(126, 38.5)),),
        observations=(
            Observation(id="o", site_id="site-0", acquired=datetime(2020, 1, 1, tzinfo=UTC)),
        ),
        sources=(src,),
    )
    report = catalog.import_records(
        [rec, SiteRecord(site=make_site(1, source_ids=("iarpa",)), sources=(src,))]
    )
    assert (report.added, report.features, report.observations) == (2, 1, 1)
    assert catalog.get_site("site-0").source_ids == ("iarpa",)
    assert catalog.history(entity_id="site-1")[0].action == "import"


def test_concurrent_writers(catalog: Catalog, catalog_url: str) -> None:
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        try:
            with Catalog(catalog_url, actor=f"w{k}") as cat:
                for i in range(15):
                    cat.add_site(make_site(k * 100 + i))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert catalog.count_sites() == 60
    assert len(catalog.history()) == 60


def test_transaction_groups_writes(catalog: Catalog) -> None:
    with pytest.raises(DuplicateError), catalog.transaction() as tx:
        tx.add_site(make_site(0))
        tx.add_site(make_site(0))
    assert catalog.count_sites() == 0
    assert catalog.history() == []


def test_schema_is_at_head_and_reopens(catalog_url: str) -> None:
    from alembic.runtime.migration import MigrationContext

    from sitewatch.catalog._migrate import head_revision

    Catalog(catalog_url).close()
    cat = Catalog(catalog_url)
    with cat._engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == head_revision()
    cat.close()


def test_backend_features(catalog: Catalog) -> None:
    if catalog.backend.dialect == "sqlite":
        with catalog._engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            names = {r[0] for r in conn.exec_driver_sql("SELECT name FROM sqlite_master")}
        assert {"sites_rtree", "features_rtree"} <= names
    else:
        assert catalog.backend.postgis, "PostGIS must be available for the PostgreSQL tests"
        with catalog._engine.connect() as conn:
            idx = {r[0] for r in conn.exec_driver_sql("SELECT indexname FROM pg_indexes")}
        assert {"ix_sites_geom", "ix_features_geom"} <= idx


def test_bad_urls() -> None:
    from sitewatch.errors import ConfigError

    with pytest.raises(ConfigError, match="unsupported catalog URL"):
        Catalog("mysql://x/y")
    with pytest.raises(ConfigError, match="in-memory"):
        Catalog("sqlite://")
    with pytest.raises(ConfigError, match=r"'bogus' is not a database URL.*SITEWATCH_DATABASE_URL"):
        Catalog("bogus")


def test_a_catalog_that_cannot_be_opened_says_why(tmp_path: Path) -> None:
    from sitewatch.errors import ConfigError

    junk = tmp_path / "notes.db"
    junk.write_text("not a database")
    with pytest.raises(ConfigError, match="file is not a database; is it a SQLite file"):
        Catalog(f"sqlite:///{junk}")
    assert junk.read_text() == "not a database"  # left as it was
    blocker = tmp_path / "home"
    blocker.write_text("")
    with pytest.raises(ConfigError, match=r"home of the SQLite catalog \(a file is in the way\)"):
        Catalog(f"sqlite:///{blocker}/catalog.db")
    with pytest.raises(
        ConfigError, match=r"postgresql://u:\*\*\*@127\.0\.0\.1:9/x: .*server running"
    ):
        Catalog("postgresql://u:secret@127.0.0.1:9/x")  # the password is never printed


def test_site_history_holds_its_records(catalog: Catalog) -> None:
    catalog.add_site(make_site(0))
    catalog.add_site(make_site(1))
    f1 = catalog.add_feature(Feature("f1", "site-0", "berm", Point(126.0, 38.5)))
    catalog.update_feature(dataclasses.replace(f1, name="north berm"))
    catalog.add_features([Feature("f2", "site-0", "hq", Point(126.0, 38.5))])  # bulk
    catalog.delete_feature("f2")
    catalog.add_feature(Feature("f3", "site-1", "berm", Point(126.1, 38.5)))
    catalog.add_observation(
        Observation("o1", "site-0", datetime(2024, 3, 1, tzinfo=UTC), phase="no_activity")
    )
    catalog.add_source(Source("src-1", "A report"))
    entries = catalog.history(site_id="site-0")
    assert [(e.entity, e.entity_id, e.action) for e in entries] == [
        ("site", "site-0", "create"),
        ("feature", "f1", "create"),
        ("feature", "f1", "update"),
        ("feature", "f2", "create"),
        ("feature", "f2", "delete"),
        ("observation", "o1", "create"),
    ]
    assert {e.site_id for e in entries} == {"site-0"}
    assert [e.entity_id for e in catalog.history(site_id="site-1")] == ["site-1", "f3"]
    (src,) = catalog.history(entity="source")
    assert src.site_id is None
    assert [e.entity_id for e in catalog.history(site_id="site-0", limit=2)] == ["f2", "o1"]


def test_migration_0003_fills_the_site_of_earlier_history(tmp_path: Path) -> None:
    """A catalog written before history.site_id existed gets it filled on opening: from the
    site's own entries, the records still stored, and the snapshots of those deleted since."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    cat = Catalog(url, actor="tester")
    cat.add_site(make_site(0))
    cat.add_features([Feature("f1", "site-0", "berm", Point(126.0, 38.5))])
    cat.add_feature(Feature("f2", "site-0", "hq", Point(126.0, 38.5)))
    cat.delete_feature("f2")
    cat.add_source(Source("src-1", "A report"))
    cat.close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # back to the 0002 schema
        conn.exec_driver_sql("DROP INDEX ix_history_site")
        conn.exec_driver_sql("ALTER TABLE history DROP COLUMN site_id")
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0002'")
    cat = Catalog(url, actor="tester")
    entries = cat.history(site_id="site-0")
    assert [(e.entity_id, e.action) for e in entries] == [
        ("site-0", "create"),
        ("f1", "create"),
        ("f2", "create"),
        ("f2", "delete"),
    ]
    assert cat.history(entity="source")[0].site_id is None
    cat.close()
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
        conn.exec_driver_sql("UPDATE history SET actor = 'mallory'")  # the guard is back
    new_url = f"sqlite:///{tmp_path / 'new.db'}"
    Catalog(new_url).close()
    upgraded, fresh = sa.inspect(engine), sa.inspect(sa.create_engine(new_url))
    columns = [(c["name"], str(c["type"]), c["nullable"]) for c in fresh.get_columns("history")]
    assert columns == [
        (c["name"], str(c["type"]), c["nullable"]) for c in upgraded.get_columns("history")
    ]
    index = {i["name"]: i["column_names"] for i in fresh.get_indexes("history")}
    assert index == {i["name"]: i["column_names"] for i in upgraded.get_indexes("history")}
    engine.dispose()


def test_import_update_brings_in_the_files_new_and_changed_records(catalog: Catalog) -> None:
    """A colleague's file of a known site: its new berm and observation are added, the portal
    they moved is updated (a new version), and what the file lacks stays."""
    site = make_site(0)
    portal = Feature("f-portal", "site-0", "ugf_portal", Point(126.0, 38.5), name="portal 1")
    mine = Feature("f-mine", "site-0", "hq", Point(126.01, 38.5))
    obs = Observation("o1", "site-0", datetime(2024, 1, 1, tzinfo=UTC), text="seen")
    catalog.import_records([SiteRecord(site, features=(portal, mine), observations=(obs,))])
    moved = dataclasses.replace(portal, geometry=Point(126.0005, 38.5))
    berm = Feature("f-berm", "site-0", "berm", Point(126.002, 38.5), attributes={"height_m": 18})
    new_obs = Observation(
        "o2", "site-0", datetime(2024, 6, 1, tzinfo=UTC), phase="active_construction"
    )
    theirs = SiteRecord(
        dataclasses.replace(site, tags=("ugf",)),
        features=(moved, berm),
        observations=(obs, new_obs),
    )
    report = catalog.import_records([theirs], on_duplicate="update")
    assert (report.updated, report.features, report.features_updated, report.observations) == (
        1,
        1,
        1,
        1,
    )
    stored = {f.id: f for f in catalog.query_features(site_id="site-0")}
    assert set(stored) == {"f-portal", "f-mine", "f-berm"}
    assert stored["f-portal"].geometry.equals(Point(126.0005, 38.5))
    assert stored["f-portal"].version == 2 and stored["f-mine"].version == 1
    assert [o.id for o in catalog.list_observations("site-0")] == ["o1", "o2"]
    assert catalog.get_site("site-0").tags == ("ugf",)
    again = catalog.import_records([theirs], on_duplicate="update")  # nothing new the second time
    assert (again.features, again.features_updated, again.observations) == (0, 0, 0)
    actions = [(e.entity_id, e.action) for e in catalog.history(site_id="site-0")]
    assert ("f-portal", "update") in actions and ("f-berm", "create") in actions
    # the citations the file carries come with it; one it does not carry is named
    cited = dataclasses.replace(site, source_ids=("csis-2018",))
    catalog.import_records(
        [SiteRecord(cited, sources=(Source("csis-2018", "CSIS (2018)"),))], on_duplicate="update"
    )
    assert catalog.get_site("site-0").source_ids == ("csis-2018",)
    assert catalog.get_source("csis-2018").citation == "CSIS (2018)"
    unknown = dataclasses.replace(site, source_ids=("nope",))
    with pytest.raises(NotFound, match="unknown source id"):
        catalog.import_records([SiteRecord(unknown)], on_duplicate="update")


def test_import_brings_the_measurements_with_their_links(catalog: Catalog) -> None:
    """A file's measurements come with their site (a new one, or merged into a known one) and
    keep their feature and observation; one that names a record the file lacks, or an id the
    catalog holds already, is a problem of its site, and nothing of the import is stored."""
    berm = Feature("f-berm", "site-0", "berm", Point(126.0, 38.5))
    obs = Observation("o1", "site-0", datetime(2024, 1, 1, tzinfo=UTC))
    height = Measurement(
        "m-h", "site-0", "height", 18.0, "m", uncertainty=1.0, feature_id="f-berm",
        observation_id="o1", inputs={"image": "pan.tif"}, analyst="ana",
    )  # fmt: skip
    record = SiteRecord(make_site(0), features=(berm,), observations=(obs,), measurements=(height,))
    orphan = Measurement("m-x", "site-1", "width", 7.0, "m", feature_id="f-elsewhere")
    bad = SiteRecord(make_site(1), measurements=(orphan,), line=3)
    with pytest.raises(ImportFormatError, match="names feature 'f-elsewhere'"):
        catalog.import_records([record, bad], path="x.geojson")
    assert catalog.count_sites() == 0
    report = catalog.import_records([record], path="x.geojson")
    assert report.measurements == 1
    (stored,) = catalog.list_measurements(site_id="site-0")
    assert (stored.feature_id, stored.observation_id, stored.inputs) == (
        "f-berm", "o1", {"image": "pan.tif"})  # fmt: skip
    # the same records under another site id: the ids are taken
    again = SiteRecord(dataclasses.replace(make_site(0), id="copy"), measurements=(
        dataclasses.replace(height, site_id="copy", feature_id=None, observation_id=None),))  # fmt: skip
    with pytest.raises(ImportFormatError, match="measurement 'm-h' is already in the catalog"):
        catalog.import_records([again])
    # a colleague's update of the site adds their new measurement, keeps the stored one
    volume = Measurement("m-v", "site-0", "volume", 9400.0, "m3", feature_id="f-berm")
    theirs = dataclasses.replace(record, measurements=(height, volume))
    report = catalog.import_records([theirs], on_duplicate="update")
    assert report.measurements == 1
    assert {m.id for m in catalog.list_measurements(site_id="site-0")} == {"m-h", "m-v"}
    assert catalog.import_records([theirs], on_duplicate="update").measurements == 0


def test_import_update_replaces_a_changed_observation_and_measurement(catalog: Catalog) -> None:
    """A colleague corrected an observation's text and re-measured a height under the same ids:
    the stored ones become new versions, with the history keeping what they were; records that
    did not change are left as they are."""
    berm = Feature("f-berm", "site-0", "berm", Point(126.0, 38.5))
    obs = Observation("o1", "site-0", datetime(2024, 1, 1, tzinfo=UTC), text="spoil")
    same = Observation("o2", "site-0", datetime(2024, 2, 1, tzinfo=UTC), text="no change")
    height = Measurement(
        "m-h", "site-0", "height", 18.0, "m", 1.0, feature_id="f-berm", observation_id="o1",
        inputs={"shadow_m": [30.1, 29.8]}, analyst="ana",
    )  # fmt: skip
    width = Measurement("m-w", "site-0", "width", 7.0, "m", 0.5, feature_id="f-berm")
    record = SiteRecord(
        make_site(0, tags=("ugf", "berm")),
        features=(berm,),
        observations=(obs, same),
        measurements=(height, width),
    )
    catalog.import_records([record])
    # the same file again: nothing differs (lists and tuples, times as stored)
    again = catalog.import_records([record], on_duplicate="update")
    assert (again.observations_updated, again.measurements_updated) == (0, 0)
    # nor is the site a new version: a colleague's open copy of it stays current
    assert (again.updated, again.unchanged, catalog.get_site("site-0").version) == (0, 1, 1)
    retagged = dataclasses.replace(
        record.site, tags=tuple(reversed(record.site.tags)) + record.site.tags
    )
    assert catalog.import_records([SiteRecord(retagged)], on_duplicate="update").unchanged == 1
    fixed = dataclasses.replace(obs, text="fresh spoil at portal 1", phase="active_construction")
    remeasured = dataclasses.replace(height, value=18.6, uncertainty=0.6)
    theirs = dataclasses.replace(
        record, observations=(fixed, same), measurements=(remeasured, width)
    )
    report = catalog.import_records([theirs], on_duplicate="update")
    assert (report.observations, report.observations_updated) == (0, 1)
    assert (report.measurements, report.measurements_updated) == (0, 1)
    stored = catalog.get_observation("o1")
    assert (stored.text, stored.phase, stored.version) == (
        "fresh spoil at portal 1", "active_construction", 2)  # fmt: skip
    assert catalog.get_observation("o2").version == 1
    m = catalog.get_measurement("m-h")
    assert (m.value, m.uncertainty, m.version, m.feature_id) == (18.6, 0.6, 2, "f-berm")
    assert catalog.get_measurement("m-w").version == 1
    history = [e for e in catalog.history(site_id="site-0") if e.entity_id == "m-h"]
    assert history[-1].action == "update"  # a bulk import's rows are their own "create"
    assert history[-1].before is not None and history[-1].before["value"] == 18.0
    # a file cannot move a stored measurement onto another site's feature
    catalog.add_site(make_site(1))
    catalog.add_feature(Feature("f-other", "site-1", "berm", Point(126.01, 38.51)))
    moved = dataclasses.replace(remeasured, feature_id="f-other")
    with pytest.raises(InputError, match="feature 'f-other' belongs to site 'site-1'"):
        catalog.import_records(
            [dataclasses.replace(theirs, measurements=(moved, width))], on_duplicate="update"
        )
    assert catalog.get_measurement("m-h").feature_id == "f-berm"
