"""Consistency of a non-authoritative copy with the authoritative data (一数一源, article 11).

A resource that holds a copy of data elements (e.g. the tax bureau's taxpayer name, a copy of 企业名称 whose
authority is the market regulator) is compared by subject key with each authority's latest version. Only the key
and the compared columns are read (column projection): the authority's projection is held as one Arrow table,
the copy is streamed in record batches and hash-joined against it batch by batch. Mismatches are written to a
Parquet file and reported to both agencies as error-correction tickets (疑义校核工单).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core.errors import ConfigError
from core.storage import get_storage
from pipeline import paths
from pipeline.layers import Part, iter_parts, parts_schema, version_parts

BATCH_ROWS = 65_536
KEY = "__key"
MISMATCH_SCHEMA = pa.schema([("key", pa.string()), ("element", pa.string()), ("copy_column", pa.string()),
                             ("copy_value", pa.string()), ("authoritative_value", pa.string()),
                             ("authoritative_agency", pa.string()), ("authoritative_resource", pa.string())])


@dataclass
class ConsistencyReport:
    resource_code: str
    check_id: int
    rows_compared: int
    mismatches: int
    missing: int
    elements: list[dict] = field(default_factory=list)
    tickets: list[int] = field(default_factory=list)
    path: str | None = None


def _numeric(array: pa.Array) -> bool:
    t = array.type
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def _comparable(a: pa.Array, b: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Both sides in one comparable type: numbers as float64, everything else as trimmed text."""
    if _numeric(a) and _numeric(b):
        return pc.cast(a, pa.float64()), pc.cast(b, pa.float64())
    return (pc.utf8_trim_whitespace(pc.cast(a, pa.string())), pc.utf8_trim_whitespace(pc.cast(b, pa.string())))


def _read_columns(parts: list[Part], columns: list[str]) -> pa.Table:
    """The live rows of a version, only these columns (deleted rows of a layered version left out)."""
    schema = parts_schema(parts)
    return pa.Table.from_batches(list(iter_parts(parts, columns=columns, batch_size=BATCH_ROWS)),
                                 schema=pa.schema([schema.field(c) for c in columns]))


def _authority_table(version, key_column: str, columns: list[str]) -> tuple[pa.Table, int]:  # noqa: ANN001
    """Key + compared columns of the authority; keys held more than once are left out (which row is right
    cannot be told) and counted."""
    table = _read_columns(version_parts(version), [key_column, *columns])
    keys = pc.cast(table.column(key_column), pa.string())
    table = table.drop_columns([key_column]).add_column(0, KEY, keys)
    table = table.rename_columns([KEY, *[f"a.{c}" for c in columns]]).filter(pc.is_valid(keys))
    counts = pc.value_counts(table.column(KEY))
    repeated = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
    if len(repeated):
        table = table.filter(pc.invert(pc.is_in(table.column(KEY), value_set=repeated)))
    return table.combine_chunks(), len(repeated)


def _resolve(session, *, resource, contract, mapping: dict[str, str] | None, key_column: str | None):  # noqa: ANN001, ANN202
    from registry.catalog.elements import get_element

    if mapping is None:
        mapping = {c.name: c.element for c in (contract.columns if contract else []) if c.element}
    if not mapping:
        raise ConfigError(f"resource {resource.code}: say which columns copy which data elements, with "
                          "--map COLUMN=ELEMENT or `element:` on the contract's columns")
    elements = {column: get_element(session, code=code) for column, code in mapping.items()}
    own = [e.code for e in elements.values() if e.resource_id == resource.id]
    if own:
        raise ConfigError(f"resource {resource.code} is itself the authority for {', '.join(own)}; compare a copy")
    subject_keys = {e.subject_key for e in elements.values()}
    if len(subject_keys) > 1:
        raise ConfigError(f"the mapped elements are keyed by different subjects ({', '.join(sorted(subject_keys))}); "
                          "compare them in separate runs")
    if key_column is None:
        role = {"uscc": "subject_id_uscc", "idcard": "subject_id_idcard", "orgcode": "organization_code"}[subject_keys.pop()]
        key_column = next((c.name for c in (contract.columns if contract else []) if c.role == role), None)
        if key_column is None:
            raise ConfigError(f"resource {resource.code}: which column holds the subject key? pass --key COLUMN")
    return elements, key_column


