"""A real Airflow 3 deployment on CeleryExecutor, all on loopback: api-server (its Execution API is what the
workers' task runners report to), scheduler, dag-processor and Celery workers, with Airflow's metadata in a
PostgreSQL database of its own and the Celery queue in the test Redis.

Each worker plays another machine: its own Celery node name, and its own host name as Airflow records it on
the task instances (``[core] hostname_callable`` reads GOVSHARE_TEST_WORKER_HOSTNAME, see
:func:`worker_hostname`). The queue name is unique to the cluster, so several test runs can share one Redis
database; its keys are deleted at the end, the metadata database is dropped.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers import REPO, child_env

HOSTNAME_VARIABLE = "GOVSHARE_TEST_WORKER_HOSTNAME"


def worker_hostname() -> str:
    """Airflow's hostname_callable in the workers: the machine name this worker plays."""
    return os.environ.get(HOSTNAME_VARIABLE) or socket.getfqdn()


def _free_port() -> int:
    with closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class CeleryAirflow:
    env: dict[str, str]
    metadata_dsn: str  # libpq URL of Airflow's metadata database
    queue: str
    logs: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def airflow(self, *args: str, timeout: float = 300) -> str:
        done = subprocess.run([sys.executable, "-m", "airflow", *args], env=self.env, cwd=REPO,
                              capture_output=True, text=True, timeout=timeout, check=False)
        assert done.returncode == 0, f"airflow {' '.join(args)} failed:\n{done.stderr[-4000:]}"
        return done.stdout

    def start(self, name: str, *args: str, **extra_env: str) -> None:
        log = (self.logs / f"{name}.log").open("w")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "airflow", *args], env={**self.env, **extra_env}, cwd=REPO,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def query(self, sql: str, *params: object) -> list[tuple]:
        import psycopg2

        with closing(psycopg2.connect(self.metadata_dsn)) as conn, conn.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    def wait_for(self, what: str, check, *, timeout: float) -> None:
        """Poll ``check()`` until it is true; on timeout fail with every component's log tail."""
        deadline = time.monotonic() + timeout
        while not check():
            for name, process in self.processes.items():
                assert process.poll() is None, f"{name} exited ({process.returncode}) while waiting for " \
                                               f"{what}:\n{self.log_tails()}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{self.log_tails()}"
            time.sleep(1)

    def log_tails(self) -> str:
        return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
                         for path in sorted(self.logs.glob("*.log")))

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@contextmanager
def celery_airflow(*, admin_dsn: str, redis_url: str, home: Path, workers: list[str]) -> Iterator[CeleryAirflow]:
    """Migrate a fresh metadata database and start every component; one Celery worker (concurrency 1) per
    name in ``workers``. The hub's settings come from this process's environment (the test's hub home)."""
    import psycopg2
    import redis

    name = f"gs_airflow_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(admin_dsn)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    base = admin_dsn.rpartition("/")[0]
    metadata = f"{base}/{name}"
    queue = f"govshare_test_{uuid.uuid4().hex[:8]}"
    port = _free_port()
    home.mkdir(parents=True, exist_ok=True)
    (home / "logs").mkdir(exist_ok=True)
    env = child_env()
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata.replace("postgresql://", "postgresql+psycopg2://", 1),
        "AIRFLOW__CELERY__BROKER_URL": redis_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + metadata.replace("postgresql://", "postgresql+psycopg2://", 1),
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex * 2,
        "AIRFLOW__API__SECRET_KEY": uuid.uuid4().hex * 2,
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.airflow_celery.worker_hostname",
        # Only the runs a test triggers: no scheduled runs of the (daily, weekly) sync DAGs.
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "GX_ANALYTICS_ENABLED": "False",
    })
    cluster = CeleryAirflow(env=env, metadata_dsn=metadata, queue=queue, logs=home / "component-logs")
    cluster.logs.mkdir(exist_ok=True)
    try:
        cluster.airflow("db", "migrate", timeout=600)
        cluster.start("api-server", "api-server")
        cluster.start("scheduler", "scheduler")
        cluster.start("dag-processor", "dag-processor")
        for worker in workers:
            cluster.start(f"worker-{worker}", "celery", "worker", "--queues", queue, "--concurrency", "1",
                          "--celery-hostname", f"{worker}@{queue}", "--without-mingle", "--without-gossip",
                          **{HOSTNAME_VARIABLE: worker})
        yield cluster
    finally:
        cluster.stop()
        client = redis.Redis.from_url(redis_url)
        for key in client.scan_iter(f"*{queue}*"):
            client.delete(key)
        client.close()
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
