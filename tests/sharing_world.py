"""A small sharing world for the sharing workflow tests: a provider with four resources (one per sharing situation), a
consumer, a third agency, the oversight agencies, people in every role, API tokens, a real published version of
each resource, and the grants the workflows made (subscription, partial approval with a row condition and a
secrecy agreement). Everything goes through the service functions, as the CLI and API do."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from tests.helpers import CONSUMER, OTHER_PROVIDER, PROVIDER, ensure_agency, person_of, publish_entry

OFFICE = ("113100000024240108", "上海市人民政府办公厅")
COMMISSION = ("11310000002424021C", "上海市经济和信息化委员会")
ROLES = ("agency_admin", "cataloguer", "reviewer", "data_admin", "coordination_office", "supervisor", "operator")
CHANNELS = ("interface", "file", "browse", "offline")
PASSWORD = "correct-horse-battery"
APPROVED_ITEMS = ["id", "name", "legal_rep", "legal_rep_id", "status"]
APPROVED_STATUSES = ["存续", "在业"]
PERSONAL_COLUMNS = ["legal_rep", "legal_rep_id"]


@dataclass
class World:
    resources: dict[str, str]  # "unconditional" | "conditional" | "pending" | "not_shared" -> resource code
    tokens: dict[str, str] = field(default_factory=dict)  # "system:<agency key>" or "<agency key>:<role>"
    application: str = ""  # the approved conditional application's number
    pending_application: str = ""
    agencies: dict[str, str] = field(default_factory=dict)  # key -> agency code


def _source(session, database: Path, agency_code: str) -> str:  # noqa: ANN001
    from registry.catalog.sources import add_source

    name = f"sqlite-{uuid.uuid4().hex[:6]}"
    add_source(session, name=name, agency=agency_code, kind="sqlite", config={"path": str(database)}, actor="test")
    return name


def build_world(database: Path, tmp_path: Path) -> World:
    from pipeline.sync import sync_resource
    from registry.sharing.agreements import add_agreement, set_sensitivity
    from registry.sharing.applications import apply, decide
    from registry.people.auth import console
    from registry.db import session_scope
    from registry.catalog.resources import add_resource
    from registry.sharing.subscriptions import subscribe
    from registry.people.tokens import issue_token
    from registry.people.users import add_user, login

    admin = console("test")
    world = World(resources={}, agencies={"provider": PROVIDER[0], "consumer": CONSUMER[0],
                                          "other": OTHER_PROVIDER[0], "office": OFFICE[0],
                                          "commission": COMMISSION[0]})
    with session_scope() as session:
        for code, name in (PROVIDER, CONSUMER, OTHER_PROVIDER, OFFICE, COMMISSION):
            ensure_agency(session, code, name)
        source = _source(session, database, PROVIDER[0])
        kinds = {"unconditional": ("unconditional", ""), "conditional": ("conditional", "用于登记核验，须签订保密协议"),
                 "pending": ("conditional", "仅限执法用途"),
                 "not_shared": ("not_shared", "《中华人民共和国保守国家秘密法》第九条")}
        for index, (key, (sharing, condition)) in enumerate(kinds.items()):
            resource = add_resource(session, name=f"企业登记信息{index}", agency=PROVIDER[0], classification="101001",
                                    source=source, table="enterprises", primary_key=["id"], cursor_column="updated_at",
                                    sharing_type=sharing, sharing_condition=condition,
                                    sharing_modes=list(CHANNELS), actor="test")
            world.resources[key] = resource.code
            publish_entry(session, resource.code)
    for code in world.resources.values():
        sync_resource(resource_code=code, after=())
    scan = tmp_path / "signed-agreement.pdf"
    scan.write_bytes(b"%PDF-1.4 signed scan of the secrecy agreement " + uuid.uuid4().bytes)
    with session_scope() as session:
        subscribe(session, resource_code=world.resources["unconditional"], agency=CONSUMER[0], purpose="就业登记核验",
                  by=admin)
        set_sensitivity(session, resource_code=world.resources["conditional"], personal_privacy=True,
                        personal_columns=PERSONAL_COLUMNS, by=admin)
        application = apply(session, resource_code=world.resources["conditional"], consumer=CONSUMER[0],
                            scope="本市存续企业", purpose="社保登记核验", items=[*APPROVED_ITEMS, "reg_capital"],
                            row_filter={"column": "status", "op": "in", "values": APPROVED_STATUSES}, by=admin)
        decide(session, number=application.number, outcome="partial", approved_items=APPROVED_ITEMS,
               reasons="注册资本不属于核验所需数据项", by=person_of(session, PROVIDER[0], "data_admin"))
        add_agreement(session, resource_code=world.resources["conditional"], consumer=CONSUMER[0],
                      parties=[PROVIDER[1], CONSUMER[1]], signed_on=date(2026, 1, 5), valid_until=date(2030, 12, 31),
                      scan=scan, by=admin)
        pending = apply(session, resource_code=world.resources["pending"], consumer=CONSUMER[0], scope="全部",
                        purpose="执法检查", items=["id", "name"], by=admin)
        world.application, world.pending_application = application.number, pending.number
        for key in ("provider", "consumer", "other"):
            world.tokens[f"system:{key}"] = issue_token(session, agency=world.agencies[key], name=f"sys-{key}",
                                                        days=30, actor="test")
        for key in ("provider", "consumer"):
            for role in ROLES:
                add_user(session, username=f"{key}-{role}", agency=world.agencies[key], roles=[role],
                         password=PASSWORD, by=admin)
        add_user(session, username="other-data_admin", agency=OTHER_PROVIDER[0], roles=["data_admin"],
                 password=PASSWORD, by=admin)
        add_user(session, username="office", agency=OFFICE[0], roles=["coordination_office"], password=PASSWORD,
                 by=admin)
        add_user(session, username="commission", agency=COMMISSION[0], roles=["supervisor"], password=PASSWORD,
                 by=admin)
    with session_scope() as session:
        for key in ("provider", "consumer"):
            for role in ROLES:
                world.tokens[f"{key}:{role}"] = login(session, username=f"{key}-{role}", password=PASSWORD)
        world.tokens["other:data_admin"] = login(session, username="other-data_admin", password=PASSWORD)
    return world


def small_world(tmp_path: Path, *, rows: int, seed: int) -> World:
    """A sharing world over a fresh SQLite business database of ``rows`` enterprises."""
    from samples.loaders import load_sqlite

    database = tmp_path / "market.db"
    load_sqlite(database, rows=rows, seed=seed)
    return build_world(database, tmp_path)
