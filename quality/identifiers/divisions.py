"""Administrative division codes (行政区划代码, GB/T 2260) as used inside identifiers.

A unified social credit code (统一社会信用代码) or a citizen ID number (居民身份证号码) keeps the division code
that was in force when it was issued, for life. So identifiers are checked against the *all-time* set of codes,
and a code that has since been retired (已撤销) is reported as information, never as an error.

The data is python-stdnum's ``stdnum/cn/loc.dat`` (6,885 codes ever used, with the years each name was in
force, e.g. ``[1984-1991]郊区,[2003-]金平区``), read once through ``stdnum.numdb`` and cached. python-stdnum's
own verdicts on identifiers are not used (they are wrong in ways our reference lists), only its data.

- "in force" (现行) means: at least one of the code's names has an open-ended year range in that data
  (``[2003-]`` or no range at all). The data is as current as the installed python-stdnum release.
- ``100000`` (national level, 国家级) is not a GB/T 2260 code; it is accepted only where a caller asks for it
  (USCC national registrations, 全国性登记).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum
from functools import cache

import numpy as np

NATIONAL_CODE = "100000"

# Sentinel "last year in force" for codes that are still in force; larger than any real year.
IN_FORCE_YEAR = 9999

_RANGE_RE = re.compile(r"^\[(?P<first>\d{4})?-(?P<last>\d{4})?\](?P<name>.*)$")


class DivisionStatus(IntEnum):
    """How a 6-digit code relates to GB/T 2260 (values are stable: vectorised lookup tables store them)."""

    UNKNOWN = 0  # 不存在: never a GB/T 2260 code
    CURRENT = 1  # 现行: in force now
    RETIRED = 2  # 已撤销: used once, no longer in force
    NATIONAL = 3  # 国家级: 100000, only where the caller allows it


@dataclass(frozen=True, slots=True)
class Division:
    """One division code (行政区划) with every name it has carried and the years it was in force."""

    code: str
    province: str
    names: tuple[str, ...]
    first_year: int | None  # None: in force since before the data starts
    last_year: int | None  # None: still in force

    @property
    def in_force(self) -> bool:
        return self.last_year is None

    @property
    def name(self) -> str:
        """The most recent name (names are listed oldest first in the data)."""
        return self.names[-1] if self.names else ""


def _parse_names(text: str) -> tuple[tuple[str, ...], int | None, int | None]:
    """Parse ``[1984-1991]郊区,[2003-]金平区`` into names, first year and last year (None = open)."""
    names: list[str] = []
    firsts: list[int | None] = []
    lasts: list[int | None] = []
    for segment in text.split(","):
        match = _RANGE_RE.match(segment)
        if match is None:
            # No range: the name has been in force for as long as the data goes back.
            names.append(segment)
            firsts.append(None)
            lasts.append(None)
            continue
        names.append(match["name"])
        firsts.append(int(match["first"]) if match["first"] else None)
        lasts.append(int(match["last"]) if match["last"] else None)
    first = None if any(year is None for year in firsts) else min(y for y in firsts if y is not None)
    last = None if any(year is None for year in lasts) else max(y for y in lasts if y is not None)
    return tuple(names), first, last


def _expand(low: str, high: str) -> list[str]:
    width = len(low)
    return [str(number).zfill(width) for number in range(int(low), int(high) + 1)]


@cache
def all_divisions() -> dict[str, Division]:
    """Every division code ever used, keyed by its 6 digits (loaded once, lazily)."""
    from stdnum import numdb  # imported here so importing this package stays cheap

    database = numdb.get("cn/loc")
    divisions: dict[str, Division] = {}
    for _length, low, high, props, children in database.prefixes:
        province = props.get("province", "")
        for prefix in _expand(low, high):
            for _child_length, child_low, child_high, child_props, _grandchildren in children:
                names, first, last = _parse_names(child_props.get("county", ""))
                for suffix in _expand(child_low, child_high):
                    code = prefix + suffix
                    divisions[code] = Division(code, province, names, first, last)
    return divisions


def lookup_division(code: str) -> Division | None:
    """The division behind a 6-digit code, or None when the code was never used."""
    return all_divisions().get(code)


def division_status(code: str, *, allow_national: bool = False) -> DivisionStatus:
    """Classify a 6-character code; ``allow_national`` admits ``100000`` (USCC national registrations)."""
    if allow_national and code == NATIONAL_CODE:
        return DivisionStatus.NATIONAL
    division = lookup_division(code)
    if division is None:
        return DivisionStatus.UNKNOWN
    return DivisionStatus.CURRENT if division.in_force else DivisionStatus.RETIRED


@dataclass(frozen=True, slots=True)
class DivisionTables:
    """Dense lookup tables indexed by the 6-digit code as an integer (0..999,999), for the vectorised path.

    ``status`` holds DivisionStatus values (UNKNOWN for codes never used; ``100000`` is UNKNOWN here, callers
    that accept it patch their own copy). ``last_year`` is 0 for unknown codes and IN_FORCE_YEAR for codes
    still in force.
    """

    status: np.ndarray  # uint8, shape (1_000_000,)
    last_year: np.ndarray  # uint16, shape (1_000_000,)


@cache
def division_tables() -> DivisionTables:
    status = np.zeros(1_000_000, dtype=np.uint8)
    last_year = np.zeros(1_000_000, dtype=np.uint16)
    for code, division in all_divisions().items():
        index = int(code)
        if division.in_force:
            status[index] = DivisionStatus.CURRENT
            last_year[index] = IN_FORCE_YEAR
        else:
            status[index] = DivisionStatus.RETIRED
            last_year[index] = division.last_year or 0
    status.flags.writeable = False
    last_year.flags.writeable = False
    return DivisionTables(status=status, last_year=last_year)
