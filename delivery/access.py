"""The one access check every delivery channel calls: who asks, what was granted, which columns and rows.

Every channel (interface, file, browse, offline) does the same three steps:

    decision = authorize_read(session, token=token, resource_code=code, channel="file")   # or AccessDenied
    batches = restrict(decision, iter_batches(decision.version, columns=decision.read_columns))
    audit_read(session, decision=decision, rows=n, fmt="csv")

``restrict`` applies the row condition, keeps only the approved data items (in the grant's order) and masks
personal identifiers (on every channel, unless the provider's decision lifted them), vectorised with pyarrow.compute. Read the
files with ``decision.read_columns`` (approved columns plus those the row condition needs), never
``decision.columns``: a row condition on a column outside the approved items must still be applied.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy.orm import Session

from core import clock
from core.errors import AccessDenied, AuthenticationFailed, FatalError
from registry.audit.log import mark_audited, record_event, record_refusal
from registry.people.auth import DATA_ROLES, Principal
from registry.people.bearer import authenticate_principal
from registry.seals import intact
from registry.sharing.grants import (
    agreement_in_force,
    ended_grant,
    filter_columns,
    live_grant,
    needs_agreement,
    require_published,
    unpublished,
)
from registry.sharing.visibility import grant_scope
from registry.catalog.models import Resource
from registry.exchange.models import DatasetVersion
from registry.catalog.resources import SHARING_MODES, edited_refusal, get_resource, hidden_from, missing_resource
from registry.exchange.versions import latest_version, require_latest_version
from schemas.presentation import day

CHANNELS = tuple(SHARING_MODES)  # interface, file, browse, offline
MASK = "****"


@dataclass
class AccessDecision:
    agency_code: str
    resource: Resource
    version: DatasetVersion  # None only for a metadata read of a resource without data yet
    columns: list[str] | None  # approved data items as column names; None: every column of the version
    purpose: str
    channel: str
    grant_id: int | None = None  # None: the provider reading its own resource
    row_filter: dict[str, Any] | None = None  # e.g. {"column": "district_code", "op": "in", "values": [...]}
    mask_columns: list[str] = field(default_factory=list)
    expires_at: datetime | None = None
    actor: str = "api"
    external_use: bool = False  # article 17: leave to publish or pass on outside the agency
    declared_purpose: str | None = None  # the purpose the request declared (article 17), when it did
    onward_to: str | None = None  # whom the request passes the data on to ("public": publication), when it does

    @property
    def read_columns(self) -> list[str] | None:
        """Columns to read from storage: the approved ones plus those the row condition needs."""
        if self.columns is None:
            return None
        extra = [c for c in filter_columns(self.row_filter) if c not in self.columns]
        return [*self.columns, *extra]


OWN_DATA = "提供方自有数据 / provider's own data"  # the purpose of a provider's read of its own resource


def _refuse(zh: str, en: str) -> AccessDenied:
    return AccessDenied(zh, en)


def _decide(session: Session, principal: Principal, resource: Resource, channel: str) -> AccessDecision:
    if principal.kind == "user" and not principal.has(*DATA_ROLES):
        raise _refuse("您的角色不能读取共享数据（仅机构管理员、数据资源管理员及其系统）",
                      "your roles may not read shared data: only agency administrators, data resource "
                      "administrators and the agency's systems may")
    if not intact(resource):  # its sharing type, modes, status or owner set outside the hub
        raise _refuse(*edited_refusal())
    if resource.sharing_type == "not_shared":
        raise _refuse(f"该资源不予共享，依据：{resource.sharing_condition}",
                      f"resource not shared; legal basis: {resource.sharing_condition}")
    if channel != "metadata" and channel not in resource.sharing_modes:
        raise _refuse(f"该资源不提供{SHARING_MODES.get(channel, channel)}方式",
                      f"resource is not offered through the {channel} channel")
    if principal.agency_id == resource.agency_id:
        version = _version_for(session, resource, channel)
        return AccessDecision(agency_code=principal.agency_code or "", resource=resource, version=version,
                              columns=None, purpose=OWN_DATA, channel=channel,
                              actor=principal.actor)
    require_published(resource, doing_zh="共享", doing_en="shared")
    grant = live_grant(session, resource=resource, agency_id=principal.agency_id or -1)
    if grant is None:
        if ended := ended_grant(session, resource=resource, agency_id=principal.agency_id or -1):
            # that and when, as the consumer's inbox told it; the reason stays in the inbox and the audit trail
            raise _refuse(f"本机构对该资源的共享授权已于{day(ended.revoked_at)}撤销（终止），详见消息；"
                          "如需继续使用请重新订阅或申请",
                          f"your agency's grant for this resource was revoked on "
                          f"{clock.beijing_day(ended.revoked_at).isoformat()} (see your inbox): "
                          "subscribe or apply again")
        raise _refuse("本机构未获得该资源的共享授权，请先订阅或申请",
                      "your agency holds no grant for this resource: subscribe or apply first")
    if not intact(grant):
        raise _refuse("本机构的共享授权记录在平台之外被改动，已停止使用；请联系平台运维人员核查并恢复",
                      "the grant record was changed outside the hub (its seal does not match), so it is not used: "
                      "ask the platform operator to check it (`govshare sharing check`) and restore it")
    if grant.status == "pending_agreement":
        raise _refuse("该资源涉及国家秘密、商业秘密或个人隐私，须先签订共享安全保密协议",
                      "this resource involves secrets or personal privacy: a secrecy agreement must be recorded "
                      "before the grant is active (`govshare agreement add`)")
    if grant.expires_at is not None and clock.as_utc(grant.expires_at) <= clock.now():
        raise _refuse(f"共享授权已于{day(grant.expires_at)}到期，请重新申请",
                      f"your agency's grant has expired (on {clock.beijing_day(grant.expires_at).isoformat()}): "
                      "apply again")
    if needs_agreement(session, resource=resource) and not agreement_in_force(
            session, resource=resource, agency_id=grant.agency_id):
        raise _refuse("共享安全保密协议已到期或被撤销，请续签",
                      "the secrecy agreement has ended or was revoked: record a renewed one")
    version = _version_for(session, resource, channel)
    # Private by default: personal identifiers are masked on every channel unless the decision lifted them.
    scope = grant_scope(session, resource=resource, grant=grant)
    return AccessDecision(agency_code=principal.agency_code or "", resource=resource, version=version,
                          columns=_present(scope.columns, version), purpose=grant.purpose, channel=channel, grant_id=grant.id,
                          row_filter=scope.row_filter, mask_columns=scope.mask_columns,
                          expires_at=grant.expires_at, actor=principal.actor, external_use=grant.external_use)


def _present(columns: list[str] | None, version: DatasetVersion | None) -> list[str] | None:
    """The granted items this version holds. An entry may list an item its source does not deliver yet (or no
    longer: a column dropped at the source); the grant names it, the version has no such column, and a read
    asking for it failed with an internal error on every channel. Absent items are simply not there."""
    names = {f["name"] for f in (version.manifest or {}).get("schema", [])} if version is not None else set()
    return columns if columns is None or not names else [c for c in columns if c in names]


def _version_for(session: Session, resource: Resource, channel: str) -> DatasetVersion | None:
    # Metadata (the interface service's description) exists before any data; every other read needs a version.
    if channel == "metadata":
        return latest_version(session, resource=resource)
    return require_latest_version(session, resource=resource)


def authorize_read(session: Session, *, token: str | None, resource_code: str, channel: str) -> AccessDecision:
    """Allowed access to the latest version, or AccessDenied (audited either way; a refusal is committed)."""
    try:
        principal = authenticate_principal(session, token=token)
    except AuthenticationFailed as failed:
        # An unknown caller's attempt is evidence too; the presented token itself is never logged.
        detail = {"channel": channel, "reason": failed.en}
        if failed.token_id is not None:  # a revoked token: which one (article 23.4)
            detail["token"] = failed.token_id
        record_event(session, actor="anonymous", action="data.read", resource_code=resource_code, result="denied",
                     agency_code=failed.agency_code, detail=detail)
        session.commit()
        raise mark_audited(failed)
    return authorize_principal(session, principal=principal, resource_code=resource_code, channel=channel)


def authorize_principal(session: Session, *, principal: Principal, resource_code: str,
                        channel: str, via: str | None = None) -> AccessDecision:
    """authorize_read for a caller already identified (a signed link, an SFTP push, an offline package for an
    agency): the same decision, the same audited refusal (``via`` as in read_event: a signed link)."""
    try:
        if channel not in (*CHANNELS, "metadata"):  # metadata: any channel's reader may see what it reads
            raise _refuse(f"未知的共享方式 {channel}", f"unknown channel {channel!r}; use one of {', '.join(CHANNELS)}")
        resource = get_resource(session, code=resource_code)
        if hidden_from(resource, agency_id=principal.agency_id):
            # refused with its real reason in the audit trail, answered as a code that does not exist
            record_event(session, actor=principal.actor, action="data.read", agency_code=principal.agency_code,
                         resource_code=resource_code, result="denied",
                         detail={"channel": channel, "reason": unpublished(resource, doing_zh="共享",
                                                                           doing_en="shared").en,
                                 **({"via": via} if via else {})})
            session.commit()
            raise missing_resource(resource_code)
        return _decide(session, principal, resource, channel)
    except AccessDenied as denied:
        record_event(session, actor=principal.actor, action="data.read", agency_code=principal.agency_code,
                     resource_code=resource_code, result="denied",
                     detail={"channel": channel, "reason": denied.en, **({"via": via} if via else {})})
        session.commit()  # the refusal is evidence too: keep it even though the request fails
        raise mark_audited(denied)


@contextmanager
def refusals_audited(decision: AccessDecision) -> Iterator[None]:
    """A refusal after the decision (a lookup, filter or field on a column outside the grant or masked) is
    recorded like the decision's own, in a transaction of its own: probing hidden columns leaves a trace."""
    try:
        yield
    except AccessDenied as denied:
        if not denied.audited:
            record_refusal(actor=decision.actor, action="data.read", agency_code=decision.agency_code,
                           resource_code=decision.resource.code, reason=denied.en,
                           detail={"channel": decision.channel, "grant": decision.grant_id})
        raise mark_audited(denied) from None


