"""Identifier validators (标识符校验): public examples, typo detection, dates, divisions, fast vs per-value path."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pyarrow as pa
import pytest

from quality.identifiers import (
    AUTHORITY_CATEGORIES,
    NATIONAL_CODE,
    REASON_MESSAGES,
    USCC_ALPHABET,
    DivisionStatus,
    Level,
    Reason,
    all_divisions,
    division_status,
    idcard_check_char,
    is_pilot_series,
    orgcode_check_char,
    upgrade_15_to_18,
    uscc_check_char,
    validate_array,
    validate_idcard,
    validate_idcard_array,
    validate_orgcode,
    validate_orgcode_array,
    validate_uscc,
    validate_uscc_array,
)

pytestmark = pytest.mark.clock  # re-run on several pinned days by `make test-days`

TODAY = date(2025, 6, 30)

# Public examples (python-stdnum docs and tests, Hutool tests), from the shared reference.
USCC_VALID = [
    "91110000600037341L",
    "9144030071526726XG",
    "91340600MA2PBM9HXD",
    "121200004013590816",
    "92340621MA2UK3CE6L",
    "91620105L015101280",
    "91310110666007217T",
    "91310115591693856A",
]
USCC_INVALID = {
    "91110000600037341N": Reason.BAD_CHECK_CHAR,
    "9111000060003IOZSV": Reason.FORBIDDEN_CHAR,
    "916201055811843000": Reason.BAD_CHECK_CHAR,  # an Excel-truncated copy of a real code
}
# Pre-2015 pilot codes (Fujian) whose check character follows another rule: lawful, so a warning.
USCC_PILOT = ["91350100M0001TGQXM", "91350211M0000XUF46", "91350203M0001FUE2P"]
USCC_PILOT_SERIES_VALID = "91350100M000100Y43"  # the standard's own sample, in the pilot series and consistent
IDCARD_VALID = ["11010519491231002X", "440524188001010014"]  # GB 11643-1999 appendix

ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def make_uscc(first17: str) -> str:
    return first17 + uscc_check_char(first17)


def make_uscc_parts(prefix: str, division: str, org_body: str) -> str:
    return make_uscc(prefix + division + org_body + orgcode_check_char(org_body))


def make_idcard(division: str, birth: str, sequence: str = "123") -> str:
    first17 = division + birth + sequence
    return first17 + idcard_check_char(first17)


def substitutions(code: str, characters: str) -> list[str]:
    """Every one-character change; a change of case only (x for X) is the same character, not a typo."""
    return [code[:i] + char + code[i + 1 :] for i in range(len(code)) for char in characters if char.upper() != code[i]]


def transpositions(code: str) -> list[str]:
    return [code[:i] + code[i + 1] + code[i] + code[i + 2 :] for i in range(len(code) - 1) if code[i] != code[i + 1]]


def uscc_level(value: str) -> Level:
    outcome = validate_uscc(value)
    assert outcome is not None
    return outcome.level


def idcard_outcome(value: str):
    outcome = validate_idcard(value, today=TODAY)
    assert outcome is not None
    return outcome


# --- Unified social credit code (统一社会信用代码) ---------------------------------------------------------


@pytest.mark.parametrize("code", [*USCC_VALID, USCC_PILOT_SERIES_VALID])
def test_public_valid_uscc_examples_are_valid(code: str) -> None:
    outcome = validate_uscc(code)
    assert outcome is not None and outcome.level is Level.VALID, outcome
    assert outcome.message_zh == "校验通过"


@pytest.mark.parametrize(("code", "reason"), USCC_INVALID.items())
def test_public_invalid_uscc_examples_are_invalid(code: str, reason: Reason) -> None:
    outcome = validate_uscc(code)
    assert outcome is not None
    assert (outcome.level, outcome.reason) == (Level.INVALID, reason)


@pytest.mark.parametrize("code", USCC_PILOT)
def test_pilot_codes_are_a_warning_not_invalid(code: str) -> None:
    outcome = validate_uscc(code)
    assert outcome is not None
    assert (outcome.level, outcome.reason) == (Level.WARNING, Reason.PILOT_CODE_CHECK_MISMATCH)
    assert "试点" in outcome.message_zh


@pytest.mark.parametrize("code", [*USCC_VALID, USCC_PILOT_SERIES_VALID])
def test_every_uscc_substitution_and_transposition_is_caught(code: str) -> None:
    mutants = substitutions(code, ALNUM + "iosvz ") + transpositions(code)
    assert len(mutants) > 18 * 30
    levels = {mutant: uscc_level(mutant) for mutant in mutants}
    assert Level.VALID not in levels.values(), [m for m, level in levels.items() if level is Level.VALID]
    if not is_pilot_series(code[8:17]):
        # Outside the pilot series nothing can pass for a pilot code: every typo is a plain error.
        assert set(levels.values()) == {Level.INVALID}, [m for m, lvl in levels.items() if lvl is not Level.INVALID]
    fast = validate_uscc_array(pa.array(mutants))
    assert [level for level, _, _ in fast.rows()] == list(levels.values())


def test_letter_authorities_and_categories_follow_the_extended_table() -> None:
    for authority, categories in AUTHORITY_CATEGORIES.items():
        for category in "0123456789ABY":
            code = make_uscc_parts(authority + category, "110000", "60003734")
            expected = Level.VALID if category in categories else Level.INVALID
            assert uscc_level(code) is expected, code
    assert validate_uscc(make_uscc_parts("94", "110000", "60003734")).reason is Reason.BAD_CATEGORY
    assert validate_uscc(make_uscc_parts("B1", "110000", "60003734")).reason is Reason.BAD_AUTHORITY


def test_uscc_division_codes() -> None:
    national = make_uscc_parts("91", NATIONAL_CODE, "MA2PBM9H")
    assert uscc_level(national) is Level.VALID
    retired = validate_uscc(make_uscc_parts("91", "110103", "MA2PBM9H"))  # 崇文区, merged into 东城区 in 2010
    assert (retired.level, retired.reason) == (Level.WARNING, Reason.RETIRED_DIVISION)
    unknown = validate_uscc(make_uscc_parts("91", "119999", "MA2PBM9H"))
    assert (unknown.level, unknown.reason) == (Level.INVALID, Reason.UNKNOWN_DIVISION)
    letters = validate_uscc(make_uscc("9111A000" + "MA2PBM9HX"))
    assert (letters.level, letters.reason) == (Level.INVALID, Reason.DIVISION_NOT_DIGITS)


def test_inconsistent_embedded_orgcode_is_a_warning() -> None:
    body = "60003734"
    wrong = "0" if orgcode_check_char(body) != "0" else "2"
    outcome = validate_uscc(make_uscc("91110000" + body + wrong))
    assert (outcome.level, outcome.reason) == (Level.WARNING, Reason.BAD_ORGCODE_CHECK)


def test_uscc_canonical_form() -> None:
    outcome = validate_uscc("  91110000600037341l ")
    assert (outcome.level, outcome.reason, outcome.normalized) == (
        Level.WARNING,
        Reason.NOT_CANONICAL,
        "91110000600037341L",
    )
    assert validate_uscc("９1110000600037341L").reason is Reason.FORBIDDEN_CHAR  # full-width digit
    assert validate_uscc("91110000600037341ﬆ").reason is Reason.FORBIDDEN_CHAR  # ligature upper-cases to "ST"
    assert validate_uscc("").reason is Reason.BAD_LENGTH
    assert validate_uscc(None) is None


# --- Citizen ID number (居民身份证号码) -----------------------------------------------------------------------


@pytest.mark.parametrize("number", IDCARD_VALID)
def test_standard_id_examples_are_valid(number: str) -> None:
    assert idcard_outcome(number).level is Level.VALID


@pytest.mark.parametrize("number", IDCARD_VALID)
def test_every_id_substitution_and_transposition_is_invalid(number: str) -> None:
    mutants = substitutions(number, "0123456789Xx") + transpositions(number)
    outcomes = [idcard_outcome(mutant) for mutant in mutants]
    assert {outcome.level for outcome in outcomes} == {Level.INVALID}
    fast = validate_idcard_array(pa.array(mutants), today=TODAY)
    assert [(lvl, why) for lvl, why, _ in fast.rows()] == [(o.level, o.reason) for o in outcomes]


def test_15_digit_numbers_are_upgraded() -> None:
    outcome = idcard_outcome("110105491231002")
    assert (outcome.level, outcome.reason, outcome.normalized) == (
        Level.WARNING,
        Reason.LEGACY_15_DIGIT,
        "11010519491231002X",
    )
    # Sequences 996-999 were reserved for people over 100: century 18.
    assert upgrade_15_to_18("440524800101999")[6:8] == "18"
    assert idcard_outcome(upgrade_15_to_18("440524800101999")).level is Level.VALID
    assert idcard_outcome("110105491331002").reason is Reason.BAD_BIRTH_DATE
    assert idcard_outcome("11010549123100A").reason is Reason.FORBIDDEN_CHAR


def test_birth_dates() -> None:
    tomorrow = (TODAY + timedelta(days=1)).strftime("%Y%m%d")
    assert idcard_outcome(make_idcard("110105", TODAY.strftime("%Y%m%d"))).level is Level.VALID
    assert idcard_outcome(make_idcard("110105", tomorrow)).reason is Reason.FUTURE_BIRTH_DATE
    assert idcard_outcome(make_idcard("110105", "20000229")).level is Level.VALID  # leap year
    for impossible in ("19990229", "19000229", "19991301", "19990100", "19990431", "17991231", "00000101"):
        assert idcard_outcome(make_idcard("110105", impossible)).reason is Reason.BAD_BIRTH_DATE, impossible


def test_retired_division_in_id_numbers() -> None:
    # 110103 崇文区 was in force until 2010: normal for someone born before, impossible for someone born after.
    assert idcard_outcome(make_idcard("110103", "19800101")).level is Level.VALID
    late = idcard_outcome(make_idcard("110103", "20120101"))
    assert (late.level, late.reason) == (Level.WARNING, Reason.RETIRED_DIVISION)
    assert idcard_outcome(make_idcard("119999", "19800101")).reason is Reason.UNKNOWN_DIVISION
    assert idcard_outcome(make_idcard(NATIONAL_CODE, "19800101")).reason is Reason.UNKNOWN_DIVISION


def test_id_canonical_form() -> None:
    outcome = idcard_outcome("11010519491231002x")
    assert (outcome.level, outcome.normalized) == (Level.WARNING, "11010519491231002X")
    assert idcard_outcome("1101051949123100").reason is Reason.BAD_LENGTH


# --- Organisation code (组织机构代码) and divisions --------------------------------------------------------------


def test_orgcode() -> None:
    assert validate_orgcode("600037341").level is Level.VALID
    hyphenated = validate_orgcode("60003734-1")
    assert (hyphenated.level, hyphenated.normalized) == (Level.VALID, "600037341")
    assert validate_orgcode("600037342").reason is Reason.BAD_CHECK_CHAR
    assert validate_orgcode("MA2PBM9HX").level is Level.VALID
    assert validate_orgcode("ma2pbm9hx").reason is Reason.NOT_CANONICAL
    assert validate_orgcode("60003734").reason is Reason.BAD_LENGTH
    assert validate_orgcode("60003734Y").reason is Reason.FORBIDDEN_CHAR
    arrays = validate_orgcode_array(pa.array(["600037341", None, "600037342"]))
    assert [level for level, _, _ in arrays.rows()] == [Level.VALID, None, Level.INVALID]


@pytest.mark.parametrize("code", ["600037341", "MA2PBM9HX", "L01510128"])
def test_orgcode_mutations_are_caught_except_where_gb11714_cannot_see_them(code: str) -> None:
    """GB 11714's mod-11 check catches every change of a digit and every swap of two digits; over its 36-character
    body alphabet a change by a multiple of 11 (0/B/M/X, 1/C/N/Y, ...) is invisible to any mod-11 check. Inside a
    USCC such a change is still caught by the USCC's own mod-31 check character (see the USCC mutation test)."""
    body_alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    digit_changes = [code[:i] + d + code[i + 1:] for i in range(9) if code[i].isdigit()
                     for d in "0123456789" if d != code[i]]
    digit_swaps = [code[:i] + code[i + 1] + code[i] + code[i + 2:] for i in range(7)
                   if code[i].isdigit() and code[i + 1].isdigit() and code[i] != code[i + 1]]
    assert digit_changes and (digit_swaps or not code[:8].isdigit())
    assert all(validate_orgcode(m).level is Level.INVALID for m in digit_changes + digit_swaps)
    for i in range(9):
        for char in body_alphabet + "X":
            if char == code[i]:
                continue
            mutant = code[:i] + char + code[i + 1:]
            blind = i < 8 and (int(char, 36) - int(code[i], 36)) % 11 == 0
            assert (validate_orgcode(mutant).level is Level.VALID) == blind, mutant
    for mutant in transpositions(code)[:-1]:  # body swaps: invisible only for characters equal mod 11
        i = next(k for k in range(8) if mutant[k] != code[k])
        blind = (int(code[i], 36) - int(code[i + 1], 36)) % 11 == 0
        assert (validate_orgcode(mutant).level is Level.VALID) == blind, mutant
    fast = validate_orgcode_array(pa.array(substitutions(code, body_alphabet) + transpositions(code)))
    assert [level for level, _, _ in fast.rows()] == [
        validate_orgcode(m).level for m in substitutions(code, body_alphabet) + transpositions(code)]


