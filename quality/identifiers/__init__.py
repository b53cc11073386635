"""Identifier validators (标识符校验): unified social credit code (统一社会信用代码, GB 32100-2015), citizen ID
number (居民身份证号码, GB 11643-1999), organisation code (组织机构代码, GB 11714), against the all-time GB/T 2260
division codes (行政区划代码).

Per value: ``validate_uscc(v)``, ``validate_idcard(v, today=...)``, ``validate_orgcode(v)`` -> ``Outcome``
(level VALID / WARNING / INVALID, one ``Reason`` with Chinese and English messages, optional ``normalized``).
Per Arrow column: ``validate_uscc_array(arr)``, ``validate_idcard_array(arr)``, ``validate_array(arr, kind=...)``
-> ``ArrayOutcome`` (``status`` int8, ``reason`` dictionary string, ``normalized`` string), with a numpy fast
path (``engine="vectorised"``, default) and a per-value one (``engine="python"``) that agree row for row.
"""

from quality.identifiers.divisions import (
    NATIONAL_CODE,
    Division,
    DivisionStatus,
    all_divisions,
    division_status,
    lookup_division,
)
from quality.identifiers.idcard import birth_date_of, idcard_check_char, upgrade_15_to_18, validate_idcard
from quality.identifiers.orgcode import orgcode_check_char, validate_orgcode
from quality.identifiers.outcomes import REASON_MESSAGES, ArrayOutcome, Level, Outcome, Reason
from quality.identifiers.uscc import (
    AUTHORITY_CATEGORIES,
    USCC_ALPHABET,
    USCC_WEIGHTS,
    is_pilot_series,
    uscc_check_char,
    validate_uscc,
)
from quality.identifiers.vectorised import (
    Engine,
    IdentifierKind,
    validate_array,
    validate_idcard_array,
    validate_orgcode_array,
    validate_uscc_array,
    validate_value,
)

__all__ = [
    "AUTHORITY_CATEGORIES",
    "NATIONAL_CODE",
    "REASON_MESSAGES",
    "USCC_ALPHABET",
    "USCC_WEIGHTS",
    "ArrayOutcome",
    "Division",
    "DivisionStatus",
    "Engine",
    "IdentifierKind",
    "Level",
    "Outcome",
    "Reason",
    "all_divisions",
    "birth_date_of",
    "division_status",
    "idcard_check_char",
    "is_pilot_series",
    "lookup_division",
    "orgcode_check_char",
    "upgrade_15_to_18",
    "uscc_check_char",
    "validate_array",
    "validate_idcard",
    "validate_idcard_array",
    "validate_orgcode",
    "validate_orgcode_array",
    "validate_uscc",
    "validate_uscc_array",
    "validate_value",
]
