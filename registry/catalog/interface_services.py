"""Interface services (接口服务, article 15): an entry shared through the interface mode (接口交换) is registered
as a service with its description and invocation method: an OpenAPI 3 document generated from its published
data items, describing the exchange system's own endpoints (api/routes/interface.py): records by key (lookup)
and a paged list (records), every field typed from its data type.

The key is the first data item that identifies a subject (统一社会信用代码, 身份证号码, ...), else the first
data item. Registration follows publication: `registry.catalog.search.refresh_published` registers, updates
and withdraws services as published revisions change (audited as interface.register / interface.withdraw);
reading them (`get_service`, `list_services`) refreshes first, so both live there.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.audit.log import record_event
from registry.catalog.models import Resource
from registry.catalog.search_models import InterfaceService
from schemas.catalog_metadata import code_list

OPENAPI_VERSION = "3.0.3"
SERVICE_ROOT = "/api/v1/resources"
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
FIELD_SCHEMAS: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "integer": {"type": "integer", "format": "int64"},
    # decimals travel as strings so no digit is lost to binary floating point
    "decimal": {"type": "string", "format": "decimal", "pattern": r"^-?\d+(\.\d+)?$"},
    "float": {"type": "number", "format": "double"},
    "date": {"type": "string", "format": "date"},
    "timestamp": {"type": "string", "format": "date-time"},
    "boolean": {"type": "boolean"},
    "binary": {"type": "string", "format": "byte"},
    "array": {"type": "array", "items": {}},
}
PAGE_SIZE_MAX = 1000  # delivery/interface.py MAX_PAGE


def service_path(code: str) -> str:
    return f"{SERVICE_ROOT}/{code}"


def field_name(item: dict[str, Any], index: int) -> str:
    """The record property of a data item: its source column, else its name when that is an identifier."""
    if item.get("column"):
        return item["column"]
    return item["name"] if NAME.match(item["name"]) else f"item_{index + 1}"


def field_schema(item: dict[str, Any]) -> dict[str, Any]:
    schema = dict(FIELD_SCHEMAS.get(item["data_type"], {"type": "string"}))
    if item.get("length") and item["data_type"] == "string":
        schema["maxLength"] = item["length"]
    description = item["name"] + (f"：{item['description']}" if item.get("description") else "")
    schema.update({"nullable": True, "description": description, "x-data-item": item["name"],
                   "x-data-type": code_list("data_types").get(item["data_type"], item["data_type"])})
    if item.get("subject_id"):
        schema["x-subject-id"] = item["subject_id"]
    return schema


def key_item(items: list[dict[str, Any]]) -> int:
    return next((i for i, item in enumerate(items) if item.get("subject_id")), 0)


def _problem(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def openapi_document(*, code: str, content: dict[str, Any], provider: str, provider_code: str, revision: int,
                     server: str = "/") -> dict[str, Any]:
    """The interface description and invocation method of one published entry, as OpenAPI 3: the exchange
    system's lookup by key and paged records (api/routes/interface.py), typed from the entry's data items."""
    items = content["data_items"]
    names = [field_name(item, i) for i, item in enumerate(items)]
    key_index = key_item(items)
    key_name = names[key_index]
    base = service_path(code)
    record = {"type": "object", "properties": {n: field_schema(item) for n, item in zip(names, items)}}
    found = {"type": "object", "required": ["version", "manifest_sha256", "records"], "properties": {
        "version": {"type": "integer", "minimum": 1, "description": "数据集版本 / published version"},
        "manifest_sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "records": {"type": "array", "items": {"$ref": "#/components/schemas/Record"}}}}
    page = {"allOf": [{"$ref": "#/components/schemas/Records"}, {"type": "object", "properties": {
        "next_cursor": {"type": "string", "nullable": True, "description": "下一页游标 / cursor of the next page"}}}]}
    denied = {"401": _problem("缺少或无效的访问令牌 / missing or invalid token"),
              "403": _problem("未获授权共享此资源 / no grant for this resource"),
              "404": _problem("资源或版本不存在 / no such resource or version")}
    version = {"name": "version", "in": "query", "required": False, "description": "指定版本，默认最新 / default latest",
               "schema": {"type": "integer", "minimum": 1}}
    fields = {"name": "fields", "in": "query", "required": False, "schema": {"type": "string"},
              "description": f"逗号分隔的信息项，默认全部已授权项；可选：{', '.join(names)}"}
    modes = "、".join(code_list("sharing_modes").get(m, m) for m in content.get("sharing_modes", []))
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": f"{content['name']}（{code}）接口服务",
            "version": str(revision),
            "description": f"{content['abstract']}\n\n提供方：{provider}（{provider_code}）；共享类型："
                           f"{code_list('sharing_types').get(content['sharing_type'], content['sharing_type'])}；"
                           f"共享方式：{modes}。调用须携带 `govshare token issue` 签发的访问令牌（Bearer），并已获授权。",
            "x-resource-code": code, "x-provider-code": provider_code,
        },
        "servers": [{"url": server}],
        "security": [{"bearerAuth": []}],
        "tags": [{"name": code, "description": content["name"]}],
        "paths": {
            f"{base}/lookup": {"get": {
                "operationId": "getRecord", "tags": [code],
                "summary": f"按{items[key_index]['name']}查询 / records by key",
                "parameters": [
                    {"name": "column", "in": "query", "required": True, "description": "键列 / key column",
                     "schema": {"type": "string", "enum": names, "default": key_name}},
                    {"name": "value", "in": "query", "required": True,
                     "description": f"键值，如{items[key_index]['name']} / the key's value", "schema": {"type": "string"}},
                    fields, version],
                "responses": {"200": {"description": "匹配的记录 / matching records", "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Records"}}}}, **denied}}},
            f"{base}/records": {"get": {
                "operationId": "listRecords", "tags": [code], "summary": f"分页查询{content['name']} / list records",
                "parameters": [
                    {"name": "limit", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 1, "maximum": PAGE_SIZE_MAX, "default": 100}},
                    {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"},
                     "description": "上一页返回的 next_cursor / next_cursor of the previous page"},
                    {"name": "where", "in": "query", "required": False, "style": "form", "explode": True,
                     "schema": {"type": "array", "items": {"type": "string"}},
                     "description": "列:值，可重复（且） / column:value, repeatable (AND)"},
                    fields, version],
                "responses": {"200": {"description": "一页记录 / one page of records", "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/RecordPage"}}}}, **denied}}},
        },
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Record": record, "Records": found, "RecordPage": page, "Problem": {
                "type": "object", "properties": {"detail": {"type": "string"}, "detail_zh": {"type": "string"}}}},
        },
    }


def invocation_of(code: str, content: dict[str, Any]) -> str:
    items = content["data_items"]
    key_index = key_item(items)
    base = service_path(code)
    key = field_name(items[key_index], key_index)
    return (f"GET {base}/lookup?column={key}&value=<{items[key_index]['name']}>（按键查询）；"
            f"GET {base}/records?limit=100[&cursor=<next_cursor>]（分页查询）；请求头 Authorization: Bearer <访问令牌>")


def register_service(session: Session, *, resource: Resource, revision_id: int, revision_number: int,
                     content: dict[str, Any], actor: str = "system") -> InterfaceService:
    """Register (or bring up to date) the service of a published entry offered through the interface mode."""
    document = openapi_document(code=resource.code, content=content, provider=resource.agency.name,
                                provider_code=resource.agency.code, revision=revision_number)
    service = session.scalar(select(InterfaceService).where(InterfaceService.resource_id == resource.id))
    if service is None:
        service = InterfaceService(resource_id=resource.id, code=resource.code)
        session.add(service)
    service.revision_id, service.path, service.status = revision_id, service_path(resource.code), "active"
    service.description = f"{content['name']}：{content['abstract']}"
    service.invocation, service.openapi = invocation_of(resource.code, content), document
    session.flush()
    record_event(session, actor=actor, action="interface.register", agency_code=resource.agency.code,
                 resource_code=resource.code, detail={"revision": revision_number, "path": service.path})
    return service


def withdraw_service(session: Session, *, resource: Resource, actor: str = "system") -> None:
    service = session.scalar(select(InterfaceService).where(InterfaceService.resource_id == resource.id,
                                                            InterfaceService.status == "active"))
    if service is not None:
        service.status = "withdrawn"
        record_event(session, actor=actor, action="interface.withdraw", agency_code=resource.agency.code,
                     resource_code=resource.code, detail={"path": service.path})
