"""Decimals of more than 38 digits (PostgreSQL numeric(50,6), MySQL DECIMAL(50,6); Arrow's decimal256) through
every step DuckDB does for the hub. DuckDB reads such a Parquet column as a wrong double (-0.01 came back as
-167755.38): a records page of the version failed with an internal error, and a full refresh compared garbage.
Here the page shows the source's values exactly, a change in the last decimal place is found, and a wide
decimal key has its deletes and duplicates found exactly (pipeline/duckdb_parts.py)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import requests

from tests.helpers import (
    bearer,
    latest,
    pg_execute,
    pg_scratch_schema,
    pg_source_config,
    read_version,
    register_resource,
    running_api,
)
from tests.services import require_postgres

HUGE = Decimal("12345678901234567890123456789012345678.123456")


def test_wide_decimals_are_paged_and_compared_exactly(hub_home: Path) -> None:
    from pipeline.sync import sync_resource

    dsn = require_postgres()
    with pg_scratch_schema(dsn) as schema:
        table = f'"{schema}".ledger'
        pg_execute(dsn, f"CREATE TABLE {table} (id int PRIMARY KEY, amount numeric(50, 6), updated_at timestamptz)")
        pg_execute(dsn, f"INSERT INTO {table} SELECT g, {HUGE} + g * 0.000001 - (g % 3) * 1e30, "
                        f"timestamptz '2026-03-01 08:00+08' FROM generate_series(1, 500) AS g")
        pg_execute(dsn, f"UPDATE {table} SET amount = -0.01 WHERE id = 7")
        config, secret = pg_source_config(dsn, schema=schema)
        hub = register_resource(kind="postgresql", config=config, secret=secret, table="ledger", subscribe=True,
                                columns=["id", "amount", "updated_at"])
        sync_resource(resource_code=hub.resource_code)
        source = {row[0]: row[1] for row in pg_execute(dsn, f"SELECT id, amount FROM {table}")}

        with running_api() as api:
            page = requests.get(f"{api.base_url}/api/v1/resources/{hub.resource_code}/records",
                                params={"limit": 1000}, headers=bearer(hub.token), timeout=30)
            assert page.status_code == 200, page.text
            assert {r["id"]: Decimal(r["amount"]) for r in page.json()["records"]} == source

        # one millionth more, 44 digits up: a full refresh finds exactly that row changed
        pg_execute(dsn, f"UPDATE {table} SET amount = amount + 0.000001 WHERE id = 42")
        report = sync_resource(resource_code=hub.resource_code, full=True)
        changes = latest(hub.resource_code).manifest["changes"]
        assert report.mode == "full" and (changes["inserted"], changes["updated"], changes["deleted"]) == (0, 1, 0)
        now = {row[0]: row[1] for row in pg_execute(dsn, f"SELECT id, amount FROM {table}")}
        published = read_version(latest(hub.resource_code))
        assert dict(zip(published.column("id").to_pylist(), published.column("amount").to_pylist())) == now
        assert now[42] != source[42] and str(now[42]).endswith(".123499") and now[7] == Decimal("-0.01")


def test_a_wide_decimal_key_has_its_deletes_and_duplicates_found_exactly(hub_home: Path) -> None:
    from pipeline.sync import sync_resource

    dsn = require_postgres()
    with pg_scratch_schema(dsn) as schema:
        table = f'"{schema}".accounts'
        # account numbers of 40 digits, neighbours one apart: a double cannot tell them from each other
        pg_execute(dsn, f"CREATE TABLE {table} (account numeric(40, 0) PRIMARY KEY, holder text, "
                        f"updated_at timestamptz)")
        pg_execute(dsn, f"INSERT INTO {table} SELECT 1e39 + g, '户' || g, timestamptz '2026-03-01 08:00+08' "
                        f"FROM generate_series(1, 300) AS g")
        config, secret = pg_source_config(dsn, schema=schema)
        hub = register_resource(kind="postgresql", config=config, secret=secret, table="accounts", key=("account",))
        first = sync_resource(resource_code=hub.resource_code)
        assert first.rows_published == 300 and first.rows_quarantined == 0  # no false duplicates

        pg_execute(dsn, f"DELETE FROM {table} WHERE account IN (1e39 + 5, 1e39 + 6)")
        pg_execute(dsn, f"UPDATE {table} SET holder = '改名', updated_at = timestamptz '2026-03-02 08:00+08' "
                        f"WHERE account = 1e39 + 7")
        second = sync_resource(resource_code=hub.resource_code)
        version = latest(hub.resource_code)
        changes = version.manifest["changes"]
        assert second.mode == "incremental" and version.manifest["key_scan"]["method"] == "anti-join"
        assert (changes["inserted"], changes["updated"], changes["deleted"]) == (0, 1, 2)
        accounts = set(read_version(version, sort_by="account").column("account").to_pylist())
        assert len(accounts) == 298 and Decimal(10**39 + 5) not in accounts and Decimal(10**39 + 7) in accounts
