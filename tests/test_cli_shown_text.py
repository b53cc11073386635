"""Names and values on the console are shown, never acted on (命令行中的名称只显示、不执行): a person's name, an
office or a source file's name may carry rich markup ([red], [link=...]), a terminal escape sequence (ESC [2J
clears the screen, ESC ]8 makes a link), a newline that fakes a table row or a bidirectional override. Tables and
one-line errors show them as text and escapes."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.helpers import PROVIDER, ensure_agency, register_resource

HOSTILE = "[red]张三[/red]\x1b[2J\x1b]8;;http://evil.example\x1b\\点我\x1b]8;;\x1b\\\n伪造行\u202eabc"
SHOWN = "[red]张三[/red]\\x1b[2J\\x1b]8;;http://evil.example\\x1b\\点我\\x1b]8;;\\x1b\\\\n伪造行\\u202eabc"


def _console_text(result) -> str:  # noqa: ANN001 - click's Result
    return result.output + (result.stderr if result.stderr_bytes is not None else "")


@pytest.fixture
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "1000")  # one table row per line, so a value is not wrapped


def test_a_persons_name_in_a_table_is_text_not_markup_or_terminal_sequences(hub_home: Path, wide: None) -> None:
    from cli.main import app
    from registry.db import session_scope
    from registry.people.persons import add_person, designate

    with session_scope() as session:
        ensure_agency(session, *PROVIDER)
        add_person(session, agency=PROVIDER[0], account="evil", name=HOSTILE, office="信息中心", actor="test")
        designate(session, account="evil", role="administrator", valid_from=date(2025, 1, 1), actor="test")

    result = CliRunner().invoke(app, ["person", "administrators"])

    assert result.exit_code == 0, _console_text(result)
    assert "\x1b" not in result.output and "\u202e" not in result.output
    assert SHOWN in result.output  # markup shown as typed, each control character as its escape
    assert "伪造行" not in result.output.replace(SHOWN, "")  # the newline made no row of its own


def test_a_file_name_in_an_error_is_shown_escaped(hub_home: Path, tmp_path: Path) -> None:
    from cli.main import app

    folder = tmp_path / "exchange"
    folder.mkdir()
    (folder / "人员\x1b[2J[bold]x.csv").write_text("名称\n甲\n", encoding="utf-8")
    hub = register_resource(kind="files", config={"path": str(folder), "streams": {"enterprises": {
        "pattern": "人员*.csv", "columns": [{"name": "id", "type": "integer", "header": "编号"}]}}}, cursor=None)

    result = CliRunner().invoke(app, ["sync", hub.resource_code])

    text = _console_text(result)
    assert result.exit_code == 1, text
    assert "\x1b" not in text and "人员\\x1b[2J[bold]x.csv" in text
