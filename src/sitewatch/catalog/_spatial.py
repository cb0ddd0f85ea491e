"""Backend-specific parts of the catalog: spatial indexes, append-only history, bbox filters.

SQLite gets an R*Tree virtual table per spatial table, kept in step by triggers. PostgreSQL gets a
PostGIS ``geom`` column (filled by a trigger from the portable WKB/lon-lat columns) with a GiST
index when the extension can be created, and a plain B-tree on the bbox columns otherwise. Both
backends refuse UPDATE and DELETE on the history table.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..types import BBox
from .schema import SPATIAL_TABLES

__all__ = ["Backend", "bbox_clause", "detect_backend", "install_backend_ddl"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backend:
    """What the connected database offers."""

    dialect: str
    postgis: bool = False

    @property
    def label(self) -> str:
        if self.dialect == "sqlite":
            return "SQLite (R*Tree index)"
        if self.postgis:
            return "PostgreSQL + PostGIS (GiST index)"
        return "PostgreSQL (B-tree bbox index, no PostGIS)"


_SQLITE_DDL = """
CREATE VIRTUAL TABLE IF NOT EXISTS {t}_rtree USING rtree(id, minx, maxx, miny, maxy);
CREATE TRIGGER IF NOT EXISTS {t}_rtree_ins AFTER INSERT ON {t} BEGIN
  INSERT INTO {t}_rtree VALUES (NEW.fid, NEW.minx, NEW.maxx, NEW.miny, NEW.maxy);
END;
CREATE TRIGGER IF NOT EXISTS {t}_rtree_upd AFTER UPDATE OF minx, miny, maxx, maxy ON {t} BEGIN
  UPDATE {t}_rtree SET minx = NEW.minx, maxx = NEW.maxx, miny = NEW.miny, maxy = NEW.maxy
  WHERE id = NEW.fid;
END;
CREATE TRIGGER IF NOT EXISTS {t}_rtree_del AFTER DELETE ON {t} BEGIN
  DELETE FROM {t}_rtree WHERE id = OLD.fid;
END;
"""

_SQLITE_HISTORY = """
CREATE TRIGGER IF NOT EXISTS history_no_update BEFORE UPDATE ON history BEGIN
  SELECT RAISE(ABORT, 'the history is append-only');
END;
CREATE TRIGGER IF NOT EXISTS history_no_delete BEFORE DELETE ON history BEGIN
  SELECT RAISE(ABORT, 'the history is append-only');
END;
"""

_PG_HISTORY = """
CREATE OR REPLACE FUNCTION sitewatch_history_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'the history is append-only';
END $$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS history_append_only ON history;
CREATE TRIGGER history_append_only BEFORE UPDATE OR DELETE ON history
  FOR EACH ROW EXECUTE FUNCTION sitewatch_history_append_only();
"""

_PG_GEOM_EXPR = {
    "sites": (
        "CASE WHEN NEW.aoi_wkb IS NULL THEN ST_SetSRID(ST_MakePoint(NEW.lon, NEW.lat), 4326) "
        "ELSE ST_GeomFromWKB(NEW.aoi_wkb, 4326) END"
    ),
    "features": "ST_GeomFromWKB(NEW.geom_wkb, 4326)",
}

_PG_POSTGIS = """
ALTER TABLE {t} ADD COLUMN IF NOT EXISTS geom geometry(Geometry, 4326);
CREATE INDEX IF NOT EXISTS ix_{t}_geom ON {t} USING GIST (geom);
CREATE OR REPLACE FUNCTION sitewatch_{t}_geom() RETURNS trigger AS $$
BEGIN
  NEW.geom := {expr};
  RETURN NEW;
END $$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS {t}_geom ON {t};
CREATE TRIGGER {t}_geom BEFORE INSERT OR UPDATE ON {t}
  FOR EACH ROW EXECUTE FUNCTION sitewatch_{t}_geom();
