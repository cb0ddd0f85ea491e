"""Bringing a database to the current schema with Alembic.

A new, empty database is built from :mod:`.schema` and stamped at the head revision (the Alembic
cookbook's "build from scratch" recipe); an existing one is upgraded through the migrations in
``catalog/migrations/versions``.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from ..errors import ConfigError
from ._spatial import Backend, detect_backend, install_backend_ddl
from .schema import metadata

__all__ = ["alembic_config", "ensure_schema", "head_revision"]

_MIGRATIONS = Path(__file__).with_name("migrations")
_PG_LOCK = 7_465_872_001  # advisory lock id serialising schema creation on PostgreSQL


def alembic_config(conn: Connection | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations (and at ``conn`` when given)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    if conn is not None:
        cfg.attributes["connection"] = conn
    return cfg


def head_revision() -> str:
    """The newest migration revision shipped with this version of sitewatch."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - packaging error
        raise ConfigError("no catalog migrations found in the package")
    return head


def ensure_schema(conn: Connection) -> Backend:
    """Create or upgrade the catalog schema inside the caller's transaction."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK})")
    current = MigrationContext.configure(conn).get_current_revision()
    head = head_revision()
    if current == head:
        return detect_backend(conn)
    if current is None:
        if sa.inspect(conn).has_table("sites"):
            raise ConfigError(
                "the database has a 'sites' table but no sitewatch schema version; "
                "point SITEWATCH_DATABASE_URL at an empty database or a sitewatch catalog"
            )
        metadata.create_all(conn)
        backend = install_backend_ddl(conn)
        command.stamp(alembic_config(conn), "head")
        return backend
    command.upgrade(alembic_config(conn), "head")
    return install_backend_ddl(conn)
