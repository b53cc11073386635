"""identifier (标识符有效性, article 12): USCC, citizen ID number or organisation code, checked with the
vectorised validators of ``quality.identifiers``. A WARNING (pilot-era code, retired division, legacy 15-digit
ID) passes unless ``accept_warning: false``; nulls pass (completeness is ``not_null``'s business).

great-expectations gets a regex approximation (format only, no check character); the report says so.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar, Literal

import pyarrow as pa
import pyarrow.compute as pc

from quality.checks.base import ExpectationSpec, Rule, RowIssue, column_of

KIND_LABELS = {"uscc": ("统一社会信用代码", "unified social credit code"),
               "idcard": ("身份证号码", "citizen ID number"),
               "orgcode": ("组织机构代码", "organisation code")}
# Format-only approximations for great-expectations (the hub's validators also verify check characters).
APPROXIMATE_REGEX = {
    "uscc": r"^[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{9}[0-9A-HJ-NPQRTUWXY]$",
    "idcard": r"^(?:\d{6}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[0-9X]|\d{15})$",
    "orgcode": r"^[0-9A-Z]{8}-?[0-9X]$",
}


class IdentifierRule(Rule):
    type: Literal["identifier"] = "identifier"
    column: str
    kind: Literal["uscc", "idcard", "orgcode"]
    accept_warning: bool = True

    title_zh: ClassVar[str] = "标识符有效"

    def check_batch(self, batch: pa.RecordBatch) -> Iterator[RowIssue]:
        from quality.identifiers import REASON_MESSAGES, Level, Reason, validate_array

        values = column_of(batch, self.column)
        if not pa.types.is_string(values.type):
            values = pc.cast(values, pa.string())
        outcome = validate_array(values, kind=self.kind)
        status = outcome.status.combine_chunks() if isinstance(outcome.status, pa.ChunkedArray) else outcome.status
        limit = Level.WARNING if self.accept_warning else Level.VALID
        failing = pc.fill_null(pc.greater(status, pa.scalar(int(limit), pa.int8())), False)
        if not pc.any(failing).as_py():
            return
        reason = outcome.reason.combine_chunks() if isinstance(outcome.reason, pa.ChunkedArray) else outcome.reason
        reason = pc.cast(reason, pa.string())
        zh, en = KIND_LABELS[self.kind]
        codes = [code for code in pc.unique(reason.filter(failing)).to_pylist() if code is not None]
        messages = pa.array([f"{zh}无效({REASON_MESSAGES[Reason(c)][0]}) / invalid {en} ({REASON_MESSAGES[Reason(c)][1]})"
                             for c in codes], pa.string())
        reasons = pc.take(messages, pc.index_in(reason, value_set=pa.array(codes, pa.string())))
        reasons = pc.fill_null(reasons, f"{zh}无效 / invalid {en}")
        yield RowIssue(rule=self.id, failing=failing, reasons=reasons)

    def expectations(self) -> list[ExpectationSpec]:
        return [ExpectationSpec("ExpectColumnValuesToMatchRegex",
                                {"column": self.column, "regex": APPROXIMATE_REGEX[self.kind]},
                                note=f"{KIND_LABELS[self.kind][0]}: 格式近似, 不含校验码 / format approximation, "
                                     "no check character")]
