"""Outcomes of identifier checks (校验结果): a level, one reason code, bilingual messages.

- Level (结论): VALID 有效 / WARNING 存疑 (valid-looking but worth a look: a pilot-era code, a retired division,
  a legacy 15-digit ID) / INVALID 无效.
- Reason (原因): a short English snake_case id that never changes once published, with a Chinese message
  for users and an English one for logs. One value gets the single reason that decided its level (the first
  failing check in the documented order of each validator).
- Outcome: the result for one value. ArrayOutcome: the same for a whole Arrow array, as Arrow arrays:
  ``status`` int8 (Level values; null where the input was null), ``reason`` dictionary<int8, string>
  (null where valid or null), ``normalized`` string (the canonical form, e.g. a 15-digit ID upgraded to 18,
  where the validator can give one; else null).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


class Level(IntEnum):
    """Severity; the int values are what the vectorised ``status`` column holds."""

    VALID = 0
    WARNING = 1
    INVALID = 2

    @property
    def label_zh(self) -> str:
        return _LEVEL_ZH[self]

    @property
    def label(self) -> str:
        """Bilingual label for tables, e.g. ``无效 invalid``."""
        return f"{_LEVEL_ZH[self]} {self.name.lower()}"


_LEVEL_ZH = {Level.VALID: "有效", Level.WARNING: "存疑", Level.INVALID: "无效"}


class Reason(StrEnum):
    """Why a value is not plainly valid. Member order is the dictionary order of the vectorised column."""

    BAD_LENGTH = "bad_length"
    FORBIDDEN_CHAR = "forbidden_char"
    BAD_AUTHORITY = "bad_authority"
    BAD_CATEGORY = "bad_category"
    DIVISION_NOT_DIGITS = "division_not_digits"
    UNKNOWN_DIVISION = "unknown_division"
    RETIRED_DIVISION = "retired_division"
    BAD_CHECK_CHAR = "bad_check_char"
    PILOT_CODE_CHECK_MISMATCH = "pilot_code_check_mismatch"
    BAD_ORGCODE_CHECK = "bad_orgcode_check"
    BAD_BIRTH_DATE = "bad_birth_date"
    FUTURE_BIRTH_DATE = "future_birth_date"
    LEGACY_15_DIGIT = "legacy_15_digit"
    NOT_CANONICAL = "not_canonical"

    @property
    def message_zh(self) -> str:
        return REASON_MESSAGES[self][0]

    @property
    def message_en(self) -> str:
        return REASON_MESSAGES[self][1]


REASON_MESSAGES: dict[Reason, tuple[str, str]] = {
    Reason.BAD_LENGTH: ("长度错误", "wrong length"),
    Reason.FORBIDDEN_CHAR: ("含有不允许的字符", "contains a character that is not allowed"),
    Reason.BAD_AUTHORITY: ("登记管理部门代码无效", "unknown registration authority code"),
    Reason.BAD_CATEGORY: (
        "机构类别代码与登记管理部门不匹配",
        "organisation category not allowed for this registration authority",
    ),
    Reason.DIVISION_NOT_DIGITS: ("行政区划码应为6位数字", "division code must be 6 digits"),
    Reason.UNKNOWN_DIVISION: ("行政区划代码不存在", "division code never existed in GB/T 2260"),
    Reason.RETIRED_DIVISION: (
        "行政区划代码已撤销（赋码时可能有效，请核实）",
        "division code no longer in force (may have been valid when issued; please verify)",
    ),
    Reason.BAD_CHECK_CHAR: ("校验码错误", "check character does not match"),
    Reason.PILOT_CODE_CHECK_MISMATCH: (
        "校验码不符，疑为2015年前试点地区赋予的代码，请核实",
        "check character does not match; looks like a pre-2015 pilot code, please verify",
    ),
    Reason.BAD_ORGCODE_CHECK: (
        "组织机构代码（主体标识码）校验码错误",
        "organisation code (GB 11714) check character does not match",
    ),
    Reason.BAD_BIRTH_DATE: ("出生日期无效", "birth date is not a real calendar date"),
    Reason.FUTURE_BIRTH_DATE: ("出生日期晚于今天", "birth date is in the future"),
    Reason.LEGACY_15_DIGIT: (
        "15位旧版身份证号码，已升级为18位",
        "legacy 15-digit ID number; upgraded to 18 characters",
    ),
    Reason.NOT_CANONICAL: (
        "格式不规范（含空白、小写字母或分隔符）",
        "not in canonical form (whitespace, lower case or separators)",
    ),
}

# Dictionary of the vectorised ``reason`` column: index i is the i-th Reason member.
REASON_ORDER: tuple[Reason, ...] = tuple(Reason)
REASON_INDEX: dict[Reason, int] = {reason: index for index, reason in enumerate(REASON_ORDER)}


@cache
def reason_dictionary() -> pa.Array:
    """The reasons as the dictionary's values. Built on first use, not at import: pyarrow's first conversion of
    a Python list imports pandas (a fifth of a second), which every `govshare` command paid at start-up."""
    return pa.array([reason.value for reason in REASON_ORDER], type=pa.string())


@dataclass(frozen=True, slots=True)
class Outcome:
    """The verdict on one value (单值校验结果)."""

    value: str
    level: Level
    reason: Reason | None = None
    normalized: str | None = None  # canonical form when it differs from the input and can be given

    @property
    def is_valid(self) -> bool:
        return self.level is Level.VALID

    @property
    def message_zh(self) -> str:
        return self.reason.message_zh if self.reason else "校验通过"

    @property
    def message_en(self) -> str:
        return self.reason.message_en if self.reason else "valid"


ArrowArray = pa.Array | pa.ChunkedArray


@dataclass(frozen=True, slots=True)
class ArrayOutcome:
    """Verdicts on a whole array (批量校验结果), row-aligned with the input; chunked when the input was."""

    status: ArrowArray  # int8 Level values, null where the input was null
    reason: ArrowArray  # dictionary<int8, string>, null where valid or null
    normalized: ArrowArray  # string, null where there is nothing to suggest

    def __len__(self) -> int:
        return len(self.status)

    def to_table(self) -> pa.Table:
        return pa.table({"status": self.status, "reason": self.reason, "normalized": self.normalized})

    def counts(self) -> dict[str, int]:
        """Rows per level plus nulls, e.g. ``{"valid": 98, "warning": 1, "invalid": 1, "null": 0}``."""
        codes = _to_numpy_int8(self.status)
        result = {level.name.lower(): int(np.count_nonzero(codes == level)) for level in Level}
        result["null"] = int(self.status.null_count)
        return result

    def outcome_at(self, index: int, value: str | None) -> Outcome | None:
        """Rebuild the per-value Outcome of one row (``value`` is the input at that row)."""
        level = self.status[index].as_py()
        if level is None or value is None:
            return None
        reason = self.reason[index].as_py()
        return Outcome(
            value=value,
            level=Level(level),
            reason=Reason(reason) if reason is not None else None,
            normalized=self.normalized[index].as_py(),
        )

    def rows(self) -> Iterator[tuple[Level | None, Reason | None, str | None]]:
        """(level, reason, normalized) per row, in Python objects; for small arrays and tests."""
        for level, reason, normalized in zip(
            self.status.to_pylist(), self.reason.to_pylist(), self.normalized.to_pylist(), strict=True
        ):
            yield (
                Level(level) if level is not None else None,
                Reason(reason) if reason is not None else None,
                normalized,
            )


def _to_numpy_int8(array: ArrowArray) -> np.ndarray:
    # Nulls become -1 so they never count as a level.
    return pc.fill_null(array, -1).to_numpy()
