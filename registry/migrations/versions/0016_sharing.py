"""sharing workflows, people and grants (articles 5, 13, 14, 17, 18, 19)

Revision ID: 0016_sharing
Revises: 0001
Create Date: 2026-11-25 12:50:00

Hand-written; a branch of its own (label "sharing") so it merges with the other issues' migrations.
Active subscriptions that exist before this migration become grants on every column, so nobody who could
read before loses access.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_sharing"
down_revision = "0001"
branch_labels = ("sharing",)
depends_on = None

WHEN = sa.DateTime(timezone=True)


def _id(name: str) -> sa.Column:
    return sa.Column(name, sa.Integer(), nullable=False)


def upgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("seal", sa.String(64), nullable=True))
    op.create_table(
        "users",
        _id("id"),
        sa.Column("username", sa.String(60), nullable=False),
        sa.Column("display_name", sa.String(100), nullable=False),
        sa.Column("agency_id", sa.Integer(), sa.ForeignKey("agencies.id"), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", WHEN, nullable=True),
        sa.Column("last_login_at", WHEN, nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("username"),
    )
    op.create_index("ix_users_agency_id", "users", ["agency_id"])
    op.create_table(
        "user_sessions",
        _id("id"),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("expires_at", WHEN, nullable=False),
        sa.Column("revoked_at", WHEN, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_sha256"),
    )
    op.create_index("ix_user_sessions_user_id", "user_sessions", ["user_id"])
    op.create_table(
        "resource_sensitivity",
        sa.Column("resource_id", sa.Integer(), sa.ForeignKey("resources.id"), nullable=False),
        sa.Column("state_secret", sa.Boolean(), nullable=False),
        sa.Column("commercial_secret", sa.Boolean(), nullable=False),
        sa.Column("personal_privacy", sa.Boolean(), nullable=False),
        sa.Column("personal_columns", sa.JSON(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("reviewed_by", sa.String(100), nullable=False),
        sa.Column("reviewed_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("resource_id"),
    )
    op.create_table(
        "sharing_applications",
        _id("id"),
        sa.Column("number", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("resource_id", sa.Integer(), sa.ForeignKey("resources.id"), nullable=False),
        sa.Column("consumer_agency_id", sa.Integer(), sa.ForeignKey("agencies.id"), nullable=False),
        sa.Column("applicant", sa.String(100), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("row_filter", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("submitted_at", WHEN, nullable=False),
        sa.Column("received_on", sa.Date(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("reminded_at", WHEN, nullable=True),
        sa.Column("overdue_flagged_at", WHEN, nullable=True),
        sa.Column("decided_at", WHEN, nullable=True),
        sa.Column("decided_by", sa.String(100), nullable=True),
        sa.Column("approved_items", sa.JSON(), nullable=True),
        sa.Column("reasons", sa.Text(), nullable=True),
        sa.Column("grant_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("number"),
    )
    op.create_index("ix_sharing_applications_resource_id", "sharing_applications", ["resource_id"])
    op.create_index("ix_sharing_applications_consumer_agency_id", "sharing_applications", ["consumer_agency_id"])
    op.create_index("ix_sharing_applications_status", "sharing_applications", ["status"])
    op.create_table(
        "sharing_disputes",
        _id("id"),
        sa.Column("application_id", sa.Integer(), sa.ForeignKey("sharing_applications.id"), nullable=False),
        sa.Column("opened_by", sa.String(100), nullable=False),
        sa.Column("grounds", sa.Text(), nullable=False),
        sa.Column("opened_at", WHEN, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=True),
        sa.Column("approved_items", sa.JSON(), nullable=True),
        sa.Column("conclusion", sa.Text(), nullable=True),
        sa.Column("concluded_by", sa.String(100), nullable=True),
        sa.Column("concluded_at", WHEN, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_sharing_disputes_application_id", "sharing_disputes", ["application_id"])
    op.create_table(
        "secrecy_agreements",
        _id("id"),
        sa.Column("number", sa.String(40), nullable=False),
        sa.Column("resource_id", sa.Integer(), sa.ForeignKey("resources.id"), nullable=False),
        sa.Column("provider_agency_id", sa.Integer(), sa.ForeignKey("agencies.id"), nullable=False),
        sa.Column("consumer_agency_id", sa.Integer(), sa.ForeignKey("agencies.id"), nullable=False),
        sa.Column("parties", sa.JSON(), nullable=False),
        sa.Column("signed_on", sa.Date(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=False),
        sa.Column("scan_path", sa.Text(), nullable=False),
        sa.Column("scan_sha256", sa.String(64), nullable=False),
        sa.Column("recorded_by", sa.String(100), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("revoked_at", WHEN, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("number"),
    )
    op.create_index("ix_secrecy_agreements_resource_id", "secrecy_agreements", ["resource_id"])
    op.create_index("ix_secrecy_agreements_consumer_agency_id", "secrecy_agreements", ["consumer_agency_id"])
    op.create_table(
        "grants",
        _id("id"),
        sa.Column("resource_id", sa.Integer(), sa.ForeignKey("resources.id"), nullable=False),
        sa.Column("agency_id", sa.Integer(), sa.ForeignKey("agencies.id"), nullable=False),
        sa.Column("origin", sa.String(20), nullable=False),
        sa.Column("application_id", sa.Integer(), sa.ForeignKey("sharing_applications.id"), nullable=True),
        sa.Column("columns", sa.JSON(), nullable=True),
        sa.Column("row_filter", sa.JSON(), nullable=True),
        sa.Column("unmask", sa.Boolean(), nullable=False),
        sa.Column("external_use", sa.Boolean(), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("expires_at", WHEN, nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("activated_at", WHEN, nullable=True),
        sa.Column("revoked_at", WHEN, nullable=True),
        sa.Column("revoked_by", sa.String(100), nullable=True),
        sa.Column("revoke_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_grants_resource_id", "grants", ["resource_id"])
    op.create_index("ix_grants_agency_id", "grants", ["agency_id"])
    op.create_index("ix_grants_status", "grants", ["status"])
    op.create_table(
        "sharing_inbox",
        _id("id"),
        sa.Column("agency_id", sa.Integer(), sa.ForeignKey("agencies.id"), nullable=True),
        sa.Column("role", sa.String(30), nullable=True),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("application_id", sa.Integer(), sa.ForeignKey("sharing_applications.id"), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_sharing_inbox_agency_id", "sharing_inbox", ["agency_id"])
    # Existing active subscriptions keep working: each becomes a grant on every column.
    op.execute(
        "INSERT INTO grants (resource_id, agency_id, origin, columns, row_filter, unmask, external_use, purpose, "
        "status, created_at, activated_at) "
        "SELECT resource_id, agency_id, 'subscription', NULL, NULL, false, false, purpose, 'active', created_at, "
        "created_at FROM subscriptions WHERE status = 'active'"
    )


def downgrade() -> None:
    op.drop_index("ix_sharing_inbox_agency_id", table_name="sharing_inbox")
    op.drop_table("sharing_inbox")
    for index in ("ix_grants_status", "ix_grants_agency_id", "ix_grants_resource_id"):
        op.drop_index(index, table_name="grants")
    op.drop_table("grants")
    op.drop_index("ix_secrecy_agreements_consumer_agency_id", table_name="secrecy_agreements")
    op.drop_index("ix_secrecy_agreements_resource_id", table_name="secrecy_agreements")
    op.drop_table("secrecy_agreements")
    op.drop_index("ix_sharing_disputes_application_id", table_name="sharing_disputes")
    op.drop_table("sharing_disputes")
    for index in ("ix_sharing_applications_status", "ix_sharing_applications_consumer_agency_id",
                  "ix_sharing_applications_resource_id"):
        op.drop_index(index, table_name="sharing_applications")
    op.drop_table("sharing_applications")
    op.drop_table("resource_sensitivity")
    op.drop_index("ix_user_sessions_user_id", table_name="user_sessions")
    op.drop_table("user_sessions")
    op.drop_index("ix_users_agency_id", table_name="users")
    op.drop_table("users")
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("seal")
