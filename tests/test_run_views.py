"""What an operator reads of the sync runs (`govshare runs`, 同步运行记录): a run killed mid-way is shown as
interrupted with what happens next, not as still running until the resource's next run happens to close it; a
mistyped status filter is refused, never an empty list that reads as "no failed runs"."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from samples.loaders import load_sqlite
from tests.helpers import Hub, hub_child, register_resource, sigkill, sync_runs, wait_for_marker

# Stages a sync of the resource and stops for good once its first part is written (the marker): a run in the
# middle of its work, holding the resource's lock from this process.
PAUSED_STAGE = """
import sys, time
from pathlib import Path
import pipeline.staging as staging
marker = Path(sys.argv[1])
original = staging.StagedRun.save
def paused(*args, **kwargs):
    marker.write_text("paused")
    time.sleep(600)
    return original(*args, **kwargs)
staging.StagedRun.save = paused
from pipeline.sync import sync_resource
sync_resource(resource_code={code!r})
"""


@pytest.fixture
def hub(hub_home: Path, tmp_path: Path) -> Hub:
    database = tmp_path / "biz.db"
    load_sqlite(database, rows=30, seed=5)
    return register_resource(kind="sqlite", config={"path": str(database)})


def _runs(*args: str) -> tuple[int, str]:
    from typer.testing import CliRunner

    from cli.main import app

    shown = CliRunner().invoke(app, ["runs", *args], env={"COLUMNS": "250"})
    return shown.exit_code, shown.output


def test_a_run_killed_mid_way_is_shown_as_interrupted(hub: Hub, tmp_path: Path) -> None:
    """A sync killed with SIGKILL while staging stayed 暂存中 in `govshare runs`, with no error and no finish, and
    `--status failed` did not list it, until the resource's next run took its lock over."""
    marker = tmp_path / "paused"
    with hub_child(PAUSED_STAGE.format(code=hub.resource_code), str(marker)) as child:
        wait_for_marker(child, marker, "reached its staging")
        sigkill(child)
    (killed,) = sync_runs(hub.resource_code)
    assert killed.status in ("staging", "staged")  # the registry still says live: nobody has closed it yet

    code, output = _runs(hub.resource_code)
    assert code == 0, output
    row = next(line for line in output.splitlines() if killed.id[:8] in line)
    assert "已中断" in row and "暂存中" not in row and "已暂存" not in row, output
    assert "进程已不在" in output and "下一次运行" in output, output
    code, failed = _runs("--status", "failed")
    assert code == 0 and killed.id[:8] in failed, failed
    code, interrupted = _runs("--status", "interrupted")
    assert code == 0 and killed.id[:8] in interrupted, interrupted


def test_a_run_still_working_is_shown_as_running(hub: Hub) -> None:
    """The other side: a run whose process lives and holds the lock is not called interrupted."""
    import uuid

    from pipeline.run.lifecycle import begin, discard

    run_id = uuid.uuid4().hex
    begin(resource_id=hub.resource_id, resource_code=hub.resource_code, run_id=run_id, mode="full")
    try:
        code, output = _runs(hub.resource_code)
        row = next(line for line in output.splitlines() if run_id[:8] in line)
        assert "暂存中" in row and "已中断" not in output, output
        assert run_id[:8] not in _runs("--status", "failed")[1]
    finally:
        discard(resource_id=hub.resource_id, run_id=run_id, exc=RuntimeError("test over"))


# Each command with a --status filter, a typo of one of its statuses, and a status it offers.
STATUS_FILTERS = {
    "runs": (["runs", "--status", "fail"], "failed"),
    "violation list": (["violation", "list", "--status", "opened"], "open"),
    "rectification list": (["rectification", "list", "--status", "late"], "overdue"),
    "apply list": (["apply", "list", "--status", "aproved"], "approved"),
    "quarantine list": (["quarantine", "list", "101001/0001", "--status", "opened"], "replayed"),
    "ticket list": (["ticket", "list", "--status", "closd"], "closed"),
    "notices list": (["notices", "list", "--status", "fail"], "failed"),
}


@pytest.mark.parametrize("command", sorted(STATUS_FILTERS))
def test_a_mistyped_status_is_refused_with_the_statuses_there_are(hub_home: Path, command: str) -> None:
    """`govshare runs --status fail` printed an empty table, which reads as "no run failed"; so did `apply list`,
    `quarantine list`, `ticket list` and `notices list` with any text at all."""
    from typer.testing import CliRunner

    from cli.main import app

    args, offered = STATUS_FILTERS[command]
    shown = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert shown.exit_code == 2, shown.output
    assert "Traceback" not in shown.output and re.search(r"--status", shown.output), shown.output
    assert "不是可选的值" in shown.output and offered in shown.output, shown.output


def test_a_failed_run_shows_its_whole_reason_with_what_to_do(hub_home: Path) -> None:
    """`govshare runs` cut each error at 120 characters: a source refusing the hub's login read "…the source
    refused the hub (cann", and the command to fix it (`govshare source edit …`), at the end, never showed."""
    from core.errors import GovshareError
    from pipeline.sync import sync_resource

    hub = register_resource(kind="postgresql", config={"host": "127.0.0.1", "port": 5432, "dbname": "no_such_db",
                                                       "user": "no_such_role_for_runs"})
    with pytest.raises(GovshareError):
        sync_resource(resource_code=hub.resource_code)
    (failed,) = sync_runs(hub.resource_code)
    assert failed.status == "failed" and "govshare source edit" in failed.error  # recorded whole

    code, output = _runs("--status", "failed")
    shown = re.sub(r"[│\s]+", " ", output)
    assert code == 0 and "no_such_role_for_runs" in shown, output
    assert "check the credential and grants (`govshare source edit" in shown, output


@pytest.mark.parametrize("broken", ["table dropped", "file removed", "not a database"])
def test_a_sqlite_sources_failed_run_says_why_in_chinese_too(hub: Hub, tmp_path: Path, broken: str) -> None:
    """A failed run of a SQLite source was recorded in English alone ("table 'enterprises' does not exist"),
    where the other connectors' runs say it in Chinese with the English beside it."""
    import sqlite3

    from core.errors import GovshareError, has_chinese, has_english
    from pipeline.sync import sync_resource

    database = tmp_path / "biz.db"
    if broken == "table dropped":
        with sqlite3.connect(database) as connection:
            connection.execute("DROP TABLE enterprises")
    elif broken == "file removed":
        database.unlink()
    else:
        database.write_bytes(b"not a sqlite database at all " * 200)
    with pytest.raises(GovshareError):
        sync_resource(resource_code=hub.resource_code)
    (failed,) = sync_runs(hub.resource_code)
    assert failed.status == "failed" and has_chinese(failed.error) and has_english(failed.error), failed.error
