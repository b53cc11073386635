"""freshness (时效性, article 11): the newest value of a timestamp or date column is at most ``max_age_hours``
old when the run ends. A dataset rule: it streams the column over the whole staged run or version."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta, timezone
from typing import ClassVar, Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from core import clock
from quality.checks.base import DatasetContext, Issue, Rule, Scope


def newest_value(batches: Iterable[pa.RecordBatch], column: str) -> datetime | date | None:
    """The largest value of the column over all batches (one batch of one column in memory at a time)."""
    newest = None
    for batch in batches:
        if batch.num_rows == 0:
            continue
        value = pc.max(batch.column(column)).as_py()
        if value is not None and (newest is None or value > newest):
            newest = value
    return newest


class FreshnessRule(Rule):
    type: Literal["freshness"] = "freshness"
    column: str
    max_age_hours: float = Field(gt=0)

    scope: ClassVar[Scope] = "dataset"
    title_zh: ClassVar[str] = "时效性"

    def check_dataset(self, context: DatasetContext) -> Iterator[Issue]:
        if context.rows == 0:
            return
        newest = newest_value(context.batches(columns=[self.column]), self.column)
        if newest is None:
            yield Issue(self.id, self.blocking, f"{self.column} 全部为空, 无法判断时效",
                        f"{self.column} holds no value; freshness unknown")
            return
        if not isinstance(newest, datetime):
            newest = datetime(newest.year, newest.month, newest.day, tzinfo=timezone.utc) + timedelta(days=1)
        else:
            newest = clock.as_utc(newest)
        age = context.run_time - newest
        if age > timedelta(hours=self.max_age_hours):
            hours = age.total_seconds() / 3600
            yield Issue(self.id, self.blocking,
                        f"数据不够新: {self.column} 最新值 {newest.isoformat()} 已过 {hours:.1f} 小时 (上限 {self.max_age_hours:g})",
                        f"stale data: newest {self.column} {newest.isoformat()} is {hours:.1f} h old "
                        f"(limit {self.max_age_hours:g} h)", observed=newest.isoformat())
