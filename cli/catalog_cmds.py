"""`govshare catalog ...`: compile, review, publish and keep up the resource catalogue (资源目录, articles 8-10, 19).

`catalog_app` is mounted by cli/main.py; the offline workbook, import/export, discover, search and DCAT
commands attach themselves to it from their own module.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.access_cmds import AsUser, acting_as
from cli.output import console, reported_errors, shown, table
from cli.output import note as show_note
from cli.usage import bad_value
from core.errors import ConfigError

# The registry (SQLAlchemy) and the catalogue's metadata (pydantic) are imported inside the commands: help
# and usage errors never need them.
if TYPE_CHECKING:
    from schemas.catalog_metadata import CatalogEntryData

catalog_app = typer.Typer(help="资源目录 Resource catalogue: compile, review, publish, keep up (articles 8-10, 19).",
                          no_args_is_help=True)


@cache
def status_labels() -> dict[str, str]:
    """The revision statuses' Chinese labels (read from the labels file when a command first shows one)."""
    from schemas.presentation import labels

    return labels("catalog_statuses")

ItemOption = Annotated[list[str] | None, typer.Option(
    "--item", help="信息项 data item NAME:TYPE[:SUBJECT_ID[:COLUMN]], e.g. 统一社会信用代码:字符型:uscc:uscc; repeatable")]
DayOption = Annotated[str | None, typer.Option("--on", help="日期 day of the act, YYYY-MM-DD (default today, Beijing)")]


def _item(text: str) -> dict[str, Any]:
    parts = [p.strip() for p in text.split(":")]
    if len(parts) < 2 or not parts[0]:
        raise bad_value(text, f"信息项 {text!r} 应为 名称:数据类型[:主体标识[:字段名]] / NAME:TYPE[:SUBJECT[:COLUMN]]")
    item: dict[str, Any] = {"name": parts[0], "data_type": parts[1]}
    if len(parts) > 2 and parts[2]:
        item["subject_id"] = parts[2]
    if len(parts) > 3 and parts[3]:
        item["column"] = parts[3]
    return item


def build_entry(base: dict[str, Any], *, file: Path | None = None, **options: Any) -> CatalogEntryData:
    """The entry from a base content, an optional JSON/YAML file and the command-line options, validated."""
    from pydantic import ValidationError

    from schemas.catalog_metadata import CatalogEntryData, problems_of

    content = dict(base)
    if file is not None:
        import yaml

        try:
            loaded = yaml.safe_load(Path(file).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"无法读取 {file}: {exc} / cannot read the entry file") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{file}: 应为一个目录条目对象 / expected one entry object")
        content.update(loaded)
    for key, value in options.items():
        if value is None:
            continue
        content[key] = [_item(v) for v in value] if key == "data_items" else value
    try:
        return CatalogEntryData.model_validate(content)
    except ValidationError as exc:
        lines = "；".join(f"{where}：{message}" for where, message in problems_of(exc))
        raise ConfigError(f"目录条目有误 / invalid entry: {lines}") from None


def cataloguer(session, account: str, agency: str) -> str:  # noqa: ANN001 - Session
    """The account `--as` names, if it exists and is the agency's designated cataloguer today; else refused."""
    from registry.people.agencies import get_agency
    from registry.people.persons import act_day, require_designated

    owner = get_agency(session, ref=agency)
    return require_designated(session, account=account, agency_id=owner.id, roles=("cataloguer",),
                              on=act_day(None)).account


def _display(field: str, value: Any) -> str:
    from schemas.catalog_metadata import code_list, metadata

    element = next((e for e in metadata()["elements"] if e["field"] == field), None)
    codes = code_list(element["codes"]) if element and element.get("codes") else {}
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, list) and field != "data_items":
        return "、".join(codes.get(v, str(v)) for v in value) or "-"
    return codes.get(value, "" if value is None else str(value)) if isinstance(value, str | None) else str(value)


