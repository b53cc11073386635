"""The catalogue system: agencies and designated people, entries with revisions and diffs, the review
workflow with its confidentiality gate, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from core.errors import AccessDenied, ConfigError, NotFound
from tests.catalog_helpers import (
    DISTRICT,
    audit_actions,
    catalog_home_fixture,  # noqa: F401 - the catalog_home fixture
    entry_data,
    new_entry,
    publish,
    setup_people,
)
from tests.helpers import OTHER_PROVIDER, PROVIDER

pytestmark = pytest.mark.clock  # re-run on several pinned days by `make test-days`

# --- agencies and people (articles 4, 21, 25) ------------------------------------------------------------------

def test_agency_codes_are_validated_and_districts_sit_under_the_city(catalog_home: Path) -> None:
    from registry.people.agencies import add_agency, get_agency
    from registry.catalog.entries import list_entries, upsert_entry
    from registry.db import session_scope

    with session_scope() as session:
        with pytest.raises(ConfigError, match="校验码错误"):
            add_agency(session, code="91110000600037341N", name="坏代码机构")
        with pytest.raises(ConfigError, match="不允许的字符"):
            add_agency(session, code="9111000060003IOZSV", name="坏代码机构")
        with pytest.raises(ConfigError, match="district"):
            add_agency(session, code=DISTRICT[0], name=DISTRICT[1], level="county")
        add_agency(session, code=PROVIDER[0], name=PROVIDER[1])
        district = add_agency(session, code=DISTRICT[0], name=DISTRICT[1], level="district", district="浦东新区",
                              parent=PROVIDER[1])
        assert district.parent_id == get_agency(session, ref=PROVIDER[0]).id
        # the district's catalogue sits under the city agency's
        city_code = upsert_entry(session, agency=PROVIDER[0], data=entry_data(), author="x").resource.code
        district_code = upsert_entry(session, agency=DISTRICT[0], data=entry_data(name="浦东新区企业信息"),
                                     author="y").resource.code
        def listed(agency: str, **options: bool) -> list[str]:
            return [e.code for e in list_entries(session, agency=agency, actor="console:test", **options)]

        assert listed(PROVIDER[0]) == [city_code]
        assert set(listed(PROVIDER[0], with_subordinates=True)) == {city_code, district_code}
        assert listed(DISTRICT[0], with_subordinates=True) == [district_code]
        # a city agency cannot sit under a district one
        with pytest.raises(ConfigError, match="上级机构"):
            add_agency(session, code=OTHER_PROVIDER[0], name=OTHER_PROVIDER[1], parent=DISTRICT[1])


def test_who_was_the_reviewer_on_that_day(catalog_home: Path, tmp_path: Path) -> None:
    from openpyxl import load_workbook

    from registry.db import session_scope
    from registry.people.persons import (
        add_person,
        administrators_rows,
        designate,
        designated_people,
        designations,
        end_designation,
        write_administrators,
    )

    with session_scope() as session:
        setup_people(session)
        end_designation(session, account="li", role="reviewer", last_day=date(2025, 6, 30))
        add_person(session, agency=PROVIDER[0], account="wang", name="王七")
        designate(session, account="wang", role="审核人员", valid_from=date(2025, 7, 1))
        with pytest.raises(ConfigError, match="重叠"):
            designate(session, account="wang", role="reviewer", valid_from=date(2025, 8, 1))

        assert [p.account for p in designated_people(session, agency=PROVIDER[0], role="reviewer",
                                                     on=date(2025, 6, 30))] == ["li"]
        assert [p.account for p in designated_people(session, agency=PROVIDER[0], role="reviewer",
                                                     on=date(2025, 7, 1))] == ["wang"]
        # the history keeps the ended designation
        assert {(d.person.account, d.valid_to) for d in designations(session, agency=PROVIDER[0], role="reviewer")} == {
            ("li", date(2025, 6, 30)), ("wang", None)}
        rows = administrators_rows(session, agency=PROVIDER[0], on=date(2025, 3, 1))
    assert [(r[0], r[1], r[4], r[5]) for r in rows] == [(PROVIDER[1], PROVIDER[0], "陈五", "chen")]

    workbook = write_administrators(rows, tmp_path / "备案.xlsx")
    sheet = load_workbook(workbook).active
    assert [c.value for c in sheet[1]][:6] == ["机构名称", "统一社会信用代码", "层级", "区县", "姓名", "账号"]
    assert [c.value for c in sheet[2]][4:6] == ["陈五", "chen"]
    text = write_administrators(rows, tmp_path / "备案.csv").read_text(encoding="utf-8-sig")
    assert "陈五" in text and PROVIDER[0] in text


def test_the_filing_list_never_runs_a_value_as_a_formula(catalog_home: Path, tmp_path: Path) -> None:
    """The filing list is for people (its CSV has a BOM so that Excel opens it): an office typed as
    =HYPERLINK(...) ran as a live link in the commission's sheet. The CSV writes it after the text marker ',
    the workbook as a text cell; a phone number such as +86 21 ... is no formula in either."""
    import csv

    from openpyxl import load_workbook

    from registry.db import session_scope
    from registry.people.persons import add_person, administrators_rows, designate, write_administrators

    hostile = '=HYPERLINK("http://evil.example","点我")'
    with session_scope() as session:
        setup_people(session)
        evil = add_person(session, agency=PROVIDER[0], account="evil", name="王芳", phone="+86 21 1234",
                          email="-2+3")
        # registration refuses such names now (tests/test_typed_names.py); one stored before is still written safely
        evil.name, evil.office = "@SUM(A1)", hostile
        designate(session, account="evil", role="administrator", valid_from=date(2025, 1, 1))
        rows = administrators_rows(session, agency=PROVIDER[0], on=date(2025, 3, 1))
    path = write_administrators(rows, tmp_path / "备案.csv")
    filed = {r["账号"]: r for r in csv.DictReader(path.open(encoding="utf-8-sig"))}["evil"]
    assert (filed["姓名"], filed["处室"], filed["电话"], filed["电子邮箱"]) == (
        "'@SUM(A1)", "'" + hostile, "'+86 21 1234", "'-2+3")
    sheet = load_workbook(write_administrators(rows, tmp_path / "备案.xlsx")).active
    cells = [row for row in sheet.iter_rows(min_row=2) if row[5].value == "evil"][0]
    assert [(cells[i].value, cells[i].data_type) for i in (4, 6, 7, 8)] == [
        ("@SUM(A1)", "s"), (hostile, "s"), ("+86 21 1234", "s"), ("-2+3", "s")]


# --- entries, codes, revisions (articles 8, 9) -----------------------------------------------------------------

def test_codes_are_generated_per_classification_and_unique(catalog_home: Path) -> None:
    from registry.catalog.entries import entry_view, get_entry, latest_revision, upsert_entry
    from registry.db import session_scope

    with session_scope() as session:
        setup_people(session)
        first = new_entry(session)
        second = new_entry(session, name="企业年报信息")
        other_class = new_entry(session, classification="102003", name="纳税信用等级")
        carried = upsert_entry(session, agency=PROVIDER[0], data=entry_data(name="历史目录"), code="101001/0007",
                               author="zhang").resource.code
        after_carried = new_entry(session, name="企业变更信息")
        assert (first, second, other_class, carried) == ("101001/0001", "101001/0002", "102003/0001", "101001/0007")
        assert after_carried not in {first, second, carried} and after_carried.startswith("101001/")
        # the classification is part of the code: it cannot change afterwards
        with pytest.raises(ConfigError, match="分类"):
            upsert_entry(session, agency=PROVIDER[0], data=entry_data(classification="102003"), code=first,
                         author="zhang")
        with pytest.raises(ConfigError, match="格式"):
            upsert_entry(session, agency=PROVIDER[0], data=entry_data(), code="101001-7", author="zhang")
        # another agency cannot revise this agency's entry
        with pytest.raises(AccessDenied):
            upsert_entry(session, agency=OTHER_PROVIDER[0], data=entry_data(abstract="改"), code=first, author="x")
        entry = get_entry(session, code=first)
        view = entry_view(entry, latest_revision(session, resource=entry))
        assert (view["provider_code"], view["provider"]) == PROVIDER  # provider code is the agency's USCC
    with session_scope() as session, pytest.raises(NotFound):
        get_entry(session, code="999999/0001")


def test_article_8_rules_refuse_incomplete_entries() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="法律法规"):
        entry_data(sharing_type="not_shared", sharing_modes=[])
    with pytest.raises(ValidationError, match="共享条件"):
        entry_data(sharing_type="conditional")
    with pytest.raises(ValidationError, match="开放条件"):
        entry_data(open_to_public=True)
    assert entry_data(sharing_type="不予共享", sharing_condition="《统计法》第九条", sharing_modes=[]).sharing_type == \
        "not_shared"


def test_every_change_is_a_revision_and_identical_content_is_not(catalog_home: Path) -> None:
    from registry.catalog.entries import diff_revisions, get_entry, list_revisions, upsert_entry
    from registry.db import session_scope

    with session_scope() as session:
        setup_people(session)
        code = new_entry(session)
        again = upsert_entry(session, agency=PROVIDER[0], data=entry_data(), author="zhang")
        assert (again.resource.code, again.number) == (code, 1)  # a re-import does not duplicate
        items = [{"name": "统一社会信用代码", "column": "uscc", "data_type": "string", "subject_id": "uscc"},
                 {"name": "企业名称", "column": "name", "data_type": "string", "length": 200},
                 {"name": "成立日期", "column": "established", "data_type": "date"}]
        second = upsert_entry(session, agency=PROVIDER[0], code=code, author="zhang",
                              data=entry_data(update_cycle="weekly", data_items=items))
        assert second.number == 2
        assert [r.number for r in list_revisions(session, resource=get_entry(session, code=code))] == [1, 2]
        changes = {(c.label, c.kind, str(c.old), str(c.new)) for c in diff_revisions(session, code=code, old=1, new=2)}
    assert changes == {
        ("更新周期", "changed", "daily", "weekly"),
        ("信息项「企业名称」·数据长度", "changed", "None", "200"),
        ("信息项「注册资本」", "removed", str({"name": "注册资本", "column": "reg_capital", "data_type": "decimal",
                                             "length": None, "subject_id": None, "element_code": None,
                                             "description": ""}), "None"),
        ("信息项「成立日期」", "added", "None", str({"name": "成立日期", "column": "established", "data_type": "date",
                                               "length": None, "subject_id": None, "element_code": None,
                                               "description": ""})),
    }


# --- review and publication (articles 10, 19) ------------------------------------------------------------------

def test_only_a_reviewer_designated_by_the_same_agency_on_that_day_decides(catalog_home: Path) -> None:
    from registry.catalog.entries import get_entry
    from registry.catalog.review import (
        record_confidentiality_review,
        review_revision,
        submit_revision,
    )
    from registry.db import session_scope
    from registry.people.persons import add_person, designate

    day = date(2025, 3, 3)
    with session_scope() as session:
        setup_people(session)
        code = new_entry(session)
        with pytest.raises(AccessDenied, match="编目人员"):
            submit_revision(session, code=code, account="li", on=day)  # li is a reviewer, not a cataloguer
        submit_revision(session, code=code, account="zhang", on=day)
        record_confidentiality_review(session, code=code, account="chen", passed=True, on=day)
        with pytest.raises(AccessDenied, match="不属于"):
            review_revision(session, code=code, account="zhao", approve=True, on=day)  # another agency's reviewer
        with pytest.raises(AccessDenied, match="未被本机构指定"):
            review_revision(session, code=code, account="li", approve=True, on=date(2023, 12, 31))  # before designation
        with pytest.raises(AccessDenied, match="未被本机构指定"):
            review_revision(session, code=code, account="chen", approve=True, on=day)  # administrator, not reviewer
        # zhang becomes a reviewer too, but may still not decide on the revision he wrote
        designate(session, account="zhang", role="reviewer", valid_from=day)
        with pytest.raises(AccessDenied, match="自己编制"):
            review_revision(session, code=code, account="zhang", approve=True, on=day)
        add_person(session, agency=PROVIDER[0], account="sun", name="孙八")
        designate(session, account="sun", role="reviewer", valid_from=day)
        assert review_revision(session, code=code, account="sun", approve=True, on=day).status == "published"
        assert get_entry(session, code=code).catalog_status == "published"
        actions = audit_actions(session, code)
    assert actions[:3] == ["catalog.create", "catalog.submit", "catalog.confidentiality"]
    assert actions[-1] == "catalog.publish"


def test_confidentiality_review_is_required_before_publication(catalog_home: Path) -> None:
    from registry.catalog.review import (
        record_confidentiality_review,
        review_revision,
        submit_revision,
    )
    from registry.db import session_scope

    with session_scope() as session:
        setup_people(session)
        code = new_entry(session)
        # a draft is not reviewed: the refusal names both states as staff know them, not the codes
        with pytest.raises(ConfigError, match="第1版草稿，不能审核（只有待审核的版本可以审核）") as refused:
            review_revision(session, code=code, account="li", approve=True)
        assert "draft，" not in str(refused.value)
        submit_revision(session, code=code, account="zhang")
        with pytest.raises(ConfigError, match="第1版待审核，不能提交（只有草稿、已退回的版本可以提交）"):
            submit_revision(session, code=code, account="zhang")
        with pytest.raises(AccessDenied, match="保密审查"):
            review_revision(session, code=code, account="li", approve=True)
        with pytest.raises(ConfigError, match="原因"):
            record_confidentiality_review(session, code=code, account="li", passed=False)
        record_confidentiality_review(session, code=code, account="li", passed=False, note="含企业商业秘密字段")
        with pytest.raises(AccessDenied, match="含企业商业秘密字段"):
            review_revision(session, code=code, account="li", approve=True)
        record_confidentiality_review(session, code=code, account="li", passed=True, note="已脱敏")
        assert review_revision(session, code=code, account="li", approve=True).status == "published"


def test_the_author_may_not_do_the_confidentiality_review_of_their_revision(catalog_home: Path) -> None:
    """Article 19: the agency's own confidentiality review is a check of what the cataloguer wrote, so like the
    review decision it needs someone other than who wrote or submitted the revision (four-eyes)."""
    from registry.catalog.review import record_confidentiality_review, review_revision, submit_revision
    from registry.db import session_scope
    from registry.people.persons import designate

    day = date(2025, 3, 3)
    with session_scope() as session:
        setup_people(session)
        designate(session, account="zhang", role="reviewer", valid_from=day)  # zhang wrote the entry
        code = new_entry(session)
        with pytest.raises(AccessDenied, match="自己编制"):
            record_confidentiality_review(session, code=code, account="zhang", passed=True, note="不涉密", on=day)
        submit_revision(session, code=code, account="zhang", on=day)
        with pytest.raises(AccessDenied, match="自己编制"):
            record_confidentiality_review(session, code=code, account="zhang", passed=True, note="不涉密", on=day)
        record_confidentiality_review(session, code=code, account="li", passed=True, note="不涉密", on=day)
        assert review_revision(session, code=code, account="li", approve=True, on=day).status == "published"


def test_decisions_cannot_be_dated_before_the_submission(catalog_home: Path) -> None:
    """A reviewer whose designation ended cannot date a decision back into it on a revision submitted later."""
    from registry.catalog.review import record_confidentiality_review, review_revision, submit_revision
    from registry.db import session_scope
    from registry.people.persons import add_person, designate

    ended, submitted = date(2025, 2, 28), date(2025, 3, 10)
    with session_scope() as session:
        setup_people(session)
        add_person(session, agency=PROVIDER[0], account="sun", name="孙八")
        designate(session, account="sun", role="reviewer", valid_from=date(2025, 1, 1), valid_to=ended)
        code = new_entry(session)
        revision = submit_revision(session, code=code, account="zhang", on=submitted)
        assert revision.submitted_on == submitted
        with pytest.raises(ConfigError, match="早于.*提交"):
            record_confidentiality_review(session, code=code, account="sun", passed=True, note="不涉密", on=ended)
        with pytest.raises(ConfigError, match="早于.*提交"):
            record_confidentiality_review(session, code=code, account="li", passed=True, note="不涉密",
                                          on=date(2025, 3, 9))
        record_confidentiality_review(session, code=code, account="li", passed=True, note="不涉密", on=submitted)
        with pytest.raises(ConfigError, match="早于.*提交"):
            review_revision(session, code=code, account="sun", approve=True, on=ended)
        with pytest.raises(AccessDenied, match="未被本机构指定"):  # on a day after the submission sun is no reviewer
            review_revision(session, code=code, account="sun", approve=True, on=submitted)
        assert review_revision(session, code=code, account="li", approve=True, on=submitted).status == "published"


def test_a_draft_s_confidentiality_review_cannot_be_dated_before_the_draft_existed(catalog_home: Path) -> None:
    """A revision never submitted had no day to hold a decision to: its 保密审查 could be dated a year before the
    draft was written. The draft's own day is stored and the review is not dated before it."""
    from registry.catalog.entries import latest_revision, get_entry
    from registry.catalog.review import record_confidentiality_review
    from registry.db import session_scope
    from tests.clock import on, pinned

    written = date(2026, 3, 10)
    with pinned(on(written)), session_scope() as session:
        setup_people(session)
        code = new_entry(session)
        draft = latest_revision(session, resource=get_entry(session, code=code))
        assert draft.status == "draft" and draft.created_on == written
    with pinned(on(date(2026, 3, 12))), session_scope() as session:
        with pytest.raises(ConfigError, match="早于.*草稿") as refused:
            record_confidentiality_review(session, code=code, account="li", passed=True, note="不涉密",
                                          on=date(2026, 3, 9))
        assert "before the draft" in str(refused.value.en)
        review = record_confidentiality_review(session, code=code, account="li", passed=True, note="不涉密",
                                               on=written)
        assert review.reviewed_on == written


