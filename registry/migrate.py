"""Create or migrate the registry schema with Alembic (`govshare init`)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

from core.settings import get_settings
from registry.db import engine_for

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", (url or get_settings().database_url).replace("%", "%%"))
    return config


def upgrade(*, url: str | None = None, revision: str = "heads") -> None:
    """Migrate to ``revision``; all of it or, on a failure, none of it (registry.db.migration_engine). The
    secret key is checked first: a migration seals the audit log's markers with it."""
    get_settings().require_secret()
    command.upgrade(alembic_config(url), revision)


def downgrade(*, url: str | None = None, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


def current_revision(*, url: str | None = None) -> str | None:
    """The applied revision(s), comma separated (several while feature branches are not merged)."""
    with engine_for(url or get_settings().database_url).connect() as connection:
        heads = MigrationContext.configure(connection).get_current_heads()
    return ",".join(sorted(heads)) or None
