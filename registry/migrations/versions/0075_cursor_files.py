"""the record of files read by a file source (cursor_files)

Revision ID: 0075_cursor_files
Revises: 0070_ticket_per_provider_rule
Create Date: 2026-12-10 12:00:00

A file source's incremental run read only files at or after the newest modification time published, so a file
uploaded with an old time kept, or rewritten in place with its time unchanged, waited for the weekly full read.
Each resource's cursor state now has its record of files read (已读文件清单): one row a file with its size,
modification time and, for a local folder, inode and change time. Existing resources have none: their next
incremental run reads every file once (rows merged by key, nothing published if nothing changed) and records it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0075_cursor_files"
down_revision = "0070_ticket_per_provider_rule"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cursor_files",
        sa.Column("resource_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("modified_us", sa.BigInteger(), nullable=False),
        sa.Column("stamp", sa.String(length=100), nullable=True),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(["resource_id"], ["resources.id"]),
        sa.PrimaryKeyConstraint("resource_id", "path"),
    )


def downgrade() -> None:
    op.drop_table("cursor_files")
