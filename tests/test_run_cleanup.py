"""A run that fails while the registry is down: its own error is the one reported, the clean-up it could not
finish (marking the run failed, releasing the resource's lock) a note beside it, and the lock it kept is taken
over by the next run once its holder is seen gone. Before, the lock release's "registry unreachable" replaced
the run's error, so the operator never learnt why the run failed."""

from __future__ import annotations

import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import psycopg2

from tests.helpers import REPO, child_env, pg_execute, pg_scratch_schema, pg_source_config, register_resource, sync
from tests.services import require_postgres


def _blocked_read(admin, child: subprocess.Popen, table: str, seconds: float = 120) -> int:  # noqa: ANN001
    """The backend of the run's read, once it waits for the table's lock (``admin``: a psycopg2 connection)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert child.poll() is None, child.communicate()
        with admin.cursor() as cursor:
            cursor.execute("SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s",
                           (f"%{table}%",))
            if row := cursor.fetchone():
                return row[0]
        time.sleep(0.1)
    raise AssertionError("the run never started reading the source table")


def test_a_run_failing_while_the_registry_is_down_reports_its_own_error(pg_hub_home: Path, pg_database: str) -> None:
    dsn = require_postgres()
    registry = pg_database.rpartition("/")[2]
    with pg_scratch_schema(dsn) as schema, closing(psycopg2.connect(dsn)) as admin, \
            closing(psycopg2.connect(dsn)) as locker:
        admin.autocommit = True
        pg_execute(dsn, f"CREATE TABLE {schema}.permits (id int PRIMARY KEY, holder text)")
        pg_execute(dsn, f"INSERT INTO {schema}.permits SELECT g, '持证人' || g FROM generate_series(1, 50) g")
        config, secret = pg_source_config(dsn, schema=schema)
        hub = register_resource(kind="postgresql", config={**config, "reader": "adbc"}, secret=secret,
                                table="permits", cursor=None)
        with locker.cursor() as cursor:  # the run's read waits here, after it took the lease and recorded itself
            cursor.execute(f"LOCK TABLE {schema}.permits IN ACCESS EXCLUSIVE MODE")
        child = subprocess.Popen([sys.executable, "-c", "from cli.main import main; main()", "sync",
                                  hub.resource_code], cwd=REPO, env={**child_env(), "COLUMNS": "400"},
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        away = False
        try:
            reader = _blocked_read(admin, child, "permits")
            with admin.cursor() as cursor:  # the registry goes away (a restart, a network cut) ...
                cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                               (registry,))
                cursor.execute(f'ALTER DATABASE "{registry}" RENAME TO "{registry}_away"')
                away = True
                cursor.execute("SELECT pg_terminate_backend(%s)", (reader,))  # ... and the source drops the read
            out, err = child.communicate(timeout=120)
        finally:
            if child.poll() is None:
                child.kill()
                child.communicate()
            with admin.cursor() as cursor:
                if away:
                    cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                                   (f"{registry}_away",))
                    cursor.execute(f'ALTER DATABASE "{registry}_away" RENAME TO "{registry}"')
            locker.rollback()
        said = " ".join((out + err).split())
        assert "Traceback" not in said, said
        assert child.returncode == 2, said  # retriable: the source dropped the read
        lines = [line for line in (out + err).splitlines() if line.strip()]
        # the run's own error is the one reported, last ...
        assert lines[-1].startswith("暂时失败，可重试 / retriable:") and "terminating connection" in lines[-1], said
        assert "登记库无法访问" not in lines[-1] and "cannot be reached" not in lines[-1], said
        # ... the clean-up it could not finish is a note before it, in Chinese, saying what becomes of the lock
        notes = [line for line in lines if line.startswith("注意 / note:") and "清理未完成" in line]
        assert len(notes) == 1, said
        assert "未能释放资源锁" in notes[0] and "未能将运行记为失败" in notes[0], notes[0]
        assert "持有者已不在" in notes[0] and "接管" in notes[0], notes[0]

        # the registry back, the next run takes the kept lock over at once (its holder's process is gone)
        assert sync(hub).rows_published == 50
    from sqlalchemy import select

    from registry.audit.models import AuditEvent
    from registry.db import session_scope

    with session_scope() as session:
        takeover = session.scalars(select(AuditEvent).where(AuditEvent.action == "run.lock_takeover")).one()
        assert "is gone" in takeover.detail["reason"]
