"""Check types (规则类型), one module each, registered as ``govshare.checks`` entry points and looked up by
their ``type``; a rule in a contract is data validated by its type's pydantic model."""

from __future__ import annotations

from functools import lru_cache
from importlib import import_module
from importlib.metadata import entry_points

from core.errors import ConfigError
from quality.checks.base import (BatchReader, DatasetContext, ExpectationSpec, Issue, RowIssue, Rule, Threshold,
                                 file_batches)

ENTRY_POINT_GROUP = "govshare.checks"
# The same list as setup.cfg; used only when the package metadata is not installed (e.g. a source checkout).
BUILTIN = {
    "not_null": "quality.checks.not_null:NotNullRule",
    "unique": "quality.checks.unique:UniqueRule",
    "allowed_values": "quality.checks.allowed_values:AllowedValuesRule",
    "range": "quality.checks.range:RangeRule",
    "pattern": "quality.checks.pattern:PatternRule",
    "identifier": "quality.checks.identifier:IdentifierRule",
    "freshness": "quality.checks.freshness:FreshnessRule",
    "row_count_change": "quality.checks.row_count_change:RowCountChangeRule",
}


@lru_cache(maxsize=1)
def _targets() -> dict[str, str]:
    targets = dict(BUILTIN)
    targets.update({ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)})
    return targets


def check_types() -> list[str]:
    return sorted(_targets())


def rule_class(type_name: str) -> type[Rule]:
    """The rule model registered for ``type``; an unknown type is a ConfigError listing the known ones."""
    target = _targets().get(type_name)
    if target is None:
        raise ConfigError(f"unknown rule type {type_name!r}; known types: {', '.join(check_types())}")
    module, _, attr = target.partition(":")
    cls = getattr(import_module(module), attr)
    if not (isinstance(cls, type) and issubclass(cls, Rule)):
        raise ConfigError(f"entry point {type_name} = {target} is not a quality.checks.base.Rule subclass")
    return cls


__all__ = ["BatchReader", "DatasetContext", "ExpectationSpec", "Issue", "RowIssue", "Rule", "Threshold", "check_types",
           "file_batches", "rule_class"]
