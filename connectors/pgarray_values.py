"""One element of a PostgreSQL array as a value: from PostgreSQL's text of it (every read path), and a list
column's whole value from the text replay and ``govshare verify`` are given.

Apart from connectors/pgarrays.py, which decides a column's form and turns whole columns, because these are
the rules for a single element's text, per element type: the values a list holds (char(n) unpadded,
timestamptz as UTC instants, dates and instants a consumer can read), the canonical text of an element in a
column published as text, and the way back from a quarantine export's or a CSV copy's text
(pipeline/text_values.py).
"""

from __future__ import annotations

import json
from datetime import date, datetime, timezone

import pyarrow as pa

from connectors.pgarray_text import BOUNDS, parse


def _utc_text(moment: datetime) -> str:
    """A UTC instant as PostgreSQL writes a timestamptz in a UTC session: 2026-03-01 00:00:00.5+00."""
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "+00"


def canonical_element(text: str, element: str) -> str:
    if element == "bpchar":
        return text.rstrip(" ")
    if element == "timestamptz":
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return text  # infinity, a year BC: kept as PostgreSQL wrote it
        if moment.tzinfo is not None:
            return _utc_text(moment.astimezone(timezone.utc))
    return text


def _moment(text: str, *, zoned: bool) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("超出日期范围 / is outside the years 1 to 9999 (PostgreSQL's infinity, a year BC or after "
                         "9999), which consumers cannot read") from None
    if zoned:
        return moment.astimezone(timezone.utc)
    return moment


def element_value(text: str, element: str) -> object:
    """One element's text as the value its Arrow type takes; ValueError says why it cannot be."""
    if element in ("text", "varchar"):
        return text
    if element == "bpchar":
        return text.rstrip(" ")  # as a char(n) column: connectors.postgres_adbc.faithful
    if element in ("int2", "int4", "int8"):
        return int(text)
    if element in ("float4", "float8"):
        return float(text)  # NaN, Infinity and -Infinity included, as in a float column
    if element == "bool":
        if text not in ("t", "f"):
            raise ValueError("is not a boolean")
        return text == "t"
    if element == "date":
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise ValueError("超出日期范围 / is outside the years 1 to 9999 (PostgreSQL's infinity, a year BC or "
                             "after 9999), which consumers cannot read") from None
    if element == "timestamp":
        return _moment(text, zoned=False)
    if element == "timestamptz":
        return _moment(text, zoned=True)
    if element == "bytea":
        if not text.startswith("\\x"):
            raise ValueError("is not bytea's hex output (bytea_output = hex)")
        return bytes.fromhex(text[2:])
    raise ValueError(f"has no list form ({element})")


def list_value(text: str, kind: pa.DataType) -> list:
    """A list column's value from its text, for replay and ``govshare verify``: the JSON a quarantine export or
    a CSV copy writes (pipeline/text_values.py: ``[1, null]``, instants and dates as ISO text, bytes as \\x hex)
    or PostgreSQL's text of the array as a quarantined row keeps it (``{1,NULL}``); ValueError says what is
    wrong."""
    element = kind.value_type
    if text.startswith("{") or BOUNDS.match(text):
        parsed = parse(text)
        if parsed.dims > 1 or parsed.bounds:
            raise ValueError(f"{text} is not a one-dimensional array starting at index 1, which the column's list "
                             "form needs")
        items = parsed.values
    else:
        items = json.loads(text)
        if not isinstance(items, list):
            raise ValueError(f"{text} is not an array: write it as [1, 2] (JSON) or {{1,2}}")
    return [None if item is None else _typed(item, element) for item in items]


def _typed(item: object, kind: pa.DataType) -> object:
    if isinstance(item, list | dict):
        raise ValueError(f"{json.dumps(item, ensure_ascii=False)} is not a single element")
    if not isinstance(item, str):
        return item
    if pa.types.is_timestamp(kind):
        moment = datetime.fromisoformat(item)
        return moment.astimezone(timezone.utc) if kind.tz and moment.tzinfo else moment
    if pa.types.is_date(kind):
        return date.fromisoformat(item)
    if pa.types.is_binary(kind):
        if not item.startswith("\\x"):
            raise ValueError(f"{item!r}: binary elements are written as hex after \\x, e.g. \\xdeadbeef")
        return bytes.fromhex(item[2:])
    if pa.types.is_boolean(kind):
        if item not in ("t", "f", "true", "false"):
            raise ValueError(f"{item!r} is not a boolean")
        return item in ("t", "true")
    if pa.types.is_integer(kind):
        return int(item)
    if pa.types.is_floating(kind):
        return float(item)
    return item
