"""Setup shared by the delivery-channel tests: a synced resource offered on every channel, a grant of
some columns and rows to one consumer, a consumer without a grant, and the real API on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from samples.loaders import load_sqlite
from tests.helpers import (
    ApiServer,
    Hub,
    bearer,
    ensure_agency,
    issue_token,
    register_resource,
)

ROWS = 1200
GRANTED = ["id", "uscc", "name", "status", "reg_capital"]
ROW_FILTER = {"column": "status", "op": "in", "values": ["存续", "在业"]}
DENIED_AGENCY = ("113100000024220133", "上海市统计局")
ALL_MODES = ["interface", "file", "browse", "offline"]


@dataclass
class Delivery:
    hub: Hub
    api: ApiServer | None
    denied_token: str
    database: Path

    def url(self, path: str) -> str:
        assert self.api is not None
        return f"{self.api.base_url}{path}"

    def get(self, path: str, *, token: str | None = None, **kwargs) -> requests.Response:
        headers = kwargs.pop("headers", {}) or {}
        if token:
            headers.update(bearer(token))
        return requests.get(self.url(path), headers=headers, timeout=60, **kwargs)


def grant(resource_code: str, agency_code: str, *, columns: list[str] | None = GRANTED,
          row_filter: dict | None = ROW_FILTER, purpose: str = "就业登记核验") -> int:
    from registry.people.agencies import get_agency
    from registry.people.auth import console
    from registry.db import session_scope
    from registry.sharing.grants import create_grant
    from registry.catalog.resources import get_resource

    with session_scope() as session:
        made = create_grant(session, resource=get_resource(session, code=resource_code),
                            agency=get_agency(session, ref=agency_code), origin="approval", purpose=purpose,
                            by=console("test"), columns=columns, row_filter=row_filter)
        return made.id


def set_modes(resource_code: str, modes: list[str]) -> None:
    from registry.db import session_scope
    from registry.catalog.resources import get_resource

    with session_scope() as session:
        get_resource(session, code=resource_code).sharing_modes = list(modes)


def make_delivery(tmp_path: Path, *, rows: int = ROWS, serve: bool = True) -> Delivery:
    """A resource synced once, on every channel; the consumer granted GRANTED columns of the rows in
    ROW_FILTER; another agency with a token and no grant."""
    from pipeline.sync import sync_resource
    from registry.db import session_scope

    database = tmp_path / "market.db"
    load_sqlite(database, rows=rows, seed=51)
    hub = register_resource(kind="sqlite", config={"path": str(database)}, sharing_type="conditional",
                            sharing_condition="仅限就业登记核验")
    set_modes(hub.resource_code, ALL_MODES)
    sync_resource(resource_code=hub.resource_code)
    grant(hub.resource_code, hub.consumer_code)
    with session_scope() as session:
        ensure_agency(session, *DENIED_AGENCY)
    denied = issue_token(DENIED_AGENCY[0])
    api = ApiServer().start() if serve else None
    return Delivery(hub=hub, api=api, denied_token=denied, database=database)


@contextmanager
def delivery_hub(tmp_path: Path, **kwargs) -> Iterator[Delivery]:
    made = make_delivery(tmp_path, **kwargs)
    try:
        yield made
    finally:
        if made.api is not None:
            made.api.stop()


def expected_rows(version, *, columns: list[str] = GRANTED, statuses=("存续", "在业")) -> list[dict]:
    """The rows a grant of GRANTED/ROW_FILTER lets through, read straight from the published files."""
    from tests.helpers import read_version

    table = read_version(version)
    rows = [r for r in table.to_pylist() if r["status"] in statuses]
    return [{c: r[c] for c in columns} for r in rows]
