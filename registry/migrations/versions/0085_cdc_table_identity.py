"""the identity of a change-captured table, kept with its cursor state (cursor_states.source_identity)

Revision ID: 0085_cdc_table_identity
Revises: 0080_notice_releases
Create Date: 2026-12-07 13:00:00

Some source changes set values in rows without one change in the logical replication slot and without a
difference in the table's columns: the last column dropped and added again with another default, a table rebuilt
in the same column order and put back in its publication, a column retyped in place. Change capture now keeps
the table's identity (源表标识: pg_class oid, each column's attnum, type and typmod) beside its position and reads a
snapshot when it changed (pipeline/cdc_identity.py). Existing cursor states have none (NULL): the next run records
it without a snapshot; `govshare sync CODE --full` reads a table known to have changed so meanwhile.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0085_cdc_table_identity"
down_revision = "0080_notice_releases"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cursor_states") as batch:
        batch.add_column(sa.Column("source_identity", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cursor_states") as batch:
        batch.drop_column("source_identity")
