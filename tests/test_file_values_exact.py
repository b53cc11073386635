"""A clerk's messy files read exactly or quarantined with a reason, never silently changed: an ID number typed
as a number in Excel, a code with a leading zero past the rows the columns were inferred from, a UTF-8 file under
a stream declared GBK, a heading the file repeats, a TRUE/FALSE cell in a number column."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from connectors.base import ROW_PROBLEM_COLUMN
from core.errors import ConfigError
from tests import file_helpers
from tests.file_helpers import stream_rows, workbook_bytes
from tests.helpers import latest, read_version, register_resource, sync_runs

folder = file_helpers.folder  # the exchange folder fixture, shared with the other file-source tests


def test_an_id_number_typed_as_a_number_in_excel_is_quarantined_not_published_with_made_up_digits(
        hub_home: Path, folder: Path) -> None:
    from pipeline.paths import quarantine_file
    from pipeline.sync import sync_resource

    (folder / "人员.xlsx").write_bytes(workbook_bytes([
        ["编号", "身份证号", "人数"],
        [1, "11010519491231002X", 3],
        [2, 110105194912310021, 4],      # typed as a number: the file keeps 1.1010519491231e+17
        [3, "110105194912310021", 5],
    ]))
    columns = [{"name": "id", "type": "integer", "header": "编号"},
               {"name": "idno", "type": "text", "header": "身份证号"},
               {"name": "staff", "type": "integer", "header": "人数"}]
    hub = register_resource(kind="files", config={"path": str(folder), "streams": {"enterprises": {
        "pattern": "人员*.xlsx", "columns": columns}}}, cursor=None)

    report = sync_resource(resource_code=hub.resource_code)

    assert (report.rows_read, report.rows_published, report.rows_quarantined) == (3, 2, 1)
    assert [r["idno"] for r in read_version(latest(hub.resource_code)).to_pylist()] == \
        ["11010519491231002X", "110105194912310021"]
    quarantined = pq.read_table(quarantine_file(hub.resource_id, sync_runs(hub.resource_code)[-1].id)).to_pylist()
    assert [r["id"] for r in quarantined] == ["2"]
    assert "身份证号" in quarantined[0]["_reason"] or "idno" in quarantined[0]["_reason"]
    assert "text" in quarantined[0]["_reason"] and "2**53" in quarantined[0]["_reason"]


def test_a_large_spreadsheet_number_in_an_integer_column_is_quarantined(folder: Path) -> None:
    (folder / "人员.xlsx").write_bytes(workbook_bytes([["id", "n"], [1, 12345678901234567], [2, 9007199254740992.0 - 2]]))
    rows = stream_rows(folder, pattern="人员*.xlsx", columns={"id": "integer", "n": "integer"})
    assert [r["n"] for r in rows] == [None, 9007199254740990]
    assert "2**53" in rows[0][ROW_PROBLEM_COLUMN] and rows[1][ROW_PROBLEM_COLUMN] is None


def test_a_code_with_a_leading_zero_past_the_inferred_rows_keeps_its_zero_or_is_quarantined(folder: Path) -> None:
    """Inference keeps 0012 as text; a column inferred integer from its first rows took a later 050000 (a
    Hebei postcode) as 50000, silently."""
    (folder / "人员.csv").write_text("编号,邮编\n1,200000\n2,050000\n3,-0\n", encoding="utf-8")
    rows = stream_rows(folder, pattern="人员*.csv", infer_rows=1)
    assert [r["邮编"] for r in rows] == [200000, None, 0]
    assert "'050000'" in rows[1][ROW_PROBLEM_COLUMN] and "text" in rows[1][ROW_PROBLEM_COLUMN]
    assert rows[0][ROW_PROBLEM_COLUMN] is None and rows[2][ROW_PROBLEM_COLUMN] is None


def test_a_utf8_file_under_a_stream_declared_gbk_is_refused_not_published_garbled(folder: Path) -> None:
    (folder / "人员.csv").write_text("id,name\n1,上海市浦东新区市场监督管理局\n", encoding="utf-8")
    for declared in ("gbk", "gb18030", "GB2312"):
        with pytest.raises(ConfigError) as raised:
            stream_rows(folder, pattern="人员*.csv", encoding=declared)
        assert "UTF-8" in str(raised.value) and "auto" in str(raised.value)
    # A real GBK export under the same setting is read as before.
    (folder / "人员.csv").write_text("id,name\n1,上海市浦东新区市场监督管理局\n", encoding="gbk")
    assert stream_rows(folder, pattern="人员*.csv", encoding="gbk") == [{"id": 1, "name": "上海市浦东新区市场监督管理局"}]


def test_a_declared_column_whose_heading_the_file_repeats_is_refused_not_read_from_the_first(folder: Path) -> None:
    (folder / "人员.csv").write_text("id,电话,电话\n1,021-1,139\n", encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        stream_rows(folder, pattern="人员*.csv", columns={"id": "integer", "电话": "text"})
    assert "电话" in str(raised.value) and "2" in str(raised.value) and "3" in str(raised.value)


def test_a_true_false_cell_in_a_number_column_is_quarantined_not_published_as_1_or_0(folder: Path) -> None:
    (folder / "人员.xlsx").write_bytes(workbook_bytes([["id", "n", "amount"], [1, True, False], [2, 3, 2.5]]))
    rows = stream_rows(folder, pattern="人员*.xlsx", columns={"id": "integer", "n": "integer", "amount": "decimal(9,2)"})
    assert [(r["n"], r["amount"]) for r in rows] == [(None, None), (3, Decimal("2.50"))]
    assert "n=True" in rows[0][ROW_PROBLEM_COLUMN] and "amount=False" in rows[0][ROW_PROBLEM_COLUMN]
    assert rows[1][ROW_PROBLEM_COLUMN] is None


def test_a_json_or_other_non_csv_file_matched_by_the_pattern_is_refused_not_read_as_csv(folder: Path) -> None:
    """Any extension but .xlsx was read as CSV: a JSON lines file published its first record as headings."""
    for name, body in (("人员.jsonl", '{"id": 1, "name": "张三"}\n{"id": 2, "name": "李四"}\n'),
                       ("人员.json", '[{"id": 1, "name": "张三"}]\n'), ("人员.et", "WPS\n")):
        for stale in folder.iterdir():
            stale.unlink()
        (folder / name).write_text(body, encoding="utf-8")
        with pytest.raises(ConfigError) as raised:
            stream_rows(folder, pattern="人员*")
        assert name in str(raised.value) and "CSV" in str(raised.value)
    # An extension of no other known format (an export named .dat) is still read as CSV.
    (folder / "人员.dat").write_text("id,name\n1,张三\n", encoding="utf-8")
    (folder / "人员.et").unlink()
    assert stream_rows(folder, pattern="人员*.dat") == [{"id": 1, "name": "张三"}]


def test_full_width_digits_and_underscores_in_number_columns_are_quarantined_not_read_as_numbers(
        folder: Path) -> None:
    """Python's int() and Decimal() read １２ (full-width, a Chinese input method's digits) as 12 and 1_000 as
    1000: a clerk's typo was published as a different-looking number. CSV and Excel text cells alike."""
    (folder / "人员.csv").write_text("id,n,amount\n1,１２,1_000.50\n2,1_000,３.5\n3,7,2.5\n", encoding="utf-8")
    columns = {"id": "integer", "n": "integer", "amount": "decimal(9,2)"}
    (folder / "人员.xlsx").write_bytes(workbook_bytes([["id", "n", "amount"], [1, "１２", "1_000.50"], [2, "1_000", "３.5"],
                                                [3, "7", "2.5"]]))
    for pattern in ("人员*.csv", "人员*.xlsx"):
        rows = stream_rows(folder, pattern=pattern, columns=columns)
        assert [(r["n"], r["amount"]) for r in rows] == [(None, None), (None, None), (7, Decimal("2.50"))], pattern
        assert "n='１２'" in rows[0][ROW_PROBLEM_COLUMN] and "amount='1_000.50'" in rows[0][ROW_PROBLEM_COLUMN]
        assert "n='1_000'" in rows[1][ROW_PROBLEM_COLUMN] and "amount='３.5'" in rows[1][ROW_PROBLEM_COLUMN]
        assert "半角" in rows[0][ROW_PROBLEM_COLUMN] and "0-9" in rows[0][ROW_PROBLEM_COLUMN]
        assert rows[2][ROW_PROBLEM_COLUMN] is None


