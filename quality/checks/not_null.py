"""not_null (非空): the listed columns must hold a value; an empty string counts as empty too."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar, Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from quality.checks.base import ExpectationSpec, Rule, RowIssue, column_of


class NotNullRule(Rule):
    type: Literal["not_null"] = "not_null"
    columns: list[str] = Field(min_length=1)
    empty_string_is_null: bool = True

    title_zh: ClassVar[str] = "非空"

    def check_batch(self, batch: pa.RecordBatch) -> Iterator[RowIssue]:
        failing = pa.array([False] * batch.num_rows, pa.bool_())
        reasons = pa.nulls(batch.num_rows, pa.string())
        for name in reversed(self.columns):  # the first listed column wins the reason
            values = column_of(batch, name)
            empty = pc.is_null(values)
            if self.empty_string_is_null and (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
                empty = pc.or_(empty, pc.fill_null(pc.equal(pc.utf8_trim_whitespace(values), ""), False))
            failing = pc.or_(failing, empty)
            reasons = pc.if_else(empty, pa.scalar(f"{name} 为空 / {name} is empty"), reasons)
        if pc.any(failing).as_py():
            yield RowIssue(rule=self.id, failing=failing, reasons=reasons)

    def expectations(self) -> list[ExpectationSpec]:
        return [ExpectationSpec("ExpectColumnValuesToNotBeNull", {"column": name}) for name in self.columns]
