"""Per-resource run leases across processes and hosts on a PostgreSQL registry (运行租约): the lease is one
registry row, so processes that race for a resource from several machines (Celery workers, the CLI) get it
one at a time. Each child process plays its own host (``pipeline.locks.HOST``), so a holder's liveness is
known only from its lease, never from its process id."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from samples.loaders import load_sqlite
from tests.helpers import (
    REPO,
    Hub,
    child_env,
    latest,
    register_resource,
    sigkill,
    sync_runs,
    versions,
)

RACERS = 5

# Takes the lease with no wait as soon as the go file appears; the winner holds it (its heartbeat renewing
# the lease) until the release file appears.
RACER = """
import sys, time
from pathlib import Path

from pipeline import locks
from core.errors import RetriableError

resource_id, code, host, go, release = int(sys.argv[1]), sys.argv[2], sys.argv[3], Path(sys.argv[4]), Path(sys.argv[5])
locks.HOST, locks.LEASE_SECONDS, locks.HEARTBEAT_SECONDS = host, 6, 1
while not go.exists():
    time.sleep(0.01)
try:
    locks.acquire(resource_id=resource_id, resource_code=code, run_id=f"run-of-{host}")
except RetriableError as refused:
    print("refused", refused, flush=True)
    sys.exit(3)
print("won", flush=True)
while not release.exists():
    time.sleep(0.05)
locks.release(resource_id=resource_id, run_id=f"run-of-{host}")
"""

# `govshare ...` in a process that plays another host.
CLI_ON_HOST = """
import sys

from pipeline import locks

locks.HOST = sys.argv[1]
sys.argv = ["govshare", *sys.argv[2:]]
from cli.main import main

main()
"""


@pytest.fixture
def hub(pg_hub_home: Path, tmp_path: Path) -> Hub:
    database = tmp_path / "biz.db"
    load_sqlite(database, rows=150, seed=7)
    return register_resource(kind="sqlite", config={"path": str(database)})


def _child(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=REPO, env=child_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@contextmanager
def _children() -> Iterator[list[subprocess.Popen]]:
    started: list[subprocess.Popen] = []
    try:
        yield started
    finally:
        for child in started:
            if child.poll() is None:
                child.kill()
                child.wait()


def _holder(hub: Hub) -> str | None:
    from registry.db import session_scope
    from registry.exchange.models import ResourceLock

    with session_scope() as session:
        lock = session.get(ResourceLock, hub.resource_id)
        return lock.host if lock else None


def test_processes_on_several_hosts_race_for_a_resource_and_one_wins(hub: Hub, tmp_path: Path) -> None:
    go, release = tmp_path / "go", tmp_path / "release"
    hosts = [f"worker-{n}.govshare.test" for n in range(RACERS)]
    with _children() as started:
        racers = [_child(RACER, str(hub.resource_id), hub.resource_code, host, str(go), str(release))
                  for host in hosts]
        started.extend(racers)
        go.touch()
        outcomes = {}
        for host, racer in zip(hosts, racers, strict=True):
            line = racer.stdout.readline().strip()  # the winner keeps running; its first line says it won
            outcomes[host] = line
        winners = [host for host, line in outcomes.items() if line == "won"]
        assert len(winners) == 1, outcomes
        (winner,) = winners
        assert _holder(hub) == winner
        for host, line in outcomes.items():
            if host != winner:
                assert line.startswith("refused"), line
                assert f"resource {hub.resource_code} is being published by another run" in line
                assert f"on {winner}" in line and f"资源 {hub.resource_code} 正由另一运行发布" in line

        # While the winner holds the lease, a sync from another host is refused with a clear message, no
        # traceback, and nothing is published.
        refused = subprocess.run([sys.executable, "-c", CLI_ON_HOST, "cli-host", "sync", hub.resource_code],
                                 cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=300, check=False)
        assert refused.returncode != 0
        message = refused.stdout + refused.stderr
        assert "is being published by another run" in message and winner in message, message
        assert "Traceback" not in message
        assert versions(hub.resource_code) == []

        # A sync that may wait does so, and publishes once the winner lets go.
        waiter = _child(CLI_ON_HOST, "waiting-host", "sync", hub.resource_code, "--wait", "600")
        started.append(waiter)
        waiting = waiter.stderr.readline()  # it says what it waits for, once, then waits
        assert f"resource {hub.resource_code} is being published by another run" in waiting, waiting
        assert f"on {winner}" in waiting and "waiting up to 600 s" in waiting
        assert _holder(hub) == winner and versions(hub.resource_code) == []
        release.touch()
        out, errors = waiter.communicate(timeout=600)
        assert waiter.returncode == 0, out + errors
    assert [v.number for v in versions(hub.resource_code)] == [1]
    assert latest(hub.resource_code).row_count == 150
    assert [r.status for r in sync_runs(hub.resource_code)] == ["failed", "published"]
    assert _holder(hub) is None


def test_a_holder_killed_on_another_host_is_taken_over_when_its_lease_runs_out(hub: Hub, tmp_path: Path) -> None:
    """Its process id means nothing on this host: only the lease, which its heartbeat no longer renews."""
    from sqlalchemy import select

    from registry.db import session_scope
    from registry.audit.models import AuditEvent

    go, release = tmp_path / "go", tmp_path / "release"
    go.touch()
    with _children() as started:
        holder = _child(RACER, str(hub.resource_id), hub.resource_code, "node-1.govshare.test", str(go), str(release))
        started.append(holder)
        assert holder.stdout.readline().strip() == "won"
        sigkill(holder)
    assert _holder(hub) == "node-1.govshare.test"

    done = subprocess.run([sys.executable, "-c", CLI_ON_HOST, "node-2.govshare.test", "sync", hub.resource_code,
                           "--wait", "600"], cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=900,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [v.number for v in versions(hub.resource_code)] == [1]
    with session_scope() as session:
        (takeover,) = [e.detail for e in session.scalars(select(AuditEvent).where(
            AuditEvent.action == "run.lock_takeover", AuditEvent.resource_code == hub.resource_code))]
    assert takeover["abandoned_run"] == "run-of-node-1.govshare.test"
    assert takeover["holder"]["host"] == "node-1.govshare.test" and "heartbeat missed" in takeover["reason"]
