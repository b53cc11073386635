"""Unified social credit code (统一社会信用代码, GB 32100-2015): 18 characters, per-value checks.

Layout: 1 registration authority (登记管理部门) · 2 organisation category (机构类别) · 3-8 division code of the
registering office (登记管理机关行政区划码, GB/T 2260; ``100000`` for national registrations) · 9-17 organisation
code (主体标识码, GB 11714, with its own check character) · 18 check character (校验码).
Alphabet, values 0..30: ``0123456789ABCDEFGHJKLMNPQRTUWXY`` (no I, O, Z, S, V). Weights 3^(i-1) mod 31;
the check character makes sum(C_i * W_i, i=1..17) + C18 a multiple of 31.

Order of checks; the first one that fails decides the outcome:

1. length 18 after stripping whitespace -> else INVALID ``bad_length``
2. every character in the alphabet (after upper-casing) -> else INVALID ``forbidden_char``
3. authority known -> INVALID ``bad_authority``; category allowed for it (extended table) -> INVALID
   ``bad_category``
4. positions 3-8 are digits -> INVALID ``division_not_digits``; a code ever used, or ``100000`` -> INVALID
   ``unknown_division``
5. check character -> INVALID ``bad_check_char``, or WARNING ``pilot_code_check_mismatch`` (rule below)
6. embedded organisation code check -> WARNING ``bad_orgcode_check``
7. division still in force -> WARNING ``retired_division``
8. input was already canonical (no whitespace, upper case) -> WARNING ``not_canonical`` with ``normalized``

Why an embedded organisation code that fails GB 11714 is a WARNING, not INVALID: it can only be reached when
the strong mod-31 check character already matches, which a typo essentially never achieves (see below), so
the code was issued like that. All public valid examples carry a consistent organisation code; a mismatch
is worth a look, not a rejection.

Pilot codes (试点代码). Before GB 32100 took effect (2015-10-01) some pilot areas issued codes whose check
character follows another rule, e.g. ``91350100M0001TGQXM``, ``91350211M0000XUF46``, ``91350203M0001FUE2P``
(all Fujian). They are lawful and still in use, so they must not be rejected outright. Rule: a code whose only
defect is the check character is a *pilot candidate* (WARNING) when its organisation-code part

- belongs to the pilot series: ``M`` followed by a digit (the pilot-era ``M0...`` numbers; national new
  registrations from 2015 use the ``MA...`` series, and codes carried over from GB 11714 start with a digit
  or another letter). Unverified hypothesis drawn from the public pilot examples; and
- is itself a consistent GB 11714 code (the pilot examples are; the authority, category and division checks
  already passed at that point).

Every other check-character failure is INVALID ``bad_check_char``. Typos never come out VALID: the weights
are non-zero modulo the prime 31 and adjacent weights differ (W_i+1 = 3 W_i), so every single-character
substitution within the alphabet and every adjacent transposition changes the weighted sum modulo 31 and
breaks the check character. Such a typo is INVALID, except when it leaves a consistent organisation-code
part of the pilot series behind (a typo at positions 1-8 or 18 of a pilot-series code such as the standard's
sample ``91350100M000100Y43``, or, rarely, one that creates such a part): it then looks exactly like a pilot
code and gets the WARNING. It is never VALID.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from quality.identifiers.divisions import NATIONAL_CODE, DivisionStatus, division_status, division_tables
from quality.identifiers.orgcode import ORG_WEIGHTS, orgcode_is_consistent
from quality.identifiers.outcomes import REASON_INDEX, Level, Outcome, Reason

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_VALUES: dict[str, int] = {char: value for value, char in enumerate(USCC_ALPHABET)}
USCC_WEIGHTS: tuple[int, ...] = tuple(pow(3, position, 31) for position in range(17))
USCC_LENGTH = 18

# Registration authority (登记管理部门) -> allowed organisation categories (机构类别), extended table.
# The 2015 text itself lists only 1 (机构编制), 5 (民政), 9 (工商) and Y (其他).
AUTHORITY_CATEGORIES: dict[str, str] = {
    "1": "1239",  # 机构编制: 机关, 事业单位, 中央编办直接管理机构编制的群众团体, 其他
    "2": "19",  # 外交
    "3": "123459",  # 司法行政
    "4": "19",  # 文化
    "5": "1239",  # 民政: 社会团体, 民办非企业单位, 基金会, 其他
    "6": "129",  # 旅游
    "7": "129",  # 宗教
    "8": "19",  # 工会
    "9": "123",  # 工商: 企业, 个体工商户, 农民专业合作社
    "A": "19",  # 中央军委改革和编制办公室
    "N": "1239",  # 农业
    "Y": "1",  # 其他
}


def uscc_check_char(first17: str) -> str:
    """The check character for the first 17 characters (upper case, in the alphabet)."""
    if len(first17) != 17 or any(char not in USCC_VALUES for char in first17):
        raise ValueError(f"need 17 characters of {USCC_ALPHABET}, got {first17!r}")
    total = sum(USCC_VALUES[char] * weight for char, weight in zip(first17, USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[-total % 31]


def is_pilot_series(orgcode_part: str) -> bool:
    """Organisation-code part of the pre-2015 pilot series: ``M`` then a digit (see module docstring)."""
    return len(orgcode_part) == 9 and orgcode_part[0] == "M" and orgcode_part[1].isdigit()


def validate_uscc(value: str | None) -> Outcome | None:
    """Check one unified social credit code (统一社会信用代码); None in, None out."""
    if value is None:
        return None
    stripped = value.strip()
    if len(stripped) != USCC_LENGTH:
        return Outcome(value, Level.INVALID, Reason.BAD_LENGTH)
    # Upper-case character by character: some letters (ß, ﬀ) grow when upper-cased and must not slip through.
    if any(char.upper() not in USCC_VALUES for char in stripped):
        return Outcome(value, Level.INVALID, Reason.FORBIDDEN_CHAR)
    code = stripped.upper()
    categories = AUTHORITY_CATEGORIES.get(code[0])
    if categories is None:
        return Outcome(value, Level.INVALID, Reason.BAD_AUTHORITY)
    if code[1] not in categories:
        return Outcome(value, Level.INVALID, Reason.BAD_CATEGORY)
    division = code[2:8]
    if not (division.isascii() and division.isdigit()):
        return Outcome(value, Level.INVALID, Reason.DIVISION_NOT_DIGITS)
    status = division_status(division, allow_national=True)
    if status is DivisionStatus.UNKNOWN:
        return Outcome(value, Level.INVALID, Reason.UNKNOWN_DIVISION)
    orgcode_part = code[8:17]
    orgcode_ok = orgcode_is_consistent(orgcode_part)
    normalized = code if code != value else None
    if uscc_check_char(code[:17]) != code[17]:
        if orgcode_ok and is_pilot_series(orgcode_part):
            return Outcome(value, Level.WARNING, Reason.PILOT_CODE_CHECK_MISMATCH, normalized)
        return Outcome(value, Level.INVALID, Reason.BAD_CHECK_CHAR)
    if not orgcode_ok:
        return Outcome(value, Level.WARNING, Reason.BAD_ORGCODE_CHECK, normalized)
    if status is DivisionStatus.RETIRED:
        return Outcome(value, Level.WARNING, Reason.RETIRED_DIVISION, normalized)
    if normalized is not None:
        return Outcome(value, Level.WARNING, Reason.NOT_CANONICAL, normalized)
    return Outcome(value, Level.VALID)


# --- Fast path over an (n x 18) byte matrix (see vectorised.py for the scheme) -------------------------------
#
# Bit fields of the per-pair uint64 table entries; each field is wide enough for the sum of all nine pairs:
#   0-8   share of the mod-31 sum (<= 9 x 30)           9-14  share of the GB 11714 mod-11 sum (<= 5 x 10)
#   16-20 characters outside the alphabet (<= 18)        21    authority/category pair not allowed
#   22-23 non-digits in the division code (<= 3 pairs)   24    organisation check char is not 0-9 or X
#   25    organisation code of the pilot series          32-51 the division code as an integer
_SUM31_MASK = 0x1FF
_SUM11_SHIFT = 9
_BAD_CHAR = 1 << 16
_BAD_CHAR_SHIFT = 16
_BAD_PAIR0 = 1 << 21
_DIVISION_NON_DIGIT = 1 << 22
_ORG_CHECK_CHAR_BAD = 1 << 24
_PILOT_SERIES = 1 << 25
_BLOCKING_FLAGS = 0x01FF0000  # bits 16-24: any of them means "not valid"
_DIVISION_SHIFT = 32
_BLOCK_ROWS = 16_384  # the block's nine columns and sums stay in the CPU's cache


@cache
def _pair_tables() -> tuple[np.ndarray, ...]:
    pair = np.arange(65_536, dtype=np.int64)
    first, second = pair & 0xFF, pair >> 8  # little-endian: the first character is the low byte
    value31 = np.full(256, -1, dtype=np.int64)
    value31[np.frombuffer(USCC_ALPHABET.encode(), dtype=np.uint8)] = np.arange(31)
    value36 = np.zeros(256, dtype=np.int64)
    for char in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        value36[ord(char)] = int(char, 36)
    ascii_digit = (np.arange(256) >= ord("0")) & (np.arange(256) <= ord("9"))
    first_digit, second_digit = ascii_digit[first], ascii_digit[second]
    two_digits = np.where(first_digit & second_digit, (first - ord("0")) * 10 + (second - ord("0")), 0)
    allowed = np.zeros((256, 256), dtype=bool)
    for authority, categories in AUTHORITY_CATEGORIES.items():
        for category in categories:
            allowed[ord(authority), ord(category)] = True
    weights = (*USCC_WEIGHTS, 1)  # the check character counts with weight 1: the total must be 0 mod 31
    check_value = np.full(256, -1, dtype=np.int64)  # GB 11714 check character: 0-9, X for 10
    check_value[ord("0") : ord("9") + 1] = np.arange(10)
    check_value[ord("X")] = 10
    v0, v1 = value31[first], value31[second]
    tables = []
    for index in range(9):
        entry = (np.maximum(v0, 0) * weights[2 * index] + np.maximum(v1, 0) * weights[2 * index + 1]) % 31
        entry += ((v0 < 0).astype(np.int64) + (v1 < 0)) * _BAD_CHAR
        if index == 0:
            entry += ~allowed[first, second] * _BAD_PAIR0
        elif index <= 3:
            entry += ~(first_digit & second_digit) * _DIVISION_NON_DIGIT
            entry += two_digits * (10_000, 100, 1)[index - 1] << _DIVISION_SHIFT
        elif index <= 7:
            k = 2 * index - 8
            share = (value36[first] * ORG_WEIGHTS[k] + value36[second] * ORG_WEIGHTS[k + 1]) % 11
            entry += share << _SUM11_SHIFT
            if index == 4:
                entry += ((first == ord("M")) & second_digit) * _PILOT_SERIES
        else:
            org_check = check_value[first]
            entry += np.maximum(org_check, 0) << _SUM11_SHIFT
            entry += (org_check < 0) * _ORG_CHECK_CHAR_BAD
        tables.append(entry.astype(np.uint64))
    return tuple(tables)


@cache
def _division_tables() -> tuple[np.ndarray, np.ndarray]:
    """USCC division status per integer code, with 100000 admitted; and 'current or national' as bool."""
    status = division_tables().status.copy()
    status[int(NATIONAL_CODE)] = DivisionStatus.NATIONAL
    good = (status == DivisionStatus.CURRENT) | (status == DivisionStatus.NATIONAL)
    return status, good


@cache
def _sums_ok() -> np.ndarray:
    index = np.arange(1 << 15)
    return ((index & _SUM31_MASK) % 31 == 0) & ((index >> _SUM11_SHIFT) % 11 == 0)


def evaluate_uscc_matrix(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Judge rows of 18 bytes: (level int8, reason index int8 or -1, needs_scalar bool) per row."""
    rows = len(matrix)
    level = np.zeros(rows, dtype=np.int8)
    reason = np.full(rows, -1, dtype=np.int8)
    needs_scalar = np.zeros(rows, dtype=bool)
    tables = _pair_tables()
    status, good = _division_tables()
    sums_ok = _sums_ok()
    pairs = matrix.view("<u2")
    for start in range(0, rows, _BLOCK_ROWS):
        block = pairs[start : start + _BLOCK_ROWS].T.copy()  # nine contiguous columns
        total = tables[0].take(block[0])
        for index in range(1, 9):
            total += tables[index].take(block[index])
        low = total.astype(np.uint32)
        division = (total >> _DIVISION_SHIFT).astype(np.intp)
        valid = sums_ok.take(low & 0x7FFF) & ((low & _BLOCKING_FLAGS) == 0) & good.take(division)
        failed = np.flatnonzero(~valid)
        if len(failed):
            rows_failed = failed + start
            lvl, why, slow = _classify_failures(low[failed], status.take(division[failed]), matrix[rows_failed, 0])
            level[rows_failed], reason[rows_failed], needs_scalar[rows_failed] = lvl, why, slow
    return level, reason, needs_scalar


