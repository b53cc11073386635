"""Data contracts (数据契约): rules are data, refused when the contract loads; every rule type finds what it should.

No service needed: contracts are parsed from mappings and YAML files, checks run on in-memory Arrow batches.
"""

from __future__ import annotations

import configparser
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from importlib.metadata import entry_points
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.errors import ConfigError, FatalError
from quality.checks import DatasetContext, check_types, file_batches, rule_class
from quality.contracts import load_contract, parse_contract

ROOT = Path(__file__).resolve().parents[1]
VALID_USCC = "91310110666007217T"


def _contract(rules: list[dict], **extra) -> dict:  # noqa: ANN003
    return {
        "name": "t", "key": ["id"],
        "columns": [{"name": "id", "type": "integer"}, {"name": "uscc", "type": "string", "role": "subject_id_uscc"},
                    {"name": "status", "type": "string"}, {"name": "capital", "type": "decimal"},
                    {"name": "day", "type": "date"}, {"name": "at", "type": "timestamp"}],
        "rules": rules, **extra,
    }


def _problems(data: dict) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_contract(data, source="test.yaml")
    message = str(caught.value)
    assert message.startswith("契约无效 / invalid contract test.yaml")
    return [line.strip()[2:] for line in message.splitlines()[1:]]


# --- loading: every problem at once, before any run ------------------------------------------------------------

def test_every_problem_of_a_contract_is_reported_at_once() -> None:
    problems = _problems(_contract([
        {"type": "no_such_rule", "column": "status"},
        {"type": "range", "column": "capital", "min": 5, "max": 1},
        {"type": "range", "column": "capital"},
        {"type": "pattern", "column": "status", "regex": "(unclosed"},
        {"type": "pattern", "column": "status", "regex": "(?<=a)b"},
        {"type": "allowed_values", "column": "status", "values": []},
        {"type": "not_null", "columns": ["status"], "colour": "red"},
        {"type": "identifier", "column": "uscc", "kind": "passport"},
        {"type": "row_count_change", "max_change": -1},
        {"type": "freshness", "column": "at", "max_age_hours": 0},
        {"type": "allowed_values", "column": "nowhere", "values": ["a"]},
        {"column": "status"},
        {"type": "range", "column": "capital", "min": 0, "threshold": {}},
    ]))
    joined = "\n".join(problems)
    assert len(problems) == 13, joined
    assert "unknown rule type 'no_such_rule'; known types: allowed_values" in problems[0]
    assert "min 5 is greater than max 1" in problems[1]
    assert "range needs min, max or both" in problems[2]
    assert "not a valid regular expression" in problems[3]
    assert "not supported by RE2" in problems[4]
    assert "values: List should have at least 1 item" in problems[5]
    assert "colour: Extra inputs are not permitted" in problems[6]
    assert "rule 8 (identifier): kind:" in problems[7]
    assert "rule 9 (row_count_change): max_change" in problems[8]
    assert "rule 10 (freshness): max_age_hours" in problems[9]
    assert "rule 12: needs a `type`" in problems[10]
    assert "a threshold needs max_fraction or max_rows" in problems[11]
    assert "column 'nowhere' is not declared in columns" in problems[12]


def test_rules_must_fit_their_columns_and_the_key() -> None:
    problems = _problems(_contract([
        {"type": "pattern", "column": "capital", "regex": "\\d+"},
        {"type": "freshness", "column": "status", "max_age_hours": 24},
        {"type": "range", "column": "status", "min": 0},
        {"type": "unique", "columns": ["uscc"]},
        {"type": "row_count_change", "max_change": 0.5, "threshold": {"max_rows": 3}},
        {"type": "allowed_values", "column": "status", "values": ["a"]},
        {"type": "allowed_values", "column": "status", "values": ["b"]},
    ], key=["id", "missing"]))
    joined = "\n".join(problems)
    assert "key column 'missing' is not declared in columns" in joined
    assert "pattern needs a string column, capital is decimal" in joined
    assert "freshness needs a date or timestamp column, status is string" in joined
    assert "range needs a number or date column, status is string" in joined
    assert "a blocking unique rule must be on the key" in joined
    assert "a dataset rule has no threshold" in joined
    assert "rule id 'allowed_values_status' is used twice" in joined


