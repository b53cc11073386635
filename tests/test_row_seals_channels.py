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
    from registry.db import session_scope
    from registry.quality.tickets import list_tickets
    from samples.demo_sources import TAX
    from tests.helpers import bearer, issue_token, running_api
    from tests.test_trust_attacks import consistency_checked

    market, changed = consistency_checked(tmp_path)
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


def test_notices_queued_before_the_resource_was_edited_are_held_until_it_is_put_back(hub_home: Path,
                                                                                     tmp_path: Path) -> None:
    """v1's notices were queued while the row was as the hub wrote it; an UPDATE then moved the resource to
    another agency, and the next sweep still POSTed the webhook notice, and the pull feed still showed the other
    subscriber's. Both are now held (withheld, the refusal audited as whoever acted: the sweep, the feed's
    reader) and carry nothing of the version; once the row is put back the sweep releases them as it releases
    any withheld notice."""
    from pipeline.notify import deliver_pending
    from pipeline.sync import sync_resource
    from registry.db import session_scope
    from registry.sharing.subscriptions import subscribe
    from samples.demo_sources import TAX
    from samples.loaders import load_sqlite
    from tests.helpers import CONSUMER, OTHER_PROVIDER, bearer, issue_token, register_resource, running_api
    from tests.test_notices import _notices, _set_webhook, receiving

    database = tmp_path / "biz.db"
    load_sqlite(database, rows=30, seed=7)
    hub = register_resource(kind="sqlite", config={"path": str(database)}, subscribe=True)
    register_resource(kind=None, provider=OTHER_PROVIDER, consumer=(TAX.code, TAX.name), name="另一机构资源")
    with session_scope() as session:  # a second subscriber reads the pull feed only
        subscribe(session, resource_code=hub.resource_code, agency=TAX.code, purpose="纳税人核对")
    feed_reader = issue_token(TAX.code)
    with receiving() as receiver, running_api() as api:
        _set_webhook(hub, CONSUMER[0], receiver)
        sync_resource(resource_code=hub.resource_code)  # v1 queued, not sent yet
        webhook, feed = sorted(_notices(resource_code=hub.resource_code), key=lambda n: n.status != "pending")
        assert (webhook.status, feed.status) == ("pending", "feed")
        _sql("UPDATE resources SET agency_id = (SELECT id FROM agencies WHERE code = :other) WHERE id = :id",
             other=OTHER_PROVIDER[0], id=hub.resource_id)

        read = requests.get(f"{api.base_url}/api/v1/notices", headers=bearer(feed_reader), timeout=30)
        assert read.status_code == 200, read.text
        (shown,) = read.json()["notices"]
        assert shown["webhook_status"] == "withheld" and "平台之外被改动" in shown["withheld_reason"], shown
        assert shown["payload"]["event"] == "dataset.version.withheld" and "row_count" not in shown["payload"]
        report = deliver_pending()
        assert receiver.requests == [] and report.delivered == [] and report.withheld == [webhook.id]
        assert {n.status for n in _notices(resource_code=hub.resource_code)} == {"withheld"}
        refused = {d["notice_id"]: actor for actor, _, d in _audited("notice.withheld")}
        assert refused[webhook.id] == "pipeline" and refused[feed.id].startswith("system"), refused
        assert all("changed outside the hub" in d["reason"] for _, _, d in _audited("notice.withheld"))
        assert deliver_pending().released == []  # still edited: nothing released

        _sql("UPDATE resources SET agency_id = (SELECT id FROM agencies WHERE code = :own) WHERE id = :id",
             own=hub.provider_code, id=hub.resource_id)
        report = deliver_pending()
        assert len(report.released) == 2 and len(report.delivered) == 1, report
        assert [(n["version"], n["catch_up"]["withheld_versions"]) for n in receiver.accepted] == [(1, [1])]
        again = requests.get(f"{api.base_url}/api/v1/notices", headers=bearer(feed_reader),
                             params={"after": read.json()["next_cursor"]}, timeout=30).json()["notices"]
        assert [(n["version"], n["releases"]) for n in again] == [(1, str(feed.id))], again


def test_the_console_hiding_an_edited_entry_is_recorded_as_who_ran_it(hub_home: Path, tmp_path: Path) -> None:
    """`catalog list --published` and `catalog export --published` kept an edited entry out, but recorded the
    refusal (and the export) as `system`: the command passed no caller. They now act as the console's operator
    (console:<login>), or as the person `--as` names, as the other console commands do."""
    import getpass

    from typer.testing import CliRunner

    from cli.main import app
    from registry.db import session_scope
    from registry.people.auth import console
    from registry.people.users import add_user
    from tests.helpers import CONSUMER, register_resource
    from tests.test_delivery_web import PASSWORD

    hub = register_resource(kind=None)
    kept = register_resource(kind=None, name="企业年报信息", classification="101002")
    with session_scope() as session:
        add_user(session, username="qian", agency=CONSUMER[0], roles=["data_admin"], password=PASSWORD,
                 by=console("test"))
    _sql("UPDATE resources SET agency_id = (SELECT id FROM agencies WHERE code = :consumer) WHERE id = :id",
         consumer=CONSUMER[0], id=hub.resource_id)

    operator, person = f"console:{getpass.getuser()}", "user:qian"
    runs = [(["catalog", "list", "--published"], operator),
            (["catalog", "list", "--published", "--as", "qian"], person),
            (["catalog", "export", str(tmp_path / "目录.json"), "--published"], operator),
            (["catalog", "export", str(tmp_path / "目录.csv"), "--published", "--as", "qian"], person)]
    for args, _ in runs:
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0 and "Traceback" not in result.output, (args, result.output)
        assert hub.resource_code not in result.output
    assert kept.resource_code in (tmp_path / "目录.csv").read_text(encoding="utf-8-sig")
    refused = [(actor, code) for actor, code, d in _audited("catalog.read") if d["where"] == "catalogue list"]
    assert refused == [(actor, hub.resource_code) for _, actor in runs], refused
    exported = [actor for actor, _, _ in _audited("catalog.export", result="ok")]
    assert exported == [operator, person], exported
