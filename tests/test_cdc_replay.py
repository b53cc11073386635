"""Replay (回放) of a change-captured resource's quarantined rows, against a private PostgreSQL cluster with
wal_level=logical (tests/pg_cluster.py).

A replay publishes the latest version plus the fixed rows; it reads no change from the source, so it keeps the
capture's position (the cursor state), which quiet runs may have moved past the latest version's watermark. It
had copied that watermark into the cursor state: the position went back behind the slot's, and the next run
took the slot for one advanced past the published position and read a snapshot with a resync mark."""

from __future__ import annotations

import uuid
from pathlib import Path

from tests.helpers import latest, pg_execute, read_version
from tests.pg_cluster import pg_logical_cluster, pg_logical_database  # noqa: F401 - fixtures
from tests.test_cdc import cursor, lsn, register, slot, slot_name_of
from tests.test_cdc_contract import _assert_equals_full_read, _assert_layer, _register_full, filings  # noqa: F401

LICENCES = """
    CREATE TABLE licences (id integer PRIMARY KEY, holder text NOT NULL, status text NOT NULL);
    INSERT INTO licences VALUES (1, '上海申城科技有限公司', '有效'), (2, '上海浦江贸易有限公司', '暂停'),
                                (3, '上海黄浦物流有限公司', '注销');
    -- enough rows that the changes below stay layers (a fifth of dead rows would compact the version)
    INSERT INTO licences SELECT g, '企业' || g, '有效' FROM generate_series(100, 140) g"""
LICENCES_CONTRACT = """name: {name}
key: [id]
resources: [{codes}]
columns:
  - {{name: id, type: integer, nullable: false}}
  - {{name: holder, type: string, nullable: false}}
  - {{name: status, type: string, nullable: false}}
rules:
  - {{type: allowed_values, column: status, values: [{statuses}]}}
"""


def _write_contract(hub_home: Path, name: str, codes: tuple[str, ...], statuses: str) -> None:
    folder = hub_home / "contracts"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(
        LICENCES_CONTRACT.format(name=name, codes=", ".join(f"'{c}'" for c in codes), statuses=statuses),
        encoding="utf-8")


def _resyncs(code: str) -> int:
    from registry.catalog.resources import get_resource
    from registry.db import session_scope
    from registry.exchange.notice_models import CdcResync

    with session_scope() as session:
        resource_id = get_resource(session, code=code).id
        return session.query(CdcResync).filter(CdcResync.resource_id == resource_id).count()


def test_a_replay_keeps_the_capture_position_so_the_next_run_is_a_change_run(filings: str,  # noqa: F811
                                                                              hub_home: Path) -> None:
    from pipeline.cdc import sync_cdc
    from pipeline.replay import replay_quarantine

    pg_execute(filings, LICENCES)
    code = register(filings, table="licences")
    full_code = _register_full(filings, "licences", ("id",))
    contract = f"c{uuid.uuid4().hex[:8]}"
    _write_contract(hub_home, contract, (code, full_code), "有效, 注销")
    snapshot = sync_cdc(resource_code=code)
    assert snapshot.version == 1 and snapshot.rows_quarantined == 1  # 暂停 is not an allowed status yet
    v1 = latest(code)

    # A quiet run: WAL moved on (another table), nothing of this table; the position moves, no version.
    pg_execute(filings, "CREATE TABLE unrelated AS SELECT g FROM generate_series(1, 1000) g")
    assert sync_cdc(resource_code=code).version is None
    moved = cursor(code)
    assert lsn(moved) > lsn(v1.manifest["watermark"]["value"]), "the quiet run moved the position"
    assert slot(filings, slot_name_of(code))[0] == moved

    # The operator learns 暂停 is a lawful status, fixes the contract and replays the stored rows.
    _write_contract(hub_home, contract, (code, full_code), "有效, 暂停, 注销")
    replay = replay_quarantine(resource_code=code)
    assert replay.version == 2 and (replay.rows_fixed, replay.rows_still_failing) == (1, 0)
    assert cursor(code) == moved, "the replay moved the capture's position"
    assert slot(filings, slot_name_of(code))[0] == cursor(code)
    assert latest(code).manifest["watermark"]["value"] == moved, "the replay version names the position it holds"
    assert {r["id"]: r["status"] for r in read_version(latest(code)).to_pylist()}[2] == "暂停"

    # The next run is an ordinary change run, a layer on the replay version equal to the source.
    pg_execute(filings, "UPDATE licences SET status = '注销' WHERE id = 1; DELETE FROM licences WHERE id = 100; "
                        "INSERT INTO licences VALUES (4, '上海长宁设计有限公司', '有效')")
    report = sync_cdc(resource_code=code)
    _assert_layer(code, report, _version(code, 2))
    assert _resyncs(code) == 0, "no resync was marked"
    _assert_equals_full_read(code, full_code, "id")


def _version(code: str, number: int):  # noqa: ANN202 - DatasetVersion
    from tests.helpers import versions

    return next(v for v in versions(code) if v.number == number)


def test_a_replay_version_claims_no_details_of_an_earlier_run(filings: str, hub_home: Path) -> None:  # noqa: F811
    """The replay version's watermark holds the position it keeps and says it is a replay: none of the change
    run's own details before it (its slot, transaction, change and delete counts), which a replay did not make.
    It had copied them from the latest version's watermark."""
    from pipeline.cdc import sync_cdc
    from pipeline.replay import replay_quarantine

    pg_execute(filings, LICENCES)
    code = register(filings, table="licences")
    contract = f"c{uuid.uuid4().hex[:8]}"
    _write_contract(hub_home, contract, (code,), "有效, 注销")
    assert sync_cdc(resource_code=code).rows_quarantined == 1  # 暂停 is not an allowed status yet
    pg_execute(filings, "UPDATE licences SET status = '注销' WHERE id = 1; DELETE FROM licences WHERE id = 100")
    change = sync_cdc(resource_code=code)
    assert change.mode == "cdc" and change.transactions and change.deletes
    changed = latest(code).manifest["watermark"]
    run_details = set(changed) - {"cursor_column", "value"}
    assert run_details, "a change run writes its own details beside its position"

    _write_contract(hub_home, contract, (code,), "有效, 暂停, 注销")
    held = cursor(code)
    assert replay_quarantine(resource_code=code).version == change.version + 1
    watermark = latest(code).manifest["watermark"]
    assert latest(code).manifest["mode"] == "replay" and watermark.get("replay") is True, watermark
    assert (watermark["cursor_column"], watermark["value"]) == (changed["cursor_column"], held) == \
        (changed["cursor_column"], cursor(code)), "the replay keeps the position"
    assert not run_details & set(watermark), f"the replay claims the change run's {run_details & set(watermark)}"
