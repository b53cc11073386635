"""Shared fixtures: the pinned clock, an isolated hub home per test, and scratch PostgreSQL databases."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.s3_server import BACKENDS, s3_server  # noqa: F401 - the session's object store, a fixture
from tests.services import require_postgres

# The suite never runs on the machine's day: it runs on an ordinary working Wednesday, or on the day
# GOVSHARE_TEST_DAY names (YYYY-MM-DD at 10:00 Beijing time, or a full ISO instant), which is how CI re-runs the
# date-sensitive tests on the days that broke them before (`make test-days`). A test that means a particular day
# pins it itself with time_machine.travel, inside this pin.
DEFAULT_TEST_INSTANT = "2026-06-10T10:00:00+08:00"
_PIN = pytest.StashKey["object"]()


def _pinned_instant() -> datetime:
    raw = os.environ.get("GOVSHARE_TEST_DAY", "").strip() or DEFAULT_TEST_INSTANT
    instant = datetime.fromisoformat(raw if "T" in raw else f"{raw}T10:00:00+08:00")
    if instant.tzinfo is None:
        raise pytest.UsageError(f"GOVSHARE_TEST_DAY={raw!r} needs a day (YYYY-MM-DD) or an instant with its offset")
    return instant


def pytest_configure(config: pytest.Config) -> None:
    import core.clock  # noqa: F401 - imported before the shift exists: this process follows time-machine
    from tests.clock import Pin

    config.stash[_PIN] = Pin(_pinned_instant())


def pytest_unconfigure(config: pytest.Config) -> None:
    if (pin := config.stash.get(_PIN, None)) is not None:
        pin.stop()


def pytest_report_header(config: pytest.Config) -> str:
    return f"govshare clock pinned at {_pinned_instant().isoformat()} (GOVSHARE_TEST_DAY to change it)"



@pytest.fixture
def cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheap password hashes for tests that log people in: each hash carries its cost, so login still verifies."""
    monkeypatch.setattr("registry.people.users.SCRYPT_N", 2**10)


@pytest.fixture
def ordinary_day() -> Iterator[datetime]:
    """For a test that means an ordinary working day, whatever day GOVSHARE_TEST_DAY names for the run."""
    from tests.clock import pinned

    with pinned(datetime.fromisoformat(DEFAULT_TEST_INSTANT)) as instant:
        yield instant


def _reset_caches() -> None:
    from core.settings import reset_settings
    from registry.audit.probes import forget
    from registry.db import dispose_engines

    reset_settings()
    dispose_engines()
    forget()  # another registry: no refusal of an earlier test's is folded into this one's records


STORAGE_VARIABLES = ("GOVSHARE_STORAGE", "GOVSHARE_STORAGE_ENDPOINT", "GOVSHARE_STORAGE_ACCESS_KEY",
                     "GOVSHARE_STORAGE_SECRET_KEY", "GOVSHARE_STORAGE_REGION", "GOVSHARE_STORAGE_CACHE")


@pytest.fixture(params=BACKENDS)
def storage_backend(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """The storage a test runs on, each in turn: the local folder, then an S3 object store (tests/s3_server.py).
    A module opts in with ``pytestmark = pytest.mark.usefixtures("storage_backend")``; the hub fixtures apply it."""
    if request.param == "local":
        yield {}
        return
    server = request.getfixturevalue("s3_server")
    bucket = server.new_bucket()
    yield server.environment(bucket)
    server.remove_bucket(bucket)  # the server keeps objects in memory


def _apply_storage(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in STORAGE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    if "storage_backend" in request.fixturenames:
        for name, value in request.getfixturevalue("storage_backend").items():
            monkeypatch.setenv(name, value)


@pytest.fixture
def hub_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A fresh GOVSHARE_HOME with a migrated SQLite registry; demo mode so the placeholder key is accepted."""
    home = tmp_path / "var"
    monkeypatch.setenv("GOVSHARE_HOME", str(home))
    monkeypatch.setenv("GOVSHARE_DEMO", "1")
    for name in ("GOVSHARE_DATABASE_URL", "GOVSHARE_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    _apply_storage(request, monkeypatch)
    _reset_caches()
    from registry.migrate import upgrade

    upgrade()
    yield home
    _reset_caches()


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A scratch PostgreSQL database (libpq URL), dropped afterwards."""
    import psycopg2

    admin_dsn = require_postgres()
    name = f"govshare_t_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(admin_dsn)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = admin_dsn.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()


@pytest.fixture
def pg_hub_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_database: str,
                request: pytest.FixtureRequest) -> Iterator[Path]:
    """Like hub_home, but the registry lives in a scratch PostgreSQL database."""
    home = tmp_path / "var"
    monkeypatch.setenv("GOVSHARE_HOME", str(home))
    monkeypatch.setenv("GOVSHARE_DEMO", "1")
    _apply_storage(request, monkeypatch)
    monkeypatch.setenv("GOVSHARE_DATABASE_URL", pg_database.replace("postgresql://", "postgresql+psycopg2://", 1))
    _reset_caches()
    from registry.migrate import upgrade

    upgrade()
    yield home
    _reset_caches()
