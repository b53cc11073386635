"""Reading a filled-in catalogue (workbook sheets or a CSV file) into validated entries; JSON: catalog_json.py.

Every problem of every row is collected, each at its sheet, row and column with a Chinese message (the same
messages `CatalogEntryData` gives online, via `problems_of`), so a person can fix the file in one pass; the
caller imports nothing unless the list is empty.

CSV decision: one flattened file, one row per data item (信息项), the entry's columns repeated on each row of
the same row key (条目键); a repeated cell may be left blank, but if filled it must agree with the first row.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from core.errors import ConfigError
from core.sheet_text import MARK, for_people, from_people
from schemas.catalog_metadata import (
    RESOURCE_CODE,
    CatalogEntryData,
    label_of,
    problems_of,
)
from schemas.catalog_workbook import (
    ENTRY_COLUMNS,
    ENTRY_EXTRA,
    ITEM_COLUMNS,
    CellError,
    Column,
    Formula,
    Problem,
    column_letter,
    entry_row,
    item_rows,
    normalise_header,
    read_cell,
)

MAX_ROWS = 20_000  # rows per sheet or file: far above one agency's catalogue, far below a memory problem
MAX_TEXT_BYTES = 20 * 1024 * 1024
# Entry-level (cross-field) rules name no field; point them at the column a person has to fill in.
RULE_COLUMNS = (("开放条件", "open_condition"), ("向社会开放", "open_to_public"), ("共享条件", "sharing_condition"),
                ("共享方式", "sharing_modes"), ("信息项名称重复", "data_items"))


@dataclass
class Grid:
    """A sheet (or CSV file) as rows of cells: the header row, then (row number, cells) for each data row."""

    sheet: str
    headers: list[Any]
    rows: Iterable[tuple[int, list[Any]]]
    header_row: int = 1


@dataclass
class ParsedEntry:
    key: str
    code: str | None
    data: CatalogEntryData
    provider_code: str | None
    sheet: str
    row: int
    cells: dict[str, str] = field(default_factory=dict)  # field -> "G（共享类型）", to report against the cell
    unit: str = "行"
    provider: str | None = None  # the provider's name as the file states it; the registry checks it

    def where(self, name: str) -> str:
        return self.cells.get(name) or label_of(name)


@dataclass
class _Rows:
    """One entry's raw values and where each came from, while a grid is being read."""

    key: str
    sheet: str
    row: int
    values: dict[str, Any] = field(default_factory=dict)
    cells: dict[str, str] = field(default_factory=dict)
    bad: set[str] = field(default_factory=set)
    items: list[tuple[int, dict[str, Any], dict[str, str], set[str]]] = field(default_factory=list)


def _header_map(grid: Grid, columns: tuple[Column, ...], problems: list[Problem], *,
                others: tuple[Column, ...] = ()) -> dict[int, Column]:
    by_name = {c.label: c for c in columns} | {c.field: c for c in columns}
    known = {c.label for c in others} | {c.field for c in others}
    mapping: dict[int, Column] = {}
    for index, header in enumerate(grid.headers):
        name = normalise_header(header)
        if name in by_name:
            mapping[index] = by_name[name]
        elif name and name not in known:
            problems.append(Problem(grid.sheet, grid.header_row, f"{column_letter(index)}（{name}）",
                                    f"未知的列 {name!r}，请使用模板的表头 / unknown column: use the template's headers"))
    present = {c.field for c in mapping.values()}
    for column in columns:
        if column.required and column.field not in present:
            problems.append(Problem(grid.sheet, grid.header_row, None,
                                    f"缺少必填列 {column.label} / missing required column {column.field}"))
    return mapping


def _read_row(grid: Grid, number: int, cells: list[Any], mapping: dict[int, Column], problems: list[Problem]
              ) -> tuple[dict[str, Any], dict[str, str], set[str]] | None:
    values: dict[str, Any] = {}
    where: dict[str, str] = {}
    bad: set[str] = set()
    for index, column in mapping.items():
        raw = cells[index] if index < len(cells) else None
        where[column.field] = f"{column_letter(index)}（{column.label}）"
        try:
            value = read_cell(column, raw)
        except CellError as exc:
            problems.append(Problem(grid.sheet, number, where[column.field], str(exc)))
            bad.add(column.field)
            continue
        if value is not None:
            values[column.field] = value
    if not values and not bad:
        return None  # a blank row
    if "key" not in values:
        problems.append(Problem(grid.sheet, number, where.get("key"), "条目键必填 / the row key is required"))
        return None
    values["key"] = str(values["key"])
    return values, where, bad


