"""statutory due days that wait for a year's working-day schedule

Revision ID: 0021_due_days
Revises: 0020_merge

An application's answer deadline (article 14) and a rectification order's deadline (article 23) may fall in a
year whose State Council holiday schedule is not installed yet. They are recorded with the due day unknown
(NULL) and the reason, as update obligations already are, and filled in when the schedule is loaded.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021_due_days"
down_revision = "0020_merge"
branch_labels = None
depends_on = None

TABLES = ("sharing_applications", "rectification_orders")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.alter_column("due_on", existing_type=sa.Date(), nullable=True)
            batch.add_column(sa.Column("due_problem", sa.Text(), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("due_problem")
            batch.alter_column("due_on", existing_type=sa.Date(), nullable=False)
