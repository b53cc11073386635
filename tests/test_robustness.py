"""Failures the exchange engine survives, on a real PostgreSQL source:

- the source drops the connection mid-read (the reading session is terminated with pg_terminate_backend):
  the run is retried and the version is published exactly once;
- the sync process is killed with SIGKILL in the middle of staging: the previous version stays served and
  intact, and a rerun takes the dead run's lock over and completes.

The source is a query through a PL/pgSQL function that sleeps at one row when a knob says so, so the test
knows the read is under way (wait event PgSleep) when it strikes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from samples.loaders import load_postgres
from tests.helpers import (
    Hub,
    hub_child,
    latest,
    pg_execute,
    pg_rows,
    pg_scratch_schema,
    pg_source_config,
    read_version,
    register_resource,
    rows_digest,
    run_prefixes,
    sigkill,
    sync_runs,
    table_rows,
    versions,
)
from tests.services import require_postgres

# The dropped connection and the SIGKILL mid-read, on the local folder and on an S3 object store.
pytestmark = pytest.mark.usefixtures("storage_backend")

ROWS = 2_000
SLOW_ID = 1_500


@pytest.fixture
def slow_source(hub_home: Path) -> Iterator[tuple[str, str, Hub]]:
    dsn = require_postgres()
    with pg_scratch_schema(dsn) as schema:
        load_postgres(dsn, rows=ROWS, seed=23, schema=schema)
        pg_execute(dsn, f'CREATE TABLE "{schema}".knob (sleep_seconds float8 NOT NULL)')
        pg_execute(dsn, f'INSERT INTO "{schema}".knob VALUES (0)')
        pg_execute(dsn, f"""CREATE FUNCTION "{schema}".slow(i bigint) RETURNS boolean LANGUAGE plpgsql AS $$
            BEGIN
                IF i = {SLOW_ID} THEN PERFORM pg_sleep((SELECT sleep_seconds FROM "{schema}".knob)); END IF;
                RETURN true;
            END $$""")
        config, secret = pg_source_config(dsn, schema=schema)
        hub = register_resource(kind="postgresql", config=config, secret=secret, table=None, cursor=None,
                                query=f'SELECT * FROM "{schema}".enterprises WHERE "{schema}".slow(id)')
        try:
            yield dsn, schema, hub
        finally:
            _terminate_sleepers(dsn, schema)  # a killed client's backend may still be sleeping


def _sleepers(dsn: str, schema: str) -> list[int]:
    return [pid for (pid,) in pg_execute(
        dsn, "SELECT pid FROM pg_stat_activity WHERE application_name = 'govshare' AND wait_event = 'PgSleep' "
             "AND query LIKE %s AND pid <> pg_backend_pid()", (f"%{schema}%slow(%",))]


def _terminate_sleepers(dsn: str, schema: str) -> list[int]:
    pids = _sleepers(dsn, schema)
    for pid in pids:
        pg_execute(dsn, "SELECT pg_terminate_backend(%s)", (pid,))
    return pids


def _wait_for(condition, what: str, timeout: float = 60):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := condition():
            return found
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


def _assert_equals_source(version, dsn: str, schema: str) -> None:  # noqa: ANN001
    source = pg_rows(dsn, f'"{schema}".enterprises')
    published = table_rows(read_version(version))
    assert len(published) == version.row_count == len(source)
    assert rows_digest(published) == rows_digest(source)


def test_a_connection_dropped_mid_read_is_retried_and_published_once(slow_source: tuple[str, str, Hub]) -> None:
    from pipeline.sync import sync_resource

    dsn, schema, hub = slow_source
    pg_execute(dsn, f'UPDATE "{schema}".knob SET sleep_seconds = 1.5')
    killed: list[int] = []

    def strike_once() -> None:
        # The reading session is inside the query, rows before it already sent: drop its connection.
        killed.extend(_wait_for(lambda: _terminate_sleepers(dsn, schema), "the read to reach the slow row"))

    striker = threading.Thread(target=strike_once, daemon=True)
    striker.start()
    report = sync_resource(resource_code=hub.resource_code, attempts=3, retry_delay_seconds=0.2)
    striker.join(timeout=60)

    assert len(killed) == 1
    assert report.version == 1 and [v.number for v in versions(hub.resource_code)] == [1]
    runs = sync_runs(hub.resource_code)
    assert [r.status for r in runs] == ["failed", "published"]
    assert "terminat" in runs[0].error.lower() and runs[0].version_id is None
    version = latest(hub.resource_code)
    _assert_equals_source(version, dsn, schema)
    ids = read_version(version).column("id").to_pylist()
    assert len(ids) == len(set(ids)) == ROWS


def test_a_run_killed_mid_stage_leaves_the_previous_version_and_a_rerun_completes(
        slow_source: tuple[str, str, Hub]) -> None:
    from pipeline import paths
    from pipeline.sync import sync_resource

    dsn, schema, hub = slow_source
    sync_resource(resource_code=hub.resource_code)
    v1 = latest(hub.resource_code)
    v1_digest = rows_digest(table_rows(read_version(v1)))
    pg_execute(dsn, f"""UPDATE "{schema}".enterprises SET name = name || '（迁址）' WHERE id <= 100""")
    pg_execute(dsn, f'UPDATE "{schema}".knob SET sleep_seconds = 120')

    with hub_child(f"from pipeline.sync import sync_resource; sync_resource(resource_code={hub.resource_code!r})") \
            as child:
        _wait_for(lambda: _sleepers(dsn, schema) or child.poll() is not None, "the child's read to start")
        assert child.poll() is None, child.stderr.read().decode()[-2000:]
        runs_folder = paths.storage_root() / "datasets" / str(hub.resource_id)
        # The run is mid-stage: its own folder exists beside v1's, nothing published.
        (killed_folder,) = [p for p in runs_folder.iterdir() if p.name != Path(v1.path).name]
        assert (killed_folder / "data").is_dir()
        sigkill(child)
    _terminate_sleepers(dsn, schema)

    # The previous version is untouched and still the one served; the killed run left its lock and folder.
    assert [v.number for v in versions(hub.resource_code)] == [1]
    assert rows_digest(table_rows(read_version(latest(hub.resource_code)))) == v1_digest
    killed_run = sync_runs(hub.resource_code)[-1]
    assert killed_run.status == "staging" and killed_run.id == killed_folder.name

    # The rerun takes the dead run's lock over, clears its leftovers and publishes v2.
    pg_execute(dsn, f'UPDATE "{schema}".knob SET sleep_seconds = 0')
    report = sync_resource(resource_code=hub.resource_code)
    assert report.version == 2
    _assert_equals_source(latest(hub.resource_code), dsn, schema)
    assert latest(hub.resource_code).manifest["changes"]["updated"] == 100
    runs = {r.id: r for r in sync_runs(hub.resource_code)}
    assert runs[killed_run.id].status == "failed" and "abandoned" in runs[killed_run.id].error
    assert not killed_folder.exists() and killed_run.id not in run_prefixes(hub.resource_id)
    assert rows_digest(table_rows(read_version(versions(hub.resource_code)[0]))) == v1_digest
