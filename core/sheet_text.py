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

Names and short labels people type (an agency's, a person's or account's name, a resource's, entry's, data item's,
element's, source's or token's name, an application's scope) are refused where they are registered or edited when
they begin with ``=``, ``+``, ``@`` or a control character (``checked_name``): no such name is a real one, and one
path that forgot the output marking would hand a colleague a live formula. ``-`` may begin a name (-1层停车场,
a signed figure in a label) and is only marked on output; free text (purposes, reasons, summaries) is not
refused, it is marked on output like any value.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from core.errors import InvalidInput

_RUNS = ("=", "@", "\t", "\r")
_SIGNS = ("+", "-")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
MARK = "'"


def _would_run(text: str) -> bool:
    return text.startswith(_RUNS) or (text.startswith(_SIGNS) and _NUMBER.fullmatch(text) is None)


_REFUSED_START = ("=", "+", "@")


def checked_name(value: str, *, what_zh: str, what_en: str) -> str:
    """A typed name or label as given, or InvalidInput (HTTP 422) when it begins like a formula or with a control
    character; leading spaces do not hide a formula (`` =1+1`` is refused too)."""
    if value and (unicodedata.category(value[0]) == "Cc" or value.lstrip().startswith(_REFUSED_START)):
        raise InvalidInput(zh=f"{what_zh}不能以 =、+、@ 或控制字符开头（表格软件会把它当作公式执行）：{value!r}，"
                              f"请删去开头的符号后再提交",
                           en=f"{what_en} must not begin with =, +, @ or a control character (a spreadsheet would "
                              f"run it as a formula): {value!r}; remove the leading character")
    return value


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
