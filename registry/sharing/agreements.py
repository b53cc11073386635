"""Secrecy review and secrecy agreements (保密审查, article 19; 安全保密协议, article 14).

The provider records its secrecy review of a resource: whether it involves state secrets, commercial secrets or
personal privacy, and which columns are personal identifiers (masked in browsing). A grant on a resource that
involves any of them stays pending until both parties' signed secrecy agreement is recorded: parties, signing
date, term and the signed scan, stored in the storage folder under its SHA-256.
"""

from __future__ import annotations

import hashlib
import shutil
from datetime import date
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import clock
from core.errors import ConfigError, NotFound
from core.storage import get_storage
from registry.audit.log import record_event
from registry.catalog.models import Resource
from registry.catalog.resources import get_resource
from registry.people.agencies import get_agency
from registry.people.auth import OVERSIGHT_ROLES, Principal, require
from registry.people.models import Agency
from registry.sharing.grants import activate_if_ready
from registry.sharing.models import Grant, ResourceSensitivity, SecrecyAgreement
from schemas.presentation import day

SCAN_SUFFIXES = (".pdf", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".ofd")


def set_sensitivity(session: Session, *, resource_code: str, by: Principal, state_secret: bool = False,
                    commercial_secret: bool = False, personal_privacy: bool = False,
                    personal_columns: list[str] | None = None, note: str = "") -> ResourceSensitivity:
    """Record (or replace) the provider's secrecy review of one of its resources."""
    resource = get_resource(session, code=resource_code)
    require(by, by.acts_for(resource.agency_id), zh="只有提供方的机构管理员或数据资源管理员可以登记保密审查",
            en="only the provider's agency or data resource administrator may record its secrecy review")
    if personal_columns and not personal_privacy:
        raise ConfigError("personal identifier columns mean the resource involves personal privacy: "
                          "pass --personal-privacy too")
    marks = session.get(ResourceSensitivity, resource.id)
    if marks is None:
        marks = ResourceSensitivity(resource_id=resource.id, reviewed_by=by.actor)
        session.add(marks)
    marks.state_secret, marks.commercial_secret = state_secret, commercial_secret
    marks.personal_privacy = personal_privacy
    marks.personal_columns, marks.note = list(personal_columns or []), note
    marks.reviewed_by, marks.reviewed_at = by.actor, clock.now()
    session.flush()
    record_event(session, actor=by.actor, action="resource.secrecy_review", agency_code=resource.agency.code,
                 resource_code=resource.code,
                 detail={"state_secret": state_secret, "commercial_secret": commercial_secret,
                         "personal_privacy": personal_privacy, "personal_columns": marks.personal_columns})
    return marks


def _store_scan(scan: Path) -> tuple[str, str]:
    if not scan.is_file():
        raise ConfigError(f"signed scan {scan} does not exist")
    if scan.suffix.lower() not in SCAN_SUFFIXES:
        raise ConfigError(f"signed scan must be one of {', '.join(SCAN_SUFFIXES)}, got {scan.name}")
    digest = hashlib.sha256()
    with scan.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    sha = digest.hexdigest()
    relative = f"agreements/{sha}{scan.suffix.lower()}"
    storage = get_storage()
    target = storage.local(relative)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        partial = target.with_suffix(target.suffix + ".part")
        shutil.copyfile(scan, partial)
        partial.replace(target)
        storage.push(relative)
    return relative, sha


def _next_number(session: Session, today: date) -> str:
    prefix = f"BMXY-{today:%Y%m%d}-"
    taken = session.scalars(select(SecrecyAgreement.number).where(SecrecyAgreement.number.like(prefix + "%"))).all()
    return f"{prefix}{len(taken) + 1:04d}"


