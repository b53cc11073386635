"""exchange engine: per-resource run locks, source schema changes, pruned versions

Revision ID: 0007_exchange
Revises: 0001
Create Date: 2026-11-25 12:50:00

Hand-written; a branch of its own (label "exchange") so it merges with the other issues' migrations.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_exchange"
down_revision = "0001"
branch_labels = ("exchange",)
depends_on = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "resource_locks",
        sa.Column("resource_id", sa.Integer(), sa.ForeignKey("resources.id"), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("acquired_at", WHEN, nullable=False),
        sa.Column("expires_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("resource_id"),
    )
    op.create_table(
        "schema_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("resource_id", sa.Integer(), sa.ForeignKey("resources.id"), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("previous_version", sa.Integer(), nullable=False),
        sa.Column("signature", sa.String(length=64), nullable=False),
        sa.Column("added", sa.JSON(), nullable=False),
        sa.Column("dropped", sa.JSON(), nullable=False),
        sa.Column("retyped", sa.JSON(), nullable=False),
        sa.Column("compatible", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("obligation", sa.Text(), nullable=True),
        sa.Column("detected_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_schema_changes_resource_id", "schema_changes", ["resource_id"])
    op.create_table(
        "pruned_versions",
        sa.Column("version_id", sa.Integer(), sa.ForeignKey("dataset_versions.id"), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("pruned_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("version_id"),
    )


def downgrade() -> None:
    op.drop_table("pruned_versions")
    op.drop_index("ix_schema_changes_resource_id", table_name="schema_changes")
    op.drop_table("schema_changes")
    op.drop_table("resource_locks")
