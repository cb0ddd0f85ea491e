"""SQLAlchemy Core tables of the catalog (the head state of the Alembic migrations).

Geometries are stored portably as WKB (``*_wkb``) with their lon/lat bounding box (``minx`` ...
``maxy``). The spatial index is backend specific and maintained by the database itself (see
:mod:`sitewatch.catalog._spatial`): an R*Tree virtual table with triggers on SQLite, a PostGIS
``geom`` column with a GiST index on PostgreSQL when the extension is available.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

__all__ = [
    "SPATIAL_TABLES",
    "UTCDateTime",
    "alerts",
    "api_tokens",
    "candidates",
    "change_events",
    "declaration_entries",
    "declarations",
    "features",
    "history",
    "measurements",
    "metadata",
    "observations",
    "site_sources",
    "site_tags",
    "sites",
    "sources",
    "users",
    "web_sessions",
]


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive UTC)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} given; use UTC-aware datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType: sa.types.TypeEngine[Any] = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _bbox() -> list[sa.Column[Any]]:
    return [
        sa.Column("minx", sa.Float, nullable=False),
        sa.Column("miny", sa.Float, nullable=False),
        sa.Column("maxx", sa.Float, nullable=False),
        sa.Column("maxy", sa.Float, nullable=False),
    ]


def _stamps() -> list[sa.Column[Any]]:
    return [
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
    ]


def _site_fk(ondelete: str = "CASCADE", nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(
        "site_id",
        sa.String(128),
        sa.ForeignKey("sites.id", ondelete=ondelete),
        nullable=nullable,
        index=True,
    )


sources = sa.Table(
    "sources",
    metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("citation", sa.Text, nullable=False),
    sa.Column("url", sa.Text),
    sa.Column("licence", sa.String(256)),
    sa.Column("accessed", sa.Date),
    sa.Column("notes", sa.Text, nullable=False, default=""),
    *_stamps(),
)

sites = sa.Table(
    "sites",
    metadata,
    sa.Column("fid", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(128), nullable=False, unique=True),
    sa.Column("name", sa.String(512), nullable=False),
    sa.Column("aliases", JSONType, nullable=False),
    sa.Column("country", sa.String(128)),
    sa.Column("lon", sa.Float, nullable=False),
    sa.Column("lat", sa.Float, nullable=False),
    sa.Column("aoi_wkb", sa.LargeBinary),
    sa.Column("category", sa.String(64), nullable=False, index=True),
    sa.Column("status", sa.String(32), nullable=False, index=True),
    sa.Column("declared", sa.Boolean, nullable=False),
    sa.Column("declaration_ref", sa.String(256)),
    sa.Column("confidence", sa.Float),
    sa.Column("notes", sa.Text, nullable=False),
    sa.Column("search_text", sa.Text, nullable=False),
    *_bbox(),
    *_stamps(),
)

site_tags = sa.Table(
    "site_tags",
    metadata,
    sa.Column(
        "site_id", sa.String(128), sa.ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("tag", sa.String(128), primary_key=True, index=True),
)

site_sources = sa.Table(
    "site_sources",
    metadata,
    sa.Column(
        "site_id", sa.String(128), sa.ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column(
        "source_id",
        sa.String(128),
        sa.ForeignKey("sources.id", ondelete="RESTRICT"),
        primary_key=True,
    ),
    sa.Column("seq", sa.Integer, nullable=False),
)

features = sa.Table(
    "features",
    metadata,
    sa.Column("fid", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(64), nullable=False, unique=True),
    _site_fk(),
    sa.Column("kind", sa.String(64), nullable=False, index=True),
    sa.Column("name", sa.String(512), nullable=False),
    sa.Column("geom_wkb", sa.LargeBinary, nullable=False),
    sa.Column("attributes", JSONType, nullable=False),
    sa.Column("first_seen", sa.Date),
    sa.Column("last_seen", sa.Date),
    *_bbox(),
    *_stamps(),
)

observations = sa.Table(
    "observations",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    _site_fk(),
    sa.Column("acquired", UTCDateTime, nullable=False, index=True),
    sa.Column("sensor", sa.String(128), nullable=False),
    sa.Column("scene_id", sa.String(512)),
    sa.Column("gsd_m", sa.Float),
    sa.Column("sun_azimuth", sa.Float),
    sa.Column("sun_elevation", sa.Float),
    sa.Column("view_off_nadir", sa.Float),
    sa.Column("analyst", sa.String(128), nullable=False),
    sa.Column("phase", sa.String(32)),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("evidence", JSONType, nullable=False),
    *_stamps(),
)

measurements = sa.Table(
    "measurements",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    _site_fk(),
    sa.Column(
        "feature_id", sa.String(64), sa.ForeignKey("features.id", ondelete="SET NULL"), index=True
    ),
    sa.Column(
        "observation_id", sa.String(64), sa.ForeignKey("observations.id", ondelete="SET NULL")
    ),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("unit", sa.String(32), nullable=False),
    sa.Column("uncertainty", sa.Float),
    sa.Column("method", sa.String(128), nullable=False),
    sa.Column("inputs", JSONType, nullable=False),
    sa.Column("analyst", sa.String(128), nullable=False),
    sa.Column("measured_at", UTCDateTime),
    *_stamps(),
)

change_events = sa.Table(
    "change_events",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    _site_fk(),
    sa.Column("before", UTCDateTime, nullable=False),
    sa.Column("after", UTCDateTime, nullable=False),
    sa.Column("method", sa.String(128), nullable=False),
    sa.Column("area_m2", sa.Float, nullable=False),
    sa.Column("geom_wkb", sa.LargeBinary),
    sa.Column("magnitude", sa.Float),
    sa.Column("details", JSONType, nullable=False),
    *_stamps(),
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    _site_fk(),
    sa.Column("rule", sa.String(128), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("key", sa.String(512), nullable=False, unique=True),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("details", JSONType, nullable=False),
    *_stamps(),
)

candidates = sa.Table(
    "candidates",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(128), nullable=False, index=True),
    sa.Column("geom_wkb", sa.LargeBinary, nullable=False),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("rank", sa.Integer, nullable=False),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    _site_fk(ondelete="SET NULL", nullable=True),
    sa.Column("details", JSONType, nullable=False),
    *_bbox(),
    *_stamps(),
)

declarations = sa.Table(
    "declarations",
    metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("party", sa.String(256), nullable=False),
    sa.Column("declared_on", sa.Date),
    sa.Column("source_id", sa.String(128), sa.ForeignKey("sources.id", ondelete="SET NULL")),
    *_stamps(),
)

declaration_entries = sa.Table(
    "declaration_entries",
    metadata,
    sa.Column(
        "declaration_id",
        sa.String(128),
        sa.ForeignKey("declarations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(512), nullable=False),
    sa.Column("lon", sa.Float),
    sa.Column("lat", sa.Float),
    sa.Column("ref", sa.String(256)),
)

history = sa.Table(
    "history",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime, nullable=False, index=True),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("entity", sa.String(32), nullable=False),
    sa.Column("entity_id", sa.String(128), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("before", JSONType),
    sa.Column("after", JSONType),
    # the site a record belongs to, so that a site's history holds its features' and records'
    # changes too (migration 0003; null for sources, declarations and site-less records)
    sa.Column("site_id", sa.String(128)),
    sa.Index("ix_history_entity", "entity", "entity_id"),
    sa.Index("ix_history_site", "site_id", "seq"),
)

SPATIAL_TABLES: tuple[str, ...] = ("sites", "features")
"""Tables with a spatial index over their bounding-box columns."""

# --- web users, API tokens and sessions (migration 0002) --------------------------------------

users = sa.Table(
    "users",
    metadata,
    sa.Column("username", sa.String(64), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("password_hash", sa.String(256), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column(
        "username",
        sa.String(64),
        sa.ForeignKey("users.username", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime),
)

web_sessions = sa.Table(
    "web_sessions",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column(
        "username",
        sa.String(64),
        sa.ForeignKey("users.username", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("csrf", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False, index=True),
)
