"""Data contracts (数据契约): a resource's columns, key, rules and threshold, as YAML under schemas/contracts/.

    name: enterprises
    title: 企业基本信息
    resources: ["101001/0001"]          # optional: found by resource code without `contract:` in the stream
    key: [id]
    threshold: {max_fraction: 0.05}     # a run quarantining more publishes nothing
    columns:
      - {name: uscc, type: string, nullable: false, role: subject_id_uscc, label: 统一社会信用代码}
      - {name: name, type: string, element: DE0001}     # 数据元: compared with its authority (一数一源)
    rules:
      - {type: allowed_values, column: status, values: [存续, 在业, 注销, 吊销, 迁出]}
      - {type: range, column: reg_capital, min: 0, threshold: {max_rows: 100}}

Columns imply rules: ``nullable: false`` -> ``not_null``, a role -> ``identifier`` (article 12), the key ->
``unique``. Every problem (unknown rule type, bad parameter, a rule on an undeclared column) is reported when
the contract loads, all at once, as a ConfigError naming the file and the rule.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.errors import ConfigError, FatalError
from quality.checks import Rule, Threshold, rule_class

NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
COLUMN_TYPES = ("string", "integer", "decimal", "float", "date", "timestamp", "boolean")
ROLE_KINDS = {"subject_id_uscc": "uscc", "subject_id_idcard": "idcard", "organization_code": "orgcode"}


class ColumnSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    type: Literal["string", "integer", "decimal", "float", "date", "timestamp", "boolean"]
    nullable: bool = True
    role: Literal["subject_id_uscc", "subject_id_idcard", "organization_code"] | None = None
    label: str = ""
    element: str | None = Field(default=None, description="数据元 code this column holds (consistency checks)")


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    name: str = Field(pattern=NAME.pattern)
    title: str = ""
    resources: list[str] = Field(default_factory=list)
    key: list[str] = Field(default_factory=list)
    threshold: Threshold | None = None
    columns: list[ColumnSpec] = Field(default_factory=list)
    rules: list[Any] = Field(default_factory=list)  # Rule instances, parsed by type in parse_contract
    source: str = ""

    def column(self, name: str) -> ColumnSpec | None:
        return next((c for c in self.columns if c.name == name), None)

    def rules_of(self, *scopes: str, blocking: bool | None = None) -> list[Rule]:
        return [r for r in self.rules if r.scope in scopes and (blocking is None or r.blocking == blocking)]

    def rule(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)

    def labels(self) -> dict[str, str]:
        return {c.name: c.label for c in self.columns if c.label}

    def check_schema(self, schema: pa.Schema) -> None:
        """A source whose columns do not match the contract cannot run (FatalError naming the columns). A text
        column declared with another type is converted (:meth:`convert`), so it matches."""
        missing = [c.name for c in self.columns if c.name not in schema.names]
        if missing:
            raise FatalError(f"契约 {self.name} 声明的字段在数据源中不存在 / contract {self.name}: the source has no "
                             f"column(s) {', '.join(missing)}; fix the source or the contract")
        wrong = [f"{c.name} ({c.type} expected, source has {schema.field(c.name).type})"
                 for c in self.mistyped(schema)]
        if wrong:
            raise FatalError(f"契约 {self.name} 字段类型不符 / contract {self.name}: column type mismatch: {'; '.join(wrong)}")

    def mistyped(self, schema: pa.Schema) -> list[ColumnSpec]:
        """Declared columns the source has with a type that neither matches nor converts (an array declared
        string, a date declared integer): a run stops on them."""
        return [c for c in self.columns if c.name in schema.names
                and not _type_matches(c.type, schema.field(c.name).type)
                and not _convertible(c.type, schema.field(c.name).type)]

    def convert(self, batch: pa.RecordBatch, decided: Mapping[str, pa.DataType] | None = None,
                ) -> tuple[pa.RecordBatch, dict[int, str]]:
        """Text columns declared with another type, read as that type (SQLite, CSV and JSON sources deliver
        dates and numbers as text). Returns the converted batch and {row: reason} for values that do not
        convert; those rows are quarantined as ``type_conversion`` with the value as it was. ``decided``: the
        type a run's earlier values chose for a column that may take two (pipeline.conform.ValueChoices), the
        only one its values are read as here, so a text of the other kind fails as within one batch."""
        problems: dict[int, str] = {}
        arrays = list(batch.columns)
        fields = list(batch.schema)
        for spec in self.columns:
            index = batch.schema.get_field_index(spec.name)
            if index < 0 or not _convertible(spec.type, batch.schema.field(index).type):
                continue
            arrays[index], failed = convert_text(batch.column(index), spec.type, (decided or {}).get(spec.name))
            fields[index] = pa.field(spec.name, arrays[index].type)
            for row, value in failed.items():
                problems.setdefault(row, f"{spec.name}={value!r}: 不是有效的{TYPE_LABELS[spec.type]} / cannot be "
                                         f"read as {spec.type}")
        if len(arrays) == batch.num_columns and all(a is b for a, b in zip(arrays, batch.columns)):
            return batch, problems
        return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields)), problems

    def conversions(self, schema: pa.Schema) -> dict[str, list[pa.DataType]]:
        """The text columns of ``schema`` declared with another type, each with the types :meth:`convert` may
        give it: one, or two for a timestamp (with a zone or without, as its values say: convert_text)."""
        return {c.name: list(TEXT_TARGETS[c.type]) for c in self.columns
                if c.name in schema.names and _convertible(c.type, schema.field(c.name).type)}


def _type_matches(declared: str, actual: pa.DataType) -> bool:
    t = pa.types
    return {
        "string": t.is_string(actual) or t.is_large_string(actual),
        "integer": t.is_integer(actual),
        "decimal": t.is_decimal(actual) or t.is_integer(actual),
        "float": t.is_floating(actual) or t.is_decimal(actual) or t.is_integer(actual),
        "date": t.is_date(actual) or t.is_timestamp(actual),
        "timestamp": t.is_timestamp(actual),
        "boolean": t.is_boolean(actual),
    }[declared] or t.is_null(actual)


TYPE_LABELS = {"string": "文本", "integer": "整数", "decimal": "数值", "float": "数值", "date": "日期",
               "timestamp": "时间", "boolean": "布尔值"}
# What a text value declared as each type becomes; decimals without a declared scale keep 10 places.
TEXT_TARGETS = {"integer": [pa.int64()], "decimal": [pa.decimal128(38, 10)], "float": [pa.float64()],
                "date": [pa.date32()], "timestamp": [pa.timestamp("us", tz="UTC"), pa.timestamp("us")],
                "boolean": [pa.bool_()]}


def _convertible(declared: str, actual: pa.DataType) -> bool:
    return declared != "string" and (pa.types.is_string(actual) or pa.types.is_large_string(actual))


def convert_text(values: pa.Array, declared: str, decided: pa.DataType | None = None,
                 ) -> tuple[pa.Array, dict[int, str]]:
    """Text to the declared type; blank text is NULL. A timestamp with a zone offset becomes UTC, one without
    stays as written (the first value that parses decides which, or ``decided``, one of the declared type's
    targets: then a value of the other kind does not convert). Returns the array and {row: raw value} for
    values that do not convert (NULL in the array)."""
    import pyarrow.compute as pc

    targets = [decided] if decided is not None else TEXT_TARGETS[declared]
    text = pc.if_else(pc.equal(pc.utf8_trim_whitespace(values), ""), pa.scalar(None, values.type), values)
    for target in targets:
        try:
            return pc.cast(text, target), {}
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    chosen, converted, failed = None, [], {}
    for row, value in enumerate(text.to_pylist()):
        if value is None:
            converted.append(None)
            continue
        for target in ([chosen] if chosen is not None else targets):
            try:
                converted.append(pa.scalar(value.strip(), pa.string()).cast(target).as_py())
                chosen = target
                break
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                continue
        else:
            converted.append(None)
            failed[row] = value
    return pa.array(converted, chosen or targets[0]), failed


def _describe(error: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in error.errors())


def parse_contract(data: Any, *, source: str = "<contract>") -> Contract:
    """Validate a contract (a mapping, e.g. from YAML); every problem is listed in one ConfigError."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a contract is a mapping with name, columns, key and rules")
    problems: list[str] = []
    rules: list[Rule] = []
    for index, raw in enumerate(data.get("rules") or [], start=1):
        label = f"rule {index}"
        if not isinstance(raw, dict) or "type" not in raw:
            problems.append(f"{label}: needs a `type` ({', '.join(_known_types())})")
            continue
        label = f"rule {index} ({raw['type']})"
        try:
            rules.append(rule_class(str(raw["type"])).model_validate(raw))
        except ConfigError as exc:
            problems.append(f"{label}: {exc}")
        except ValidationError as exc:
            problems.append(f"{label}: {_describe(exc)}")
    try:
        contract = Contract.model_validate({**data, "rules": [], "source": source})
    except ValidationError as exc:
        problems.insert(0, _describe(exc))
        contract = None
    if contract is not None:
        rules = _with_implied_rules(contract, rules)
        problems.extend(_cross_check(contract, rules))
        contract.rules = rules
    if problems:
        raise ConfigError(f"契约无效 / invalid contract {source}:\n  - " + "\n  - ".join(problems))
    return contract  # type: ignore[return-value]


