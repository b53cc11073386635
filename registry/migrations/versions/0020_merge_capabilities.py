"""merge the capability branches into one head

Revision ID: 0020_merge
Revises: 0005_quality, 0006_notices, 0007_delivery, 0007_exchange, 0010_catalog, 0012_catalog_search,
         0016_sharing, 0018_supervision

Each capability (catalogue, exchange, quality, sharing, delivery, supervision) was built as its own branch off 0001 so that they could be written in parallel.
This empty merge gives the registry one head again: `alembic upgrade head` and `govshare init` agree, and the
next migration has a single parent. New migrations revise "0020_merge".
"""

from __future__ import annotations

revision = "0020_merge"
down_revision = ("0005_quality", "0006_notices", "0007_delivery", "0007_exchange", "0010_catalog",
                 "0012_catalog_search", "0016_sharing", "0018_supervision")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
