"""Working-day calendar (工作日历) for the statutory clocks (法定时限).

The Shanghai measures count in working days (工作日): a catalogue update within 2 working days (articles 10
and 16), a decision on a conditional-sharing application within 10 working days (article 14). A working day
is a Monday-Friday that is not a public holiday (法定节假日), or a weekend day the State Council turned into a
working day (调休上班日).

Where the calendar comes from, per year:

- ``chinesecalendar`` (bundled library) for the years it ships data for (2004-2026 in 1.11.0);
- a schedule file an operator drops into the calendar folder (``GOVSHARE_CALENDAR_DIR``, default
  ``var/calendars``), one per year, named ``2027.json`` (or ``2027.yaml``), transcribing the State Council
  notice (国务院办公厅关于部分节假日安排的通知). See ``core/calendar/schedules/2027.example.json``.
  **A file for a year the library also covers overrides the library for that whole year** (an operator
  correction), so such a file must hold the complete schedule of that year.

A day in a year neither source covers raises :class:`UnknownCalendarYear`: a deadline is never guessed.

Counting rule: "N working days after D" counts working days strictly after D, so from 2025-10-04 (a National
Day holiday) 1 working day later is 2025-10-09, and N=0 is D itself.

New Year's holidays sometimes start in late December (the 2024 notice gave 2023-12-30..2024-01-01 off), so a
schedule for year Y may also list days of December Y-1; those days are taken from the year-Y schedule.

Parsed files are cached and re-read when their modification time or size changes; :func:`reload_calendars`
forgets everything explicitly (e.g. after a file was replaced in place within the same second).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Literal

from core import clock
from core.errors import ConfigError
from core.settings import get_settings
from core.calendar.schedule_file import (
    EXAMPLE_SCHEDULE,
    SCHEDULE_SUFFIXES,
    HolidayPeriod,
    InvalidScheduleFile,
    ScheduleFile,
    read_schedule_file,
)

__all__ = [
    "DayKind",
    "DayStatus",
    "HolidayPeriod",
    "InvalidScheduleFile",
    "ScheduleFile",
    "UnknownCalendarYear",
    "YearSource",
    "add_working_days",
    "day_status",
    "deadline",
    "is_working_day",
    "known_years",
    "library_years",
    "load_schedule_file",
    "read_schedule_file",
    "reload_calendars",
    "working_days_between",
]



# --------------------------------------------------------------------------------------------- errors


class UnknownCalendarYear(ConfigError):
    """No holiday schedule (节假日安排) is known for the year; the message tells the operator how to add it."""

    def __init__(self, year: int, calendar_dir: Path) -> None:
        folder = calendar_dir.absolute()
        first, last = _library_year_bounds()
        super().__init__(
            f"no working-day calendar (工作日历) for {year}: the chinesecalendar library covers {first}-{last} "
            f"and the calendar folder {folder} (GOVSHARE_CALENDAR_DIR) has no {year}.json / {year}.yaml, "
            f"so working days in {year} cannot be counted (a deadline is never guessed). To fix: transcribe "
            f"the State Council notice 国务院办公厅关于{year}年部分节假日安排的通知 into a file named {year}.json like "
            f'{{"year": {year}, "holidays": [{{"name": "春节", "start": "YYYY-MM-DD", "end": "YYYY-MM-DD"}}, ...], '
            f'"workdays": ["YYYY-MM-DD", ...], "source": "国办发明电〔{year - 1}〕N号"}} '
            f"(\"workdays\" are the 调休 weekend working days; see {EXAMPLE_SCHEDULE}), then run "
            f"`govshare calendar load {year}.json`, which checks it and installs it as {folder / f'{year}.json'}."
        )
        self.year = year
        self.calendar_dir = calendar_dir


# --------------------------------------------------------------------------------- per-year calendars


class DayKind(StrEnum):
    WEEKDAY = "weekday"  # 工作日: an ordinary Monday-Friday
    WEEKEND = "weekend"  # 周末: an ordinary Saturday or Sunday
    HOLIDAY = "holiday"  # 法定节假日 / 调休放假: off by the notice
    ADJUSTED_WORKDAY = "adjusted_workday"  # 调休上班日: a weekend day worked by the notice


@dataclass(frozen=True)
class DayStatus:
    """Why a day is or is not a working day, and which calendar said so."""

    day: date
    kind: DayKind
    holiday_name: str | None  # the holiday, or for a 调休 working day the holiday it makes up for (if known)
    origin: str  # "chinesecalendar 1.11.0" or the schedule file's path

    @property
    def is_working_day(self) -> bool:
        return self.kind in (DayKind.WEEKDAY, DayKind.ADJUSTED_WORKDAY)


@dataclass(frozen=True)
class YearSource:
    """Where the calendar of one year comes from (for ``govshare calendar years``)."""

    year: int
    origin: Literal["library", "file"]
    location: str  # library name and version, or the file path
    notice: str | None = None  # the State Council notice a file cites
    overrides_library: bool = False
    error: str | None = None  # set when the file is present but unusable


@dataclass(frozen=True)
class _YearCalendar:
    """The notice-driven days of one schedule year; every other day follows the weekday/weekend rule."""

    year: int
    origin: str
    special_days: dict[date, tuple[DayKind, str | None]] = field(default_factory=dict)
    notice: str | None = None  # the State Council notice a schedule file cites


def _library_label() -> str:
    try:
        return f"chinesecalendar {version('chinesecalendar')}"
    except PackageNotFoundError:
        return "chinesecalendar"


@cache
def _library_year_bounds() -> tuple[int, int]:
    from chinese_calendar import constants

    years = {day.year for day in constants.holidays}
    return min(years), max(years)


def library_years() -> range:
    """The years the bundled chinesecalendar has data for (2004-2026 in version 1.11.0)."""
    first, last = _library_year_bounds()
    return range(first, last + 1)


def _chinese_holiday_name(english: str) -> str:
    from chinese_calendar.constants import Holiday

    try:
        return Holiday(english).chinese
    except ValueError:
        return english


@cache
def _library_calendar(year: int) -> _YearCalendar:
    from chinese_calendar import constants

    def belongs_to(day: date, name: str) -> bool:
        # December days named New Year's Day come from the next year's notice (e.g. 2023-12-30 in 2024's).
        next_years_new_year = day.month == 12 and name == "New Year's Day"
        return (day.year == year and not next_years_new_year) or (day.year == year - 1 and next_years_new_year)

    special: dict[date, tuple[DayKind, str | None]] = {}
    for day, name in constants.holidays.items():
        if belongs_to(day, name):
            special[day] = (DayKind.HOLIDAY, _chinese_holiday_name(name))
    for day, name in constants.workdays.items():
        if belongs_to(day, name):
            special[day] = (DayKind.ADJUSTED_WORKDAY, _chinese_holiday_name(name))
    return _YearCalendar(year=year, origin=_library_label(), special_days=special)


def _calendar_from_schedule(schedule: ScheduleFile, path: Path) -> _YearCalendar:
    special: dict[date, tuple[DayKind, str | None]] = {}
    for period in schedule.holidays:
        for day in period.days():
            special[day] = (DayKind.HOLIDAY, period.name)
    for day in schedule.workdays:
        special[day] = (DayKind.ADJUSTED_WORKDAY, None)
    return _YearCalendar(year=schedule.year, origin=str(path), special_days=special, notice=schedule.source)


# Parsed schedule files, keyed by path and re-read when (mtime, size) changes, so a file an operator adds
# or corrects is picked up by a running server without a restart.
_parsed_files: dict[Path, tuple[tuple[int, int], _YearCalendar]] = {}


def reload_calendars() -> None:
    """Forget every cached calendar; the next lookup re-reads the calendar folder."""
    _parsed_files.clear()
    _library_calendar.cache_clear()


def _schedule_path_for(calendar_dir: Path, year: int) -> Path | None:
    present = [calendar_dir / f"{year}{suffix}" for suffix in SCHEDULE_SUFFIXES]
    present = [path for path in present if path.is_file()]
    if len(present) > 1:
        names = ", ".join(path.name for path in present)
        raise InvalidScheduleFile(present[0], f"{calendar_dir} holds several schedules for {year} ({names}); keep one")
    return present[0] if present else None


def _calendar_from_file(path: Path) -> _YearCalendar:
    try:
        stat = path.stat()
    except OSError as exc:  # removed or unreadable between listing and reading
        raise InvalidScheduleFile(path, f"cannot read it ({exc})") from None
    fingerprint = (stat.st_mtime_ns, stat.st_size)
    cached = _parsed_files.get(path)
    if cached and cached[0] == fingerprint:
        return cached[1]
    schedule = read_schedule_file(path)
    if str(schedule.year) != path.stem:
        raise InvalidScheduleFile(
            path, f"the file says year {schedule.year} but is named {path.name}; name it {schedule.year}{path.suffix}"
        )
    calendar = _calendar_from_schedule(schedule, path)
    _parsed_files[path] = (fingerprint, calendar)
    return calendar


class _CalendarLookup:
    """Answers day questions for one public call; remembers each year it has looked up during that call."""

    def __init__(self, calendar_dir: Path | None) -> None:
        self.calendar_dir = Path(calendar_dir) if calendar_dir is not None else get_settings().calendar_dir
        self._years: dict[int, _YearCalendar | None] = {}

    def year(self, year: int) -> _YearCalendar | None:
        if year not in self._years:
            path = _schedule_path_for(self.calendar_dir, year)
            if path is not None:
                self._years[year] = _calendar_from_file(path)
            elif year in library_years():
                self._years[year] = _library_calendar(year)
            else:
                self._years[year] = None
        return self._years[year]

    def status(self, day: date) -> DayStatus:
        if day.month == 12:
            following = self.year(day.year + 1)
            if following is not None and day in following.special_days:
                kind, name = following.special_days[day]
                return DayStatus(day, kind, name, following.origin)
        current = self.year(day.year)
        if current is None:
            raise UnknownCalendarYear(day.year, self.calendar_dir)
        if day in current.special_days:
            kind, name = current.special_days[day]
            return DayStatus(day, kind, name, current.origin)
        kind = DayKind.WEEKEND if day.weekday() >= 5 else DayKind.WEEKDAY
        return DayStatus(day, kind, None, current.origin)

    def is_working_day(self, day: date) -> bool:
        return self.status(day).is_working_day


# ----------------------------------------------------------------------------------------- public API


def day_status(day: date, *, calendar_dir: Path | None = None) -> DayStatus:
    """Whether ``day`` is a working day (工作日) and why: weekday, weekend, holiday or 调休 working day."""
    return _CalendarLookup(calendar_dir).status(_as_day(day))


def is_working_day(day: date, *, calendar_dir: Path | None = None) -> bool:
    """True for a working day (工作日); raises :class:`UnknownCalendarYear` for a year with no schedule."""
    return _CalendarLookup(calendar_dir).is_working_day(_as_day(day))


def add_working_days(start: date, n: int, *, calendar_dir: Path | None = None) -> date:
    """The day ``n`` working days after ``start``, counting only working days strictly after ``start``.

    ``add_working_days(date(2025, 10, 4), 1) == date(2025, 10, 9)``; ``n=0`` returns ``start``. Raises
    :class:`UnknownCalendarYear` as soon as the count steps into a year with no schedule.
    """
    if n < 0:
        raise ValueError(f"n must be 0 or more working days, got {n}")
    lookup = _CalendarLookup(calendar_dir)
    day, remaining = _as_day(start), n
    while remaining:
        day += timedelta(days=1)
        if lookup.is_working_day(day):
            remaining -= 1
    return day


def working_days_between(start: date, end: date, *, calendar_dir: Path | None = None) -> int:
    """How many working days lie in (start, end]: ``start`` itself is not counted, ``end`` is."""
    start, end = _as_day(start), _as_day(end)
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    lookup = _CalendarLookup(calendar_dir)
    return sum(lookup.is_working_day(start + timedelta(days=offset)) for offset in range(1, (end - start).days + 1))


def deadline(start: datetime | date, working_days: int, *, calendar_dir: Path | None = None) -> date:
    """Last day (期限届满日) of a clock of ``working_days`` working days that starts on ``start``.

    The clock starts the day after receipt, whatever the time of receipt. A timezone-aware ``start`` is
    taken in Beijing time (a request at 2025-10-09 17:00 UTC arrived on 2025-10-10 in Shanghai); a naive
    one is assumed to be Beijing time already.
    """
    if isinstance(start, datetime):
        start = (clock.to_beijing(start) if start.tzinfo is not None else start).date()
    return add_working_days(start, working_days, calendar_dir=calendar_dir)


def known_years(*, calendar_dir: Path | None = None) -> list[YearSource]:
    """Every year with a calendar and its origin: the library, or a file (which wins over the library)."""
    folder = Path(calendar_dir) if calendar_dir is not None else get_settings().calendar_dir
    sources: dict[int, YearSource] = {
        year: YearSource(year=year, origin="library", location=_library_label()) for year in library_years()
    }
    schedule_files = sorted(folder.glob("*")) if folder.is_dir() else []
    for path in schedule_files:
        if not (path.is_file() and path.suffix.lower() in SCHEDULE_SUFFIXES and path.stem.isdigit()):
            continue  # e.g. 2027.example.json or a README
        year = int(path.stem)
        overrides = year in library_years()
        try:
            _schedule_path_for(folder, year)
            notice, error = _calendar_from_file(path).notice, None
        except ConfigError as exc:
            notice, error = None, str(exc)
        sources[year] = YearSource(year, "file", str(path), notice, overrides, error)
    return [sources[year] for year in sorted(sources)]


def load_schedule_file(path: Path, *, calendar_dir: Path | None = None) -> Path:
    """Validate a State Council schedule file and install it in the calendar folder as ``<year>.json|yaml``.

    Replaces an earlier file for the same year in the same format; refuses when one in the other format
    exists (two schedules for one year would be ambiguous). Returns the installed path.
    """
    path = Path(path)
    schedule = read_schedule_file(path)
    folder = Path(calendar_dir) if calendar_dir is not None else get_settings().calendar_dir
    suffix = ".yaml" if path.suffix.lower() in (".yaml", ".yml") else ".json"
    target = folder / f"{schedule.year}{suffix}"
    for other_suffix in SCHEDULE_SUFFIXES:
        other = folder / f"{schedule.year}{other_suffix}"
        if other.name != target.name and other.is_file():
            raise ConfigError(
                f"{folder} already holds {other.name} for {schedule.year}; remove it before loading "
                f"{path.name}, so the year has a single schedule"
            )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not (target.exists() and target.resolve() == path.resolve()):
            _copy_atomically(path, target)
    except OSError as exc:
        raise ConfigError(f"cannot install {path} into {folder}: {exc}") from None
    reload_calendars()
    return target


def _copy_atomically(source: Path, target: Path) -> None:
    # A running server may read the folder at any moment; it must see the old file or the new one, not half.
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(handle)
    try:
        shutil.copyfile(source, temporary)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _as_day(value: date) -> date:
    # datetime is a date subclass; keep only the calendar day so comparisons and dict lookups work.
    return value.date() if isinstance(value, datetime) else value
