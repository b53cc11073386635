"""one open quarantine ticket per provider and rule

Revision ID: 0070_ticket_per_provider_rule
Revises: 0040_quarantine_records
Create Date: 2026-12-06 12:00:00

A quarantine ticket (疑义校核工单) stood for one rule of one resource, so a provider with several resources
breaking the same rule got as many tickets. It now stands for one rule of one provider (agency), listing the
open records of that rule in every resource of the agency. Open tickets of the same agency and rule are
merged into the oldest (the others are closed with a note naming it), then a partial unique index keeps one
open quarantine ticket per agency and rule.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0070_ticket_per_provider_rule"
down_revision = "0040_quarantine_records"
branch_labels = None
depends_on = None

OPEN_RULE = sa.text("status = 'open' AND kind = 'quarantine' AND rule IS NOT NULL")


def upgrade() -> None:
    tickets = sa.table("correction_tickets", sa.column("id", sa.Integer), sa.column("agency_id", sa.Integer),
                       sa.column("kind", sa.String), sa.column("rule", sa.String), sa.column("rows", sa.BigInteger),
                       sa.column("status", sa.String), sa.column("note", sa.Text),
                       sa.column("closed_at", sa.DateTime(timezone=True)))
    connection = op.get_bind()
    kept: dict[tuple[int, str], int] = {}
    rows = connection.execute(sa.select(tickets.c.id, tickets.c.agency_id, tickets.c.rule, tickets.c.rows)
                              .where(tickets.c.status == "open", tickets.c.kind == "quarantine",
                                     tickets.c.rule.is_not(None)).order_by(tickets.c.id)).all()
    for ticket_id, agency_id, rule, count in rows:
        first = kept.setdefault((agency_id, rule), ticket_id)
        if first == ticket_id:
            continue
        connection.execute(tickets.update().where(tickets.c.id == first).values(rows=tickets.c.rows + count))
        connection.execute(tickets.update().where(tickets.c.id == ticket_id).values(
            status="closed", closed_at=sa.func.current_timestamp(),
            note=f"已并入工单 {first} / merged into ticket {first}: one open ticket per provider and rule"))
    op.create_index("uq_correction_tickets_open_rule", "correction_tickets", ["agency_id", "rule"], unique=True,
                    sqlite_where=OPEN_RULE, postgresql_where=OPEN_RULE)


def downgrade() -> None:
    op.drop_index("uq_correction_tickets_open_rule", table_name="correction_tickets")
