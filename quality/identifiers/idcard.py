"""Citizen identity number (公民身份号码 / 居民身份证号码, GB 11643-1999): per-value checks.

18 characters: 1-6 division code of the registered residence (户籍所在地行政区划代码, GB/T 2260) · 7-14 birth date
YYYYMMDD (出生日期码) · 15-17 sequence (顺序码; odd = male, even = female) · 18 check character (校验码,
ISO 7064 MOD 11-2: weights 2^(18-i) mod 11, check = ``"10X98765432"[sum mod 11]``).
Legacy 15-digit numbers (GB 11643-1989): 6-digit division + YYMMDD + 3-digit sequence, no check character;
they come out WARNING ``legacy_15_digit`` with the 18-character upgrade as ``normalized`` (century ``19``,
or ``18`` for the sequences 996-999 reserved for people over 100).

Order of checks for 18 characters; the first failure decides:

1. length 15 or 18 after stripping whitespace -> else INVALID ``bad_length``
2. 17 digits then a digit or ``X`` -> INVALID ``forbidden_char``
3. division code ever used -> INVALID ``unknown_division``
4. birth date real, year >= 1800 -> INVALID ``bad_birth_date``; not after today -> INVALID ``future_birth_date``
5. check character -> INVALID ``bad_check_char``
6. division code retired before the birth year -> WARNING ``retired_division``
7. input already canonical (no whitespace, upper-case ``X``) -> WARNING ``not_canonical`` with ``normalized``

Retired division codes (已撤销的区划代码). A number keeps the code of the residence where it was first assigned,
for life, and numbers are assigned at or after birth. So a code still in force at some time in or after the
birth year is perfectly normal and VALID (the standard's own example ``440524188001010014`` carries 440524,
潮阳县, in force 1983-1993); a code that had already been retired before the holder was born cannot have been
assigned and gets the WARNING. The year ranges come from the division data (see divisions.py).

Typos never come out VALID: every weight is non-zero modulo 11 and adjacent weights differ, so any single
substitution (digit for digit, or ``X``) and any adjacent transposition breaks the check character.
"""

from __future__ import annotations

from datetime import date
from functools import cache

import numpy as np

from core import clock
from quality.identifiers.divisions import IN_FORCE_YEAR, division_tables, lookup_division
from quality.identifiers.outcomes import REASON_INDEX, Level, Outcome, Reason

IDCARD_WEIGHTS: tuple[int, ...] = tuple(pow(2, 17 - position, 11) for position in range(17))
IDCARD_CHECK_CHARS = "10X98765432"
MIN_BIRTH_YEAR = 1800  # below it a birth date is not plausible; 15-digit upgrades reach back to 18xx
CENTENARIAN_SEQUENCES = range(996, 1000)  # 15-digit sequences reserved for people over 100 (century 18)

_DIGITS = frozenset("0123456789")


def idcard_check_char(first17: str) -> str:
    """The MOD 11-2 check character of the first 17 digits."""
    if len(first17) != 17 or any(char not in _DIGITS for char in first17):
        raise ValueError(f"need 17 digits, got {first17!r}")
    total = sum(int(char) * weight for char, weight in zip(first17, IDCARD_WEIGHTS, strict=True))
    return IDCARD_CHECK_CHARS[total % 11]


def upgrade_15_to_18(number15: str) -> str:
    """Upgrade a 15-digit number: insert the century after position 6 and append the check character."""
    if len(number15) != 15 or any(char not in _DIGITS for char in number15):
        raise ValueError(f"need 15 digits, got {number15!r}")
    century = "18" if int(number15[12:15]) in CENTENARIAN_SEQUENCES else "19"
    first17 = number15[:6] + century + number15[6:]
    return first17 + idcard_check_char(first17)


def birth_date_of(number18: str) -> date | None:
    """The birth date coded in positions 7-14, or None when it is not a real date."""
    try:
        return date(int(number18[6:10]), int(number18[10:12]), int(number18[12:14]))
    except ValueError:
        return None


