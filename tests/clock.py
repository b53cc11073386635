"""Pinning the hub's clock in tests (core/clock.py): this process through time-machine, and the processes it
starts (the demo, CLI and Airflow subprocesses) through GOVSHARE_CLOCK_SHIFT_SECONDS, so both read the same
instant however long the test runs.

    with pinned(on(date(2026, 12, 20))):   # Sunday 20 December 2026, 10:00 Beijing time
        ...
"""

from __future__ import annotations

import os
import time as real_time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time

import time_machine

from core.clock import BEIJING_TIME

SHIFT_VARIABLE = "GOVSHARE_CLOCK_SHIFT_SECONDS"


def on(day: date, hour: int = 10, minute: int = 0) -> datetime:
    """That day at that hour in Beijing."""
    return datetime.combine(day, time(hour, minute), BEIJING_TIME)


def real_now() -> datetime:
    """The machine's time, whatever time-machine says."""
    hatch = time_machine.escape_hatch
    seconds = hatch.time.time() if hatch.is_travelling() else real_time.time()
    return datetime.fromtimestamp(seconds, tz=BEIJING_TIME)


class Pin:
    """A started pin; ``stop()`` ends it (used by the session-wide pin in conftest.py)."""

    def __init__(self, instant: datetime, *, tick: bool = True) -> None:
        if instant.tzinfo is None:
            raise ValueError("pin an aware instant, e.g. on(date(2026, 12, 20))")
        self.instant = instant
        self._previous_shift = os.environ.get(SHIFT_VARIABLE)
        os.environ[SHIFT_VARIABLE] = str((instant - real_now()).total_seconds())
        self._travel = time_machine.travel(instant, tick=tick)
        self._travel.start()

    def stop(self) -> None:
        self._travel.stop()
        if self._previous_shift is None:
            os.environ.pop(SHIFT_VARIABLE, None)
        else:
            os.environ[SHIFT_VARIABLE] = self._previous_shift


@contextmanager
def pinned(instant: datetime, *, tick: bool = True) -> Iterator[datetime]:
    """Run the block (and the processes it starts) at ``instant``; the clock ticks on from there unless tick=False."""
    pin = Pin(instant, tick=tick)
    try:
        yield instant
    finally:
        pin.stop()
