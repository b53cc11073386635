"""the day a catalogue revision (a draft) was made

Revision ID: 0110_revision_created_on
Revises: 0105_revision_submitted_on
Create Date: 2026-12-08 02:45:00

A revision never submitted has no submission day (0105), so its confidentiality review (保密审查) could be dated
(`--on`) before the draft even existed. The draft's own day is stored now and a review of a draft is not dated
before it (registry/catalog/review.py). Revisions made before this migration get the Beijing day of their
`created_at`, which the hub has always written when it made the revision.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0110_revision_created_on"
down_revision = "0105_revision_submitted_on"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from core.clock import beijing_day

    # added in place and nullable (as 0105): a batch copy-and-swap would drop a table other rows point at
    op.add_column("catalog_revisions", sa.Column("created_on", sa.Date(), nullable=True))
    revisions = sa.table("catalog_revisions", sa.column("id", sa.Integer), sa.column("created_at", sa.DateTime),
                         sa.column("created_on", sa.Date))
    bind = op.get_bind()
    made = bind.execute(sa.select(revisions.c.id, revisions.c.created_at)
                        .where(revisions.c.created_at.is_not(None))).all()
    for revision_id, created_at in made:
        bind.execute(revisions.update().where(revisions.c.id == revision_id)
                     .values(created_on=beijing_day(created_at)))


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN in place (SQLite 3.35+), not batch mode, as 0105's downgrade
    op.drop_column("catalog_revisions", "created_on")
