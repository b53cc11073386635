"""Excel cells from untrusted values (Excel 单元格): text stays text, and any character survives.

Every .xlsx the hub writes may carry values an agency's database or a file supplied: data downloads, the
quarantined rows sent to a provider for correction, the catalogue, the filing list, identifier reports.
Two things go wrong with openpyxl's defaults:

- **Formulas.** openpyxl writes a string that starts with ``=`` as a formula, so a company name such as
  ``=HYPERLINK("http://...")`` becomes a live formula in the reader's Excel (CSV/formula injection). Here every
  string is written as text (``data_type = "s"``), which Excel never evaluates.
- **Control characters.** XML 1.0 cannot hold most characters below U+0020 (and turns a CR into LF), and openpyxl refuses them
  (IllegalCharacterError: the whole export failed). OOXML escapes them as ``_xHHHH_`` (ECMA-376 ST_Xstring),
  which Excel decodes when it opens the file; a literal ``_xHHHH_`` in the text has its underscore escaped
  (``_x005F_``) so it reads back as written. ``unescaped`` is the inverse, for the files the hub reads back.
- **Precision.** An Excel number is a double, and openpyxl writes decimals and integers through float: an
  amount of 17 digits or an 18-digit integer id came out rounded, in the file itself. A number a double cannot
  hold exactly (an integer beyond 2**53, a decimal of more than 15 significant digits) is written as its text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

# CR is legal XML, but a reader turns a literal CR into LF (XML 1.0, 2.11): "a\r\nb" came back "a\nb". It is escaped
# as the others are, and Excel shows it as the CR it is.
_ILLEGAL = re.compile(r"[\x00-\x08\x0b-\x1f\ufffe\uffff]")
_ESCAPE_LIKE = re.compile(r"_(?=x[0-9A-Fa-f]{4}_)")
_ESCAPED = re.compile(r"_x([0-9A-Fa-f]{4})_")


def escaped(text: str) -> str:
    """Text an Excel cell can hold, read back by Excel (and ``unescaped``) as ``text``."""
    text = _ESCAPE_LIKE.sub("_x005F_", text)
    return _ILLEGAL.sub(lambda match: f"_x{ord(match.group(0)):04X}_", text)


def unescaped(value: Any) -> Any:
    """A cell's value as its writer meant it (``_xHHHH_`` decoded); other values as they are."""
    if isinstance(value, str) and "_x" in value:
        return _ESCAPED.sub(lambda match: chr(int(match.group(1), 16)), value)
    return value


EXACT_INTEGER = 2**53  # beyond it a double skips integers
EXACT_DIGITS = 15  # significant digits every double holds exactly


def _exact(value: Any) -> Any:
    """A number Excel would round, as its text; other values as they are."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > EXACT_INTEGER:
        return str(value)
    if isinstance(value, Decimal) and (not value.is_finite() or len(value.as_tuple().digits) > EXACT_DIGITS):
        return str(value)
    return value


def append_row(sheet: Any, values: Iterable[Any]) -> None:
    """Append one row to a worksheet (write-only or not): strings escaped and written as text, never formulas;
    numbers Excel would round written as text."""
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.worksheet._write_only import WriteOnlyWorksheet

    values = [_exact(v) for v in values]
    if isinstance(sheet, WriteOnlyWorksheet):
        cells = []
        for value in values:
            if isinstance(value, str):
                cell = WriteOnlyCell(sheet, escaped(value))
                cell.data_type = "s"
                cells.append(cell)
            else:
                cells.append(value)
        sheet.append(cells)
        return
    sheet.append([escaped(v) if isinstance(v, str) else v for v in values])
    for cell in sheet[sheet.max_row]:
        if isinstance(cell.value, str):
            cell.data_type = "s"
