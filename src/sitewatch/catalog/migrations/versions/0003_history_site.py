"""The site of each history entry, so that a site's history holds its records' changes too.

Adds ``history.site_id`` (indexed with ``seq``) and fills it for the entries written before:
a site's own entries, then those of records still in the catalog (their row names the site),
then those of records deleted since (their snapshot names it). Filling it is the one change
ever made to stored history rows: the append-only guard is lifted for it, and
:func:`~sitewatch.catalog._migrate.ensure_schema` puts the guard back in the same transaction.
No other column is touched.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sitewatch.catalog.schema import JSONType

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_RECORDS = {
    "feature": "features",
    "observation": "observations",
    "measurement": "measurements",
    "change_event": "change_events",
    "alert": "alerts",
    "candidate": "candidates",
}


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    if "site_id" not in {c["name"] for c in inspector.get_columns("history")}:
        op.add_column("history", sa.Column("site_id", sa.String(128)))
    if "ix_history_site" not in {i["name"] for i in inspector.get_indexes("history")}:
        op.create_index("ix_history_site", "history", ["site_id", "seq"])
    if bind.dialect.name == "sqlite":
        bind.exec_driver_sql("DROP TRIGGER IF EXISTS history_no_update")
    else:
        bind.exec_driver_sql("DROP TRIGGER IF EXISTS history_append_only ON history")
    h = sa.table(
        "history",
        sa.column("seq", sa.Integer),
        sa.column("entity", sa.String),
        sa.column("entity_id", sa.String),
        sa.column("site_id", sa.String),
        sa.column("before", JSONType),
        sa.column("after", JSONType),
    )
    unset = h.c.site_id.is_(None)
    bind.execute(h.update().where(h.c.entity == "site", unset).values(site_id=h.c.entity_id))
    for entity, name in _RECORDS.items():
        rec = sa.table(name, sa.column("id", sa.String), sa.column("site_id", sa.String))
        owner = sa.select(rec.c.site_id).where(rec.c.id == h.c.entity_id).scalar_subquery()
        bind.execute(h.update().where(h.c.entity == entity, unset).values(site_id=owner))
    left = bind.execute(
        sa.select(h.c.seq, h.c.before, h.c.after).where(h.c.entity.in_(list(_RECORDS)), unset)
    ).all()
    for seq, before, after in left:
        for snapshot in (after, before):
            if isinstance(snapshot, dict) and isinstance(snapshot.get("site_id"), str):
                bind.execute(h.update().where(h.c.seq == seq).values(site_id=snapshot["site_id"]))
                break


def downgrade() -> None:
    op.drop_index("ix_history_site", table_name="history")
    op.drop_column("history", "site_id")
