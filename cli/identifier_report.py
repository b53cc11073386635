"""The work behind `govshare validate` (cli/identifier_cmds.py): validate values or a file's column in batches
and show the verdicts. Kept apart from the commands because it needs numpy and pyarrow, which only these
commands should load."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import typer
from rich.console import Console
from rich.table import Table

from cli.output import shown
from core.errors import ConfigError
from core.xlsx import unescaped
from core.xlsx_package import XML_ERRORS, check_package, keep_typed_escapes, xml_refusal
from quality.identifiers import ArrayOutcome, IdentifierKind, Level, Outcome, validate_array, validate_value

BATCH_ROWS = 65_536
MAX_UNPACKED_BYTES = 4 * 1024 ** 3  # a workbook unpacked, streamed; a zip bomb is refused at any size
KIND_NAMES = {
    IdentifierKind.USCC: "统一社会信用代码 USCC",
    IdentifierKind.IDCARD: "身份证号码 citizen ID",
    IdentifierKind.ORGCODE: "组织机构代码 organisation code",
}
_LEVEL_STYLES = {Level.VALID: "green", Level.WARNING: "yellow", Level.INVALID: "bold red"}


def check_file(path: Path, *, column: str, kind: IdentifierKind, sheet: str | None, encoding: str, max_rows: int,
               today: date | None) -> None:
    """`govshare validate file`: list the column's problem rows (up to max_rows), then a summary line."""
    tally = _Tally(max_rows=max_rows)
    try:
        first_row = 1
        for batch in _read_column(path, column=column, sheet=sheet, encoding=encoding):
            tally.add_batch(batch, validate_array(batch, kind=kind, today=today), first_row=first_row)
            first_row += len(batch)
    except (ConfigError, pa.ArrowInvalid, UnicodeDecodeError) as exc:
        typer.echo(f"错误 / error: {shown(exc, lines=True, markup=False)}", err=True)
        raise typer.Exit(code=2) from None
    console = _console()
    if tally.shown:
        console.print(_problem_table(tally.shown, title=f"{KIND_NAMES[kind]} · {shown(path.name)} · {shown(column)}"))
    if tally.hidden:
        console.print(f"……另有 {tally.hidden} 行问题未显示 / {tally.hidden} more problem rows not shown")
    console.print(tally.summary())
    if tally.counts[Level.INVALID]:
        raise typer.Exit(code=1)


def check_values(values: list[str], *, kind: IdentifierKind, today: date | None) -> None:
    """`govshare validate uscc|idcard|orgcode`: one row per value, then a summary line."""
    outcomes = [validate_value(value, kind=kind, today=today) for value in values]
    judged = [outcome for outcome in outcomes if outcome is not None]
    table = Table(title=KIND_NAMES[kind])
    table.add_column("值 value", no_wrap=True)
    table.add_column("结论 outcome", no_wrap=True)
    table.add_column("原因 reason", no_wrap=True)
    table.add_column("说明 message")
    show_normalized = any(outcome.normalized for outcome in judged)
    if show_normalized:
        table.add_column("规范形式 normalized", no_wrap=True)
    for outcome in judged:
        table.add_row(*_row_cells(outcome), *([shown(outcome.normalized)] if show_normalized else []))
    tally = _Tally(max_rows=0)
    for outcome in judged:
        tally.counts[outcome.level] += 1
    console = _console()
    console.print(table)
    console.print(tally.summary())
    if tally.counts[Level.INVALID]:
        raise typer.Exit(code=1)


def _row_cells(outcome: Outcome) -> list[str]:
    # The value is a person's or a file's text, shown; only the verdict's own style is markup.
    style = _LEVEL_STYLES[outcome.level]
    reason = outcome.reason.value if outcome.reason else ""
    return [shown(outcome.value), f"[{style}]{outcome.level.label}[/]", shown(reason),
            shown(f"{outcome.message_zh} / {outcome.message_en}")]


@dataclass
class _Tally:
    max_rows: int
    counts: dict[Level, int] = field(default_factory=lambda: dict.fromkeys(Level, 0))
    empty: int = 0
    shown: list[tuple[int, Outcome]] = field(default_factory=list)
    hidden: int = 0

    def add_batch(self, batch: pa.Array, outcome: ArrayOutcome, *, first_row: int) -> None:
        # Counted with numpy; only the few rows that get listed are turned into Python objects.
        status = pc.fill_null(outcome.status, -1).to_numpy()
        self.empty += outcome.status.null_count
        for level in Level:
            self.counts[level] += int(np.count_nonzero(status == level))
        problems = np.flatnonzero(status > Level.VALID)
        room = max(self.max_rows - len(self.shown), 0)
        self.hidden += max(len(problems) - room, 0)
        for index in problems[:room].tolist():
            value = batch[index].as_py()
            judged = outcome.outcome_at(index, None if value is None else str(value))
            if judged is not None:
                self.shown.append((first_row + index, judged))

    def summary(self) -> str:
        valid, warning, invalid = (self.counts[level] for level in Level)
        total = valid + warning + invalid + self.empty
        empty_zh = f"，空值 {self.empty}" if self.empty else ""
        empty_en = f", {self.empty} empty" if self.empty else ""
        return (
            f"共 {total} 个：有效 {valid}，存疑 {warning}，无效 {invalid}{empty_zh} / "
            f"{total} values: {valid} valid, {warning} warning, {invalid} invalid{empty_en}"
        )


