"""a seal on every grant, so a grant edited outside the hub is refused (grants.seal)

Revision ID: 0090_grant_seal
Revises: 0085_cdc_table_identity
Create Date: 2026-12-07 20:00:00

The access check reads a grant's columns, row condition and unmasking from its row; an UPDATE outside the hub
widened what a consumer received. Each grant now carries HMAC-SHA256 of those fields under the `grant-seal` key
(registry/sharing/grant_seal.py), made whenever the hub writes it; existing grants are sealed here as they are
(like the audit sealing migration, this needs the real GOVSHARE_SECRET_KEY).
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0090_grant_seal"
down_revision = "0085_cdc_table_identity"
branch_labels = None
depends_on = None


def _json(value):  # noqa: ANN001, ANN202 - a JSON column as the driver gives it (text on SQLite)
    return json.loads(value) if isinstance(value, str) else value


def upgrade() -> None:
    from registry.sharing.grant_seal import SEALED, seal_of

    with op.batch_alter_table("grants") as batch:
        batch.add_column(sa.Column("seal", sa.String(64), nullable=True))
    bind = op.get_bind()
    grants = sa.table("grants", sa.column("seal", sa.String), *(sa.column(name) for name in SEALED))
    rows = bind.execute(sa.select(*(grants.c[name] for name in SEALED))).mappings().all()
    for row in rows:
        values = dict(row)
        for name in ("columns", "row_filter", "unmasked_columns"):
            values[name] = _json(values[name])
        bind.execute(grants.update().where(grants.c.id == row["id"]).values(seal=seal_of(values)))


def downgrade() -> None:
    with op.batch_alter_table("grants") as batch:
        batch.drop_column("seal")
