"""A State Council holiday schedule file (国务院节假日安排文件) as an operator writes it, and its validation.

The State Council publishes each year's schedule (国务院办公厅关于部分节假日安排的通知) in the autumn or winter;
until a release of the calendar library carries it, an operator transcribes it into ``<year>.json`` (or .yaml)
and installs it with ``govshare calendar load`` (core/calendar/workdays.py). See ``core/calendar/schedules/2027.example.json``.

A file is refused, with the line that is wrong, unless: every holiday is named (春节, 国庆节, ...) and lies in its
year (December of the year before may appear, for the New Year's holiday); every day appears at most once (no
two holidays overlap, no day is both off and worked); only Saturdays and Sundays are listed as 调休 working days.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from core.errors import ConfigError

__all__ = ["EXAMPLE_SCHEDULE", "SCHEDULE_SUFFIXES", "HolidayPeriod", "InvalidScheduleFile", "ScheduleFile",
           "read_schedule_file"]

SCHEDULE_SUFFIXES = (".json", ".yaml", ".yml")
EXAMPLE_SCHEDULE = "core/calendar/schedules/2027.example.json"
# A single holiday period longer than this is almost certainly a typo (wrong month), not a real notice.
LONGEST_HOLIDAY_PERIOD_DAYS = 31
_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")

Location = tuple[int | str, ...]


class InvalidScheduleFile(ConfigError):
    """A schedule file that cannot be used; the message names the file, the line and the problem."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(
            f"calendar schedule file {path}: {problem} "
            f"(format: see {EXAMPLE_SCHEDULE}; fix the file, then `govshare calendar load {path.name}`)"
        )
        self.path = path
        self.problem = problem


class _Problems(ValueError):
    """Several cross-field problems of one file, each with the location it is about."""

    def __init__(self, problems: list[tuple[Location, str]]) -> None:
        super().__init__("; ".join(message for _, message in problems))
        self.problems = problems


def _parse_calendar_day(value: object) -> object:
    # Only YYYY-MM-DD: pydantic's lax date parsing would also take integers as Unix timestamps,
    # and date.fromisoformat takes "20270205" or week dates, which in a hand-written file are typos.
    if isinstance(value, datetime):
        raise ValueError(f"expected a date without a time (YYYY-MM-DD), got {value.isoformat()!r}")
    if isinstance(value, date):
        return value
    if isinstance(value, str) and _ISO_DAY.fullmatch(value.strip()):
        try:
            return date.fromisoformat(value.strip())
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a real date ({exc})") from None
    raise ValueError(f"expected a date written YYYY-MM-DD, got {value!r}")


CalendarDay = Annotated[date, BeforeValidator(_parse_calendar_day)]


class HolidayPeriod(BaseModel):
    """One holiday of the notice (放假), e.g. 国庆节 2025-10-01..2025-10-08, both ends included."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="holiday name as in the notice, e.g. 春节, 国庆节")
    start: CalendarDay
    end: CalendarDay

    @model_validator(mode="before")
    @classmethod
    def _a_named_period(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            shown = value.isoformat() if isinstance(value, date) else repr(value)
            raise ValueError(f"{shown}: write each holiday with its name as the notice gives it, e.g. "
                             '{"name": "春节", "start": "YYYY-MM-DD", "end": "YYYY-MM-DD"}')
        return value

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("name the holiday as the notice does, e.g. 春节")
        return value.strip()

    @model_validator(mode="after")
    def _check_span(self) -> Self:
        if self.end < self.start:
            raise ValueError(f"{self.name}: end {self.end} is before start {self.start}")
        if (self.end - self.start).days + 1 > LONGEST_HOLIDAY_PERIOD_DAYS:
            raise ValueError(
                f"{self.name}: {self.start}..{self.end} is longer than {LONGEST_HOLIDAY_PERIOD_DAYS} days; "
                "check the month"
            )
        return self

    def days(self) -> list[date]:
        return [self.start + timedelta(days=offset) for offset in range((self.end - self.start).days + 1)]


class ScheduleFile(BaseModel):
    """A State Council holiday schedule for one year: ``holidays`` are the named off periods (放假), each
    ``{"name", "start", "end"}``; ``workdays`` the weekend days that become working days (调休上班)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    year: int = Field(ge=1949, le=2100)
    holidays: list[HolidayPeriod] = Field(min_length=1)
    workdays: list[CalendarDay] = Field(default_factory=list)
    source: str = Field(min_length=1, description="the notice, e.g. 国办发明电〔2026〕X号")
    note: str | None = None

    @field_validator("source")
    @classmethod
    def _source_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("name the State Council notice the schedule comes from")
        return value.strip()

    @model_validator(mode="after")
    def _every_day_once_and_in_its_year(self) -> Self:
        # A year-Y notice may reach back into December Y-1 for the New Year's holiday, never further.
        first_allowed, last_allowed = date(self.year - 1, 12, 1), date(self.year, 12, 31)
        problems: list[tuple[Location, str]] = []
        off_day_owner: dict[date, str] = {}
        for index, period in enumerate(self.holidays):
            label = f"holidays[{index}] {period.name}"
            if period.start < first_allowed or period.end > last_allowed:
                problems.append((("holidays", index), f"{label}: {period.start}..{period.end} is outside "
                                 f"{self.year} (only December {self.year - 1} may appear, for the New Year's holiday)"))
            if overlapping := [day for day in period.days() if day in off_day_owner]:
                problems.append((("holidays", index), f"{label}: {overlapping[0]} is already in "
                                 f"{off_day_owner[overlapping[0]]}"))
            for day in period.days():
                off_day_owner.setdefault(day, label)
        seen_workdays: set[date] = set()
        for index, day in enumerate(self.workdays):
            label, where = f"workdays[{index}] {day}", ("workdays", index)
            if not first_allowed <= day <= last_allowed:
                problems.append((where, f"{label} is outside {self.year}"))
            if day.weekday() < 5:
                problems.append((where, f"{label} is a {day.strftime('%A')}; workdays lists only the weekend "
                                 "days that become working days (调休上班日)"))
            if day in off_day_owner:
                problems.append((where, f"{label} is also an off day in {off_day_owner[day]}"))
            if day in seen_workdays:
                problems.append((where, f"{label} is listed twice"))
            seen_workdays.add(day)
        if problems:
            raise _Problems(problems)
        return self


