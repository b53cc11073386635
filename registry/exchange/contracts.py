"""Attach a data contract (schemas/contracts/) to a catalogue resource: the registry side of the contracts."""

from __future__ import annotations

import json
import re

from core.errors import ConfigError
from quality.contracts import Contract
from registry.audit.log import record_event
from registry.catalog.resources import get_resource
from schemas.contract_store import find_contract

PLAIN_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # a contract column's name (quality.contracts)


def attach_contract(session, *, resource_code: str, name: str, actor: str = "cli") -> Contract:  # noqa: ANN001
    """Set ``contract: name`` in a resource's stream after validating the contract against the stream."""
    contract = find_contract(name)
    resource = get_resource(session, code=resource_code)
    stream = dict(resource.stream or {})
    stream_key = list(stream.get("primary_key") or [])
    if contract.key and stream_key and stream_key != contract.key:
        raise ConfigError(f"contract {name} has key {contract.key} but resource {resource_code} reads key "
                          f"{stream_key}; make them the same")
    stream["contract"] = name
    resource.stream = stream
    record_event(session, actor=actor, action="resource.contract", resource_code=resource_code,
                 agency_code=resource.agency.code, detail={"contract": name, "rules": [r.id for r in contract.rules]})
    return contract


# Column names that usually hold a subject's identifier: the draft proposes the role, the person confirms it.
ROLE_HINTS = {"subject_id_uscc": ("uscc", "credit_code", "social_credit_code", "tyshxydm"),
              "subject_id_idcard": ("idcard", "id_card", "id_no", "id_number", "sfzh", "legal_rep_id"),
              "organization_code": ("org_code", "organization_code", "zzjgdm")}


def _contract_type(arrow_type) -> str:  # noqa: ANN001 - pyarrow.DataType
    import pyarrow as pa

    t = pa.types
    for check, name in ((t.is_boolean, "boolean"), (t.is_integer, "integer"), (t.is_decimal, "decimal"),
                        (t.is_floating, "float"), (t.is_timestamp, "timestamp"), (t.is_date, "date")):
        if check(arrow_type):
            return name
    return "string"


def draft_contract(session, *, source: str, table: str, name: str | None = None) -> str:  # noqa: ANN001
    """A contract (YAML text) drafted from a source table's columns: their types, NOT NULL as ``nullable:
    false``, the primary key, identifier roles guessed from the names, and a 5 % threshold. It validates as it
    is; the person edits the labels, roles and rules (docs/contracts.md)."""
    import pyarrow as pa

    from connectors.base import StreamSpec
    from core import clock
    from quality.contracts import NAME, parse_contract
    from registry.catalog.sources import get_source, open_connector

    connector = open_connector(get_source(session, name=source))
    bare = table.rpartition(".")[2]
    found = connector.table_info(table)
    if found is not None:
        columns = [(c.name, c.arrow_type, c.nullable, c.comment, c.source_type or "") for c in found.columns]
        key = list(found.primary_key)
    else:  # a view, a stream or another schema: its columns as a read delivers them
        schema = connector.stream_schema(StreamSpec(table=table))
        columns, key = [(f.name, f.type, True, "", "") for f in schema], []
    name = name or bare
    if not NAME.match(name):
        raise ConfigError(f"contract name {name!r}: letters, digits, '_', '.', '-' only; pass --name")
    lines = [f"# 数据契约草稿 / draft contract for {source} table {table}, {clock.today().isoformat()}",
             "# 请核对类型、可空、标识符角色和规则后再 `govshare contract check` / check the types, nullable, roles",
             "# and rules, then `govshare contract check` this file (docs/contracts.md explains each field).",
             f"name: {name}", f"title: {bare}", f"key: [{', '.join(json.dumps(k) for k in key)}]",
             "threshold: {max_fraction: 0.05}", "columns:"]
    for column, arrow_type, nullable, comment, source_type in columns:
        if not PLAIN_COLUMN.match(column):  # 统一社会信用代码, "full name": the whole draft was refused as invalid
            lines.append(f"  # {json.dumps(column, ensure_ascii=False)}: 列名非字母、数字、下划线，契约不能声明，照常发布 / "
                         "not a plain identifier: published as read, but no contract column or rule can name it "
                         "(a --query or view can rename it)")
            continue
        kind = _contract_type(arrow_type)
        if source_type.endswith("]") or (kind == "string" and not pa.types.is_string(arrow_type)
                                         and not pa.types.is_large_string(arrow_type)):
            # an array, bytes, a duration: declared "string", every run failed "column type mismatch"
            lines.append(f"  # {json.dumps(column, ensure_ascii=False)}: {source_type or arrow_type} 类型契约无法声明，"
                         "照常发布 / a type no contract type describes: published as read, not declared")
            continue
        # quoted: YAML reads a bare no, on, y, null or 1e3 as another type (a column named `no` became False)
        fields = [f"name: {json.dumps(column)}", f"type: {kind}"] + \
            ([] if nullable and column not in key else ["nullable: false"])
        role = next((r for r, hints in ROLE_HINTS.items() if column.lower() in hints), None)
        if role and kind == "string":
            fields.append(f"role: {role}")
        label = json.dumps(comment or column, ensure_ascii=False)  # a quoted YAML scalar, whatever it holds
        lines.append(f"  - {{{', '.join(fields)}, label: {label}}}")
    lines += ["rules: []", ""]
    text = "\n".join(lines)
    import yaml

    parse_contract(yaml.safe_load(text), source=f"draft of {source}.{table}")  # the draft is a valid contract
    return text