def test_divisions_cover_all_time_codes() -> None:
    assert len(all_divisions()) == 6885
    assert division_status("110105") is DivisionStatus.CURRENT
    assert division_status("440524") is DivisionStatus.RETIRED
    assert division_status(NATIONAL_CODE) is DivisionStatus.UNKNOWN
    assert division_status(NATIONAL_CODE, allow_national=True) is DivisionStatus.NATIONAL


def test_every_reason_has_both_messages() -> None:
    assert set(REASON_MESSAGES) == set(Reason)
    for reason in Reason:
        assert reason.message_zh and reason.message_en


# --- Vectorised path agrees with the per-value path ---------------------------------------------------------


def _random_usccs(rng: random.Random, count: int) -> list[str | None]:
    divisions = list(all_divisions())
    pairs = [a + c for a, cs in AUTHORITY_CATEGORIES.items() for c in cs]
    values: list[str | None] = []
    for _ in range(count):
        prefix = rng.choice(pairs) if rng.random() < 0.97 else rng.choice(USCC_ALPHABET) + rng.choice(USCC_ALPHABET)
        roll = rng.random()
        division = NATIONAL_CODE if roll < 0.03 else f"{rng.randrange(10**6):06d}" if roll < 0.06 else None
        division = division or rng.choice(divisions)
        style = rng.random()
        if style < 0.4:
            body = "".join(rng.choices("0123456789", k=8))
        elif style < 0.7:
            body = "MA" + "".join(rng.choices(USCC_ALPHABET, k=6))
        elif style < 0.85:
            body = "M" + rng.choice("0123456789") + "".join(rng.choices(USCC_ALPHABET, k=6))
        else:
            body = "".join(rng.choices(USCC_ALPHABET, k=8))
        check = orgcode_check_char(body) if rng.random() < 0.95 else rng.choice("0123456789X")
        first17 = prefix + division + body + check
        code = make_uscc(first17) if rng.random() < 0.9 else first17 + rng.choice(USCC_ALPHABET)
        values.append(_damage(rng, code, extra="IOSVZ"))
    return values


