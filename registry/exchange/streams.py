"""What feeds a resource (数据流): its source, table or query, key and cursor; changed and checked in one place.

`resource add`, `resource edit` (a new key or cursor, another table, or another source of the same agency,
e.g. after a password rotation) and `catalog stream` all go through :func:`set_stream`; each then checks what
the stream names against the source with :func:`verify_stream` when the source can be reached, so a missing
key, cursor or contract column, or a contract column of a type the run would refuse, is refused when it is
registered, not at the first sync.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from core.errors import ConfigError, RetriableError
from core.settings import get_settings
from registry.audit.log import record_event
from registry.catalog.models import Resource
from registry.catalog.sources import get_source, open_connector
from registry.exchange.models import CursorState

if TYPE_CHECKING:
    import pyarrow as pa

    from connectors.base import Connector, StreamSpec
    from quality.contracts import ColumnSpec, Contract

STREAM_FIELDS = ("table", "query", "primary_key", "cursor_column")


def set_stream(session: Session, *, resource: Resource, source: str | None = None, table: str | None = None,
               query: str | None = None, primary_key: list[str] | None = None, cursor_column: str | None = None,
               actor: str = "cli", action: str = "resource.edit") -> bool:
    """Change what feeds ``resource`` (None: keep). Moving to another source of the same agency keeps the
    versions; a changed stream makes the next run read in full (its cursor is reset). True when changed."""
    before = {"source": resource.source.name if resource.source else None, **_stream(resource.stream)}
    new_source = get_source(session, name=source) if source else resource.source
    if new_source is None:
        raise ConfigError(f"资源 {resource.code} 没有数据源，请用 --source 指定 / resource {resource.code} has no "
                          "source: name one with --source")
    if new_source.agency_id != resource.agency_id:
        raise ConfigError(f"数据源 {new_source.name} 属于其他机构 / source {new_source.name!r} belongs to another agency; "
                          "a resource is fed only by its provider's sources")
    stream = dict(resource.stream or {})
    if table is not None or query is not None:
        if bool(table) == bool(query):
            raise ConfigError("给出 --table 或 --query 之一 / give either a table or a query")
        stream["table"], stream["query"] = table or None, query or None
    if primary_key is not None:
        stream["primary_key"] = [k.strip() for k in primary_key if k.strip()]
    if cursor_column is not None:
        stream["cursor_column"] = cursor_column or None
    stream.setdefault("primary_key", [])
    if not (stream.get("table") or stream.get("query")):
        raise ConfigError("a resource fed by a source needs --table or --query")
    after = {"source": new_source.name, **_stream(stream)}
    if after == before:
        return False
    if stream.get("mode") == "cdc" and after["source"] != before["source"]:
        raise ConfigError(f"资源 {resource.code} 使用变更捕获 / {resource.code} is captured by change capture from "
                          f"{before['source']}; run `govshare cdc disable {resource.code}` before moving it")
    resource.source_id, resource.source, resource.stream = new_source.id, new_source, stream
    state = session.get(CursorState, resource.id)
    if state is not None and (after["source"] != before["source"] or _stream(stream) != _stream(before)):
        state.cursor_value = None  # the next run reads in full and compares every key with the last version
    record_event(session, actor=actor, action=action, agency_code=resource.agency.code, resource_code=resource.code,
                 detail={"before": before, "after": after})
    return True


def _stream(stream: dict[str, Any] | None) -> dict[str, Any]:
    stream = stream or {}
    return {name: stream.get(name) or ([] if name == "primary_key" else None) for name in STREAM_FIELDS}


def verify_stream(resource: Resource) -> str | None:
    """Check the key, cursor and contract columns against the source. A column it lacks, a contract column
    whose type the run would refuse (Contract.mistyped), or a source that refuses the hub, raises ConfigError; a source that cannot be reached now returns why it was not checked
    (the first sync checks again, and stops naming a missing column)."""
    from connectors.base import StreamSpec
    from schemas.contract_store import contract_for

    if resource.source is None:
        return None
    connector = open_connector(resource.source)
    stream = StreamSpec.from_stream(resource.stream, batch_rows=min(get_settings().batch_rows, 1000))
    try:
        schema = connector.stream_schema(stream)
    except RetriableError as exc:
        return f"未能连接数据源，尚未核对列 / not checked, the source cannot be reached now: {exc}"
    contract = contract_for(resource_code=resource.code, stream=resource.stream)
    wanted = [("主键 key", k) for k in stream.primary_key]
    wanted += [("游标 cursor", stream.cursor_column)] if stream.cursor_column else []
    wanted += [(f"契约 contract {contract.name}", c.name) for c in contract.columns] if contract else []
    missing = [f"{role} {name}" for role, name in wanted if name not in schema.names]
    if missing:
        raise ConfigError(connector.fail(
            f"资源 {resource.code} 所需的列在 {stream.label} 中不存在 / {stream.label} has no column(s) "
            f"{', '.join(missing)} (it has: {', '.join(schema.names)}); correct --key/--cursor or the contract"))
    if contract and (mistyped := contract.mistyped(schema)):
        raise ConfigError(_type_mismatch(connector=connector, stream=stream, schema=schema, contract=contract,
                                         mistyped=mistyped))
    return None


def _type_mismatch(*, connector: Connector, stream: StreamSpec, schema: pa.Schema, contract: Contract,
                   mistyped: list[ColumnSpec]) -> str:
    """Each mistyped column with its type at the source (as the database spells it: text[]) and in the contract."""
    import pyarrow as pa

    from quality.contracts import TYPE_LABELS

    found = connector.table_info(stream.table) if stream.table else None
    spelled = {c.name: c.source_type for c in found.columns} if found else {}
    zh, en, arrays = [], [], False
    for spec in mistyped:
        actual = schema.field(spec.name).type
        source_type = spelled.get(spec.name) or str(actual)
        array = pa.types.is_list(actual) or pa.types.is_large_list(actual)
        arrays = arrays or array
        zh.append(f"列 {spec.name} 在数据源中为 {source_type}{'（数组）' if array else ''}，契约声明为 {spec.type}"
                  f"（{TYPE_LABELS[spec.type]}）")
        en.append(f"{spec.name} is {source_type} at the source, {spec.type} in the contract")
    # A contract has no array type: such a column can only be left out of it (published as read, unchecked).
    zh_hint, en_hint = ("契约没有数组类型，请从契约中删去数组列（照常发布，不作检查）",
                        "contracts have no array type: leave array columns out of the contract") if arrays else \
        ("请改正契约中这些列的类型", "correct their type in the contract")
    return connector.fail(f"契约 {contract.name} 与 {stream.label} 的列类型不符：{'；'.join(zh)}。{zh_hint} / contract "
                          f"{contract.name} does not match {stream.label}: {'; '.join(en)}; {en_hint}")