def test_the_contract_itself_is_validated_too() -> None:
    problems = _problems({"name": "bad name!", "columns": [{"name": "x", "type": "money"}], "colour": 1,
                          "threshold": {"max_fraction": 2}})
    joined = "\n".join(problems)
    assert "name: String should match pattern" in joined
    assert "columns.0.type" in joined and "threshold.max_fraction" in joined and "colour" in joined
    with pytest.raises(ConfigError, match="a contract is a mapping"):
        parse_contract(["not", "a", "mapping"])


def test_a_yaml_file_with_problems_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: broken\ncolumns: [{name: a, type: string}]\nrules:\n  - {type: range, column: a, min: x}\n",
                    encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_contract(path)
    assert str(path) in str(caught.value) and "rule 1 (range)" in str(caught.value)
    (tmp_path / "notyaml.yaml").write_text("name: [unclosed", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_contract(tmp_path / "notyaml.yaml")
    with pytest.raises(ConfigError, match="does not exist"):
        load_contract(tmp_path / "absent.yaml")


def test_the_shipped_enterprise_contract_loads_with_implied_rules() -> None:
    contract = load_contract(ROOT / "schemas" / "contracts" / "enterprises.yaml")
    ids = [rule.id for rule in contract.rules]
    # nullable: false -> not_null, roles -> identifier (article 12), key -> unique
    assert "not_null_id" in ids and "not_null_uscc" in ids
    assert "identifier_uscc" in ids and "identifier_legal_rep_id" in ids
    assert contract.rule("identifier_legal_rep_id").kind == "idcard"
    assert "unique_key" in ids and contract.rule("unique_key").columns == ["id"]
    assert [r.id for r in contract.rules_of("dataset")] == ["row_count_change"]
    assert contract.rule("range_established").blocking is False
    assert contract.labels()["uscc"] == "统一社会信用代码"


# --- rule types are plugins ------------------------------------------------------------------------------------

def test_every_rule_type_is_an_entry_point_looked_up_by_type() -> None:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg", encoding="utf-8")
    declared = dict(line.split(" = ") for line in parser["options.entry_points"]["govshare.checks"].strip().splitlines())
    assert declared == {ep.name: ep.value for ep in entry_points(group="govshare.checks")}
    for name in check_types():
        assert rule_class(name).model_fields["type"].default == name
    with pytest.raises(ConfigError, match="unknown rule type 'nope'"):
        rule_class("nope")


# --- each rule type on data: issues, never exceptions ----------------------------------------------------------

def _rule(raw: dict):  # noqa: ANN202
    return rule_class(raw["type"]).model_validate(raw)


def _failing(rule, batch: pa.RecordBatch) -> tuple[list[int], list[str]]:  # noqa: ANN001
    issues = list(rule.check_batch(batch))
    if not issues:
        return [], []
    (issue,) = issues
    mask = issue.failing.to_pylist()
    reasons = issue.reasons.to_pylist() if isinstance(issue.reasons, pa.Array) else [issue.reasons] * len(mask)
    return [i for i, bad in enumerate(mask) if bad], [r for r, bad in zip(reasons, mask) if bad]


def test_not_null_counts_empty_text_and_names_the_first_column() -> None:
    batch = pa.record_batch({"a": ["x", None, " ", "y"], "b": [1, 2, None, None]})
    rows, reasons = _failing(_rule({"type": "not_null", "columns": ["a", "b"]}), batch)
    assert rows == [1, 2, 3]
    assert reasons == ["a 为空 / a is empty", "a 为空 / a is empty", "b 为空 / b is empty"]
    assert _failing(_rule({"type": "not_null", "columns": ["a"], "empty_string_is_null": False}), batch)[0] == [1]


def test_allowed_values_on_text_and_numbers() -> None:
    batch = pa.record_batch({"status": ["存续", "注销", "停业", None], "grade": [1, 2, 9, 1]})
    rows, reasons = _failing(_rule({"type": "allowed_values", "column": "status", "values": ["存续", "注销"]}), batch)
    assert rows == [2] and "停业" in reasons[0] and "not in the allowed set" in reasons[0]
    assert _failing(_rule({"type": "allowed_values", "column": "grade", "values": [1, 2]}), batch)[0] == [2]
    assert _failing(_rule({"type": "allowed_values", "column": "grade", "values": ["1", "2"]}), batch)[0] == [2]


def test_range_on_decimals_dates_and_instants() -> None:
    batch = pa.record_batch({
        "capital": pa.array([Decimal("-0.01"), Decimal("0"), Decimal("5"), None], pa.decimal128(18, 2)),
        "day": pa.array([date(1949, 9, 30), date(1949, 10, 1), date(2020, 1, 1), None]),
        "at": pa.array([datetime(2020, 1, 1, tzinfo=timezone.utc)] * 2 + [datetime(2031, 1, 1, tzinfo=timezone.utc), None],
                       pa.timestamp("us", tz="UTC")),
    })
    rows, reasons = _failing(_rule({"type": "range", "column": "capital", "min": 0}), batch)
    assert rows == [0] and reasons[0] == "capital 超出区间 [0, ]: -0.01 / capital value -0.01 outside [0, ]"
    assert _failing(_rule({"type": "range", "column": "capital", "min": 0, "strict_min": True}), batch)[0] == [0, 1]
    assert _failing(_rule({"type": "range", "column": "capital", "max": 1}), batch)[0] == [2]
    assert _failing(_rule({"type": "range", "column": "day", "min": date(1949, 10, 1)}), batch)[0] == [0]
    assert _failing(_rule({"type": "range", "column": "at", "max": date(2030, 12, 31)}), batch)[0] == [2]
    with pytest.raises(ValueError, match="both be numbers or both be dates"):
        _rule({"type": "range", "column": "day", "min": 0, "max": date(2020, 1, 1)})


def test_pattern_matches_the_whole_value_unless_told() -> None:
    batch = pa.record_batch({"name": ["上海某某有限公司", "A", "公司X", None]})
    rows, reasons = _failing(_rule({"type": "pattern", "column": "name", "regex": ".*公司"}), batch)
    assert rows == [1, 2] and "does not match .*公司" in reasons[0]
    assert _failing(_rule({"type": "pattern", "column": "name", "regex": "公司", "full_match": False}), batch)[0] == [1]


def test_identifier_rule_uses_the_validators() -> None:
    good_id = "11010519491231002X"
    batch = pa.record_batch({"uscc": [VALID_USCC, VALID_USCC[:-1] + "0", "123", None],
                             "pid": [good_id, good_id[:-1] + "1", "110105491231002", None]})
    rows, reasons = _failing(_rule({"type": "identifier", "column": "uscc", "kind": "uscc"}), batch)
    assert rows == [1, 2]
    assert reasons[0].startswith("统一社会信用代码无效(") and "invalid unified social credit code" in reasons[0]
    assert reasons[0] != reasons[1]  # each row says its own reason (check character vs length)
    assert _failing(_rule({"type": "identifier", "column": "pid", "kind": "idcard"}), batch)[0] == [1]
    # a legacy 15-digit number is a warning: it passes unless warnings are refused
    strict = _rule({"type": "identifier", "column": "pid", "kind": "idcard", "accept_warning": False})
    assert _failing(strict, batch)[0] == [1, 2]


def test_dataset_rules_yield_findings(tmp_path: Path) -> None:
    now = datetime(2026, 11, 25, 12, tzinfo=timezone.utc)
    path = tmp_path / "part.parquet"
    pq.write_table(pa.table({"at": pa.array([now - timedelta(hours=30), now - timedelta(hours=50)],
                                            pa.timestamp("us", tz="UTC"))}), path)
    context = DatasetContext(batches=file_batches([path]), rows=2, run_time=now, previous_rows=10)
    fresh = _rule({"type": "freshness", "column": "at", "max_age_hours": 48})
    stale = _rule({"type": "freshness", "column": "at", "max_age_hours": 24})
    assert list(fresh.check_dataset(context)) == []
    (issue,) = stale.check_dataset(context)
    assert issue.blocking and "数据不够新" in issue.message_zh and "30.0 h old" in issue.message_en
    change = _rule({"type": "row_count_change", "max_change": 0.5, "blocking": False})
    (drop,) = change.check_dataset(context)
    assert not drop.blocking and "-80.0%" in drop.message_en
    assert list(change.check_dataset(DatasetContext(batches=file_batches([path]), rows=2, run_time=now))) == []


def test_every_row_rule_type_has_a_great_expectations_form() -> None:
    contract = parse_contract(_contract([
        {"type": "allowed_values", "column": "status", "values": ["a"]},
        {"type": "range", "column": "capital", "min": 0},
        {"type": "pattern", "column": "status", "regex": "[a-z]+"},
        {"type": "freshness", "column": "at", "max_age_hours": 24},
        {"type": "row_count_change", "max_change": 0.5},
    ]))
    names = {rule.type: [spec.name for spec in rule.expectations()] for rule in contract.rules}
    assert names["not_null"] == ["ExpectColumnValuesToNotBeNull"]
    assert names["identifier"] == ["ExpectColumnValuesToMatchRegex"]
    assert names["unique"] == ["ExpectColumnValuesToBeUnique"]
    assert names["range"] == ["ExpectColumnValuesToBeBetween"]
    # whole-version rules are judged by the hub over all batches, and reported beside GX's results
    assert names["freshness"] == names["row_count_change"] == []


def test_a_source_that_does_not_match_the_contract_cannot_run() -> None:
    contract = parse_contract(_contract([]))
    with pytest.raises(FatalError, match="no column"):
        contract.check_schema(pa.schema([("id", pa.int64())]))
    schema = pa.schema([("id", pa.date32()), ("uscc", pa.string()), ("status", pa.string()),
                        ("capital", pa.decimal128(18, 2)), ("day", pa.date32()), ("at", pa.timestamp("us"))])
    with pytest.raises(FatalError, match="id \\(integer expected, source has date32"):
        contract.check_schema(schema)


def test_text_columns_are_read_as_the_declared_type_and_bad_values_quarantined() -> None:
    """SQLite, CSV and JSON sources deliver dates and numbers as text: the contract's type converts them; a
    value that does not convert sends its row to quarantine with the value as it was read."""
    from pipeline.validate import split_batch

    contract = parse_contract(_contract([]))
    batch = pa.record_batch({
        "id": pa.array(["1", "2", "x3"]), "uscc": pa.array(["113100000024200171"] * 3), "status": pa.array(["存续"] * 3),
        "capital": pa.array(["10.50", "7", "1"]), "day": pa.array(["2020-01-02", "2021-13-01", "2022-03-04"]),
        "at": pa.array(["2026-03-01T10:00:00+08:00", "2026-03-02T10:00:00+08:00", None])})
    contract.check_schema(batch.schema)  # text for every declared type: convertible, no FatalError
    split = split_batch(batch, key=("id",), contract=contract)
    assert split.good.schema.field("id").type == pa.int64() and split.good.schema.field("day").type == pa.date32()
    assert split.good.schema.field("at").type == pa.timestamp("us", tz="UTC")
    assert split.good.column("id").to_pylist() == [1]
    bad = split.bad.to_pylist()
    assert [(r["id"], r["_rule"]) for r in bad] == [("2", "type_conversion"), ("x3", "type_conversion")]
    assert "day='2021-13-01'" in bad[0]["_reason"] and bad[0]["day"] == "2021-13-01"  # kept as it was read


def test_contract_check_command_lists_every_problem(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cli.main import app

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ncolumns: [{name: a, type: string}]\nrules:\n  - {type: range, column: a}\n"
                   "  - {type: nope}\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["contract", "check", str(bad)])
    assert result.exit_code == 1
    assert "range needs min, max or both" in result.output and "unknown rule type 'nope'" in result.output
    good = CliRunner().invoke(app, ["contract", "check", str(ROOT / "schemas" / "contracts" / "enterprises.yaml")])
    assert good.exit_code == 0 and "identifier_uscc" in good.output and "is valid" in good.output


@pytest.mark.parametrize("path", sorted((ROOT / "schemas" / "contracts").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_contract_loads(path: Path) -> None:
    contract = load_contract(path)
    assert contract.name == path.stem and contract.key and contract.rules
