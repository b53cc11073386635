"""Airflow DAG file: one sync DAG per catalogue resource that has a source (built by pipeline.orchestration)."""

from pipeline.orchestration import build_sync_dags

globals().update(build_sync_dags())
