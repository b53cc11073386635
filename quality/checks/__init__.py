"""Check types (规则类型), one module each, registered as ``govshare.checks`` entry points and looked up by
their ``type``; a rule in a contract is data validated by its type's pydantic model."""

from __future__ import annotations

from core.plugins import kinds, lookup
from quality.checks.base import (
    BatchReader,
    DatasetContext,
    ExpectationSpec,
    Issue,
    RowIssue,
    Rule,
    Threshold,
    file_batches,
)

ENTRY_POINT_GROUP = "govshare.checks"


def check_types() -> list[str]:
    return kinds(ENTRY_POINT_GROUP)


def rule_class(type_name: str) -> type[Rule]:
    """The rule model registered for ``type``; an unknown type is a ConfigError listing the known ones."""
    return lookup(ENTRY_POINT_GROUP, type_name, base=Rule)


__all__ = ["BatchReader", "DatasetContext", "ExpectationSpec", "Issue", "RowIssue", "Rule", "Threshold", "check_types",
           "file_batches", "rule_class"]
