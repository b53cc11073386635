"""Evaluation periods (评估期): a year (2026), a quarter (2026Q4) or a month (2026-11), in Beijing dates."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from core import clock
from core.errors import ConfigError

_PATTERN = re.compile(r"^(?P<year>\d{4})(?:[Qq](?P<quarter>[1-4])|-(?P<month>0[1-9]|1[0-2]))?$")


@dataclass(frozen=True)
class Period:
    code: str
    start: date
    end: date  # inclusive

    @property
    def label(self) -> str:
        """Chinese label for titles: 2026年第四季度, 2026年11月, 2026年度."""
        year = self.start.year
        if self.code.upper().endswith(("Q1", "Q2", "Q3", "Q4")):
            return f"{year}年第{'一二三四'[int(self.code[-1]) - 1]}季度"
        if "-" in self.code:
            return f"{year}年{self.start.month}月"
        return f"{year}年度"

    @property
    def start_at(self) -> datetime:
        """First instant of the period (Beijing midnight), as an aware datetime."""
        return datetime.combine(self.start, time.min, clock.BEIJING_TIME)

    @property
    def end_at(self) -> datetime:
        """First instant after the period."""
        return datetime.combine(self.end + timedelta(days=1), time.min, clock.BEIJING_TIME)

    def previous(self) -> Period:
        return parse_period(_shift(self.code, -1))


def _month_end(year: int, month: int) -> date:
    return (date(year + month // 12, month % 12 + 1, 1)) - timedelta(days=1)


def parse_period(code: str) -> Period:
    match = _PATTERN.match(code.strip())
    if not match:
        raise ConfigError(f"评估期 {code!r} 格式不对，应为 2026、2026Q4 或 2026-11 / a period is a year (2026), a quarter "
                          "(2026Q4) or a month (2026-11)")
    year = int(match["year"])
    if match["quarter"]:
        quarter = int(match["quarter"])
        return Period(f"{year}Q{quarter}", date(year, 3 * quarter - 2, 1), _month_end(year, 3 * quarter))
    if match["month"]:
        month = int(match["month"])
        return Period(f"{year}-{month:02d}", date(year, month, 1), _month_end(year, month))
    return Period(str(year), date(year, 1, 1), date(year, 12, 31))


def _shift(code: str, steps: int) -> str:
    period = parse_period(code)
    if "Q" in period.code:
        index = period.start.year * 4 + (period.start.month - 1) // 3 + steps
        return f"{index // 4}Q{index % 4 + 1}"
    if "-" in period.code:
        index = period.start.year * 12 + period.start.month - 1 + steps
        return f"{index // 12}-{index % 12 + 1:02d}"
    return str(period.start.year + steps)


def trailing(code: str, count: int) -> list[Period]:
    """The `count` periods ending with `code`, oldest first (the report's trend)."""
    return [parse_period(_shift(code, -k)) for k in range(count - 1, -1, -1)]


def current_quarter(today: date) -> str:
    return f"{today.year}Q{(today.month - 1) // 3 + 1}"
