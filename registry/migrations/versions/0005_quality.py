"""quality: quarantine store, error-correction tickets, data elements, consistency checks, GX runs

Revision ID: 0005_quality
Revises: 0001
Create Date: 2026-11-25 13:00:00

Hand-written; a branch of its own (label "quality") so it merges with the other issues' migrations.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_quality"
down_revision = "0001"
branch_labels = ("quality",)
depends_on = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "quarantine_sets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("resource_id", sa.Integer(), sa.ForeignKey("resources.id"), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("version_id", sa.Integer(), sa.ForeignKey("dataset_versions.id"), nullable=True),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("replay_run_id", sa.String(length=40), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("resolved_at", WHEN, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", name="uq_quarantine_sets_run_id"),
    )
    op.create_index("ix_quarantine_sets_resource_id", "quarantine_sets", ["resource_id"])
    op.create_index("ix_quarantine_sets_status", "quarantine_sets", ["status"])
    op.create_table(
        "data_elements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("subject_key", sa.String(length=20), nullable=False),
        sa.Column("agency_id", sa.Integer(), sa.ForeignKey("agencies.id"), nullable=False),
        sa.Column("resource_id", sa.Integer(), sa.ForeignKey("resources.id"), nullable=False),
        sa.Column("column", sa.String(length=100), nullable=False),
        sa.Column("key_column", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code", name="uq_data_elements_code"),  # one element, one authoritative agency
    )
    op.create_table(
        "consistency_checks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("resource_id", sa.Integer(), sa.ForeignKey("resources.id"), nullable=False),
        sa.Column("copy_version_id", sa.Integer(), sa.ForeignKey("dataset_versions.id"), nullable=False),
        sa.Column("elements", sa.JSON(), nullable=False),
        sa.Column("rows_compared", sa.BigInteger(), nullable=False),
        sa.Column("mismatches", sa.BigInteger(), nullable=False),
        sa.Column("missing", sa.BigInteger(), nullable=False),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_consistency_checks_resource_id", "consistency_checks", ["resource_id"])
    op.create_table(
        "correction_tickets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("agency_id", sa.Integer(), sa.ForeignKey("agencies.id"), nullable=False),
        sa.Column("resource_id", sa.Integer(), sa.ForeignKey("resources.id"), nullable=False),
        sa.Column("quarantine_set_id", sa.Integer(), sa.ForeignKey("quarantine_sets.id"), nullable=True),
        sa.Column("consistency_check_id", sa.Integer(), sa.ForeignKey("consistency_checks.id"), nullable=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("closed_at", WHEN, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_correction_tickets_agency_id", "correction_tickets", ["agency_id"])
    op.create_index("ix_correction_tickets_status", "correction_tickets", ["status"])
    op.create_table(
        "expectation_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("resource_id", sa.Integer(), sa.ForeignKey("resources.id"), nullable=False),
        sa.Column("version_id", sa.Integer(), sa.ForeignKey("dataset_versions.id"), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("evaluated", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("batches", sa.Integer(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("report_path", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_expectation_runs_resource_id", "expectation_runs", ["resource_id"])
    op.create_index("ix_expectation_runs_version_id", "expectation_runs", ["version_id"])


def downgrade() -> None:
    op.drop_index("ix_expectation_runs_version_id", table_name="expectation_runs")
    op.drop_index("ix_expectation_runs_resource_id", table_name="expectation_runs")
    op.drop_table("expectation_runs")
    op.drop_index("ix_correction_tickets_status", table_name="correction_tickets")
    op.drop_index("ix_correction_tickets_agency_id", table_name="correction_tickets")
    op.drop_table("correction_tickets")
    op.drop_index("ix_consistency_checks_resource_id", table_name="consistency_checks")
    op.drop_table("consistency_checks")
    op.drop_table("data_elements")
    op.drop_index("ix_quarantine_sets_status", table_name="quarantine_sets")
    op.drop_index("ix_quarantine_sets_resource_id", table_name="quarantine_sets")
    op.drop_table("quarantine_sets")