def _problem_table(rows: list[tuple[int, Outcome]], *, title: str) -> Table:
    table = Table(title=title)
    table.add_column("行号 row", justify="right", no_wrap=True)
    table.add_column("值 value", no_wrap=True)
    table.add_column("结论 outcome", no_wrap=True)
    table.add_column("原因 reason", no_wrap=True)
    table.add_column("说明 message")
    for row, outcome in rows:
        table.add_row(str(row), *_row_cells(outcome))
    return table


def _read_column(path: Path, *, column: str, sheet: str | None, encoding: str) -> Iterator[pa.Array]:
    """Yield the column in batches of at most BATCH_ROWS rows, never loading the whole file."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt", ".tsv"):
        return _read_csv(path, column=column, encoding=encoding, delimiter="\t" if suffix == ".tsv" else ",")
    if suffix in (".xlsx", ".xlsm"):
        return _read_xlsx(path, column=column, sheet=sheet)
    if suffix in (".parquet", ".pq"):
        return _read_parquet(path, column=column)
    raise ConfigError(f"不支持的文件类型 unsupported file type {suffix!r}; use .csv, .xlsx or .parquet")


def _read_csv(path: Path, *, column: str, encoding: str, delimiter: str) -> Iterator[pa.Array]:
    from pyarrow import csv

    try:
        reader = csv.open_csv(
            path,
            read_options=csv.ReadOptions(encoding=encoding, block_size=1 << 22),
            parse_options=csv.ParseOptions(delimiter=delimiter),
            # Read as text: a reader guessing integers would drop leading zeros and the X of ID numbers.
            convert_options=csv.ConvertOptions(
                include_columns=[column], column_types={column: pa.string()}, strings_can_be_null=True
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowKeyError, LookupError) as exc:
        raise ConfigError(f"无法读取列 cannot read column {column!r} from {path.name}: {exc}") from None
    for batch in reader:
        yield from _split(batch.column(0))


def _read_xlsx(path: Path, *, column: str, sheet: str | None) -> Iterator[pa.Array]:
    from openpyxl import load_workbook

    check_package(path, max_unpacked_bytes=MAX_UNPACKED_BYTES)  # a zip bomb refused before it is unpacked
    try:
        workbook = load_workbook(path, read_only=True, data_only=True)  # read-only streams rows from the zip
    except (*XML_ERRORS, KeyError, ValueError) as exc:
        raise xml_refusal(path, exc) from None
    try:
        yield from _xlsx_column(workbook, path, column=column, sheet=sheet)
    except XML_ERRORS as exc:
        raise xml_refusal(path, exc) from None
    finally:
        workbook.close()


def _xlsx_column(workbook, path: Path, *, column: str, sheet: str | None) -> Iterator[pa.Array]:  # noqa: ANN001
    if sheet is not None and sheet not in workbook.sheetnames:
        raise ConfigError(f"工作表不存在 no sheet {sheet!r} in {path.name}; sheets: {workbook.sheetnames}")
    worksheet = workbook[sheet] if sheet is not None else workbook.worksheets[0]
    keep_typed_escapes(worksheet)  # a typed x005F_1 read as 1, as every workbook reader of the hub reads it
    worksheet.reset_dimensions()  # a stated <dimension ref="A1:B2"/> left every row below 2 unchecked
    rows = worksheet.iter_rows(values_only=True)
    header = [_cell_text(cell) for cell in next(rows, ())]
    names = [name.strip() if name else "" for name in header]
    if column not in names:
        raise ConfigError(f"列不存在 no column {column!r} in {path.name}; columns: {[n for n in names if n]}")
    index = names.index(column)
    batch: list[str | None] = []
    for row in rows:
        batch.append(_cell_text(row[index]) if index < len(row) else None)
        if len(batch) == BATCH_ROWS:
            yield pa.array(batch, type=pa.string())
            batch = []
    if batch:
        yield pa.array(batch, type=pa.string())


def _read_parquet(path: Path, *, column: str) -> Iterator[pa.Array]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    if column not in parquet.schema_arrow.names:
        raise ConfigError(f"列不存在 no column {column!r} in {path.name}; columns: {parquet.schema_arrow.names}")
    for batch in parquet.iter_batches(columns=[column], batch_size=BATCH_ROWS):
        yield batch.column(0)


def _split(array: pa.Array) -> Iterator[pa.Array]:
    for start in range(0, len(array), BATCH_ROWS):
        yield array.slice(start, BATCH_ROWS)


def _cell_text(cell: object) -> str | None:
    """Spreadsheet cell as text; whole numbers are written out in full, as Excel shows them."""
    if cell is None:
        return None
    if isinstance(cell, float) and cell.is_integer():
        # repr keeps only the digits the float really holds: 916201055811843000, not ...843072.
        return str(int(Decimal(repr(cell))))
    if isinstance(cell, datetime | date):
        return cell.isoformat()
    text = str(unescaped(cell))  # Excel's _x000D_ is the character it stands for
    return text if text.strip() else None


def _console() -> Console:
    # Wide enough that an 18-character code and its verdict never wrap when output goes to a file or pipe.
    console = Console()
    return console if console.is_terminal else Console(width=160)
