"""a user's lockout (failed sign-ins, locked until) sealed with the rest of the account

Revision ID: 0100_user_lockout_seal
Revises: 0095_row_seals
Create Date: 2026-12-07 23:00:00

An UPDATE clearing `failed_logins` and `locked_until` lifted the brute-force lockout without breaking the user's
seal, so guessing went on. Both are sealed now (registry/seals.py); the users the hub wrote are sealed again with
them, and a user already edited keeps its broken seal (registry/seals.py: reseal).
"""

from __future__ import annotations

from alembic import op

revision = "0100_user_lockout_seal"
down_revision = "0095_row_seals"
branch_labels = None
depends_on = None

BEFORE = ("id", "username", "agency_id", "roles", "password_hash", "active")
AFTER = (*BEFORE, "failed_logins", "locked_until")


def _users():  # noqa: ANN202 - the users Table
    from registry.orm import Base

    import registry.people.models  # noqa: F401 - the table's metadata

    return Base.metadata.tables["users"]


def upgrade() -> None:
    from registry.seals import reseal

    reseal(op.get_bind(), _users(), before=BEFORE, after=AFTER)


def downgrade() -> None:
    from registry.seals import reseal

    reseal(op.get_bind(), _users(), before=AFTER, after=BEFORE)
