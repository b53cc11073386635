"""Run sync DAGs through Airflow's own dag.test(), in a process configured for the embedded default.

Used by `govshare demo` and the tests: `python -m pipeline.airflow_runner DAG_ID [DAG_ID ...]`.
Airflow's home, metadata database (SQLite) and DAGs folder come from the environment set by
`airflow_environment()`, so Airflow is configured before it is imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

DAGS_FOLDER = Path(__file__).resolve().parents[1] / "dags"
TASKS_MARK = "TASK_STATES "


def _state(state) -> str:  # noqa: ANN001 - an Airflow state enum, or None
    return str(getattr(state, "value", state))


def airflow_environment(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "AIRFLOW_HOME": str(home.resolve()),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    })
    return env


def run_dags(dag_ids: list[str], *, airflow_home: Path, tasks: dict[str, dict] | None = None) -> dict[str, str]:
    """{dag_id: final state}; migrates Airflow's metadata database first. ``tasks``, when given, is filled with
    each run's task instances: {dag_id: {task_id: {"state", "try_number"}}}."""
    airflow_home.mkdir(parents=True, exist_ok=True)
    env = airflow_environment(airflow_home)
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    done = subprocess.run([sys.executable, "-m", "pipeline.airflow_runner", *dag_ids], env=env,
                          capture_output=True, text=True)
    for line in done.stdout.splitlines():
        if line.startswith(TASKS_MARK) and tasks is not None:
            tasks.update(json.loads(line[len(TASKS_MARK):]))
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"Airflow run failed (exit {done.returncode}):\n{done.stderr[-4000:]}")


def _main(dag_ids: list[str]) -> int:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    if bag.import_errors:
        print(json.dumps({"import_errors": {k: str(v) for k, v in bag.import_errors.items()}}), file=sys.stderr)
        return 1
    states, tasks = {}, {}
    for dag_id in dag_ids:
        dag = bag.get_dag(dag_id)
        if dag is None:
            states[dag_id] = "missing"
            continue
        run = dag.test()
        states[dag_id] = _state(run.state)
        tasks[dag_id] = {ti.task_id: {"state": _state(ti.state), "try_number": ti.try_number}
                         for ti in run.get_task_instances()}
    print(TASKS_MARK + json.dumps(tasks))
    print(json.dumps(states))
    return 0 if all(s == "success" for s in states.values()) else 1


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
