"""Interface exchange (接口交换, article 15): keyed lookups, filtered pages with a stable cursor, bulk reads.

Every read goes through delivery.access: `authorize_read` decides, `restrict` keeps only the granted columns
and rows and masks what must be masked. Filters and lookups are accepted only on granted, unmasked columns,
so a consumer can never probe a value it may not see.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import math
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.arrowconv import duration_text
from core.errors import AccessDenied, ConfigError, NotFound
from delivery.access import AccessDecision, restrict
from delivery.keyindex import sorted_copy
from delivery.partlookup import loaded, version_lookup
from pipeline.text_values import from_text, needs_text
from registry.exchange.models import DatasetVersion, PrunedVersion

ORDINAL = "__govshare_ordinal"
MAX_PAGE = 1000
SCAN_BUDGET = 200_000  # rows examined per page request; a sparse filter returns a short page and a cursor


def version_for(session: Session, decision: AccessDecision, number: int | None) -> DatasetVersion:
    """The decision's (latest) version, or a given earlier one of the same resource."""
    if number is None or number == decision.version.number:
        return decision.version
    version = session.scalar(select(DatasetVersion).where(
        DatasetVersion.resource_id == decision.resource.id, DatasetVersion.number == number))
    if version is not None and session.get(PrunedVersion, version.id) is not None:
        # its files are gone (a cached copy may not be): what retention removed is not delivered
        raise NotFound(zh=f"资源 {decision.resource.code} 第 {number} 版已超过保存期限被清理（记录保留），请获取更新的版本",
                       en=f"{decision.resource.code} v{number} was removed by retention (its record stays); "
                          f"ask for a later version (v{decision.version.number} is the latest)")
    if version is None:
        raise NotFound(zh=f"资源 {decision.resource.code} 没有第 {number} 版；已发布的版本见 "
                          f"/api/v1/resources/{decision.resource.code}/versions",
                       en=f"resource {decision.resource.code} has no version {number}; list them at "
                          f"/api/v1/resources/{decision.resource.code}/versions")
    return version


def all_columns(version: DatasetVersion) -> list[str]:
    return [field["name"] for field in version.manifest.get("schema", [])]


def granted_columns(decision: AccessDecision, version: DatasetVersion) -> list[str]:
    columns = all_columns(version)
    granted = getattr(decision, "columns", None)
    return [c for c in granted if c in columns] if granted is not None else columns  # the grant's order


def _masked(decision: AccessDecision) -> set[str]:
    return set(getattr(decision, "mask_columns", None) or [])


def choose_fields(decision: AccessDecision, version: DatasetVersion, fields: list[str] | None) -> list[str]:
    """The fields a consumer asked for, all of them granted; by default every granted column."""
    granted = granted_columns(decision, version)
    if not fields:
        return granted
    if refused := [f for f in fields if f not in granted]:
        raise AccessDenied(f"未获授权的数据项：{', '.join(refused)}",
                           f"fields not granted to your agency: {', '.join(refused)}; granted: {', '.join(granted)}")
    return fields


def searchable(decision: AccessDecision, version: DatasetVersion, column: str) -> None:
    """Lookups and filters only on granted, unmasked columns: otherwise a match would reveal a hidden value."""
    masked = _masked(decision)
    usable = [c for c in granted_columns(decision, version) if c not in masked]
    if column not in all_columns(version) and getattr(decision, "columns", None) is None:
        raise ConfigError(zh=f"第 {version.number} 版没有数据项“{column}”；可用：{'、'.join(usable)}",
                          en=f"no column {column!r} in version {version.number}; columns: {', '.join(usable)}")
    if column not in usable:
        # An unknown column and a hidden one are answered alike, naming only what may be searched: the
        # answer must not tell a consumer which columns exist beyond its grant.
        raise AccessDenied(f"数据项“{column}”未获授权或已脱敏，不能作为查询条件；可用：{'、'.join(usable)}",
                           f"column {column!r} is not granted or is masked, so it cannot be searched; "
                           f"searchable: {', '.join(usable)}")


def _restricted(decision: AccessDecision, table: pa.Table, *, keep_ordinal: bool = False) -> pa.Table:
    """restrict() applied to a table; with keep_ordinal the row positions survive the row filter."""
    grant_view = decision
    if keep_ordinal:
        granted = getattr(decision, "columns", None)
        if granted is not None:
            grant_view = dataclasses.replace(decision, columns=[*granted, ORDINAL])
    batches = list(restrict(grant_view, table.to_batches()))
    if not batches:
        schema = pa.schema([f for f in table.schema if granted_or_all(grant_view, f.name)])
        return schema.empty_table()
    return pa.Table.from_batches(batches)


def granted_or_all(decision: AccessDecision, name: str) -> bool:
    granted = getattr(decision, "columns", None)
    return granted is None or name in granted


