"""The hub's one clock (时钟): every service, page, DAG task and command asks it the time.

- :func:`now` is the current instant, timezone-aware, in UTC: what the registry stores.
- :func:`today` is the current day in Beijing time (北京时间): the day the measures' working-day clocks
  (工作日时限) count from, and the day a person in Shanghai would call "today".
- :func:`beijing_day`, :func:`as_utc` and :func:`to_beijing` convert; SQLite hands datetimes back naive, and a
  naive datetime in the registry is always UTC.

Tests pin the instant they mean with ``time-machine``, which moves ``datetime.now`` itself, so this module has
no test hook of its own. A process started by a pinned test (the demo, a CLI in a subprocess) is pinned through
``GOVSHARE_CLOCK_AT`` (an ISO instant with its offset). It is honoured only together with ``GOVSHARE_DEMO=1``,
so a production hub can never be told what time it is: its audit trail keeps the real time. A pinned clock
still ticks, from that instant, at the real pace.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, date, datetime, timedelta, timezone

__all__ = ["BEIJING_TIME", "UTC", "as_utc", "beijing_day", "now", "to_beijing", "today"]

# China has kept UTC+8 without daylight saving since 1991, so a fixed offset is exact and needs no tzdata.
BEIJING_TIME = timezone(timedelta(hours=8), "Asia/Shanghai")

_PIN_VARIABLE = "GOVSHARE_CLOCK_AT"


def _read_pin() -> tuple[datetime, float] | None:
    """The pinned start instant and the monotonic reading it corresponds to, when this process is pinned."""
    raw = os.environ.get(_PIN_VARIABLE, "").strip()
    if not raw or os.environ.get("GOVSHARE_DEMO", "") not in ("1", "true", "True", "yes"):
        return None
    try:
        start = datetime.fromisoformat(raw)
    except ValueError as error:
        raise SystemExit(f"{_PIN_VARIABLE}={raw!r} is not an ISO instant such as 2026-12-17T10:00:00+08:00 "
                         f"({error})") from None
    if start.tzinfo is None:
        raise SystemExit(f"{_PIN_VARIABLE}={raw!r} needs its offset, e.g. 2026-12-17T10:00:00+08:00")
    return start.astimezone(UTC), time.monotonic()


_PIN = _read_pin()


def now() -> datetime:
    """The current instant (aware, UTC)."""
    if _PIN is not None:
        start, at = _PIN
        return start + timedelta(seconds=time.monotonic() - at)
    return datetime.now(UTC)


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
