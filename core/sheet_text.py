"""Text in the CSV files people open in a spreadsheet (供人打开的 CSV 中的文本): no formula runs, no value changes.

A CSV cell has no type: Excel and WPS run a cell starting with ``=``, ``+``, ``-`` or ``@`` (and a tab or CR before
one) as a formula, so a name such as ``=HYPERLINK("http://evil","点我")`` from an agency's data becomes a live
link in the reader's sheet (CSV injection). The CSV files the hub writes for people to read or fill in (the
catalogue export, the quarantined rows for correction, the administrators filing list) follow OWASP's advice:
such a value is written with a leading ``'``, which the spreadsheet shows as a text marker. The files the hub
reads back (catalogue import, quarantine replay) take one such ``'`` off again, so a value goes out and comes back
exactly. A plain number (``-5``, ``+86``, ``1e3``) is no formula and stays as it is.

Machine exchange files (CSV downloads, ``govshare export``, Parquet, Arrow, JSON) are not touched: their values are
read byte for byte (ARCHITECTURE.md, "Excel cells are text, never formulas").
"""

from __future__ import annotations

import re
from typing import Any

_RUNS = ("=", "@", "\t", "\r")
_SIGNS = ("+", "-")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
MARK = "'"


def _would_run(text: str) -> bool:
    return text.startswith(_RUNS) or (text.startswith(_SIGNS) and _NUMBER.fullmatch(text) is None)


def for_people(value: Any) -> Any:
    """A value as a CSV cell people open: a text a spreadsheet would run gets one more leading ``'``."""
    if isinstance(value, str) and _would_run(value.lstrip(MARK)):
        return MARK + value
    return value


def from_people(value: Any) -> Any:
    """A CSV cell read back: the ``'`` ``for_people`` added taken off (the inverse, for every text)."""
    if isinstance(value, str) and value.startswith(MARK) and _would_run(value.lstrip(MARK)):
        return value[1:]
    return value