# --- applying a decision to record batches ---------------------------------------------------------------------

def _scalar(value: Any, type_: pa.DataType) -> pa.Scalar:
    try:
        return _typed_scalar(value, type_)  # the same few grant values again and again: made once
    except TypeError:  # an unhashable value
        return _typed_scalar.__wrapped__(value, type_)


@lru_cache(maxsize=1024)
def _typed_scalar(value: Any, type_: pa.DataType) -> pa.Scalar:
    try:
        return pa.scalar(value).cast(type_)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return pa.scalar(value)


def _condition(batch: pa.RecordBatch, rule: dict[str, Any]) -> pa.Array:
    if "all" in rule:
        result = _condition(batch, rule["all"][0])
        for part in rule["all"][1:]:
            result = pc.and_kleene(result, _condition(batch, part))
        return result
    index = batch.schema.get_field_index(rule["column"])
    if index < 0:
        # Fail closed: a condition that cannot be applied must not turn into "every row".
        raise FatalError(f"the grant's row condition needs column {rule['column']!r}, which this version lacks; "
                         "ask the provider to update the grant")
    column = batch.column(index)
    op = rule["op"]
    if op in ("in", "not_in"):
        values = pa.array(rule["values"])
        try:
            values = values.cast(column.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            pass
        matched = pc.is_in(column, value_set=values)
        # An unknown (null) value passes neither: it may be one of the values (fail closed, as SQL's NOT IN and
        # this grant's `ne` do; `not_in` had let every null through).
        return pc.and_kleene(pc.invert(matched) if op == "not_in" else matched, pc.is_valid(column))
    compare = {"eq": pc.equal, "ne": pc.not_equal, "lt": pc.less, "le": pc.less_equal, "gt": pc.greater,
               "ge": pc.greater_equal}[op]
    return compare(column, _scalar(rule["value"], column.type))


def condition_mask(batch: pa.RecordBatch, rule: dict[str, Any]) -> pa.Array:
    """Which rows of a batch meet a grant's row condition (null where a compared value is null)."""
    return _condition(batch, rule)


def mask_array(array: pa.Array) -> pa.Array:
    """Personal identifiers hidden: text keeps its first 3 and last 2 characters (first 1 when short), other
    types become null."""
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        return pa.nulls(len(array), type=array.type)
    text = array.cast(pa.string())
    long_form = pc.binary_join_element_wise(pc.utf8_slice_codeunits(text, 0, 3), MASK,
                                            pc.utf8_slice_codeunits(text, -2), "")
    short_form = pc.binary_join_element_wise(pc.utf8_slice_codeunits(text, 0, 1), MASK, "")
    return pc.if_else(pc.greater_equal(pc.utf8_length(text), 6), long_form, short_form).cast(array.type)


def restricted_schema(decision: AccessDecision, schema: pa.Schema) -> pa.Schema:
    """The schema of what ``restrict`` yields from batches of ``schema`` (writers need it before any batch)."""
    names = decision.columns if decision.columns is not None else schema.names
    return pa.schema([schema.field(n) for n in names if schema.get_field_index(n) >= 0])


def restrict(decision: AccessDecision, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Only the approved rows and data items, identifiers masked where the decision says so."""
    for batch in batches:
        if decision.row_filter:
            batch = batch.filter(_condition(batch, decision.row_filter), null_selection_behavior="drop")
        schema = restricted_schema(decision, batch.schema)
        arrays = [batch.column(batch.schema.get_field_index(f.name)) for f in schema]
        if decision.mask_columns:
            arrays = [mask_array(a) if f.name in decision.mask_columns else a for f, a in zip(schema, arrays)]
        yield pa.RecordBatch.from_arrays(arrays, schema=schema)


def restricted_row_count(decision: AccessDecision) -> int:
    """Rows the decision lets through, counted before any byte is sent (reads only the condition's columns)."""
    if not decision.row_filter:
        return decision.version.row_count
    from delivery.files import iter_batches

    needed = sorted(set(filter_columns(decision.row_filter)))
    total = 0
    for batch in iter_batches(decision.version, columns=needed):
        total += int(pc.sum(pc.cast(pc.fill_null(_condition(batch, decision.row_filter), False), pa.int64()))
                     .as_py() or 0)
    return total


@dataclass(frozen=True)
class ReadUse:
    """What a request says it reads for (article 17): a purpose, and whether it passes the data on (to whom)."""

    purpose: str | None = None
    onward_to: str | None = None


def apply_use(session: Session, decision: AccessDecision, use: ReadUse | None) -> AccessDecision:
    """Article 17 at read time: a read for another purpose than the grant's, or for publication or onward
    transfer without an approved article-17 application (the grant's external use), is refused and recorded
    (violation case 5 is found from that record). The provider reading its own data is not judged."""
    if use is None or (use.purpose is None and use.onward_to is None):
        return decision
    if decision.grant_id is not None:
        misuse = None
        if use.purpose is not None and use.purpose.strip() != decision.purpose.strip():
            misuse, zh, en = "purpose", f"声明的用途“{use.purpose}”不是授权用途“{decision.purpose}”", (
                f"the declared purpose is not the grant's purpose ({decision.purpose})")
        elif use.onward_to is not None and not decision.external_use:
            misuse, zh, en = "onward", "对外提供或发布须先经对外提供申请批准（第十七条）", (
                "publishing or passing data on needs an approved article-17 application (`apply submit --kind "
                "external`)")
        if misuse is not None:
            record_event(session, actor=decision.actor, action="data.read", agency_code=decision.agency_code,
                         resource_code=decision.resource.code, result="denied",
                         detail={"channel": decision.channel, "reason": en, "misuse": misuse,
                                 "grant": decision.grant_id, "purpose": use.purpose,
                                 "granted_purpose": decision.purpose, "onward_to": use.onward_to})
            session.commit()  # the refused misuse is the evidence
            raise mark_audited(AccessDenied(zh, en))
    return replace(decision, declared_purpose=use.purpose, onward_to=use.onward_to)


def read_event(*, decision: AccessDecision, rows: int, fmt: str, version: DatasetVersion | None = None,
               since: int | None = None, via: str | None = None) -> dict[str, Any]:
    """record_event's arguments for one read (audit_read writes it; the interface channel's group commit
    writes many at once with registry.audit.log.ChainWriter). ``version``: the one read when it is not the
    decision's latest (retention keeps what subscribers hold from this record); ``since``: the change range's
    start; ``via``: how it was reached when not by the reader's own credential (a signed link)."""
    number = (version or decision.version).number
    return {"actor": decision.actor, "action": "data.read", "agency_code": decision.agency_code,
            "resource_code": decision.resource.code,
            "detail": {"channel": decision.channel, "format": fmt, "version": number,
                       "rows": rows, "columns": decision.columns or "all", "purpose": decision.purpose,
                       "grant": decision.grant_id, "row_filter": decision.row_filter,
                       "masked": decision.mask_columns,
                       **({"since": since} if since is not None else {}),
                       **({"via": via} if via else {}),
                       **({"declared_purpose": decision.declared_purpose} if decision.declared_purpose else {}),
                       **({"onward_to": decision.onward_to} if decision.onward_to else {})}}


def audit_read(session: Session, *, decision: AccessDecision, rows: int, fmt: str,
               version: DatasetVersion | None = None, since: int | None = None, via: str | None = None) -> None:
    record_event(session, **read_event(decision=decision, rows=rows, fmt=fmt, version=version, since=since, via=via))
