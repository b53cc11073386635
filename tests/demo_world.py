"""The demo's own story (cli/demo.py `stage_story`: agencies, named web accounts, both catalogue entries
published through review, masked browsing, a pending application) in a fresh demo home, without Airflow: what a
new user finds after `make demo`, for the PDF and browser tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

STORY_ROWS = 120


@pytest.fixture
def story(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    from cli.demo import stage_story
    from tests.conftest import _reset_caches

    monkeypatch.setenv("GOVSHARE_HOME", str(tmp_path / "demo-home"))
    monkeypatch.setenv("GOVSHARE_DEMO", "1")
    for name in ("GOVSHARE_DATABASE_URL", "GOVSHARE_STORAGE", "GOVSHARE_SECRET_KEY", "GOVSHARE_CALENDAR_DIR"):
        monkeypatch.delenv(name, raising=False)
    _reset_caches()
    yield stage_story(rows=STORY_ROWS)
    _reset_caches()
