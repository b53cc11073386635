"""catalogue search index and registered interface services (article 15)

Revision ID: 0012_catalog_search
Revises: 0001
Create Date: 2026-11-25 13:00:00

Hand-written; a branch of its own (label "catalog_search"). The tables refer to resources and agencies only
(revision ids are plain integers), so the branch does not depend on 0010_catalog's migration order.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_catalog_search"
down_revision = "0001"
branch_labels = ("catalog_search",)
depends_on = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "catalog_search_index",
        sa.Column("resource_id", sa.Integer(), sa.ForeignKey("resources.id"), nullable=False),
        sa.Column("revision_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=60), nullable=False),
        sa.Column("agency_id", sa.Integer(), sa.ForeignKey("agencies.id"), nullable=False),
        sa.Column("classification", sa.String(length=30), nullable=False),
        sa.Column("sharing_type", sa.String(length=20), nullable=False),
        sa.Column("sharing_modes", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("resource_id"),
    )
    op.create_index("ix_catalog_search_index_code", "catalog_search_index", ["code"])
    op.create_index("ix_catalog_search_index_agency_id", "catalog_search_index", ["agency_id"])
    op.create_index("ix_catalog_search_index_classification", "catalog_search_index", ["classification"])
    op.create_table(
        "interface_services",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("resource_id", sa.Integer(), sa.ForeignKey("resources.id"), nullable=False),
        sa.Column("code", sa.String(length=60), nullable=False),
        sa.Column("revision_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("invocation", sa.Text(), nullable=False),
        sa.Column("openapi", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("registered_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("resource_id", name="uq_interface_services_resource_id"),
        sa.UniqueConstraint("code", name="uq_interface_services_code"),
    )


def downgrade() -> None:
    op.drop_table("interface_services")
    op.drop_index("ix_catalog_search_index_classification", table_name="catalog_search_index")
    op.drop_index("ix_catalog_search_index_agency_id", table_name="catalog_search_index")
    op.drop_index("ix_catalog_search_index_code", table_name="catalog_search_index")
    op.drop_table("catalog_search_index")