def check_consistency(*, resource_code: str, mapping: dict[str, str] | None = None,
                      key_column: str | None = None) -> ConsistencyReport:
    """Compare the copy's latest version with each authority's latest version; record and report the result."""
    from registry.db import session_scope
    from registry.catalog.resources import get_resource
    from registry.exchange.versions import require_latest_version
    from schemas.contract_store import contract_for

    with session_scope() as session:
        resource = get_resource(session, code=resource_code)
        copy_version = require_latest_version(session, resource=resource)
        contract = contract_for(resource_code=resource.code, stream=resource.stream)
        elements, key_column = _resolve(session, resource=resource, contract=contract, mapping=mapping,
                                        key_column=key_column)
        groups: dict[int, list[tuple[str, object]]] = defaultdict(list)
        authorities = {}
        for column, element in elements.items():
            groups[element.resource_id].append((column, element))
            if element.resource_id not in authorities:
                authorities[element.resource_id] = (
                    require_latest_version(session, resource=element.resource), element.agency.name,
                    element.resource.code)
        session.expunge_all()
    names = {f["name"] for f in copy_version.manifest.get("schema", [])}
    unknown = [c for c in [key_column, *elements] if c not in names]
    if unknown:
        raise ConfigError(f"resource {resource_code} has no column(s) {', '.join(unknown)}")
    out = paths.storage_root() / "consistency" / str(copy_version.resource_id) / f"{copy_version.run_id}.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = pq.ParquetWriter(out, MISMATCH_SCHEMA)
    summary: list[dict] = []
    compared_total = missing_total = mismatch_total = 0
    try:
        for resource_id, pairs in groups.items():
            version, agency_name, authority_code = authorities[resource_id]
            auth_columns = [element.column for _, element in pairs]
            authority, ambiguous = _authority_table(version, pairs[0][1].key_column, list(dict.fromkeys(auth_columns)))
            counts = {column: 0 for column, _ in pairs}
            compared = missing = 0
            copy_columns = [column for column, _ in pairs]
            for batch in iter_parts(version_parts(copy_version), columns=[key_column, *copy_columns],
                                    batch_size=BATCH_ROWS):
                keys = pc.cast(batch.column(key_column), pa.string())
                left = pa.table([keys, *[batch.column(c) for c in copy_columns]],
                                names=[KEY, *[f"c.{c}" for c in copy_columns]]).filter(pc.is_valid(keys))
                joined = left.join(authority, keys=KEY, join_type="inner")
                compared += joined.num_rows
                missing += left.num_rows - pc.sum(pc.is_in(left.column(KEY), value_set=authority.column(KEY))
                                                  ).as_py() if left.num_rows else 0
                for column, element in pairs:
                    mine, theirs = joined.column(f"c.{column}"), joined.column(f"a.{element.column}")
                    a, b = _comparable(mine.combine_chunks(), theirs.combine_chunks())
                    same = pc.or_(pc.fill_null(pc.equal(a, b), False), pc.and_(pc.is_null(a), pc.is_null(b)))
                    differ = pc.invert(same)
                    n = pc.sum(pc.cast(differ, pa.int64())).as_py() or 0
                    if not n:
                        continue
                    counts[column] += n
                    rows = joined.filter(differ)
                    writer.write_table(pa.table({
                        "key": rows.column(KEY),
                        "element": pa.array([element.code] * n, pa.string()),
                        "copy_column": pa.array([column] * n, pa.string()),
                        "copy_value": pc.cast(rows.column(f"c.{column}"), pa.string()),
                        "authoritative_value": pc.cast(rows.column(f"a.{element.column}"), pa.string()),
                        "authoritative_agency": pa.array([agency_name] * n, pa.string()),
                        "authoritative_resource": pa.array([authority_code] * n, pa.string()),
                    }, schema=MISMATCH_SCHEMA))
            compared_total += compared
            missing_total += missing
            for column, element in pairs:
                mismatch_total += counts[column]
                summary.append({"element": element.code, "name": element.name, "column": column,
                                "agency": agency_name, "resource": authority_code, "version": version.number,
                                "resource_id": resource_id, "compared": compared, "mismatches": counts[column],
                                "missing": missing, "ambiguous_keys": ambiguous})
    finally:
        writer.close()
    return _record(resource_code=resource_code, copy_version_id=copy_version.id, summary=summary,
                   compared=compared_total, mismatches=mismatch_total, missing=missing_total, out=out)


def _record(*, resource_code: str, copy_version_id: int, summary: list[dict], compared: int, mismatches: int,
            missing: int, out: Path) -> ConsistencyReport:
    from registry.audit.log import record_event
    from registry.db import session_scope
    from registry.catalog.models import Resource
    from registry.quality.models import ConsistencyCheck
    from registry.catalog.resources import get_resource
    from registry.quality.tickets import open_ticket

    relative = out.relative_to(paths.storage_root()).as_posix() if mismatches else None
    if not mismatches:
        out.unlink(missing_ok=True)
    else:
        get_storage().push(out)
    tickets: list[int] = []
    with session_scope() as session:
        copy = get_resource(session, code=resource_code)
        check = ConsistencyCheck(resource_id=copy.id, copy_version_id=copy_version_id,
                                 elements={e["element"]: e for e in summary}, rows_compared=compared,
                                 mismatches=mismatches, missing=missing, path=relative)
        session.add(check)
        session.flush()
        by_authority: dict[int, int] = defaultdict(int)
        for entry in summary:
            by_authority[entry["resource_id"]] += entry["mismatches"]
        for resource_id, count in by_authority.items():
            if not count:
                continue
            authority = session.get(Resource, resource_id)
            detail = {"check": check.id, "copy": copy.code, "authority": authority.code}
            for agency, role_zh, role_en in ((copy.agency, "副本", "copy"), (authority.agency, "权威来源", "authority")):
                ticket = open_ticket(
                    session, kind="consistency", agency=agency, resource=copy if role_en == "copy" else authority,
                    rows=count, detail=detail, consistency_check_id=check.id,
                    title=f"一致性比对: {copy.name}({copy.code}) 与权威来源 {authority.agency.name} 的 "
                          f"{authority.name}({authority.code}) 有 {count} 处不一致, 请核实 (贵单位为{role_zh}) / "
                          f"{count} values of copy {copy.code} differ from the authority {authority.code}; "
                          f"please check (you hold the {role_en})")
                tickets.append(ticket.id)
        record_event(session, actor="cli", action="consistency.check", resource_code=copy.code,
                     agency_code=copy.agency.code, detail={"check": check.id, "compared": compared,
                                                           "mismatches": mismatches, "missing": missing})
        check_id = check.id
    return ConsistencyReport(resource_code=resource_code, check_id=check_id, rows_compared=compared,
                             mismatches=mismatches, missing=missing, elements=summary, tickets=tickets, path=relative)
