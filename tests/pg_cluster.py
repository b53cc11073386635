"""A private PostgreSQL 15 cluster with wal_level=logical, for change-capture tests.

The machine's PostgreSQL runs with wal_level=replica, which logical replication cannot use, and changing it
needs a restart of a shared server. So the session starts its own cluster: initdb and pg_ctl run as the
`postgres` user (runuser) in a temporary folder that user owns, on a free loopback port with its own socket
folder; it is stopped and removed at the end. Without root, runuser or the PostgreSQL 15 binaries the tests
skip (or fail under GOVSHARE_REQUIRE_SERVICES=1, see tests/services.py).

    pg_logical_cluster   session fixture: admin DSN of the running cluster
    pg_logical_database  a scratch database in it (DSN); its replication slots are dropped with it
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from tests.services import services_required

PG_BIN = Path(os.environ.get("GOVSHARE_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
OS_USER = "postgres"


def _unavailable(reason: str) -> None:
    if services_required():
        pytest.fail(f"{reason} (GOVSHARE_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(f"{reason}; set GOVSHARE_REQUIRE_SERVICES=1 to make this a failure")


def _free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _as_postgres(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", OS_USER, "--", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="session")
def pg_logical_cluster() -> Iterator[str]:
    if os.geteuid() != 0:
        _unavailable("a private PostgreSQL cluster needs root (to run initdb as the postgres user)")
    if not (PG_BIN / "initdb").is_file() or shutil.which("runuser") is None:
        _unavailable(f"PostgreSQL 15 binaries ({PG_BIN}) or runuser are missing")
    try:
        owner = pwd.getpwnam(OS_USER)
    except KeyError:
        _unavailable(f"there is no {OS_USER!r} system user to run a private cluster")
    folder = Path(tempfile.mkdtemp(prefix="govshare-pgcdc-"))
    os.chown(folder, owner.pw_uid, owner.pw_gid)
    folder.chmod(0o700)
    data, port = folder / "data", _free_port()
    started = False
    try:
        init = _as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                            "--locale=C.UTF-8")
        if init.returncode:
            _unavailable(f"initdb failed: {init.stderr.strip()[-500:]}")
        settings = (f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c wal_level=logical "
                    "-c max_replication_slots=20 -c max_wal_senders=20 -c fsync=off "
                    "-c full_page_writes=off -c shared_buffers=32MB")
        start = _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"), "-w",
                             "-t", "60", "-o", settings, "start")
        if start.returncode:
            log = (folder / "server.log").read_text(errors="replace")[-800:] if (folder / "server.log").exists() else ""
            _unavailable(f"the private PostgreSQL cluster did not start: {start.stderr.strip()} {log}")
        started = True
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        if started:
            _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def pg_logical_database(pg_logical_cluster: str) -> Iterator[str]:
    import psycopg2

    name = f"govshare_cdc_{uuid.uuid4().hex[:10]}"
    with closing(psycopg2.connect(pg_logical_cluster)) as admin:
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = pg_logical_cluster.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with closing(psycopg2.connect(pg_logical_cluster)) as admin:
            admin.autocommit = True
            with admin.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                               "WHERE database = %s AND active_pid IS NOT NULL", (name,))
                cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
                cursor.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                               "WHERE database = %s", (name,))
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
