"""What a person reads (呈现): codes as Chinese labels, instants in Beijing time, days as 2026年12月6日.

Every surface a person reads (the web pages, the PDF form and report, Excel workbooks, the CLI) formats through
this module, so a code is labelled from the one table (`schemas/labels.yaml`) and a time is never shown in UTC.
The API keeps the codes and ISO instants; it is read by programs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from core import clock
from core.errors import ConfigError

LABELS_FILE = Path(__file__).with_name("labels.yaml")
# An application's or obligation's due day while the year's State Council working-day schedule is unknown.
DUE_UNKNOWN_CODE = "awaiting_schedule"
# An evaluation metric with nothing to measure in the period (its denominator is 0): never shown as 0 % or 100 %.
NO_DATA = "无数据"
# An agency whose every metric is without data (or that registered no resource) has no score and no rank.
NOT_SCORED = "不参与评分"


@cache
def _table() -> dict[str, dict[str, str]]:
    raw = yaml.safe_load(LABELS_FILE.read_text(encoding="utf-8"))
    return {kind: {str(code): str(text) for code, text in codes.items()} for kind, codes in raw.items()}


def labels(kind: str) -> dict[str, str]:
    """One list of the table, {code: Chinese label}, in its order (for drop-downs and filters)."""
    try:
        return dict(_table()[kind])
    except KeyError:
        raise ConfigError(f"no label list {kind!r} in {LABELS_FILE}") from None


def _key(code: object) -> str:
    return str(code).lower() if isinstance(code, bool) else str(code)


def label(kind: str, code: object) -> str:
    """The Chinese label of a code ('' for none). A code the list lacks shows as itself rather than failing a
    page; tests/test_presentation.py checks that every code the registry can store has a label."""
    if code is None or code == "":
        return ""
    return labels(kind).get(_key(code), str(code))


def label_list(kind: str, codes: Iterable[object] | None, sep: str = "、") -> str:
    return sep.join(label(kind, code) for code in codes or [])


def code_of(kind: str, text: str) -> str | None:
    """The code a person meant: the code itself, its label, or the label's short form before the brackets
    (有条件共享 for 有条件共享（按需共享）)."""
    table = labels(kind)
    if text in table:
        return text
    for code, shown in table.items():
        if text in (shown, shown.split("（")[0]):
            return code
    return None


def evidence(records: Iterable[dict[str, Any]], shown: int = 6) -> str:
    """A violation's evidence records by their Chinese table names: 共享申请第12号，同步运行 run-7 等8条."""
    records = list(records)
    text = "，".join(f"{label('record_tables', r['table'])}第{r['id']}号" if str(r["id"]).isdigit()
                    else f"{label('record_tables', r['table'])} {r['id']}" for r in records[:shown])
    return text + (f" 等{len(records)}条" if len(records) > shown else "")


def named(name: str | None, code: str | None) -> str:
    """A person or agency by name with its code beside it: 上海市市场监督管理局（11310000002420017X）."""
    if not code or not name or name == code:
        return name or code or ""
    return f"{name}（{code}）"


def day(value: date | datetime | str | None) -> str:
    """A day as a form asks for it: 2026年12月6日; an instant is first taken to its Beijing day."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = date.fromisoformat(value)
    if isinstance(value, datetime):
        value = clock.beijing_day(value)
    return f"{value.year}年{value.month}月{value.day}日"


# An ISO day inside a recorded text, not part of a longer number, range or timestamp.
_ISO_DAY = re.compile(r"(?<![\d-])(\d{4})-(\d{2})-(\d{2})(?![\d:T-])")


def days_in(text: str | None) -> str:
    """A recorded text (a violation's facts, 违规事实) with each ISO day in it as a person reads it:
    已过 2026-11-16 的答复期限 -> 已过 2026年11月16日 的答复期限. The record and the API keep the ISO days."""

    def shown(match: re.Match[str]) -> str:
        try:
            return day(date(*(int(part) for part in match.groups())))
        except ValueError:  # not a day after all (2026-13-45): left as written
            return match.group(0)

    return _ISO_DAY.sub(shown, text or "")


def due_day(value: date | str | None) -> str:
    """A due day, or the reason it is not known yet (the year's working-day schedule is missing)."""
    return day(value) if value else label("due_statuses", DUE_UNKNOWN_CODE)


def shown_share(value: float | None) -> float | None:
    """A metric to the 0.1 % every surface shows (the notice workbook stores it, under a 0.0% format): rounded,
    except that a share short of all never reads 100.0 % and one above none never reads 0.0 % (2999 of 3000 rows
    passing read 100.0 %, as if all had)."""
    if value is None:
        return None
    shown = round(value, 3)
    return max(0.001, shown) if 0 < value < 0.5 else min(0.999, shown) if 0.5 <= value < 1 else shown


def share(value: float | None) -> str:
    """An evaluation metric as every surface shows it (web page, notice, CLI): 66.7%; 无数据 when there was
    nothing to measure. One format, so a figure reads the same wherever it appears."""
    return NO_DATA if value is None else f"{shown_share(value) * 100:.1f}%"


def score(value: float | None) -> str:
    """An evaluation score (0-100, two decimals), or 不参与评分."""
    return NOT_SCORED if value is None else f"{value:.2f}"


def moment(value: datetime | None) -> str:
    """An instant on Beijing's wall clock: 2026年12月6日 14:39（北京时间）. A naive value is UTC (the registry's)."""
    if value is None:
        return ""
    local = clock.to_beijing(value)
    return f"{day(local.date())} {local:%H:%M}（北京时间）"


def moment_compact(value: datetime | None) -> str:
    """The same for tables whose heading says 北京时间 (CLI, Excel): 2026-12-06 14:39."""
    return "" if value is None else f"{clock.to_beijing(value):%Y-%m-%d %H:%M}"


def cell(value: object, data_type: str | None = None) -> str:
    """A data value in a browsing table: instants on Beijing's wall clock to the second, decimals as written.
    A source that keeps times as text (SQLite) is read by the catalogue's data type: an ISO timestamp with its
    offset is shown in Beijing time, one without an offset as it was recorded."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return label("yes_no", value)
    if isinstance(value, datetime):
        return f"{clock.to_beijing(value):%Y-%m-%d %H:%M:%S}" if value.tzinfo else f"{value:%Y-%m-%d %H:%M:%S}"
    if isinstance(value, date):
        return value.isoformat()
    if data_type == "timestamp" and isinstance(value, str):
        try:
            return cell(datetime.fromisoformat(value))
        except ValueError:
            return value
    if isinstance(value, bytes | list | dict | timedelta):  # as CSV writes them, not Python's reprs
        # Imported here: it brings pyarrow, and labels and times are wanted where no table is (the CLI's start).
        from connectors.arrowconv import value_text

        return value_text(value)
    return str(value)
