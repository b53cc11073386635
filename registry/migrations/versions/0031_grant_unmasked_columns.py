"""per-column lifting of personal-identifier masking on a grant

Revision ID: 0031_grant_unmasked_columns
Revises: 0030_audit_sealing

Personal identifiers (the catalogue's 主体标识/个人信息 marks, the contract's identifier role, the provider's
secrecy review) are masked on every channel. The provider's decision may lift the mask for named columns of one
consumer: ``grants.unmasked_columns``. The older ``grants.unmask`` flag keeps meaning "every column".
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0031_grant_unmasked_columns"
down_revision = "0030_audit_sealing"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("grants") as batch:
        batch.add_column(sa.Column("unmasked_columns", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("grants") as batch:
        batch.drop_column("unmasked_columns")