def lookup(decision: AccessDecision, version: DatasetVersion, *, column: str, value: str,
           fields: list[str] | None) -> pa.Table:
    """Rows whose column equals value, restricted to the grant and projected on fields."""
    searchable(decision, version, column)
    chosen = choose_fields(decision, version, fields)
    index = version_lookup(version, primary_key=decision.resource.stream.get("primary_key"))
    key = _typed(value, index.schema.field(column).type, column)
    found = index.find(column, key, columns=getattr(decision, "read_columns", None))
    return _restricted(decision, found).select(chosen)


def lookup_ready(decision: AccessDecision, column: str) -> bool:
    """Whether a lookup of the decision's version by column would only read loaded, memory-mapped structures
    (no registry query, no file to build), so it may run on the server's event loop."""
    return loaded(decision.version, column)


def _typed(value: str, kind: pa.DataType, column: str) -> object:
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return value
    try:
        if needs_text(kind):  # bytes and durations in the text forms the hub writes them in (\x00ff, 01:02:03)
            return from_text(pa.array([value], pa.string()), kind)[0].as_py()
        return pa.scalar(value).cast(kind).as_py()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ConfigError(zh=f"“{value}”不是数据项“{column}”可取的值（类型 {kind}，或超出其取值范围）",
                          en=f"value {value!r} is not a valid {kind} for column {column!r}") from exc


def arrow_schema(version: DatasetVersion) -> pa.Schema:
    from delivery.files import version_schema

    return version_schema(version)


def parse_where(decision: AccessDecision, version: DatasetVersion, where: list[str]) -> pc.Expression | None:
    """`column:value` conditions (AND), each on a granted unmasked column; values typed as the column."""
    expression = None
    schema = arrow_schema(version)
    for condition in where:
        column, sep, raw = condition.partition(":")
        if not sep:
            raise ConfigError(zh=f"查询条件“{condition}”格式有误，应为 数据项:值，例如 status:存续",
                              en=f"filter {condition!r} must read column:value, e.g. status:存续")
        searchable(decision, version, column)
        term = pc.field(column) == pc.scalar(_typed(raw, schema.field(column).type, column))
        expression = term if expression is None else expression & term
    return expression


@dataclasses.dataclass
class Page:
    rows: pa.Table
    next_cursor: str | None
    version: int


BAD_CURSOR_ZH = "游标（cursor）不是本服务签发的，请去掉 cursor 从第一页重新读取"
BAD_CURSOR_EN = "cursor is not one this service issued; start again without a cursor"


def encode_cursor(version: int, column: str, ordinal: int, *, reader: str) -> str:
    """The next page's cursor, sealed and opaque (AES-256-GCM under the `page-cursor` key, bound to ``reader``):
    the ordinal counts every row of the version in key order, those outside the reader's row condition too, so
    a readable one told how many rows the reader may not see lie between its own (and an editable one let it
    probe them)."""
    import os

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from core.keys import derive_key

    raw = json.dumps({"v": version, "k": column, "o": ordinal}, separators=(",", ":")).encode()
    nonce = os.urandom(12)
    sealed = AESGCM(derive_key(purpose="page-cursor")).encrypt(nonce, raw, reader.encode())
    return base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")


def cursor_reader(decision: AccessDecision) -> str:
    """Whom a cursor is issued to: the resource and the reading agency (another's cursor is no use)."""
    return f"{decision.resource.code}|{decision.agency_code}"


CURSOR_FIELDS = {"v", "k", "o"}  # version, order column, ordinal of the next row
LARGEST = 2**63 - 1  # what the registry and Arrow hold; a larger number was never issued


def _whole(value: object, *, least: int) -> bool:
    # bool is an int subclass: true must not pass for 1
    return type(value) is int and least <= value <= LARGEST


