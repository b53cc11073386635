"""supervision: evaluation runs, violations, rectification orders (articles 22, 23)

Revision ID: 0018_supervision
Revises: 0001
Create Date: 2026-11-25 13:20:00

Hand-written; a branch of its own (label "supervision") so it merges with the other issues' migrations.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018_supervision"
down_revision = "0001"
branch_labels = ("supervision",)
depends_on = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "evaluation_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("weights_sha256", sa.String(length=64), nullable=False),
        sa.Column("weights", sa.JSON(), nullable=False),
        sa.Column("results", sa.JSON(), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_evaluation_runs_period", "evaluation_runs", ["period"])
    op.create_table(
        "violations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("agency_id", sa.Integer(), sa.ForeignKey("agencies.id"), nullable=False),
        sa.Column("resource_id", sa.Integer(), sa.ForeignKey("resources.id"), nullable=True),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("origin", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("detected_on", sa.Date(), nullable=False),
        sa.Column("last_seen_on", sa.Date(), nullable=False),
        sa.Column("resolved_on", sa.Date(), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("fingerprint", name="uq_violations_fingerprint"),
    )
    op.create_index("ix_violations_case", "violations", ["case"])
    op.create_index("ix_violations_agency_id", "violations", ["agency_id"])
    op.create_index("ix_violations_status", "violations", ["status"])
    op.create_table(
        "rectification_orders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=40), nullable=False),
        sa.Column("violation_id", sa.Integer(), sa.ForeignKey("violations.id"), nullable=False),
        sa.Column("agency_id", sa.Integer(), sa.ForeignKey("agencies.id"), nullable=False),
        sa.Column("requirement", sa.Text(), nullable=False),
        sa.Column("issued_on", sa.Date(), nullable=False),
        sa.Column("working_days", sa.Integer(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("issued_by", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("fixed_on", sa.Date(), nullable=True),
        sa.Column("fixed_by", sa.String(length=100), nullable=True),
        sa.Column("fix_note", sa.Text(), nullable=False),
        sa.Column("refusal_violation_id", sa.Integer(), sa.ForeignKey("violations.id"), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("number", name="uq_rectification_orders_number"),
    )
    op.create_index("ix_rectification_orders_violation_id", "rectification_orders", ["violation_id"])
    op.create_index("ix_rectification_orders_agency_id", "rectification_orders", ["agency_id"])
    op.create_index("ix_rectification_orders_status", "rectification_orders", ["status"])


def downgrade() -> None:
    for name in ("status", "agency_id", "violation_id"):
        op.drop_index(f"ix_rectification_orders_{name}", table_name="rectification_orders")
    op.drop_table("rectification_orders")
    for name in ("status", "agency_id", "case"):
        op.drop_index(f"ix_violations_{name}", table_name="violations")
    op.drop_table("violations")
    op.drop_index("ix_evaluation_runs_period", table_name="evaluation_runs")
    op.drop_table("evaluation_runs")
