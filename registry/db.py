"""Engines and sessions for the registry database (SQLite by default, PostgreSQL in production)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import NullPool
from sqlalchemy.orm import Session, sessionmaker

from core.settings import get_settings


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001 - DBAPI hook signature
    cursor = dbapi_connection.cursor()
    # WAL lets the API read while a sync publishes; foreign keys are off by default in SQLite.
    cursor.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL syncs at checkpoints, not at every commit: a commit stays atomic and the file
    # uncorrupted; a power cut may undo the last commits, whole (a version with its cursor and audit event,
    # whose folder housekeeping then removes). Each FULL commit waited on the disk behind a sync's data
    # writes, tens of milliseconds per commit. PostgreSQL, the production registry, keeps its own setting.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


_ENGINES: dict[str, Engine] = {}


def engine_for(url: str) -> Engine:
    """One engine per database URL for the life of the process."""
    if url not in _ENGINES:
        _ENGINES[url] = _create(url)
    return _ENGINES[url]


def dispose_engines() -> None:
    """Close every pooled connection (tests, and a process that changes its settings)."""
    for engine in _ENGINES.values():
        engine.dispose()
    _ENGINES.clear()


def _sqlite_folder(url: str) -> None:
    path = url.split("///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def _create(url: str) -> Engine:
    try:
        return _create_engine(url)
    except (ArgumentError, ImportError) as exc:  # not a URL, an unknown database kind or a driver not installed
        from core.errors import ConfigError

        raise ConfigError(zh=f"GOVSHARE_DATABASE_URL 无法使用：{exc}；应为 sqlite:///路径 或 "
                             "postgresql+psycopg2://用户@主机/库名",
                          en=f"GOVSHARE_DATABASE_URL cannot be used: {exc}; expected sqlite:///PATH or "
                             "postgresql+psycopg2://USER@HOST/DBNAME") from exc


def _create_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        _sqlite_folder(url)
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def migration_engine(url: str) -> Engine:
    """The engine migrations run on: on SQLite one whose transactions hold DDL too. pysqlite opens a transaction
    only before INSERT, UPDATE or DELETE, so a migration's CREATE TABLE committed by itself, and a migration that
    failed after it left the schema half changed, its revision unrecorded, and every later `govshare init`
    failing on a table that already exists. Here the driver starts no transaction of its own and each one
    SQLAlchemy begins is an explicit BEGIN; its connections are not pooled (the application's keep theirs)."""
    if not url.startswith("sqlite"):
        return engine_for(url)
    _sqlite_folder(url)
    engine = create_engine(url, poolclass=NullPool, connect_args={"check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, record) -> None:  # noqa: ANN001 - DBAPI hook signature
        _sqlite_pragmas(dbapi_connection, record)
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(connection) -> None:  # noqa: ANN001 - sqlalchemy Connection
        connection.exec_driver_sql("BEGIN")

    return engine


def get_engine() -> Engine:
    return engine_for(get_settings().database_url)


def session_factory() -> sessionmaker[Session]:
    return sessionmaker(get_engine(), expire_on_commit=False)


@contextmanager
def session_scope() -> Iterator[Session]:
    """One transaction: committed when the block ends, rolled back if it raises."""
    session = session_factory()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
