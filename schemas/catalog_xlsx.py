"""The catalogue workbook (.xlsx) of the offline compiling tool: written with drop-down lists for every coded
element, read back defensively (a file that is not a workbook, a zip bomb, an oversized sheet or formulas are
refused with a clear message before anything is imported)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from openpyxl import Workbook, load_workbook
from openpyxl.comments import Comment
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils.exceptions import InvalidFileException
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.worksheet import Worksheet

from core.errors import ConfigError
from core.xlsx import append_row, unescaped
from core.xlsx_package import XML_ERRORS, check_package, keep_typed_escapes, xml_refusal
from schemas.catalog_metadata import code_list
from schemas.catalog_tabular import MAX_ROWS, Grid, ParsedEntry, parse_grids
from schemas.catalog_workbook import (
    CODES_SHEET,
    ENTRY_COLUMNS,
    ENTRY_SHEET,
    HELP_SHEET,
    ITEM_COLUMNS,
    ITEM_SHEET,
    Column,
    Formula,
    Problem,
    choices,
    column_letter,
    entry_row,
    item_rows,
)

MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_UNPACKED_BYTES = 200 * 1024 * 1024  # a part packed like a zip bomb is refused too: core/xlsx_package.py
MAX_COLUMNS = 60
BLANK_ROWS = 500  # rows below the data that keep their drop-downs, for new entries
REQUIRED_FONT = Font(bold=True, color="C00000")
HEADER_FONT = Font(bold=True)
HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")
RULES = [
    ("本工作簿用于离线编制政务信息资源目录（《上海市政务数据资源共享管理办法》第九条），填好后用"
     " `govshare catalog import 文件.xlsx --agency 本机构 --as 编目人员` 导入。"),
    "“信息资源”表每行一条信息资源；“信息项”表每行一个信息项，用“条目键”指向所属的信息资源。",
    "红色表头为必填项；带下拉列表的列请从列表中选择（也接受英文代码）；多个取值用“、”分隔。",
    "信息资源代码留空表示新建（代码按 分类代码/顺序号 自动生成）；填写已有代码表示修改该条目（生成新的草稿修订）。",
    ("不予共享的资源必须在“共享条件”中填写法律法规、规章政策或其他依据；有条件共享的资源必须填写共享条件；"
     "向社会开放的资源必须填写开放条件（第八条）。"),
    "导入时先检查全部内容：只要有一处问题就不导入任何条目，并按 工作表、行、列 列出全部问题。",
    "请勿使用公式；日期填 CCYY-MM-DD，如 2026-01-05。",
]


def _header(ws: Worksheet, columns: tuple[Column, ...]) -> None:
    ws.append([c.label for c in columns])
    for index, column in enumerate(columns, start=1):
        cell = ws.cell(row=1, column=index)
        cell.font = REQUIRED_FONT if column.required else HEADER_FONT
        cell.fill = HEADER_FILL
        hint = column.note or ("必填" if column.required else "选填")
        if column.many:
            hint += "；多个取值用“、”分隔"
        cell.comment = Comment(hint, "govshare")
        ws.column_dimensions[column_letter(index - 1)].width = max(12, len(column.label) * 2 + 4)
        ws.column_dimensions[column_letter(index - 1)].number_format = "@"
    ws.freeze_panes = "B2"


def _codes_sheet(wb: Workbook) -> dict[str, str]:
    """One column per coded element on a hidden sheet; the drop-downs refer to these ranges."""
    ws = wb.create_sheet(CODES_SHEET)
    ranges: dict[str, str] = {}
    coded = [c for c in ENTRY_COLUMNS + ITEM_COLUMNS if c.codes]
    for index, column in enumerate(coded):
        values = choices(column)
        letter = column_letter(index)
        ws.cell(row=1, column=index + 1, value=column.label).font = HEADER_FONT
        for row, value in enumerate(values, start=2):
            ws.cell(row=row, column=index + 1, value=value)
        ranges[column.field] = f"'{CODES_SHEET}'!${letter}$2:${letter}${len(values) + 1}"
    ws.sheet_state = "hidden"
    return ranges


def _drop_downs(ws: Worksheet, columns: tuple[Column, ...], ranges: dict[str, str], last_row: int) -> None:
    for index, column in enumerate(columns):
        if column.field not in ranges:
            continue
        rule = DataValidation(type="list", formula1=ranges[column.field], allow_blank=not column.required,
                              showErrorMessage=True, errorTitle="取值无效",
                              error=f"请从下拉列表选择{column.label}", promptTitle=column.label,
                              prompt="请从下拉列表选择")
        # Many values in other orders than the list's are valid: warn instead of refusing them.
        rule.errorStyle = "warning" if column.many else "stop"
        letter = column_letter(index)
        rule.add(f"{letter}2:{letter}{last_row}")
        ws.add_data_validation(rule)


def _help_sheet(wb: Workbook) -> None:
    ws = wb.create_sheet(HELP_SHEET, 0)
    ws.column_dimensions["A"].width = 24
    ws.column_dimensions["B"].width = 12
    ws.column_dimensions["C"].width = 90
    ws.append(["填写说明 / instructions"])
    ws["A1"].font = Font(bold=True, size=14)
    for line in RULES:
        ws.append([line])
    ws.append([])
    ws.append(["工作表·列", "是否必填", "说明与可选值"])
    for sheet, columns in ((ENTRY_SHEET, ENTRY_COLUMNS), (ITEM_SHEET, ITEM_COLUMNS)):
        for column in columns:
            allowed = "、".join(code_list(column.codes).values()) if column.codes else ""
            ws.append([f"{sheet}·{column.label}", "必填" if column.required else "选填",
                       "；".join(part for part in (column.note, allowed and f"可选：{allowed}") if part)])
    for row in ws.iter_rows(min_row=2):
        for cell in row:
            cell.alignment = Alignment(wrap_text=True, vertical="top")


def _append_values(ws: Worksheet, values: list[Any]) -> None:
    append_row(ws, values)  # text stays text (never a formula), any character survives: core.xlsx


def write_workbook(path: Path, rows: list[tuple[str, dict[str, Any], str, str]] = (), *,
                   drafts: list[tuple[dict[str, Any], list[dict[str, Any]]]] = ()) -> Path:
    """A catalogue workbook with (code, content, provider, provider code) rows, plus unsaved draft rows
    (entry cells by field, item cells by field) such as `catalog discover` prefills. Empty rows: a template."""
    wb = Workbook()
    entries = wb.active
    entries.title = ENTRY_SHEET
    items = wb.create_sheet(ITEM_SHEET)
    _header(entries, ENTRY_COLUMNS)
    _header(items, ITEM_COLUMNS)
    entry_cells = [entry_row(code, content, provider=p, provider_code=pc) for code, content, p, pc in rows]
    item_cells = [item for code, content, _, _ in rows for item in item_rows(code, content)]
    for entry, draft_items in drafts:
        entry_cells.append(entry)
        item_cells.extend(draft_items)
    for cells in entry_cells:
        _append_values(entries, [cells.get(c.field) for c in ENTRY_COLUMNS])
    for cells in item_cells:
        _append_values(items, [cells.get(c.field) for c in ITEM_COLUMNS])
    ranges = _codes_sheet(wb)
    _drop_downs(entries, ENTRY_COLUMNS, ranges, len(entry_cells) + BLANK_ROWS)
    _drop_downs(items, ITEM_COLUMNS, ranges, len(item_cells) + BLANK_ROWS)
    _help_sheet(wb)
    wb.active = wb.sheetnames.index(ENTRY_SHEET)
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path


def _check_package(path: Path) -> None:
    """Refuse what is not an .xlsx package, or would unpack to far more than a catalogue can need."""
    if not path.is_file():
        raise ConfigError(f"找不到文件 {path} / no such file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ConfigError(f"{path.name} 超过 {MAX_FILE_BYTES // 1024 // 1024} MB，请分批导入 / file too large")
    check_package(path, max_unpacked_bytes=MAX_UNPACKED_BYTES)


def _value(cell: Any) -> Any:
    value = getattr(cell, "value", None)
    return Formula(value) if getattr(cell, "data_type", None) == "f" else unescaped(value)


def _grid(ws: Worksheet, sheet: str) -> Grid:
    rows = ws.iter_rows(max_col=MAX_COLUMNS)
    headers = [_value(c) for c in next(rows, ())]

    def body() -> Iterator[tuple[int, list[Any]]]:
        for number, row in enumerate(rows, start=2):
            if number - 1 > MAX_ROWS:
                raise ConfigError(f"{sheet} 表超过 {MAX_ROWS} 行，请分批导入 / sheet {sheet} has more than {MAX_ROWS} rows")
            yield number, [_value(c) for c in row]

    return Grid(sheet, headers, body())


def parse_workbook(path: Path) -> tuple[list[ParsedEntry], list[Problem]]:
    """Every entry of a filled-in workbook, validated, and every problem found (sheet, row, column, message)."""
    _check_package(path)
    try:
        wb = load_workbook(path, read_only=True, data_only=False)
    except XML_ERRORS as exc:
        raise xml_refusal(path, exc) from None
    except (InvalidFileException, KeyError, ValueError, OSError) as exc:
        raise ConfigError(f"{path.name} 无法作为 Excel 工作簿打开 / cannot open as a workbook: {exc}") from None
    try:
        missing = [name for name in (ENTRY_SHEET, ITEM_SHEET) if name not in wb.sheetnames]
        if missing:
            raise ConfigError(f"{path.name} 缺少工作表 {'、'.join(missing)}，请使用 `govshare catalog template` 生成的模板"
                              f" / missing sheet(s): use the template")
        for name in (ENTRY_SHEET, ITEM_SHEET):
            ws = wb[name]
            if (ws.max_row or 0) > MAX_ROWS + 1 or (ws.max_column or 0) > 16384:
                raise ConfigError(f"{name} 表声明了 {ws.max_row} 行，超过上限 {MAX_ROWS}，请分批导入"
                                  f" / sheet {name} declares more than {MAX_ROWS} rows")
            # Read past the stated size: a program's <dimension ref="A1:B2"/> made read-only mode stop at row 2,
            # and the rows below were silently not imported. The row limit is counted as the rows are read.
            ws.reset_dimensions()
        keep_typed_escapes(wb[ENTRY_SHEET])  # saved by Excel, a typed _x0041_ read as A (every sheet's strings)
        return parse_grids(_grid(wb[ENTRY_SHEET], ENTRY_SHEET), _grid(wb[ITEM_SHEET], ITEM_SHEET))
    except XML_ERRORS as exc:
        raise xml_refusal(path, exc) from None
    finally:
        wb.close()