def _known_types() -> list[str]:
    from quality.checks import check_types

    return check_types()


def _with_implied_rules(contract: Contract, rules: list[Rule]) -> list[Rule]:
    from quality.checks.identifier import IdentifierRule
    from quality.checks.not_null import NotNullRule
    from quality.checks.unique import UniqueRule

    covered_null = {c for r in rules if isinstance(r, NotNullRule) for c in r.columns}
    required = [c.name for c in contract.columns if not c.nullable and c.name not in covered_null]
    implied: list[Rule] = []
    for name in contract.key:
        if name not in covered_null and name not in required:
            required.insert(0, name)
    for name in required:
        implied.append(NotNullRule(columns=[name]))
    covered_id = {r.column for r in rules if isinstance(r, IdentifierRule)}
    for column in contract.columns:
        if column.role and column.name not in covered_id:
            implied.append(IdentifierRule(column=column.name, kind=ROLE_KINDS[column.role]))
    result = implied + rules
    if contract.key and not any(isinstance(r, UniqueRule) and r.blocking for r in result):
        result.append(UniqueRule(columns=list(contract.key)))
    for rule in result:
        if isinstance(rule, UniqueRule) and not rule.columns:
            rule.columns = list(contract.key)
    return result


def _cross_check(contract: Contract, rules: list[Rule]) -> list[str]:
    from quality.checks.unique import UniqueRule

    problems: list[str] = []
    declared = {c.name for c in contract.columns}
    for name in contract.key:
        if declared and name not in declared:
            problems.append(f"key column {name!r} is not declared in columns")
    seen: set[str] = set()
    for rule in rules:
        if rule.id in seen:
            problems.append(f"rule id {rule.id!r} is used twice; give one of them an `id`")
        seen.add(rule.id)
        for name in rule.columns_used():
            if declared and name not in declared:
                problems.append(f"rule {rule.id}: column {name!r} is not declared in columns")
        if isinstance(rule, UniqueRule):
            if not rule.columns:
                problems.append(f"rule {rule.id}: unique needs columns (or a contract key)")
            elif rule.blocking and list(rule.columns) != list(contract.key):
                problems.append(f"rule {rule.id}: a blocking unique rule must be on the key {contract.key}; "
                                "declare those columns as `key`, or set blocking: false (reported by the GX task)")
        if rule.scope == "dataset" and rule.threshold is not None:
            problems.append(f"rule {rule.id}: a dataset rule has no threshold (it passes or fails the run)")
        column = contract.column(getattr(rule, "column", "") or "")
        if rule.type in ("pattern", "identifier") and column is not None and column.type != "string":
            problems.append(f"rule {rule.id}: {rule.type} needs a string column, {column.name} is {column.type}")
        if rule.type == "freshness" and column is not None and column.type not in ("date", "timestamp"):
            problems.append(f"rule {rule.id}: freshness needs a date or timestamp column, {column.name} is {column.type}")
        if rule.type == "range" and column is not None and column.type in ("string", "boolean"):
            problems.append(f"rule {rule.id}: range needs a number or date column, {column.name} is {column.type}")
    return problems


def load_contract(path: str | Path) -> Contract:
    """Read and validate one YAML contract file."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"contract file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"契约无效 / invalid contract {path}: not valid YAML: {exc}") from exc
    return parse_contract(data, source=str(path))