def decode_cursor(cursor: str, *, reader: str) -> tuple[int, str, int]:
    """The cursor exactly as encode_cursor sealed it for this reader, or a 400: anything edited, made elsewhere
    or issued to another reader fails the seal; within it only its three fields, whole numbers as numbers, a
    version from 1, an ordinal from 0."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from core.keys import derive_key

    try:
        sealed = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        raw = AESGCM(derive_key(purpose="page-cursor")).decrypt(sealed[:12], sealed[12:], reader.encode())
        body = json.loads(raw)
    except (ValueError, TypeError, InvalidTag) as exc:  # binascii.Error and JSONDecodeError are ValueErrors
        raise ConfigError(zh=BAD_CURSOR_ZH, en=BAD_CURSOR_EN) from exc
    if not (isinstance(body, dict) and set(body) == CURSOR_FIELDS and _whole(body["v"], least=1)
            and isinstance(body["k"], str) and body["k"] and _whole(body["o"], least=0)):
        raise ConfigError(zh=BAD_CURSOR_ZH, en=BAD_CURSOR_EN)
    return body["v"], body["k"], body["o"]


def order_column(decision: AccessDecision, version: DatasetVersion) -> str:
    """The column a reader's pages are sorted by: the key's first column, unless the reader may not see it in
    the clear (not granted, or masked: a person-keyed resource whose key is the ID number), since the order of
    its values would tell them; then the first column the reader sees in the clear."""
    primary_key = decision.resource.stream.get("primary_key") or []
    candidates = [*primary_key[:1], *all_columns(version)]
    granted, masked = granted_columns(decision, version), _masked(decision)
    clear = [c for c in candidates if c in granted and c not in masked]
    return (clear or [c for c in candidates if c in granted] or candidates)[0]


def cursor_order(decision: AccessDecision, version: DatasetVersion, cursor_order_by: str | None) -> str:
    """The order of a page: always ``order_column``'s. A cursor naming another column was not issued here (an
    edited one would sort the rows by a column hidden or masked from the consumer, revealing its order)."""
    order_by = order_column(decision, version)
    if cursor_order_by is not None and cursor_order_by != order_by:
        raise ConfigError(zh=BAD_CURSOR_ZH, en=BAD_CURSOR_EN)
    return order_by


def page(decision: AccessDecision, version: DatasetVersion, *, order_by: str, start: int, limit: int,
         where: pc.Expression | None, fields: list[str] | None) -> Page:
    """Rows in key order from ordinal `start`; the cursor pins the version, so pages never shift under a
    consumer even when a newer version is published meanwhile."""
    limit = max(1, min(limit, MAX_PAGE))
    chosen = choose_fields(decision, version, fields)
    copy = sorted_copy(version, order_by)
    group, _ = copy.groups_from(start)
    parts, collected, scanned = [], 0, 0
    ordinal = start
    while group < len(copy.starts) and collected < limit and scanned < SCAN_BUDGET:
        table = copy.read_group(group)
        first = copy.starts[group]
        table = table.append_column(ORDINAL, pa.array(range(first, first + table.num_rows), pa.int64()))
        table = table.filter(pc.field(ORDINAL) >= start)
        if where is not None:
            table = table.filter(where)
        scanned += copy.file.metadata.row_group(group).num_rows
        kept = _restricted(decision, table, keep_ordinal=True).slice(0, limit - collected)
        parts.append(kept)
        collected += kept.num_rows
        group += 1
        ordinal = copy.starts[group] if group < len(copy.starts) else copy.rows
        if collected >= limit and kept.num_rows:
            ordinal = kept.column(ORDINAL)[-1].as_py() + 1
    rows = pa.concat_tables(parts) if parts else pa.table({})
    done = ordinal >= copy.rows
    cursor = None if done else encode_cursor(version.number, order_by, ordinal,
                                             reader=cursor_reader(decision))
    return Page(rows=rows.select(chosen) if rows.num_columns else rows, next_cursor=cursor, version=version.number)


def bulk_batches(decision: AccessDecision, version: DatasetVersion, *, where: pc.Expression | None,
                 fields: list[str] | None) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """Every granted row in the version's own order, batch by batch (bounded memory)."""
    from delivery.files import iter_batches

    chosen = choose_fields(decision, version, fields)

    def filtered() -> Iterator[pa.RecordBatch]:
        # Only the approved columns (and those the grant's row condition needs) are read from storage.
        for batch in iter_batches(version, columns=getattr(decision, "read_columns", None)):
            yield batch.filter(where) if where is not None else batch

    def projected() -> Iterator[pa.RecordBatch]:
        for batch in restrict(decision, filtered()):
            yield batch.select(chosen)

    return output_schema(decision, version, chosen), projected()


def output_schema(decision: AccessDecision, version: DatasetVersion, chosen: list[str]) -> pa.Schema:
    """The schema of what restrict() yields, projected on the chosen fields (writers need it up front)."""
    from delivery.access import restricted_schema

    produced = restricted_schema(decision, arrow_schema(version))
    return pa.schema([produced.field(c) for c in chosen])


def json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)  # exact: a float would change amounts
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, timedelta):  # no JSON form: the hub's text form (MySQL's, 838:59:59.5)
        return duration_text(value)
    if isinstance(value, list):  # an array column (e.g. PostgreSQL numeric[]): its items likewise
        return [json_value(item) for item in value]
    if isinstance(value, dict):  # a struct's fields; a map comes as a list of (key, value) pairs
        return {key: json_value(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [json_value(item) for item in value]
    return value


def json_rows(table: pa.Table) -> list[dict[str, Any]]:
    rows = table.to_pylist()
    # Only decimals, times and bytes need converting; text, numbers and booleans are JSON already, except a
    # float that is not a number or infinite (JSON has no such number: the answer failed): "NaN", "Infinity".
    for field in table.schema:
        if field.type.id not in _JSON_READY:
            for row in rows:
                row[field.name] = json_value(row[field.name])
        elif pa.types.is_floating(field.type) and table.num_rows \
                and not pc.all(pc.fill_null(pc.is_finite(table.column(field.name)), True)).as_py():
            for row in rows:
                value = row[field.name]
                if value is not None and not math.isfinite(value):
                    row[field.name] = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return rows


_JSON_READY = {kind.id for kind in (pa.string(), pa.large_string(), pa.bool_(), pa.float16(), pa.float32(),
                                    pa.float64(), pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(),
                                    pa.uint16(), pa.uint32(), pa.uint64())}
