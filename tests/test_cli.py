"""The command line: every command says what it does with an example; errors are one clear line."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cli.main import app

runner = CliRunner()
COMMANDS = [
    ["init"], ["demo"], ["serve"], ["sync"], ["versions"], ["subscribe"],
    ["agency", "add"], ["agency", "list"], ["source", "add"], ["source", "check"], ["source", "list"],
    ["resource", "add"], ["resource", "list"], ["resource", "show"], ["token", "issue"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_has_an_example(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "Example" in result.output
    assert "govshare " + command[0] in result.output


def test_unknown_resource_is_one_clear_line(hub_home) -> None:  # noqa: ANN001
    result = runner.invoke(app, ["sync", "999999/0001"], env={"COLUMNS": "200"})
    assert result.exit_code == 1
    assert "no resource '999999/0001'" in result.output
    assert "Traceback" not in result.output


def test_placeholder_secret_is_refused_outside_the_demo(hub_home, monkeypatch) -> None:  # noqa: ANN001
    from core.settings import reset_settings

    monkeypatch.delenv("GOVSHARE_DEMO")
    reset_settings()
    result = runner.invoke(app, ["serve"], env={"COLUMNS": "200"})
    assert result.exit_code == 1
    assert "GOVSHARE_SECRET_KEY is still the placeholder" in result.output


def test_registration_round_trip(hub_home, tmp_path) -> None:  # noqa: ANN001
    from samples.demo_sources import HR, MARKET
    from samples.loaders import load_sqlite

    db = tmp_path / "biz.db"
    load_sqlite(db, rows=300, seed=3)
    steps = [
        ["agency", "add", MARKET.code, MARKET.name],
        ["agency", "add", HR.code, HR.name],
        ["source", "add", "biz", "--agency", MARKET.name, "--kind", "sqlite", "-o", f"path={db}"],
        ["source", "check", "biz", "--table", "enterprises"],
        ["resource", "add", "企业基本信息", "--agency", MARKET.code, "--classification", "101001",
         "--source", "biz", "--table", "enterprises", "--key", "id", "--cursor", "updated_at"],
        ["sync", "101001/0001"],
        ["versions", "101001/0001"],
    ]
    outputs = {}
    for step in steps:
        result = runner.invoke(app, step, env={"COLUMNS": "200"})
        assert result.exit_code == 0, (step, result.output)
        outputs[step[0]] = result.output
    # the run's mode as staff read it (schemas/labels.yaml run_modes), never the code
    for command in ("sync", "versions"):
        assert "全量" in outputs[command] and " full " not in outputs[command], outputs[command]
    # registered is not published: nothing is shared before the catalogue review (articles 10, 19)
    refused = runner.invoke(app, ["subscribe", "101001/0001", "--agency", HR.name, "--purpose", "核验"])
    assert refused.exit_code == 4 and "未经保密审查和审核发布" in refused.output
    publish = [
        ["person", "add", "zhang", "张三", "--agency", MARKET.name], ["person", "add", "li", "李四", "--agency", MARKET.name],
        ["person", "designate", "zhang", "cataloguer", "--from", "2025-01-01"],
        ["person", "designate", "li", "reviewer", "--from", "2025-01-01"],
        ["catalog", "edit", "101001/0001", "--as", "zhang", "--format", "database", "--abstract", "企业登记信息",
         "--item", "统一社会信用代码:字符型:uscc:uscc", "--item", "企业名称:字符型::name"],
        ["catalog", "submit", "101001/0001", "--as", "zhang"],
        ["catalog", "confidentiality", "101001/0001", "--as", "li", "--passed", "--note", "不涉密"],
        ["catalog", "review", "101001/0001", "--as", "li", "--approve"],
        ["subscribe", "101001/0001", "--agency", HR.name, "--purpose", "核验"],
    ]
    for step in publish:
        result = runner.invoke(app, step, env={"COLUMNS": "200"})
        assert result.exit_code == 0, (step, result.output)
    listed = runner.invoke(app, ["resource", "list"], env={"COLUMNS": "200"})
    assert "101001/0001" in listed.output and "v1 (300 rows)" in listed.output
    missing_table = runner.invoke(app, ["source", "check", "biz", "--table", "nope"], env={"COLUMNS": "200"})
    assert missing_table.exit_code == 1
    assert "source 'biz'" in missing_table.output and "'nope' does not exist" in missing_table.output
