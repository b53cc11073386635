"""Offline exchange: SFTP push to a real OpenSSH sshd on loopback (temporary name then rename, retried, never
twice) and signed, encrypted packages through the `govshare package` commands (a tampered, foreign or
misaddressed package is refused)."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tests.delivery_helpers import (
    DENIED_AGENCY,
    GRANTED,
    Delivery,
    delivery_hub,
    expected_rows,
)
from tests.helpers import OTHER_PROVIDER, latest
from tests.test_connectors_sftp import SSHServer, outbox, sshd  # noqa: F401 - the shared sshd fixtures

# Every delivery test runs on the local folder and on an S3 object store (tests/s3_server.py).
pytestmark = pytest.mark.usefixtures("storage_backend")

runner = CliRunner()


@pytest.fixture
def hub(hub_home: Path, tmp_path: Path) -> Iterator[Delivery]:
    with delivery_hub(tmp_path, rows=600, serve=False) as made:
        yield made


def _by_id(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda r: r["id"])


def _target(hub: Delivery, sshd: SSHServer, folder: str, *, agency: str | None = None, port: int | None = None) -> None:  # noqa: F811
    from delivery.sftp_push import add_target
    from registry.db import session_scope

    with session_scope() as session:
        add_target(session, agency=agency or hub.hub.consumer_code, host="127.0.0.1", port=port or sshd.port,
                   username=sshd.user, folder=folder, host_key=sshd.host_key_line, private_key=sshd.private_key)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_sftp_push_delivers_the_granted_data_once(hub: Delivery, sshd: SSHServer, outbox: Path) -> None:  # noqa: F811
    from delivery.sftp_push import push
    from registry.db import session_scope
    from registry.exchange.delivery_models import Delivery as DeliveryRecord

    _target(hub, sshd, outbox.name)
    report = push(resource_code=hub.hub.resource_code, agency=hub.hub.consumer_code)
    assert report.status == "delivered"

    names = sorted(p.name for p in outbox.iterdir())
    stem = hub.hub.resource_code.replace("/", "_") + "_v1"
    assert names == [f"{stem}.manifest.json", f"{stem}.parquet"]  # no temporary file left behind
    data = pq.read_table(outbox / f"{stem}.parquet")
    assert data.column_names == GRANTED
    assert _by_id(data.to_pylist()) == _by_id(expected_rows(latest(hub.hub.resource_code)))
    manifest = json.loads((outbox / f"{stem}.manifest.json").read_text())
    import hashlib

    assert manifest["files"][0]["sha256"] == hashlib.sha256((outbox / f"{stem}.parquet").read_bytes()).hexdigest()
    # a restricted consumer gets the manifest of what it receives, never the whole version's (metadata is data);
    # the version's digest names the version, as on every download
    assert "version_manifest" not in manifest and "manifest_sha256" not in manifest
    assert manifest["version_manifest_sha256"] == latest(hub.hub.resource_code).manifest_sha256
    assert [f["name"] for f in manifest["schema"]] == GRANTED and manifest["rows"] == data.num_rows
    assert not {"legal_rep_id", "updated_at"} & set(json.dumps(manifest, ensure_ascii=False).split('"'))

    stamp = (outbox / f"{stem}.parquet").stat().st_mtime_ns
    again = push(resource_code=hub.hub.resource_code, agency=hub.hub.consumer_code)
    assert again.status == "already-delivered"

    # A crash after the files arrived but before the record said so: recognised by digest, not sent again.
    with session_scope() as session:
        for record in session.query(DeliveryRecord):
            record.status = "pending"
    assert push(resource_code=hub.hub.resource_code, agency=hub.hub.consumer_code).status == "delivered"
    assert (outbox / f"{stem}.parquet").stat().st_mtime_ns == stamp


def test_sftp_push_retries_then_succeeds_and_refuses_a_consumer_without_grant(hub: Delivery, sshd: SSHServer,  # noqa: F811
                                                                           outbox: Path) -> None:  # noqa: F811
    from core.errors import AccessDenied, RetriableError
    from delivery.sftp_push import push
    from registry.db import session_scope
    from registry.exchange.delivery_models import Delivery as DeliveryRecord

    _target(hub, sshd, outbox.name, port=_closed_port())
    with pytest.raises(RetriableError, match="failed after 2 attempts"):
        push(resource_code=hub.hub.resource_code, agency=hub.hub.consumer_code, attempts=2, backoff=0.01)
    with session_scope() as session:
        record = session.query(DeliveryRecord).one()
        assert (record.status, record.attempts) == ("failed", 2)
    _target(hub, sshd, outbox.name)
    assert push(resource_code=hub.hub.resource_code, agency=hub.hub.consumer_code).status == "delivered"

    _target(hub, sshd, outbox.name, agency=DENIED_AGENCY[0])
    before = sorted(outbox.iterdir())
    with pytest.raises(AccessDenied, match="no grant"):
        push(resource_code=hub.hub.resource_code, agency=DENIED_AGENCY[0])
    assert sorted(outbox.iterdir()) == before


def test_sftp_push_of_the_changes_since_a_version(hub: Delivery, sshd: SSHServer, outbox: Path) -> None:  # noqa: F811
    import sqlite3
    from contextlib import closing

    from delivery.sftp_push import push
    from pipeline.sync import sync_resource

    with closing(sqlite3.connect(hub.database)) as connection, connection:
        connection.execute(
            "UPDATE enterprises SET name = name || '（更名）', updated_at = strftime('%Y-%m-%dT%H:%M:%f', 'now', "
            "'+8 hours') || '+08:00' WHERE id <= 25")
    sync_resource(resource_code=hub.hub.resource_code)
    _target(hub, sshd, outbox.name)
    report = push(resource_code=hub.hub.resource_code, agency=hub.hub.consumer_code, since=1)
    assert report.status == "delivered" and report.version == 2
    stem = hub.hub.resource_code.replace("/", "_") + "_v2_since_v1"
    changes = pq.read_table(outbox / f"{stem}.parquet")
    assert changes.column_names == [*GRANTED, "_version", "_change"]
    expected = [r for r in expected_rows(latest(hub.hub.resource_code)) if r["id"] <= 25]
    assert _by_id([{c: r[c] for c in GRANTED} for r in changes.to_pylist()]) == _by_id(expected)
    assert json.loads((outbox / f"{stem}.manifest.json").read_text())["since"] == 1
    from registry.audit.models import AuditEvent
    from registry.db import session_scope

    with session_scope() as session:  # the record says it was a change file, and from which version
        sent = session.query(AuditEvent).filter_by(action="data.read").order_by(AuditEvent.id.desc()).first()
        assert (sent.detail["format"], sent.detail["version"], sent.detail["since"]) == ("sftp", 2, 1)


def test_a_push_that_cannot_start_leaves_no_pending_delivery_behind(hub: Delivery, sshd: SSHServer,  # noqa: F811
                                                                    outbox: Path) -> None:  # noqa: F811
    """A push with a --since that names no version, or of changes only a full copy can replace, fails before
    anything is sent: it used to leave a delivery record "pending" (as if a transfer were under way, or had
    broken off). Nothing was attempted, so nothing is recorded as a delivery; the full push still goes."""
    from core.errors import ConfigError
    from delivery.sftp_push import push
    from pipeline.changes_feed import FullCopyNeeded
    from pipeline.sync import sync_resource
    from registry.db import session_scope
    from registry.exchange.delivery_models import Delivery as DeliveryRecord
    from tests.helpers import sqlite_execute
    from tests.test_delivery_downloads import _prune_first_version

    def records() -> list[tuple[str, str]]:
        with session_scope() as session:
            return [(r.kind, r.status) for r in session.query(DeliveryRecord).order_by(DeliveryRecord.id)]

    _target(hub, sshd, outbox.name)
    code = hub.hub.resource_code
    with pytest.raises(ConfigError, match="第 9 版"):
        push(resource_code=code, agency=hub.hub.consumer_code, since=9, attempts=1)
    assert records() == []

    sqlite_execute(hub.database, "UPDATE enterprises SET status = '吊销' WHERE id = 1")
    sync_resource(resource_code=code, full=True)
    _prune_first_version(code)  # v2's changes under the row condition need v1's rows: only a full copy will do
    with pytest.raises(FullCopyNeeded):
        push(resource_code=code, agency=hub.hub.consumer_code, since=1, attempts=1)
    assert records() == [] and list(outbox.iterdir()) == []
    assert push(resource_code=code, agency=hub.hub.consumer_code).status == "delivered"
    assert records() == [("full", "delivered")]


def test_a_push_to_a_server_whose_host_key_changed_is_refused_and_recorded(hub: Delivery, sshd: SSHServer,  # noqa: F811
                                                                         outbox: Path, tmp_path: Path) -> None:  # noqa: F811
    from core.errors import ConfigError
    from delivery.sftp_push import push
    from registry.audit.models import AuditEvent
    from registry.db import session_scope
    from registry.exchange.delivery_models import Delivery as DeliveryRecord
    from tests.test_connectors_sftp import _keygen

    _keygen(tmp_path / "impostor", "impostor")  # the registered key is not the one the server shows
    kind, key = (tmp_path / "impostor.pub").read_text().split()[:2]
    from delivery.sftp_push import add_target

    with session_scope() as session:
        add_target(session, agency=hub.hub.consumer_code, host="127.0.0.1", port=sshd.port, username=sshd.user,
                   folder=outbox.name, host_key=f"[127.0.0.1]:{sshd.port} {kind} {key}", private_key=sshd.private_key)
    with pytest.raises(ConfigError, match="does not match"):
        push(resource_code=hub.hub.resource_code, agency=hub.hub.consumer_code, attempts=3, backoff=0.01)
    assert list(outbox.iterdir()) == []  # nothing sent to a server that may be an impostor
    with session_scope() as session:
        record = session.query(DeliveryRecord).one()
        assert record.status == "failed" and "does not match" in record.last_error
        refused = session.query(AuditEvent).filter_by(action="sftp.push").one()
        assert (refused.result, refused.agency_code) == ("failed", hub.hub.consumer_code)
        assert "host key" in refused.detail["error"] and refused.detail["version"] == 1


def _keys(tmp_path: Path, agency: str) -> tuple[Path, Path]:
    key = runner.invoke(_app(), ["package", "key", agency])
    assert key.exit_code == 0, key.output
    hub_key = runner.invoke(_app(), ["package", "hub-key"])
    assert hub_key.exit_code == 0 and "BEGIN PUBLIC KEY" in hub_key.output
    (tmp_path / f"{agency}.key").write_text(key.output)
    (tmp_path / "hub.pem").write_text(hub_key.output)
    return tmp_path / f"{agency}.key", tmp_path / "hub.pem"


def _app():
    from cli.main import app

    return app


def _import(package: Path, key: Path, hub_pem: Path, agency: str, out: Path):
    return runner.invoke(_app(), ["package", "import", str(package), "--as", agency, "--key", str(key),
                                  "--hub-key", str(hub_pem), "--out", str(out)])


def test_package_round_trip_and_refusals(hub: Delivery, tmp_path: Path) -> None:
    consumer = hub.hub.consumer_code
    package = tmp_path / "out" / "package.gspkg"
    made = runner.invoke(_app(), ["package", "export", hub.hub.resource_code, "--for", consumer, "--out", str(package)])
    assert made.exit_code == 0, made.output
    key, hub_pem = _keys(tmp_path, consumer)

    done = _import(package, key, hub_pem, consumer, tmp_path / "in")
    assert done.exit_code == 0, done.output
    assert "verified" in done.output
    data = pq.read_table(tmp_path / "in" / "data" / "part-00000.parquet")
    assert data.column_names == GRANTED
    assert _by_id(data.to_pylist()) == _by_id(expected_rows(latest(hub.hub.resource_code)))
    assert json.loads((tmp_path / "in" / "package.json").read_text())["consumer"] == consumer

    # One byte changed anywhere: refused before decryption, nothing unpacked.
    tampered = tmp_path / "tampered.gspkg"
    body = bytearray(package.read_bytes())
    body[len(body) // 2] ^= 0x01
    tampered.write_bytes(bytes(body))
    refused = _import(tampered, key, hub_pem, consumer, tmp_path / "t")
    assert refused.exit_code == 3 and "signature check failed" in refused.output and "签名" in refused.output
    assert not (tmp_path / "t").exists()

    # Addressed to another agency, or opened with another agency's key: refused.
    from registry.db import session_scope
    from tests.helpers import ensure_agency

    with session_scope() as session:  # keys are handed out to registered agencies only
        ensure_agency(session, *OTHER_PROVIDER)
    other_key, _ = _keys(tmp_path, OTHER_PROVIDER[0])
    misaddressed = _import(package, other_key, hub_pem, OTHER_PROVIDER[0], tmp_path / "m")
    assert misaddressed.exit_code == 3 and f"addressed to agency {consumer}" in misaddressed.output
    unopened = tmp_path / "unopened.gspkg"  # not imported yet (an imported one is refused before decryption)
    assert runner.invoke(_app(), ["package", "export", hub.hub.resource_code, "--for", consumer,
                                  "--out", str(unopened)]).exit_code == 0
    wrong_key = _import(unopened, other_key, hub_pem, consumer, tmp_path / "w")
    assert wrong_key.exit_code == 3 and "cannot decrypt" in wrong_key.output
    assert not (tmp_path / "w").exists()

    # Signed by another hub (a different signing key): refused.
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from delivery.packages import public_pem

    stranger = tmp_path / "stranger.pem"
    stranger.write_bytes(public_pem(Ed25519PrivateKey.generate()))
    foreign = _import(package, key, stranger, consumer, tmp_path / "f")
    assert foreign.exit_code == 3 and "not made by the trusted hub" in foreign.output


def test_package_export_for_a_consumer_without_grant_is_denied(hub: Delivery, tmp_path: Path) -> None:
    package = tmp_path / "denied.gspkg"
    denied = runner.invoke(_app(), ["package", "export", hub.hub.resource_code, "--for", DENIED_AGENCY[0],
                                    "--out", str(package)])
    assert denied.exit_code == 4 and "no grant" in denied.output
    assert not package.exists() and not os.path.exists(str(package) + ".partial")


def test_the_package_key_is_handed_out_for_a_registered_agency_only_and_recorded(hub: Delivery, tmp_path: Path) -> None:
    from registry.audit.models import AuditEvent
    from registry.db import session_scope
    from tests.helpers import CONSUMER

    consumer = hub.hub.consumer_code
    package = tmp_path / "package.gspkg"
    assert runner.invoke(_app(), ["package", "export", hub.hub.resource_code, "--for", CONSUMER[1],  # by name
                                  "--out", str(package)]).exit_code == 0
    by_name = runner.invoke(_app(), ["package", "key", CONSUMER[1]])  # by name too: the same agency's key
    assert by_name.exit_code == 0, by_name.output
    (tmp_path / "named.key").write_text(by_name.output)
    _, hub_pem = _keys(tmp_path, consumer)
    assert (tmp_path / "named.key").read_text() == (tmp_path / f"{consumer}.key").read_text()
    assert _import(package, tmp_path / "named.key", hub_pem, consumer, tmp_path / "in").exit_code == 0

    unknown = runner.invoke(_app(), ["package", "key", "913100000000000000"])  # a typo: no such agency
    assert unknown.exit_code != 0 and "913100000000000000" in unknown.output
    with session_scope() as session:
        handed = [e.agency_code for e in session.query(AuditEvent).filter_by(action="package.key")]
    assert handed == [consumer, consumer]  # each handover of a decryption key is on record


def test_a_failed_import_removes_only_what_it_created(hub: Delivery, tmp_path: Path) -> None:
    """An import that fails part-way used to delete its --out folder whole: a folder the user had made for it
    (empty, as required) vanished. Now only what the import created goes: the user's folder stays, empty; a
    folder the import made (with its parents) is removed."""
    from registry.db import session_scope
    from tests.helpers import ensure_agency

    consumer = hub.hub.consumer_code
    package = tmp_path / "package.gspkg"
    assert runner.invoke(_app(), ["package", "export", hub.hub.resource_code, "--for", consumer,
                                  "--out", str(package)]).exit_code == 0
    _, hub_pem = _keys(tmp_path, consumer)
    with session_scope() as session:
        ensure_agency(session, *OTHER_PROVIDER)
    wrong_key, _ = _keys(tmp_path, OTHER_PROVIDER[0])  # passes the signature and addressee, fails to decrypt

    mine = tmp_path / "收件"
    mine.mkdir()
    refused = _import(package, wrong_key, hub_pem, consumer, mine)
    assert refused.exit_code == 3 and "cannot decrypt" in refused.output
    assert mine.is_dir() and list(mine.iterdir()) == []

    made = tmp_path / "new" / "deeper"
    assert _import(package, wrong_key, hub_pem, consumer, made).exit_code == 3
    assert not (tmp_path / "new").exists()


def _ledger(home: Path) -> list[dict]:
    return [json.loads(line) for line in (home / "received-packages.jsonl").read_text().splitlines()]


def test_a_replayed_older_or_expired_package_is_refused_and_recorded(hub: Delivery, hub_home: Path,
                                                                      tmp_path: Path) -> None:
    """A genuinely signed package could be imported again and again, or an older one after a newer (a
    rollback to stale data, e.g. by someone who kept a copy of last month's package), and nothing told: the
    consumer side kept no record and packages never expired. The consumer keeps a ledger of what it imported
    (GOVSHARE_HOME/received-packages.jsonl); a package it already imported, one older than the latest version it
    imported of that resource, or one past its signed expiry is refused, in Chinese and English, and the refusal
    written to the ledger beside the imports."""
    from datetime import timedelta

    from core import clock
    from pipeline.sync import sync_resource
    from tests.clock import pinned
    from tests.helpers import sqlite_execute

    code, consumer = hub.hub.resource_code, hub.hub.consumer_code

    def export(name: str) -> Path:
        made = runner.invoke(_app(), ["package", "export", code, "--for", consumer, "--out", str(tmp_path / name)])
        assert made.exit_code == 0, made.output
        return tmp_path / name

    first, kept_back = export("v1.gspkg"), export("v1-copy.gspkg")
    key, hub_pem = _keys(tmp_path, consumer)
    assert _import(first, key, hub_pem, consumer, tmp_path / "in1").exit_code == 0

    replayed = _import(first, key, hub_pem, consumer, tmp_path / "again")
    assert replayed.exit_code == 3, replayed.output
    assert "already imported" in replayed.output and "重复导入" in replayed.output
    assert not (tmp_path / "again").exists()

    sqlite_execute(hub.database, "UPDATE enterprises SET status = '吊销' WHERE id = 1")
    sync_resource(resource_code=code, full=True)
    assert _import(export("v2.gspkg"), key, hub_pem, consumer, tmp_path / "in2").exit_code == 0
    rollback = _import(kept_back, key, hub_pem, consumer, tmp_path / "old")  # genuine, never imported, but v1
    assert rollback.exit_code == 3, rollback.output
    assert "older than v2" in rollback.output and "回退" in rollback.output
    assert not (tmp_path / "old").exists()

    late = export("v2-late.gspkg")
    with pinned(clock.now() + timedelta(days=31)):  # the default lifetime is 30 days
        expired = _import(late, key, hub_pem, consumer, tmp_path / "late")
    assert expired.exit_code == 3, expired.output
    assert "expired" in expired.output and "过期" in expired.output

    ledger = _ledger(hub_home)
    assert [(e["event"], e["version"]) for e in ledger] == [
        ("imported", 1), ("refused", 1), ("imported", 2), ("refused", 1), ("refused", 2)]
    assert all(e["resource"] == code and e["consumer"] == consumer for e in ledger)
    assert "already imported" in ledger[1]["reason"] and "older" in ledger[3]["reason"]