def _random_idcards(rng: random.Random, count: int) -> list[str | None]:
    divisions = list(all_divisions())
    values: list[str | None] = []
    for _ in range(count):
        division = rng.choice(divisions) if rng.random() < 0.95 else f"{rng.randrange(10**6):06d}"
        if rng.random() < 0.9:
            birth = (date(1850, 1, 1) + timedelta(days=rng.randrange(66_000))).strftime("%Y%m%d")
        else:
            birth = f"{rng.randrange(1790, 2040)}{rng.randrange(0, 14):02d}{rng.randrange(0, 33):02d}"
        sequence = f"{rng.randrange(1000):03d}"
        first17 = division + birth + sequence
        number = first17 + idcard_check_char(first17) if rng.random() < 0.9 else first17 + rng.choice("0123456789X")
        if rng.random() < 0.05:
            number = division + birth[2:] + sequence  # legacy 15-digit form
        values.append(_damage(rng, number, extra="xA"))
    return values


def _damage(rng: random.Random, value: str, *, extra: str) -> str | None:
    roll = rng.random()
    position = rng.randrange(len(value))
    if roll < 0.02:
        return None
    if roll < 0.12:
        return value[:position] + rng.choice("0123456789" + USCC_ALPHABET + extra) + value[position + 1 :]
    if roll < 0.17 and position < len(value) - 1:
        return value[:position] + value[position + 1] + value[position] + value[position + 2 :]
    if roll < 0.19:
        return value.lower()
    if roll < 0.21:
        return f" {value}\t"
    if roll < 0.23:
        return value[: rng.randrange(len(value))]
    if roll < 0.24:
        return value[:position] + "中" + value[position + 1 :]
    if roll < 0.25:
        return value + rng.choice("0X")
    return value