def validate_idcard(value: str | None, *, today: date | None = None) -> Outcome | None:
    """Check one citizen ID number (身份证号码); None in, None out. ``today`` bounds the birth date."""
    if value is None:
        return None
    today = today or clock.today()
    stripped = value.strip()
    if len(stripped) == 15:
        return _validate_legacy(value, stripped, today)
    if len(stripped) != 18:
        return Outcome(value, Level.INVALID, Reason.BAD_LENGTH)
    if any(char not in _DIGITS for char in stripped[:17]) or stripped[17] not in "0123456789Xx":
        return Outcome(value, Level.INVALID, Reason.FORBIDDEN_CHAR)
    number = stripped.upper()
    problem = _division_and_birth_problem(number, today)
    if problem is not None:
        return Outcome(value, Level.INVALID, problem)
    if idcard_check_char(number[:17]) != number[17]:
        return Outcome(value, Level.INVALID, Reason.BAD_CHECK_CHAR)
    normalized = number if number != value else None
    if _retired_before_birth(number):
        return Outcome(value, Level.WARNING, Reason.RETIRED_DIVISION, normalized)
    if normalized is not None:
        return Outcome(value, Level.WARNING, Reason.NOT_CANONICAL, normalized)
    return Outcome(value, Level.VALID)


def _validate_legacy(value: str, number15: str, today: date) -> Outcome:
    if any(char not in _DIGITS for char in number15):
        return Outcome(value, Level.INVALID, Reason.FORBIDDEN_CHAR)
    upgraded = upgrade_15_to_18(number15)
    problem = _division_and_birth_problem(upgraded, today)
    if problem is not None:
        return Outcome(value, Level.INVALID, problem)
    return Outcome(value, Level.WARNING, Reason.LEGACY_15_DIGIT, upgraded)


def _division_and_birth_problem(number18: str, today: date) -> Reason | None:
    if lookup_division(number18[:6]) is None:
        return Reason.UNKNOWN_DIVISION
    born = birth_date_of(number18)
    if born is None or born.year < MIN_BIRTH_YEAR:
        return Reason.BAD_BIRTH_DATE
    if born > today:
        return Reason.FUTURE_BIRTH_DATE
    return None


def _retired_before_birth(number18: str) -> bool:
    division = lookup_division(number18[:6])
    last_year = IN_FORCE_YEAR if division is None or division.last_year is None else division.last_year
    return last_year < int(number18[6:10])


# --- Fast path over an (n x 18) byte matrix (see vectorised.py for the scheme) -------------------------------
#
# Bit fields of the per-pair uint64 table entries; each is wide enough for the sum of all nine pairs:
#   0-6  share of the MOD 11-2 sum (<= 9 x 10)     7-11 characters that are not digits (or X last) (<= 18)
#   12-25 the birth year (<= 9999)                  26-39 the birth month and day as MMDD (<= 9999)
#   40-59 the division code as an integer           (year and MMDD apart: no division per row to split them)
_SUM_MASK = 0x7F
_BAD_CHAR = 1 << 7
_BAD_CHAR_SHIFT = 7
_YEAR_SHIFT = 12
_MONTH_DAY_SHIFT = 26
_FIELD_MASK = (1 << 14) - 1
_DIVISION_SHIFT = 40
_BLOCK_ROWS = 16_384  # the block's nine columns and sums stay in the CPU's cache


@cache
def _pair_tables() -> tuple[np.ndarray, ...]:
    pair = np.arange(65_536, dtype=np.int64)
    first, second = pair & 0xFF, pair >> 8  # little-endian: the first character is the low byte
    digit_value = np.full(256, -1, dtype=np.int64)
    digit_value[ord("0") : ord("9") + 1] = np.arange(10)
    last_value = digit_value.copy()
    last_value[ord("X")] = 10  # the check character: a digit or X, counted with weight 1
    weights = (*IDCARD_WEIGHTS, 1)  # the full 18-character sum must be 1 modulo 11
    date_scale = {3: (100, _YEAR_SHIFT), 4: (1, _YEAR_SHIFT), 5: (100, _MONTH_DAY_SHIFT), 6: (1, _MONTH_DAY_SHIFT)}
    division_scale = {0: 10_000, 1: 100, 2: 1}
    tables = []
    for index in range(9):
        v0 = digit_value[first]
        v1 = (last_value if index == 8 else digit_value)[second]
        entry = (np.maximum(v0, 0) * weights[2 * index] + np.maximum(v1, 0) * weights[2 * index + 1]) % 11
        entry += ((v0 < 0).astype(np.int64) + (v1 < 0)) * _BAD_CHAR
        two_digits = np.where((v0 >= 0) & (v1 >= 0) & (v1 < 10), v0 * 10 + v1, 0)
        if index in date_scale:
            scale, shift = date_scale[index]
            entry += (two_digits * scale) << shift
        if index in division_scale:
            entry += (two_digits * division_scale[index]) << _DIVISION_SHIFT
        tables.append(entry.astype(np.uint64))
    return tuple(tables)


