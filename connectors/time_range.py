"""Dates and times a consumer can hold: years 1 to 9999 (日期范围), times of day before 24:00.

PostgreSQL also stores ``infinity`` and ``-infinity`` (an agency's "valid until further notice"), years BC and
years up to 294276. The drivers pass them on as Arrow values no consumer can read back: a date of 2**31-1 days,
a timestamp of 2**63-1 microseconds (Python, Excel and the API's JSON all fail on them), and DuckDB's scanner
wraps some into other, wrong dates (-infinity became 28165 BC); the ADBC driver's epoch shift wraps infinity
to the far negative end (its quarantine said -5877611-06-21). Such a value is taken out of its row (NULL) and
the row is flagged with the value as read, so it is quarantined with its reason and the provider decides what
the date means (NULL, or 9999-12-31 for "no end"); nothing is published changed.

A time of day of '24:00:00' (PostgreSQL's "end of the day", an office's closing time) came as 86,400,000,000
microseconds, past what a time of day in Arrow and Parquet may hold (0 to 24 hours, the end excluded):
consumers read it as 00:00, the start of the day. It is quarantined the same way, with what to store instead.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from connectors.arrowconv import add_flags

# 0001-01-01 and 9999-12-31 as days since 1970-01-01
FIRST_DAY, LAST_DAY = -719_162, 2_932_896
SECONDS = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
END_OF_DAY = ("超出一天的时间范围 / is the end of the day, which a time of day in Arrow and Parquet cannot hold "
              "(consumers would read 00:00, the start of the day); store 23:59:59.999999, or 00:00 with the next "
              "day's date in a date column, or NULL")

OUTSIDE_THE_YEARS = ("超出日期范围 / is outside the years 1 to 9999 (PostgreSQL's infinity, a year BC or after "
                     "9999), which consumers cannot read; store such a date as NULL, or as 9999-12-31 for 'no end'")


def _bounds(kind: pa.DataType) -> tuple[int, int, pa.DataType] | None:
    if pa.types.is_time(kind):
        return 0, 86_400 * SECONDS[kind.unit] - 1, pa.int32() if pa.types.is_time32(kind) else pa.int64()
    if pa.types.is_date32(kind):
        return FIRST_DAY, LAST_DAY, pa.int32()
    if pa.types.is_date64(kind):
        return FIRST_DAY * 86_400_000, (LAST_DAY + 1) * 86_400_000 - 1, pa.int64()
    if pa.types.is_timestamp(kind):
        per_second = SECONDS[kind.unit]
        return FIRST_DAY * 86_400 * per_second, (LAST_DAY + 1) * 86_400 * per_second - 1, pa.int64()
    return None


# PostgreSQL counts from 2000-01-01: the ADBC driver adds this shift to each value for Arrow's 1970 epoch, and
# infinity (the count's largest value) wraps round to the far negative end, -infinity (its smallest) just past it
PG_EPOCH_SHIFT = {"date": 10_957, "us": 946_684_800_000_000}


def _wrapped_infinity(kind: pa.DataType, top: np.iinfo, sign: int) -> int | None:
    """How the ADBC driver delivers infinity (sign 0) or -infinity (sign 1): none of PostgreSQL's own dates
    (4713 BC at the earliest) is stored that far back, so the count tells the source's text exactly."""
    shift = PG_EPOCH_SHIFT.get("date" if pa.types.is_date32(kind) else getattr(kind, "unit", ""))
    return None if shift is None else int(top.min) + shift - 1 + sign


def _as_read(value: int, kind: pa.DataType, storage: pa.DataType) -> str:
    if pa.types.is_time(kind):  # only 24:00:00 and beyond get here: PostgreSQL's own text
        seconds, fraction = divmod(value, SECONDS[kind.unit])
        text = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        return text + (f".{fraction:0{len(str(SECONDS[kind.unit])) - 1}d}".rstrip("0") if fraction else "")
    top = np.iinfo(np.int32 if storage == pa.int32() else np.int64)
    if value == top.max or value == _wrapped_infinity(kind, top, 0):
        return "infinity"
    if value in (top.min, top.min + 1) or value == _wrapped_infinity(kind, top, 1):
        return "-infinity"
    unit = "D" if pa.types.is_date32(kind) else "ms" if pa.types.is_date64(kind) else kind.unit
    moment = np.datetime64(int(value), unit)
    if pa.types.is_date64(kind):
        moment = moment.astype("datetime64[D]")  # a date in milliseconds is still a date
    return _postgres_text(str(moment), zoned=getattr(kind, "tz", None) is not None)


def _postgres_text(iso: str, *, zoned: bool) -> str:
    """numpy's ISO text of a date or timestamp as PostgreSQL writes it (an instant in UTC), the text the source
    shows the provider and the SQLAlchemy path and array elements quote: 44 BC was '-043-03-15' (numpy counts a
    year 0), 1 BC '0000-01-01', and a timestamp '...T12:00:00.500000' where PostgreSQL writes '... 12:00:00.5'."""
    day, _, time = iso.partition("T")
    negative, day = day.startswith("-"), day.lstrip("-")
    year, rest = day.split("-", 1)
    astronomical = -int(year) if negative else int(year)
    text = f"{(1 - astronomical if astronomical <= 0 else astronomical):04d}-{rest}"
    if time:
        whole, _, fraction = time.partition(".")
        fraction = fraction.rstrip("0")
        text += f" {whole}" + (f".{fraction}" if fraction else "") + ("+00" if zoned else "")
    return text + (" BC" if astronomical <= 0 else "")


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
        # a NULL would make numpy's array float, and infinity's count read back as -infinity's
        numbers = pc.fill_null(values, 0).to_numpy(zero_copy_only=False)
        for row in np.flatnonzero(outside.to_numpy(zero_copy_only=False)):
            text = _as_read(int(numbers[row]), field.type, storage)
            problems.setdefault(int(row), []).append(
                f"{field.name}={text}: " + (END_OF_DAY if pa.types.is_time(field.type) else OUTSIDE_THE_YEARS))
            raw.setdefault(int(row), {})[field.name] = text
        arrays[index] = pc.if_else(outside, pa.nulls(len(values), field.type), arrays[index])
    return arrays, problems, raw


def flag_out_of_range(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The batch with such values taken out (NULL) and their rows flagged, beside any flags it carries."""
    arrays, problems, raw = out_of_range_times(batch)
    return add_flags(pa.RecordBatch.from_arrays(arrays, schema=batch.schema), problems, raw) if problems else batch


def flag_dates_as_text(batch: pa.RecordBatch, texts: dict[int, dict[str, str]]) -> pa.RecordBatch:
    """The batch with the rows whose dates or times were outside the years 1 to 9999 flagged as
    :func:`out_of_range_times` flags them; ``texts``: per row, each such column's text as the source wrote it
    (read beside the value, which is NULL: a driver made infinity a true date, 9999-12-31)."""
    problems = {row: [f"{name}={text}: {OUTSIDE_THE_YEARS}" for name, text in found.items()]
                for row, found in texts.items()}
    return add_flags(batch, problems, texts) if texts else batch
