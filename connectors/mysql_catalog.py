"""What MySQL / MariaDB's catalogue says about a table or a query, asked with pymysql: the columns and their
Arrow types, a table's primary key, the tables of a database.

Types come from information_schema (tables) or the result's field descriptors (queries), so a DECIMAL(p,s)
becomes decimal128(p,s) (decimal256 above 38 digits), never a float. TIMESTAMP is a UTC instant (the session
is in UTC); DATETIME is wall-clock time unless the source names the zone its values are written in
(``datetime_timezone``): the caller passes that type in as ``datetime_type``. Spatial columns and BIT(n) are
text (connectors/mysql_forms.py reads them so), in a query's result as in a table.

Apart from the connector (connectors/mysql.py) because none of it reads a row, as connectors/postgres_catalog.py
is for PostgreSQL. Each function runs its query on the cursor it is given; the connection, and what a missing
table means, are the connector's.
"""

from __future__ import annotations

import pyarrow as pa
import pymysql.cursors
from pymysql.constants import FIELD_TYPE, FLAG

from connectors.arrowconv import decimal_type
from connectors.base import ColumnInfo

INTEGERS = {"tinyint": 8, "smallint": 16, "mediumint": 32, "int": 32, "integer": 32, "bigint": 64}
FIELD_INTEGERS = {FIELD_TYPE.TINY: 8, FIELD_TYPE.SHORT: 16, FIELD_TYPE.INT24: 32, FIELD_TYPE.LONG: 32,
                  FIELD_TYPE.LONGLONG: 64}
BINARY_CHARSET = 63


def _integer(bits: int, unsigned: bool) -> pa.DataType:
    return getattr(pa, f"{'u' if unsigned else ''}int{bits}")()


def arrow_type(data_type: str, column_type: str, precision: int | None, scale: int | None, *,
               datetime_type: pa.DataType) -> pa.DataType:
    """A table column's Arrow type from its information_schema description."""
    data_type, unsigned = data_type.lower(), "unsigned" in column_type.lower()
    if data_type in ("decimal", "numeric"):
        return decimal_type(int(precision or 10), int(scale or 0))
    if data_type in INTEGERS:
        return _integer(INTEGERS[data_type], unsigned)
    simple = {"float": pa.float32(), "double": pa.float64(), "real": pa.float64(), "date": pa.date32(),
              "timestamp": pa.timestamp("us", tz="UTC"), "time": pa.duration("us"), "year": pa.int16(),
              "bit": pa.string()}
    if data_type == "datetime":
        return datetime_type
    if data_type in simple:
        return simple[data_type]
    if "blob" in data_type or "binary" in data_type:
        return pa.binary()
    return pa.string()  # char, varchar, text, enum, set, json: utf8mb4 text


def table_columns(cursor: pymysql.cursors.Cursor, schema: str, name: str, *,
                  datetime_type: pa.DataType) -> list[ColumnInfo]:
    """The table's columns in their order; empty when the table does not exist or the user cannot see it."""
    cursor.execute(
        """SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE, IS_NULLABLE,
                  COLUMN_COMMENT
           FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s
           ORDER BY ORDINAL_POSITION""", (schema, name))
    return [ColumnInfo(name=column, source_type=column_type, nullable=nullable == "YES",
                       arrow_type=arrow_type(data_type, column_type, precision, scale, datetime_type=datetime_type),
                       comment=comment or "")
            for column, data_type, column_type, precision, scale, nullable, comment in cursor.fetchall()]


def query_columns(cursor: pymysql.cursors.Cursor, query: str, *, datetime_type: pa.DataType) -> list[ColumnInfo]:
    """A query's column types from the result's field descriptors (no view needed, no write privilege)."""
    cursor.execute(f"SELECT * FROM ({query}) AS q LIMIT 0")
    columns = []
    for f in cursor._result.fields:  # the descriptors carry flags and charset, PEP 249's description does not
        unsigned = bool(f.flags & FLAG.UNSIGNED)
        if f.type_code in (FIELD_TYPE.NEWDECIMAL, FIELD_TYPE.DECIMAL):
            # the wire length counts the sign and the decimal point, not only digits
            precision = f.length - (1 if f.scale else 0) - (0 if unsigned else 1)
            arrow = decimal_type(max(precision, 1), f.scale)
        elif f.type_code in FIELD_INTEGERS:
            arrow = _integer(FIELD_INTEGERS[f.type_code], unsigned)
        else:
            arrow = {FIELD_TYPE.FLOAT: pa.float32(), FIELD_TYPE.DOUBLE: pa.float64(),
                     FIELD_TYPE.DATE: pa.date32(), FIELD_TYPE.NEWDATE: pa.date32(),
                     FIELD_TYPE.TIMESTAMP: pa.timestamp("us", tz="UTC"), FIELD_TYPE.DATETIME: datetime_type,
                     FIELD_TYPE.TIME: pa.duration("us"), FIELD_TYPE.YEAR: pa.int16(),
                     FIELD_TYPE.BIT: pa.string(), FIELD_TYPE.GEOMETRY: pa.string()}.get(f.type_code)
            if arrow is None:
                arrow = pa.binary() if f.charsetnr == BINARY_CHARSET and f.type_code != FIELD_TYPE.JSON else pa.string()
        # the names connectors/mysql_forms.py reads by: BIT(n) as digits, spatial values as WKT text
        source_type = (f"bit({f.length})" if f.type_code == FIELD_TYPE.BIT else "geometry"
                       if f.type_code == FIELD_TYPE.GEOMETRY else f"mysql type {f.type_code}")
        columns.append(ColumnInfo(name=f.name, source_type=source_type, arrow_type=arrow,
                                  nullable=not f.flags & FLAG.NOT_NULL))
    return columns


def database_tables(cursor: pymysql.cursors.Cursor, database: str) -> list[str]:
    """The names of the database's tables, in order."""
    cursor.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s ORDER BY 1",
                   (database,))
    return [r[0] for r in cursor.fetchall()]


def primary_key(cursor: pymysql.cursors.Cursor, database: str, table: str) -> list[str]:
    """The table's primary key columns, in the key's order."""
    cursor.execute("""SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = %s
                      AND TABLE_NAME = %s AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION""",
                   (database, table))
    return [r[0] for r in cursor.fetchall()]
