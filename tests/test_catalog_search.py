"""Article 15 on SQLite and PostgreSQL registries: search of the published catalogue (Chinese keywords over
names, abstracts and data item names; filters), the interface services registered for entries offered through
the interface mode (a valid OpenAPI 3 document typed from the data items), and the DCAT JSON-LD export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.helpers import (
    CONSUMER,
    OTHER_PROVIDER,
    PROVIDER,
    bearer,
    ensure_agency,
    issue_token,
)

ENTERPRISES = {
    "classification": "101001", "name": "企业基本信息", "abstract": "本市登记注册企业的登记信息",
    "sharing_type": "conditional", "sharing_condition": "仅用于行政审批", "sharing_modes": ["interface", "file"],
    "update_cycle": "daily", "release_date": "2026-01-05",
    "data_items": [
        {"name": "企业名称", "column": "name", "data_type": "string", "length": 200},
        {"name": "统一社会信用代码", "column": "uscc", "data_type": "string", "length": 18, "subject_id": "uscc"},
        {"name": "注册资本", "column": "reg_capital", "data_type": "decimal"},
        {"name": "成立日期", "column": "established", "data_type": "date"},
        {"name": "更新时间", "column": "updated_at", "data_type": "timestamp"},
        {"name": "从业人数", "column": "staff", "data_type": "integer"},
        {"name": "是否存续", "column": "active", "data_type": "boolean"},
    ],
}
PERMITS = {
    "classification": "101002", "name": "食品经营许可", "abstract": "食品经营许可证的发放信息",
    "sharing_type": "unconditional", "sharing_modes": ["file"], "update_cycle": "weekly",
    "data_items": [{"name": "许可证编号", "column": "permit_no", "data_type": "string"},
                   {"name": "经营者统一社会信用代码", "column": "holder_uscc", "data_type": "string"}],
}
FOUNDATIONS = {
    "classification": "201003", "name": "社会团体登记", "abstract": "社会团体的成立、变更和注销登记",
    "sharing_type": "unconditional", "sharing_modes": ["interface"], "update_cycle": "monthly",
    "data_items": [{"name": "团体名称", "column": "org_name", "data_type": "string"}],
}
DRAFT_ONLY = dict(PERMITS, classification="101009", name="企业年报草稿", abstract="尚未发布")


@pytest.fixture(params=["sqlite", "postgresql"])
def registry(request: pytest.FixtureRequest) -> Path:
    return request.getfixturevalue("hub_home" if request.param == "sqlite" else "pg_hub_home")


def _people() -> None:
    from registry.db import session_scope
    from registry.people.persons import add_person, designate

    with session_scope() as session:
        for code, name in (PROVIDER, OTHER_PROVIDER, CONSUMER):
            ensure_agency(session, code, name)
        for agency, prefix in ((PROVIDER[0], "scjg"), (OTHER_PROVIDER[0], "mzj")):
            add_person(session, agency=agency, account=f"{prefix}.cat", name=f"{prefix}编目", actor="test")
            designate(session, account=f"{prefix}.cat", role="cataloguer", actor="test")
            add_person(session, agency=agency, account=f"{prefix}.rev", name=f"{prefix}审核", actor="test")
            designate(session, account=f"{prefix}.rev", role="reviewer", actor="test")


def _compile(content: dict, *, agency: str = PROVIDER[0], code: str | None = None, prefix: str = "scjg") -> str:
    from registry.catalog.entries import upsert_entry
    from registry.db import session_scope
    from schemas.catalog_metadata import CatalogEntryData

    with session_scope() as session:
        revision = upsert_entry(session, agency=agency, data=CatalogEntryData.model_validate(content), code=code,
                                author=f"{prefix}.cat", actor="test")
        return revision.resource.code


def _publish(code: str, prefix: str = "scjg") -> None:
    from registry.catalog.review import (
        record_confidentiality_review,
        review_revision,
        submit_revision,
    )
    from registry.db import session_scope

    with session_scope() as session:
        submit_revision(session, code=code, account=f"{prefix}.cat")
        record_confidentiality_review(session, code=code, account=f"{prefix}.rev", passed=True)
        review_revision(session, code=code, account=f"{prefix}.rev", approve=True)


def _catalogue() -> dict[str, str]:
    _people()
    codes = {"enterprises": _compile(ENTERPRISES), "permits": _compile(PERMITS),
             "foundations": _compile(FOUNDATIONS, agency=OTHER_PROVIDER[0], prefix="mzj"),
             "draft": _compile(DRAFT_ONLY)}
    _publish(codes["enterprises"])
    _publish(codes["permits"])
    _publish(codes["foundations"], "mzj")
    return codes


def _search(**filters: object) -> list[str]:
    from registry.catalog.search import search_catalog
    from registry.db import session_scope

    with session_scope() as session:
        return [hit.code for hit in search_catalog(session, **filters).hits]


def test_search_finds_chinese_words_in_published_entries_only(registry: Path) -> None:
    codes = _catalogue()
    assert _search(keyword="企业") == [codes["enterprises"]]  # 企业基本信息; 企业年报草稿 is not published
    assert _search(keyword="统一社会信用代码") == [codes["enterprises"], codes["permits"]]  # data item names
    assert _search(keyword="注销") == [codes["foundations"]]  # the abstract
    assert _search(keyword="许可 编号") == [codes["permits"]]  # every word must match
    assert _search(keyword="企业 团体") == []
    assert _search(keyword="草稿") == []
    assert _search(keyword="100%") == []  # LIKE wildcards in a keyword are plain characters
    assert _search(agency=OTHER_PROVIDER[1]) == [codes["foundations"]]
    assert _search(classification="101") == [codes["enterprises"], codes["permits"]]  # prefix
    assert _search(classification="101002") == [codes["permits"]]
    assert _search(sharing_type="unconditional") == [codes["permits"], codes["foundations"]]
    assert _search(sharing_type="有条件共享") == [codes["enterprises"]]
    assert _search(mode="interface") == [codes["enterprises"], codes["foundations"]]
    assert _search(mode="文件下载", keyword="信用") == [codes["enterprises"], codes["permits"]]


def test_search_shows_the_published_revision_while_an_edit_is_under_review(registry: Path) -> None:
    codes = _catalogue()
    _compile(dict(ENTERPRISES, name="法人基本信息"), code=codes["enterprises"])  # a draft revision 2
    assert _search(keyword="企业") == [codes["enterprises"]] and _search(keyword="法人") == []
    from registry.catalog.import_export import export_rows
    from registry.db import session_scope

    with session_scope() as session:
        published = {code: content["name"] for code, content, _, _ in export_rows(session, published_only=True,
                                                                                  actor="console:test")}
        latest = {code: content["name"] for code, content, _, _ in export_rows(session, agency=PROVIDER[0],
                                                                               actor="console:test")}
    assert published == {codes["enterprises"]: "企业基本信息", codes["permits"]: "食品经营许可",
                         codes["foundations"]: "社会团体登记"}
    assert latest[codes["enterprises"]] == "法人基本信息" and latest[codes["draft"]] == "企业年报草稿"
    _publish(codes["enterprises"])
    assert _search(keyword="法人") == [codes["enterprises"]] and _search(keyword="企业基本") == []


def test_interface_entry_gets_a_valid_openapi_service(registry: Path) -> None:
    from openapi_spec_validator import validate

    from core.errors import NotFound
    from registry.db import session_scope
    from registry.catalog.search import get_service, list_services

    codes = _catalogue()
    code = codes["enterprises"]
    with session_scope() as session:
        assert [s.code for s in list_services(session)] == [code, codes["foundations"]]  # not the file-only one
        service = get_service(session, code=code)
        document, invocation = service.openapi, service.invocation
    validate(document)  # raises on an invalid OpenAPI 3 document
    paths = document["paths"]
    assert set(paths) == {f"/api/v1/resources/{code}/lookup", f"/api/v1/resources/{code}/records"}
    lookup = paths[f"/api/v1/resources/{code}/lookup"]["get"]
    column = next(p for p in lookup["parameters"] if p["name"] == "column")
    assert column["schema"]["default"] == "uscc"  # the item that identifies a subject is the key
    fields = document["components"]["schemas"]["Record"]["properties"]
    assert fields["uscc"]["type"] == "string" and fields["uscc"]["maxLength"] == 18
    assert fields["staff"]["type"] == "integer" and fields["active"]["type"] == "boolean"
    assert fields["established"]["format"] == "date" and fields["updated_at"]["format"] == "date-time"
    assert fields["reg_capital"] == {**fields["reg_capital"], "type": "string", "format": "decimal"}
    assert fields["name"]["description"] == "企业名称"
    assert "lookup?column=uscc" in invocation
    with session_scope() as session, pytest.raises(NotFound, match="没有已注册的接口服务"):
        get_service(session, code=codes["permits"])
    # a published revision without the interface mode withdraws the service
    _compile(dict(ENTERPRISES, sharing_modes=["file"]), code=code)
    _publish(code)
    with session_scope() as session:
        assert [s.code for s in list_services(session)] == [codes["foundations"]]


def test_dcat_export_describes_each_published_entry(registry: Path) -> None:
    from registry.catalog.dcat import dcat_catalog
    from registry.db import session_scope

    codes = _catalogue()
    with session_scope() as session:
        document = dcat_catalog(session, base_url="https://data.example.gov.cn/")
    assert document["@type"] == "dcat:Catalog"
    assert document["@context"]["dcat"] == "http://www.w3.org/ns/dcat#"
    assert document["@context"]["dct"] == "http://purl.org/dc/terms/"
    datasets = {d["dct:identifier"]: d for d in document["dcat:dataset"]}
    assert set(datasets) == {codes["enterprises"], codes["permits"], codes["foundations"]}
    enterprises = datasets[codes["enterprises"]]
    assert enterprises["@type"] == "dcat:Dataset"
    assert enterprises["dct:title"] == {"@value": "企业基本信息", "@language": "zh"}
    assert enterprises["dct:publisher"]["dct:identifier"] == PROVIDER[0]
    assert enterprises["dcat:theme"]["skos:notation"] == "101001"
    assert enterprises["dct:accrualPeriodicity"]["@id"].endswith("/frequency/DAILY")
    assert enterprises["dct:issued"]["@value"] == "2026-01-05"
    distributions = {d["govshare:sharingMode"]: d for d in enterprises["dcat:distribution"]}
    assert set(distributions) == {"interface", "file"}
    service = distributions["interface"]["dcat:accessService"]
    assert service["@type"] == "dcat:DataService"
    assert service["dcat:endpointDescription"]["@id"] == (
        f"https://data.example.gov.cn/api/v1/catalog/{codes['enterprises']}/openapi.json")
    assert "text/csv" in distributions["file"]["dcat:mediaType"]
    assert datasets[codes["permits"]]["dct:accrualPeriodicity"]["@id"].endswith("/WEEKLY")


def test_a_not_shared_entry_offers_no_way_to_get_its_data(registry: Path) -> None:
    """不予共享 (article 8): an entry compiled not shared but with 共享方式 接口/文件 filled in got an interface
    service registered on publication (listed with its OpenAPI invocation), matched the interface-mode search,
    and DCAT advertised its interface endpoint and download URLs to harvesters. It offers none of them now; its
    legal basis is still shown."""
    from registry.catalog.dcat import dcat_catalog
    from registry.catalog.search import list_services, search_catalog
    from registry.db import session_scope

    _people()
    closed = _compile(dict(FOUNDATIONS, classification="101005", name="涉密企业名录", sharing_type="not_shared",
                           sharing_condition="《中华人民共和国保守国家秘密法》第九条", sharing_modes=["interface", "file"]))
    _publish(closed)
    with session_scope() as session:
        assert [s.code for s in list_services(session)] == []
        [dataset] = dcat_catalog(session, base_url="https://data.example.gov.cn")["dcat:dataset"]
    assert _search(mode="interface") == [] and _search(mode="file") == [] and _search(keyword="涉密") == [closed]
    with session_scope() as session:
        [hit] = search_catalog(session, keyword="涉密").hits
    assert (hit.sharing_modes, hit.interface_service) == ([], None)
    assert dataset["dcat:distribution"] == []
    assert dataset["govshare:sharingCondition"]["@value"] == "《中华人民共和国保守国家秘密法》第九条"


def test_search_openapi_and_dcat_over_the_api_and_cli(registry: Path) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from cli.main import app

    codes = _catalogue()
    token = issue_token(CONSUMER[0])
    client = TestClient(create_app())
    assert client.get("/api/v1/catalog/search", params={"q": "企业"}).status_code == 401
    found = client.get("/api/v1/catalog/search", params={"q": "企业", "mode": "interface"}, headers=bearer(token))
    assert found.status_code == 200, found.text
    body = found.json()
    assert body["total"] == 1 and body["hits"][0]["code"] == codes["enterprises"]
    assert body["hits"][0]["interface_service"] == f"/api/v1/resources/{codes['enterprises']}"
    assert client.get("/api/v1/catalog/search", params={"sharing_type": "bogus"},
                      headers=bearer(token)).status_code == 400
    spec_url = f"/api/v1/catalog/{codes['enterprises']}/openapi.json"
    assert client.get(spec_url, headers=bearer(token)).status_code == 403  # metadata is data: a grant first
    spec = client.get(spec_url, headers=bearer(issue_token(PROVIDER[0])))
    assert spec.status_code == 200 and spec.json()["openapi"].startswith("3.")
    permits_spec = f"/api/v1/catalog/{codes['permits']}/openapi.json"  # an entry without an interface service
    assert client.get(permits_spec, headers=bearer(token)).status_code == 403  # who asks first: no grant, no answer
    assert client.get(permits_spec, headers=bearer(issue_token(PROVIDER[0]))).status_code == 404
    dcat = client.get("/api/v1/catalog/dcat.jsonld", headers=bearer(token))
    assert dcat.status_code == 200 and dcat.headers["content-type"].startswith("application/ld+json")
    assert len(dcat.json()["dcat:dataset"]) == 3
    services = client.get("/api/v1/catalog/services", headers=bearer(token)).json()
    assert [s["code"] for s in services] == [codes["enterprises"], codes["foundations"]]

    runner = CliRunner()
    result = runner.invoke(app, ["catalog", "search", "企业"], env={"COLUMNS": "250"})
    assert result.exit_code == 0 and codes["enterprises"] in result.output and codes["permits"] not in result.output
    result = runner.invoke(app, ["catalog", "show", codes["enterprises"]], env={"COLUMNS": "250"})
    assert result.exit_code == 0 and "接口服务" in result.output and "lookup?column=uscc" in result.output
    result = runner.invoke(app, ["catalog", "show", codes["permits"]], env={"COLUMNS": "250"})
    assert result.exit_code == 0 and "接口服务" not in result.output  # file download only
    result = runner.invoke(app, ["catalog", "services"], env={"COLUMNS": "250"})
    assert result.exit_code == 0 and codes["foundations"] in result.output
    result = runner.invoke(app, ["catalog", "openapi", codes["enterprises"]])
    assert result.exit_code == 0 and json.loads(result.output)["info"]["x-resource-code"] == codes["enterprises"]
    assert runner.invoke(app, ["catalog", "openapi", codes["permits"]]).exit_code == 1
    result = runner.invoke(app, ["catalog", "dcat", "--base-url", "https://data.example.gov.cn"])
    assert result.exit_code == 0 and len(json.loads(result.output)["dcat:dataset"]) == 3
