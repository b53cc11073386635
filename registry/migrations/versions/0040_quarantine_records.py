"""quarantine records per key and rule; one quarantine ticket per resource and rule

Revision ID: 0040_quarantine_records
Revises: 0031_grant_unmasked_columns
Create Date: 2026-12-07 09:00:00

A quarantined row used to be recorded once per run that read it, so re-reading the same bad rows piled up
records and tickets. `quarantine_records` holds one open record per (resource, key, rule), superseded when the
key is read again and closed when it is fixed or deleted at the source; `correction_tickets.rule` lets a
quarantine ticket stand for one rule of one resource. Existing open sets keep their rows (their tickets stay
as they were); records start with the next run.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0040_quarantine_records"
down_revision = "0031_grant_unmasked_columns"
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)
OPEN = sa.text("status = 'open'")


def upgrade() -> None:
    op.create_table(
        "quarantine_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("resource_id", sa.Integer(), sa.ForeignKey("resources.id"), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("rule", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("set_id", sa.Integer(), sa.ForeignKey("quarantine_sets.id"), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("closed_reason", sa.String(length=20), nullable=True),
        sa.Column("superseded_by", sa.Integer(), nullable=True),
        sa.Column("first_seen_at", WHEN, nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("closed_at", WHEN, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_quarantine_records_resource_id", "quarantine_records", ["resource_id"])
    op.create_index("ix_quarantine_records_set_id", "quarantine_records", ["set_id"])
    op.create_index("ix_quarantine_records_status", "quarantine_records", ["status"])
    op.create_index("uq_quarantine_records_open", "quarantine_records", ["resource_id", "key", "rule"], unique=True,
                    sqlite_where=OPEN, postgresql_where=OPEN)
    with op.batch_alter_table("correction_tickets") as batch:
        batch.add_column(sa.Column("rule", sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("correction_tickets") as batch:
        batch.drop_column("rule")
    op.drop_index("uq_quarantine_records_open", table_name="quarantine_records")
    op.drop_index("ix_quarantine_records_status", table_name="quarantine_records")
    op.drop_index("ix_quarantine_records_set_id", table_name="quarantine_records")
    op.drop_index("ix_quarantine_records_resource_id", table_name="quarantine_records")
    op.drop_table("quarantine_records")
