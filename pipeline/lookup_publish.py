"""Which lookup structures a publish builds (pipeline.lookup_index), and building them for a run's own parts.

A resource offered through the interface mode (接口交换) gets, for each data part the run wrote, a row store and
the sorted keys of its lookup columns:

- its single-column primary key (an integer one is already sorted by the part's key locator);
- the columns that identify a subject other than a person: the published catalogue entry's data items marked
  统一社会信用代码 or 组织机构代码, and the data contract's ``subject_id_uscc`` / ``organization_code`` columns.
  ID numbers (身份证号码) are personal and masked unless a decision lifts the mask, and a masked column cannot be
  searched, so they are indexed on their first lookup instead of on every publish;
- the stream's declared ``lookup_columns``;
- every column an earlier version of the resource was looked up by ("learned": indexed on demand then).

Referenced parts of a layer keep their own structures; nothing of the base is sorted again.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from pipeline.layers import Part, parts_of
from pipeline.locator import supports
from pipeline.lookup_index import build_part, cached_stem, indexed_columns, published_stem

NON_PERSONAL_SUBJECTS = ("uscc", "orgcode")
NON_PERSONAL_ROLES = ("subject_id_uscc", "organization_code")


def lookup_columns(session, resource, previous_parts: list[Part]) -> list[str]:  # noqa: ANN001 - Session, Resource
    """The columns a publish of this resource indexes; none when it is not offered through the interface."""
    if "interface" not in (resource.sharing_modes or []):
        return []
    stream = resource.stream or {}
    columns = list(stream.get("primary_key") or [])[:1] if len(stream.get("primary_key") or []) == 1 else []
    columns += _catalogue_subjects(session, resource)
    columns += _contract_subjects(resource)
    columns += list(stream.get("lookup_columns") or [])
    for part in previous_parts:
        owner, name = owner_of(part)
        columns += sorted(indexed_columns(published_stem(owner, name)) | indexed_columns(cached_stem(owner, name)))
    return list(dict.fromkeys(columns))


def _catalogue_subjects(session, resource) -> list[str]:  # noqa: ANN001
    from registry.catalog.entries import published_revision
    from schemas.catalog_metadata import CatalogEntryData

    revision = published_revision(session, resource=resource)
    if revision is None:
        return []
    items = CatalogEntryData.model_validate(revision.content).data_items
    return [item.column for item in items if item.column and item.subject_id in NON_PERSONAL_SUBJECTS]


def _contract_subjects(resource) -> list[str]:  # noqa: ANN001
    from schemas.contract_store import contract_for

    contract = contract_for(resource_code=resource.code, stream=resource.stream)
    return [c.name for c in contract.columns if c.role in NON_PERSONAL_ROLES] if contract is not None else []


def owner_of(part: Part) -> tuple[Path, str]:
    """The folder that owns a part, and the part's path inside it (as its manifest entry names it)."""
    name = part.entry["path"]
    return Path(str(part.path)[: -len(name)].rstrip("/")), name


def build_for_publish(*, staging: Path, files: list[dict], columns: list[str], primary_key: list[str]) -> None:
    """The structures of the run's own parts (entries without ``folder``), written into the staging folder so
    they move with it. ``files``: the manifest's file entries."""
    if not columns:
        return
    for part in parts_of(staging, {"files": files}):
        if not part.owned:
            continue
        name = part.entry["path"]
        schema = pq.read_schema(part.path)
        located = primary_key[0] if part.locator is not None and supports(schema, tuple(primary_key)) else None
        build_part(part.path, published_stem(staging, name), columns, located=located)
