"""Row conditions hold on the change feed: a consumer granted only rows with status 存续/在业 applies every
change file to its first snapshot and ends, at every version, with exactly its filtered snapshot: rows that
leave the condition (注销) arrive as deletes, rows that enter it as inserts, through the real API."""

from __future__ import annotations

import io
import sqlite3
from contextlib import closing
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import requests

from samples.loaders import load_sqlite
from tests.helpers import bearer, running_api
from tests.sharing_world import APPROVED_STATUSES, World, build_world


pytestmark = pytest.mark.usefixtures("cheap_hashing")

@pytest.fixture(params=["sqlite-registry", "postgres-registry"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[World, Path]:
    request.getfixturevalue("hub_home" if request.param == "sqlite-registry" else "pg_hub_home")
    database = tmp_path / "market.db"
    load_sqlite(database, rows=150, seed=91)
    return build_world(database, tmp_path), database


def _source_round(database: Path, round_no: int) -> None:
    """One day at the source: rows leave the condition, rows enter it, rows change inside and outside it,
    rows are deleted and added."""
    with closing(sqlite3.connect(database)) as db, db:
        ids = [r[0] for r in db.execute("SELECT id FROM enterprises ORDER BY id")]
        inside = [r[0] for r in db.execute("SELECT id FROM enterprises WHERE status IN ('存续', '在业') ORDER BY id")]
        outside = [i for i in ids if i not in set(inside)]
        stamp = f"2026-11-{10 + round_no:02d}T09:00:00+08:00"
        db.executemany("UPDATE enterprises SET status = '注销', updated_at = ? WHERE id = ?",
                       [(stamp, i) for i in inside[round_no::9][:6]])  # leave
        db.executemany("UPDATE enterprises SET status = '存续', updated_at = ? WHERE id = ?",
                       [(stamp, i) for i in outside[round_no::5][:4]])  # enter
        db.executemany("UPDATE enterprises SET name = name || '（变更）', updated_at = ? WHERE id = ?",
                       [(stamp, i) for i in inside[round_no + 1::11][:5]])  # change inside
        db.executemany("UPDATE enterprises SET address = address || '（迁址）', updated_at = ? WHERE id = ?",
                       [(stamp, i) for i in outside[round_no + 2::7][:3]])  # change outside: the consumer sees none
        db.executemany("DELETE FROM enterprises WHERE id = ?", [(i,) for i in (inside[-1 - round_no],
                                                                              outside[-1 - round_no])])
        template = db.execute("SELECT * FROM enterprises WHERE id = ?", (inside[0],)).fetchone()
        for offset, status in enumerate(("存续", "注销")):
            new_id = 10_000 + round_no * 10 + offset
            db.execute("INSERT INTO enterprises VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (new_id, template[1][:-4] + f"{new_id:04d}"[-4:], f"新设企业{new_id}", *template[3:7], status,
                        *template[8:10], stamp))


def _apply(copy: dict[int, dict], changes: list[dict]) -> None:
    for row in changes:
        kind = row.pop("_change")
        row.pop("_version")
        if kind == "delete":
            assert row["id"] in copy, f"a delete of a row the consumer never had: {row['id']}"
            del copy[row["id"]]
        elif kind == "insert":
            assert row["id"] not in copy, f"an insert of a row the consumer already has: {row['id']}"
            copy[row["id"]] = row
        else:
            assert row["id"] in copy, f"an update of a row the consumer does not have: {row['id']}"
            copy[row["id"]] = row


def test_applying_every_change_file_gives_the_filtered_snapshot(world: tuple[World, Path]) -> None:
    from pipeline.sync import sync_resource

    hub, database = world
    code, token = hub.resources["conditional"], hub.tokens["system:consumer"]
    with running_api() as api:
        def snapshot() -> dict[int, dict]:
            answer = requests.get(f"{api.base_url}/api/v1/resources/{code}/files", headers=bearer(token),
                                  timeout=60)
            assert answer.status_code == 200, answer.text
            return {row["id"]: row for row in pq.read_table(io.BytesIO(answer.content)).to_pylist()}

        first = snapshot()
        copy, from_start = dict(first), None
        assert {r["status"] for r in copy.values()} <= set(APPROVED_STATUSES)
        for round_no in range(1, 4):
            _source_round(database, round_no)
            report = sync_resource(resource_code=code, full=True, after=())
            since = report.version - 1
            for path, params in ((f"/api/v1/resources/{code}/changes", {"since": since}),
                                 (f"/api/v1/resources/{code}/files", {"since": since, "format": "parquet"})):
                answer = requests.get(api.base_url + path, params=params, headers=bearer(token), timeout=60)
                assert answer.status_code == 200, answer.text
                changes = pq.read_table(io.BytesIO(answer.content)).to_pylist()
                kinds = {row["_change"] for row in changes}
                assert {"insert", "delete"} <= kinds, kinds  # entering and leaving rows are told
                if path.endswith("/changes"):
                    _apply(copy, changes)
            assert copy == snapshot(), f"after v{report.version} the applied copy differs from the snapshot"
        # all versions' changes at once, from the first snapshot, give the same
        answer = requests.get(f"{api.base_url}/api/v1/resources/{code}/changes", params={"since": 1},
                              headers=bearer(token), timeout=60)
        from_start = dict(first)
        _apply(from_start, pq.read_table(io.BytesIO(answer.content)).to_pylist())
        assert from_start == snapshot()