def read_schedule_file(path: Path) -> ScheduleFile:
    """Parse and validate a schedule file (JSON or YAML); raises :class:`InvalidScheduleFile`."""
    path = Path(path)
    if path.suffix.lower() not in SCHEDULE_SUFFIXES:
        raise InvalidScheduleFile(path, f"expected a .json or .yaml file, got {path.suffix or 'no suffix'!r}")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidScheduleFile(path, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidScheduleFile(path, f"cannot read it ({exc})") from None
    raw = _parse_text(path, text)
    if not isinstance(raw, dict):
        raise InvalidScheduleFile(
            path, f"expected an object with year, holidays, workdays, source; got {type(raw).__name__}"
        )
    try:
        return ScheduleFile.model_validate(raw)
    except ValidationError as exc:
        raise InvalidScheduleFile(path, _describe(exc, _line_numbers(text))) from None


def _parse_text(path: Path, text: str) -> object:
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidScheduleFile(path, f"line {exc.lineno}: not valid JSON: {exc.msg} "
                                            f"(column {exc.colno})") from None
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise InvalidScheduleFile(path, f"{where}not valid YAML: {exc}") from None


def _line_numbers(text: str) -> dict[Location, int]:
    """Where each value of the file starts (1-based), by its location; JSON is read as the YAML it also is."""
    import yaml

    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return {}
    lines: dict[Location, int] = {}

    def walk(node: yaml.Node, at: Location) -> None:
        lines[at] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                walk(value, (*at, key.value))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, (*at, index))

    if root is not None:
        walk(root, ())
    return lines


def _describe(exc: ValidationError, lines: dict[Location, int]) -> str:
    problems: list[tuple[Location, str]] = []
    for error in exc.errors():
        loc, message = tuple(error["loc"]), error["msg"].removeprefix("Value error, ")
        if isinstance(cause := (error.get("ctx") or {}).get("error"), _Problems):
            problems.extend((tuple((*loc, *where)), text) for where, text in cause.problems)
            continue
        if error["type"] == "extra_forbidden":
            message = "unknown field (allowed: year, holidays, workdays, source, note; name, start, end in a holiday)"
        elif error["type"] == "missing":
            message = "required field is missing"
        elif error["type"] == "too_short" and loc == ("holidays",):
            message = "lists no holiday; a State Council schedule has at least one"
        where = _format_location(loc)
        problems.append((loc, f"{where}: {message}" if where and not message.startswith(where) else message))
    return "; ".join(f"line {line}: {message}" if (line := _line_of(loc, lines)) else message
                     for loc, message in problems)


def _line_of(loc: Location, lines: dict[Location, int]) -> int | None:
    # The most precise location the file has: a missing field is reported at the object that lacks it.
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _format_location(loc: Location) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