def test_a_published_entry_stays_visible_while_its_edit_is_reviewed(catalog_home: Path) -> None:
    from registry.audit.log import verify_chain
    from registry.catalog.entries import get_entry, published_content, upsert_entry
    from registry.catalog.review import review_revision, submit_revision
    from registry.db import session_scope

    with session_scope() as session:
        setup_people(session)
        code = new_entry(session)
        publish(session, code)
        upsert_entry(session, agency=PROVIDER[0], code=code, author="zhang",
                     data=entry_data(sharing_type="conditional", sharing_condition="仅限市场监管执法",
                                     sharing_modes=["interface"]))
        submit_revision(session, code=code, account="zhang")
        # under review: consumers and the exchange still see revision 1
        assert published_content(session, code=code).sharing_type == "unconditional"
        entry = get_entry(session, code=code)
        assert (entry.sharing_type, entry.sharing_modes) == ("unconditional", ["interface", "file"])
        with pytest.raises(ConfigError, match="逐条"):
            review_revision(session, code=code, account="li", approve=False)
        with pytest.raises(ConfigError, match="要素"):
            review_revision(session, code=code, account="li", approve=False, comments={"颜色": "?"})
        with pytest.raises(ConfigError, match="不在第2版"):
            review_revision(session, code=code, account="li", approve=False, item_comments={"法人": "?"})
        returned = review_revision(session, code=code, account="li", approve=False,
                                   comments={"共享条件": "请写明依据的文件", "update_cycle": "应为实时"},
                                   item_comments={"注册资本": "请注明单位（万元）"})
        assert returned.status == "returned"
        assert returned.review_comments == {
            "elements": {"sharing_condition": "请写明依据的文件", "update_cycle": "应为实时"},
            "data_items": {"注册资本": "请注明单位（万元）"}}
        assert published_content(session, code=code).sharing_type == "unconditional"
        upsert_entry(session, agency=PROVIDER[0], code=code, author="zhang",
                     data=entry_data(sharing_type="conditional", sharing_condition="依据《企业信息公示暂行条例》第十条",
                                     sharing_modes=["interface"], update_cycle="realtime"))
        publish(session, code)
        assert published_content(session, code=code).update_cycle == "realtime"
        assert (get_entry(session, code=code).sharing_type, get_entry(session, code=code).sharing_modes) == (
            "conditional", ["interface"])
        statuses = [a for a in audit_actions(session, code) if a in ("catalog.return", "catalog.publish")]
        assert verify_chain(session) == []  # every transition is in the intact hash chain
    assert statuses == ["catalog.publish", "catalog.return", "catalog.publish"]


