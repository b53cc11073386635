"""Offline tool and system docking (article 9): import and export a catalogue as a workbook, CSV or JSON, upsert
entries in bulk for an agency's own system, and prefill data items from a connected source's columns.

An import is all or nothing: the file is read and checked in full (cells, entry rules, codes against the
registry), and only a file without a single problem is written, in the caller's one transaction, through
`registry.catalog.entries.upsert_entry` (idempotent, so exporting and importing again changes nothing).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.errors import ConfigError, GovshareError, NotFound
from registry.audit.log import record_event
from registry.catalog.entries import (
    latest_revision,
    list_entries,
    published_revision,
    upsert_entry,
)
from registry.catalog.models import CatalogRevision, Resource
from registry.catalog.sources import get_source, open_connector
from registry.people.models import Agency
from registry.people.agencies import get_agency
from schemas.catalog_json import json_document, parse_json, parse_json_entry
from schemas.catalog_tabular import ParsedEntry, csv_text, duplicates, parse_csv
from schemas.catalog_workbook import ENTRY_SHEET, ITEM_COLUMNS, Problem
from schemas.catalog_xlsx import parse_workbook, write_workbook

FORMATS = {".xlsx": "xlsx", ".csv": "csv", ".json": "json"}
MAX_BULK = 1000
LENGTH = re.compile(r"\((\d+)")


class ImportRefused(ConfigError):
    """The file has problems; nothing was imported. `problems` lists each with its sheet, row and column."""

    def __init__(self, problems: list[Problem], *, source: str) -> None:
        super().__init__(f"{source} 有 {len(problems)} 处问题，未导入任何条目 / {len(problems)} problem(s): nothing imported")
        self.problems = problems


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def file_format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(f"{path.name}: 只支持 .xlsx、.csv、.json 文件 / use a .xlsx, .csv or .json file")
    return fmt


def parse_file(path: Path) -> tuple[list[ParsedEntry], list[Problem]]:
    fmt = file_format(path)
    if not path.is_file():
        raise ConfigError(f"找不到文件 {path} / no such file")
    return {"xlsx": parse_workbook, "csv": parse_csv, "json": parse_json}[fmt](path)


def _registry_problems(session: Session, parsed: list[ParsedEntry], agency_code: str) -> list[Problem]:
    """What the file cannot know: whose the codes are, and whether the provider columns name the agency."""
    codes = [p.code for p in parsed if p.code]
    owners: dict[str, int] = {}
    if codes:
        owners = {code: owner for code, owner in session.execute(
            select(Resource.code, Resource.agency_id).where(Resource.code.in_(codes)))}
    owner = get_agency(session, ref=agency_code)
    own_id = owner.id
    named = {p.provider.strip() for p in parsed if isinstance(p.provider, str) and p.provider.strip()} - {owner.name}
    others = set(session.scalars(select(Agency.name).where(Agency.name.in_(named)))) if named else set()
    problems = []
    for entry in parsed:
        found = []
        if entry.provider_code and entry.provider_code.upper() != agency_code:
            found.append(("provider_code", (f"提供方代码 {entry.provider_code} 不是导入机构的代码 {agency_code}"
                                           " / the provider code is not the importing agency's")))
        elif isinstance(entry.provider, str) and entry.provider.strip() in others:  # code blank or own: the name must agree
            found.append(("provider", (f"信息资源提供方 {entry.provider.strip()} 是其他机构，不是导入机构 {owner.name}；"
                                      "请由该机构自行导入 / the provider named is another agency: it imports its own")))
        if entry.code in owners and owners[entry.code] != own_id:
            found.append(("code", f"目录条目 {entry.code} 属于其他机构，不能修改 / entry {entry.code} belongs to another agency"))
        if entry.code and entry.code.rpartition("/")[0] != entry.data.classification:
            found.append(("classification", (f"信息资源分类 {entry.data.classification} 与信息资源代码 {entry.code} 不一致"
                                            " / the classification must match the code's prefix")))
        problems += [Problem(entry.sheet, entry.row, entry.where(name), message, entry.unit) for name, message in found]
    return problems


def _max_revision_id(session: Session) -> int:
    return session.scalar(select(func.max(CatalogRevision.id))) or 0


def upsert_one(session: Session, *, entry: ParsedEntry, agency: str, author: str, actor: str) -> tuple[str, str]:
    """(outcome, code): created, updated or unchanged, through the catalogue's own idempotent upsert."""
    before = _max_revision_id(session)
    revision = upsert_entry(session, agency=agency, data=entry.data, code=entry.code, author=author, actor=actor)
    code = session.get(Resource, revision.resource_id).code
    if revision.id <= before:
        return "unchanged", code
    return ("created" if revision.number == 1 else "updated"), code


