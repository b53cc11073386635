"""The audit chain (审计链) stays one chain when several OS processes append at once on PostgreSQL: API
processes, Celery workers and the CLI each write through ``record_event`` (inside an action's transaction) or
the interface channel's group commit (``ChainWriter``). Afterwards `govshare audit verify` passes, every event
is there, and no two events claim the same predecessor (no fork)."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from itertools import pairwise
from pathlib import Path

from tests.helpers import REPO, child_env

WRITERS = 6
EVENTS_EACH = 40

# One writer process: waits at a barrier file so that all start together, then appends, alternating the
# two ways the hub writes the chain. Half of its record_event transactions also roll back an event (an
# action that failed): a rolled-back append must leave no gap and no fork.
WRITER = """
import sys, time
from pathlib import Path

from registry.audit.log import ChainWriter, record_event
from registry.db import engine_for, session_scope
from core.settings import get_settings

name, go, count = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
writer = ChainWriter(engine_for(get_settings().database_url))
while not go.exists():
    time.sleep(0.01)
for i in range(count):
    if i % 2:
        writer.append([{"actor": name, "action": "concurrency.batch", "detail": {"i": i}}])
    else:
        with session_scope() as session:
            record_event(session, actor=name, action="concurrency.single", detail={"i": i})
        try:
            with session_scope() as session:
                record_event(session, actor=name, action="concurrency.rolled_back", detail={"i": i})
                raise RuntimeError("the action failed")
        except RuntimeError:
            pass
writer.close()
"""


def test_concurrent_writers_leave_one_valid_chain(pg_hub_home: Path, tmp_path: Path) -> None:
    from sqlalchemy import func, select

    from registry.db import session_scope
    from registry.audit.models import AuditEvent

    with session_scope() as session:
        before = session.scalar(select(func.count()).select_from(AuditEvent))

    go = tmp_path / "go"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, f"writer-{n}", str(go), str(EVENTS_EACH)],
                                cwd=REPO, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True) for n in range(WRITERS)]
    go.touch()
    for writer in writers:
        _, errors = writer.communicate(timeout=600)
        assert writer.returncode == 0, errors[-3000:]

    with session_scope() as session:
        events = session.execute(select(AuditEvent.id, AuditEvent.actor, AuditEvent.action, AuditEvent.prev_hash,
                                        AuditEvent.hash).order_by(AuditEvent.id)).all()
    written = [e for e in events if e.actor.startswith("writer-")]
    # Nothing lost, nothing rolled back kept: every writer's events, each once.
    assert len(events) == before + WRITERS * EVENTS_EACH
    assert Counter(e.actor for e in written) == {f"writer-{n}": EVENTS_EACH for n in range(WRITERS)}
    assert not [e for e in written if e.action == "concurrency.rolled_back"]
    # The writers really interleaved (otherwise this test would prove nothing about concurrency).
    switches = sum(1 for a, b in pairwise(written) if a.actor != b.actor)
    assert switches >= WRITERS, f"the writers ran one after another ({switches} switches)"
    # One chain: each event follows the one before it, and no predecessor is claimed twice.
    assert [e.prev_hash for e in events[1:]] == [e.hash for e in events[:-1]]
    assert max(Counter(e.prev_hash for e in events).values()) == 1

    verified = subprocess.run([sys.executable, "-m", "cli.main", "audit", "verify"], cwd=REPO, env=child_env(),
                              capture_output=True, text=True, timeout=300, check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr
