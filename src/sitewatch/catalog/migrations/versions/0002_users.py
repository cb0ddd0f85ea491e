"""Web users, API tokens and browser sessions (sitewatch.web).

Passwords are stored as argon2 hashes, API tokens and session ids as SHA-256 digests: the
database never holds a secret that would let its reader log in.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sitewatch.catalog.schema import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())  # re-runnable after a failure
    if "users" not in existing:
        op.create_table(
            "users",
            sa.Column("username", sa.String(64), nullable=False),
            sa.Column("role", sa.String(16), nullable=False),
            sa.Column("password_hash", sa.String(256), nullable=False),
            sa.Column("created_at", UTCDateTime, nullable=False),
            sa.Column("created_by", sa.String(128), nullable=False),
            sa.PrimaryKeyConstraint("username", name="pk_users"),
        )
    if "api_tokens" not in existing:
        op.create_table(
            "api_tokens",
            sa.Column("id", sa.String(32), nullable=False),
            sa.Column("username", sa.String(64), nullable=False),
            sa.Column("token_hash", sa.String(64), nullable=False),
            sa.Column("name", sa.String(128), nullable=False),
            sa.Column("created_at", UTCDateTime, nullable=False),
            sa.Column("expires_at", UTCDateTime),
            sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
            sa.ForeignKeyConstraint(
                ["username"],
                ["users.username"],
                name="fk_api_tokens_username_users",
                ondelete="CASCADE",
            ),
            sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
        )
        op.create_index("ix_api_tokens_username", "api_tokens", ["username"])
    if "web_sessions" not in existing:
        op.create_table(
            "web_sessions",
            sa.Column("token_hash", sa.String(64), nullable=False),
            sa.Column("username", sa.String(64), nullable=False),
            sa.Column("csrf", sa.String(64), nullable=False),
            sa.Column("created_at", UTCDateTime, nullable=False),
            sa.Column("expires_at", UTCDateTime, nullable=False),
            sa.PrimaryKeyConstraint("token_hash", name="pk_web_sessions"),
            sa.ForeignKeyConstraint(
                ["username"],
                ["users.username"],
                name="fk_web_sessions_username_users",
                ondelete="CASCADE",
            ),
        )
        op.create_index("ix_web_sessions_username", "web_sessions", ["username"])
        op.create_index("ix_web_sessions_expires_at", "web_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_table("web_sessions")
    op.drop_table("api_tokens")
    op.drop_table("users")
