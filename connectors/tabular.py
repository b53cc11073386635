"""Rows of CSV and Excel files (and JSON records) to Arrow record batches, shared by the files, sftp and http kinds.

A table has columns, each with an Arrow type, either declared in the source config (a SQL-like type per column:
``decimal(18,2)``, ``integer``, ``date``, ``timestamptz``, ``text``, ...) or inferred from the first rows read.
Text columns are cast by Arrow in one step; a column where that fails is converted value by value. A row that
cannot be read faithfully (a value that does not fit its column, a CSV line with the wrong number of fields,
bytes that are not text in the file's encoding) is flagged on its row with its reason and its place (file and
line), never dropped and never a crashed run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Context, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pyarrow as pa
import pyarrow.compute as pc

from connectors.arrowconv import arrow_type_for_declared, to_arrow_column, value_text, with_flags
from connectors.base import ROW_ORIGIN_COLUMN
from connectors.inference import INFERRED_FORMS
from core.errors import ConfigError

UNDECODABLE = re.compile(r"[\udc80-\udcff]")  # bytes surrogateescape could not decode
# A double holds every integer only below 2**53: a spreadsheet number past it (an 18-digit ID number typed as a
# number, which Excel saves with 15 significant digits) has lost digits that cannot be told.
EXACT_FLOAT_LIMIT = 2**53
NOT_PLAIN_DIGITS = ("数字须用半角 0-9 书写，不含全角数字或下划线 / a number must be written with the digits 0-9 "
                    "(no full-width digits such as １２, no underscores such as 1_000); correct the cell at the "
                    "source and deliver the file again")
# Any number of up to 15 significant digits reads back from a double as written (DBL_DIG); past that, or far
# enough from 1 to leave its range, it may not (123456789012345678 reads back as ...680, 1e-400 as 0).
DOUBLE_DIGITS = 15
TRUE_WORDS, FALSE_WORDS = {"true", "t", "yes", "y", "1", "是"}, {"false", "f", "no", "n", "0", "否"}


@dataclass(frozen=True)
class Column:
    name: str          # the column's name in the published dataset
    type: pa.DataType
    header: str        # its heading in the file (or key in a JSON record)
    inferred: bool = False  # typed from a file's first rows, not declared


def declared_columns(spec: Any) -> list[Column] | None:
    """``{"id": "integer", ...}`` or ``[{"name": "uscc", "type": "text", "header": "统一社会信用代码"}, ...]``."""
    if not spec:
        return None
    items = [{"name": k, "type": v} for k, v in spec.items()] if isinstance(spec, dict) else spec
    columns = []
    for item in items:
        if not isinstance(item, dict) or not item.get("name"):
            raise ConfigError(f"column declaration {item!r} needs a name and a type, "
                              'e.g. {"name": "id", "type": "integer"}')
        columns.append(Column(name=str(item["name"]), type=arrow_type_for_declared(str(item.get("type") or "text")),
                              header=str(item.get("header") or item["name"])))
    return columns


def check_parsing(stream: str, settings: dict[str, Any]) -> None:
    """A stream's parsing settings of the right kind, refused when the source is registered: a null_values of
    "NA" made every cell reading N or A a NULL (a set of its letters), a header_row of "abc" was an internal
    error at the first read."""
    nulls = settings.get("null_values")
    if nulls is not None and (not isinstance(nulls, list) or not all(isinstance(v, str) for v in nulls)):
        raise ConfigError(f'stream {stream!r}: null_values must be a list of texts, e.g. ["", "NA", "-"]; '
                          f"got {nulls!r}")
    for name in ("header_row", "infer_rows", "page_size", "first_page", "max_pages"):
        value = settings.get(name)
        if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and value >= 0
                                      or isinstance(value, str) and value.strip().isdigit()):
            raise ConfigError(f"stream {stream!r}: {name} must be a whole number, e.g. 2; got {value!r}")
    if settings.get("header_row") is not None and int(settings["header_row"]) < 1:
        raise ConfigError(f"stream {stream!r}: header_row counts from 1 (the first line or row)")


def double_keeps(value: int | Decimal | str) -> bool:
    """The double nearest the number reads back as the number, to the digits it was written with (0.1, 12.30
    and 0.10000000000000001 do; 123456789012345678 and 1e-400 do not). Text that is no number is judged later."""
    try:
        number = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        return True
    if not number.is_finite():
        return True  # inf is a double; nan too
    held = Decimal(float(number))
    if not held.is_finite():
        return True  # past a double's range: said as such where it is converted (1e400 is no infinity)
    return Context(prec=len(number.as_tuple().digits)).plus(held) == number


def _day(value: str | datetime) -> date:
    """A date column's value: a day, or a moment at midnight of it (2026-03-01 00:00:00, with a zone or not);
    ValueError for any other time of day, which the day alone would drop, and for text that is no such day
    (to_arrow_column took the first ten characters: 2026-03-01 待核实 was that day)."""
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("不是日期 / is not a date (YYYY-MM-DD)") from None
    if value.time() != datetime.min.time():
        raise ValueError(f"带有时刻 {value.time().isoformat()}，日期列会丢弃它 / the time of day "
                         f"{value.time().isoformat()} would be dropped by a date column: declare the column as "
                         "timestamp (or timestamptz) to keep it, or have the provider send the day alone")
    return value.date()


def flag(value: Any, default: bool = False) -> bool:
    """A yes/no setting, which may arrive as text from ``-o KEY=VALUE``."""
    if value is None or value == "":
        return default
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "no", "0", "off")
    return bool(value)


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "Asia/Shanghai")
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"timezone {name!r} is not a known time zone (e.g. Asia/Shanghai)") from None


def safe_name(header: str, index: int) -> str:
    """A heading as a column name; a heading that is no plain identifier (e.g. Chinese) is kept as it is."""
    text = " ".join(str(header).split()) if header is not None else ""
    return text or f"column_{index + 1}"


# --- values ---------------------------------------------------------------------------------------------------

class ShownAsDay(datetime):
    """A spreadsheet cell's day and time whose number format shows the day alone (yyyy-mm-dd): a text column
    takes the day, as Excel shows it; a typed column takes the time it holds, as any datetime."""


def shown_date(value: date | datetime) -> str:
    """A spreadsheet's date cell in a text column as Excel shows it: 2026-01-05 for a day (a date-formatted cell
    holds a day at midnight, or a time of day it does not show: ShownAsDay), 2026-01-05 08:30:00 with a time of
    day (and its fraction, if the cell has one). ISO's 2026-01-05T00:00:00 was published, a form the clerk never
    saw."""
    if isinstance(value, ShownAsDay):
        return value.date().isoformat()
    if not isinstance(value, datetime):
        return value.isoformat()
    if value.time() == datetime.min.time() and value.tzinfo is None:
        return value.date().isoformat()
    return value.isoformat(sep=" ")


class Normalizer:
    """Cell values as the Python values ``to_arrow_column`` converts faithfully to each column's type."""

    def __init__(self, columns: list[Column], *, null_values: Iterable[str] = ("",), timezone: str | None = None) -> None:
        self.names = [c.name for c in columns]
        self.nulls = set(null_values)
        self.zone = zone(timezone)
        # inferred integer and decimal columns: name -> the form their text cells must have (INFERRED_FORMS)
        self.forms = {c.name: INFERRED_FORMS["integer" if pa.types.is_integer(c.type) else "decimal"]
                      for c in columns if c.inferred and (pa.types.is_integer(c.type) or pa.types.is_decimal(c.type))}

    def text(self, values: list[Any], *, encoding: str = "utf-8") -> tuple[list[Any], str | None]:
        """Text cells with bytes the file's encoding could not decode: repaired for the data, quoted in a problem
        as the file's own bytes (encoded back in ``encoding``, the one they were read in: as UTF-8, a GBK file's
        characters around the stray byte were quoted as bytes the file never held)."""
        out, problems = [], []
        for name, value in zip(self.names, values):
            if isinstance(value, str) and UNDECODABLE.search(value):
                raw = value.encode(encoding, "surrogateescape").hex(" ")
                problems.append(f"{name}=十六进制 hex {raw}: 无法按文件编码 {encoding} 解码 / bytes that are not text "
                                f"in the file's encoding ({encoding}), shown as the file holds them")
                value = UNDECODABLE.sub("\ufffd", value)
            out.append(value)
        return out, "; ".join(problems) or None

    def value(self, value: Any, target: pa.DataType, *, form: str | None = None) -> Any:
        """One value for its column; ValueError says why it does not fit. ``form``: the pattern a text cell of an
        inferred column must match (Normalizer.forms)."""
        if value is None or (isinstance(value, str) and value in self.nulls):
            return None
        if isinstance(value, bool) and (pa.types.is_integer(target) or pa.types.is_decimal(target)
                                        or pa.types.is_floating(target)):
            # Python's True is the number 1: an Excel TRUE or a JSON true in a number column was published as 1
            raise ValueError("是/否值不是数字 / a TRUE/FALSE value is no number")
        if pa.types.is_floating(target) and isinstance(value, int | Decimal | str) and not double_keeps(value):
            raise ValueError(
                "双精度浮点数存不下这个数，发布的将是近似值 / a double cannot hold this number as written (an 18-digit "
                "ID would be published with its last digits changed): declare the column as decimal(p,s), or "
                "text for codes and IDs")
        if isinstance(value, float) and abs(value) >= EXACT_FLOAT_LIMIT and not pa.types.is_floating(target):
            raise ValueError(
                "表格中的数字超过 2**53，末几位已丢失 / a spreadsheet number past 2**53: a double keeps about 15 "
                "significant digits, so the digits published would be made up (an 18-digit ID number typed as a "
                "number); have the export write this column as text (format its cells as 文本 / Text) and deliver "
                "the file again")
        if form is not None and isinstance(value, str) and value.strip() \
                and re.match(form, value.strip(), re.ASCII) is None:
            raise ValueError(
                "与推断的列类型不符（如前导零的代码 050000）/ does not read as the number the column was inferred "
                "from its first rows (infer_rows) to hold, e.g. a code with a leading zero would lose it; declare "
                "the column's type in the stream's columns (text keeps every value as written)")
        if pa.types.is_string(target):
            if isinstance(value, float) and value.is_integer():
                return str(int(value))  # an Excel number in a text column: 91310000 not 91310000.0
            return shown_date(value) if isinstance(value, (date, datetime)) else str(value)
        if isinstance(value, str):
            value = value.strip()
            if not value and "" in self.nulls:
                return None  # a blank cell in a typed column
            if pa.types.is_decimal(target) or pa.types.is_integer(target) or pa.types.is_floating(target):
                if not value.isascii() or "_" in value:
                    # Python reads １２ (full-width digits) as 12 and 1_000 as 1000: a typo published as a
                    # number that looks otherwise in the file
                    raise ValueError(NOT_PLAIN_DIGITS)
                try:
                    number = Decimal(value)
                except InvalidOperation:
                    raise ValueError("不是数字 / is not a number") from None
                if not number.is_finite() and not pa.types.is_floating(target):
                    raise ValueError("不是有限数字 / is not a finite number")
                return value  # converted (and checked against precision and scale) by to_arrow_column
            if pa.types.is_boolean(target):
                lowered = value.lower()
                return True if lowered in TRUE_WORDS else False if lowered in FALSE_WORDS else value
            if pa.types.is_timestamp(target) and target.tz is not None:
                try:
                    value = datetime.fromisoformat(value)
                except ValueError:
                    return value  # to_arrow_column reports it
            if pa.types.is_date(target):
                value = _day(value)
        if (pa.types.is_date(target) or pa.types.is_timestamp(target)) and not isinstance(value, bool) \
                and isinstance(value, int | float | Decimal):
            # A spreadsheet's serial date became a date already (filetable.excel_dates); any other number is
            # no date: str(20260101) read as ISO text was published as a day nobody wrote, at 00:00 UTC.
            kind = ("日期", "date") if pa.types.is_date(target) else ("时间", "time")
            raise ValueError(f"数字不能读作{kind[0]}（表格的日期序列号只认 1 至 73050，即 2099-12-31 以前，及 "
                             f"2958465 即 9999-12-31）/ a number is no {kind[1]} (spreadsheet serial dates run from "
                             "1 to 73050, up to 2099-12-31, and 2958465 for 9999-12-31)")
        if pa.types.is_date(target) and isinstance(value, datetime):
            return _day(value)
        if pa.types.is_timestamp(target) and isinstance(value, datetime) and target.tz is not None \
                and value.tzinfo is None:
            return value.replace(tzinfo=self.zone)  # naive wall-clock time in the source's zone
        if isinstance(value, Decimal) and pa.types.is_integer(target):
            if not value.is_finite() or value != value.to_integral_value():
                raise ValueError("不是整数 / is not a whole number")
            return int(value)
        if isinstance(value, float) and pa.types.is_decimal(target):
            return Decimal(repr(value))
        return value

    def cast_text(self, strings: pa.Array, target: pa.DataType) -> pa.Array | None:
        """A column of text cells cast in one vectorised step, or None when some cell needs a closer look."""
        nulls = pa.array(sorted(self.nulls), pa.string())
        if pa.types.is_string(target):
            return pc.if_else(pc.is_in(strings, value_set=nulls), pa.scalar(None, pa.string()), strings) \
                if len(nulls) else strings
        trimmed = pc.utf8_trim_whitespace(strings)
        blank = pc.is_in(strings, value_set=nulls)
        if "" in self.nulls:
            blank = pc.or_(blank, pc.equal(trimmed, ""))
        trimmed = pc.if_else(blank, pa.scalar(None, pa.string()), trimmed)
        try:
            if pa.types.is_timestamp(target) and target.tz is not None:
                try:  # wall-clock times without a zone are in the source's zone
                    naive = pc.cast(trimmed, pa.timestamp(target.unit))
                    return pc.cast(pc.assume_timezone(naive, timezone=self.zone.key), target)
                except pa.ArrowInvalid:
                    return pc.cast(trimmed, target)
            if pa.types.is_floating(target) and pc.any(pc.or_(
                    pc.greater(pc.utf8_length(pc.replace_substring_regex(pc.replace_substring_regex(
                        trimmed, r"[eE].*$|[^0-9]", ""), r"^0+", "")), DOUBLE_DIGITS),
                    pc.match_substring_regex(trimmed, r"[eE][+-]?0*\d{3}"))).as_py():
                return None  # more digits than a double keeps, or an exponent near its range: value by value
            cast = pc.cast(trimmed, target)
            if pa.types.is_floating(target) and pc.any(pc.is_inf(cast)).as_py():
                # Arrow reads 1e400 as infinity: only a cell that says inf is one; the others are flagged
                written = pc.match_substring_regex(pc.utf8_lower(trimmed), r"^[+-]?inf(inity)?$")
                if pc.any(pc.and_(pc.is_inf(cast), pc.invert(written))).as_py():
                    return None
            return cast
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            return None


