"""a seal on API tokens, users, their sessions, designations and resources, so one edited outside the hub is refused

Revision ID: 0095_row_seals
Revises: 0090_grant_seal
Create Date: 2026-12-07 21:00:00

An UPDATE outside the hub moved a consumer system's token to another agency, gave a user another agency's or a
platform role, moved a session to another user, extended a designation or made a resource shared, and every check believed it. Each such
row now carries HMAC-SHA256 of what the checks read, under its table's key (registry/seals.py), made whenever the
hub writes it; existing rows are sealed here as they are (like 0090_grant_seal, this needs the real
GOVSHARE_SECRET_KEY).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0095_row_seals"
down_revision = "0090_grant_seal"
branch_labels = None
depends_on = None

TABLES = ("api_tokens", "users", "user_sessions", "designations", "resources")


def upgrade() -> None:
    from registry.orm import Base
    from registry.seals import seal_all

    import registry.catalog.models  # noqa: F401 - the tables' metadata
    import registry.people.models  # noqa: F401

    for name in TABLES:
        with op.batch_alter_table(name) as batch:
            batch.add_column(sa.Column("seal", sa.String(64), nullable=True))
    for name in TABLES:
        seal_all(op.get_bind(), Base.metadata.tables[name])


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN (SQLite 3.35+), not batch mode: its copy-and-swap drops the old table, which
    # SQLite refuses while other tables' rows point at it (resources, users), so a downgrade with data failed.
    for name in reversed(TABLES):
        op.drop_column(name, "seal")
