"""Python values to Arrow columns, faithfully; a value that does not fit is a per-row problem, not a crash."""

from __future__ import annotations

import json
import math
import re
from datetime import date, datetime, time, timedelta, timezone
from decimal import Context, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc

from connectors.base import ROW_PROBLEM_COLUMN, ROW_RAW_COLUMN

DECIMAL_TYPE = re.compile(r"(?:DECIMAL|NUMERIC)\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)", re.I)
# Unconstrained NUMERIC has no declared precision; 38 digits with 10 after the point keeps real data exact.
DEFAULT_DECIMAL = pa.decimal128(38, 10)


def decimal_type(precision: int, scale: int) -> pa.DataType:
    """An exact type for DECIMAL(precision, scale): decimal128 up to 38 digits, decimal256 up to 76, beyond that
    the value's text (PostgreSQL allows 1000 digits; a float would change it)."""
    if precision <= 38:
        return pa.decimal128(precision, scale)
    if precision <= 76:
        return pa.decimal256(precision, scale)
    return pa.string()


def arrow_type_for_declared(declared: str) -> pa.DataType:
    """SQLite-style declared types (and common SQL spellings) to Arrow types."""
    upper = (declared or "").upper()
    if match := DECIMAL_TYPE.search(upper):
        return decimal_type(int(match.group(1)), int(match.group(2) or 0))
    if "INT" in upper:
        return pa.int64()
    if "BOOL" in upper:
        return pa.bool_()
    if "TIMESTAMPTZ" in upper or "WITH TIME ZONE" in upper:
        return pa.timestamp("us", tz="UTC")
    if "DATETIME" in upper or "TIMESTAMP" in upper:
        return pa.timestamp("us")
    if "DATE" in upper:
        return pa.date32()
    if any(word in upper for word in ("REAL", "FLOA", "DOUB")):
        return pa.float64()
    if "NUMERIC" in upper or "DECIMAL" in upper:
        return DEFAULT_DECIMAL
    if "BLOB" in upper:
        return pa.binary()
    return pa.string()


def _convert_one(value: Any, target: pa.DataType) -> Any:
    if value is None:
        return None
    if pa.types.is_decimal(target):
        number = Decimal(str(value))
        if not number.is_finite():
            raise ValueError("is not a finite number")
        quantum = Decimal(1).scaleb(-target.scale)
        try:
            # The context's precision is the column's: the default 28 digits would refuse valid decimal128 values.
            exact = number.quantize(quantum, context=Context(prec=target.precision))
        except InvalidOperation:
            raise ValueError(f"exceeds precision {target.precision}") from None
        if exact != number:
            raise ValueError(f"has more than {target.scale} decimal places")
        if len(exact.as_tuple().digits) > target.precision:
            raise ValueError(f"exceeds precision {target.precision}")
        return exact
    if pa.types.is_date(target):
        return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
    if pa.types.is_timestamp(target):
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        if target.tz is None and moment.tzinfo is not None:
            raise ValueError("carries a time zone in a column declared without one")
        if isinstance(moment.tzinfo, ZoneInfo) and _skipped(moment):
            raise ValueError(f"is a wall-clock time {moment.tzinfo.key} skipped (its clocks were put forward): "
                             "no instant to publish; correct the value or the source's datetime_timezone")
        return moment
    if pa.types.is_integer(target):
        if isinstance(value, float) and not value.is_integer():
            raise ValueError("is not a whole number")
        number, bits = int(value), target.bit_width
        low, high = ((0, 2**bits - 1) if pa.types.is_unsigned_integer(target)
                     else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1))
        if not low <= number <= high:  # pa.array would fail the whole read on it
            raise ValueError(f"is outside the range of {target} ({low} to {high})")
        return number
    if pa.types.is_floating(target):
        number = float(value)
        if math.isinf(number) and str(value).strip().lstrip("+-").lower() not in ("inf", "infinity"):
            raise ValueError(f"is outside the range of {target}")  # 1e400 is not infinity
        return number
    if pa.types.is_boolean(target):
        if value in (0, 1, True, False, "0", "1", "true", "false"):
            return value in (1, True, "1", "true")
        raise ValueError("is not a boolean")
    if pa.types.is_binary(target):
        return bytes(value)
    if pa.types.is_time(target):
        if isinstance(value, time):
            return value
        if isinstance(value, timedelta):  # MySQL drivers give TIME as a duration, which may not be a time of day
            if timedelta(0) <= value < timedelta(days=1):
                return (datetime.min + value).time()
            raise ValueError(f"{duration_text(value)} is not a time of day (00:00:00 to 23:59:59.999999)")
        return time.fromisoformat(str(value))
    if pa.types.is_duration(target):
        return value if isinstance(value, timedelta) else parse_duration(str(value))
    if pa.types.is_nested(target):
        return value  # Arrow judges it (below)
    if isinstance(value, list | tuple | dict):  # a json or array column a driver parsed: JSON, not Python's repr
        return json_text(value)
    return value if isinstance(value, str) else str(value)