class BatchBuilder:
    """Collects rows with their place and problems; flushes record batches of bounded size, column by column:
    text columns are cast in one vectorised step, and only a column where that fails is converted value by
    value, so that each value that does not fit is flagged on its row."""

    def __init__(self, columns: list[Column], *, batch_rows: int, normalizer: Normalizer) -> None:
        self.names = [c.name for c in columns]
        self.types = [c.type for c in columns]
        self.batch_rows = batch_rows
        self.normalizer = normalizer
        self.rows: list[tuple] = []
        self.places: list[str] = []
        self.problems: dict[int, str] = {}
        self.origins: list[int] = []

    def add(self, row: tuple, *, place: str, problem: str | None = None,
            origin: int | None = None) -> pa.RecordBatch | None:
        """``origin``: the rank of the row's file among those read (connectors.base.ROW_ORIGIN_COLUMN)."""
        if problem:
            self.problems[len(self.rows)] = problem
        self.rows.append(row)
        self.places.append(place)
        if origin is not None:
            self.origins.append(origin)
        return self.flush() if len(self.rows) >= self.batch_rows else None

    def _column(self, name: str, target: pa.DataType, raw: list[Any]) -> tuple[pa.Array, dict[int, str]]:
        try:
            strings = pa.array(raw, pa.string())
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            strings = None  # not all text (Excel cells, JSON values)
        form = self.normalizer.forms.get(name)
        if strings is not None and form is not None:
            trimmed = pc.utf8_trim_whitespace(strings)
            odd = pc.and_(pc.invert(pc.match_substring_regex(trimmed, form)), pc.not_equal(trimmed, ""))
            if pc.any(pc.and_(odd, pc.invert(pc.is_in(strings, value_set=pa.array(sorted(self.normalizer.nulls),
                                                                                      pa.string()))))).as_py():
                strings = None  # some cell is not the number the inference saw: value by value, flagged
        if strings is not None and (fast := self.normalizer.cast_text(strings, target)) is not None:
            return fast, {}
        values: list[Any] = []
        problems: dict[int, str] = {}
        for index, value in enumerate(raw):
            try:
                values.append(self.normalizer.value(value, target, form=form))
            except ValueError as exc:
                problems[index] = f"{name}={value!r}: {exc}"
                values.append(None)
        array, more = to_arrow_column(name, values, target)
        return array, {**more, **problems}

    def flush(self, *, always: bool = False) -> pa.RecordBatch | None:
        if not self.rows and not always:
            return None
        arrays = []
        problems: dict[int, list[str]] = {i: [p] for i, p in self.problems.items()}
        raw: dict[int, dict[str, str]] = {}
        for position, (name, target) in enumerate(zip(self.names, self.types)):
            cells = [row[position] for row in self.rows]
            array, column_problems = self._column(name, target, cells)
            arrays.append(array)
            for index, problem in column_problems.items():
                problems.setdefault(index, []).append(problem)
                if cells[index] is not None:
                    raw.setdefault(index, {})[name] = value_text(cells[index])
        batch = pa.RecordBatch.from_arrays(arrays, names=self.names)
        if problems:
            batch = with_flags(batch, problems, raw, places=self.places)
        if self.origins:
            batch = batch.append_column(ROW_ORIGIN_COLUMN, pa.array(self.origins, pa.int32()))
        self.rows, self.places, self.problems, self.origins = [], [], {}, []
        return batch
