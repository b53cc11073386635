"""Organisation code (组织机构代码, GB 11714): 8 body characters and a check character.

- Body characters (本体代码): digits or upper-case letters, valued base-36 (0-9 -> 0-9, A-Z -> 10-35).
- Check character (校验码): C9 = 11 - (sum(value_i * W_i) mod 11) with W = 3,7,9,10,5,8,4,2;
  10 is written ``X`` and 11 is written ``0``.
- Often written with a hyphen before the check character (``60003734-1``): that form is VALID and
  ``normalized`` gives the compact 9-character form.

Order of checks (the first failure decides): length, characters, check character. Surrounding whitespace or
lower-case letters make an otherwise valid code a WARNING ``not_canonical``.

The same check is reused on positions 9-17 of a unified social credit code (主体标识码).
"""

from __future__ import annotations

from quality.identifiers.outcomes import Level, Outcome, Reason

ORG_WEIGHTS: tuple[int, ...] = (3, 7, 9, 10, 5, 8, 4, 2)
BODY_CHARACTERS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
CHECK_CHARACTERS = "0123456789X"
# Sets, not strings: ``"ST" in "...RSTU..."`` is True, and "ﬆ".upper() is "ST".
_BODY_SET = frozenset(BODY_CHARACTERS)
_CHECK_SET = frozenset(CHECK_CHARACTERS)

# Value a check character stands for in the sum: "0" stands for 11, which is 0 modulo 11, and "X" for 10.
CHECK_CHAR_VALUES: dict[str, int] = {**{str(digit): digit for digit in range(10)}, "X": 10}


def orgcode_check_char(body: str) -> str:
    """The GB 11714 check character of 8 body characters (upper case)."""
    if len(body) != 8 or any(char not in _BODY_SET for char in body):
        raise ValueError(f"organisation code body must be 8 of 0-9/A-Z, got {body!r}")
    total = sum(int(char, 36) * weight for char, weight in zip(body, ORG_WEIGHTS, strict=True))
    check = 11 - total % 11
    return "X" if check == 10 else "0" if check == 11 else str(check)


def orgcode_is_consistent(code: str) -> bool:
    """True when 9 canonical characters carry a correct GB 11714 check character (no other checks)."""
    if len(code) != 9 or code[8] not in CHECK_CHAR_VALUES:
        return False
    if any(char not in _BODY_SET for char in code[:8]):
        return False
    return orgcode_check_char(code[:8]) == code[8]


def _compact(value: str) -> str:
    """Strip whitespace and drop the customary hyphen before the check character (case kept)."""
    text = value.strip()
    if len(text) == 10 and text[8] == "-":
        text = text[:8] + text[9]
    return text


def validate_orgcode(value: str | None) -> Outcome | None:
    """Check one organisation code (组织机构代码); None in, None out."""
    if value is None:
        return None
    compact = _compact(value)
    if len(compact) != 9:
        return Outcome(value, Level.INVALID, Reason.BAD_LENGTH)
    # Upper-case character by character: some letters (ß, ﬀ) grow when upper-cased and must not slip through.
    if any(char.upper() not in _BODY_SET for char in compact[:8]) or compact[8].upper() not in _CHECK_SET:
        return Outcome(value, Level.INVALID, Reason.FORBIDDEN_CHAR)
    code = compact.upper()
    if orgcode_check_char(code[:8]) != code[8]:
        return Outcome(value, Level.INVALID, Reason.BAD_CHECK_CHAR)
    if code == value:
        return Outcome(value, Level.VALID)
    if _only_hyphenated(value, code):
        # The hyphenated form is how the code is printed on certificates: valid, with the compact form offered.
        return Outcome(value, Level.VALID, normalized=code)
    return Outcome(value, Level.WARNING, Reason.NOT_CANONICAL, normalized=code)


def _only_hyphenated(value: str, code: str) -> bool:
    return len(value) == 10 and value[8] == "-" and value[:8] + value[9] == code