def _read_entries(grid: Grid, problems: list[Problem], *, flattened: bool, others: tuple[Column, ...] = ()
                  ) -> dict[str, _Rows]:
    mapping = _header_map(grid, ENTRY_COLUMNS, problems, others=others)
    entries: dict[str, _Rows] = {}
    for number, cells in grid.rows:
        read = _read_row(grid, number, cells, mapping, problems)
        if read is None:
            continue
        values, where, bad = read
        key = values["key"]
        if key not in entries:
            entries[key] = _Rows(key, grid.sheet, number, values, where, bad)
        elif not flattened:
            problems.append(Problem(grid.sheet, number, where["key"],
                                    f"条目键 {key!r} 重复（首次出现在第{entries[key].row}行）/ duplicate row key"))
        else:
            first = entries[key]
            for name, value in values.items():
                if first.values.get(name, value) != value:
                    problems.append(Problem(grid.sheet, number, where[name],
                                            f"与第{first.row}行同一条目的取值不一致 / differs from row {first.row} of the same entry"))
                first.values.setdefault(name, value)
    return entries


def _read_items(grid: Grid, entries: dict[str, _Rows], problems: list[Problem], *,
                others: tuple[Column, ...] = ()) -> None:
    mapping = _header_map(grid, ITEM_COLUMNS, problems, others=others)
    for number, cells in grid.rows:
        read = _read_row(grid, number, cells, mapping, problems)
        if read is None:
            continue
        values, where, bad = read
        if len(values) == 1 and not bad:
            continue  # only a key: in a flattened CSV, an entry row without an item
        owner = entries.get(values.pop("key"))
        if owner is None:
            problems.append(Problem(grid.sheet, number, where["key"],
                                    "条目键在信息资源表中不存在 / the row key matches no entry"))
            continue
        owner.items.append((number, values, where, bad))


def _entry_rules(entry: _Rows, content: dict[str, Any], error: ValidationError, problems: list[Problem]) -> None:
    """Pydantic skips the cross-field rules (article 8) once a field failed; check them on the rest, so one pass
    over the file reports them too."""
    if any(not detail["loc"] for detail in error.errors()):
        return  # they ran already
    failed = {str(detail["loc"][0]) for detail in error.errors()}
    probe = {k: v for k, v in content.items() if k not in failed}
    probe["data_items"] = [{"name": "-", "data_type": "string"}]
    probe.setdefault("classification", "101")
    probe.setdefault("name", "-")
    probe.setdefault("abstract", "-")
    probe.setdefault("sharing_type", "unconditional")
    try:
        CatalogEntryData.model_validate(probe)
    except ValidationError as again:
        for detail, (_, message) in zip(again.errors(), problems_of(again)):
            if not detail["loc"]:
                name = next((f for word, f in RULE_COLUMNS if word in message), "")
                if name not in failed and name not in entry.bad:
                    problems.append(Problem(entry.sheet, entry.row, entry.cells.get(name), message))


def _validate(entry: _Rows, item_sheet: str, problems: list[Problem]) -> ParsedEntry | None:
    content = {k: v for k, v in entry.values.items() if k not in ("key", *ENTRY_EXTRA)}
    content["data_items"] = [values for _, values, _, _ in entry.items]
    bad_items = {(i, name) for i, (_, _, _, bad) in enumerate(entry.items) for name in bad}
    code = entry.values.get("code")
    failed = bool(entry.bad or bad_items)
    if code and not RESOURCE_CODE.match(code):
        problems.append(Problem(entry.sheet, entry.row, entry.cells.get("code"),
                                f"信息资源代码 {code!r} 应为 分类代码/顺序号，如 101001/0001 / code format"))
        failed = True
    try:
        data = CatalogEntryData.model_validate(content)
    except ValidationError as error:
        for detail, (_, message) in zip(error.errors(), problems_of(error)):
            loc = [str(p) for p in detail["loc"]]
            if loc and loc[0] == "data_items" and len(loc) >= 3:
                index, name = int(loc[1]), loc[2]
                if (index, name) in bad_items:
                    continue  # already reported at the cell
                row, _, where, _ = entry.items[index]
                problems.append(Problem(item_sheet, row, where.get(name, label_of(name, data_item=True)), message))
                continue
            name = loc[0] if loc else next((f for word, f in RULE_COLUMNS if word in message), "")
            if name in entry.bad:
                continue
            if name == "data_items" and detail["type"] == "too_short":
                message = f"至少需要一个信息项：在{item_sheet}表按条目键 {entry.key} 填写 / at least one data item"
            problems.append(Problem(entry.sheet, entry.row, entry.cells.get(name, label_of(name) if name else None),
                                    message))
        _entry_rules(entry, content, error, problems)
        return None
    if failed:
        return None
    return ParsedEntry(entry.key, code, data, entry.values.get("provider_code"), entry.sheet, entry.row, entry.cells,
                       provider=entry.values.get("provider"))