@catalog_app.command("add")
def add_command(
    agency: Annotated[str, typer.Option(help="提供方 provider agency code or name")],
    author: Annotated[str, typer.Option("--as", "--author", help="编目人员账号: the designated cataloguer compiling it")],
    file: Annotated[Path | None, typer.Option(help="目录条目 JSON/YAML file with the elements")] = None,
    classification: Annotated[str | None, typer.Option(help="信息资源分类 e.g. 101001")] = None,
    name: Annotated[str | None, typer.Option(help="信息资源名称")] = None,
    abstract: Annotated[str | None, typer.Option(help="信息资源摘要")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="信息资源格式 e.g. database / 数据库")] = None,
    item: ItemOption = None,
    sharing: Annotated[str | None, typer.Option(help="共享类型 unconditional / conditional / not_shared")] = None,
    condition: Annotated[str | None, typer.Option(help="共享条件 (or the legal basis when not shared)")] = None,
    mode: Annotated[list[str] | None, typer.Option(help="共享方式 interface/file/browse/offline; repeatable")] = None,
    open_to_public: Annotated[bool | None, typer.Option("--open/--not-open", help="是否向社会开放")] = None,
    open_condition: Annotated[str | None, typer.Option(help="开放条件")] = None,
    cycle: Annotated[str | None, typer.Option(help="更新周期 e.g. daily / 每日")] = None,
    release_date: Annotated[str | None, typer.Option(help="发布日期 YYYY-MM-DD")] = None,
    related: Annotated[list[str] | None, typer.Option(help="关联资源代码; repeatable")] = None,
) -> None:
    """新建目录条目 Compile a new catalogue entry (draft revision 1); its code is classification/sequence.

    Example: govshare catalog add --agency 上海市市场监督管理局 --as zhangsan --classification 101001
    --name 企业基本信息 --abstract 本市登记企业的基本信息 --item 统一社会信用代码:字符型:uscc --item 企业名称:字符型
    --sharing unconditional --mode interface --mode file
    """
    from registry.catalog.entries import upsert_entry
    from registry.db import session_scope
    from registry.people.persons import person_actor

    with reported_errors():
        data = build_entry({}, file=file, classification=classification, name=name, abstract=abstract, format=fmt,
                           data_items=item, sharing_type=sharing, sharing_condition=condition, sharing_modes=mode,
                           open_to_public=open_to_public, open_condition=open_condition, update_cycle=cycle,
                           release_date=release_date, related_codes=related)
        with session_scope() as session:
            revision = upsert_entry(session, agency=agency, data=data, author=cataloguer(session, author, agency),
                                    actor=person_actor(author))
            code, number = revision.resource.code, revision.number
        console.print(f"目录条目 {shown(code)} {shown(data.name)}：第{number}版（草稿） / entry {shown(code)} revision {number} (draft)")


@catalog_app.command("edit")
def edit_command(
    code: Annotated[str, typer.Argument(help="信息资源代码 resource code")],
    author: Annotated[str, typer.Option("--as", "--author", help="编目人员账号: the designated cataloguer compiling it")],
    file: Annotated[Path | None, typer.Option(help="JSON/YAML file with the elements to change")] = None,
    name: Annotated[str | None, typer.Option(help="信息资源名称")] = None,
    abstract: Annotated[str | None, typer.Option(help="信息资源摘要")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="信息资源格式")] = None,
    item: ItemOption = None,
    sharing: Annotated[str | None, typer.Option(help="共享类型")] = None,
    condition: Annotated[str | None, typer.Option(help="共享条件")] = None,
    mode: Annotated[list[str] | None, typer.Option(help="共享方式; repeatable")] = None,
    open_to_public: Annotated[bool | None, typer.Option("--open/--not-open", help="是否向社会开放")] = None,
    open_condition: Annotated[str | None, typer.Option(help="开放条件")] = None,
    cycle: Annotated[str | None, typer.Option(help="更新周期")] = None,
    release_date: Annotated[str | None, typer.Option(help="发布日期 YYYY-MM-DD")] = None,
    related: Annotated[list[str] | None, typer.Option(help="关联资源代码; repeatable")] = None,
) -> None:
    """修改目录条目 Change elements: a new draft revision (the published one stays visible until review).

    --item replaces the whole data item list. An entry registered with `resource add` is catalogued this way.

    Example: govshare catalog edit 101001/0001 --as zhangsan --cycle weekly
    """
    from registry.catalog.entries import get_entry, latest_revision, upsert_entry
    from registry.db import session_scope
    from registry.people.persons import person_actor

    with reported_errors():
        with session_scope() as session:
            entry = get_entry(session, code=code)
            latest = latest_revision(session, resource=entry)
            base = dict(latest.content) if latest else {
                "classification": entry.classification, "name": entry.name, "abstract": entry.abstract,
                "sharing_type": entry.sharing_type, "sharing_condition": entry.sharing_condition,
                "sharing_modes": entry.sharing_modes, "update_cycle": entry.update_cycle}
            data = build_entry(base, file=file, name=name, abstract=abstract, format=fmt, data_items=item,
                               sharing_type=sharing, sharing_condition=condition, sharing_modes=mode,
                               open_to_public=open_to_public, open_condition=open_condition, update_cycle=cycle,
                               release_date=release_date, related_codes=related)
            revision = upsert_entry(session, agency=entry.agency.code, data=data, code=code,
                                    author=cataloguer(session, author, entry.agency.code), actor=person_actor(author))
            same = latest is not None and revision.id == latest.id
            number = revision.number
        if same:
            console.print(f"{shown(code)}：内容无变化，未新建版本 / unchanged, no new revision (still revision {number})")
        else:
            console.print(f"目录条目 {shown(code)}：第{number}版（草稿），提交审核后发布 / revision {number} (draft)")


