"""Credentials from an Airflow Connection, for sources whose config says ``{"airflow_conn_id": "..."}``.

An agency that already keeps its database logins in Airflow (a secrets backend, or ``AIRFLOW_CONN_<ID>``
variables) need not copy them into the hub: the source names the connection, and the connector asks Airflow
for it only when it connects. ``airflow`` is imported here, lazily, because importing it costs over a second
and DAG parsing, the CLI and the API must not pay for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.errors import ConfigError

CONN_ID_KEY = "airflow_conn_id"


@dataclass(frozen=True)
class AirflowCredentials:
    """The fields of an Airflow Connection a connector may use; ``password`` is never shown by repr."""

    conn_id: str
    conn_type: str | None = None
    host: str | None = None
    port: int | None = None
    login: str | None = None
    password: str | None = field(default=None, repr=False)
    schema: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


def uses_airflow_connection(config: dict[str, Any]) -> bool:
    return bool(config.get(CONN_ID_KEY))


def airflow_credentials(conn_id: str, *, source: str) -> AirflowCredentials:
    """Look the connection up through Airflow's secrets backends (environment variables first)."""
    from airflow.sdk import BaseHook

    try:
        connection = BaseHook.get_connection(conn_id)
    except Exception as exc:  # noqa: BLE001 - Airflow raises AirflowNotFoundException and friends
        # The message of a lookup failure names the id only; Airflow's own text may quote a URI with a password.
        raise ConfigError(f"source {source!r}: Airflow connection {conn_id!r} is not defined "
                          f"({type(exc).__name__}); define it in Airflow or as AIRFLOW_CONN_{conn_id.upper()}") from None
    return AirflowCredentials(
        conn_id=conn_id, conn_type=connection.conn_type, host=connection.host or None,
        port=int(connection.port) if connection.port else None, login=connection.login or None,
        password=connection.password or None, schema=connection.schema or None,
        extra=dict(connection.extra_dejson or {}))


def overlay(config: dict[str, Any], secret: dict[str, Any], *, source: str,
            mapping: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Config and secret with the Airflow connection's fields filled in where the source config names one.

    ``mapping`` maps connector config keys to connection fields (host, port, login, schema); the connection's
    password becomes ``secret["password"]``, and extra fields named like secret fields (e.g. ``token``,
    ``private_key``) join the secret. Explicit config values win over the connection's.
    """
    if not uses_airflow_connection(config):
        return config, secret
    creds = airflow_credentials(str(config[CONN_ID_KEY]), source=source)
    merged = dict(config)
    for key, attribute in mapping.items():
        value = getattr(creds, attribute)
        if value is not None and not merged.get(key):
            merged[key] = value
    sealed = dict(secret)
    if creds.password and "password" not in sealed:
        sealed["password"] = creds.password
    for key in ("token", "private_key", "passphrase"):
        if key in creds.extra and key not in sealed:
            sealed[key] = creds.extra[key]
    return merged, sealed


def required_unless_airflow(config: dict[str, Any], required: tuple[str, ...],
                            provided: tuple[str, ...]) -> tuple[str, ...]:
    """The config keys still required when an Airflow connection provides ``provided``."""
    if uses_airflow_connection(config):
        return tuple(key for key in required if key not in provided)
    return required
