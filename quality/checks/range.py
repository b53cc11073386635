"""range (数值/日期区间): values lie between min and max (either may be open), e.g. 注册资本 >= 0."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from typing import ClassVar, Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import model_validator

from quality.checks.base import ExpectationSpec, Rule, RowIssue, column_of

Bound = float | int | date | datetime


class RangeRule(Rule):
    type: Literal["range"] = "range"
    column: str
    min: Bound | None = None
    max: Bound | None = None
    strict_min: bool = False
    strict_max: bool = False

    title_zh: ClassVar[str] = "区间"

    @model_validator(mode="after")
    def _bounds(self) -> RangeRule:
        if self.min is None and self.max is None:
            raise ValueError("range needs min, max or both")
        if self.min is not None and self.max is not None:
            if isinstance(self.min, (int, float)) != isinstance(self.max, (int, float)):
                raise ValueError("min and max must both be numbers or both be dates")
            if self.min > self.max:  # type: ignore[operator]
                raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self

    def _comparable(self, values: pa.Array) -> pa.Array:
        if pa.types.is_decimal(values.type):
            return pc.cast(values, pa.float64())  # bounds are plain numbers; a decimal's ±half-ulp does not matter here
        return values

    def _bound(self, value: Bound, values: pa.Array) -> pa.Scalar:
        if isinstance(value, (int, float)):
            return pa.scalar(float(value)) if pa.types.is_floating(values.type) else pa.scalar(value)
        if pa.types.is_timestamp(values.type):
            if isinstance(value, date) and not isinstance(value, datetime):
                value = datetime(value.year, value.month, value.day)
            return pa.scalar(value).cast(values.type) if value.tzinfo or values.type.tz is None else \
                pa.scalar(value, type=pa.timestamp("us", tz=values.type.tz))
        return pa.scalar(value).cast(values.type)

    def check_batch(self, batch: pa.RecordBatch) -> Iterator[RowIssue]:
        values = self._comparable(column_of(batch, self.column))
        failing = pa.array([False] * batch.num_rows, pa.bool_())
        if self.min is not None:
            below = (pc.less_equal if self.strict_min else pc.less)(values, self._bound(self.min, values))
            failing = pc.or_(failing, pc.fill_null(below, False))
        if self.max is not None:
            above = (pc.greater_equal if self.strict_max else pc.greater)(values, self._bound(self.max, values))
            failing = pc.or_(failing, pc.fill_null(above, False))
        if pc.any(failing).as_py():
            text = pc.cast(column_of(batch, self.column), pa.string())
            span = f"[{'' if self.min is None else self.min}, {'' if self.max is None else self.max}]"
            reasons = pc.binary_join_element_wise(
                f"{self.column} 超出区间 {span}: ", text, f" / {self.column} value ", text, f" outside {span}", "")
            yield RowIssue(rule=self.id, failing=failing, reasons=reasons)

    def expectations(self) -> list[ExpectationSpec]:
        kwargs: dict = {"column": self.column}
        for name in ("min", "max"):
            value = getattr(self, name)
            if value is not None:
                kwargs[f"{name}_value"] = value if isinstance(value, (int, float)) else value.isoformat()
        if self.strict_min:
            kwargs["strict_min"] = True
        if self.strict_max:
            kwargs["strict_max"] = True
        return [ExpectationSpec("ExpectColumnValuesToBeBetween", kwargs)]
