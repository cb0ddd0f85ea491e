"""The :class:`Catalog`: the one class that reads and writes the site catalog.

SQLite (``sqlite:///path.db``, the default) or PostgreSQL (``postgresql://...``, PostGIS when
available). Every write runs in one transaction and appends to the history who did what, when, and
the record before and after. Updates are optimistic: a record carries the ``version`` it was read
at, and an update of a record that changed since raises :class:`~sitewatch.errors.ConflictError`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import sqlalchemy as sa
from shapely.geometry import box
from sqlalchemy.engine import Connection, Engine

from ..config import get_settings
from ..errors import (
    ConfigError,
    ConflictError,
    DuplicateError,
    ImportFormatError,
    InputError,
    MissingExtraError,
    NotFound,
    RecordProblem,
    SiteNotFound,
)
from ..geo import radius_bboxes, split_bbox
from ..types import BBox
from . import schema as t
from ._bulk import bulk_insert
from ._codec import jsonable, row_to, rows_to, to_row
from ._migrate import ensure_schema
from ._refine import within_radius
from ._spatial import Backend, bbox_clause
from .declarations import DeclarationDiff, diff_declaration
from .models import (
    Alert,
    Candidate,
    ChangeEvent,
    Declaration,
    DeclaredSite,
    Feature,
    HistoryEntry,
    Measurement,
    Observation,
    Site,
    SiteRecord,
    Source,
    utcnow,
)

__all__ = ["Catalog", "ImportReport", "Near", "OnDuplicate"]

log = logging.getLogger(__name__)

T = TypeVar("T")
Near = tuple[float, float, float]
"""(lon, lat, radius_m): a geodesic circle."""
OnDuplicate = Literal["error", "skip", "update"]
MeasurementsChoice = Literal["refuse", "keep", "delete"]
"""What deleting a feature or an observation does to its measurements."""

_BATCH = 2000
_ENTITY: dict[type[Any], tuple[str, sa.Table]] = {
    Feature: ("feature", t.features),
    Observation: ("observation", t.observations),
    Measurement: ("measurement", t.measurements),
    ChangeEvent: ("change_event", t.change_events),
    Alert: ("alert", t.alerts),
    Candidate: ("candidate", t.candidates),
    Source: ("source", t.sources),
}


@dataclass
class ImportReport:
    """What an import did."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    """Sites already in the catalog as the file has them (``on_duplicate="update"``)."""
    skipped: int = 0
    features: int = 0
    features_updated: int = 0
    observations: int = 0
    observations_updated: int = 0
    measurements: int = 0
    measurements_updated: int = 0
    problems: list[RecordProblem] = field(default_factory=list)


_URL_HELP = (
    "use sqlite:///path/to/catalog.db or postgresql://user:password@host:port/dbname "
    "(set by --db or SITEWATCH_DATABASE_URL; the default is catalog.db in SITEWATCH_HOME)"
)


def new_sqlite_file(url: str) -> Path | None:
    """The file of a SQLite catalog URL when no file is there yet (opening makes it), else None."""
    try:
        sa_url = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        return None  # _engine_for says what is wrong
    if sa_url.get_backend_name() != "sqlite" or not sa_url.database:
        return None
    path = Path(sa_url.database).expanduser()
    return None if path.exists() or sa_url.database == ":memory:" else path


def _engine_for(url: str) -> Engine:
    try:
        sa_url = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise ConfigError(f"catalog URL {url!r} is not a database URL; {_URL_HELP}") from None
    backend = sa_url.get_backend_name()
    if backend == "sqlite":
        db = sa_url.database
        if not db or db == ":memory:":
            raise ConfigError("an in-memory SQLite catalog is not supported; give a file path")
        folder = Path(db).expanduser().parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            why = "a file is in the way" if isinstance(exc, FileExistsError) else exc.strerror
            raise ConfigError(
                f"cannot make the folder {folder} of the SQLite catalog ({why}); "
                f"point SITEWATCH_HOME or --db at a folder you can write"
            ) from exc
        engine = sa.create_engine(sa_url, connect_args={"timeout": 60})
        sa.event.listen(engine, "connect", _sqlite_connect)
        sa.event.listen(engine, "begin", _sqlite_begin)
        return engine
    if backend == "postgresql":
        try:
            import psycopg  # noqa: F401
        except ImportError as exc:
            raise MissingExtraError("psycopg", "postgres", "a PostgreSQL catalog") from exc
        if sa_url.drivername == "postgresql":
            sa_url = sa_url.set(drivername="postgresql+psycopg")
        return sa.create_engine(sa_url, pool_pre_ping=True)
    raise ConfigError(
        f"unsupported catalog URL {sa_url.render_as_string(hide_password=True)!r}; {_URL_HELP}"
    )


def _open_failure(safe_url: str, exc: sa.exc.DatabaseError) -> str:
    """Why the catalog at ``safe_url`` could not be opened, and what to do about it."""
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
    if safe_url.startswith("sqlite"):
        hint = (
            "is it a SQLite file (a catalog.db written by sitewatch)? Give another path with --db, "
            "or move the file away to start a new catalog"
        )
    else:
        hint = "is the server running, and are the host, port, database and password right?"
    return f"cannot open the catalog {safe_url}: {reason}; {hint}"


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (SQLAlchemy's pysqlite recipe)
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=60000")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("sitewatch_write") else "BEGIN")


def _chunks(items: Sequence[T], size: int = 500) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class Catalog:
    """The site catalog. Open with a database URL (default: SQLite in ``SITEWATCH_HOME``)."""

    def __init__(self, url: str | None = None, *, actor: str | None = None) -> None:
        settings = get_settings()
        self.url = url or settings.catalog_url
        self.actor = actor or settings.user
        self._engine = _engine_for(self.url)
        self._local = threading.local()
        try:
            with self._write() as conn:
                self.backend: Backend = ensure_schema(conn)
        except sa.exc.DatabaseError as exc:
            self._engine.dispose()
            raise ConfigError(_open_failure(self.safe_url, exc)) from exc
        log.debug("opened catalog %s on %s", self.safe_url, self.backend.label)

    # -- plumbing ----------------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for modules that keep their own tables in the catalog database)."""
        return self._engine

    @property
    def safe_url(self) -> str:
        """The URL with any password hidden."""
        return sa.engine.make_url(self.url).render_as_string(hide_password=True)

    def close(self) -> None:
        """Release the database connections."""
        self._engine.dispose()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        current: Connection | None = getattr(self._local, "conn", None)
        if current is not None:  # nested in transaction(): join it
            yield current
            return
        with self._engine.connect() as conn:
            conn.info["sitewatch_write"] = True
            try:
                with conn.begin():
                    self._local.conn = conn
                    try:
                        yield conn
                    finally:
                        self._local.conn = None
            finally:
                conn.info.pop("sitewatch_write", None)

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        current: Connection | None = getattr(self._local, "conn", None)
        if current is not None:
            yield current
            return
        with self._engine.connect() as conn:
            yield conn

    @contextmanager
    def transaction(self) -> Iterator[Catalog]:
        """Group several writes into one all-or-nothing transaction."""
        with self._write():
            yield self

    def _history(
        self,
        conn: Connection,
        entity: str,
        entity_id: str,
        action: str,
        before: Any,
        after: Any,
        now: datetime,
    ) -> None:
        site_id = entity_id if entity == "site" else None
        for obj in (after, before):
            site_id = site_id or getattr(obj, "site_id", None)
        conn.execute(
            t.history.insert(),
            {
                "at": now,
                "actor": self.actor,
                "entity": entity,
                "entity_id": entity_id,
                "action": action,
                "before": None if before is None else jsonable(before),
                "after": None if after is None else jsonable(after),
                "site_id": site_id,
            },
        )

    def _stamp(self, row: dict[str, Any], now: datetime, version: int = 1) -> dict[str, Any]:
        row.update(version=version, updated_at=now, updated_by=self.actor)
        if version == 1:
            row.update(created_at=now, created_by=self.actor)
        return row

    # -- sites -------------------------------------------------------------------------------

    def add_site(self, site: Site) -> Site:
        """Store a new site; raises :class:`DuplicateError` if its id is taken."""
        with self._write() as conn:
            now = utcnow()
            if self._site_exists(conn, site.id):
                raise DuplicateError(
                    f"a site with id {site.id!r} already exists; choose another id "
                    f"or change it with `sitewatch sites edit {site.id}`"
                )
            self._check_sources(conn, site.source_ids)
            stored = self._insert_sites(conn, [site], now)[0]
            self._history(conn, "site", site.id, "create", None, stored, now)
            return stored

    def get_site(self, site_id: str) -> Site:
        """The site with ``site_id``; raises :class:`SiteNotFound`."""
        with self._read() as conn:
            return self._get_site(conn, site_id)

    def update_site(self, site: Site) -> Site:
        """Store an edited site. ``site.version`` must be the version it was read at."""
        with self._write() as conn:
            now = utcnow()
            old = self._get_site(conn, site.id)
            self._check_version("site", site.id, old.version, site.version)
            self._check_sources(conn, site.source_ids)
            if _record_state(site) == _record_state(old):
                return old  # nothing changed: no new version, no history entry
            new = self._replace_site(conn, site, old.version, now)
            self._history(conn, "site", site.id, "update", old, new, now)
            return new

    def delete_site(self, site_id: str, *, version: int | None = None) -> None:
        """Delete a site with its features and records; the history keeps a full snapshot."""
        with self._write() as conn:
            now = utcnow()
            old = self._get_site(conn, site_id)
            if version is not None:
                self._check_version("site", site_id, old.version, version)
            snapshot = {
                "site": old,
                "features": self.query_features(site_id=site_id),
                "observations": self.list_observations(site_id),
                "measurements": self.list_measurements(site_id=site_id),
                "change_events": self.list_change_events(site_id),
            }
            conn.execute(t.sites.delete().where(t.sites.c.id == site_id))
            self._history(conn, "site", site_id, "delete", snapshot, None, now)

    def query_sites(
        self,
        *,
        bbox: BBox | None = None,
        near: Near | None = None,
        text: str | None = None,
        status: str | Sequence[str] | None = None,
        tags: Sequence[str] | None = None,
        category: str | Sequence[str] | None = None,
        declared: bool | None = None,
        limit: int | None = None,
    ) -> list[Site]:
        """Sites matching every given filter, ordered by name.

        ``bbox`` is (west, south, east, north) in degrees (west > east crosses the antimeridian);
        ``near`` is (lon, lat, radius_m), measured geodesically to the nearest point of the site.
        """
        q = sa.select(t.sites)
        if bbox is not None:
            q = q.where(bbox_clause(t.sites, split_bbox(bbox), self.backend))
        if near is not None:
            q = q.where(bbox_clause(t.sites, radius_bboxes(*near), self.backend))
        if text:
            pattern = "%" + _escape_like(text.lower()) + "%"
            q = q.where(t.sites.c.search_text.like(pattern, escape="\\"))
        for col, value in ((t.sites.c.status, status), (t.sites.c.category, category)):
            if value is not None:
                q = q.where(col.in_([value] if isinstance(value, str) else list(value)))
        for tag in tags or ():
            q = q.where(
                t.sites.c.id.in_(sa.select(t.site_tags.c.site_id).where(t.site_tags.c.tag == tag))
            )
        if declared is not None:
            q = q.where(t.sites.c.declared == declared)
        q = q.order_by(t.sites.c.name, t.sites.c.id)
        refine = (bbox is not None and not self.backend.postgis) or near is not None
        if limit is not None and not refine:
            q = q.limit(limit)
        with self._read() as conn:
            rows = [r._mapping for r in conn.execute(q)]
            sites = self._sites_from_rows(conn, rows)
        if bbox is not None and not self.backend.postgis:
            boxes = [box(*b) for b in split_bbox(bbox)]
            sites = [s for s in sites if any(b.intersects(s.geometry) for b in boxes)]
        if near is not None:
            keep = within_radius([s.geometry for s in sites], *near)
            sites = [s for s, k in zip(sites, keep, strict=True) if k]
        return sites[:limit] if limit is not None else sites

    def count_sites(self) -> int:
        """How many sites the catalog holds."""
        with self._read() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(t.sites)).scalar_one())

    def _site_exists(self, conn: Connection, site_id: str) -> bool:
        return (
            conn.execute(sa.select(t.sites.c.fid).where(t.sites.c.id == site_id)).first()
            is not None
        )

    def _get_site(self, conn: Connection, site_id: str) -> Site:
        row = conn.execute(sa.select(t.sites).where(t.sites.c.id == site_id)).first()
        if row is None:
            raise SiteNotFound(site_id)
        return self._sites_from_rows(conn, [row._mapping])[0]

    def _sites_from_rows(self, conn: Connection, rows: Sequence[Any]) -> list[Site]:
        ids = [r["id"] for r in rows]
        tags: dict[str, list[str]] = {i: [] for i in ids}
        srcs: dict[str, list[str]] = {i: [] for i in ids}
        for chunk in _chunks(ids):
            q = sa.select(t.site_tags).where(t.site_tags.c.site_id.in_(chunk))
            for r in conn.execute(q.order_by(t.site_tags.c.tag)):
                tags[r.site_id].append(r.tag)
            q2 = sa.select(t.site_sources).where(t.site_sources.c.site_id.in_(chunk))
            for r in conn.execute(q2.order_by(t.site_sources.c.seq)):
                srcs[r.site_id].append(r.source_id)
        return [
            row_to(Site, r, tags=tuple(tags[r["id"]]), source_ids=tuple(srcs[r["id"]]))
            for r in rows
        ]

    def _insert_sites(
        self, conn: Connection, sites: Sequence[Site], now: datetime, *, copies: bool = True
    ) -> list[Site]:
        bulk_insert(conn, t.sites, [self._stamp(to_row(s), now) for s in sites])
        tag_rows = [{"site_id": s.id, "tag": tag} for s in sites for tag in dict.fromkeys(s.tags)]
        bulk_insert(conn, t.site_tags, tag_rows)
        src_rows = [
            {"site_id": s.id, "source_id": sid, "seq": i}
            for s in sites
            for i, sid in enumerate(dict.fromkeys(s.source_ids))
        ]
        bulk_insert(conn, t.site_sources, src_rows)
        return [_stored_copy(s, now) for s in sites] if copies else []

    def _replace_site(self, conn: Connection, site: Site, old_version: int, now: datetime) -> Site:
        row = self._stamp(to_row(site), now, version=old_version + 1)
        row.pop("id")
        res = conn.execute(
            t.sites.update()
            .where(t.sites.c.id == site.id, t.sites.c.version == old_version)
            .values(**row)
        )
        if res.rowcount != 1:
            raise ConflictError(
                f"site {site.id!r} was changed by someone else meanwhile; reload and retry"
            )
        conn.execute(t.site_tags.delete().where(t.site_tags.c.site_id == site.id))
        conn.execute(t.site_sources.delete().where(t.site_sources.c.site_id == site.id))
        tag_rows = [{"site_id": site.id, "tag": tag} for tag in dict.fromkeys(site.tags)]
        if tag_rows:
            conn.execute(t.site_tags.insert(), tag_rows)
        src_rows = [
            {"site_id": site.id, "source_id": sid, "seq": i}
            for i, sid in enumerate(dict.fromkeys(site.source_ids))
        ]
        if src_rows:
            conn.execute(t.site_sources.insert(), src_rows)
        return self._get_site(conn, site.id)

    def _check_sources(self, conn: Connection, source_ids: Sequence[str]) -> None:
        if not source_ids:
            return
        found = {
            r[0]
            for r in conn.execute(
                sa.select(t.sources.c.id).where(t.sources.c.id.in_(list(source_ids)))
            )
        }
        missing = [s for s in source_ids if s not in found]
        if missing:
            raise NotFound(
                f"unknown source id(s) {', '.join(map(repr, missing))}; add them first "
                "(`sitewatch sources add`, Catalog.add_source) or drop them from the site"
            )

    @staticmethod
    def _check_version(entity: str, rid: str, stored: int, given: int) -> None:
        if stored != given:
            reload = rid if entity == "site" else "SITE_ID --json"
            raise ConflictError(
                f"{entity} {rid!r} was changed by someone else: it is at version {stored}, your copy "
                f"is version {given}. Reload it (e.g. `sitewatch sites show {reload}`), re-apply "
                "your edit and save again."
            )

    # -- bulk import -------------------------------------------------------------------------

    def import_records(
        self,
        records: Iterable[SiteRecord | RecordProblem],
        *,
        path: str = "<input>",
        skip_invalid: bool = False,
        on_duplicate: OnDuplicate = "error",
    ) -> ImportReport:
        """Import sites (with their features, observations and sources), all or nothing.

        Bad records (:class:`RecordProblem`) and duplicate ids abort the whole import with an
        :class:`ImportFormatError` listing every problem, unless ``skip_invalid`` is set (then they
        are skipped and reported). ``on_duplicate`` says what to do with ids already in the
        catalog: ``error`` (default), ``skip`` or ``update``.
        """
        report = ImportReport()
        seen: dict[str, int | None] = {}
        with self._write() as conn:
            now = utcnow()
            batch: list[SiteRecord] = []
            for item in records:
                if isinstance(item, RecordProblem):
                    report.problems.append(item)
                    continue
                sid = item.site.id
                if sid in seen:
                    first = seen[sid]
                    where = f" (first at line {first})" if first is not None else ""
                    report.problems.append(
                        RecordProblem(item.line, f"duplicate site id {sid!r}{where}")
                    )
                    continue
                seen[sid] = item.line
                batch.append(item)
                if len(batch) >= _BATCH:
                    self._import_batch(conn, batch, now, report, on_duplicate, skip_invalid, path)
                    batch = []
            if batch:
                self._import_batch(conn, batch, now, report, on_duplicate, skip_invalid, path)
            if report.problems and not skip_invalid:
                raise ImportFormatError(
                    path,
                    report.problems,
                    hint="fix these records, or re-run with --skip-invalid to import the rest",
                )
            report.skipped += len(report.problems)
        return report

    def _import_batch(
        self,
        conn: Connection,
        batch: list[SiteRecord],
        now: datetime,
        report: ImportReport,
        on_duplicate: OnDuplicate,
        skip_invalid: bool,
        path: str,
    ) -> None:
        ids = [r.site.id for r in batch]
        existing = {
            row[0] for row in conn.execute(sa.select(t.sites.c.id).where(t.sites.c.id.in_(ids)))
        }
        new: list[SiteRecord] = []
        for rec in batch:
            if rec.site.id not in existing:
                new.append(rec)
            elif on_duplicate == "skip":
                report.skipped += 1
            elif on_duplicate == "update":
                self._upsert_sources(conn, rec.sources, now)
                self._check_sources(conn, rec.site.source_ids)
                old = self._get_site(conn, rec.site.id)
                if _record_state(old) != _record_state(rec.site):
                    # only a site that differs becomes a new version: a file imported again
                    # must not make every colleague's open copy stale
                    updated = self._replace_site(
                        conn, replace(rec.site, version=old.version), old.version, now
                    )
                    self._history(conn, "site", rec.site.id, "update", old, updated, now)
                    report.updated += 1
                else:
                    report.unchanged += 1
                self._merge_records(rec, report)
            else:
                report.problems.append(
                    RecordProblem(
                        rec.line,
                        f"site id {rec.site.id!r} is already in the catalog "
                        "(use --on-duplicate skip|update, or give another id)",
                    )
                )
        new = self._links_hold(conn, new, report)
        if (report.problems and not skip_invalid) or not new:
            return  # nothing to write, or the import will fail: keep collecting problems
        self._upsert_sources(conn, [s for r in new for s in r.sources], now)
        for rec in new:
            self._check_sources(conn, rec.site.source_ids)
        self._insert_sites(conn, [r.site for r in new], now, copies=False)
        feats = [f for r in new for f in r.features]
        obs = [o for r in new for o in r.observations]
        ms = [m for r in new for m in r.measurements]
        bulk_insert(conn, t.features, [self._stamp(to_row(f), now) for f in feats])
        bulk_insert(conn, t.observations, [self._stamp(to_row(o), now) for o in obs])
        bulk_insert(conn, t.measurements, [self._stamp(to_row(m), now) for m in ms])
        # The imported state is the row itself (and the "before" of its first update); the
        # history notes who imported what from where, compactly, to keep imports fast.
        note = {"imported_from": path, "features": 0, "observations": 0, "measurements": 0}
        per_site: dict[str, dict[str, Any]] = {r.site.id: dict(note) for r in new}
        for f in feats:
            per_site[f.site_id]["features"] += 1
        for o in obs:
            per_site[o.site_id]["observations"] += 1
        for m in ms:
            per_site[m.site_id]["measurements"] += 1
        bulk_insert(
            conn,
            t.history,
            [
                {
                    "at": now,
                    "actor": self.actor,
                    "entity": "site",
                    "entity_id": sid,
                    "action": "import",
                    "before": None,
                    "after": after,
                    "site_id": sid,
                }
                for sid, after in per_site.items()
            ],
        )
        report.added += len(new)
        report.features += len(feats)
        report.observations += len(obs)
        report.measurements += len(ms)

    def _links_hold(
        self, conn: Connection, new: list[SiteRecord], report: ImportReport
    ) -> list[SiteRecord]:
        """The new sites whose measurements name features and observations of the same record
        and whose record ids are not taken already; a problem is reported for each other one.
        One query a table for the whole batch."""
        held: tuple[tuple[type[Any], list[tuple[str, str]]], ...] = (
            (Feature, [(r.site.id, f.id) for r in new for f in r.features]),
            (Observation, [(r.site.id, o.id) for r in new for o in r.observations]),
            (Measurement, [(r.site.id, m.id) for r in new for m in r.measurements]),
        )
        clash: dict[str, list[str]] = {}  # site id -> reasons
        for cls, pairs in held:
            entity, table = _ENTITY[cls]
            taken: set[str] = set()
            for chunk in _chunks([i for _, i in pairs]):
                q = sa.select(table.c.id).where(table.c.id.in_(chunk))
                taken.update(r[0] for r in conn.execute(q))
            for site_id, i in pairs:
                if i in taken:
                    clash.setdefault(site_id, []).append(
                        f"{entity} {i!r} is already in the catalog"
                    )
        good = []
        for rec in new:
            feats = {f.id for f in rec.features}
            obs = {o.id for o in rec.observations}
            bad = [
                f"measurement {m.id!r} names {what} {rid!r}, which the file does not hold for "
                "the site"
                for m in rec.measurements
                for what, rid, have in (
                    ("feature", m.feature_id, feats),
                    ("observation", m.observation_id, obs),
                )
                if rid is not None and rid not in have
            ] + clash.get(rec.site.id, [])
            for reason in bad:
                report.problems.append(RecordProblem(rec.line, f"site {rec.site.id!r}: {reason}"))
            if not bad:
                good.append(rec)
        return good

    def _merge_records(self, rec: SiteRecord, report: ImportReport) -> None:
        """Bring an updated site's features, observations and measurements in (inside the
        import's transaction): those the catalog lacks are added, a stored one that differs from
        the file's is replaced (a new version, in the history). Nothing of the site that the
        file lacks is removed."""
        stored = {f.id: f for f in self.query_features(site_id=rec.site.id)}
        for f in rec.features:
            old = stored.get(f.id)
            if old is None:
                self._add(replace(f, site_id=rec.site.id))
                report.features += 1
            elif _feature_state(old) != _feature_state(f):
                self._update(replace(f, site_id=rec.site.id, version=old.version))
                report.features_updated += 1
        have = {o.id: o for o in self.list_observations(rec.site.id)}
        for o in rec.observations:
            seen = have.get(o.id)
            if seen is None:
                self._add(replace(o, site_id=rec.site.id))
                report.observations += 1
            elif _record_state(seen) != _record_state(replace(o, site_id=rec.site.id)):
                self._update(replace(o, site_id=rec.site.id, version=seen.version))
                report.observations_updated += 1
        measured = {m.id: m for m in self.list_measurements(site_id=rec.site.id)}
        for m in rec.measurements:
            was = measured.get(m.id)
            if was is None:
                self.add_measurement(replace(m, site_id=rec.site.id))
                report.measurements += 1
            elif _record_state(was) != _record_state(replace(m, site_id=rec.site.id)):
                changed = replace(m, site_id=rec.site.id, version=was.version)
                with self._write() as conn:
                    self._check_measured(conn, changed)
                self._update(changed)
                report.measurements_updated += 1

    def _upsert_sources(self, conn: Connection, srcs: Sequence[Source], now: datetime) -> None:
        unique = {s.id: s for s in srcs}
        if not unique:
            return
        have = {
            r[0]
            for r in conn.execute(sa.select(t.sources.c.id).where(t.sources.c.id.in_(list(unique))))
        }
        todo = [s for sid, s in unique.items() if sid not in have]
        if todo:
            conn.execute(t.sources.insert(), [self._stamp(to_row(s), now) for s in todo])

    # -- generic records ---------------------------------------------------------------------

    def _add(self, obj: T) -> T:
        entity, table = _ENTITY[type(obj)]
        with self._write() as conn:
            now = utcnow()
            site_id = getattr(obj, "site_id", None)
            if site_id is not None and not self._site_exists(conn, site_id):
                raise SiteNotFound(site_id)
            rid = obj.id  # type: ignore[attr-defined]
            if conn.execute(sa.select(table.c.id).where(table.c.id == rid)).first() is not None:
                raise DuplicateError(f"a {entity} with id {rid!r} already exists")
            conn.execute(table.insert(), self._stamp(to_row(obj), now))
            stored = self._get(conn, type(obj), rid)
            self._history(conn, entity, rid, "create", None, stored, now)
            return stored

    def _add_many(self, objs: Iterable[T], cls: type[T]) -> int:
        entity, table = _ENTITY[cls]
        count = 0
        with self._write() as conn:
            now = utcnow()
            batch: list[dict[str, Any]] = []
            for obj in objs:
                batch.append(self._stamp(to_row(obj), now))
                if len(batch) >= _BATCH:
                    count += self._flush(conn, table, entity, batch, now)
                    batch = []
            if batch:
                count += self._flush(conn, table, entity, batch, now)
        return count

    def _flush(
        self,
        conn: Connection,
        table: sa.Table,
        entity: str,
        rows: list[dict[str, Any]],
        now: datetime,
    ) -> int:
        try:
            bulk_insert(conn, table, rows)
        except sa.exc.IntegrityError as exc:
            raise DuplicateError(
                f"cannot add {entity}s: a duplicate id or an unknown site id in this batch ({exc.orig})"
            ) from exc
        bulk_insert(
            conn,
            t.history,
            [
                {
                    "at": now,
                    "actor": self.actor,
                    "entity": entity,
                    "entity_id": r["id"],
                    "action": "create",
                    "before": None,
                    "after": {"id": r["id"], "bulk": True},
                    "site_id": r.get("site_id"),
                }
                for r in rows
            ],
        )
        return len(rows)

    def _get(self, conn: Connection, cls: type[T], rid: str) -> T:
        entity, table = _ENTITY[cls]
        row = conn.execute(sa.select(table).where(table.c.id == rid)).first()
        if row is None:
            raise NotFound(f"no {entity} with id {rid!r}")
        return row_to(cls, row._mapping)

    def _list(self, cls: type[T], *where: sa.ColumnElement[bool], order: Any = None) -> list[T]:
        _, table = _ENTITY[cls]
        q = sa.select(table).where(*where)
        q = q.order_by(order if order is not None else table.c.id)
        with self._read() as conn:
            return rows_to(cls, [r._mapping for r in conn.execute(q)])

    def _update(self, obj: T) -> T:
        entity, table = _ENTITY[type(obj)]
        rid: str = obj.id  # type: ignore[attr-defined]
        with self._write() as conn:
            now = utcnow()
            old = self._get(conn, type(obj), rid)
            stored_version: int = old.version  # type: ignore[attr-defined]
            self._check_version(entity, rid, stored_version, obj.version)  # type: ignore[attr-defined]
            if _record_state(obj) == _record_state(old):
                return old  # nothing changed: no new version, no history entry
            row = self._stamp(to_row(obj), now, version=stored_version + 1)
            row.pop("id")
            row.pop("created_at", None)
            res = conn.execute(
                table.update()
                .where(table.c.id == rid, table.c.version == stored_version)
                .values(**row)
            )
            if res.rowcount != 1:
                raise ConflictError(
                    f"{entity} {rid!r} was changed by someone else meanwhile; retry"
                )
            new = self._get(conn, type(obj), rid)
            self._history(conn, entity, rid, "update", old, new, now)
            return new

    def _delete(self, cls: type[Any], rid: str, version: int | None) -> None:
        entity, table = _ENTITY[cls]
        with self._write() as conn:
            now = utcnow()
            old = self._get(conn, cls, rid)
            if version is not None:
                self._check_version(entity, rid, old.version, version)
            conn.execute(table.delete().where(table.c.id == rid))
            self._history(conn, entity, rid, "delete", old, None, now)

    # -- features ----------------------------------------------------------------------------

    def add_feature(self, feature: Feature) -> Feature:
        """Store a new feature of an existing site."""
        return self._add(feature)

    def add_features(self, features: Iterable[Feature]) -> int:
        """Store many features in one transaction (bulk; used by imports and benchmarks)."""
        return self._add_many(features, Feature)

    def get_feature(self, feature_id: str) -> Feature:
        """The feature with ``feature_id``."""
        with self._read() as conn:
            return self._get(conn, Feature, feature_id)

    def update_feature(self, feature: Feature) -> Feature:
        """Store an edited feature (optimistic on ``feature.version``)."""
        return self._update(feature)

    def delete_feature(
        self,
        feature_id: str,
        *,
        version: int | None = None,
        measurements: MeasurementsChoice = "refuse",
    ) -> int:
        """Delete a feature (the history keeps it); returns how many of its measurements were
        kept on the site or deleted with it.

        Measurements of the feature are not dropped silently: ``"refuse"`` raises
        :class:`ConflictError` naming them; ``"keep"`` keeps each on the site, no longer linked to
        a feature, with the deleted feature named in its inputs (``deleted_feature``);
        ``"delete"`` deletes them too. Every change is a history row, in one transaction.
        """
        return self._delete_measured(Feature, feature_id, version, measurements)

    def _delete_measured(
        self, cls: type[Feature | Observation], rid: str, version: int | None, choice: str
    ) -> int:
        """Delete a feature or an observation with its measurements handled as ``choice`` says
        (see :meth:`delete_feature`)."""
        if choice not in ("refuse", "keep", "delete"):
            raise InputError(f"measurements must be refuse, keep or delete, got {choice!r}")
        entity, _ = _ENTITY[cls]
        link = t.measurements.c.feature_id if cls is Feature else t.measurements.c.observation_id
        with self._write() as conn:
            record = self._get(conn, cls, rid)
            if version is not None:
                self._check_version(entity, rid, record.version, version)
            rows = conn.execute(
                sa.select(t.measurements).where(link == rid).order_by(t.measurements.c.created_at)
            )
            held = rows_to(Measurement, [r._mapping for r in rows])
            if held and choice == "refuse":
                kinds = ", ".join(sorted({m.kind for m in held}))
                raise ConflictError(
                    f"{entity} {rid!r} has {len(held)} measurement(s) ({kinds}): keep them "
                    f"on the site or delete them with it (CLI: --keep-measurements or "
                    "--delete-measurements; API: ?measurements=keep|delete)"
                )
            if isinstance(record, Feature):
                label = f"{rid} ({record.kind} {record.name}".strip() + ")"
            else:
                label = f"{rid} ({record.acquired.date().isoformat()} {record.sensor}".strip() + ")"
            for m in held:
                if choice == "delete":
                    self._delete(Measurement, m.id, None)
                elif isinstance(record, Feature):
                    inputs = {**m.inputs, "deleted_feature": label}
                    self._update(replace(m, feature_id=None, inputs=inputs))
                else:
                    inputs = {**m.inputs, "deleted_observation": label}
                    self._update(replace(m, observation_id=None, inputs=inputs))
            self._delete(cls, rid, version)
        return len(held)

    def query_features(
        self,
        *,
        site_id: str | None = None,
        bbox: BBox | None = None,
        near: Near | None = None,
        kind: str | Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[Feature]:
        """Features matching every given filter (see :meth:`query_sites` for bbox and near)."""
        ft = t.features
        q = sa.select(ft)
        if site_id is not None:
            q = q.where(ft.c.site_id == site_id)
        if kind is not None:
            q = q.where(ft.c.kind.in_([kind] if isinstance(kind, str) else list(kind)))
        if bbox is not None:
            q = q.where(bbox_clause(ft, split_bbox(bbox), self.backend))
        if near is not None:
            q = q.where(bbox_clause(ft, radius_bboxes(*near), self.backend))
        refine = (bbox is not None and not self.backend.postgis) or near is not None
        q = q.order_by(ft.c.fid)
        if limit is not None and not refine:
            q = q.limit(limit)
        with self._read() as conn:
            feats = rows_to(Feature, [r._mapping for r in conn.execute(q)])
        if bbox is not None and not self.backend.postgis:
            boxes = [box(*b) for b in split_bbox(bbox)]
            feats = [
                f
                for f in feats
                if f.geometry.geom_type == "Point" or any(b.intersects(f.geometry) for b in boxes)
            ]
        if near is not None:
            keep = within_radius([f.geometry for f in feats], *near)
            feats = [f for f, k in zip(feats, keep, strict=True) if k]
        return feats[:limit] if limit is not None else feats

    # -- observations, measurements, change events -------------------------------------------

    def add_observation(self, observation: Observation) -> Observation:
        """Store a dated observation of a site."""
        return self._add(observation)

    def list_observations(self, site_id: str) -> list[Observation]:
        """A site's observations, oldest first."""
        ot = t.observations
        return self._list(Observation, ot.c.site_id == site_id, order=ot.c.acquired)

    def get_observation(self, observation_id: str) -> Observation:
        """The observation with ``observation_id``."""
        with self._read() as conn:
            return self._get(conn, Observation, observation_id)

    def update_observation(self, observation: Observation) -> Observation:
        """Store a corrected observation (optimistic on ``observation.version``; the history
        keeps what it said before). It stays an observation of the same site."""
        with self._write() as conn:
            old = self._get(conn, Observation, observation.id)
            if old.site_id != observation.site_id:
                raise InputError(
                    f"observation {observation.id!r} is of site {old.site_id!r}: it cannot move "
                    "to another site (record a new one there)"
                )
            return self._update(observation)

    def delete_observation(
        self,
        observation_id: str,
        *,
        version: int | None = None,
        measurements: MeasurementsChoice = "refuse",
    ) -> int:
        """Delete an observation (the history keeps it; its evidence files stay in the evidence
        folder); its measurements are handled as in :meth:`delete_feature`."""
        return self._delete_measured(Observation, observation_id, version, measurements)

    def add_measurement(self, measurement: Measurement) -> Measurement:
        """Store a measurement (of a feature, an observation or the site); the feature and the
        observation must be the site's."""
        with self._write() as conn:
            self._check_measured(conn, measurement)
            return self._add(measurement)

    def _check_measured(self, conn: Connection, measurement: Measurement) -> None:
        """Refuse a measurement whose feature or observation is another site's."""
        checks: tuple[tuple[type[Feature | Observation], str | None], ...] = (
            (Feature, measurement.feature_id),
            (Observation, measurement.observation_id),
        )
        for cls, rid in checks:
            if rid is None:
                continue
            owner = self._get(conn, cls, rid).site_id
            if owner != measurement.site_id:
                entity = _ENTITY[cls][0]
                site = measurement.site_id
                raise InputError(
                    f"{entity} {rid!r} belongs to site {owner!r}: it is "
                    f"{'not a feature' if cls is Feature else 'no observation'} of site "
                    f"{site!r}, and a measurement is stored on the site of what it measures "
                    f"(`sitewatch {entity}s list {site}` lists them)"
                )

    def get_measurement(self, measurement_id: str) -> Measurement:
        """The measurement with ``measurement_id``."""
        with self._read() as conn:
            return self._get(conn, Measurement, measurement_id)

    def delete_measurement(self, measurement_id: str, *, version: int | None = None) -> None:
        """Retract a measurement (the history keeps it); record a corrected one anew."""
        self._delete(Measurement, measurement_id, version)

    def list_measurements(
        self, *, site_id: str | None = None, feature_id: str | None = None
    ) -> list[Measurement]:
        """Measurements of a site or of a feature."""
        mt = t.measurements
        where = []
        if site_id is not None:
            where.append(mt.c.site_id == site_id)
        if feature_id is not None:
            where.append(mt.c.feature_id == feature_id)
        return self._list(Measurement, *where, order=mt.c.created_at)

    def add_change_event(self, event: ChangeEvent) -> ChangeEvent:
        """Store a detected change."""
        return self._add(event)

    def get_change_event(self, event_id: str) -> ChangeEvent:
        """The change event with ``event_id``."""
        with self._read() as conn:
            return self._get(conn, ChangeEvent, event_id)

    def update_change_event(self, event: ChangeEvent) -> ChangeEvent:
        """Replace a change event (a new version; the history keeps the old one)."""
        return self._update(event)

    def delete_change_event(
        self, event_id: str, *, version: int | None = None, dismiss_alerts: bool = True
    ) -> list[str]:
        """Retract a change event recorded in error (the history keeps it) and, unless told
        not to, dismiss the open alerts raised from it (details ``change_event``), in one
        transaction; returns the ids of the alerts dismissed."""
        with self._write():
            event = self.get_change_event(event_id)
            self._delete(ChangeEvent, event_id, version)
            if not dismiss_alerts:
                return []
            raised = [a for a in self.list_alerts(site_id=event.site_id, state=("new", "acked"))
                      if a.details.get("change_event") == event_id]  # fmt: skip
            for alert in raised:
                self.set_alert_state(alert.id, "dismissed")
            return [a.id for a in raised]

    def list_change_events(self, site_id: str | None = None) -> list[ChangeEvent]:
        """Change events, oldest 'after' date first."""
        ct = t.change_events
        where = [ct.c.site_id == site_id] if site_id is not None else []
        return self._list(ChangeEvent, *where, order=ct.c.after)

    # -- alerts and candidates ---------------------------------------------------------------

    def add_alert(self, alert: Alert) -> tuple[Alert, bool]:
        """Raise an alert once: returns (alert, created); an alert with the same key is kept."""
        with self._write() as conn:
            row = conn.execute(sa.select(t.alerts).where(t.alerts.c.key == alert.key)).first()
            if row is not None:
                return row_to(Alert, row._mapping), False
            return self._add(alert), True

    def list_alerts(
        self,
        *,
        site_id: str | None = None,
        state: str | Sequence[str] | None = None,
        rule: str | Sequence[str] | None = None,
    ) -> list[Alert]:
        """Alerts, newest first; of a site, in some states, of some rules."""
        at = t.alerts
        where = []
        if site_id is not None:
            where.append(at.c.site_id == site_id)
        for col, value in ((at.c.state, state), (at.c.rule, rule)):
            if value:
                where.append(col.in_([value] if isinstance(value, str) else list(value)))
        return self._list(Alert, *where, order=at.c.created_at.desc())

    def get_alert(self, alert_id: str) -> Alert:
        """The alert with ``alert_id``."""
        with self._read() as conn:
            return self._get(conn, Alert, alert_id)

    def set_alert_state(self, alert_id: str, state: str, *, version: int | None = None) -> Alert:
        """Acknowledge or dismiss an alert."""
        with self._write():
            alert = self.get_alert(alert_id)
            return self._update(replace(alert, state=state, version=version or alert.version))  # type: ignore[arg-type]

    def add_candidates(self, candidates: Iterable[Candidate]) -> int:
        """Store the candidates of a search run (bulk)."""
        return self._add_many(candidates, Candidate)

    def list_candidates(
        self, *, run_id: str | None = None, state: str | None = None
    ) -> list[Candidate]:
        """Candidates by rank."""
        ct = t.candidates
        where = []
        if run_id is not None:
            where.append(ct.c.run_id == run_id)
        if state is not None:
            where.append(ct.c.state == state)
        return self._list(Candidate, *where, order=ct.c.rank)

    def get_candidate(self, candidate_id: str) -> Candidate:
        """The candidate with ``candidate_id``."""
        with self._read() as conn:
            return self._get(conn, Candidate, candidate_id)

    def update_candidate(self, candidate: Candidate) -> Candidate:
        """Store a triage decision (optimistic on ``candidate.version``)."""
        return self._update(candidate)

    # -- sources and declarations ------------------------------------------------------------

    def add_source(self, source: Source) -> Source:
        """Store a citation."""
        return self._add(source)

    def get_source(self, source_id: str) -> Source:
        """The source with ``source_id``."""
        with self._read() as conn:
            return self._get(conn, Source, source_id)

    def list_sources(self) -> list[Source]:
        """Every source, by id."""
        return self._list(Source)

    def update_source(self, source: Source) -> Source:
        """Store an edited source (optimistic on ``source.version``)."""
        return self._update(source)

    def delete_source(self, source_id: str, *, version: int | None = None) -> None:
        """Delete a source no site cites (the history keeps it)."""
        st = t.site_sources
        with self._write() as conn:  # one transaction: no site can cite it in between
            citing = [
                r[0]
                for r in conn.execute(
                    sa.select(st.c.site_id)
                    .where(st.c.source_id == source_id)
                    .order_by(st.c.site_id)
                )
            ]
            if citing:
                raise ConflictError(
                    f"source {source_id!r} is cited by {len(citing)} site(s) "
                    f"({', '.join(citing[:5])}{', ...' if len(citing) > 5 else ''}); remove it "
                    "from them first (`sitewatch sites edit SITE --remove-source ...`)"
                )
            self._delete(Source, source_id, version)

    def source_citations(self) -> dict[str, list[str]]:
        """The ids of the sites citing each source (sources no site cites are left out)."""
        st = t.site_sources
        q = sa.select(st.c.source_id, st.c.site_id).order_by(st.c.source_id, st.c.site_id)
        out: dict[str, list[str]] = {}
        with self._read() as conn:
            for source_id, site_id in conn.execute(q):
                out.setdefault(source_id, []).append(site_id)
        return out

    def add_declaration(self, declaration: Declaration) -> Declaration:
        """Store a declaration (a party's list of declared sites)."""
        dt, et = t.declarations, t.declaration_entries
        with self._write() as conn:
            now = utcnow()
            if conn.execute(sa.select(dt.c.id).where(dt.c.id == declaration.id)).first():
                raise DuplicateError(f"a declaration with id {declaration.id!r} already exists")
            if declaration.source_id:
                self._check_sources(conn, [declaration.source_id])
            row = {
                "id": declaration.id,
                "party": declaration.party,
                "declared_on": declaration.declared_on,
                "source_id": declaration.source_id,
            }
            conn.execute(dt.insert(), self._stamp(row, now))
            if declaration.entries:
                conn.execute(
                    et.insert(),
                    [
                        {
                            "declaration_id": declaration.id,
                            "seq": i,
                            "name": e.name,
                            "lon": e.lon,
                            "lat": e.lat,
                            "ref": e.ref,
                        }
                        for i, e in enumerate(declaration.entries)
                    ],
                )
            stored = self._get_declaration(conn, declaration.id)
            self._history(conn, "declaration", declaration.id, "create", None, stored, now)
            return stored

    def get_declaration(self, declaration_id: str) -> Declaration:
        """The declaration with ``declaration_id``."""
        with self._read() as conn:
            return self._get_declaration(conn, declaration_id)

    def _get_declaration(self, conn: Connection, declaration_id: str) -> Declaration:
        dt, et = t.declarations, t.declaration_entries
        row = conn.execute(sa.select(dt).where(dt.c.id == declaration_id)).first()
        if row is None:
            raise NotFound(f"no declaration with id {declaration_id!r}")
        entries = tuple(
            DeclaredSite(name=e.name, lon=e.lon, lat=e.lat, ref=e.ref)
            for e in conn.execute(
                sa.select(et).where(et.c.declaration_id == declaration_id).order_by(et.c.seq)
            )
        )
        m = row._mapping
        return Declaration(
            id=m["id"],
            party=m["party"],
            declared_on=m["declared_on"],
            entries=entries,
            source_id=m["source_id"],
            version=m["version"],
        )

    def diff_declaration(
        self, declaration: Declaration | str, *, radius_m: float = 2000.0
    ) -> DeclarationDiff:
        """Catalog sites missing from a declaration, and declared sites not in the catalog."""
        decl = self.get_declaration(declaration) if isinstance(declaration, str) else declaration
        return diff_declaration(self.query_sites(), decl, radius_m=radius_m)

    # -- history and maintenance -------------------------------------------------------------

    def history(
        self,
        *,
        entity: str | None = None,
        entity_id: str | None = None,
        site_id: str | None = None,
        limit: int | None = None,
    ) -> list[HistoryEntry]:
        """The append-only history, oldest first (the newest ``limit`` entries when given).

        ``site_id`` gives a site's whole history: the site's own changes and those of its
        features, observations, measurements, change events, alerts and candidates."""
        ht = t.history
        q = sa.select(ht)
        if site_id is not None:
            q = q.where(ht.c.site_id == site_id)
        if entity is not None:
            q = q.where(ht.c.entity == entity)
        if entity_id is not None:
            q = q.where(ht.c.entity_id == entity_id)
        q = q.order_by(ht.c.seq.desc())
        if limit is not None:
            q = q.limit(limit)
        with self._read() as conn:
            rows = [r._mapping for r in conn.execute(q)]
        return [
            HistoryEntry(
                seq=r["seq"],
                at=r["at"],
                actor=r["actor"],
                entity=r["entity"],
                entity_id=r["entity_id"],
                action=r["action"],
                before=r["before"],
                after=r["after"],
                site_id=r["site_id"],
            )
            for r in reversed(rows)
        ]

    def counts(self) -> dict[str, int]:
        """Row counts per table (for summaries)."""
        names = (
            "sites",
            "features",
            "observations",
            "measurements",
            "change_events",
            "alerts",
            "candidates",
            "sources",
            "declarations",
            "history",
        )
        with self._read() as conn:
            return {
                n: int(
                    conn.execute(
                        sa.select(sa.func.count()).select_from(t.metadata.tables[n])
                    ).scalar_one()
                )
                for n in names
            }

    def wipe(self) -> None:
        """Delete every record and the history (for tests and throw-away catalogs only)."""
        names = [tbl.name for tbl in reversed(t.metadata.sorted_tables)]
        with self._write() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE")
                return
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS history_no_delete")
            for name in names:
                conn.exec_driver_sql(f"DELETE FROM {name}")
            from ._spatial import install_backend_ddl

            install_backend_ddl(conn)


def _feature_state(f: Feature) -> tuple[Any, ...]:
    """What an import compares to tell whether a feature changed (not its version or stamps)."""
    return (f.kind, f.geometry.wkb, f.name, f.attributes, f.first_seen, f.last_seen)


_BOOKKEEPING = frozenset({"version", "created_at", "updated_at"})


def _record_state(obj: Any) -> dict[str, Any]:
    """What an edit or an import compares to tell whether a record changed: its fields as stored
    in JSON (so that a file's rounding of times and numbers to what the catalog keeps is no
    change; tags as a set), not its version or stamps."""
    state: dict[str, Any] = jsonable(obj)
    if "tags" in state:
        state["tags"] = sorted(set(state["tags"]))
    return {k: v for k, v in state.items() if k not in _BOOKKEEPING}


def _stored_copy(site: Site, now: datetime) -> Site:
    """A copy of an already validated site as stored (no re-validation: this is the bulk path)."""
    out = object.__new__(Site)
    out.__dict__.update(site.__dict__)
    for name, value in (
        ("version", 1),
        ("created_at", now),
        ("updated_at", now),
        ("tags", tuple(sorted(set(site.tags)))),
    ):
        object.__setattr__(out, name, value)
    return out


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