def _skipped(moment: datetime) -> bool:
    """A wall-clock time in a zone's gap (Shanghai's 1990-04-15 02:30): Arrow would store the instant an hour
    on, and the published wall clock would be 03:30, not the value written."""
    return moment.astimezone(timezone.utc).astimezone(moment.tzinfo).replace(tzinfo=None) != \
        moment.replace(tzinfo=None)


def json_text(value: Any) -> str:
    """A parsed JSON value (or a driver's array or structure) written as JSON, exact decimals as numbers:
    json.dumps wrote them as strings ({"lng": "121.4737"}), and str() as Python's repr ({'k': 1}, None)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k), ensure_ascii=False)}: {json_text(v)}"
                               for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(json_text(v) for v in value) + "]"
    if isinstance(value, Decimal) and value.is_finite():
        return str(value)
    return json.dumps(value, ensure_ascii=False, default=str)


def to_arrow_column(name: str, values: list[Any], target: pa.DataType) -> tuple[pa.Array, dict[int, str]]:
    """The column as Arrow plus {row index: problem} for values that could not be converted."""
    try:
        if pa.types.is_decimal(target) or pa.types.is_date(target) or pa.types.is_timestamp(target):
            raise pa.ArrowInvalid("convert value by value")  # text and floats need checked conversion
        return pa.array(values, type=target), {}
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        pass
    converted: list[Any] = []
    problems: dict[int, str] = {}
    for index, value in enumerate(values):
        try:
            converted.append(_convert_one(value, target))
        except (ValueError, TypeError, InvalidOperation, OverflowError) as exc:
            converted.append(None)
            problems[index] = f"{name}={value!r}: {exc or 'cannot be read as ' + str(target)}"
    try:
        return pa.array(converted, type=target), problems
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        pass
    # A value of a kind no conversion above knows: its row is flagged, the read goes on (it failed whole)
    for index, value in enumerate(converted):
        try:
            pa.scalar(value, type=target)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError):
            converted[index] = None
            problems[index] = f"{name}={values[index]!r}: cannot be read as {target}"
    return pa.array(converted, type=target), problems


BINARY_PREFIX = "\\x"  # binary values as text: PostgreSQL's form, \xdeadbeef


def value_text(value: Any) -> str:
    """One value as text, the one form the hub writes where a type has no text of its own (a quarantined
    row's raw values, CSV and Excel cells, browsing pages, JSON answers; pipeline/text_values.py reads it
    back): bytes as BINARY_PREFIX + hex, arrays and structures as JSON, durations as duration_text, times in
    ISO 8601, anything else as str()."""
    if isinstance(value, bytes | bytearray | memoryview):
        return BINARY_PREFIX + bytes(value).hex()
    if isinstance(value, timedelta):
        return duration_text(value)
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, ensure_ascii=False, default=_json_item)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _json_item(value: Any) -> str:
    """An array's or structure's element JSON has no form for: bytes as BINARY_PREFIX + hex (str() wrote
    Python's b'...', which nothing read back), anything else as str()."""
    if isinstance(value, bytes | bytearray | memoryview):
        return BINARY_PREFIX + bytes(value).hex()
    return str(value)


def duration_text(value: timedelta) -> str:
    """A duration as MySQL shows a TIME value: [-]HH:MM:SS, hours unbounded, and the fraction of a second
    where there is one (01:02:03, 838:59:59.999, -12:00:00); Python's own (34 days, 22:59:59.999000) is not."""
    micros = value // timedelta(microseconds=1)
    sign, micros = ("-" if micros < 0 else ""), abs(micros)
    seconds, fraction = divmod(micros, 1_000_000)
    text = f"{sign}{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    return text + (f".{fraction:06d}".rstrip("0") if fraction else "")


DURATION_TEXT = re.compile(r"(-?)(\d+):([0-5]\d):([0-5]\d)(?:\.(\d{1,6}))?")


def parse_duration(text: str) -> timedelta:
    """duration_text read back; ValueError names the expected form."""
    found = DURATION_TEXT.fullmatch(text.strip())
    if found is None:
        raise ValueError(f"{text!r} is not a duration written as [-]HH:MM:SS[.ffffff], e.g. 838:59:59.5")
    sign, hours, minutes, seconds, fraction = found.groups()
    value = timedelta(hours=int(hours), minutes=int(minutes), seconds=int(seconds),
                      microseconds=int((fraction or "0").ljust(6, "0")))
    return -value if sign else value


def with_flags(batch: pa.RecordBatch, problems: dict[int, list[str]], raw: dict[int, dict[str, str]], *,
               places: list[str] | None = None) -> pa.RecordBatch:
    """The batch with its row-problem column (each row's problems, after its place in a file where given),
    and beside it the values those problems concern as read."""
    flags = [None if i not in problems else "; ".join(problems[i]) if places is None
             else f"{places[i]}: {'; '.join(problems[i])}" for i in range(batch.num_rows)]
    batch = batch.append_column(ROW_PROBLEM_COLUMN, pa.array(flags, pa.string()))
    if raw:
        batch = batch.append_column(ROW_RAW_COLUMN, pa.array(
            [json.dumps(raw[i], ensure_ascii=False) if i in raw else None for i in range(len(flags))], pa.string()))
    return batch


def add_flags(batch: pa.RecordBatch, problems: dict[int, list[str]], raw: dict[int, dict[str, str]]) -> pa.RecordBatch:
    """with_flags on a batch that may carry flags already (a later check of the same rows): each row's problems
    and values as read are added to those it has."""
    if ROW_PROBLEM_COLUMN not in batch.schema.names:
        return with_flags(batch, problems, raw)
    flags = batch.column(ROW_PROBLEM_COLUMN).to_pylist()
    held = batch.column(ROW_RAW_COLUMN).to_pylist() if ROW_RAW_COLUMN in batch.schema.names else [None] * len(flags)
    for row, found in problems.items():
        flags[row] = "; ".join([*([flags[row]] if flags[row] else []), *found])
    for row, values in raw.items():
        held[row] = json.dumps({**json.loads(held[row] or "{}"), **values}, ensure_ascii=False)
    batch = batch.drop_columns([c for c in (ROW_PROBLEM_COLUMN, ROW_RAW_COLUMN) if c in batch.schema.names])
    batch = batch.append_column(ROW_PROBLEM_COLUMN, pa.array(flags, pa.string()))
    return batch.append_column(ROW_RAW_COLUMN, pa.array(held, pa.string())) if any(held) else batch


def rows_to_batch(names: list[str], types: list[pa.DataType], rows: list[tuple]) -> pa.RecordBatch:
    """Row tuples to a record batch; adds the row-problem column only when some value did not fit."""
    columns = list(zip(*rows)) if rows else [() for _ in names]
    arrays: list[pa.Array] = []
    problems: dict[int, list[str]] = {}
    raw: dict[int, dict[str, str]] = {}
    for name, target, values in zip(names, types, columns):
        array, column_problems = to_arrow_column(name, list(values), target)
        arrays.append(array)
        for index, problem in column_problems.items():
            problems.setdefault(index, []).append(problem)
            if values[index] is not None:
                raw.setdefault(index, {})[name] = value_text(values[index])
    batch = pa.RecordBatch.from_arrays(arrays, names=names)
    if problems:
        batch = with_flags(batch, problems, raw)
    return batch


def cast_opaque_numeric(column: pa.Array, target: pa.DataType,
                        name: str) -> tuple[pa.Array, dict[int, str], dict[int, str]]:
    """Decimal text from a driver (e.g. PostgreSQL numeric) to exact decimals; unfit values flagged:
    {row: problem} and {row: the value as read}."""
    storage = column.storage if isinstance(column, pa.ExtensionArray) else column
    try:
        return pc.cast(storage, target), {}, {}
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        values = storage.to_pylist()
        array, problems = to_arrow_column(name, values, target)
        return array, problems, {i: value_text(values[i]) for i in problems if values[i] is not None}
