"""record when audit sealing began, sealed, so stripping seals is tampering

Revision ID: 0030_audit_sealing
Revises: 0021_due_days

From the first sealed record on (or, on a log without seals, from the next record written), every audit record
must carry a valid seal. The marker row is sealed with the audit key (registry/audit.py), so it can be neither
moved nor forged by someone without GOVSHARE_SECRET_KEY, and `audit verify` reports it missing whenever the log
has records.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from core import clock

revision = "0030_audit_sealing"
down_revision = "0021_due_days"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from registry.audit.log import sealing_seal

    table = op.create_table(
        "audit_sealing",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("sealed_from_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("seal", sa.String(64), nullable=False),
    )
    bind = op.get_bind()
    first_sealed = bind.execute(sa.text("SELECT MIN(id) FROM audit_events WHERE seal IS NOT NULL")).scalar()
    last = bind.execute(sa.text("SELECT MAX(id) FROM audit_events")).scalar()
    sealed_from = first_sealed if first_sealed is not None else (last or 0) + 1
    started = clock.now().replace(tzinfo=None)
    op.bulk_insert(table, [{"id": 1, "sealed_from_id": sealed_from, "started_at": started,
                            "seal": sealing_seal(sealed_from, started)}])


def downgrade() -> None:
    op.drop_table("audit_sealing")
