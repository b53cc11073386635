"""the day a catalogue revision's submission counts for

Revision ID: 0105_revision_submitted_on
Revises: 0100_user_lockout_seal
Create Date: 2026-12-07 23:45:00

Only `submitted_at` (when the command ran) was stored, so a confidentiality review or review decision could be
dated (`--on`) before the submission, e.g. by a reviewer into a designation that had since ended. The submission's
own day is stored now and decisions are not dated before it (registry/catalog/review.py). Revisions already
submitted get the Beijing day of their `submitted_at`, the best day known for them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0105_revision_submitted_on"
down_revision = "0100_user_lockout_seal"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from core.clock import beijing_day

    op.add_column("catalog_revisions", sa.Column("submitted_on", sa.Date(), nullable=True))
    revisions = sa.table("catalog_revisions", sa.column("id", sa.Integer), sa.column("submitted_at", sa.DateTime),
                         sa.column("submitted_on", sa.Date))
    bind = op.get_bind()
    submitted = bind.execute(sa.select(revisions.c.id, revisions.c.submitted_at)
                             .where(revisions.c.submitted_at.is_not(None))).all()
    for revision_id, submitted_at in submitted:
        bind.execute(revisions.update().where(revisions.c.id == revision_id)
                     .values(submitted_on=beijing_day(submitted_at)))


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN in place (SQLite 3.35+), not batch mode: its copy-and-swap drops the table,
    # which SQLite refuses while other rows point at it, so a downgrade of a hub with data failed (0095 too).
    op.drop_column("catalog_revisions", "submitted_on")
