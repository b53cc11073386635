"""Full, then incremental syncs of a PostgreSQL table with updates, inserts, deletes and late writers on the same
cursor value: each incremental version equals the source exactly, every column compared, and its change set
counts the deletes (-N, never -?). Both ways of comparing the source's keys are exercised: the streaming merge
of an integer key against the published sorted keys, and the DuckDB anti-join of a text key."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

import pipeline.deletes
import pipeline.layering
from core.errors import RetriableError
from pipeline import paths
from pipeline.deletes_merge import KEY_RANGES
from samples.loaders import load_postgres
from tests.helpers import (
    ENTERPRISE_COLUMNS,
    first_difference,
    latest,
    pg_execute,
    pg_rows,
    pg_scratch_schema,
    pg_source_config,
    read_version,
    register_resource,
    rows_digest,
    sync_runs,
    table_rows,
    versions,
)
from tests.services import require_postgres

ROWS = 3_000
LATE = "2031-01-01 09:00:00+08"  # a cursor value later than any loaded row
LATER = "2031-02-01 09:00:00+08"


@pytest.fixture(params=["sqlite-registry", "postgres-registry"])
def hub(request: pytest.FixtureRequest) -> Path:
    return request.getfixturevalue("hub_home" if request.param == "sqlite-registry" else "pg_hub_home")


@pytest.fixture
def source() -> Iterator[tuple[str, str]]:
    dsn = require_postgres()
    with pg_scratch_schema(dsn) as schema:
        load_postgres(dsn, rows=ROWS, seed=71, schema=schema)
        yield dsn, schema


def _assert_equals_source(version, dsn: str, table: str, key: str) -> None:  # noqa: ANN001
    source = pg_rows(dsn, table, order_by=key)
    published = table_rows(read_version(version, sort_by=key), ENTERPRISE_COLUMNS)
    assert len(published) == len(source) == version.row_count
    assert rows_digest(published) == rows_digest(source), first_difference(published, source)


def _copy_row(table: str, new_id: int, stamp: str) -> str:
    """An insert of row 1's values under a new id and code (a new enterprise), at cursor value ``stamp``."""
    columns = [c for c in ENTERPRISE_COLUMNS if c not in ("id", "uscc", "updated_at")]
    return (f"INSERT INTO {table} (id, uscc, {', '.join(columns)}, updated_at) SELECT {new_id}, "
            f"'9131000000{new_id:07d}X', {', '.join(columns)}, timestamptz '{stamp}' FROM {table} WHERE id = 1")


