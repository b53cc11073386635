"""The demo's agencies and their business databases (SQLite files of synthetic but realistic records)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pyarrow.compute as pc

from samples.enterprises import enterprise_table, organization_code_check_char, uscc_check_char
from samples.loaders import load_sqlite


def agency_code(organisation_body: str) -> str:
    """A valid USCC for a Shanghai government organ (authority 1 机构编制, category 1 机关)."""
    first17 = "11310000" + organisation_body + organization_code_check_char(organisation_body)
    return first17 + uscc_check_char(first17)


@dataclass(frozen=True)
class DemoAgency:
    code: str
    name: str


MARKET = DemoAgency(agency_code("00242001"), "上海市市场监督管理局")
TAX = DemoAgency(agency_code("00242002"), "国家税务总局上海市税务局")
HR = DemoAgency(agency_code("00242003"), "上海市人力资源和社会保障局")
GRADES = ["A", "B", "M", "C", "D"]


def make_market_db(path: Path, *, rows: int) -> int:
    """市场监管局's enterprise registry (企业登记库)."""
    return load_sqlite(path, table="enterprises", rows=rows, seed=20260301)


def make_tax_db(path: Path, *, rows: int) -> int:
    """税务局's taxpayer credit ratings (纳税信用等级), keyed by the same enterprises' USCCs."""
    enterprises = enterprise_table(rows=rows, seed=20260301)
    ids = enterprises.column("id").to_numpy()
    records = zip(enterprises.column("uscc").to_pylist(), enterprises.column("name").to_pylist(),
                  (GRADES[i % 7 % 5] for i in ids), pc.strftime(enterprises.column("updated_at"),
                                                               format="%Y-%m-%d %H:%M:%S").to_pylist())
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute("DROP TABLE IF EXISTS taxpayer_credit")
        connection.execute(
            "CREATE TABLE taxpayer_credit (uscc TEXT PRIMARY KEY, taxpayer_name TEXT NOT NULL, "
            "credit_grade TEXT NOT NULL, rating_year INTEGER NOT NULL, updated_at TIMESTAMP NOT NULL)")
        connection.executemany("INSERT INTO taxpayer_credit VALUES (?, ?, ?, 2025, ?)", records)
    return rows


def change_market_rows(path: Path, *, count: int) -> int:
    """Some enterprises change their registered address today, as a business system would record it."""
    with closing(sqlite3.connect(path)) as connection, connection:
        cursor = connection.execute(
            "UPDATE enterprises SET address = address || '（迁址）', updated_at = strftime('%Y-%m-%dT%H:%M:%f', 'now', '+8 hours') || '+08:00' "
            "WHERE id IN (SELECT id FROM enterprises ORDER BY id LIMIT ?)", (count,))
        return cursor.rowcount
