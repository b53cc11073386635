"""The one presentation layer: every code the registry stores has its Chinese label in schemas/labels.yaml, the
catalogue metadata names only lists that exist, and days and times read as a person in Shanghai expects."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from schemas.presentation import cell, code_of, day, due_day, label, label_list, labels, moment


def test_every_code_the_registry_keeps_has_a_chinese_label() -> None:
    from registry.catalog.models import REVISION_STATUSES
    from registry.exchange.notice_models import NOTICE_STATUSES
    from registry.catalog.obligations import OBLIGATION_KINDS
    from registry.catalog.resources import SHARING_MODES, SHARING_TYPES, UPDATE_CYCLES
    from registry.people.agencies import LEVEL_LABELS
    from registry.people.models import DESIGNATION_ROLES
    from registry.people.roles import ROLES
    from registry.quality.models import QUARANTINE_STATUSES, TICKET_KINDS, TICKET_STATUSES
    from registry.sharing.applications import KINDS
    from registry.sharing.grants import ROW_FILTER_OPS
    from registry.sharing.models import APPLICATION_STATUSES, GRANT_STATUSES
    from registry.supervision.models import ORDER_STATUSES, VIOLATION_STATUSES

    kept = {"application_statuses": APPLICATION_STATUSES, "grant_statuses": GRANT_STATUSES, "roles": ROLES,
            "application_kinds": KINDS, "designation_roles": DESIGNATION_ROLES, "catalog_statuses": REVISION_STATUSES,
            "obligation_kinds": OBLIGATION_KINDS, "quarantine_statuses": QUARANTINE_STATUSES,
            "ticket_statuses": TICKET_STATUSES, "ticket_kinds": TICKET_KINDS, "violation_statuses": VIOLATION_STATUSES,
            "order_statuses": ORDER_STATUSES, "sharing_types": SHARING_TYPES, "sharing_modes": SHARING_MODES,
            "update_cycles": UPDATE_CYCLES, "agency_levels": LEVEL_LABELS, "row_filter_ops": ROW_FILTER_OPS,
            "dispute_statuses": ("open", "concluded"), "notice_statuses": NOTICE_STATUSES,
            "subscription_statuses": ("active", "pending", "revoked"),
            "grant_origins": ("application", "subscription", "dispute")}
    for kind, codes in kept.items():
        table = labels(kind)
        for code in codes:
            assert code in table and any("\u4e00" <= c <= "\u9fff" for c in table[code]), (kind, code)
    assert labels("catalog_statuses")["registered"] == "已登记未编目"


def test_the_catalogue_metadata_names_lists_of_the_table() -> None:
    from schemas.catalog_metadata import metadata

    named = {e["codes"] for key in ("elements", "data_item_elements") for e in metadata()[key] if e.get("codes")}
    assert named == {"formats", "sharing_types", "sharing_modes", "yes_no", "update_cycles", "data_types", "subject_ids",
                     "personal_kinds"}
    for kind in named:
        assert labels(kind)


def test_labels_and_codes() -> None:
    assert label("formats", "database") == "数据库" and label("data_types", "timestamp") == "日期时间型"
    assert label("subject_ids", "idcard") == "身份证号码" and label("yes_no", False) == "否"
    assert label("application_statuses", None) == "" and label("application_statuses", "unheard-of") == "unheard-of"
    assert label_list("sharing_modes", ["interface", "browse"]) == "接口交换、在线浏览"
    assert code_of("sharing_types", "有条件共享") == "conditional" == code_of("sharing_types", "conditional")
    assert code_of("sharing_types", "按需") is None
    with pytest.raises(Exception, match="no label list"):
        labels("colours")


def test_days_and_times_as_a_person_reads_them() -> None:
    assert day(date(2026, 12, 6)) == "2026年12月6日" and day("2026-10-08") == "2026年10月8日"
    # 23:30 UTC on 5 December is 07:30 on 6 December in Beijing
    late = datetime(2026, 12, 5, 23, 30, tzinfo=UTC)
    assert day(late) == "2026年12月6日" and moment(late) == "2026年12月6日 07:30（北京时间）"
    assert moment(datetime(2026, 12, 5, 23, 30)) == "2026年12月6日 07:30（北京时间）"  # naive = UTC (the registry's)
    assert due_day(None) == "待国务院公布节假日安排" and due_day(date(2027, 1, 4)) == "2027年1月4日"
    assert cell("2026-12-06T14:35:49.328+08:00", "timestamp") == "2026-12-06 14:35:49"
    assert cell("2026-12-06T06:35:49+00:00", "timestamp") == "2026-12-06 14:35:49"
    assert cell("not a time", "timestamp") == "not a time" and cell(None) == "" and cell(True) == "是"
    # bytes as CSV writes them, arrays and structures as JSON (not Python's b'...' and reprs)
    assert cell(b"\xde\xad") == "\\xdead" and cell([1, None, "中"]) == '[1, null, "中"]'
    assert cell({"a": Decimal("1.50")}) == '{"a": "1.50"}'
