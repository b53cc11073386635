"""row_count_change (行数变化): the new version's row count differs from the previous version's by at most
``max_change`` (0.2 = ±20%); guards against a truncated extract or a doubled one. A dataset rule."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar, Literal

from pydantic import Field

from quality.checks.base import DatasetContext, Issue, Rule, Scope


class RowCountChangeRule(Rule):
    type: Literal["row_count_change"] = "row_count_change"
    max_change: float = Field(gt=0, le=100, description="allowed relative change, 0.2 = ±20%")
    min_previous_rows: int = Field(default=1, ge=1, description="below this the previous count is no guide")

    scope: ClassVar[Scope] = "dataset"
    title_zh: ClassVar[str] = "行数变化"

    def check_dataset(self, context: DatasetContext) -> Iterator[Issue]:
        previous = context.previous_rows
        if previous is None or previous < self.min_previous_rows:
            return
        change = (context.rows - previous) / previous
        if abs(change) > self.max_change:
            yield Issue(self.id, self.blocking,
                        f"行数变化过大: 上一版本 {previous} 行, 本次 {context.rows} 行 ({change:+.1%}, 上限 ±{self.max_change:.0%})",
                        f"row count changed too much: previous {previous}, now {context.rows} "
                        f"({change:+.1%}, limit ±{self.max_change:.0%})", observed=context.rows)