def test_full_width_digits_in_an_inferred_column_are_not_read_as_numbers(folder: Path) -> None:
    """Inference read 1２ as an integer (Python's \\d is any Unicode digit), and a later １２ past the rows the
    column was inferred from was cast to 12."""
    (folder / "人员.csv").write_text("编号,人数\n1,5\n2,1２\n", encoding="utf-8")
    assert [r["人数"] for r in stream_rows(folder, pattern="人员*.csv")] == ["5", "1２"]  # text: kept as written
    (folder / "人员.csv").write_text("编号,人数\n1,5\n2,1２\n3,2_0\n4,6\n", encoding="utf-8")
    rows = stream_rows(folder, pattern="人员*.csv", infer_rows=1)
    assert [r["人数"] for r in rows] == [5, None, None, 6]
    assert "'1２'" in rows[1][ROW_PROBLEM_COLUMN] and "'2_0'" in rows[2][ROW_PROBLEM_COLUMN]


def test_an_excel_date_in_a_text_column_is_published_as_excel_shows_it(folder: Path) -> None:
    """A date-formatted cell in a column declared (or inferred) text was published as 2026-01-05T00:00:00, a
    form the clerk never saw in Excel: a day alone reads 2026-01-05, a time of day 2026-01-05 08:30:00."""
    from datetime import datetime

    (folder / "人员.xlsx").write_bytes(workbook_bytes([
        ["id", "到岗", "备注"],
        [1, datetime(2026, 1, 5), "待定"],
        [2, datetime(2026, 1, 5, 8, 30), datetime(2026, 12, 31)],
        [3, "2026年1月", "x"],
    ]))
    declared = stream_rows(folder, pattern="人员*.xlsx", columns={"id": "integer", "到岗": "text", "备注": "text"})
    inferred = stream_rows(folder, pattern="人员*.xlsx")  # the text cells make both columns text
    for rows in (declared, inferred):
        assert [(r["到岗"], r["备注"]) for r in rows] == [("2026-01-05", "待定"), ("2026-01-05 08:30:00", "2026-12-31"),
                                                        ("2026年1月", "x")]


