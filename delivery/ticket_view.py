"""What a consistency ticket (一致性疑义校核工单) shows the agency it is addressed to.

A consistency check sends the copy's agency and the authority's agency the same mismatches: the key, the copy's
value and the authoritative value. Each value is data of one agency's resource, so a ticket is a delivery
channel like any other: the reader sees its own resource's values, and the other agency's only where its
usable grant on that resource (active, unexpired, its secrecy agreement in force, its seal intact; the entry
published) gives that column in the clear and rows without a condition (a mismatch row carries only its key,
so a row condition cannot be judged on it). Anything else reads WITHHELD, with the count audited by the route.
A resource row edited outside the hub (registry/seals.py) is believed for neither side, not even as the
reader's own: its owner is what the edit may have changed. Its values are withheld and the refusal recorded
for each of its columns the ticket shows, as the data channels record theirs.
Quarantine tickets list the provider's own rows and pass unchanged.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from registry.audit.log import record_event
from registry.catalog.elements import get_element
from registry.catalog.resources import edited_refusal, get_resource
from registry.sharing.grants import usable_grant
from registry.seals import intact
from registry.sharing.visibility import grant_scope

WITHHELD = "（未获授权，不予显示）"


def _in_clear(session: Session, *, code: str, column: str, ticket: Any, actor: str) -> bool:  # noqa: ANN401
    """Whether the ticket's agency may read this column of this resource's rows, as a read without a row
    filter."""
    resource = get_resource(session, code=code)
    if not intact(resource):  # its owner, status or sharing type set outside the hub
        record_event(session, actor=actor, action="ticket.read", agency_code=ticket.agency.code,
                     resource_code=code, result="denied", detail={"ticket": ticket.id, "column": column,
                                                                  "reason": edited_refusal()[1]})
        return False
    agency_id = ticket.agency_id
    if resource.agency_id == agency_id:
        return True
    if resource.catalog_status != "published" or resource.sharing_type == "not_shared":
        return False
    grant = usable_grant(session, resource=resource, agency_id=agency_id)
    if grant is None:
        return False
    scope = grant_scope(session, resource=resource, grant=grant)
    return (not scope.row_filter and (scope.columns is None or column in scope.columns)
            and column not in scope.mask_columns)


def visible_rows(session: Session, *, ticket: Any, columns: list[str],  # noqa: ANN401 - a CorrectionTicket
                 rows: list[tuple], actor: str) -> tuple[list[tuple], int]:
    """The ticket's rows as its agency may see them (read by `actor`), and how many values were withheld."""
    if ticket.kind != "consistency" or not rows:
        return rows, 0
    at = {name: i for i, name in enumerate(columns)}
    copy_code = (ticket.detail or {}).get("copy") or ticket.resource.code
    allowed: dict[tuple[str, str], bool] = {}
    element_columns: dict[str, str] = {}  # a ticket's rows name a few elements, each looked up once
    shown, withheld = [], 0
    for row in rows:
        values = list(row)
        element = row[at["element"]]
        if element not in element_columns:
            element_columns[element] = get_element(session, code=element).column
        # the other side of each mismatch: for the copy's agency the authority's value, and the reverse
        sides = (("authoritative_value", row[at["authoritative_resource"]], element_columns[element]),
                 ("copy_value", copy_code, row[at["copy_column"]]))
        for name, code, column in sides:
            if (code, column) not in allowed:
                allowed[(code, column)] = _in_clear(session, code=code, column=column, ticket=ticket, actor=actor)
            if not allowed[(code, column)] and values[at[name]] is not None:
                values[at[name]] = WITHHELD
                withheld += 1
        shown.append(tuple(values))
    return shown, withheld
