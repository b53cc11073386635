"""catalogue system: people and designations, entry revisions and review, confidentiality reviews, update
obligations, yearly reconfirmations; resources.catalog_status

Revision ID: 0010_catalog
Revises: 0001
Create Date: 2026-11-25 12:50:00

Hand-written; a branch of its own (label "catalog") so it merges with the other issues' migrations.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_catalog"
down_revision = "0001"
branch_labels = ("catalog",)
depends_on = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("resources", sa.Column("catalog_status", sa.String(length=20), nullable=False,
                                         server_default="registered"))
    op.create_table(
        "people",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agency_id", sa.Integer(), sa.ForeignKey("agencies.id"), nullable=False),
        sa.Column("account", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("phone", sa.String(length=40), nullable=False),
        sa.Column("email", sa.String(length=200), nullable=False),
        sa.Column("office", sa.String(length=200), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account", name="uq_people_account"),
    )
    op.create_index("ix_people_agency_id", "people", ["agency_id"])
    op.create_table(
        "designations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), sa.ForeignKey("people.id"), nullable=False),
        sa.Column("agency_id", sa.Integer(), sa.ForeignKey("agencies.id"), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_designations_person_id", "designations", ["person_id"])
    op.create_index("ix_designations_agency_id", "designations", ["agency_id"])
    op.create_table(
        "catalog_revisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("resource_id", sa.Integer(), sa.ForeignKey("resources.id"), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("author", sa.String(length=100), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("submitted_by", sa.String(length=100), nullable=True),
        sa.Column("submitted_at", WHEN, nullable=True),
        sa.Column("reviewed_by", sa.String(length=100), nullable=True),
        sa.Column("reviewed_at", WHEN, nullable=True),
        sa.Column("review_comments", sa.JSON(), nullable=False),
        sa.Column("published_at", WHEN, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("resource_id", "number", name="uq_catalog_revisions_resource_number"),
    )
    op.create_index("ix_catalog_revisions_resource_id", "catalog_revisions", ["resource_id"])
    op.create_index("ix_catalog_revisions_status", "catalog_revisions", ["status"])
    op.create_table(
        "confidentiality_reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("revision_id", sa.Integer(), sa.ForeignKey("catalog_revisions.id"), nullable=False),
        sa.Column("reviewer", sa.String(length=100), nullable=False),
        sa.Column("reviewed_on", sa.Date(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_confidentiality_reviews_revision_id", "confidentiality_reviews", ["revision_id"])
    op.create_table(
        "update_obligations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("resource_id", sa.Integer(), sa.ForeignKey("resources.id"), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("opened_on", sa.Date(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=True),
        sa.Column("due_problem", sa.Text(), nullable=True),
        sa.Column("opened_by", sa.String(length=100), nullable=False),
        sa.Column("opened_at", WHEN, nullable=False),
        sa.Column("closed_on", sa.Date(), nullable=True),
        sa.Column("closed_by_revision_id", sa.Integer(), sa.ForeignKey("catalog_revisions.id"), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_update_obligations_resource_id", "update_obligations", ["resource_id"])
    op.create_table(
        "catalog_reconfirmations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("resource_id", sa.Integer(), sa.ForeignKey("resources.id"), nullable=False),
        sa.Column("revision_id", sa.Integer(), sa.ForeignKey("catalog_revisions.id"), nullable=False),
        sa.Column("confirmed_on", sa.Date(), nullable=False),
        sa.Column("confirmed_by", sa.String(length=100), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_catalog_reconfirmations_resource_id", "catalog_reconfirmations", ["resource_id"])


def downgrade() -> None:
    op.drop_index("ix_catalog_reconfirmations_resource_id", table_name="catalog_reconfirmations")
    op.drop_table("catalog_reconfirmations")
    op.drop_index("ix_update_obligations_resource_id", table_name="update_obligations")
    op.drop_table("update_obligations")
    op.drop_index("ix_confidentiality_reviews_revision_id", table_name="confidentiality_reviews")
    op.drop_table("confidentiality_reviews")
    op.drop_index("ix_catalog_revisions_status", table_name="catalog_revisions")
    op.drop_index("ix_catalog_revisions_resource_id", table_name="catalog_revisions")
    op.drop_table("catalog_revisions")
    op.drop_index("ix_designations_agency_id", table_name="designations")
    op.drop_index("ix_designations_person_id", table_name="designations")
    op.drop_table("designations")
    op.drop_index("ix_people_agency_id", table_name="people")
    op.drop_table("people")
    # Plain ALTER (SQLite >= 3.35, PostgreSQL): recreating `resources` in batch mode would clash with the
    # other branches' tables that reference it.
    op.execute("ALTER TABLE resources DROP COLUMN catalog_status")