@cache
def _calendar_tables() -> np.ndarray:
    """Whether (year, MMDD) is a real date from MIN_BIRTH_YEAR on, as one table indexed by
    year class * 16384 + MMDD (class 0: year too early, 1: common year, 2: leap year), and the class of each
    year (indexed by the year)."""
    month_day_ok = np.zeros(1 << 14, dtype=bool)  # indexed by any MMDD, 0000-9999
    days_in_month = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
    for month, days in enumerate(days_in_month, start=1):
        month_day_ok[month * 100 + 1 : month * 100 + days + 1] = True
    common = month_day_ok.copy()
    common[229] = False
    dates = np.concatenate([np.zeros(1 << 14, dtype=bool), common, month_day_ok])
    year = np.arange(1 << 14)
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    year_class = np.where(year < MIN_BIRTH_YEAR, 0, np.where(leap, 2, 1)).astype(np.intp) << 14
    return dates, year_class


def evaluate_idcard_matrix(matrix: np.ndarray, *, today: date) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Judge rows of 18 bytes: (level int8, reason index int8 or -1, needs_scalar bool) per row."""
    rows = len(matrix)
    level = np.zeros(rows, dtype=np.int8)
    reason = np.full(rows, -1, dtype=np.int8)
    needs_scalar = np.zeros(rows, dtype=bool)
    tables = _pair_tables()
    divisions = division_tables()
    dates, year_class = _calendar_tables()
    today_number = today.year * 10_000 + today.month * 100 + today.day
    pairs = matrix.view("<u2")
    for start in range(0, rows, _BLOCK_ROWS):
        block = pairs[start : start + _BLOCK_ROWS].T.copy()
        total = tables[0].take(block[0])
        for index in range(1, 9):
            total += tables[index].take(block[index])
        bad_chars = ((total >> _BAD_CHAR_SHIFT) & 0x1F) != 0
        check_ok = (total & _SUM_MASK) % 11 == 1
        year = ((total >> _YEAR_SHIFT) & _FIELD_MASK).astype(np.intp)
        month_day = ((total >> _MONTH_DAY_SHIFT) & _FIELD_MASK).astype(np.intp)
        date_ok = dates.take(year_class.take(year) + month_day)
        future = year * 10_000 + month_day > today_number
        division = (total >> _DIVISION_SHIFT).astype(np.intp)
        known = divisions.status.take(division) != 0
        retired_before_birth = divisions.last_year.take(division) < year
        # Most numbers are plainly valid: only the others are told apart, in the scalar validator's order.
        failed = np.flatnonzero(bad_chars | ~known | ~date_ok | future | ~check_ok | retired_before_birth)
        if not len(failed):
            continue
        conditions = [
            bad_chars[failed],
            ~known[failed],
            ~date_ok[failed],
            future[failed],
            ~check_ok[failed],
            retired_before_birth[failed],
        ]
        outcomes = [
            (Level.INVALID, None),  # decided by the scalar path
            (Level.INVALID, Reason.UNKNOWN_DIVISION),
            (Level.INVALID, Reason.BAD_BIRTH_DATE),
            (Level.INVALID, Reason.FUTURE_BIRTH_DATE),
            (Level.INVALID, Reason.BAD_CHECK_CHAR),
            (Level.WARNING, Reason.RETIRED_DIVISION),
        ]
        rows_failed = failed + start
        level[rows_failed] = np.select(conditions, [int(lvl) for lvl, _ in outcomes], default=int(Level.VALID))
        reason[rows_failed] = np.select(conditions, [REASON_INDEX[why] if why else -1 for _, why in outcomes],
                                        default=-1)
        needs_scalar[rows_failed] = conditions[0]
    return level, reason, needs_scalar
