"""Airflow DAG file: housekeeping (expired staging, version retention) and the update-notice delivery sweep."""

from pipeline.airflow_dags import build_maintenance_dags

globals().update(build_maintenance_dags())
