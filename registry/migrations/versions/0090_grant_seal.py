"""a seal on every grant, so a grant edited outside the hub is refused (grants.seal)

Revision ID: 0090_grant_seal
Revises: 0085_cdc_table_identity
Create Date: 2026-12-07 20:00:00

The access check reads a grant's columns, row condition and unmasking from its row; an UPDATE outside the hub
widened what a consumer received. Each grant now carries HMAC-SHA256 of those fields under the `grant-seal` key
(registry/seals.py, once registry/sharing/grant_seal.py), made whenever the hub writes it; existing grants are sealed here as they are
(like the audit sealing migration, this needs the real GOVSHARE_SECRET_KEY).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0090_grant_seal"
down_revision = "0085_cdc_table_identity"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from registry.seals import seal_all
    from registry.sharing.models import Grant

    with op.batch_alter_table("grants") as batch:
        batch.add_column(sa.Column("seal", sa.String(64), nullable=True))
    seal_all(op.get_bind(), Grant.__table__)


def downgrade() -> None:
    op.drop_column("grants", "seal")  # in place, as 0095_row_seals says why
