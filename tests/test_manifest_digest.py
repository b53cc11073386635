"""One rule for the version manifest's digest (版本清单摘要): every reader with a live grant sees it wherever the
version is named, restricted or not; a reader without one sees it nowhere (ARCHITECTURE.md, "Manifest digest").

A restricted consumer (some columns of the rows under a row condition, masked identifiers) used to get it in
every download's X-Govshare-Manifest-SHA256, in /records and /lookup answers, and in its notices, but null from
`GET .../versions` and not at all on the entry page: it could not match the version list with what it holds."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import requests

from core import clock
from tests.delivery_helpers import DENIED_AGENCY, delivery_hub
from tests.helpers import CONSUMER, latest

PASSWORD = "correct-horse-battery"


def _users() -> None:
    from registry.db import session_scope
    from registry.people.auth import console
    from registry.people.users import add_user

    with session_scope() as session:
        for username, agency in (("wang", CONSUMER[0]), ("zhou", DENIED_AGENCY[0])):
            add_user(session, username=username, agency=agency, roles=["data_admin"], password=PASSWORD,
                     by=console("test"))


def _entry_page(site, username: str) -> str:  # noqa: ANN001 - Delivery
    signed = requests.post(site.url("/api/v1/auth/login"), json={"username": username, "password": PASSWORD},
                           timeout=30)
    assert signed.status_code == 200, signed.text
    page = requests.get(site.url(f"/web/catalog/{site.hub.resource_code}"),
                        cookies={"govshare_session": signed.json()["token"]}, timeout=30)
    assert page.status_code == 200, page.text
    return page.text


def test_a_restricted_consumer_sees_the_digest_its_downloads_carry_everywhere(hub_home: Path, tmp_path: Path) -> None:
    from pipeline.notify import queue_notices
    from registry.db import session_scope
    from registry.exchange.notices import list_notices

    with delivery_hub(tmp_path, rows=120) as site:
        _users()
        digest = latest(site.hub.resource_code).manifest_sha256
        code, token = site.hub.resource_code, site.hub.token
        versions = site.get(f"/api/v1/resources/{code}/versions", token=token)
        download = site.get(f"/api/v1/resources/{code}/files", token=token, params={"format": "csv"})
        records = site.get(f"/api/v1/resources/{code}/records", token=token, params={"limit": 5})
        for answer in (versions, download, records):
            assert answer.status_code == 200, answer.text
        (listed,) = versions.json()
        assert listed["row_count"] is None  # still restricted: no whole-version count under a row condition
        assert listed["manifest_sha256"] == digest == download.headers["X-Govshare-Manifest-SHA256"]
        assert records.json()["manifest_sha256"] == digest

        queue_notices(resource_code=code, version_number=1)
        with session_scope() as session:
            (notice,) = list_notices(session, resource_code=code)
            assert notice.payload["manifest_sha256"] == digest

        # The entry page: the granted consumer sees it; an agency without a grant does not, nor the API.
        assert f"版本清单摘要（SHA-256）：{digest}" in _entry_page(site, "wang")
        assert digest not in _entry_page(site, "zhou")
        assert site.get(f"/api/v1/resources/{code}/versions", token=site.denied_token).status_code == 403

        # A grant that ran out shows it no more.
        from registry.sharing.models import Grant

        with session_scope() as session:
            for grant in session.query(Grant).filter(Grant.resource_id == site.hub.resource_id):
                grant.expires_at = clock.now() - timedelta(minutes=1)
        assert digest not in _entry_page(site, "wang")
        assert site.get(f"/api/v1/resources/{code}/versions", token=token).status_code == 403


def test_an_offline_manifest_names_the_version_for_a_restricted_consumer(hub_home: Path, tmp_path: Path) -> None:
    from delivery.metadata import consumer_manifest, restricted
    from delivery.agency_access import authorize_agency
    from registry.db import session_scope

    with delivery_hub(tmp_path, rows=60, serve=False) as site, session_scope() as session:
        decision = authorize_agency(session, agency=site.hub.consumer_code, resource_code=site.hub.resource_code,
                                    channel="offline", actor="test")
        assert restricted(decision)
        manifest = consumer_manifest(decision, decision.version, files=[], rows=0, since=None)
        assert manifest["version_manifest_sha256"] == latest(site.hub.resource_code).manifest_sha256
        assert "version_manifest" not in manifest  # the manifest itself stays the provider's


def test_the_digest_on_the_entry_page_is_a_metadata_read_audited_as_the_apis(hub_home: Path, tmp_path: Path) -> None:
    """The entry page showed a grantee the version's digest without a trace, while the same digest from
    `GET .../versions` is recorded as data.metadata: an inspector reading the log missed who looked. The page's
    read is now recorded like the API's (who, which grant, what); a reader the page shows no digest leaves none."""
    from registry.audit.models import AuditEvent
    from registry.db import session_scope
    from sqlalchemy import select

    def metadata_reads() -> list[tuple[str, str | None, dict]]:
        with session_scope() as session:
            return [(e.actor, e.agency_code, e.detail) for e in session.scalars(
                select(AuditEvent).where(AuditEvent.action == "data.metadata").order_by(AuditEvent.id))]

    with delivery_hub(tmp_path, rows=40) as site:
        _users()
        digest = latest(site.hub.resource_code).manifest_sha256
        before = metadata_reads()
        assert digest not in _entry_page(site, "zhou")
        assert metadata_reads() == before  # no grant, no digest: nothing read
        assert digest in _entry_page(site, "wang")
        (read,) = metadata_reads()[len(before):]
        actor, agency_code, detail = read
        assert actor == "user:wang" and agency_code == CONSUMER[0]
        assert detail["what"] == "entry page digest" and detail["grant"] is not None