@pytest.mark.parametrize("key", ["id", "uscc"], ids=["integer-key-merge", "text-key-anti-join"])
def test_incremental_versions_equal_the_source_exactly(hub: Path, source: tuple[str, str], key: str) -> None:
    from pipeline.sync import sync_resource

    dsn, schema = source
    table = f'"{schema}".enterprises'
    assert pg_execute(dsn, f"SELECT count(DISTINCT uscc) = count(*) FROM {table}")[0][0]
    config, secret = pg_source_config(dsn, schema=schema)
    hub_setup = register_resource(kind="postgresql", config=config, secret=secret, key=(key,))
    code = hub_setup.resource_code

    full = sync_resource(resource_code=code)
    assert full.mode == "full" and full.version == 1
    _assert_equals_source(latest(code), dsn, table, key)

    # Two writers stamp their rows with the same cursor value. One commits before the next run reads ...
    late = psycopg2.connect(dsn)
    try:
        with late.cursor() as cursor:  # ... the other is still open while that run reads, and commits after it
            cursor.execute(f"UPDATE {table} SET name = name || '（迟到）', updated_at = '{LATE}' WHERE id BETWEEN 101 AND 105")
            cursor.execute(_copy_row(table, 9002, LATE))
            cursor.execute(f"DELETE FROM {table} WHERE id = 106")
        pg_execute(dsn, f"UPDATE {table} SET reg_capital = reg_capital + 1, status = '注销', updated_at = '{LATE}' "
                        f"WHERE id BETWEEN 1 AND 10")
        pg_execute(dsn, _copy_row(table, 9001, LATE))
        pg_execute(dsn, f"DELETE FROM {table} WHERE id BETWEEN 20 AND 24")

        first = sync_resource(resource_code=code)
        v2 = latest(code)
        assert first.mode == "incremental" and v2.number == 2
        _assert_equals_source(v2, dsn, table, key)  # the source as committed when it read
        changes = v2.manifest["changes"]
        assert (changes["inserted"], changes["updated"], changes["deleted"], changes["deletes_detected"]) == \
            (1, 10, 5, True)
        assert v2.manifest["key_scan"]["method"] == ("merge" if key == "id" else "anti-join")
        # an integer key is read in several ranges at once, each over its own connection
        assert v2.manifest["key_scan"]["ranges"] == (KEY_RANGES if key == "id" else 1) and KEY_RANGES > 1
        assert v2.manifest["key_scan"]["source_keys"] == ROWS - 5 + 1
        late.commit()  # the late writer: rows at the very cursor value the last run stopped at
    finally:
        late.close()

    pg_execute(dsn, f"UPDATE {table} SET address = address || '（迁址）', updated_at = '{LATER}' WHERE id = 30")
    pg_execute(dsn, _copy_row(table, 9003, LATER))
    pg_execute(dsn, f"DELETE FROM {table} WHERE id IN (40, 9001)")  # an old row, and one the last run inserted

    second = sync_resource(resource_code=code)
    v3 = latest(code)
    assert second.mode == "incremental" and v3.number == 3
    _assert_equals_source(v3, dsn, table, key)
    changes = v3.manifest["changes"]
    # late: 5 updates, 1 insert (9002), 1 delete (106); later: 1 update, 1 insert, 2 deletes
    assert (changes["inserted"], changes["updated"], changes["deleted"]) == (2, 6, 3)

    # Nothing changed since: the run reads the rows at the watermark again, finds them published, publishes nothing.
    quiet = sync_resource(resource_code=code)
    assert quiet.mode == "incremental" and quiet.version is None and latest(code).number == 3

    # The CLI shows every version's exact change set.
    from typer.testing import CliRunner

    from cli.main import app

    shown = CliRunner().invoke(app, ["versions", code], env={"COLUMNS": "250"})
    assert shown.exit_code == 0 and "+1 ~10 -5" in shown.output and "+2 ~6 -3" in shown.output
    assert "-?" not in shown.output


def test_a_source_that_cannot_order_its_keys_still_yields_exact_deletes(hub_home: Path,
                                                                        source: tuple[str, str]) -> None:
    """A legacy table keeps its integer ids as text (the contract publishes them as integers): the source
    sorts its keys as text ("1", "10", "100", "1000", "1001", ...), not in the published order, so the
    streaming merge gives up and the keys are compared by the anti-join: the deletes are still exact."""
    from pipeline.sync import sync_resource
    from registry.exchange.contracts import attach_contract
    from registry.db import session_scope

    dsn, schema = source
    table = f'"{schema}".enterprises'
    pg_execute(dsn, f"ALTER TABLE {table} ALTER COLUMN id TYPE text USING id::text")
    config, secret = pg_source_config(dsn, schema=schema)
    code = register_resource(kind="postgresql", config=config, secret=secret).resource_code
    with session_scope() as session:
        attach_contract(session, resource_code=code, name="enterprises", actor="test")
    assert sync_resource(resource_code=code).version == 1
    assert str(read_version(latest(code)).schema.field("id").type) == "int64"

    pg_execute(dsn, f"DELETE FROM {table} WHERE id IN ('7', '100', '2999')")
    pg_execute(dsn, f"UPDATE {table} SET status = '注销', updated_at = '{LATE}' WHERE id IN ('8', '1000')")
    report = sync_resource(resource_code=code)
    version = latest(code)
    assert report.mode == "incremental" and version.number == 2
    assert version.manifest["key_scan"]["method"] == "anti-join"
    changes = version.manifest["changes"]
    assert (changes["inserted"], changes["updated"], changes["deleted"], changes["deletes_detected"]) == \
        (0, 2, 3, True)
    ids = read_version(version).column("id").to_pylist()
    assert len(ids) == ROWS - 3 and not {7, 100, 2999} & set(ids) and {8, 1000} <= set(ids)