def _assert_paths_agree(values: list[str | None], kind: str) -> None:
    array = pa.array(values, type=pa.string())
    chunked = pa.chunked_array([array.slice(0, 7), array.slice(7, 40_000), array.slice(40_007)])
    expected = [
        (None, None, None) if outcome is None else (outcome.level, outcome.reason, outcome.normalized)
        for outcome in (
            validate_uscc(value) if kind == "uscc" else validate_idcard(value, today=TODAY) for value in values
        )
    ]
    for data in (array, chunked, array.cast(pa.large_string())):
        result = validate_array(data, kind=kind, today=TODAY)
        assert list(result.rows()) == expected, (kind, data.type, type(data))
    python = validate_array(chunked, kind=kind, today=TODAY, engine="python")
    assert list(python.rows()) == expected
    # An offset slice exercises the Arrow buffer arithmetic.
    sliced = validate_array(array.slice(3, 1000), kind=kind, today=TODAY)
    assert list(sliced.rows()) == expected[3:1003]


def test_vectorised_and_scalar_uscc_agree_on_random_mixed_values() -> None:
    values = _random_usccs(random.Random(20151001), 70_000)  # more than one 65,536-row block
    _assert_paths_agree(values, "uscc")
    levels = {validate_uscc(value).level for value in values if value is not None}
    assert levels == set(Level)


