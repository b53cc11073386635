"""The audit log (article 18) against tampering by plain SQL, on SQLite and PostgreSQL: each kind of change is
found, the first bad record named with its kind; exports carry an anchor an inspector can check offline."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, text
from typer.testing import CliRunner

from tests.helpers import CONSUMER, OTHER_PROVIDER, PROVIDER, ensure_agency

pytestmark = pytest.mark.clock  # re-run on several pinned days by `make test-days`

EVENTS = 8


@pytest.fixture(params=["sqlite-registry", "postgres-registry"])
def chain(request: pytest.FixtureRequest) -> Iterator[list[int]]:
    """A registry with a few audited actions; the ids of its events in order."""
    request.getfixturevalue("hub_home" if request.param == "sqlite-registry" else "pg_hub_home")
    from registry.audit.log import record_event
    from registry.db import session_scope
    from registry.audit.models import AuditEvent

    with session_scope() as session:
        for code, name in (PROVIDER, CONSUMER, OTHER_PROVIDER):
            ensure_agency(session, code, name)
    for index in range(EVENTS - 3):
        with session_scope() as session:
            record_event(session, actor="user:clerk", action="data.read", agency_code=CONSUMER[0],
                         resource_code="101001/0001", result="denied" if index % 2 else "ok",
                         detail={"rows": index * 10, "channel": "file"})
    with session_scope() as session:
        yield list(session.scalars(select(AuditEvent.id).order_by(AuditEvent.id)))


def _sql(statement: str, **params: object) -> None:
    from registry.db import get_engine

    with get_engine().begin() as connection:
        connection.execute(text(statement), params)


def _verify(anchor: str | None = None):  # noqa: ANN202 - VerifyReport
    from registry.audit.verify import verify_log
    from registry.db import session_scope

    with session_scope() as session:
        return verify_log(session, anchor=anchor)


def _hash_of(event_id: int) -> str:
    from registry.db import session_scope
    from registry.audit.models import AuditEvent

    with session_scope() as session:
        return session.get(AuditEvent, event_id).hash


def _first(report) -> tuple[int | None, str]:  # noqa: ANN001
    assert not report.ok
    return report.first.event_id, report.first.kind


def test_an_untouched_log_verifies(chain: list[int]) -> None:
    report = _verify()
    assert report.ok and report.count == len(chain) == EVENTS and report.last_hash == _hash_of(chain[-1])


def test_an_edited_record_is_named(chain: list[int]) -> None:
    victim = chain[4]
    _sql("UPDATE audit_events SET result = 'ok' WHERE id = :id AND result = 'denied'", id=victim)
    _sql("UPDATE audit_events SET actor = 'user:someone-else' WHERE id = :id", id=victim)
    report = _verify()
    assert _first(report) == (victim, "edited")
    assert len(report.findings) == 1


def test_an_edit_with_a_recomputed_hash_is_caught_by_the_seal(chain: list[int]) -> None:
    from registry.audit.log import event_hash
    from registry.db import session_scope
    from registry.audit.models import AuditEvent

    victim = chain[3]
    with session_scope() as session:  # the forger knows the hash recipe but not the platform's key
        event = session.get(AuditEvent, victim)
        event.detail = {"rows": 999, "channel": "file"}
        forged = event_hash(event)
    _sql("UPDATE audit_events SET detail = :detail, hash = :hash WHERE id = :id",
         detail=json.dumps({"rows": 999, "channel": "file"}), hash=forged, id=victim)
    assert _first(_verify()) == (victim, "edited")


def test_a_deleted_record_is_found_at_its_successor(chain: list[int]) -> None:
    _sql("DELETE FROM audit_events WHERE id = :id", id=chain[2])
    assert _first(_verify()) == (chain[3], "deleted")


def test_an_inserted_record_is_named(chain: list[int]) -> None:
    # Make room after chain[4] by moving the later records up, then slip a forged record in.
    _sql("UPDATE audit_events SET id = id + 1000 WHERE id > :id", id=chain[4])
    _sql("UPDATE audit_events SET id = id - 999 WHERE id > 1000")
    forged_id = chain[4] + 1
    _sql("INSERT INTO audit_events (id, at, actor, agency_code, action, resource_code, result, detail, prev_hash, "
         "hash, seal) SELECT :new, at, 'user:mallory', agency_code, action, resource_code, 'ok', detail, :prev, "
         ":hash, NULL FROM audit_events WHERE id = :src",
         new=forged_id, prev=secrets.token_hex(32), hash=secrets.token_hex(32), src=chain[4])
    report = _verify()
    assert _first(report) == (forged_id, "inserted")
    assert len(report.findings) == 1  # the records after it still link to the one before it


def test_a_forged_record_appended_with_a_correct_hash_is_caught_by_the_seal(chain: list[int]) -> None:
    from registry.audit.log import event_hash
    from registry.db import session_scope
    from registry.audit.models import AuditEvent

    with session_scope() as session:
        last = session.get(AuditEvent, chain[-1])
        forged = AuditEvent(at=last.at, actor="user:mallory", agency_code=last.agency_code, action="data.read",
                            resource_code=last.resource_code, result="ok", detail={}, prev_hash=last.hash)
        forged_hash = event_hash(forged)
    _sql("INSERT INTO audit_events (id, at, actor, agency_code, action, resource_code, result, detail, prev_hash, "
         "hash, seal) SELECT :new, at, 'user:mallory', agency_code, 'data.read', resource_code, 'ok', :detail, "
         ":prev, :hash, :seal FROM audit_events WHERE id = :src",
         new=chain[-1] + 1, detail="{}", prev=last.hash, hash=forged_hash, seal="0" * 64, src=chain[-1])
    assert _first(_verify()) == (chain[-1] + 1, "forged")


def test_reordered_records_are_named(chain: list[int]) -> None:
    a, b = chain[3], chain[4]
    _sql("UPDATE audit_events SET id = -1 WHERE id = :a", a=a)
    _sql("UPDATE audit_events SET id = :a WHERE id = :b", a=a, b=b)
    _sql("UPDATE audit_events SET id = :b WHERE id = -1", b=b)
    assert _first(_verify()) == (a, "reordered")


def test_cutting_the_tail_is_caught_by_an_anchor(chain: list[int]) -> None:
    anchor = _hash_of(chain[-1])
    assert _verify(anchor=anchor).ok
    _sql("DELETE FROM audit_events WHERE id = :id", id=chain[-1])
    assert _verify().ok  # nothing in the chain itself shows a missing tail ...
    assert _first(_verify(anchor=anchor)) == (None, "truncated")  # ... the anchor from an earlier export does


def test_cli_verify_and_export_for_inspectors(chain: list[int], tmp_path: Path) -> None:
    from cli.main import app
    from core.clock import today as beijing_today
    from registry.audit.verify import verify_export

    runner = CliRunner()
    intact = runner.invoke(app, ["audit", "verify"])
    assert intact.exit_code == 0 and "intact" in intact.output and str(EVENTS) in intact.output

    today = beijing_today().isoformat()
    out = tmp_path / "inspection" / "audit.jsonl"
    exported = runner.invoke(app, ["audit", "export", "--from", today, "--to", today, "--out", str(out)])
    assert exported.exit_code == 0, exported.output
    anchor = json.loads(Path(f"{out}.anchor.json").read_text(encoding="utf-8"))
    lines = out.read_text(encoding="utf-8").splitlines()
    assert anchor["count"] == len(lines) == EVENTS and anchor["log_verified"] is True
    assert anchor["last_hash"] == _hash_of(chain[-1]) and anchor["hash_before"] == "0" * 64
    assert verify_export(out).ok
    assert runner.invoke(app, ["audit", "verify", "--file", str(out)]).exit_code == 0

    # The inspector's copy, edited, no longer verifies.
    record = json.loads(lines[2])
    record["result"] = "ok" if record["result"] != "ok" else "denied"
    lines[2] = json.dumps(record, ensure_ascii=False, sort_keys=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert verify_export(out).first.kind == "edited"

    _sql("DELETE FROM audit_events WHERE id = :id", id=chain[5])
    tampered = runner.invoke(app, ["audit", "verify"])
    assert tampered.exit_code == 3
    assert f"event {chain[6]}: deleted" in " ".join(tampered.output.split())
    cut = runner.invoke(app, ["audit", "verify", "--anchor", anchor["last_hash"]])
    assert cut.exit_code == 3


def test_stripping_every_seal_is_tampering(chain: list[int]) -> None:
    """The attack: sealing "switched off" by setting every seal to NULL. The platform recorded when sealing
    began, so from that record on a missing seal is tampering."""
    _sql("UPDATE audit_events SET seal = NULL")
    report = _verify()
    assert _first(report) == (chain[0], "unsealed")
    assert {f.kind for f in report.findings} == {"unsealed"}


def test_a_rewritten_rechained_and_unsealed_log_is_caught(chain: list[int]) -> None:
    """The attack: rewrite a record, recompute every hash after it (the recipe is public), strip the seals."""
    from registry.audit.log import GENESIS, event_hash
    from registry.db import session_scope
    from registry.audit.models import AuditEvent

    victim = chain[3]
    with session_scope() as session:
        events = list(session.scalars(select(AuditEvent).order_by(AuditEvent.id)))
        rows, previous = [], GENESIS
        for event in events:
            detail = {"rows": 0, "channel": "file"} if event.id == victim else event.detail
            probe = AuditEvent(at=event.at, actor=event.actor, agency_code=event.agency_code, action=event.action,
                               resource_code=event.resource_code, result=event.result, detail=detail,
                               prev_hash=previous)
            rows.append((event.id, detail, previous, event_hash(probe)))
            previous = rows[-1][3]
    _sql("UPDATE audit_events SET prev_hash = 'x' || id, hash = 'y' || id, seal = NULL")  # unique while rewriting
    for event_id, detail, prev, digest in rows:
        _sql("UPDATE audit_events SET detail = :detail, prev_hash = :prev, hash = :hash WHERE id = :id",
             detail=json.dumps(detail, ensure_ascii=False), prev=prev, hash=digest, id=event_id)
    report = _verify()
    assert report.findings and report.first.kind == "unsealed" and report.first.event_id == chain[0]
    assert "edited" not in {f.kind for f in report.findings}  # the chain itself is consistent: only seals tell


def test_the_sealing_start_cannot_be_moved_or_deleted(chain: list[int]) -> None:
    _sql("UPDATE audit_events SET seal = NULL")
    _sql("UPDATE audit_sealing SET sealed_from_id = 100000")  # "sealing began later": its own seal breaks
    assert _first(_verify()) == (None, "sealing")
    _sql("DELETE FROM audit_sealing")
    report = _verify()
    assert _first(report) == (None, "sealing") and "missing" in report.first.detail
    assert "unsealed" in {f.kind for f in report.findings}  # without the marker every record must be sealed


def test_the_tail_deleted_after_an_anchor_is_caught(chain: list[int], tmp_path: Path) -> None:
    from cli.main import app

    runner = CliRunner()
    anchor_file = tmp_path / "kept-elsewhere" / "anchor.json"
    written = runner.invoke(app, ["audit", "anchor", "--out", str(anchor_file)])
    assert written.exit_code == 0, written.output
    anchor = json.loads(anchor_file.read_text(encoding="utf-8"))
    assert anchor["id"] == chain[-1] and anchor["hash"] == _hash_of(chain[-1]) and anchor["seal"]
    assert runner.invoke(app, ["audit", "verify", "--anchor", str(anchor_file)]).exit_code == 0
    _sql("DELETE FROM audit_events WHERE id >= :id", id=chain[-2])
    assert _verify().ok  # the remaining chain is consistent and sealed ...
    cut = runner.invoke(app, ["audit", "verify", "--anchor", str(anchor_file)])
    assert cut.exit_code == 3 and "truncated" in cut.output  # ... the anchor kept outside says what is missing
    forged = {**anchor, "id": chain[0], "hash": _hash_of(chain[0])}  # a forger "moves" the anchor back
    anchor_file.write_text(json.dumps(forged), encoding="utf-8")
    moved = runner.invoke(app, ["audit", "verify", "--anchor", str(anchor_file)])
    assert moved.exit_code == 3 and "forged" in moved.output


def test_records_the_interface_group_writer_appends_verify_like_any_other(chain: list[int]) -> None:
    """The group commit writes over its own driver connection (registry.audit.log.ChainWriter): its records chain
    on the ones before and after them, read back as written, and an edit of one is still caught."""
    from registry.audit.log import ChainWriter, record_event
    from registry.db import get_engine, session_scope
    from registry.audit.models import AuditEvent

    writer = ChainWriter(get_engine())
    detail = {"channel": "interface", "rows": 1, "purpose": "就业登记核验", "columns": ["uscc", "name"],
              "row_filter": {"column": "status", "op": "ne", "value": "迁出"}}
    try:
        writer.append([{"actor": "agency:1131", "action": "data.read", "agency_code": CONSUMER[0],
                        "resource_code": "101001/0001", "detail": {**detail, "rows": n}} for n in range(3)])
        with session_scope() as session:
            record_event(session, actor="pipeline", action="version.publish", resource_code="101001/0001")
        writer.append([{"actor": "agency:1131", "action": "data.read", "agency_code": CONSUMER[0],
                        "resource_code": "101001/0001", "detail": detail}])
    finally:
        writer.close()
    assert _verify().ok
    with session_scope() as session:
        written = session.scalars(select(AuditEvent).where(AuditEvent.id > chain[-1]).order_by(AuditEvent.id)).all()
        assert [e.action for e in written] == ["data.read"] * 3 + ["version.publish", "data.read"]
        assert [e.detail["rows"] for e in written if e.action == "data.read"] == [0, 1, 2, 1]
        assert written[0].detail["purpose"] == "就业登记核验" and written[0].prev_hash == _hash_of(chain[-1])
        target = written[1].id
    _sql("UPDATE audit_events SET actor = 'agency:other' WHERE id = :id", id=target)
    assert _first(_verify()) == (target, "edited")
