"""allowed_values (取值范围/代码集): a column's values come from a fixed set, e.g. 登记状态."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar, Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from quality.checks.base import ExpectationSpec, Rule, RowIssue, column_of


class AllowedValuesRule(Rule):
    type: Literal["allowed_values"] = "allowed_values"
    column: str
    values: list[str | int] = Field(min_length=1)

    title_zh: ClassVar[str] = "允许值"

    def check_batch(self, batch: pa.RecordBatch) -> Iterator[RowIssue]:
        values = column_of(batch, self.column)
        try:
            allowed = pa.array(self.values).cast(values.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            values, allowed = pc.cast(values, pa.string()), pa.array([str(v) for v in self.values])
        failing = pc.and_(pc.is_valid(values), pc.invert(pc.is_in(values, value_set=allowed)))
        failing = pc.fill_null(failing, False)
        if pc.any(failing).as_py():
            text = pc.cast(values, pa.string())
            reasons = pc.binary_join_element_wise(
                f"{self.column} 取值不在允许范围: ", text, f" / {self.column} value ", text, " not in the allowed set", "")
            yield RowIssue(rule=self.id, failing=failing, reasons=reasons)

    def expectations(self) -> list[ExpectationSpec]:
        return [ExpectationSpec("ExpectColumnValuesToBeInSet", {"column": self.column, "value_set": list(self.values)})]
