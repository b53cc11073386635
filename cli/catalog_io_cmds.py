"""`govshare catalog template|import|export|discover|search|services|openapi|dcat`: the offline tool and system
docking (article 9), search, interface services and DCAT export of the published catalogue (article 15).

The commands join the catalogue's own typer app (cli/catalog_cmds.py) through `register`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from cli.access_cmds import AsUser, acting_as
from cli.output import console, err_console, reported_errors, shown, table
from cli.usage import bad_value


def template_command(path: Annotated[Path, typer.Argument(help="要写入的 .xlsx 文件 workbook to write")]) -> None:
    """生成离线编目模板 Write the offline compiling workbook: Chinese headers, drop-down lists, instructions.

    Example: govshare catalog template 目录编制模板.xlsx
    """
    from schemas.catalog_xlsx import write_workbook

    with reported_errors():
        if path.suffix.lower() != ".xlsx":
            raise bad_value(path, "模板是 Excel 工作簿，文件名请以 .xlsx 结尾 / the template is an .xlsx workbook")
        write_workbook(path)
        console.print(f"模板已写入 {shown(path)}：填好“信息资源”和“信息项”两张表后用 `govshare catalog import` 导入")


def import_command(
    path: Annotated[Path, typer.Argument(help=".xlsx、.csv 或 .json 文件 workbook, CSV or JSON file")],
    agency: Annotated[str, typer.Option(help="编目机构代码或名称 the agency whose catalogue this is")],
    author: Annotated[str, typer.Option("--as", "--author", help="编目人员账号 the cataloguer who compiled it")],
) -> None:
    """导入目录 Import a filled-in workbook, CSV or JSON file: all entries, or none with every problem listed.

    Example: govshare catalog import 目录.xlsx --agency 上海市市场监督管理局 --as zhang.san
    """
    from registry.catalog.import_export import ImportRefused, import_file
    from registry.db import session_scope

    with reported_errors():
        try:
            with session_scope() as session:  # one transaction: every entry, or (on any problem) none
                from cli.catalog_cmds import cataloguer
                from registry.people.persons import person_actor

                report = import_file(session, path=path, agency=agency, author=cataloguer(session, author, agency),
                                     actor=person_actor(author))
        except ImportRefused as refused:
            err_console.print(f"[red]未导入 / not imported:[/red] {shown(refused, lines=True)}", soft_wrap=True)
            grid = [(p.sheet, "" if p.row is None else p.row, p.column or "", p.message) for p in refused.problems]
            table("问题 problems", ["工作表 sheet", "行 row", "列 column", "问题 problem"], grid)
            raise typer.Exit(1) from None
    console.print(f"已导入：新建 {len(report.created)} 条，更新 {len(report.updated)} 条（新的草稿修订），"
                  f"未变 {len(report.unchanged)} 条 / created, updated (new draft revision), unchanged")
    for code in report.created + report.updated:
        console.print(f"  {shown(code)}")


def export_command(
    path: Annotated[Path, typer.Argument(help=".xlsx、.csv 或 .json 文件")],
    agency: Annotated[str | None, typer.Option(help="只导出该机构 only this agency")] = None,
    published: Annotated[bool, typer.Option("--published", help="导出已发布版本 published revisions only")] = False,
    as_user: AsUser = None,
) -> None:
    """导出目录 Export entries (latest revisions, or --published) in the import format: xlsx, CSV or JSON.

    Example: govshare catalog export 目录.xlsx --agency 上海市市场监督管理局
    """
    from registry.catalog.import_export import export_file
    from registry.db import session_scope

    with reported_errors(), session_scope() as session:
        count = export_file(session, path=path, agency=agency, published_only=published,
                            actor=acting_as(session, as_user).actor)
        console.print(f"已导出 {count} 条目录到 {shown(path)} / exported {count} entries")


def discover_command(
    source: Annotated[str, typer.Argument(help="数据源名称 registered source")],
    table_name: Annotated[str, typer.Argument(metavar="TABLE", help="表名 table")],
    out: Annotated[Path | None, typer.Option(help="写入 .json 或 .xlsx 草稿 write a draft instead of printing")] = None,
    name: Annotated[str, typer.Option(help="信息资源名称")] = "",
    classification: Annotated[str, typer.Option(help="信息资源分类代码")] = "",
    abstract: Annotated[str, typer.Option(help="信息资源摘要")] = "",
) -> None:
    """读取数据源表结构预填信息项 Prefill data items from a source table's columns and types (a column's comment
    at the source names its item: 统一社会信用代码).

    Example: govshare catalog discover scjg-pg enterprises --out 企业基本信息.xlsx --name 企业基本信息
    """
    from registry.catalog.import_export import discover_items, draft_document, write_draft_workbook
    from registry.catalog.sources import get_source
    from registry.db import session_scope
    from schemas.catalog_metadata import code_list

    with reported_errors(), session_scope() as session:
        src = get_source(session, name=source)
        items = discover_items(session, source=source, table=table_name)
        provider, provider_code = src.agency.name, src.agency.code
        prefill = {"name": name, "classification": classification, "abstract": abstract}
        if out is None:
            types = code_list("data_types")
            table(f"{source}.{table_name} 信息项草稿 draft data items", ["信息项名称/字段名", "数据类型", "长度"],
                  [(i["name"] if i["name"] == i["column"] else f"{i['name']} / {i['column']}",
                    types[i["data_type"]], i.get("length") or "") for i in items])
            console.print("用 --out 文件.xlsx 或 .json 写出草稿，补全中文名称和其他要素后导入 / write a draft with --out")
            return
        if out.suffix.lower() == ".xlsx":
            write_draft_workbook(out, items, provider=provider, provider_code=provider_code, prefill=prefill)
        elif out.suffix.lower() == ".json":
            document = draft_document(items, provider=provider, provider_code=provider_code, prefill=prefill)
            out.write_text(json.dumps(document, ensure_ascii=False, indent=2), encoding="utf-8")
        else:
            raise bad_value(out, "须为 .xlsx 或 .json / --out must end in .xlsx or .json")
        console.print(f"已写入 {len(items)} 个信息项的草稿 {shown(out)} / draft written")


def search_command(
    keyword: Annotated[str | None, typer.Argument(help="关键词，可多个（空格分隔，且） keywords")] = None,
    agency: Annotated[str | None, typer.Option(help="提供方机构代码或名称")] = None,
    classification: Annotated[str | None, typer.Option(help="分类代码或其前缀，如 101")] = None,
    sharing: Annotated[str | None, typer.Option(help="共享类型 unconditional/conditional/not_shared 或中文")] = None,
    mode: Annotated[str | None, typer.Option(help="共享方式 interface/file/browse/offline 或中文")] = None,
    limit: Annotated[int, typer.Option(help="最多条数")] = 50,
) -> None:
    """检索已发布目录 Search the published catalogue: names, abstracts and data item names; filters.

    Example: govshare catalog search 企业 --mode interface
    """
    from registry.catalog.search import search_catalog
    from registry.db import session_scope
    from schemas.catalog_metadata import code_list

    with reported_errors(), session_scope() as session:
        result = search_catalog(session, keyword=keyword, agency=agency, classification=classification,
                                sharing_type=sharing, mode=mode, limit=limit)
        types, modes = code_list("sharing_types"), code_list("sharing_modes")
        table(f"检索结果 {result.total} 条 / {result.total} found", ["信息资源代码", "名称", "提供方", "共享类型",
                                                                  "共享方式", "匹配信息项", "接口服务"],
              [(h.code, h.name, h.provider, types.get(h.sharing_type, h.sharing_type),
                "、".join(modes.get(m, m) for m in h.sharing_modes), "、".join(h.matched_items),
                h.interface_service or "") for h in result.hits])


def services_command() -> None:
    """列出已注册的接口服务 List the registered interface services (article 15).

    Example: govshare catalog services
    """
    from registry.catalog.search import list_services
    from registry.db import session_scope

    with reported_errors(), session_scope() as session:
        table("接口服务 interface services", ["信息资源代码", "说明", "调用方法"],
              [(s.code, s.description, s.invocation) for s in list_services(session)])


def openapi_command(code: Annotated[str, typer.Argument(help="信息资源代码")],
                    out: Annotated[Path | None, typer.Option(help="写入文件 write to a file")] = None) -> None:
    """接口服务的 OpenAPI 文档 Print the OpenAPI 3 document of an entry's interface service.

    Example: govshare catalog openapi 101001/0001 --out 101001-0001.openapi.json
    """
    from registry.catalog.search import get_service
    from registry.db import session_scope

    with reported_errors(), session_scope() as session:
        text = json.dumps(get_service(session, code=code).openapi, ensure_ascii=False, indent=2)
    if out:
        out.write_text(text, encoding="utf-8")
        console.print(f"已写入 {shown(out)}")
    else:
        print(text)


def dcat_command(out: Annotated[Path | None, typer.Option(help="写入文件 write to a file")] = None,
                 base_url: Annotated[str, typer.Option(help="平台地址，用于生成标识 public base URL")] =
                 "http://127.0.0.1:8000") -> None:
    """导出 DCAT 目录 Export the published catalogue as DCAT JSON-LD for harvesting.

    Example: govshare catalog dcat --out catalog.jsonld --base-url https://data.example.gov.cn
    """
    from registry.catalog.dcat import dcat_catalog
    from registry.db import session_scope

    with reported_errors(), session_scope() as session:
        text = json.dumps(dcat_catalog(session, base_url=base_url), ensure_ascii=False, indent=2)
    if out:
        out.write_text(text, encoding="utf-8")
        console.print(f"已写入 {shown(out)}")
    else:
        print(text)


def show_service(session, code: str) -> None:
    """The interface service lines `catalog show` prints for an entry offered through the interface mode."""
    from sqlalchemy import select

    from registry.catalog.search import refresh_published
    from registry.catalog.search_models import InterfaceService

    refresh_published(session)
    service = session.scalar(select(InterfaceService).where(InterfaceService.code == code,
                                                            InterfaceService.status == "active"))
    if service is not None:
        table("接口服务 interface service", ["项目", "内容"], [
            ("说明", service.description), ("调用方法", service.invocation),
            ("接口描述", f"GET /api/v1/catalog/{code}/openapi.json 或 govshare catalog openapi {code}")])


def register(app: typer.Typer) -> None:
    app.command("template")(template_command)
    app.command("import")(import_command)
    app.command("export")(export_command)
    app.command("discover")(discover_command)
    app.command("search")(search_command)
    app.command("services")(services_command)
    app.command("openapi")(openapi_command)
    app.command("dcat")(dcat_command)
