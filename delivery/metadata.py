"""Metadata is data (元数据即数据): versions, schemas, row counts, watermarks, manifests and the per-resource
OpenAPI document are shown only to a principal the access check lets read the resource, limited to its granted
columns, and every such read is audited (action ``data.metadata``).

A consumer whose grant is restricted (some columns, a row condition, masked identifiers) never sees the version
manifest, which lists every column and the digest of every file: it gets the manifest of what it receives, with
the digests of its own files. Unrestricted readers (the provider, a grant on every column and row) get the
version manifest itself. Every reader with a live grant sees the version manifest's digest (manifest_sha256):
it names the version the reader got, as every download's X-Govshare-Manifest-SHA256 does, and reveals no value.
"""

from __future__ import annotations

import copy
from typing import Any

from sqlalchemy.orm import Session

from delivery.access import AccessDecision, authorize_read
from registry.audit.log import record_event
from registry.exchange.models import DatasetVersion
from registry.sharing.visibility import restricted, version_facts

METADATA = "metadata"


def _granted(decision: AccessDecision, name: str) -> bool:
    return decision.columns is None or name in decision.columns


def authorize_metadata(session: Session, *, token: str | None, resource_code: str, what: str) -> AccessDecision:
    """The same decision as a data read (refusals audited by it); the allowed read is audited here."""
    decision = authorize_read(session, token=token, resource_code=resource_code, channel=METADATA)
    record_metadata_read(session, actor=decision.actor, agency_code=decision.agency_code,
                         resource_code=decision.resource.code, what=what, grant_id=decision.grant_id,
                         columns=decision.columns, purpose=decision.purpose)
    return decision


def record_metadata_read(session: Session, *, actor: str, agency_code: str | None, resource_code: str, what: str,
                         grant_id: int | None, columns: list[str] | None, purpose: str | None) -> None:
    """Record one allowed metadata read (data.metadata), whichever route or page showed it."""
    record_event(session, actor=actor, action="data.metadata", agency_code=agency_code, resource_code=resource_code,
                 detail={"what": what, "grant": grant_id, "columns": columns or "all", "purpose": purpose})


def version_view(decision: AccessDecision, version: DatasetVersion) -> dict[str, Any]:
    """One version as this reader may see it."""
    manifest = version.manifest or {}
    watermark = manifest.get("watermark") or {}
    cursor = watermark.get("cursor_column")
    own = decision.grant_id is None
    return {
        "number": version.number, "created_at": version.created_at,
        **version_facts(decision, version),  # row count (not under a row condition), manifest digest
        "quarantined_count": version.quarantined_count if own else None,
        "watermark": watermark if (not restricted(decision) or (cursor and _granted(decision, cursor))) else {},
        "schema_fields": _granted_fields(decision, manifest.get("schema", [])),
    }


def _granted_fields(decision: AccessDecision, fields: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if decision.columns is None:
        return list(fields)
    by_name = {f.get("name"): f for f in fields}
    return [by_name[c] for c in decision.columns if c in by_name]  # in the grant's order, as the data comes


def consumer_manifest(decision: AccessDecision, version: DatasetVersion, *, files: list[dict[str, Any]],
                      rows: int, since: int | None) -> dict[str, Any]:
    """The manifest a restricted consumer receives: its own schema, rows and files (with their digests)."""
    view = version_view(decision, version)
    return {
        "resource": decision.resource.code, "version": version.number, "since": since,
        "created_at": str(version.created_at), "consumer": decision.agency_code, "rows": rows,
        "version_manifest_sha256": version.manifest_sha256,  # which version this is (never the manifest itself)
        "schema": view["schema_fields"], "watermark": view["watermark"], "columns": decision.columns,
        "row_filter": decision.row_filter, "masked": decision.mask_columns, "purpose": decision.purpose,
        "files": files,
    }


def restrict_openapi(document: dict[str, Any], decision: AccessDecision) -> dict[str, Any]:
    """The interface service's OpenAPI document with only the reader's granted columns."""
    if decision.columns is None:
        return document
    granted = set(decision.columns)
    # a lookup key must also be in the clear: a match on a masked column would reveal its value (refused)
    keys = granted - set(decision.mask_columns or [])
    out = copy.deepcopy(document)
    record = out.get("components", {}).get("schemas", {}).get("Record", {})
    record["properties"] = {k: v for k, v in record.get("properties", {}).items() if k in granted}
    for operation in (op for path in out.get("paths", {}).values() for op in path.values()):
        for parameter in operation.get("parameters", []):
            schema = parameter.get("schema", {})
            if "enum" in schema:
                usable = keys if parameter.get("name") == "column" else granted
                schema["enum"] = [v for v in schema["enum"] if v in usable]
                if schema.get("default") not in schema["enum"]:
                    schema.pop("default", None)
            if parameter.get("name") == "fields":
                parameter["description"] = f"逗号分隔的信息项，默认全部已授权项；可选：{', '.join(decision.columns)}"
    return out