def test_vectorised_and_scalar_idcard_agree_on_random_mixed_values() -> None:
    values = _random_idcards(random.Random(19991231), 70_000)
    _assert_paths_agree(values, "idcard")
    reasons = {idcard_outcome(value).reason for value in values if value is not None}
    assert {Reason.RETIRED_DIVISION, Reason.FUTURE_BIRTH_DATE, Reason.LEGACY_15_DIGIT} <= reasons


def test_fixed_width_columns_agree_whatever_their_null_slots_hold() -> None:
    """The zero-copy paths: every slot 18 bytes (nulls keeping bytes behind them, as some writers leave them),
    and 18-byte values with empty nulls between them (as read from Parquet)."""
    import numpy as np

    for kind, values in (("uscc", _random_usccs(random.Random(7), 40_000)),
                         ("idcard", _random_idcards(random.Random(8), 40_000))):
        width18 = [v for v in values if v is not None and len(v.encode()) == 18]
        valid = np.array([i % 13 != 0 for i in range(len(width18))])
        plain = pa.array(width18, type=pa.string())
        hidden = pa.Array.from_buffers(pa.string(), len(width18),
                                       [pa.py_buffer(np.packbits(valid, bitorder="little")), plain.buffers()[1],
                                        plain.buffers()[2]], int((~valid).sum()))
        gaps = pa.array([v if ok else None for v, ok in zip(width18, valid)], type=pa.string())
        judge = validate_uscc if kind == "uscc" else (lambda v: validate_idcard(v, today=TODAY))
        outcomes = [judge(v) for v in width18]
        expected = [(o.level, o.reason, o.normalized) for o in outcomes]
        masked = [row if ok else (None, None, None) for row, ok in zip(expected, valid)]
        assert list(validate_array(plain, kind=kind, today=TODAY).rows()) == expected
        assert list(validate_array(hidden, kind=kind, today=TODAY).rows()) == masked
        assert list(validate_array(gaps, kind=kind, today=TODAY).rows()) == masked
        assert {o.level for o in outcomes} == set(Level)  # warnings (with their normal forms) among them


