"""unique (唯一): no two rows share the values of the listed columns.

Blocking uniqueness is the key's: the pipeline counts the key over the whole run (only the key column is held
in memory) and quarantines every row of a duplicated key as ``unique_key`` (一数一源: which of two rows is right
cannot be guessed). A non-blocking unique rule on other columns is reported by the great-expectations task.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from quality.checks.base import ExpectationSpec, Rule, Scope


class UniqueRule(Rule):
    type: Literal["unique"] = "unique"
    columns: list[str] = Field(default_factory=list, description="default: the contract's key")

    scope: ClassVar[Scope] = "key"
    title_zh: ClassVar[str] = "唯一"

    def default_id(self) -> str:
        return "unique_key" if self.blocking else super().default_id()

    def expectations(self) -> list[ExpectationSpec]:
        if len(self.columns) == 1:
            return [ExpectationSpec("ExpectColumnValuesToBeUnique", {"column": self.columns[0]},
                                    note="GX checks within each batch; the hub counts keys across batches")]
        return [ExpectationSpec("ExpectCompoundColumnsToBeUnique", {"column_list": list(self.columns)},
                                note="GX checks within each batch; the hub counts keys across batches")]