"""

_PG_PLAIN = "CREATE INDEX IF NOT EXISTS ix_{t}_bbox ON {t} (minx, maxx, miny, maxy);"


def _run_script(conn: Connection, script: str) -> None:
    """Run a script of ';'-terminated statements (function bodies use $$ quoting)."""
    buf: list[str] = []
    in_dollar = False
    for line in script.strip().splitlines():
        buf.append(line)
        in_dollar ^= line.count("$$") % 2 == 1
        if line.rstrip().endswith(";") and not in_dollar and _complete(buf):
            conn.exec_driver_sql("\n".join(buf))
            buf = []
    if any(s.strip() for s in buf):
        conn.exec_driver_sql("\n".join(buf))


def _complete(buf: list[str]) -> bool:
    text = "\n".join(buf).upper()
    # SQLite trigger bodies hold inner ';' and close with END;
    if "CREATE TRIGGER" in text and " BEGIN" in text and "EXECUTE FUNCTION" not in text:
        return text.rstrip().endswith("END;")
    return True


def _postgis_available(conn: Connection) -> bool:
    found = conn.exec_driver_sql("SELECT 1 FROM pg_extension WHERE extname = 'postgis'").first()
    if found:
        return True
    nested = conn.begin_nested()
    try:
        conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS postgis")
    except sa.exc.DBAPIError as exc:
        nested.rollback()
        log.warning(
            "PostGIS is not available (%s); using a B-tree bbox index instead. "
            "Install PostGIS (e.g. apt-get install postgresql-15-postgis-3) for GiST indexing.",
            str(exc.orig).strip().splitlines()[0] if exc.orig else exc,
        )
        return False
    nested.commit()
    return True


def install_backend_ddl(conn: Connection) -> Backend:
    """Create the spatial indexes and history guards for the connected backend (idempotent)."""
    dialect = conn.dialect.name
    if dialect == "sqlite":
        for t in SPATIAL_TABLES:
            _run_script(conn, _SQLITE_DDL.format(t=t))
        _run_script(conn, _SQLITE_HISTORY)
        return Backend("sqlite")
    if dialect == "postgresql":
        _run_script(conn, _PG_HISTORY)
        postgis = _postgis_available(conn)
        for t in SPATIAL_TABLES:
            if postgis:
                _run_script(conn, _PG_POSTGIS.format(t=t, expr=_PG_GEOM_EXPR[t]))
            else:
                _run_script(conn, _PG_PLAIN.format(t=t))
        return Backend("postgresql", postgis=postgis)
    raise NotImplementedError(f"unsupported database {dialect!r}; use sqlite:// or postgresql://")


def detect_backend(conn: Connection) -> Backend:
    """Describe the backend of an existing catalog."""
    dialect = conn.dialect.name
    if dialect != "postgresql":
        return Backend(dialect)
    has_geom = conn.exec_driver_sql(
        "SELECT 1 FROM information_schema.columns WHERE table_name = 'sites' AND column_name = 'geom'"
        " AND table_schema = current_schema()"
    ).first()
    return Backend(dialect, postgis=bool(has_geom))


def bbox_clause(table: sa.Table, boxes: list[BBox], backend: Backend) -> sa.ColumnElement[bool]:
    """A WHERE clause selecting rows of ``table`` whose geometry may touch any of ``boxes``.

    The bbox columns are compared exactly (float64); the index narrows the search first. On
    PostGIS the test is exact for any geometry; elsewhere callers refine non-point geometries.
    """
    parts: list[sa.ColumnElement[bool]] = []
    for w, s, e, n in boxes:
        exact = sa.and_(table.c.maxx >= w, table.c.minx <= e, table.c.maxy >= s, table.c.miny <= n)
        if backend.dialect == "sqlite":
            rt = sa.table(
                f"{table.name}_rtree",
                sa.column("id"),
                sa.column("minx"),
                sa.column("maxx"),
                sa.column("miny"),
                sa.column("maxy"),
            )
            index = table.c.fid.in_(
                sa.select(rt.c.id).where(
                    rt.c.maxx >= w, rt.c.minx <= e, rt.c.maxy >= s, rt.c.miny <= n
                )
            )
            parts.append(sa.and_(index, exact))
        elif backend.postgis:
            geom: sa.ColumnElement[Any] = sa.literal_column(f"{table.name}.geom")
            env = sa.func.ST_MakeEnvelope(w, s, e, n, 4326)
            parts.append(sa.func.ST_Intersects(geom, env))
        else:
            parts.append(exact)
    return sa.or_(*parts) if len(parts) > 1 else parts[0]