def test_nulls_pass_through_as_null_outcomes() -> None:
    result = validate_uscc_array(pa.array([None, USCC_VALID[0], None, "bad"], type=pa.string()))
    assert result.status.to_pylist() == [None, 0, None, 2]
    assert result.reason.to_pylist() == [None, None, None, "bad_length"]
    assert result.counts() == {"valid": 1, "warning": 0, "invalid": 1, "null": 2}
    assert result.outcome_at(0, None) is None
    assert validate_uscc_array(pa.array([], type=pa.string())).counts()["null"] == 0
    assert validate_idcard_array(pa.nulls(3, pa.string())).status.null_count == 3
    assert result.to_table().column_names == ["status", "reason", "normalized"]


def test_integer_columns_are_judged_as_text() -> None:
    # A reader that typed an ID column as integers: 18-digit numbers still validate.
    result = validate_idcard_array(pa.array([440524188001010014, None], type=pa.int64()), today=TODAY)
    assert result.status.to_pylist() == [0, None]


def test_no_typo_of_any_random_valid_code_is_valid() -> None:
    rng = random.Random(32100)
    current = [code for code, division in all_divisions().items() if division.in_force]
    pairs = [a + c for a, cs in AUTHORITY_CATEGORIES.items() for c in cs]
    uscc_mutants: list[str] = []
    for _ in range(100):
        body = rng.choice(["MA", "M0", "60", "L0"]) + "".join(rng.choices(USCC_ALPHABET, k=6))
        code = make_uscc_parts(rng.choice(pairs), rng.choice(current), body)
        assert uscc_level(code) is Level.VALID, code
        uscc_mutants += substitutions(code, USCC_ALPHABET) + transpositions(code)
    fast = validate_uscc_array(pa.array(uscc_mutants))
    assert fast.counts()["valid"] == 0
    assert list(fast.rows()) == list(validate_uscc_array(pa.array(uscc_mutants), engine="python").rows())

    id_mutants: list[str] = []
    for _ in range(100):
        birth = (date(1930, 1, 1) + timedelta(days=rng.randrange(30_000))).strftime("%Y%m%d")
        number = make_idcard(rng.choice(current), birth, f"{rng.randrange(1000):03d}")
        assert idcard_outcome(number).level is Level.VALID, number
        id_mutants += substitutions(number, "0123456789X") + transpositions(number)
    fast = validate_idcard_array(pa.array(id_mutants), today=TODAY)
    assert fast.counts()["valid"] == 0 and fast.counts()["warning"] == 0