def test_a_draft_entry_is_not_offered_to_consumers(catalog_home: Path) -> None:
    from registry.db import session_scope
    from registry.sharing.subscriptions import subscribe
    from tests.helpers import CONSUMER, ensure_agency

    with session_scope() as session:
        setup_people(session)
        ensure_agency(session, *CONSUMER)
        code = new_entry(session)
        with pytest.raises(AccessDenied, match="未经保密审查和审核发布"):
            subscribe(session, resource_code=code, agency=CONSUMER[0], purpose="核验")
        publish(session, code)
        assert subscribe(session, resource_code=code, agency=CONSUMER[0], purpose="核验").status


def test_registered_resource_is_catalogued_through_review(catalog_home: Path) -> None:
    """`resource add` registers entry and stream; `catalog edit` compiles its elements; review publishes them."""
    from registry.catalog.entries import get_entry, upsert_entry
    from registry.db import session_scope
    from registry.catalog.resources import add_resource

    with session_scope() as session:
        setup_people(session)
        resource = add_resource(session, name="企业基本信息", agency=PROVIDER[0], classification="101001",
                                abstract="登记", actor="test")
        assert resource.catalog_status == "registered"
        revision = upsert_entry(session, agency=PROVIDER[0], code=resource.code, author="zhang",
                                data=entry_data(update_cycle="weekly"))
        assert revision.number == 1 and get_entry(session, code=resource.code).update_cycle == "daily"
        publish(session, resource.code)
        entry = get_entry(session, code=resource.code)
        assert (entry.catalog_status, entry.update_cycle, entry.abstract) == (
            "published", "weekly", entry_data().abstract)


