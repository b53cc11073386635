"""pattern (格式): text values match a regular expression (the whole value, unless ``full_match: false``).

The expression must compile both in RE2 (pyarrow, inline checks) and in Python's ``re`` (great-expectations
on pandas); the contract refuses it at load time otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import ClassVar, Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import field_validator

from quality.checks.base import ExpectationSpec, Rule, RowIssue, column_of


class PatternRule(Rule):
    type: Literal["pattern"] = "pattern"
    column: str
    regex: str
    full_match: bool = True

    title_zh: ClassVar[str] = "格式"

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from exc
        try:
            pc.match_substring_regex(pa.array([""]), pattern=value)
        except pa.ArrowInvalid as exc:
            raise ValueError(f"not supported by RE2 (pyarrow): {exc}") from exc
        return value

    @property
    def effective_regex(self) -> str:
        return f"^(?:{self.regex})$" if self.full_match else self.regex

    def check_batch(self, batch: pa.RecordBatch) -> Iterator[RowIssue]:
        values = column_of(batch, self.column)
        text = values if pa.types.is_string(values.type) else pc.cast(values, pa.string())
        failing = pc.fill_null(pc.invert(pc.match_substring_regex(text, pattern=self.effective_regex)), False)
        if pc.any(failing).as_py():
            reasons = pc.binary_join_element_wise(
                f"{self.column} 格式不符: ", text, f" / {self.column} value ", text,
                f" does not match {self.regex}", "")
            yield RowIssue(rule=self.id, failing=failing, reasons=reasons)

    def expectations(self) -> list[ExpectationSpec]:
        return [ExpectationSpec("ExpectColumnValuesToMatchRegex", {"column": self.column, "regex": self.effective_regex})]
