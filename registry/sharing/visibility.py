"""What a grant lets its holder see (授权可见范围), decided from the grant alone: the approved data items, the row
condition and the personal identifiers left masked.

Two paths read it: every delivery (delivery/access.py builds each read's decision on ``grant_scope``, after
the checks a read adds: role, channel, expiry, secrecy agreement) and the update notices (pipeline/notify.py
tells a subscriber of a version only what ``subscriber_scope`` covers; a notice is no read, so it is neither
refused nor audited as one). ``restricted`` and ``version_facts`` take either, so the versions endpoint and a
notice state a version the same way to the same reader (ARCHITECTURE.md, trust: "Metadata is data",
"Manifest digest").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.orm import Session

from registry.catalog.entries import catalogued_columns
from registry.catalog.models import Resource
from registry.exchange.models import DatasetVersion
from registry.seals import intact
from registry.sharing.grants import lifted_masks, live_grant, sensitivity, shareable_columns
from registry.sharing.models import Grant


class Scoped(Protocol):
    """A grant's scope, or a read's decision made on one (delivery.access.AccessDecision)."""

    columns: list[str] | None
    row_filter: dict[str, Any] | None
    mask_columns: list[str]


@dataclass(frozen=True)
class GrantScope:
    grant_id: int
    columns: list[str] | None  # approved data items as column names; None: every column (an entry naming none)
    row_filter: dict[str, Any] | None = None
    mask_columns: list[str] = field(default_factory=list)


# A subscriber whose grant is gone is told as little as the most restricted reader.
NO_GRANT = GrantScope(grant_id=-1, columns=[], row_filter={"none": True})


def personal_identifiers(session: Session, resource: Resource) -> list[str]:
    """Columns holding personal identifiers (个人信息): those the published catalogue entry marks (主体标识
    身份证号码, or a 个人信息 kind: ID number, name, phone or address of a natural person), those the provider's
    secrecy review names, and those the resource's data contract gives the role subject_id_idcard."""
    from registry.catalog.entries import published_revision
    from schemas.catalog_metadata import CatalogEntryData
    from schemas.contract_store import contract_for

    columns: list[str] = []
    revision = published_revision(session, resource=resource)
    if revision is not None:
        columns += [item.column for item in CatalogEntryData.model_validate(revision.content).data_items
                    if item.is_personal and item.column]
    marks = sensitivity(session, resource=resource)
    columns += list(marks.personal_columns) if marks else []
    contract = contract_for(resource_code=resource.code, stream=resource.stream)
    if contract is not None:
        columns += [c.name for c in contract.columns if c.role == "subject_id_idcard"]
    return list(dict.fromkeys(columns))


def grant_scope(session: Session, *, resource: Resource, grant: Grant) -> GrantScope:
    """The grant's columns and row condition; personal identifiers are masked (private by default) unless the
    grant's decision lifted them."""
    lifted = lifted_masks(grant)
    masked = [] if lifted is True else [c for c in personal_identifiers(session, resource) if c not in lifted]
    columns = list(grant.columns) if grant.columns else None
    items = catalogued_columns(session, resource=resource)
    shareable = shareable_columns(resource, items)
    if shareable is not None:
        # Served, a grant never reaches past what its entry lists now (ARCHITECTURE.md, "grants follow the
        # entry's items"). A subscription made before subscriptions followed the entry (migration 0016 granted
        # every column) covers what the entry lists, as one made since does; a grant approved as the whole
        # version covers the items and the registered key (登记的主键), not every column a version holds; a grant
        # made before grants followed the entry loses an item the entry no longer lists now, not only at the
        # entry's next republication (which then records the change: entry_items.follow_entry_items).
        if columns is None:
            columns = list(items or []) if grant.origin == "subscription" else shareable
        else:
            columns = [column for column in columns if column in shareable]
    return GrantScope(grant_id=grant.id, columns=columns, row_filter=grant.row_filter, mask_columns=masked)


def subscriber_scope(session: Session, *, resource: Resource, agency_id: int) -> GrantScope:
    """What an agency's live grant lets it see of a resource, or NO_GRANT."""
    grant = live_grant(session, resource=resource, agency_id=agency_id)
    # an edited grant (its seal broken) is refused on every read: a notice tells no more than to no grant
    return NO_GRANT if grant is None or not intact(grant) else grant_scope(session, resource=resource, grant=grant)


def restricted(scope: Scoped) -> bool:
    """Some columns, a row condition or masked identifiers: the reader never gets the whole version's files."""
    return scope.columns is not None or bool(scope.row_filter) or bool(scope.mask_columns)


def version_facts(scope: Scoped, version: DatasetVersion) -> dict[str, Any]:
    """The whole version's row count and manifest digest as this reader may see them: a row condition makes the
    total a fact about rows outside the grant; the digest is the version's identity, which every download of
    it carries (X-Govshare-Manifest-SHA256), shown to any reader with a live grant, restricted or not (it
    reveals no value: ARCHITECTURE.md, "Manifest digest")."""
    return {"row_count": None if scope.row_filter else version.row_count,
            "manifest_sha256": version.manifest_sha256}
