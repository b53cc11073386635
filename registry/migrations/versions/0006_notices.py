"""update notices (article 16) and change-capture resync marks

Revision ID: 0006_notices
Revises: 0001
Create Date: 2026-11-25 06:40:00

Hand-written; a branch of its own (label "notices") so it merges with the other issues' migrations.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_notices"
down_revision = "0001"
branch_labels = ("notices",)
depends_on = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "notice_endpoints",
        sa.Column("subscription_id", sa.Integer(), sa.ForeignKey("subscriptions.id"), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("secret_encrypted", sa.Text(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("subscription_id"),
    )
    op.create_table(
        "notices",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("subscription_id", sa.Integer(), sa.ForeignKey("subscriptions.id"), nullable=False),
        sa.Column("version_id", sa.Integer(), sa.ForeignKey("dataset_versions.id"), nullable=False),
        sa.Column("resource_id", sa.Integer(), sa.ForeignKey("resources.id"), nullable=False),
        sa.Column("agency_id", sa.Integer(), sa.ForeignKey("agencies.id"), nullable=False),
        sa.Column("resource_code", sa.String(length=60), nullable=False),
        sa.Column("version_number", sa.Integer(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", WHEN, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("delivered_at", WHEN, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        # one notice per subscriber and version: queueing twice inserts nothing the second time
        sa.UniqueConstraint("subscription_id", "version_id", name="uq_notices_subscription_version"),
    )
    op.create_index("ix_notices_agency_id", "notices", ["agency_id"])
    op.create_index("ix_notices_status", "notices", ["status"])
    op.create_table(
        "cdc_resyncs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("resource_id", sa.Integer(), sa.ForeignKey("resources.id"), nullable=False),
        sa.Column("slot", sa.String(length=63), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("retained_bytes", sa.BigInteger(), nullable=True),
        sa.Column("marked_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_cdc_resyncs_resource_id", "cdc_resyncs", ["resource_id"])


def downgrade() -> None:
    op.drop_index("ix_cdc_resyncs_resource_id", table_name="cdc_resyncs")
    op.drop_table("cdc_resyncs")
    op.drop_index("ix_notices_status", table_name="notices")
    op.drop_index("ix_notices_agency_id", table_name="notices")
    op.drop_table("notices")
    op.drop_table("notice_endpoints")
