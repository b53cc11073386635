"""Catalogue resources (信息资源) and the streams that feed them."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connectors.kinds import connector_class
from core.errors import ConfigError, NotFound
from core.sheet_text import checked_name
from registry.audit.log import record_event
from registry.catalog.models import Resource
from registry.catalog.sources import get_source
from registry.people.agencies import get_agency
from registry.seals import edited, intact
from schemas.presentation import labels

SHARING_TYPES = labels("sharing_types")
SHARING_MODES = labels("sharing_modes")
# auto: incremental by the cursor column when there is one, else full; cdc: PostgreSQL change capture (pipeline/cdc.py).
SYNC_MODES = ("auto", "cdc")
UPDATE_CYCLES = labels("update_cycles")
# Classification code: class (1 digit) + item (2) + sub-item (3) + optional detail digits (类/项/目/细目).
CLASSIFICATION = re.compile(r"^[1-9]\d{2}(\d{3}(\d{1,6})?)?$")


def _next_code(session: Session, classification: str) -> str:
    count = session.scalar(select(func.count()).where(Resource.classification == classification)) or 0
    sequence = count + 1
    while session.scalar(select(Resource.id).where(Resource.code == f"{classification}/{sequence:04d}")):
        sequence += 1
    return f"{classification}/{sequence:04d}"


def add_resource(
    session: Session,
    *,
    name: str,
    agency: str,
    classification: str,
    abstract: str = "",
    source: str | None = None,
    table: str | None = None,
    query: str | None = None,
    primary_key: list[str] | None = None,
    cursor_column: str | None = None,
    sync_mode: str | None = None,
    sharing_type: str = "unconditional",
    sharing_condition: str = "",
    sharing_modes: list[str] | None = None,
    update_cycle: str = "daily",
    actor: str = "cli",
) -> Resource:
    checked_name(name, what_zh="信息资源名称", what_en="a resource name")
    if not CLASSIFICATION.match(classification):
        raise ConfigError(f"classification {classification!r} must be class(1)+item(2)[+sub-item(3)[+detail]] digits, e.g. 101001")
    if sharing_type not in SHARING_TYPES:
        raise ConfigError(f"sharing type {sharing_type!r} must be one of {', '.join(SHARING_TYPES)}")
    if sharing_type != "unconditional" and not sharing_condition.strip():
        what = "its legal basis (法律法规依据)" if sharing_type == "not_shared" else "its sharing conditions (共享条件)"
        raise ConfigError(f"a {sharing_type} resource needs {what}: pass --condition")
    modes = sharing_modes or ["interface", "file"]
    if bad := [m for m in modes if m not in SHARING_MODES]:
        raise ConfigError(f"unknown sharing mode(s) {bad}; use {', '.join(SHARING_MODES)}")
    if update_cycle not in UPDATE_CYCLES:
        raise ConfigError(f"update cycle {update_cycle!r} must be one of {', '.join(UPDATE_CYCLES)}")
    if source and not (table or query):
        raise ConfigError("a resource fed by a source needs --table or --query")
    if table and query:
        raise ConfigError("give either --table or --query, not both")
    owner = get_agency(session, ref=agency)
    src = get_source(session, name=source) if source else None
    if src and src.agency_id != owner.id:
        raise ConfigError(f"source {source!r} belongs to another agency; a resource is fed only by its provider's sources")
    stream: dict[str, Any] = {"table": table, "query": query, "primary_key": primary_key or [], "cursor_column": cursor_column}
    if sync_mode not in (None, "auto"):
        if sync_mode not in SYNC_MODES:
            raise ConfigError(f"sync mode {sync_mode!r} must be one of {', '.join(SYNC_MODES)}")
        if sync_mode == "cdc" and not (src and "cdc" in connector_class(src.kind).capabilities and table):
            raise ConfigError("sync mode cdc (change capture) needs a postgresql source and --table")
        stream["mode"] = sync_mode
    resource = Resource(
        code=_next_code(session, classification), classification=classification, name=name, abstract=abstract,
        agency_id=owner.id, source_id=src.id if src else None, stream=stream, sharing_type=sharing_type,
        sharing_condition=sharing_condition, sharing_modes=modes, update_cycle=update_cycle,
    )
    session.add(resource)
    session.flush()
    record_event(session, actor=actor, action="resource.add", agency_code=owner.code, resource_code=resource.code,
                 detail={"name": name, "sharing_type": sharing_type, "source": source})
    return resource


def get_resource(session: Session, *, code: str) -> Resource:
    resource = session.scalar(select(Resource).where(Resource.code == code))
    if resource is None:
        raise missing_resource(code)
    return resource


def missing_resource(code: str) -> NotFound:
    """The answer for a code no resource has, and for one another agency may not know of (hidden_from)."""
    return NotFound(f"no resource {code!r}; `govshare resource list` shows the catalogue")


def hidden_from(resource: Resource, *, agency_id: int | None) -> bool:
    """An entry not published (registered, draft, withdrawn) is its provider's alone: to any other agency it is
    answered as a code that does not exist, so neither its existence nor its state can be probed."""
    return agency_id != resource.agency_id and resource.catalog_status != "published"


def list_resources(session: Session, *, agency: str | None = None) -> list[Resource]:
    query = select(Resource).order_by(Resource.code)
    if agency:
        query = query.where(Resource.agency_id == get_agency(session, ref=agency).id)
    return list(session.scalars(query))


def edited_refusal() -> tuple[str, str]:
    """Why an edited resource (its seal broken) is not shown, notified or delivered, as (zh, en)."""
    return edited(zh="该资源的目录", en="resource's catalogue")


def shown_as_published(session: Session, *, resource: Resource, actor: str, where: str,
                       agency_code: str | None = None) -> bool:
    """Whether others may see the entry as published: published, and its row as the hub wrote it. The status and
    sharing type of a row edited outside the hub are not believed (registry/seals.py); hiding it is audited as
    `catalog.read` denied, as the data channels record their refusals."""
    if resource.catalog_status != "published":
        return False
    if intact(resource):
        return True
    record_event(session, actor=actor, action="catalog.read", agency_code=agency_code, resource_code=resource.code,
                 result="denied", detail={"where": where, "reason": edited_refusal()[1]})
    return False
