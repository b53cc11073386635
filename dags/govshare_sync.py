"""Airflow DAG file: one sync DAG per catalogue resource that has a source (built by pipeline.airflow_dags)."""

from pipeline.airflow_dags import build_sync_dags

globals().update(build_sync_dags())
