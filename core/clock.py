"""The hub's one clock (时钟): every service, page, DAG task and command asks it the time.

- :func:`now` is the current instant, timezone-aware, in UTC: what the registry stores.
- :func:`today` is the current day in Beijing time (北京时间): the day the measures' working-day clocks
  (工作日时限) count from, and the day a person in Shanghai would call "today".
- :func:`beijing_day`, :func:`as_utc` and :func:`to_beijing` convert; SQLite hands datetimes back naive, and a
  naive datetime in the registry is always UTC.

Tests pin the instant they mean with ``time-machine``, which moves ``datetime.now`` itself, so this module has
no test hook of its own. A process that a pinned test starts (the demo, a CLI or Airflow in a subprocess) follows
the same pinned clock through ``GOVSHARE_CLOCK_SHIFT_SECONDS``: the pinned instant minus the real one, so the
parent and its children agree to the second however long they run. It is honoured only together with
``GOVSHARE_DEMO=1``, so a production hub can never be told what time it is: its audit trail keeps the real time.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta, timezone

__all__ = ["BEIJING_TIME", "UTC", "as_utc", "beijing_day", "now", "to_beijing", "today"]

# China has kept UTC+8 without daylight saving since 1991, so a fixed offset is exact and needs no tzdata.
BEIJING_TIME = timezone(timedelta(hours=8), "Asia/Shanghai")

_SHIFT_VARIABLE = "GOVSHARE_CLOCK_SHIFT_SECONDS"


def _read_shift() -> timedelta | None:
    raw = os.environ.get(_SHIFT_VARIABLE, "").strip()
    if not raw or os.environ.get("GOVSHARE_DEMO", "").lower() not in ("1", "true", "yes"):
        return None
    try:
        return timedelta(seconds=float(raw))
    except ValueError:
        raise SystemExit(f"{_SHIFT_VARIABLE}={raw!r} is not a number of seconds") from None


_SHIFT = _read_shift()


def now() -> datetime:
    """The current instant (aware, UTC)."""
    moment = datetime.now(UTC)
    return moment if _SHIFT is None else moment + _SHIFT


def as_utc(moment: datetime) -> datetime:
    """An aware UTC datetime; a naive one (as SQLite returns) is read as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def to_beijing(moment: datetime) -> datetime:
    """The same instant on Beijing's wall clock."""
    return as_utc(moment).astimezone(BEIJING_TIME)


def beijing_day(moment: datetime) -> date:
    """The day an instant falls on in Beijing."""
    return to_beijing(moment).date()


def today() -> date:
    """Today in Beijing."""
    return beijing_day(now())