def import_file(session: Session, *, path: Path, agency: str, author: str, actor: str = "cli") -> ImportReport:
    """Import every entry of the file, or nothing (ImportRefused lists every problem)."""
    owner = get_agency(session, ref=agency)
    parsed, problems = parse_file(path)
    problems += _registry_problems(session, parsed, owner.code)
    if problems:
        raise ImportRefused(problems, source=path.name)
    if not parsed:
        raise ConfigError(f"{path.name} 中没有填写任何条目（“信息资源”表第2行起） / the file holds no entries")
    report = ImportReport()
    failures = []
    for entry in parsed:
        try:
            with session.begin_nested():
                outcome, code = upsert_one(session, entry=entry, agency=owner.code, author=author, actor=actor)
        except GovshareError as exc:
            failures.append(Problem(entry.sheet, entry.row, None, str(exc), entry.unit))
            continue
        getattr(report, outcome).append(code)
    if failures:
        raise ImportRefused(failures, source=path.name)  # the caller's transaction rolls back what was written
    record_event(session, actor=actor, action="catalog.import", agency_code=owner.code,
                 detail={"file": path.name, "format": file_format(path), "author": author,
                         "created": len(report.created), "updated": len(report.updated),
                         "unchanged": len(report.unchanged)})
    return report


def bulk_upsert(session: Session, *, entries: list[Any], agency: str, author: str, actor: str) -> list[dict[str, Any]]:
    """System docking: each entry upserted on its own (a savepoint each), answered created / updated /
    unchanged / error with the problems; the agency is the caller's, never taken from the payload."""
    if len(entries) > MAX_BULK:
        raise ConfigError(f"一次最多提交 {MAX_BULK} 条 / at most {MAX_BULK} entries per request")
    owner = get_agency(session, ref=agency)
    results = []
    earlier: list[ParsedEntry] = []
    for number, raw in enumerate(entries, start=1):
        code = raw.get("code") if isinstance(raw, dict) else None
        parsed = parse_json_entry(raw, sheet="entries", number=number)
        if not isinstance(parsed, ParsedEntry):
            results.append({"index": number - 1, "code": code, "status": "error",
                            "problems": [{"element": p.column, "message": p.message} for p in parsed]})
            continue
        # the same entry twice in one request: the repeat would silently replace the first's draft
        repeated = [p for p in duplicates([*earlier, parsed]) if p.row == parsed.row]
        located = repeated or _registry_problems(session, [parsed], owner.code)
        earlier.append(parsed)
        if located:
            results.append({"index": number - 1, "code": code, "status": "error",
                            "problems": [{"element": p.column, "message": p.message} for p in located]})
            continue
        try:
            with session.begin_nested():
                outcome, code = upsert_one(session, entry=parsed, agency=owner.code, author=author, actor=actor)
        except GovshareError as exc:
            results.append({"index": number - 1, "code": code, "status": "error",
                            "problems": [{"element": None, "message": str(exc)}]})
            continue
        results.append({"index": number - 1, "code": code, "status": outcome, "problems": []})
    counts = {s: sum(r["status"] == s for r in results) for s in ("created", "updated", "unchanged", "error")}
    record_event(session, actor=actor, action="catalog.bulk", agency_code=owner.code, detail=counts)
    return results


# --- export ---------------------------------------------------------------------------------------------------

def export_rows(session: Session, *, agency: str | None = None, published_only: bool = False, actor: str
                ) -> list[tuple[str, dict[str, Any], str, str]]:
    """(code, content, provider, provider code) of each entry with elements: its latest revision, or the
    published one. Resources registered without catalogue elements have nothing to export."""
    rows = []
    for entry in list_entries(session, agency=agency, published_only=published_only, actor=actor):
        revision = (published_revision if published_only else latest_revision)(session, resource=entry)
        if revision is not None:
            rows.append((entry.code, dict(revision.content), entry.agency.name, entry.agency.code))
    return rows


def export_file(session: Session, *, path: Path, agency: str | None = None, published_only: bool = False,
                actor: str) -> int:
    fmt = file_format(path)
    rows = export_rows(session, agency=agency, published_only=published_only, actor=actor)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "xlsx":
        write_workbook(path, rows)
    elif fmt == "csv":
        path.write_text(csv_text(rows), encoding="utf-8-sig")  # the BOM makes Excel read the UTF-8 as such
    else:
        document = json_document(rows, agency=agency)
        path.write_text(json.dumps(document, ensure_ascii=False, indent=2), encoding="utf-8")
    record_event(session, actor=actor, action="catalog.export", agency_code=None,
                 detail={"file": path.name, "format": fmt, "entries": len(rows), "agency": agency,
                         "published_only": published_only})
    return len(rows)


