"""What a supervisor reads of the supervision commands, run as a person would: `govshare supervision daily`
printed a raw Python dict; `--case` took any number (a case article 23 does not have listed nothing, or, as 0,
everything); the supervision DAG's sharing check failed in English alone. On an ordinary Wednesday in 2026Q4."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.catalog_helpers import (
    catalog_home_fixture,  # noqa: F401 - the catalog_home fixture
    new_entry,
    publish,
    setup_people,
)
from tests.helpers import PROVIDER

SEEN_ON = date(2026, 11, 25)  # Wednesday, in 2026Q4


@pytest.fixture
def seen_later() -> Iterator[None]:
    from tests.clock import on, pinned

    with pinned(on(SEEN_ON)):
        yield


def _cli(*args: str):  # noqa: ANN202
    from cli.main import app

    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def test_the_daily_run_prints_a_summary_a_person_reads(catalog_home: Path, seen_later: None) -> None:
    from core.errors import has_chinese, has_english
    from registry.db import session_scope

    with session_scope() as session:
        setup_people(session)
        publish(session, new_entry(session, classification="101001", name="企业基本信息"), on=date(2026, 11, 2))

    done = _cli("supervision", "daily", "--as-of", SEEN_ON.isoformat())
    assert done.exit_code == 0, done.output
    assert "{" not in done.output and "'" not in done.output, done.output  # no Python dict
    lines = [line for line in done.output.splitlines() if line.strip()]
    assert lines[0].startswith("监督日常运行 2026-11-25"), done.output
    for line in lines:  # each line in Chinese first, the English after
        chinese, _, english = line.partition(" / ")
        assert has_chinese(chinese) and has_english(english), line
    flat = " ".join(done.output.split())
    assert "评估：2026Q4" in flat and "违规情形：发现" in flat and "共享核查" in flat, done.output


@pytest.mark.parametrize("args", [["violation", "list", "--case", "9"], ["violation", "list", "--case", "0"],
                                  ["violation", "record", "--case", "7", "--agency", PROVIDER[0],
                                   "--summary", "将共享数据提供给第三方"]])
def test_a_case_article_23_does_not_have_is_refused_naming_the_cases(catalog_home: Path, args: list[str]) -> None:
    from registry.supervision.models import VIOLATION_CASES

    done = _cli(*args)
    assert done.exit_code == 2, done.output
    flat = " ".join(done.output.split())
    assert "Traceback" not in done.output and "--case" in flat, done.output
    for case, label in VIOLATION_CASES.items():
        assert f"{case} {label}" in flat, done.output


def test_the_daily_sharing_check_fails_in_chinese_with_the_english(hub_home: Path) -> None:
    """The DAG's task (dags/govshare_supervision.py) raised "grants in force without a basis: [], rows edited
    outside the hub: ['designations:1']": English alone, and Python lists."""
    from datetime import timedelta

    from core import clock
    from core.errors import FatalError, has_chinese, has_english
    from registry.db import session_scope
    from registry.people.persons import add_person, designate, end_designation
    from registry.supervision.daily import check_sharing
    from tests.helpers import ensure_agency
    from tests.test_trust_attacks import _registry_sql

    with session_scope() as session:
        ensure_agency(session, *PROVIDER)
        add_person(session, agency=PROVIDER[0], account="li", name="李四", actor="test")
        designate(session, account="li", role="reviewer", valid_from=clock.today() - timedelta(days=30), actor="test")
        end_designation(session, account="li", role="reviewer", actor="test")
    assert check_sharing() == {"baseless_grants": [], "edited_rows": [], "unlisted_columns": {}}

    _registry_sql("UPDATE designations SET valid_to = NULL")  # reopened outside the hub
    with pytest.raises(FatalError) as raised:
        check_sharing()
    message = str(raised.value)
    assert has_chinese(message.split(" / ")[0]) and has_english(message), message
    assert "designations:1" in message and "govshare sharing check" in message and "[" not in message, message
