"""Data elements (数据元) and one data, one source (一数一源, article 11).

Each element (e.g. 企业名称, 法定代表人, 注册资本, keyed by the USCC) has exactly one authoritative agency and
the resource and column where that agency publishes it. A catalogue entry whose data items carry an element
another agency is authoritative for is a duplicate collection: ``check_duplicate_collection`` names the
authoritative agency and resource and suggests subscribing to it instead of collecting again.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import ConfigError, NotFound
from core.sheet_text import checked_name
from registry.audit.log import record_event
from registry.catalog.models import DataElement
from registry.catalog.resources import get_resource
from registry.exchange.versions import latest_version
from registry.people.agencies import get_agency
from schemas.presentation import labels

SUBJECT_KEYS = labels("subject_ids")


@dataclass(frozen=True)
class Finding:
    """One problem with a catalogue entry's data items; ``kind`` is duplicate_collection or unknown_element."""

    kind: str
    element_code: str
    message_zh: str
    message_en: str
    element_name: str = ""
    authoritative_agency_code: str | None = None
    authoritative_agency_name: str | None = None
    resource_code: str | None = None
    resource_name: str | None = None
    suggestion: str = ""

    @property
    def message(self) -> str:
        return f"{self.message_zh} / {self.message_en}"


def _declared_columns(session: Session, resource) -> set[str] | None:  # noqa: ANN001 - Resource
    """The resource's columns as published (or as its contract declares them); None when not yet known."""
    version = latest_version(session, resource=resource)
    if version is not None:
        return {f["name"] for f in version.manifest.get("schema", [])}
    from schemas.contract_store import contract_for

    contract = contract_for(resource_code=resource.code, stream=resource.stream)
    return {c.name for c in contract.columns} if contract and contract.columns else None


def add_element(session: Session, *, code: str, name: str, agency: str, resource_code: str, column: str,
                key_column: str = "uscc", subject_key: str = "uscc", description: str = "",
                actor: str = "cli") -> DataElement:
    code = code.strip().upper()
    if not code or len(code) > 40:
        raise ConfigError("数据元编码不能为空且不超过 40 字符 / an element code is 1-40 characters")
    checked_name(name.strip(), what_zh="数据元名称", what_en="a data element name")
    if subject_key not in SUBJECT_KEYS:
        raise ConfigError(f"subject key {subject_key!r} must be one of {', '.join(SUBJECT_KEYS)}")
    existing = session.scalar(select(DataElement).where(DataElement.code == code))
    if existing is not None:
        raise ConfigError(f"数据元 {code} 已由 {existing.agency.name} 作为权威来源登记 / element {code} already has "
                          f"its one authoritative agency, {existing.agency.name} ({existing.resource.code})")
    owner = get_agency(session, ref=agency)
    resource = get_resource(session, code=resource_code)
    if resource.agency_id != owner.id:
        raise ConfigError(f"资源 {resource.code} 不属于 {owner.name} / resource {resource.code} belongs to "
                          f"{resource.agency.name}, not {owner.name}; the authority publishes its own resource")
    columns = _declared_columns(session, resource)
    missing = [c for c in (column, key_column) if columns is not None and c not in columns]
    if missing:
        raise ConfigError(f"resource {resource.code} has no column(s) {', '.join(missing)}; "
                          f"its columns: {', '.join(sorted(columns or []))}")
    element = DataElement(code=code, name=name.strip(), subject_key=subject_key, agency_id=owner.id,
                          resource_id=resource.id, column=column, key_column=key_column, description=description)
    session.add(element)
    session.flush()
    record_event(session, actor=actor, action="element.add", agency_code=owner.code, resource_code=resource.code,
                 detail={"element": code, "name": element.name, "column": column, "key_column": key_column})
    return element


def get_element(session: Session, *, code: str) -> DataElement:
    element = session.scalar(select(DataElement).where(DataElement.code == code.strip().upper()))
    if element is None:
        raise NotFound(f"没有数据元 {code} / no data element {code}; `govshare element list` shows them")
    return element


def list_elements(session: Session) -> list[DataElement]:
    return list(session.scalars(select(DataElement).order_by(DataElement.code)))


def check_duplicate_collection(session: Session, *, agency_code: str, element_codes: list[str]) -> list[Finding]:
    """Findings for elements ``agency_code`` would collect although another agency is authoritative for them
    (with the resource to subscribe to instead), and for element codes the registry does not know."""
    agency_code = agency_code.strip().upper()
    findings: list[Finding] = []
    for code in dict.fromkeys(c.strip().upper() for c in element_codes if c and c.strip()):
        element = session.scalar(select(DataElement).where(DataElement.code == code))
        if element is None:
            findings.append(Finding(
                kind="unknown_element", element_code=code,
                message_zh=f"数据元 {code} 未登记, 请先登记其权威来源",
                message_en=f"data element {code} is not registered; register its authoritative source first "
                           "(`govshare element add`)"))
            continue
        if element.agency.code == agency_code:
            continue
        resource = element.resource
        findings.append(Finding(
            kind="duplicate_collection", element_code=code, element_name=element.name,
            authoritative_agency_code=element.agency.code, authoritative_agency_name=element.agency.name,
            resource_code=resource.code, resource_name=resource.name,
            message_zh=f"重复采集: 数据元 {code}({element.name}) 的权威来源是 {element.agency.name} 的"
                       f"“{resource.name}”({resource.code}), 应通过共享获取, 不应重复采集",
            message_en=f"duplicate collection: element {code} ({element.name}) is authoritatively provided by "
                       f"{element.agency.name} in resource {resource.code}; obtain it by sharing instead",
            suggestion=f"建议订阅 / subscribe: govshare subscribe {resource.code} --agency {agency_code} "
                       f"--purpose ..."))
    return findings