def test_a_composite_key_has_its_deletes_found(hub_home: Path) -> None:
    """A key of two columns (region, sequence number): an incremental run with deletes crashed (the deleted keys
    came back as a chunked array where the layering concatenates arrays). The deletes are exact now, an empty
    text part included."""
    from pipeline.sync import sync_resource

    dsn = require_postgres()
    with pg_scratch_schema(dsn) as schema:
        table = f'"{schema}".permits'
        pg_execute(dsn, f"CREATE TABLE {table} (region text, seq int, holder text, updated_at timestamptz, "
                        f"PRIMARY KEY (region, seq))")
        pg_execute(dsn, f"INSERT INTO {table} SELECT r, g, r || g, timestamptz '2026-03-01 08:00+08' "
                        f"FROM unnest(ARRAY['浦东新区', '黄浦区', '']) AS r, generate_series(1, 40) AS g")
        config, secret = pg_source_config(dsn, schema=schema)
        code = register_resource(kind="postgresql", config=config, secret=secret, table="permits",
                                 key=("region", "seq")).resource_code
        assert sync_resource(resource_code=code).rows_published == 120
        pg_execute(dsn, f"DELETE FROM {table} WHERE (region, seq) IN (('浦东新区', 2), ('', 40), ('黄浦区', 7))")
        pg_execute(dsn, f"UPDATE {table} SET holder = '改', updated_at = '{LATE}' WHERE region = '' AND seq = 3")
        report = sync_resource(resource_code=code)
        version = latest(code)
        changes = version.manifest["changes"]
        assert report.mode == "incremental" and version.manifest["key_scan"]["method"] == "anti-join"
        assert (changes["inserted"], changes["updated"], changes["deleted"]) == (0, 1, 3)
        rows = {(r["region"], r["seq"]): r["holder"] for r in read_version(version, sort_by=None).to_pylist()}
        assert len(rows) == 117 and ("浦东新区", 2) not in rows and ("", 40) not in rows and rows[("", 3)] == "改"


