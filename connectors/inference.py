"""A file's or API's columns typed from its first rows (when the stream declares none): the narrowest Arrow
type every sampled value fits, text when in doubt, so nothing is lost; and what a later value of such a column
must look like to be read as the inference read the first ones (connectors/tabular.py checks it)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa

# re.ASCII: Python's \d is any Unicode digit, and 1２ (a full-width digit typed in a Chinese input method)
# inferred a column integer and was published as 12.
INTEGER = re.compile(r"^[+-]?(?:0|[1-9]\d{0,17})$", re.ASCII)  # no leading zeros: codes such as 0012 stay text
# What a text cell of a column inferred integer or decimal must look like, as the inference read its first rows:
# past them, 050000 (a postcode) was cast to 50000 and 1e3 to 1000, silently.
INFERRED_FORMS = {"integer": r"^[+-]?(?:0|[1-9]\d*)$", "decimal": r"^[+-]?(?:0|[1-9]\d*)(?:\.\d+)?$"}
DECIMAL = re.compile(r"^[+-]?(?:0|[1-9]\d*)\.(\d+)$", re.ASCII)
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$", re.ASCII)
ISO_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?$",
                           re.ASCII)


def _kind(value: Any) -> tuple[str, int]:
    """A sample value's kind and, for decimals, its scale."""
    if isinstance(value, bool):
        return "bool", 0
    if isinstance(value, int):
        return ("int", 0) if -(2**63) <= value < 2**63 else ("decimal", 0)
    if isinstance(value, Decimal):
        return ("decimal", max(0, -value.as_tuple().exponent)) if value.is_finite() else ("str", 0)
    if isinstance(value, float):
        return "float", 0
    if isinstance(value, datetime):
        return ("tstz" if value.tzinfo else "ts"), 0
    if isinstance(value, date):
        return "date", 0
    text = str(value).strip()
    if INTEGER.match(text):
        return "int", 0
    if match := DECIMAL.match(text):
        return "decimal", len(match.group(1))
    if text.lower() in ("true", "false"):
        return "bool", 0
    if ISO_DATE.match(text):
        return "date", 0
    if match := ISO_TIMESTAMP.match(text):
        return ("tstz" if match.group(1) else "ts"), 0
    return "str", 0


def infer_type(values: Iterable[Any]) -> pa.DataType:
    """The narrowest Arrow type every sample value fits; text when in doubt, so nothing is lost."""
    inference = Inference()
    for value in values:
        inference.add(value)
    return inference.type()


class Inference:
    """infer_type one value at a time, keeping the kinds seen and the largest scale, never the values (an API
    page's records are streamed: connectors/http_stream.py)."""

    def __init__(self) -> None:
        self.kinds: set[str] = set()
        self.scale = 0

    def add(self, value: Any) -> None:
        if value is None:
            return
        kind, value_scale = _kind(value)
        self.kinds.add(kind)
        self.scale = max(self.scale, value_scale)

    def type(self) -> pa.DataType:
        kinds, scale = self.kinds, self.scale
        if not kinds or "str" in kinds:
            return pa.string()
        if kinds == {"int"}:
            return pa.int64()
        if kinds <= {"int", "decimal"}:
            return pa.decimal128(38, min(scale, 37))
        if kinds <= {"int", "float", "decimal"}:
            return pa.float64()
        if kinds == {"bool"}:
            return pa.bool_()
        if kinds == {"date"}:
            return pa.date32()
        if kinds <= {"date", "ts"}:
            return pa.timestamp("us")
        if kinds <= {"date", "ts", "tstz"}:
            return pa.timestamp("us", tz="UTC")
        return pa.string()