@catalog_app.command("show")
def show_command(code: Annotated[str, typer.Argument(help="信息资源代码")],
                 revision: Annotated[int | None, typer.Option(help="版本号 revision (default: published, else latest)")] = None,
                 ) -> None:
    """查看目录条目 Show the 13 core elements of an entry (published revision unless --revision).

    Example: govshare catalog show 101001/0001
    """
    from registry.db import session_scope
    from schemas.catalog_metadata import code_list, metadata
    from registry.catalog.entries import (
        get_entry,
        get_revision,
        latest_revision,
        published_revision,
    )
    from registry.catalog.review import comment_lines

    with reported_errors(), session_scope() as session:
        entry = get_entry(session, code=code)
        published, latest = published_revision(session, resource=entry), latest_revision(session, resource=entry)
        shown = get_revision(session, resource=entry, number=revision) if revision else (published or latest)
        rows = [("信息资源代码", entry.code), ("信息资源提供方", entry.agency.name),
                ("信息资源提供方代码", entry.agency.code)]
        if shown is None:
            rows += [("信息资源名称", entry.name), ("状态", status_labels()["registered"])]
        else:
            for element in metadata()["elements"]:
                field = element["field"]
                if field in shown.content and field != "data_items":
                    rows.append((element["label"], _display(field, shown.content[field])))
            rows.append(("版本 / 状态", f"第{shown.number}版 {status_labels().get(shown.status, shown.status)}"))
        if latest is not None and shown is not None and latest.id != shown.id:
            rows.append(("待发布版本", f"第{latest.number}版 {status_labels().get(latest.status, latest.status)}"))
        table(f"{entry.code} {entry.name}", ["要素 element", "内容 value"], rows)
        if shown is not None:
            types, subjects = code_list("data_types"), code_list("subject_ids")
            table("信息项 data items", ["信息项名称", "字段名", "数据类型", "主体标识", "数据元", "说明"],
                  [(i["name"], i.get("column") or "", types.get(i["data_type"], i["data_type"]),
                    subjects.get(i.get("subject_id") or "", ""), i.get("element_code") or "", i.get("description", ""))
                   for i in shown.content.get("data_items", [])])
            if notes := comment_lines(shown):
                table("审核意见 review comments", ["针对", "意见"], notes)
            from registry.catalog.entries import duplicate_collection_findings
            from schemas.catalog_metadata import CatalogEntryData

            findings = duplicate_collection_findings(session, resource=entry,
                                                     data=CatalogEntryData.model_validate(shown.content))
            if findings:
                table("一数一源 one data, one source", ["数据元", "问题 finding", "建议 suggestion"],
                      [(f.element_code, f.message, f.suggestion) for f in findings])
        from cli.catalog_io_cmds import (
            show_service,  # the registered interface service (article 15)
        )

        show_service(session, entry.code)


@catalog_app.command("list")
def list_command(agency: Annotated[str | None, typer.Option(help="只列出该机构 only this agency")] = None,
                 published: Annotated[bool, typer.Option("--published", help="只列出已发布 only published")] = False,
                 tree: Annotated[bool, typer.Option("--tree", help="含下级（区县）机构的目录 with subordinate agencies")] = False,
                 as_user: AsUser = None) -> None:
    """列出目录 List catalogue entries with their published and pending revisions.

    Example: govshare catalog list --agency 上海市市场监督管理局
    """
    from registry.catalog.entries import latest_revision, list_entries, published_revision
    from registry.db import session_scope

    with reported_errors(), session_scope() as session:
        rows, actor = [], acting_as(session, as_user).actor
        for entry in list_entries(session, agency=agency, published_only=published, with_subordinates=tree,
                                  actor=actor):
            pub, latest = published_revision(session, resource=entry), latest_revision(session, resource=entry)
            pending = (f"第{latest.number}版 {status_labels()[latest.status]}"
                       if latest is not None and latest.status != "published" else "")
            rows.append((entry.code, entry.name, entry.agency.name, status_labels()[entry.catalog_status],
                         f"第{pub.number}版" if pub else "", pending))
        table("资源目录 / catalogue", ["信息资源代码", "信息资源名称", "提供方", "状态", "已发布版本", "待处理版本"], rows)


