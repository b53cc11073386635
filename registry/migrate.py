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
    _require_made_by_init(url or get_settings().database_url)
    command.upgrade(alembic_config(url), revision)


def _require_made_by_init(url: str) -> None:
    """A database with tables but no migration record (made by another tool, restored without its
    ``alembic_version`` table): migrating it from the start fails on its first table ("already exists", which
    read as an unreachable registry); say what it is instead."""
    from sqlalchemy import inspect

    from core.errors import ConfigError

    if current_revision(url=url) is not None:
        return
    with engine_for(url).connect() as connection:
        tables = sorted(set(inspect(connection).get_table_names()) - {"alembic_version"})
    if tables:
        raise ConfigError(zh=f"登记库中已有表（{', '.join(tables[:5])}{' 等' if len(tables) > 5 else ''}）却没有迁移版本记录"
                             "（alembic_version）：它不是由 `govshare init` 建立的，或版本记录已丢失；请从备份恢复，或把 "
                             "GOVSHARE_DATABASE_URL 指向一个空库",
                          en=f"the registry database has tables ({', '.join(tables[:5])}"
                             f"{', ...' if len(tables) > 5 else ''}) but no migration record (alembic_version): "
                             "`govshare init` did not make it, or its record was lost; restore it from a backup or "
                             "point GOVSHARE_DATABASE_URL at an empty database")


def downgrade(*, url: str | None = None, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


def head_revision() -> str:
    """The revision(s) this code's migrations end at, comma separated."""
    from alembic.script import ScriptDirectory

    return ",".join(sorted(ScriptDirectory.from_config(alembic_config()).get_heads()))


def require_current(*, url: str | None = None) -> None:
    """Refuse to serve a registry that is missing, half made or older than this code (every request would fail
    on a table or column it lacks): ConfigError naming `govshare init`. An unreachable database raises the
    driver's OperationalError (retriable)."""
    from core.errors import ConfigError

    current, head = current_revision(url=url), head_revision()
    if current != head:
        raise ConfigError(zh=f"登记库结构不是最新（当前 {current or '空库'}，需要 {head}），请先运行 `govshare init`",
                          en=f"the registry database is not up to date ({current or 'empty'}, this hub needs "
                             f"{head}): run `govshare init` first")


def current_revision(*, url: str | None = None) -> str | None:
    """The applied revision(s), comma separated (several while feature branches are not merged)."""
    with engine_for(url or get_settings().database_url).connect() as connection:
        heads = MigrationContext.configure(connection).get_current_heads()
    return ",".join(sorted(heads)) or None
