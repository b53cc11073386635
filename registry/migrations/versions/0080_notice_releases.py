"""a withheld notice is released as a new feed entry (notices.releases_id)

Revision ID: 0080_notice_releases
Revises: 0075_cursor_files
Create Date: 2026-12-07 12:00:00

A withheld notice released once its subscriber held a live grant again (补发通知) was changed in place: same id,
so the same place in the pull feed, whose cursor is the id. A consumer that had read the withheld entry already
(its cursor past it) never saw the released body with its ``catch_up``. The release is now a new entry at the
end of the feed, ``releases_id`` naming the withheld notice it releases; that one is marked ``released``. So a
subscriber may have two rows for a version: the unique pair (subscription, version) becomes a partial unique
index over the versions' own notices (``releases_id IS NULL``), and ``releases_id`` is unique (one release
per withheld notice).

Notices released in place before this revision and read from the feed only (status ``feed``, ``catch_up`` in
the body) get their release entry now, so a consumer whose cursor had passed them hears of them; one that read
them already gets an entry naming the one it has. Those sent by webhook were received under their own id.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from core import clock

revision = "0080_notice_releases"
down_revision = "0075_cursor_files"
branch_labels = None
depends_on = None

NOTICE_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
OWN_NOTICE = sa.text("releases_id IS NULL")
CARRIED = ("subscription_id", "version_id", "resource_id", "agency_id", "resource_code", "version_number")
DELIVERY_STATE = ("payload", "status", "attempts", "next_attempt_at", "last_error", "delivered_at")


def _notices() -> sa.Table:
    return sa.table("notices", sa.column("id", NOTICE_ID), sa.column("releases_id", NOTICE_ID),
                    *(sa.column(name, sa.Integer) for name in CARRIED[:4]), sa.column("resource_code", sa.String),
                    sa.column("version_number", sa.Integer), sa.column("payload", sa.JSON),
                    sa.column("status", sa.String), sa.column("attempts", sa.Integer),
                    sa.column("next_attempt_at", sa.DateTime(timezone=True)), sa.column("last_error", sa.Text),
                    sa.column("created_at", sa.DateTime(timezone=True)),
                    sa.column("delivered_at", sa.DateTime(timezone=True)))


def upgrade() -> None:
    with op.batch_alter_table("notices") as batch:
        batch.add_column(sa.Column("releases_id", NOTICE_ID, nullable=True))
        batch.create_foreign_key("fk_notices_releases_id", "notices", ["releases_id"], ["id"])
        batch.create_unique_constraint("uq_notices_releases_id", ["releases_id"])
        batch.drop_constraint("uq_notices_subscription_version", type_="unique")
    op.create_index("uq_notices_subscription_version", "notices", ["subscription_id", "version_id"], unique=True,
                    sqlite_where=OWN_NOTICE, postgresql_where=OWN_NOTICE)
    _append_release_entries()


def _append_release_entries() -> None:
    notices = _notices()
    connection = op.get_bind()
    released_in_place = [row for row in connection.execute(
        sa.select(notices).where(notices.c.status == "feed").order_by(notices.c.id)).mappings()
        if "catch_up" in (row["payload"] or {})]
    now = clock.now()  # the one clock, as every notice's created_at (the model's default)
    for row in released_in_place:
        payload = {**row["payload"], "catch_up": {**row["payload"]["catch_up"], "releases": str(row["id"])}}
        entry = connection.execute(notices.insert().values(
            **{name: row[name] for name in CARRIED}, releases_id=row["id"], payload=payload, status="feed",
            attempts=0, created_at=now).returning(notices.c.id)).scalar_one()
        connection.execute(notices.update().where(notices.c.id == row["id"]).values(
            status="released",
            last_error=f"共享授权恢复后已补发为更新通知（编号{entry}），附 catch_up（未通知的版本及其变更）"))


def downgrade() -> None:
    # Back to releases in place: each release entry's body and delivery state go to the notice it released.
    # Newest first, re-read: a release entry withheld and released again hands its successor's state on.
    notices = _notices()
    connection = op.get_bind()
    entry_ids = connection.scalars(sa.select(notices.c.id).where(notices.c.releases_id.is_not(None))
                                   .order_by(notices.c.id.desc())).all()
    for entry_id in entry_ids:
        entry = connection.execute(sa.select(notices).where(notices.c.id == entry_id)).mappings().one()
        connection.execute(notices.delete().where(notices.c.id == entry_id))
        connection.execute(notices.update().where(notices.c.id == entry["releases_id"]).values(
            **{name: entry[name] for name in DELIVERY_STATE}))
    op.drop_index("uq_notices_subscription_version", table_name="notices")
    with op.batch_alter_table("notices") as batch:
        batch.drop_constraint("uq_notices_releases_id", type_="unique")
        batch.drop_constraint("fk_notices_releases_id", type_="foreignkey")
        batch.drop_column("releases_id")
        batch.create_unique_constraint("uq_notices_subscription_version", ["subscription_id", "version_id"])