def add_agreement(session: Session, *, resource_code: str, consumer: str, parties: list[str], signed_on: date,
                  valid_until: date, scan: Path, by: Principal) -> SecrecyAgreement:
    """Record a signed agreement (the provider's side); pending grants of that consumer on that resource become
    active."""
    resource = get_resource(session, code=resource_code)
    taker = get_agency(session, ref=consumer)
    # The agreement is the provider's gate (its secrecy review made grants wait for one): recorded by the
    # provider's side, never on the consumer's word alone (a consumer's own "agreement" opened its grant).
    require(by, by.acts_for(resource.agency_id),
            zh="保密协议由资源提供方的机构管理员或数据资源管理员登记（需求方请将签署的协议交提供方登记）",
            en="the secrecy agreement is recorded by the provider's agency or data resource administrator (the "
               "consumer hands the signed agreement to the provider)")
    if signed_on > (today := clock.today()):
        raise ConfigError(f"签订日期 {signed_on} 晚于今天 {today}：请在协议签订后登记 / an agreement is recorded once "
                          f"signed, not before ({signed_on} is after today)")
    if valid_until < signed_on:
        raise ConfigError(f"协议有效期至 {valid_until}，早于签订日期 {signed_on} / the agreement's term ends "
                          f"({valid_until}) before it was signed ({signed_on})")
    if len([p for p in parties if p.strip()]) < 2:
        raise ConfigError("name both parties (协议双方): --party 提供方 --party 需求方")
    path, sha = _store_scan(Path(scan))
    agreement = SecrecyAgreement(number=_next_number(session, clock.now().date()), resource_id=resource.id,
                                 provider_agency_id=resource.agency_id, consumer_agency_id=taker.id,
                                 parties=[p.strip() for p in parties], signed_on=signed_on, valid_until=valid_until,
                                 scan_path=path, scan_sha256=sha, recorded_by=by.actor)
    session.add(agreement)
    session.flush()
    record_event(session, actor=by.actor, action="agreement.add", agency_code=taker.code, resource_code=resource.code,
                 detail={"number": agreement.number, "parties": agreement.parties, "signed_on": signed_on.isoformat(),
                         "valid_until": valid_until.isoformat(), "scan_sha256": sha})
    for grant in session.scalars(select(Grant).where(Grant.resource_id == resource.id, Grant.agency_id == taker.id,
                                                     Grant.status == "pending_agreement")):
        activate_if_ready(session, grant=grant, by=by)
    return agreement


def get_agreement(session: Session, *, number: str) -> SecrecyAgreement:
    agreement = session.scalar(select(SecrecyAgreement).where(SecrecyAgreement.number == number))
    if agreement is None:
        raise NotFound(f"no secrecy agreement {number!r}; `govshare agreement list` shows them")
    return agreement


def revoke_agreement(session: Session, *, number: str, reason: str, by: Principal) -> SecrecyAgreement:
    """Ends the agreement now, with the reason; reads that needed it are refused from the next request on. An
    agreement is revoked once: a repeat would move the recorded end and hide when the reads stopped."""
    agreement = get_agreement(session, number=number)
    require(by, by.acts_for(agreement.provider_agency_id) or by.acts_for(agreement.consumer_agency_id)
            or by.has("coordination_office"), zh="无权撤销该保密协议", en="you may not revoke this agreement")
    if agreement.revoked_at is not None:
        raise ConfigError(f"保密协议 {number} 已于{day(agreement.revoked_at)}撤销，不能再次撤销 / agreement {number} was "
                          f"already revoked on {clock.beijing_day(agreement.revoked_at).isoformat()}")
    if not reason.strip():
        raise ConfigError("撤销保密协议须说明理由 / revoking a secrecy agreement needs a reason (撤销理由): --reason")
    agreement.revoked_at = clock.now()
    resource = session.get(Resource, agreement.resource_id)
    record_event(session, actor=by.actor, action="agreement.revoke", resource_code=resource.code,
                 agency_code=session.get(Agency, agreement.consumer_agency_id).code,
                 detail={"number": number, "reason": reason.strip()})
    return agreement


def verify_scan(agreement: SecrecyAgreement) -> bool:
    """Whether the stored scan still has the digest recorded when it was filed."""
    storage = get_storage()
    if not storage.exists(agreement.scan_path):
        return False
    path = storage.pull(agreement.scan_path)
    return path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == agreement.scan_sha256


def list_agreements(session: Session, *, by: Principal) -> list[SecrecyAgreement]:
    rows = list(session.scalars(select(SecrecyAgreement).order_by(SecrecyAgreement.id)))
    if by.kind == "console" or by.has(*OVERSIGHT_ROLES):
        return rows
    return [a for a in rows if by.agency_id in (a.provider_agency_id, a.consumer_agency_id)]
