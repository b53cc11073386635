"""Test access to the database servers: skip when one is unreachable, or fail if the run requires them.

    dsn = require_postgres()   # "postgresql://postgres@127.0.0.1:5432/test", or $GOVSHARE_TEST_PG_DSN
    kwargs = require_mysql()   # host, port, user, password, database: pymysql.connect(**kwargs)
    url = require_redis()      # "redis://127.0.0.1:6379/14", or $GOVSHARE_TEST_REDIS_URL

Set ``GOVSHARE_REQUIRE_SERVICES=1`` (as CI does) to turn a missing server into a failure, so a broken service
cannot pass as a run of skipped tests. Override the targets with ``GOVSHARE_TEST_PG_DSN`` (a libpq DSN/URL),
``GOVSHARE_TEST_MYSQL_URL`` (``mysql://user:password@host:port/database``) and ``GOVSHARE_TEST_REDIS_URL``
(tests that use Redis keep to their own keys and queue names in that database, and delete them afterwards).
"""

from __future__ import annotations

import functools
import os
import re
from typing import NoReturn
from urllib.parse import unquote, urlsplit

import pytest

DEFAULT_PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_MYSQL_URL = "mysql://root:@127.0.0.1:3306/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
CONNECT_TIMEOUT_SECONDS = 3


def services_required() -> bool:
    return os.environ.get("GOVSHARE_REQUIRE_SERVICES", "") == "1"


def _unavailable(reason: str) -> NoReturn:
    if services_required():
        pytest.fail(f"{reason} (GOVSHARE_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(f"{reason}; set GOVSHARE_REQUIRE_SERVICES=1 to make this a failure")


def postgres_dsn() -> str:
    return os.environ.get("GOVSHARE_TEST_PG_DSN") or DEFAULT_PG_DSN


def mysql_connect_kwargs() -> dict[str, object]:
    url = urlsplit(os.environ.get("GOVSHARE_TEST_MYSQL_URL") or DEFAULT_MYSQL_URL)
    return {
        "host": url.hostname or "127.0.0.1",
        "port": url.port or 3306,
        "user": unquote(url.username or "root"),
        "password": unquote(url.password or ""),
        "database": url.path.lstrip("/") or "test",
    }


def _without_password(dsn: str) -> str:
    """The DSN for a skip message: reasons end up in CI logs, passwords must not."""
    if "://" not in dsn:
        return re.sub(r"password\s*=\s*\S+", "password=***", dsn)
    url = urlsplit(dsn)
    if url.password is None:
        return dsn
    return url._replace(netloc=url.netloc.replace(f":{url.password}@", ":***@")).geturl()


# probed once per test session: a down server would otherwise cost a connect timeout in every test
@functools.cache
def _postgres_problem(dsn: str) -> str | None:
    import psycopg2

    try:
        psycopg2.connect(dsn, connect_timeout=CONNECT_TIMEOUT_SECONDS).close()
    except psycopg2.Error as error:
        return f"PostgreSQL at {_without_password(dsn)} is not reachable: {' '.join(str(error).split())}"
    return None


@functools.cache
def _mysql_problem(host: str, port: int, user: str, password: str, database: str) -> str | None:
    import pymysql

    try:
        pymysql.connect(host=host, port=port, user=user, password=password, database=database,
                        connect_timeout=CONNECT_TIMEOUT_SECONDS).close()
    except pymysql.MySQLError as error:
        return f"MySQL/MariaDB at {user}@{host}:{port}/{database} is not reachable: {error}"
    return None


def require_postgres() -> str:
    """The test PostgreSQL DSN, once a connection to it succeeded; otherwise skip (or fail) the test."""
    dsn = postgres_dsn()
    if problem := _postgres_problem(dsn):
        _unavailable(problem)
    return dsn


def require_mysql() -> dict[str, object]:
    """pymysql connection kwargs (host, port, user, password, database) for a reachable server."""
    kwargs = mysql_connect_kwargs()
    if problem := _mysql_problem(**kwargs):  # type: ignore[arg-type]
        _unavailable(problem)
    return kwargs


@functools.cache
def _redis_problem(url: str) -> str | None:
    try:
        import redis
    except ImportError as error:
        return f"the redis client is not installed: {error}"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT_SECONDS).ping()
    except redis.RedisError as error:
        return f"Redis at {_without_password(url)} is not reachable: {error}"
    return None


def require_redis() -> str:
    """The test Redis URL (with its database number), once a PING answered; otherwise skip (or fail)."""
    url = os.environ.get("GOVSHARE_TEST_REDIS_URL") or DEFAULT_REDIS_URL
    if problem := _redis_problem(url):
        _unavailable(problem)
    return url