def test_utf8_text_past_the_first_64_kib_under_a_stream_declared_gbk_is_refused_not_published_garbled(
        folder: Path) -> None:
    """Codes and numbers first, Chinese names only past the first 64 KiB: the check for UTF-8 under a declared
    GBK looked at the head alone, and the names were published garbled (上海 as 涓婃捣)."""
    lines = ["id,name"] + [f"{i},company-{i:06d}" for i in range(1, 4000)] + \
        [f"{i},上海市第{i}号科技有限公司" for i in range(4000, 4003)]
    body = "\n".join(lines) + "\n"
    (folder / "人员.csv").write_bytes(body.encode("utf-8"))
    assert (folder / "人员.csv").read_bytes()[:64 * 1024].isascii()
    for declared in ("gbk", "gb18030"):
        with pytest.raises(ConfigError) as raised:
            stream_rows(folder, pattern="人员*.csv", encoding=declared)
        assert "UTF-8" in str(raised.value) and "人员.csv" in str(raised.value)
    # The same file in GBK is read under the same setting, every name as written.
    (folder / "人员.csv").write_bytes(body.encode("gbk"))
    rows = stream_rows(folder, pattern="人员*.csv", encoding="gbk")
    assert [r["name"] for r in rows[-3:]] == [f"上海市第{i}号科技有限公司" for i in range(4000, 4003)]
    assert len(rows) == 4002
