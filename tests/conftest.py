"""Shared fixtures: an isolated hub home per test, and scratch PostgreSQL databases."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import require_postgres


def _reset_caches() -> None:
    from core.settings import reset_settings
    from registry.db import dispose_engines

    reset_settings()
    dispose_engines()


def _schedule_for_next_year() -> None:
    """Statutory deadlines reach up to a few weeks ahead (10 working days), so from mid-December a test that
    applies "today" needs next year's working-day schedule, which the bundled library lacks until a release
    after the State Council's notice. Then the repository's example schedule of that year is installed in
    the hub's calendar folder as test data, so the suite does not depend on the day it runs. Tests of the
    missing-year behaviour use a calendar folder of their own (tests/catalog_helpers.py)."""
    import shutil
    from datetime import date

    from core.settings import get_settings
    from registry.workdays import library_years

    year = date.today().year + 1
    example = Path(__file__).resolve().parents[1] / "registry" / "calendars" / f"{year}.example.json"
    if year not in library_years() and example.is_file():
        folder = get_settings().calendar_dir
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(example, folder / f"{year}.json")


@pytest.fixture
def hub_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh GOVSHARE_HOME with a migrated SQLite registry; demo mode so the placeholder key is accepted."""
    home = tmp_path / "var"
    monkeypatch.setenv("GOVSHARE_HOME", str(home))
    monkeypatch.setenv("GOVSHARE_DEMO", "1")
    for name in ("GOVSHARE_DATABASE_URL", "GOVSHARE_STORAGE", "GOVSHARE_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    _reset_caches()
    _schedule_for_next_year()
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
def pg_hub_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_database: str) -> Iterator[Path]:
    """Like hub_home, but the registry lives in a scratch PostgreSQL database."""
    home = tmp_path / "var"
    monkeypatch.setenv("GOVSHARE_HOME", str(home))
    monkeypatch.setenv("GOVSHARE_DEMO", "1")
    monkeypatch.setenv("GOVSHARE_DATABASE_URL", pg_database.replace("postgresql://", "postgresql+psycopg2://", 1))
    _reset_caches()
    _schedule_for_next_year()
    from registry.migrate import upgrade

    upgrade()
    yield home
    _reset_caches()
