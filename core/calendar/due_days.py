"""Statutory due days (法定期限) and the years whose working-day schedule is not published yet.

The measures' clocks count working days: an update obligation 2 (articles 10 and 16), an answer to an
application 10 (article 14), a rectification order as many as the supervisor sets (article 23). A due day that
falls in a year whose State Council holiday schedule (国务院节假日安排) is not installed is never guessed: the
duty is recorded at once with its due day unknown and the reason, and shown everywhere as
待国务院公布节假日安排 (API: ``due_on: null``, ``due_status: "awaiting_schedule"``), never as overdue.
Installing the schedule (``govshare calendar load``, or the daily supervision run finding a file an operator
put in the calendar folder) computes every pending due day and audits each one (``fill_pending`` in registry/supervision/due_days.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from core import clock
from core.calendar.workdays import UnknownCalendarYear, add_working_days, known_years

__all__ = [
    "AWAITING_SCHEDULE",
    "DECISION_WORKING_DAYS",
    "ScheduleWarning",
    "UPDATE_WORKING_DAYS",
    "due_after",
    "due_status",
    "schedule_warning",
]

# The statutory clocks, in working days.
UPDATE_WORKING_DAYS = 2  # a catalogue entry updated after a change (articles 10 and 16)
DECISION_WORKING_DAYS = 10  # the provider's answer to an application (article 14)

AWAITING_SCHEDULE = "awaiting_schedule"
# The State Council publishes next year's schedule in the autumn or winter; from November a missing one is
# worth a warning, since 10-working-day clocks started in late November already reach into it.
WARN_FROM_MONTH = 11


def due_after(start: date, working_days: int) -> tuple[date | None, str | None]:
    """The day ``working_days`` working days after ``start``, or (None, why) while its year has no schedule."""
    try:
        return add_working_days(start, working_days), None
    except UnknownCalendarYear as missing:
        return None, (f"{missing.year}年国务院节假日安排尚未安装 / the {missing.year} State Council holiday schedule "
                      f"is not installed: run `govshare calendar load {missing.year}.json` once it is published")


def due_status(due_on: date | None, *, closed: bool = False, today: date | None = None) -> str:
    """awaiting_schedule, closed, overdue (the due day has passed) or pending; the due day itself is in time."""
    if due_on is None:
        return AWAITING_SCHEDULE
    if closed:
        return "closed"
    return "overdue" if (today or clock.today()) > due_on else "pending"


def _installed(year: int) -> bool:
    return any(source.year == year and source.error is None for source in known_years())


@dataclass(frozen=True)
class ScheduleWarning:
    """This year's schedule, or from November next year's, is missing: what the operator must do."""

    year: int

    @property
    def command(self) -> str:
        return f"govshare calendar load {self.year}.json"

    @property
    def zh(self) -> str:
        return (f"{self.year}年国务院节假日安排尚未安装，到期日落在{self.year}年的时限显示为“待国务院公布节假日安排”。"
                f"国务院公布后请运行：{self.command}")

    @property
    def en(self) -> str:
        return (f"the {self.year} State Council holiday schedule is not installed, so due days in {self.year} are "
                f"unknown; once it is published, run `{self.command}`")

    def __str__(self) -> str:
        return f"{self.zh} / {self.en}"


def schedule_warning(today: date | None = None) -> ScheduleWarning | None:
    """Set while this year's schedule, or from November next year's, is not installed."""
    today = today or clock.today()
    years = [today.year, today.year + 1] if today.month >= WARN_FROM_MONTH else [today.year]
    missing = [year for year in years if not _installed(year)]
    return ScheduleWarning(missing[0]) if missing else None
