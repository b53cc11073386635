"""Dates and times a consumer can hold: years 1 to 9999 (日期范围).

PostgreSQL also stores ``infinity`` and ``-infinity`` (an agency's "valid until further notice"), years BC and
years up to 294276. The drivers pass them on as Arrow values no consumer can read back: a date of 2**31-1 days,
a timestamp of 2**63-1 microseconds (Python, Excel and the API's JSON all fail on them), and DuckDB's scanner
wraps some into other, wrong dates (-infinity became 28165 BC). Such a value is taken out of its row (NULL) and
the row is flagged with the value as read, so it is quarantined with its reason and the provider decides what
the date means (NULL, or 9999-12-31 for "no end"); nothing is published changed.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# 0001-01-01 and 9999-12-31 as days since 1970-01-01
FIRST_DAY, LAST_DAY = -719_162, 2_932_896
SECONDS = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def _bounds(kind: pa.DataType) -> tuple[int, int, pa.DataType] | None:
    if pa.types.is_date32(kind):
        return FIRST_DAY, LAST_DAY, pa.int32()
    if pa.types.is_date64(kind):
        return FIRST_DAY * 86_400_000, (LAST_DAY + 1) * 86_400_000 - 1, pa.int64()
    if pa.types.is_timestamp(kind):
        per_second = SECONDS[kind.unit]
        return FIRST_DAY * 86_400 * per_second, (LAST_DAY + 1) * 86_400 * per_second - 1, pa.int64()
    return None


def _as_read(value: int, kind: pa.DataType, storage: pa.DataType) -> str:
    top = np.iinfo(np.int32 if storage == pa.int32() else np.int64)
    if value == top.max:
        return "infinity"
    if value in (top.min, top.min + 1):
        return "-infinity"
    unit = "D" if pa.types.is_date32(kind) else "ms" if pa.types.is_date64(kind) else kind.unit
    return str(np.datetime64(int(value), unit))


def out_of_range_times(batch: pa.RecordBatch) -> tuple[list[pa.Array], dict[int, list[str]], dict[int, dict[str, str]]]:
    """The batch's columns with dates and times outside years 1 to 9999 as NULL, and per row its problems and
    the values as read (for connectors.arrowconv.with_flags)."""
    arrays = list(batch.columns)
    problems: dict[int, list[str]] = {}
    raw: dict[int, dict[str, str]] = {}
    for index, field in enumerate(batch.schema):
        bounds = _bounds(field.type)
        if bounds is None or not len(arrays[index]):
            continue
        low, high, storage = bounds
        values = arrays[index].view(storage)
        outside = pc.fill_null(pc.or_(pc.less(values, low), pc.greater(values, high)), False)
        if not pc.any(outside).as_py():
            continue
        numbers = values.to_numpy(zero_copy_only=False)
        for row in np.flatnonzero(outside.to_numpy(zero_copy_only=False)):
            text = _as_read(int(numbers[row]), field.type, storage)
            problems.setdefault(int(row), []).append(
                f"{field.name}={text}: 超出日期范围 / is outside the years 1 to 9999 (PostgreSQL's infinity, a year BC "
                "or after 9999), which consumers cannot read; store such a date as NULL, or as 9999-12-31 for "
                "'no end'")
            raw.setdefault(int(row), {})[field.name] = text
        arrays[index] = pc.if_else(outside, pa.nulls(len(values), field.type), arrays[index])
    return arrays, problems, raw
