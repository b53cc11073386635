"""The shipped contract schemas/contracts/enterprises.yaml is the demo's: attached to the demo's enterprise
resource (a SQLite source, where dates and times are text), a full and an incremental sync publish every row,
with the contract's types, and quarantine nothing."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from tests.helpers import latest, read_version


def test_the_demo_syncs_with_the_shipped_contract_attached(hub_home: Path) -> None:
    from cli.demo import ENTERPRISE_ROWS, _register
    from pipeline.sync import sync_resource
    from registry.exchange.contracts import attach_contract
    from registry.db import session_scope
    from registry.catalog.resources import get_resource
    from registry.exchange.streams import verify_stream
    from samples.demo_sources import change_market_rows

    (hub_home / "sources").mkdir(parents=True, exist_ok=True)
    made = _register(hub_home)
    code = made["enterprises"]
    with session_scope() as session:
        contract = attach_contract(session, resource_code=code, name="enterprises", actor="test")
        assert verify_stream(get_resource(session, code=code)) is None  # the source has every declared column

    report = sync_resource(resource_code=code)
    assert (report.version, report.rows_read, report.rows_quarantined) == (1, ENTERPRISE_ROWS, 0)
    version = latest(code)
    schema = read_version(version).schema
    # SQLite keeps dates and instants as text; the contract reads them as the types it declares.
    assert schema.field("established").type == pa.date32()
    assert schema.field("updated_at").type == pa.timestamp("us", tz="UTC")
    assert pa.types.is_decimal(schema.field("reg_capital").type)
    assert [c.name for c in contract.columns] == schema.names

    changed = change_market_rows(Path(made["market_db"]), count=25)
    report = sync_resource(resource_code=code)
    assert report.mode == "incremental" and report.rows_quarantined == 0
    assert latest(code).manifest["changes"]["updated"] == changed == 25
    addresses = read_version(latest(code)).column("address").to_pylist()
    assert sum(a.endswith("（迁址）") for a in addresses) == 25
    assert report.after["errors"] == {} and report.after["expectations"]["status"] in ("passed", "failed")
