"""Reading Excel workbooks as records (the files and sftp kinds): streamed with openpyxl's read-only mode, the
package checked first (core/xlsx_package.py), every row to the last whatever size the sheet states, merged
cells read in every row they span, formulas never calculated flagged, cells read as Excel shows them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from connectors.fileformats import Record
from connectors.tabular import ShownAsDay
from core.errors import ConfigError
from core.xlsx import unescaped
from core.xlsx_package import XML_ERRORS, check_package, keep_typed_escapes, xml_refusal

# A source workbook may be large (a million rows unpack to about a gigabyte of XML, streamed); past this, or a part
# packed like a zip bomb, it is refused before it is opened (core/xlsx_package.py).
MAX_UNPACKED_BYTES = 4 * 1024 ** 3


@dataclass
class _Merged:
    """A merged range over several rows (a 区县 cell merged down the rows of its district): every row it spans
    reads its value, as a person reading the sheet does; openpyxl gives it to the top-left cell alone, so the
    other rows were published with NULL there."""
    min_col: int
    min_row: int
    max_col: int
    max_row: int
    value: Any = None


def _merged_down(workbook: Any, worksheet: Any) -> list[_Merged]:
    """The sheet's merged ranges that span more than one row, read from its XML (read-only mode has none)."""
    from xml.etree.ElementTree import iterparse

    from openpyxl.utils.cell import range_boundaries

    path, archive = getattr(worksheet, "_worksheet_path", None), getattr(workbook, "_archive", None)
    if path is None or archive is None:  # openpyxl's read-only internals: without them, cells stay as read
        return []
    ranges = []
    with archive.open(path) as xml:
        for _, element in iterparse(xml):
            if element.tag.endswith("}mergeCell") and element.get("ref"):
                min_col, min_row, max_col, max_row = range_boundaries(element.get("ref"))
                if max_row > min_row:
                    ranges.append(_Merged(min_col, min_row, max_col, max_row))
            element.clear()
    return ranges


def _fill_merged(cells: list[Any], number: int, merged: list[_Merged]) -> None:
    for area in merged:
        if not area.min_row <= number <= area.max_row:
            continue
        if number == area.min_row:
            area.value = cells[area.min_col - 1] if area.min_col <= len(cells) else None
        if area.value is None:
            continue
        if len(cells) < area.max_col:
            cells.extend([None] * (area.max_col - len(cells)))
        for column in range(area.min_col, area.max_col + 1):
            if column != area.min_col or number != area.min_row:
                cells[column - 1] = area.value


def excel_rows(path: str, *, sheet: str | int | None = None) -> Iterator[Record]:
    """One Record per non-empty row of one sheet, streamed with openpyxl's read-only mode.

    A cell's value is the one Excel saved with the file. A formula never calculated (a workbook a program wrote
    and no one opened in Excel) has none and was read as an empty cell, silently: the sheet is read a second time
    beside the first, for its formulas, and such a row is flagged with the cell and its formula."""
    import openpyxl  # imported here: only an Excel stream needs it
    from openpyxl.utils import get_column_letter
    from openpyxl.utils.exceptions import InvalidFileException

    def opened(data_only: bool):  # noqa: ANN202 - an openpyxl workbook
        try:
            return openpyxl.load_workbook(path, read_only=True, data_only=data_only)
        except FileNotFoundError:
            raise  # the file is gone, not unreadable: the caller says so
        except (InvalidFileException, OSError, KeyError, ValueError) as exc:
            raise ConfigError(f"cannot open as an .xlsx workbook: {exc}") from None

    def chosen(workbook):  # noqa: ANN001, ANN202 - the stream's worksheet
        if sheet is None or sheet == "":
            return workbook.worksheets[0]
        if isinstance(sheet, int) or str(sheet).isdigit():
            return workbook.worksheets[int(sheet)]
        if sheet in workbook.sheetnames:
            return workbook[sheet]
        raise ConfigError(f"sheet {sheet!r} not found; sheets: {', '.join(workbook.sheetnames)}")

    check_package(path, max_unpacked_bytes=MAX_UNPACKED_BYTES)
    try:
        yield from _sheet_rows(opened, chosen, get_column_letter)
    except XML_ERRORS as exc:
        raise xml_refusal(path, exc) from None


@lru_cache(maxsize=256)
def _shows_day_only(number_format: str) -> bool:
    from openpyxl.styles.numbers import is_datetime

    return is_datetime(number_format) == "date"


def _as_shown(value: datetime, number_format: str) -> datetime:
    """A date cell whose format shows the day alone (yyyy-mm-dd) but that holds a time of day: Excel shows the
    day, and a text column published the time too (connectors.tabular.ShownAsDay)."""
    if value.time() == datetime.min.time() or not _shows_day_only(number_format):
        return value
    return ShownAsDay.combine(value.date(), value.timetz())


def _sheet_rows(opened, chosen, get_column_letter) -> Iterator[Record]:  # noqa: ANN001 - excel_rows' helpers
    workbook = opened(True)
    written = None
    try:
        worksheet = chosen(workbook)
        keep_typed_escapes(worksheet)  # a typed _x0041_ read as A
        merged = _merged_down(workbook, worksheet)
        written = opened(False)
        # The sheet's stated size (<dimension ref="A1:B2"/>) is what a program wrote, and read-only mode stopped
        # there: rows and columns past it were silently not read. Excel ignores it; so does this read.
        worksheet.reset_dimensions()
        formulas = chosen(written)
        formulas.reset_dimensions()
        formulas = formulas.iter_rows(values_only=True)
        for number, row in enumerate(worksheet.iter_rows(), start=1):
            # Excel's _x000D_ (a CR) is the character: it was published as text
            cells = [_as_shown(c.value, c.number_format) if isinstance(c.value, datetime) else unescaped(c.value)
                     for c in row]
            if merged:
                _fill_merged(cells, number, merged)
            uncalculated = [f"{get_column_letter(i + 1)}{number} {formula}"
                            for i, (value, formula) in enumerate(zip(cells, next(formulas, ())))
                            if value is None and isinstance(formula, str) and formula.startswith("=")]
            while cells and cells[-1] is None:
                cells.pop()
            if cells or uncalculated:
                problem = (f"公式未计算、无保存值 / cell(s) {', '.join(uncalculated)}: a formula with no value saved "
                           "in the file (written by a program, never calculated); open and save the file in Excel, "
                           "or have the exporting system write values") if uncalculated else None
                yield Record(number, cells, problem, epoch=workbook.epoch)
    finally:
        workbook.close()
        if written is not None:
            written.close()
