"""Baseline: the catalog schema of sitewatch 0.1 (sites, features, observations, measurements,
change events, alerts, candidates, sources, declarations, append-only history).

New databases are created from sitewatch.catalog.schema and stamped at head; this baseline builds
the same tables for a database stamped at base. Later revisions must be explicit ``op.*`` diffs.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sitewatch.catalog._spatial import install_backend_ddl
from sitewatch.catalog.schema import metadata

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


# Tables added by later revisions: the baseline must not create them.
LATER_TABLES = frozenset({"users", "api_tokens", "web_sessions"})


def _own_tables() -> list[sa.Table]:
    return [t for t in metadata.sorted_tables if t.name not in LATER_TABLES]


def upgrade() -> None:
    bind = op.get_bind()
    metadata.create_all(bind, tables=_own_tables())
    install_backend_ddl(bind)


def downgrade() -> None:
    bind = op.get_bind()
    metadata.drop_all(bind, tables=_own_tables())
