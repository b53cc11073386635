"""Alembic environment: the URL comes from the caller (registry.migrate) or from the settings."""

from __future__ import annotations

from alembic import context

import registry.models  # noqa: F401 - every capability's tables, so the metadata is complete
from registry.db import migration_engine
from registry.orm import Base

config = context.config
url = config.get_main_option("sqlalchemy.url")
if not url:
    from core.settings import get_settings

    url = get_settings().database_url


def run_offline() -> None:
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        engine = migration_engine(url)
        with engine.connect() as connection:
            _run(connection)
    else:
        _run(connection)


def _run(connection) -> None:  # noqa: ANN001
    # Batch mode lets the same migrations alter tables on SQLite, which has no ALTER COLUMN.
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True,
                      compare_type=True)
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
