"""Excel cells from untrusted values (core/xlsx.py): text stays text, never a formula, and any character
survives a write and a read back, in write-only and ordinary worksheets."""

from __future__ import annotations

from pathlib import Path

import pytest
from openpyxl import Workbook, load_workbook

from core.xlsx import append_row, escaped, unescaped

VALUES = ["=1+1", '=HYPERLINK("http://evil.example","x")', "+cmd|' /C calc'!A0", "a\x00b\x01c\x1f", "_x0041_",
          "_x005F_x0041_", "中文\x0b换行", "plain", "_x",
          # a carriage return: XML turns a literal CR into LF when it is read, so "a\r\nb" came back "a\nb" (a
          # quarantined value changed by its replay, a download not as published)
          "\r=1+1", "a\r\nb", "\tx", "-2+3", "@SUM(A1)"]


@pytest.mark.parametrize("write_only", [True, False], ids=["write-only", "ordinary"])
def test_values_come_back_as_written_and_never_as_formulas(tmp_path: Path, write_only: bool) -> None:
    book = Workbook(write_only=write_only)
    sheet = book.create_sheet("数据") if write_only else book.active
    append_row(sheet, [None, *VALUES, 42])
    book.save(tmp_path / "out.xlsx")
    cells = next(load_workbook(tmp_path / "out.xlsx").worksheets[0].iter_rows())
    assert [c.data_type for c in cells[1:len(VALUES) + 1]] == ["s"] * len(VALUES)
    assert [unescaped(c.value) for c in cells] == [None, *VALUES, 42]


def test_a_literal_escape_sequence_is_kept_literal() -> None:
    for text in VALUES:
        assert unescaped(escaped(text)) == text
    assert escaped("_x0041_") == "_x005F_x0041_" and unescaped("_x0041_") == "A"  # what Excel itself writes


def test_numbers_a_double_would_round_are_written_as_their_text(tmp_path: Path) -> None:
    """An 18-digit integer id or a 19-digit amount was written rounded (through float); it is now its exact
    text, while ordinary numbers stay numbers."""
    from decimal import Decimal

    book = Workbook(write_only=True)
    sheet = book.create_sheet("数据")
    append_row(sheet, [2**62 + 1, Decimal("12345678901234567.89"), Decimal("12.50"), 42, 1.5, True])
    book.save(tmp_path / "out.xlsx")
    cells = next(load_workbook(tmp_path / "out.xlsx").worksheets[0].iter_rows())
    assert [c.value for c in cells[:2]] == [str(2**62 + 1), "12345678901234567.89"]
    assert [c.data_type for c in cells] == ["s", "s", "n", "n", "n", "b"]
    assert [c.value for c in cells[2:]] == [12.5, 42, 1.5, True]