@catalog_app.command("history")
def history_command(code: Annotated[str, typer.Argument(help="信息资源代码")]) -> None:
    """修订历史 Every revision of an entry: author, status, submission, review.

    Example: govshare catalog history 101001/0001
    """
    from registry.catalog.entries import get_entry, list_revisions
    from registry.catalog.review import confidentiality_of
    from registry.db import session_scope
    from schemas.presentation import moment_compact

    when = moment_compact
    with reported_errors(), session_scope() as session:
        entry = get_entry(session, code=code)
        rows = []
        for r in list_revisions(session, resource=entry):
            secrecy = confidentiality_of(session, revision=r)
            rows.append((f"第{r.number}版", status_labels()[r.status], r.author, when(r.created_at),
                         f"{r.submitted_by or ''} {when(r.submitted_at)}".strip(),
                         "" if secrecy is None else f"{'通过' if secrecy.passed else '未通过'} {secrecy.reviewer}",
                         f"{r.reviewed_by or ''} {when(r.reviewed_at)}".strip(), r.content_sha256[:12]))
        table(f"{entry.code} {entry.name} 修订历史 / history",
              ["版本", "状态", "编制人", "编制时间（北京时间）", "提交", "保密审查", "审核", "内容摘要"], rows)


@catalog_app.command("diff")
def diff_command(code: Annotated[str, typer.Argument(help="信息资源代码")],
                 old: Annotated[int, typer.Argument(help="旧版本号")], new: Annotated[int, typer.Argument(help="新版本号")],
                 ) -> None:
    """比较两个版本 What changed between two revisions, per element and per data item.

    Example: govshare catalog diff 101001/0001 1 2
    """
    from registry.catalog.entries import diff_revisions
    from registry.db import session_scope
    from schemas.catalog_metadata import code_list

    kinds = {"changed": "修改", "added": "新增", "removed": "删除"}

    types = code_list("data_types")

    def show(field: str, value: Any) -> str:
        if isinstance(value, dict):  # a whole data item added or removed
            return f"{value['name']}（{types.get(value['data_type'], value['data_type'])}）"
        return _display(field, value)

    with reported_errors(), session_scope() as session:
        changes = diff_revisions(session, code=code, old=old, new=new)
        if not changes:
            console.print(f"第{old}版与第{new}版内容相同 / no difference")
            return
        table(f"{code} 第{old}版 → 第{new}版", ["要素 element", "变化", "原值 old", "新值 new"],
              [(c.label, kinds[c.kind], show(c.element, c.old), show(c.element, c.new)) for c in changes])


@catalog_app.command("stream")
def stream_command(code: Annotated[str, typer.Argument(help="信息资源代码")],
                   source: Annotated[str, typer.Option(help="本机构的数据源 provider's source")],
                   table_name: Annotated[str | None, typer.Option("--table", help="源表")] = None,
                   query: Annotated[str | None, typer.Option(help="源查询 instead of a table")] = None,
                   key: Annotated[str | None, typer.Option(help="主键列, comma separated")] = None,
                   cursor: Annotated[str | None, typer.Option(help="增量游标列")] = None) -> None:
    """接入数据 Feed a catalogue entry from its provider's source (the exchange stream).

    Example: govshare catalog stream 101001/0001 --source scjg-pg --table enterprises --key id --cursor updated_at
    """
    from registry.catalog.entries import attach_stream
    from registry.db import session_scope
    from registry.exchange.streams import verify_stream

    with reported_errors():
        with session_scope() as session:
            entry = attach_stream(session, code=code, source=source, table=table_name, query=query,
                                  primary_key=key.split(",") if key else None, cursor_column=cursor)
            note = verify_stream(entry)  # a missing key or cursor column refuses it
        show_note(note)
        console.print(f"{shown(code)} 已接入数据源 {shown(source)} / stream attached")


from cli import catalog_review_cmds  # noqa: F401 - submit, confidentiality, review, overdue, reconfirm