def parse_grids(entries: Grid, items: Grid, *, flattened: bool = False) -> tuple[list[ParsedEntry], list[Problem]]:
    """Every entry of the two grids (one grid twice for a flattened CSV), validated, and every problem found."""
    problems: list[Problem] = []
    others = ITEM_COLUMNS if flattened else ()
    rows = _read_entries(entries, problems, flattened=flattened, others=others)
    _read_items(items, rows, problems, others=ENTRY_COLUMNS if flattened else ())
    parsed = [p for entry in rows.values() if (p := _validate(entry, items.sheet, problems))]
    order = {entries.sheet: 0, items.sheet: 1}
    problems.sort(key=lambda p: (order.get(p.sheet, 2), p.row or 0))
    return parsed, problems + duplicates(parsed)


def duplicates(parsed: list[ParsedEntry]) -> list[Problem]:
    """The same entry twice in one file: by code, or (without a code) by classification and name, which is how
    the catalogue recognises an entry it already has."""
    problems = []
    seen: dict[tuple[str, ...], ParsedEntry] = {}
    for entry in parsed:
        key = ("code", entry.code) if entry.code else ("name", entry.data.classification, entry.data.name)
        if key in seen:
            first = seen[key]
            what = f"信息资源代码 {entry.code}" if entry.code else f"分类 {entry.data.classification} 下的名称 {entry.data.name}"
            problems.append(Problem(entry.sheet, entry.row, entry.where("code" if entry.code else "name"),
                                    f"{what} 与第{first.row}{first.unit}重复 / the same entry appears twice", entry.unit))
        seen.setdefault(key, entry)
    return problems


# --- CSV ------------------------------------------------------------------------------------------------------

def _limited(rows: Iterator[list[str]], sheet: str, start: int) -> Iterator[tuple[int, list[Any]]]:
    for number, row in enumerate(rows, start=start):
        if number - start >= MAX_ROWS:
            raise ConfigError(f"{sheet} 超过 {MAX_ROWS} 行，请分批导入 / more than {MAX_ROWS} rows: split the file")
        yield number, row


def read_text(path: Path) -> str:
    if path.stat().st_size > MAX_TEXT_BYTES:
        raise ConfigError(f"{path.name} 超过 {MAX_TEXT_BYTES // 1024 // 1024} MB / file too large")
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        # Excel on Chinese Windows saves "CSV" in GBK; GB18030 is its superset. Every cell is validated after.
        return data.decode("gb18030")
    except UnicodeDecodeError:
        raise ConfigError(f"{path.name} 既不是 UTF-8 也不是 GB18030 编码的文本 / not UTF-8 or GB18030 text") from None


def _csv_cell(text: str) -> str:
    # CSV has no cell types: text starting with = is what a spreadsheet would run as a formula (CSV injection),
    # unless it carries the text marker ' that the export writes before it (core/sheet_text.py)
    if text.startswith(MARK):
        return from_people(text)
    return Formula(text) if text.lstrip().startswith("=") else text


def parse_csv(path: Path) -> tuple[list[ParsedEntry], list[Problem]]:
    try:
        lines = [[_csv_cell(cell) for cell in row] for row in csv.reader(io.StringIO(read_text(path)))]
    except csv.Error as exc:
        raise ConfigError(f"{path.name} 不是有效的 CSV 文件：{exc} / not a valid CSV file") from None
    if not lines:
        raise ConfigError(f"{path.name} 是空文件 / empty file")
    body = list(_limited(iter(lines[1:]), path.name, 2))
    return parse_grids(Grid(path.name, lines[0], body), Grid(path.name, lines[0], body), flattened=True)


def csv_text(rows: list[tuple[str, dict[str, Any], str, str]]) -> str:
    """The flattened CSV of (code, content, provider, provider code) rows: one line per data item."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([c.label for c in ENTRY_COLUMNS] + [c.label for c in ITEM_COLUMNS[1:]])
    for code, content, provider, provider_code in rows:
        head = entry_row(code, content, provider=provider, provider_code=provider_code)
        for item in item_rows(code, content):
            writer.writerow([for_people(head[c.field]) if head[c.field] is not None else "" for c in ENTRY_COLUMNS]
                            + ["" if item[c.field] is None else for_people(item[c.field]) for c in ITEM_COLUMNS[1:]])
    return out.getvalue()