def test_a_withdrawal_tells_the_consumers_whose_grants_it_ended(catalog_home: Path) -> None:
    """撤销发布 ends every grant on the entry at once, but the consumer agency's inbox said nothing: its data
    stopped arriving without a word. Each consumer whose grant ended now gets one message naming the entry and
    the provider's reason; the provider's own inbox is not filled with it."""
    from registry.catalog.review import withdraw_entry
    from registry.db import session_scope
    from registry.people.auth import Principal
    from registry.people.agencies import get_agency
    from registry.sharing.applications import inbox
    from registry.sharing.subscriptions import subscribe
    from tests.helpers import CONSUMER, ensure_agency

    with session_scope() as session:
        setup_people(session)
        ensure_agency(session, *CONSUMER)
        code = new_entry(session)
        publish(session, code)
        subscribe(session, resource_code=code, agency=CONSUMER[0], purpose="企业登记核验")
    with session_scope() as session:
        withdraw_entry(session, code=code, account="li", reason="数据来源停止采集")
    with session_scope() as session:
        def reader(agency: tuple[str, str]) -> Principal:
            found = get_agency(session, ref=agency[0])
            return Principal(kind="user", name="reader", agency_id=found.id, agency_code=found.code,
                             roles=frozenset({"data_admin"}))

        [message] = inbox(session, by=reader(CONSUMER))
        assert code in message.message and "企业基本信息" in message.message and "数据来源停止采集" in message.message
        assert inbox(session, by=reader(PROVIDER)) == []
