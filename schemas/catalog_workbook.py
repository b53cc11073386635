"""The offline compiling tool's layout (离线编目工具, article 9): which columns a catalogue workbook, CSV file or
JSON document has, how a cell's text becomes an element's value and back, and how a problem names its cell.

Everything is derived from `schemas/catalog/metadata.yaml`: a column's header is the element's Chinese label,
a coded element's cell holds the Chinese label of its code (the code itself is accepted too), and an entry's
data items (信息项) sit on their own sheet, linked to their entry by the row key (条目键). Reading a whole
workbook into validated entries is `schemas/catalog_tabular.py`; writing one is `schemas/catalog_xlsx.py`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from itertools import combinations
from typing import Any

from schemas.catalog_metadata import code_list, metadata

ENTRY_SHEET = "信息资源"
ITEM_SHEET = "信息项"
HELP_SHEET = "填写说明"
CODES_SHEET = "代码表"
KEY_LABEL = "条目键"
KEY_NOTE = "本表内唯一的任意文字，信息项表用它指向所属的信息资源；导出时即为信息资源代码"
MANY_SEPARATOR = "、"
SPLIT_MANY = re.compile(r"[、,，;；\s]+")
YES = {"是", "true", "True", "TRUE", "1", "y", "Y", "yes", "Yes"}
NO = {"否", "false", "False", "FALSE", "0", "n", "N", "no", "No"}
# Elements an entry row carries besides CatalogEntryData's fields: the code identifies the entry to update,
# the provider columns are informational (the provider is the importing agency) but must agree with it.
ENTRY_EXTRA = ("code", "provider", "provider_code")


@dataclass(frozen=True)
class Column:
    field: str  # the element's field name in CatalogEntryData / DataItem, or "key"
    label: str  # the header: the element's Chinese label
    required: bool = False
    codes: str | None = None  # the code list's name for a coded element
    many: bool = False  # several values in one cell, separated by 、
    note: str = ""


def _columns(key: str) -> tuple[Column, ...]:
    out = [Column("key", KEY_LABEL, True, note=KEY_NOTE)]
    for element in metadata()[key]:
        if element["field"] == "data_items":
            continue
        # the provider is the importing agency: its columns are informational, never required
        required = bool(element.get("required")) and element["field"] not in ENTRY_EXTRA
        out.append(Column(element["field"], element["label"], required, element.get("codes"),
                          bool(element.get("many")), str(element.get("note", ""))))
    return tuple(out)


ENTRY_COLUMNS = _columns("elements")
ITEM_COLUMNS = _columns("data_item_elements")


@dataclass(frozen=True)
class Problem:
    """One problem of an import, located at its sheet (or file), row and column, in Chinese and English."""

    sheet: str
    row: int | None
    column: str | None  # e.g. "G（共享类型）" for a workbook, or the element label for JSON
    message: str
    unit: str = "行"  # 行 (row) in a sheet or CSV file, 条 (entry) in a JSON document

    def __str__(self) -> str:
        where = [self.sheet]
        if self.row is not None:
            where.append(f"第{self.row}{self.unit}")
        if self.column:
            where.append(f"{self.column}列" if self.column[:1].isascii() else self.column)
        return f"{' '.join(where)}：{self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"sheet": self.sheet, "row": self.row, "column": self.column, "message": self.message}


def column_letter(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA (spreadsheet column names, for problem reports)."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def normalise_header(text: Any) -> str:
    return str(text or "").strip().rstrip("*＊").strip()


def choices(column: Column) -> list[str]:
    """The drop-down values of a coded column: labels, and for a many-valued one every combination in order."""
    labels = list(code_list(column.codes).values()) if column.codes else []
    if not column.many:
        return labels
    return [MANY_SEPARATOR.join(combo) for size in range(1, len(labels) + 1) for combo in combinations(labels, size)]


class Formula(str):
    """A cell that holds a formula (a workbook's formula cell, or CSV text starting with =): never evaluated."""


class CellError(ValueError):
    """A cell whose text cannot be read as its element's value (before the entry as a whole is validated)."""


def read_cell(column: Column, value: Any) -> Any:
    """A cell's value as the field's input (None when blank); formulas are refused, never evaluated."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, Formula):
        raise CellError("单元格含公式，离线工具只接受数值，请粘贴为数值 / formulas are not accepted: paste values only")
    if column.field == "open_to_public":
        text = str(value).strip() if not isinstance(value, bool) else ("是" if value else "否")
        if text in YES:
            return True
        if text in NO:
            return False
        raise CellError(f"应填 是 或 否，而不是 {text!r} / must be 是 (yes) or 否 (no)")
    if column.field == "release_date":
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(str(value).strip().replace("/", "-"))
        except ValueError:
            raise CellError(f"日期 {value!r} 应为 CCYY-MM-DD 格式，如 2026-01-05 / date must be CCYY-MM-DD") from None
    if column.field == "length":
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise CellError(f"数据长度 {value!r} 应为正整数 / length must be a positive whole number") from None
        if not number.is_integer():
            raise CellError(f"数据长度 {value!r} 应为正整数 / length must be a positive whole number")
        return int(number)
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a code typed into a cell Excel treated as a number (101001.0)
    text = str(value).strip()
    if column.many:
        return [part for part in SPLIT_MANY.split(text) if part]
    return text


def write_cell(column: Column, value: Any) -> Any:
    """An element's value as the cell shows it: labels for codes, 是/否, ISO dates, 、 between many values."""
    if value is None or value == [] or value == "":
        return None
    if column.field == "open_to_public":
        return "是" if value else "否"
    if isinstance(value, date):
        return value.isoformat()
    labels = code_list(column.codes) if column.codes else {}
    if column.many:
        return MANY_SEPARATOR.join(labels.get(v, v) for v in value)
    return labels.get(str(value), value) if labels else value


def entry_row(code: str, content: dict[str, Any], *, provider: str = "", provider_code: str = "") -> dict[str, Any]:
    """One entry's cells by field (the key is its resource code), from CatalogEntryData.model_dump()."""
    values = {**content, "key": code, "code": code, "provider": provider, "provider_code": provider_code}
    return {c.field: write_cell(c, values.get(c.field)) for c in ENTRY_COLUMNS}


def item_rows(code: str, content: dict[str, Any]) -> list[dict[str, Any]]:
    return [{c.field: write_cell(c, {**item, "key": code}.get(c.field)) for c in ITEM_COLUMNS}
            for item in content.get("data_items", [])]
