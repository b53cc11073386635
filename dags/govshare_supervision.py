"""Airflow DAG file: supervision's daily run (articles 10, 14, 22, 23).

clocks (application reminders and overdue flags, rectification deadlines) >> violation detection >> the current
quarter's evaluation; beside them the sharing check (every grant in force has its basis) and the audit anchor
(the head of the sealed chain written outside the database). Thin: every task calls registry/supervision/daily.py, imported inside the task, so parsing
this file opens no connection and reads no file.
"""

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task

DEFAULT_ARGS = {"owner": "govshare", "retries": 2, "retry_delay": timedelta(minutes=5)}


@dag(dag_id="govshare_supervision", description="监督检查: 时限提醒与逾期标记、违规发现、本季度评估",
     schedule="0 7 * * *", start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"), catchup=False,
     max_active_runs=1, default_args=DEFAULT_ARGS, tags=["govshare", "supervision"])
def supervision() -> None:
    @task(execution_timeout=timedelta(minutes=30))
    def clocks() -> dict:
        from registry.supervision.daily import run_clocks

        return run_clocks()

    @task(execution_timeout=timedelta(minutes=60))
    def violations() -> dict:
        from registry.supervision.daily import run_detection

        return run_detection()

    @task(execution_timeout=timedelta(minutes=60))
    def evaluation() -> dict:
        from registry.supervision.daily import run_scheduled_evaluation

        return run_scheduled_evaluation()

    @task(execution_timeout=timedelta(minutes=30))
    def sharing_check() -> dict:
        from registry.supervision.daily import run_sharing_check

        found = run_sharing_check()
        if found["baseless_grants"] or found["edited_rows"] or found["unlisted_columns"]:
            # recorded and audited; a failed task makes one look
            raise RuntimeError(f"grants in force without a basis: {found['baseless_grants']}, rows edited outside the "
                               f"hub: {found['edited_rows']}, grants naming columns their entry does not list: "
                               f"{found['unlisted_columns']} (govshare sharing check)")
        return found

    @task(execution_timeout=timedelta(minutes=30))
    def audit_anchor() -> dict:
        from registry.supervision.daily import run_audit_anchor

        return run_audit_anchor()  # fails (and says why) when the log does not verify

    clocks() >> violations() >> evaluation()
    sharing_check() >> audit_anchor()


supervision()
