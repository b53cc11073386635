"""A resource row edited in the registry database (registry/seals.py) on the channels the seal's first rounds
missed: a consistency ticket (疑义校核) judged "own data" by the edited row's owner and showed the other agency's
values; update notices queued before the edit still went out; and the catalogue's refusals were recorded as the
`system` rather than as the person at the console. Each is now refused as the data channels refuse it, audited as
the principal who acted."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from sqlalchemy import select, text

from tests.helpers import PROVIDER

pytestmark = pytest.mark.clock


def _sql(statement: str, **params) -> None:  # noqa: ANN003 - the statement's parameters
    from registry.db import session_scope

    with session_scope() as session:
        session.execute(text(statement), params)


def _audited(action: str, *, result: str = "denied") -> list[tuple[str, str | None, dict]]:
    """(actor, resource, detail) of each `action` with this result, oldest first."""
    from registry.audit.models import AuditEvent
    from registry.db import session_scope

    with session_scope() as session:
        return [(e.actor, e.resource_code, e.detail) for e in session.scalars(select(AuditEvent).where(
            AuditEvent.action == action, AuditEvent.result == result).order_by(AuditEvent.id))]


def test_a_resource_moved_to_the_readers_agency_shows_nothing_in_a_consistency_ticket(hub_home: Path,
                                                                                      tmp_path: Path) -> None:
    """The tax bureau holds no grant on the market regulator's names, so its consistency ticket withholds them.
    An UPDATE gave the regulator's resource the tax bureau's agency: the ticket's "own data" test believed the
    row and showed the regulator's names. The edited row is not believed (withheld, the refusal audited with the
    resource it names), and the tax bureau's own values stay in the clear."""
    from pipeline.consistency import check_consistency
    from registry.db import session_scope
    from registry.quality.tickets import list_tickets
    from samples.demo_sources import TAX
    from tests.helpers import bearer, issue_token, register_resource, running_api
    from tests.test_elements import TAX_AGENCY, _add_name_element, _market, _sync, renamed_tax_copy

    market = _market(tmp_path)
    tax_db, changed = renamed_tax_copy(tmp_path)
    tax = register_resource(kind="sqlite", config={"path": str(tax_db)}, table="taxpayer_credit", key=("uscc",),
                            name="纳税信用等级", classification="102001", provider=TAX_AGENCY, consumer=PROVIDER,
                            sharing_type="conditional", sharing_condition="仅限税务核查")
    _sync(market.resource_code)
    _sync(tax.resource_code)
    _add_name_element(market.resource_code)
    check_consistency(resource_code=tax.resource_code, mapping={"taxpayer_name": "DE0001"}, key_column="uscc")
    with session_scope() as session:
        ticket = list_tickets(session, agency=TAX.code, status="open")[0].id
        tax_agency = session.execute(text("SELECT id FROM agencies WHERE code = :code"),
                                     {"code": TAX.code}).scalar_one()
    _sql("UPDATE resources SET agency_id = :agency WHERE code = :code", agency=tax_agency, code=market.resource_code)

    with running_api() as api:
        answer = requests.get(f"{api.base_url}/api/v1/tickets/{ticket}", headers=bearer(issue_token(TAX.code)),
                              timeout=30)
    assert answer.status_code == 200, answer.text
    rows = [dict(zip(answer.json()["columns"], row)) for row in answer.json()["data"]]
    assert sorted(r["key"] for r in rows) == sorted(changed)
    assert all(r["authoritative_value"] == "（未获授权，不予显示）" for r in rows), rows
    assert all(r["copy_value"].endswith("（旧名）") for r in rows), rows
    refused = [(actor, code, d) for actor, code, d in _audited("ticket.read") if d.get("ticket") == ticket]
    assert [(code, d["reason"].startswith("the resource's catalogue record was changed outside the hub"))
            for _, code, d in refused] == [(market.resource_code, True)], refused
    (read,) = [actor for actor, _, d in _audited("ticket.read", result="ok") if d.get("ticket") == ticket]
    assert refused[0][0] == read, (refused, read)  # the token's system that read, not the `system`
