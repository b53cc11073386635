"""A full disk under the hub's storage (a small tmpfs, which the test mounts: it needs root, and skips without):
a sync that runs out of space says so in one line and what to do, publishes nothing and keeps the last version
whole, and leaves no run folder or lock behind; a download the disk cannot hold is a 507 that says why, not a
bare 500."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from typer.testing import CliRunner

from samples.loaders import load_postgres
from tests.helpers import (
    bearer,
    latest,
    pg_execute,
    pg_scratch_schema,
    pg_source_config,
    read_version,
    register_resource,
    running_api,
)
from tests.services import require_postgres


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3M", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"mounting a 3 MB tmpfs needs root: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def storage_on_small_disk(small_disk: Path, monkeypatch: pytest.MonkeyPatch, hub_home: Path) -> Path:
    from core.settings import reset_settings

    storage = small_disk / "storage"
    monkeypatch.setenv("GOVSHARE_STORAGE", str(storage))
    reset_settings()
    return storage


def _grow(dsn: str, table: str, rows: int) -> None:
    """Rows of long, incompressible text: far more than the disk holds once written."""
    pg_execute(dsn, f"INSERT INTO {table} (id, uscc, name, legal_rep, legal_rep_id, reg_capital, established, status, "
                    f"address, industry, updated_at) SELECT 100000 + g, uscc, md5(g::text) || name, legal_rep, "
                    f"legal_rep_id, reg_capital, established, status, md5(g::text) || md5((g * 7)::text) || "
                    f"md5((g * 13)::text) || md5((g * 31)::text), industry, now() FROM {table} e, "
                    f"generate_series(1, {rows}) AS g WHERE e.id = 1")


def test_a_sync_that_runs_out_of_space_publishes_nothing_and_says_what_to_do(storage_on_small_disk: Path) -> None:
    from cli.main import app
    from registry.db import session_scope
    from registry.exchange.models import SyncRun
    from sqlalchemy import select

    dsn = require_postgres()
    with pg_scratch_schema(dsn) as schema:
        load_postgres(dsn, rows=200, seed=5, schema=schema)
        config, secret = pg_source_config(dsn, schema=schema)
        code = register_resource(kind="postgresql", config=config, secret=secret).resource_code
        runner = CliRunner()
        assert runner.invoke(app, ["sync", code]).exit_code == 0
        before = read_version(latest(code))

        _grow(dsn, f'"{schema}".enterprises', 60_000)
        failed = runner.invoke(app, ["sync", code])
        assert failed.exit_code == 1, failed.output
        text = " ".join(failed.output.split())
        assert "存储空间已满" in text and "no space left" in text and str(storage_on_small_disk) in text
        assert "[errno 28]" in text  # the driver's words, not eaten as markup
        assert "Traceback" not in failed.output
        assert latest(code).number == 1 and read_version(latest(code)).equals(before)
        with session_scope() as session:
            runs = session.execute(select(SyncRun.id, SyncRun.status).order_by(SyncRun.started_at)).all()
        assert runs[-1].status == "failed"
        assert not list(storage_on_small_disk.glob(f"datasets/*/{runs[-1].id}"))  # its folder is gone

        # space again (the rows go): the next sync runs at once, the lock was given back
        pg_execute(dsn, f'DELETE FROM "{schema}".enterprises WHERE id > 100000')
        again = runner.invoke(app, ["sync", code])
        assert again.exit_code == 0, again.output


def test_a_download_the_disk_cannot_hold_is_a_507_saying_why(storage_on_small_disk: Path) -> None:
    from pipeline.sync import sync_resource

    dsn = require_postgres()
    with pg_scratch_schema(dsn) as schema:
        load_postgres(dsn, rows=3_000, seed=5, schema=schema)
        config, secret = pg_source_config(dsn, schema=schema)
        hub = register_resource(kind="postgresql", config=config, secret=secret, subscribe=True)
        sync_resource(resource_code=hub.resource_code)
        filler = storage_on_small_disk / "filler"  # the disk all but full
        with filler.open("wb") as handle:
            try:
                while True:
                    handle.write(os.urandom(64 << 10))
                    handle.flush()
            except OSError:
                pass
        with running_api() as api:
            answer = requests.get(f"{api.base_url}/api/v1/resources/{hub.resource_code}/files",
                                  params={"format": "csv"}, headers=bearer(hub.token), timeout=30)
            assert answer.status_code == 507, answer.text
            assert "storage is full" in answer.json()["detail"] and "存储空间已满" in answer.json()["detail_zh"]
            filler.unlink()
            answer = requests.get(f"{api.base_url}/api/v1/resources/{hub.resource_code}/files",
                                  params={"format": "csv"}, headers=bearer(hub.token), timeout=30)
            assert answer.status_code == 200 and answer.content.count(b"\n") == 3_001
