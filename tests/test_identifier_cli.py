"""`govshare validate ...` sub-app: values on the command line, and CSV / Excel / Parquet files."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from openpyxl import Workbook
from typer.testing import CliRunner

from cli.identifier_cmds import app

runner = CliRunner()

VALID = "91110000600037341L"
PILOT = "91350100M0001TGQXM"
BAD_CHECK = "91110000600037341N"


def test_uscc_values_exit_1_when_any_is_invalid() -> None:
    result = runner.invoke(app, ["uscc", VALID, PILOT, BAD_CHECK])
    assert result.exit_code == 1, result.output
    assert "bad_check_char" in result.output and "校验码错误" in result.output
    assert "pilot_code_check_mismatch" in result.output
    assert "共 3 个：有效 1，存疑 1，无效 1" in result.output


def test_warnings_alone_exit_0() -> None:
    result = runner.invoke(app, ["uscc", VALID, PILOT])
    assert result.exit_code == 0, result.output
    assert "3 values" not in result.output and "2 values: 1 valid, 1 warning, 0 invalid" in result.output


def test_idcard_values_show_the_upgraded_number() -> None:
    result = runner.invoke(app, ["idcard", "11010519491231002X", "110105491231002", "--today", "2025-06-30"])
    assert result.exit_code == 0, result.output
    assert "legacy_15_digit" in result.output and "11010519491231002X" in result.output
    future = runner.invoke(app, ["idcard", "11010520991231002X", "--today", "2025-06-30"])
    assert future.exit_code == 1
    bad_day = runner.invoke(app, ["idcard", "11010519491231002X", "--today", "30/06/2025"])
    assert bad_day.exit_code == 2


def test_orgcode_values() -> None:
    result = runner.invoke(app, ["orgcode", "60003734-1", "600037341"])
    assert result.exit_code == 0, result.output
    assert runner.invoke(app, ["orgcode", "600037342"]).exit_code == 1


def test_every_command_has_help_with_an_example() -> None:
    for command in ("uscc", "idcard", "orgcode", "file"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0
        assert "Example" in result.output and "govshare validate" in result.output


def test_csv_file_lists_problem_rows_with_row_numbers(tmp_path: Path) -> None:
    path = tmp_path / "enterprises.csv"
    rows = ["名称,统一社会信用代码", f"甲,{VALID}", f"乙,{BAD_CHECK}", "丙,", f"丁,{PILOT}", "戊,916201055811843000"]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8-sig")  # Excel's BOM
    result = runner.invoke(app, ["file", str(path), "--column", "统一社会信用代码", "--kind", "uscc"])
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert any(BAD_CHECK in line and " 2 " in line for line in lines)
    assert any(PILOT in line and " 4 " in line for line in lines)
    assert VALID not in result.output  # valid rows are not listed
    assert "共 5 个：有效 1，存疑 1，无效 2，空值 1" in result.output


def test_csv_in_gbk_with_a_cap_on_listed_rows(tmp_path: Path) -> None:
    path = tmp_path / "ids.csv"
    # 10 valid numbers, 20 with a wrong check character (the right one is X).
    lines = ["姓名,身份证号码"] + [f"张{i},11010519491231002{'X' if i < 10 else '1'}" for i in range(30)]
    path.write_text("\n".join(lines) + "\n", encoding="gbk")
    args = ["file", str(path), "-c", "身份证号码", "-k", "idcard", "--encoding", "gbk", "--max-rows", "5"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "15 more problem rows not shown" in result.output
    assert "30 values: 10 valid, 0 warning, 20 invalid" in result.output


def test_xlsx_file_streams_rows_and_reads_numbers_as_text(tmp_path: Path) -> None:
    path = tmp_path / "enterprises.xlsx"
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "企业"
    sheet.append(["名称", "统一社会信用代码"])
    sheet.append(["甲", VALID])
    sheet.append(["乙", 916201055811843000])  # Excel keeps only 15 significant digits of a long number
    sheet.append(["丙", None])
    sheet.append(["丁", "  91110000600037341l"])
    workbook.save(path)
    result = runner.invoke(
        app, ["file", str(path), "--column", "统一社会信用代码", "--kind", "uscc", "--sheet", "企业"]
    )
    assert result.exit_code == 1, result.output
    assert "916201055811843000" in result.output and "bad_check_char" in result.output
    assert "not_canonical" in result.output
    assert "共 4 个：有效 1，存疑 1，无效 1，空值 1" in result.output


def test_parquet_file_in_batches(tmp_path: Path) -> None:
    path = tmp_path / "codes.parquet"
    values = [VALID] * 70_000 + [PILOT, None]
    pq.write_table(pa.table({"code": values}), path, row_group_size=20_000)
    result = runner.invoke(app, ["file", str(path), "--column", "code", "--kind", "uscc"])
    assert result.exit_code == 0, result.output
    assert any(PILOT in line and " 70001 " in line for line in result.output.splitlines())
    assert "共 70002 个：有效 70000，存疑 1，无效 0，空值 1" in result.output


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("codes.csv", ["--column", "missing", "--kind", "uscc"]),
        ("codes.json", ["--column", "code", "--kind", "uscc"]),
    ],
)
def test_unusable_input_exits_2(tmp_path: Path, name: str, args: list[str]) -> None:
    path = tmp_path / name
    path.write_text("code\n91110000600037341L\n", encoding="utf-8")
    result = runner.invoke(app, ["file", str(path), *args])
    assert result.exit_code == 2
    assert "error" in result.output


def test_missing_excel_column_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "empty.xlsx"
    workbook = Workbook()
    workbook.active.append(["名称"])
    workbook.save(path)
    result = runner.invoke(app, ["file", str(path), "--column", "统一社会信用代码", "--kind", "uscc"])
    assert result.exit_code == 2
    assert "名称" in result.output


def _restated(path: Path, edit) -> Path:  # noqa: ANN001 - bytes -> bytes
    """The workbook with its sheet XML edited, as another program might have written it."""
    import io
    import zipfile

    data = path.read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            part = source.read(item.filename)
            target.writestr(item.filename, edit(part) if item.filename.startswith("xl/worksheets/") else part)
    return path


def test_an_xlsx_is_checked_to_its_last_row_whatever_size_it_states(tmp_path: Path) -> None:
    """<dimension ref="A1:B2"/> (a program's, not Excel's): only the first row was checked and the summary said
    so, all valid, while 39 codes below it, one of them wrong, were never looked at."""
    import re

    path = tmp_path / "codes.xlsx"
    workbook = Workbook()
    workbook.active.append(["名称", "统一社会信用代码"])
    for n in range(39):
        workbook.active.append([f"企业{n}", VALID])
    workbook.active.append(["末行", BAD_CHECK])
    workbook.save(path)
    _restated(path, lambda xml: re.sub(rb'<dimension ref="[^"]*"', b'<dimension ref="A1:B2"', xml))
    result = runner.invoke(app, ["file", str(path), "--column", "统一社会信用代码", "--kind", "uscc"])
    assert result.exit_code == 1, result.output
    assert "共 40 个：有效 39，存疑 0，无效 1 " in result.output


def test_a_hostile_workbook_is_one_error_line(tmp_path: Path) -> None:
    path = tmp_path / "codes.xlsx"
    workbook = Workbook()
    workbook.active.append(["统一社会信用代码"])
    workbook.active.append(["x"])
    workbook.save(path)
    entities = '<!ENTITY a0 "lol">' + "".join(f'<!ENTITY a{i} "{("&a%d;" % (i - 1)) * 10}">' for i in range(1, 10))
    _restated(path, lambda xml: xml.replace(b"<worksheet ", f"<!DOCTYPE worksheet [{entities}]><worksheet ".encode(),
                                            1).replace(b">x<", b">&a9;<"))
    result = runner.invoke(app, ["file", str(path), "--column", "统一社会信用代码", "--kind", "uscc"])
    assert result.exit_code == 2, result.output
    assert "codes.xlsx" in result.output and "另存为" in result.output


def test_a_value_in_the_problem_table_is_shown_not_acted_on(tmp_path: Path) -> None:
    path = tmp_path / "codes.csv"
    path.write_text("code\n\"[red]911100006000[/red]\x1b[2J\"\n", encoding="utf-8")
    result = runner.invoke(app, ["file", str(path), "--column", "code", "--kind", "uscc"])
    assert result.exit_code == 1, result.output
    assert "\x1b" not in result.output and "[red]911100006000[/red]\\x1b[2J" in result.output


def test_an_identifier_typed_with_an_escape_in_excel_is_shown_as_typed(tmp_path: Path) -> None:
    """Excel saves a typed `_x0041_` as `_x005F_x0041_` in its shared strings, and openpyxl drops every `x005F_`
    of a shared string: the report, reading through openpyxl alone, showed a typed `x005F_9111...` as `9111...`
    (a value the cell does not hold), where every other workbook reader keeps it as typed."""
    from tests.file_helpers import with_shared_strings, workbook_bytes

    path = tmp_path / "codes.xlsx"
    path.write_bytes(with_shared_strings(workbook_bytes([["代码"], ["_x005F_x0041_1110000600037341L"], ["x005F_91110000600037341L"]])))
    result = runner.invoke(app, ["file", str(path), "--column", "代码", "--kind", "uscc"])
    assert result.exit_code == 1, result.output
    assert "_x0041_1110000600037341L" in result.output and "x005F_91110000600037341L" in result.output
    assert "共 2 个：有效 0，存疑 0，无效 2" in result.output