def test_a_key_scan_that_fails_after_the_layer_began_publishes_nothing(
        hub_home: Path, source: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The layer's delta share is written while the key scan still reads (pipeline.layering.start_layer). When
    the scan then fails (here: its connection lost), the run fails as retriable, the last version stays the
    one served, the run leaves no folder, and the next run publishes the source exactly, deletes included."""
    from pipeline.sync import sync_resource

    dsn, schema = source
    table = f'"{schema}".enterprises'
    config, secret = pg_source_config(dsn, schema=schema)
    hub = register_resource(kind="postgresql", config=config, secret=secret, key=("id",))
    code = hub.resource_code
    sync_resource(resource_code=code)
    v1 = latest(code)
    v1_digest = rows_digest(table_rows(read_version(v1, sort_by="id"), ENTERPRISE_COLUMNS))
    pg_execute(dsn, f"UPDATE {table} SET status = '吊销', updated_at = '{LATE}' WHERE id BETWEEN 1 AND 5")
    pg_execute(dsn, f"DELETE FROM {table} WHERE id BETWEEN 50 AND 52")

    merge = pipeline.deletes.merge_key_streams
    began: list[list[bool]] = []

    def lost(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - the scan's own signature
        began.append([(f / "changes.parquet").is_file() for f in run_folders()])  # the layer begun?
        raise RetriableError("the source closed the key scan's connection; retry the run")

    def run_folders() -> list[Path]:
        return [p for p in (paths.storage_root() / "datasets" / str(hub.resource_id)).iterdir()
                if p.name != Path(v1.path).name]

    release = threading.Event()

    def slow_lost(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        release.wait(timeout=30)  # until the run's main thread has begun the layer and waits for the scan
        return lost(*args, **kwargs)

    start_layer = pipeline.layering.start_layer

    def started_then_release(**kwargs):  # noqa: ANN003, ANN202
        layer = start_layer(**kwargs)
        release.set()
        return layer

    monkeypatch.setattr(pipeline.deletes, "merge_key_streams", slow_lost)
    monkeypatch.setattr("pipeline.extract.start_layer", started_then_release)
    with pytest.raises(RetriableError, match="key scan"):
        sync_resource(resource_code=code)
    assert began == [[True]]  # the failure came after the run's layer had begun its change file
    assert [v.number for v in versions(code)] == [1]
    assert rows_digest(table_rows(read_version(latest(code), sort_by="id"), ENTERPRISE_COLUMNS)) == v1_digest
    assert sync_runs(code)[-1].status == "failed"
    assert run_folders() == []  # the failed run's folder is gone

    monkeypatch.setattr(pipeline.deletes, "merge_key_streams", merge)
    monkeypatch.setattr("pipeline.extract.start_layer", start_layer)
    report = sync_resource(resource_code=code)
    assert report.mode == "incremental" and report.version == 2
    _assert_equals_source(latest(code), dsn, table, "id")
    changes = latest(code).manifest["changes"]
    assert (changes["updated"], changes["deleted"]) == (5, 3)


def test_a_version_past_the_limit_is_compacted_only_by_a_run_with_changes(hub_home: Path,
                                                                          source: tuple[str, str]) -> None:
    """After a mass delete the version is past the compaction limit (more than a fifth of its referenced rows
    dead). A run that then finds no change publishes nothing, so it writes no snapshot either: its staged folder
    holds the rows it read and no more (every quiet run used to rewrite the whole table and throw it away). A
    run failing while it compacts leaves the version served; the next run with changes compacts, and publishes
    the source exactly, every column compared, with its exact change set."""
    import pyarrow.parquet as pq

    from pipeline.extract import stage_resource
    from pipeline.layering import compaction_due
    from pipeline.layers import version_parts
    from pipeline.sync import publish_run, sync_resource
    from tests.helpers import run_prefixes

    dsn, schema = source
    table = f'"{schema}".enterprises'
    config, secret = pg_source_config(dsn, schema=schema)
    hub = register_resource(kind="postgresql", config=config, secret=secret, key=("id",))
    code = hub.resource_code
    sync_resource(resource_code=code)
    pg_execute(dsn, f"DELETE FROM {table} WHERE id % 4 = 0")  # a quarter of the rows
    assert sync_resource(resource_code=code).version == 2
    v2 = latest(code)
    assert any(e.get("folder") for e in v2.manifest["files"]), "a layer on v1"
    assert v2.manifest["changes"]["deleted"] == ROWS // 4 and compaction_due(version_parts(v2))
    v2_digest = rows_digest(table_rows(read_version(v2, sort_by="id"), ENTERPRISE_COLUMNS))

    for _ in range(2):  # quiet runs, staged then published as the Airflow tasks do
        staged = stage_resource(resource_code=code)
        folder = Path(staged.folder)
        written = sum(pq.ParquetFile(part).metadata.num_rows for part in (folder / "data").glob("*.parquet"))
        assert written == staged.rows_read < ROWS // 10, "the staged run holds what it read, not a snapshot"
        assert staged.referenced, "the previous version's files are referenced, as by a layer"
        report = publish_run(folder=staged.folder)
        assert report.version is None and sync_runs(code)[-1].status == "unchanged"
        assert [v.number for v in versions(code)] == [1, 2]
        assert folder.name not in run_prefixes(hub.resource_id)

    pg_execute(dsn, f"UPDATE {table} SET name = name || '（更名）', reg_capital = reg_capital + 1, "
                    f"updated_at = '{LATE}' WHERE id BETWEEN 1 AND 3")
    pg_execute(dsn, _copy_row(table, 9001, LATE))
    pg_execute(dsn, f"DELETE FROM {table} WHERE id IN (5, 2999)")

    compact = pipeline.layering.compact

    def crash(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - a failure once the snapshot is written
        compact(*args, **kwargs)
        raise RetriableError("the worker lost its disk while compacting")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("pipeline.extract.compact", crash)
        with pytest.raises(RetriableError, match="compacting"):
            sync_resource(resource_code=code)
    assert [v.number for v in versions(code)] == [1, 2] and sync_runs(code)[-1].status == "failed"
    assert run_prefixes(hub.resource_id) == sorted(Path(v.path).name for v in versions(code))
    assert rows_digest(table_rows(read_version(latest(code), sort_by="id"), ENTERPRISE_COLUMNS)) == v2_digest

    report = sync_resource(resource_code=code)
    v3 = latest(code)
    assert report.mode == "incremental" and v3.number == 3 and v3.manifest["mode"] == "incremental"
    assert not any(e.get("folder") or e.get("deleted") for e in v3.manifest["files"]), "compacted: a snapshot"
    assert not compaction_due(version_parts(v3))
    _assert_equals_source(v3, dsn, table, "id")
    changes = v3.manifest["changes"]
    assert (changes["inserted"], changes["updated"], changes["deleted"], changes["deletes_detected"]) == \
        (1, 3, 2, True)
    change_file = pq.read_table(paths.resolve(v3.path) / changes["file"])
    kinds = dict(zip(change_file.column("id").to_pylist(), change_file.column("_change").to_pylist()))
    assert kinds == {1: "update", 2: "update", 3: "update", 9001: "insert", 5: "delete", 2999: "delete"}