# --- discover -------------------------------------------------------------------------------------------------

def data_type_of(arrow_type: pa.DataType) -> str:
    """A source column's Arrow type as the data_types code list spells it (a PostgreSQL text[] is an array, as
    every channel delivers it: a list, JSON in CSV)."""
    checks = ((pa.types.is_boolean, "boolean"), (pa.types.is_integer, "integer"), (pa.types.is_decimal, "decimal"),
              (pa.types.is_floating, "float"), (pa.types.is_timestamp, "timestamp"), (pa.types.is_date, "date"),
              (lambda t: pa.types.is_binary(t) or pa.types.is_large_binary(t), "binary"),
              (lambda t: pa.types.is_list(t) or pa.types.is_large_list(t), "array"))
    return next((code for check, code in checks if check(arrow_type)), "string")


def discover_items(session: Session, *, source: str, table: str, actor: str = "cli") -> list[dict[str, Any]]:
    """Data items prefilled from a source table's columns: column = the column name; name = the column's
    comment at the source up to its first punctuation, where it has one (agencies' databases often describe
    their columns in Chinese: 统一社会信用代码), else the column name to rename; the whole comment as the
    item's description where it says more; data type mapped from the column's type, length from its
    declaration."""
    src = get_source(session, name=source)
    connector = open_connector(src)
    found = connector.table_info(table)
    if found is None:
        tables = connector.discover()
        raise NotFound(f"数据源 {source} 中没有表 {table}（已有：{', '.join(t.name for t in tables) or '无'}）"
                       f" / no table {table!r} in source {source!r}")
    items = []
    for column in found.columns:
        label = _label(column.comment)
        item: dict[str, Any] = {"name": label or column.name, "column": column.name,
                                "data_type": data_type_of(column.arrow_type)}
        if column.comment.strip() and column.comment.strip() != label:
            item["description"] = column.comment.strip()
        if (match := LENGTH.search(column.source_type or "")) and item["data_type"] in ("string", "decimal") \
                and not (column.source_type or "").endswith("]"):  # numeric(10,2)[]: its elements' precision
            item["length"] = int(match.group(1))
        items.append(item)
    record_event(session, actor=actor, action="catalog.discover", agency_code=src.agency.code,
                 detail={"source": source, "table": table, "columns": len(items)})
    return items


def _label(comment: str) -> str:
    """A column comment's first clause, as a data item's name (at most 50 characters): '统一社会信用代码，18位'
    names the item 统一社会信用代码; '注册资本(万元)' keeps its unit."""
    first = re.split(r"[，,;；。:：\n]", comment.strip(), maxsplit=1)[0].strip()
    return first[:50]


def draft_document(items: list[dict[str, Any]], *, provider: str, provider_code: str,
                   prefill: dict[str, Any]) -> dict[str, Any]:
    """A JSON draft (the import format) with the discovered data items and the elements still to fill in."""
    entry = {"name": "", "classification": "", "abstract": "", "sharing_type": "", "sharing_modes": [],
             **{k: v for k, v in prefill.items() if v}, "data_items": items}
    return {"format": "govshare-catalog", "version": 1, "draft": True, "agency": provider_code,
            "entries": [{"code": None, "provider": provider, "provider_code": provider_code, **entry}]}


def write_draft_workbook(path: Path, items: list[dict[str, Any]], *, provider: str, provider_code: str,
                         prefill: dict[str, Any]) -> Path:
    from schemas.catalog_workbook import ENTRY_COLUMNS, write_cell

    key = "1"
    values = {**prefill, "key": key, "provider": provider, "provider_code": provider_code}
    entry = {c.field: write_cell(c, values.get(c.field)) for c in ENTRY_COLUMNS}
    cells = [{c.field: write_cell(c, {**item, "key": key}.get(c.field)) for c in ITEM_COLUMNS} for item in items]
    return write_workbook(path, drafts=[(entry, cells)])


__all__ = [
    "ENTRY_SHEET",
    "ImportRefused",
    "ImportReport",
    "bulk_upsert",
    "data_type_of",
    "discover_items",
    "draft_document",
    "export_file",
    "export_rows",
    "import_file",
    "parse_file",
    "write_draft_workbook",
]
