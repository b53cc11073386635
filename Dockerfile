# syntax=docker/dockerfile:1
#
# One image for the whole govshare stack: the Airflow 3 components (api-server, scheduler,
# dag-processor, triggerer, init) and the hub's own API/CLI. The hub is installed into the image's
# Python so Airflow task runners can import its packages (pipeline, connectors, registry, ...) and the
# `govshare` console script is on PATH.
ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11
FROM ${AIRFLOW_IMAGE}

# The hub's data folder. A fresh named volume mounted here copies this directory's ownership, so the
# `airflow` user (uid 50000, gid 0) can write to it; group 0 gets the same rights (arbitrary-uid runs).
USER root
# PDFs (需求申请表, 评估定期通报) embed a subset of this TrueType Chinese font (schemas/pdf_font.py).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends fonts-wqy-microhei \
 && rm -rf /var/lib/apt/lists/*
RUN mkdir -p /var/lib/govshare/storage /var/lib/govshare/calendars \
 && chown -R airflow:0 /var/lib/govshare \
 && chmod -R g+rwX /var/lib/govshare

USER airflow
ENV GOVSHARE_HOME=/var/lib/govshare \
    GOVSHARE_STORAGE=/var/lib/govshare/storage \
    GX_ANALYTICS_ENABLED=False

COPY --chown=airflow:0 . /opt/govshare/src

# Pinning apache-airflow to the image's own version keeps pip from up- or downgrading Airflow while
# it resolves the hub's dependencies (the official "extend the image" recipe). asyncpg is needed by
# Airflow with a PostgreSQL metadata database.
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" /opt/govshare/src asyncpg

# DAGs baked in as a fallback; docker-compose.yml bind-mounts ./dags over this folder.
COPY --chown=airflow:0 dags/ /opt/airflow/dags/

WORKDIR /opt/airflow
