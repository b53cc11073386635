"""Synthetic enterprise registry: valid identifiers, determinism, bounded batches, and real database loads.

The identifier checks below are written afresh from the reference formulas, in their "the whole code sums to
a fixed residue" form, so they do not share a line with the generator they judge.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest

from samples.enterprises import (
    DEFAULT_AS_OF,
    enterprise_schema,
    enterprise_table,
    generate_enterprise_batch,
    id_check_char,
    iter_enterprise_batches,
    organization_code_check_char,
    uscc_check_char,
)
from samples.loaders import load_mysql, load_postgres, load_sqlite, mutate_postgres
from tests.services import require_mysql, require_postgres

SHANGHAI = ZoneInfo("Asia/Shanghai")
ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
DISTRICT_OF_DIVISION = {
    "310101": "黄浦区", "310104": "徐汇区", "310105": "长宁区", "310106": "静安区", "310107": "普陀区",
    "310109": "虹口区", "310110": "杨浦区", "310112": "闵行区", "310113": "宝山区", "310114": "嘉定区",
    "310115": "浦东新区", "310116": "金山区", "310117": "松江区", "310118": "青浦区", "310120": "奉贤区",
    "310151": "崇明区",
}
RETIRED_SHANGHAI_DIVISIONS = {"310102", "310103", "310108", "310225", "310230"}  # still printed on valid IDs
ROWS = 3_000


def uscc_is_valid(code: str) -> bool:
    """GB 32100: with weights 3^(i-1) mod 31, the 18 values sum to a multiple of 31."""
    if len(code) != 18 or any(char not in ALPHABET for char in code):
        return False
    weights = [3 ** i % 31 for i in range(17)] + [1]
    return sum(ALPHABET.index(char) * weight for char, weight in zip(code, weights)) % 31 == 0


def organization_code_is_valid(code: str) -> bool:
    """GB 11714: base-36 body with weights 3,7,9,10,5,8,4,2 plus the check value (X = 10) is 0 mod 11."""
    body_total = sum(int(char, 36) * weight for char, weight in zip(code[:8], (3, 7, 9, 10, 5, 8, 4, 2)))
    check_value = 10 if code[8] == "X" else int(code[8])
    return len(code) == 9 and (body_total + check_value) % 11 == 0


def id_number_is_valid(number: str) -> bool:
    """ISO 7064 MOD 11-2: with weights 2^(18-i) mod 11 and X = 10, the 18 values sum to 1 mod 11."""
    if len(number) != 18 or not number[:17].isdigit() or number[17] not in "0123456789X":
        return False
    values = [int(char) for char in number[:17]] + [10 if number[17] == "X" else int(number[17])]
    return sum(value * (2 ** (17 - i) % 11) for i, value in enumerate(values)) % 11 == 1


@pytest.fixture(scope="module")
def sample() -> pa.Table:
    return enterprise_table(rows=20_000, seed=7)


# --- identifiers ----------------------------------------------------------------------------------------------

def test_independent_checks_agree_with_public_examples() -> None:
    for code in ("91110000600037341L", "9144030071526726XG", "91340600MA2PBM9HXD", "121200004013590816",
                 "92340621MA2UK3CE6L", "91310110666007217T", "91310115591693856A"):
        assert uscc_is_valid(code), code
        assert uscc_check_char(code[:17]) == code[17]
    for code in ("91110000600037341N", "9111000060003IOZSV", "916201055811843000"):
        assert not uscc_is_valid(code), code
    assert organization_code_is_valid("666007217") and organization_code_check_char("66600721") == "7"
    for number in ("11010519491231002X", "440524188001010014"):
        assert id_number_is_valid(number) and id_check_char(number[:17]) == number[17]
    assert not id_number_is_valid("110105194912310021")


def test_generated_usccs_are_valid_unique_shanghai_codes(sample: pa.Table) -> None:
    codes = sample.column("uscc").to_pylist()
    assert len(set(codes)) == len(codes)
    kinds = {}
    for code in codes:
        assert uscc_is_valid(code), code
        assert organization_code_is_valid(code[8:17]), code
        assert code[2:8] in DISTRICT_OF_DIVISION, code
        kinds[code[:2]] = kinds.get(code[:2], 0) + 1
    assert set(kinds) <= {"91", "92", "93"} and kinds["91"] > 0.85 * len(codes)
    assert {"92", "93"} <= set(kinds)
    # organisation codes issued before the 2015 reform are numeric, later ones "MA..."
    for code, established in zip(codes, sample.column("established").to_pylist()):
        if code[:2] == "91" and established < date(2015, 10, 1):
            assert code[8:16].isdigit(), code
        else:
            assert code[8:10] == "MA", code


def test_generated_id_numbers_are_valid_with_real_birth_dates(sample: pa.Table) -> None:
    from stdnum import numdb

    known_divisions = numdb.get("cn/loc")
    males = 0
    for number in sample.column("legal_rep_id").to_pylist():
        assert id_number_is_valid(number), number
        division = number[:6]
        assert division in DISTRICT_OF_DIVISION or division in RETIRED_SHANGHAI_DIVISIONS, number
        assert known_divisions.info(division)[-1][1], f"{division} is not a GB/T 2260 code"
        born = datetime.strptime(number[6:14], "%Y%m%d").date()  # raises on an impossible date
        assert date(1950, 1, 1) <= born <= date(2000, 12, 31), number
        assert int(number[14:17]) < 996  # 996-999 are reserved for centenarians
        males += int(number[16]) % 2
    assert 0.6 < males / sample.num_rows < 0.85


def test_values_are_plausible(sample: pa.Table) -> None:
    rows = sample.to_pylist()
    window_start = DEFAULT_AS_OF - timedelta(days=3 * 365)
    statuses = {row["status"] for row in rows}
    assert statuses == {"存续", "在业", "吊销", "注销", "迁出"}
    for row in rows:
        assert row["name"].startswith("上海") and row["legal_rep"] and row["industry"], row
        assert row["address"].startswith("上海市" + DISTRICT_OF_DIVISION[row["uscc"][2:8]]), row
        assert row["address"].endswith("号"), row
        assert 0 < row["reg_capital"] < 10_000_000_000, row
        assert row["reg_capital"].as_tuple().exponent == -2, row
        assert date(1992, 1, 1) <= row["established"] < DEFAULT_AS_OF.date(), row
        born = datetime.strptime(row["legal_rep_id"][6:14], "%Y%m%d").date()
        assert (row["established"] - born).days >= 18 * 365, row  # registered by an adult
        updated = row["updated_at"]
        assert updated.utcoffset() == timedelta(hours=8)
        assert window_start <= updated < DEFAULT_AS_OF, row
        assert updated >= datetime.combine(row["established"], datetime.min.time(), SHANGHAI), row


def test_schema() -> None:
    schema = enterprise_schema()
    assert schema.names == ["id", "uscc", "name", "legal_rep", "legal_rep_id", "reg_capital", "established",
                            "status", "address", "industry", "updated_at"]
    assert schema.field("id").type == pa.int64()
    assert schema.field("reg_capital").type == pa.decimal128(18, 2)
    assert schema.field("established").type == pa.date32()
    assert schema.field("updated_at").type == pa.timestamp("us", tz="Asia/Shanghai")
    assert generate_enterprise_batch(first_id=1, rows=10).schema == schema


# --- determinism and batching ---------------------------------------------------------------------------------

def test_same_seed_same_rows_whatever_the_batching() -> None:
    reference = enterprise_table(rows=5_000, seed=3)
    rebatched = pa.Table.from_batches(list(iter_enterprise_batches(rows=5_000, seed=3, batch_rows=777)))
    assert rebatched.equals(reference)
    extended = pa.concat_tables([enterprise_table(rows=1_234, seed=3),
                                 enterprise_table(rows=5_000 - 1_234, seed=3, start_id=1_235)])
    assert extended.equals(reference)
    other_seed = enterprise_table(rows=5_000, seed=4)
    assert other_seed.column("id").equals(reference.column("id"))
    for name in ("uscc", "name", "legal_rep_id", "updated_at"):
        assert not other_seed.column(name).equals(reference.column(name)), name


def test_batches_are_bounded_and_ids_contiguous() -> None:
    batches = list(iter_enterprise_batches(rows=10_001, seed=0, batch_rows=1_000, start_id=50))
    assert [b.num_rows for b in batches] == [1_000] * 10 + [1]
    ids = pa.Table.from_batches(batches).column("id").to_pylist()
    assert ids == list(range(50, 10_051))
    assert list(iter_enterprise_batches(rows=0, seed=0)) == []
    with pytest.raises(ValueError):
        next(iter_enterprise_batches(rows=10, seed=0, batch_rows=0))


# --- loads into real databases --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def expected_rows() -> list[dict]:
    return enterprise_table(rows=ROWS, seed=11).to_pylist()


def test_sqlite_load(tmp_path, expected_rows: list[dict]) -> None:
    path = tmp_path / "registry.db"
    assert load_sqlite(path, rows=ROWS - 500, seed=11, batch_rows=1_000) == ROWS - 500
    assert load_sqlite(path, rows=500, seed=11, start_id=ROWS - 499, drop_existing=False) == 500
    with closing(sqlite3.connect(path)) as conn:
        got = conn.execute("SELECT * FROM enterprises ORDER BY id").fetchall()
        indexes = {row[1] for row in conn.execute("PRAGMA index_list(enterprises)")}
    assert len(got) == ROWS and "enterprises_updated_at_idx" in indexes
    for row, want in zip(got, expected_rows):
        (id_, uscc, name, legal_rep, legal_rep_id, capital, established, status, address, industry, updated) = row
        assert (id_, uscc, name, legal_rep, legal_rep_id, status, address, industry) == (
            want["id"], want["uscc"], want["name"], want["legal_rep"], want["legal_rep_id"], want["status"],
            want["address"], want["industry"])
        assert Decimal(str(capital)).quantize(Decimal("0.01")) == want["reg_capital"]
        assert date.fromisoformat(established) == want["established"]
        parsed = datetime.fromisoformat(updated)
        assert parsed == want["updated_at"] and parsed.utcoffset() == timedelta(hours=8)


@pytest.fixture
def pg_schema() -> Iterator[tuple[str, str]]:
    import psycopg2
    from psycopg2 import sql

    dsn = require_postgres()
    schema = f"govshare_test_{uuid.uuid4().hex[:12]}"
    yield dsn, schema
    with closing(psycopg2.connect(dsn)) as conn, conn, conn.cursor() as cursor:
        cursor.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def test_postgres_load(pg_schema: tuple[str, str], expected_rows: list[dict]) -> None:
    import psycopg2

    dsn, schema = pg_schema
    assert load_postgres(dsn, rows=ROWS - 500, seed=11, schema=schema, batch_rows=1_000) == ROWS - 500
    assert load_postgres(dsn, rows=500, seed=11, schema=schema, start_id=ROWS - 499, drop_existing=False) == 500
    with closing(psycopg2.connect(dsn)) as conn, conn.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'UTC'")  # the instant must survive whatever zone the session uses
        cursor.execute(f'SELECT * FROM "{schema}".enterprises ORDER BY id')
        got = cursor.fetchall()
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE schemaname = %s", (schema,))
        index_definitions = " ".join(row[0] for row in cursor.fetchall())
        cursor.execute("SELECT data_type FROM information_schema.columns WHERE table_schema = %s "
                       "AND column_name IN ('reg_capital', 'updated_at') ORDER BY column_name", (schema,))
        assert [row[0] for row in cursor.fetchall()] == ["numeric", "timestamp with time zone"]
    assert "(updated_at)" in index_definitions and "(id)" in index_definitions
    assert [dict(zip(enterprise_schema().names, row)) for row in got] == expected_rows


def test_postgres_mutation(pg_schema: tuple[str, str]) -> None:
    import psycopg2

    dsn, schema = pg_schema
    for table in ("left_copy", "right_copy"):
        load_postgres(dsn, table=table, rows=2_000, seed=5, schema=schema)
    assert mutate_postgres(dsn, "left_copy", changed=50, seed=9, schema=schema) == 50
    assert mutate_postgres(dsn, "right_copy", changed=50, seed=9, schema=schema) == 50

    def changed_rows(cursor, table: str) -> list[tuple]:
        cursor.execute(f'SELECT id, status, reg_capital, address FROM "{schema}".{table} '
                       "WHERE updated_at > %s ORDER BY id", (DEFAULT_AS_OF,))
        return cursor.fetchall()

    with closing(psycopg2.connect(dsn)) as conn, conn, conn.cursor() as cursor:
        left = changed_rows(cursor, "left_copy")
        assert len(left) == 50 and left == changed_rows(cursor, "right_copy")  # same seed, same changes
        assert all(address.startswith("上海市") for *_, address in left)
        cursor.execute(f'DELETE FROM "{schema}".left_copy WHERE id % 3 = 0')  # gaps in the ids
    assert mutate_postgres(dsn, "left_copy", changed=200, seed=10, schema=schema) == 200
    assert mutate_postgres(dsn, "left_copy", changed=10_000, seed=10, schema=schema) == 1_334


@pytest.fixture
def mysql_database() -> Iterator[dict]:
    import pymysql

    kwargs = require_mysql()
    name = f"govshare_test_{uuid.uuid4().hex[:12]}"
    with closing(pymysql.connect(**kwargs)) as conn, conn.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    yield {**kwargs, "database": name}
    with closing(pymysql.connect(**kwargs)) as conn, conn.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")


def test_mysql_load(mysql_database: dict, expected_rows: list[dict]) -> None:
    import pymysql

    assert load_mysql(**mysql_database, rows=ROWS - 500, seed=11, batch_rows=1_000) == ROWS - 500
    assert load_mysql(**mysql_database, rows=500, seed=11, start_id=ROWS - 499, drop_existing=False) == 500
    with closing(pymysql.connect(**mysql_database, charset="utf8mb4")) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT * FROM enterprises ORDER BY id")
        got = [dict(zip(enterprise_schema().names, row)) for row in cursor.fetchall()]
    # DATETIME holds the Shanghai wall clock: attaching the zone gives back the instant
    for row in got:
        row["updated_at"] = row["updated_at"].replace(tzinfo=SHANGHAI)
    assert got == expected_rows
    assert isinstance(got[0]["reg_capital"], Decimal) and isinstance(got[0]["established"], date)