def _classify_failures(
    low: np.ndarray, division_status_: np.ndarray, authority: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reasons for rows that failed, in the scalar validator's order (first matching condition wins)."""
    index = REASON_INDEX
    check31_ok = (low & _SUM31_MASK) % 31 == 0
    orgcode_ok = (((low >> _SUM11_SHIFT) & 0x3F) % 11 == 0) & ((low & _ORG_CHECK_CHAR_BAD) == 0)
    known_authority = np.isin(authority, np.frombuffer("".join(AUTHORITY_CATEGORIES).encode(), dtype=np.uint8))
    conditions = [
        ((low & _BAD_PAIR0) != 0) & ~known_authority,
        (low & _BAD_PAIR0) != 0,
        (low & (3 * _DIVISION_NON_DIGIT)) != 0,
        division_status_ == DivisionStatus.UNKNOWN,
        ~check31_ok & orgcode_ok & ((low & _PILOT_SERIES) != 0),
        ~check31_ok,
        ~orgcode_ok,
        division_status_ == DivisionStatus.RETIRED,
    ]
    outcomes = [
        (Level.INVALID, Reason.BAD_AUTHORITY),
        (Level.INVALID, Reason.BAD_CATEGORY),
        (Level.INVALID, Reason.DIVISION_NOT_DIGITS),
        (Level.INVALID, Reason.UNKNOWN_DIVISION),
        (Level.WARNING, Reason.PILOT_CODE_CHECK_MISMATCH),
        (Level.INVALID, Reason.BAD_CHECK_CHAR),
        (Level.WARNING, Reason.BAD_ORGCODE_CHECK),
        (Level.WARNING, Reason.RETIRED_DIVISION),
    ]
    level = np.select(conditions, [int(lvl) for lvl, _ in outcomes], default=int(Level.VALID)).astype(np.int8)
    reason = np.select(conditions, [index[why] for _, why in outcomes], default=-1).astype(np.int8)
    # Characters outside the alphabet (lower case, whitespace, I/O/S/V/Z, non-ASCII): the scalar path decides.
    needs_scalar = ((low >> _BAD_CHAR_SHIFT) & 0x1F) != 0
    return level, reason, needs_scalar
