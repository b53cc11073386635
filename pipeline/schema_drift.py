"""Schema change at the source (源端结构变更): columns added, dropped or retyped since the previous version.

Compatible changes publish: an added column, or a retype that widens (int32 -> int64, decimal(10,2) ->
decimal(14,2), float32 -> float64, string -> large_string). A dropped or narrowed/changed key column, cursor
column or column the data contract declares cannot publish: consumers and checks depend on it, so the run
stops with a FatalError naming the columns and what to do. Either way the change is recorded and, when the
entry is published, opens the catalogue update obligation (registry/exchange/schema_changes.py).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

import pyarrow as pa

INT_DIGITS = {8: 3, 16: 5, 32: 10, 64: 19}
TIME_UNITS = ("s", "ms", "us", "ns")


@dataclass
class SchemaDiff:
    added: list[dict] = field(default_factory=list)    # {"name", "type", "nullable"}
    dropped: list[dict] = field(default_factory=list)  # {"name", "type"}
    retyped: list[dict] = field(default_factory=list)  # {"name", "from", "to", "widening"}

    def __bool__(self) -> bool:
        return bool(self.added or self.dropped or self.retyped)

    @property
    def signature(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()

    def describe(self) -> str:
        parts = [f"+{a['name']} ({a['type']})" for a in self.added]
        parts += [f"-{d['name']} ({d['type']})" for d in self.dropped]
        parts += [f"~{r['name']} ({r['from']} -> {r['to']}{', widening' if r['widening'] else ''})" for r in self.retyped]
        return ", ".join(parts)


def _plain(t: pa.DataType) -> pa.DataType:
    """Spellings of one type that carry the same values count as equal (string_view is string, etc.)."""
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.binary()
    if pa.types.is_dictionary(t):
        return _plain(t.value_type)
    return t


def widens(old: pa.DataType, new: pa.DataType) -> bool:
    """Every value of `old` is a value of `new`, exactly."""
    t = pa.types
    if t.is_null(old):
        return True
    if t.is_integer(old) and t.is_integer(new):
        if t.is_signed_integer(old) == t.is_signed_integer(new):
            return new.bit_width >= old.bit_width
        return t.is_unsigned_integer(old) and new.bit_width > old.bit_width
    if t.is_integer(old) and t.is_decimal(new):
        return new.precision - new.scale >= INT_DIGITS[old.bit_width]
    if t.is_integer(old) and t.is_floating(new):
        return old.bit_width <= (16 if new.bit_width == 32 else 32)
    if t.is_floating(old) and t.is_floating(new):
        return new.bit_width >= old.bit_width
    if t.is_decimal(old) and t.is_decimal(new):
        return new.scale >= old.scale and new.precision - new.scale >= old.precision - old.scale
    if t.is_timestamp(old) and t.is_timestamp(new):
        return old.tz == new.tz and TIME_UNITS.index(new.unit) >= TIME_UNITS.index(old.unit)
    if t.is_date32(old) and t.is_date64(new):
        return True
    return False


def compare(previous: pa.Schema, current: pa.Schema) -> SchemaDiff:
    diff = SchemaDiff()
    before = {f.name: f for f in previous}
    for f in current:
        if f.name not in before:
            diff.added.append({"name": f.name, "type": str(f.type), "nullable": f.nullable})
        elif _plain(before[f.name].type) != _plain(f.type):
            old = before[f.name].type
            diff.retyped.append({"name": f.name, "from": str(old), "to": str(f.type),
                                 "widening": widens(_plain(old), _plain(f.type))})
    names = set(current.names)
    diff.dropped = [{"name": f.name, "type": str(f.type)} for f in previous if f.name not in names]
    return diff


def blocking(diff: SchemaDiff, *, key: tuple[str, ...], cursor: str | None, contract_columns: set[str]) -> list[str]:
    """Why the change cannot publish (empty: compatible)."""
    needed = {*key, *([cursor] if cursor else []), *contract_columns}

    def role(name: str) -> str:
        roles = [r for r, names in (("主键/key", key), ("游标/cursor", [cursor]), ("契约/contract", contract_columns))
                 if name in names]
        return " and ".join(roles)

    reasons = [f"column {d['name']} ({role(d['name'])}) was dropped" for d in diff.dropped if d["name"] in needed]
    reasons += [f"column {r['name']} ({role(r['name'])}) changed type {r['from']} -> {r['to']}, which is not a widening"
                for r in diff.retyped if r["name"] in needed and not r["widening"]]
    return reasons


class SchemaMoved(Exception):
    """An incremental run met a changed schema: carried-forward rows lack the change, so it re-reads in full."""


def _remedy(diff: SchemaDiff, *, key: tuple[str, ...], cursor: str | None, contract) -> str:  # noqa: ANN001
    """What to do about a change that cannot publish; a contract's column names the contract's file to edit."""
    moved = {d["name"] for d in diff.dropped} | {r["name"] for r in diff.retyped if not r["widening"]}
    in_contract = sorted(moved & {c.name for c in contract.columns}) if contract is not None else []
    if not in_contract or not contract.source:
        return "restore the column at the source, or update the resource's key, cursor or contract"
    also = " (and the resource's key or cursor)" if moved & {*key, *([cursor] if cursor else [])} else ""
    return (f"请在源库恢复该列，或修改数据契约 {contract.source} / restore the column at the source, or edit the "
            f"contract {contract.source}{also}: take out or retype {', '.join(in_contract)} "
            f"(`govshare contract check {contract.source}`), and the next run publishes")


def guard_schema(*, resource_code: str, run_id: str, previous_number: int, previous_schema: pa.Schema,
                 schema: pa.Schema, key: tuple[str, ...], cursor: str | None, contract,  # noqa: ANN001
                 incremental: bool, settled: bool = True) -> dict | None:
    """Compare with the previous version; record a change (once) and stop the run when it is incompatible.

    ``settled=False``: the run's columns may still change (change capture's snapshot re-types the NULLs it
    wrote once a value chooses a converted column's type, pipeline.conform.ValueChoices). A change that cannot
    publish is recorded and stops the run at once, as that is all the run will find; a compatible one is only
    returned, and the run calls again with the settled schema, so one run records one change with all its
    differences. Recording each call had recorded the added column alone, then it and the re-typed column."""
    from core.errors import FatalError
    from registry.db import session_scope
    from registry.catalog.resources import get_resource
    from registry.exchange.schema_changes import record_schema_change

    diff = compare(previous_schema, schema)
    if not diff:
        return None
    if incremental:
        raise SchemaMoved(diff.describe())
    contract_columns = {c.name for c in contract.columns} if contract is not None else set()
    reasons = blocking(diff, key=key, cursor=cursor, contract_columns=contract_columns)
    if not reasons and not settled:
        return {"since_version": previous_number, **asdict(diff), "compatible": True}
    with session_scope() as session:  # its own transaction: the fact stays recorded even though the run stops
        change, _ = record_schema_change(session, resource=get_resource(session, code=resource_code), run_id=run_id,
                             previous_version=previous_number, signature=diff.signature, added=diff.added,
                             dropped=diff.dropped, retyped=diff.retyped, compatible=not reasons,
                             reason="; ".join(reasons) or diff.describe())
    if reasons:
        raise FatalError(
            f"资源 {resource_code} 数据源结构发生不兼容变更，本次未发布 / the source schema of {resource_code} changed "
            f"incompatibly since v{previous_number}: {'; '.join(reasons)}. Nothing was published and v{previous_number} "
            f"stays served; {_remedy(diff, key=key, cursor=cursor, contract=contract)} "
            f"({'the catalogue update obligation is open; ' if change.obligation else ''}"
            f"`govshare schema-changes {resource_code}` shows the change)")
    return {"since_version": previous_number, **asdict(diff), "compatible": True}
