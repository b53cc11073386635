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


def test_a_name_on_a_line_of_its_own_is_shown_escaped(hub_home: Path, wide: None) -> None:
    """Not only tables: `agency add`, `person add` and `person designate` each say the name back on one line."""
    from cli.main import app

    agency_code = "113100000024200171"
    runner = CliRunner()
    said = [runner.invoke(app, ["agency", "add", agency_code, HOSTILE]),
            runner.invoke(app, ["person", "add", "evil", HOSTILE, "--agency", agency_code]),
            runner.invoke(app, ["person", "designate", "evil", "reviewer", "--from", "2025-01-01"])]

    for result in said:
        text = _console_text(result)
        assert result.exit_code == 0, text
        assert "\x1b" not in text and "\u202e" not in text, text
        assert SHOWN in text, text  # [red] as typed, not red; ESC and the newline as their escapes


def test_validate_shows_the_value_as_typed_and_the_verdict_in_its_colour_not_as_markup(tmp_path: Path,
                                                                                        wide: None) -> None:
    """`govshare validate`: a value typed or read from a file is text; the verdict (无效) is coloured, and its
    style was once escaped with the file's text, so the file check printed `[bold red]无效[/]` literally."""
    from cli.identifier_cmds import app

    typed = CliRunner().invoke(app, ["uscc", "[red]x[/red]\x1b[2J"])
    assert typed.exit_code == 1, typed.output
    assert "[red]x[/red]\\x1b[2J" in typed.output and "\x1b" not in typed.output

    path = tmp_path / "企业.csv"
    path.write_text("统一社会信用代码\n[red]x[/red]\n", encoding="utf-8")
    checked = CliRunner().invoke(app, ["file", str(path), "--column", "统一社会信用代码", "--kind", "uscc"])
    assert checked.exit_code == 1, checked.output
    assert "[red]x[/red]" in checked.output and "无效" in checked.output and "[bold red]" not in checked.output
