"""What PostgreSQL's catalogue says about a table, asked with psycopg2: its columns and their Arrow types, its
primary key, the tables of a schema, the declared dimensions of its arrays.

Apart from the connector (connectors/postgres.py) because none of it reads a row and many paths ask it: the
check, discovery, a stream's schema, an ADBC read with array columns (connectors/postgres_adbc.py) and the change
capture's snapshot (connectors/postgres_cdc.py, through the connector). Each function runs its query on the
cursor it is given; the connection, and what a missing table means, are the connector's.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from connectors.arrowconv import DEFAULT_DECIMAL, decimal_type
from connectors.base import ColumnInfo
from connectors.pgarrays import ArrayColumn, array_column

PG_TO_ARROW = {
    "smallint": pa.int16(), "integer": pa.int32(), "bigint": pa.int64(), "real": pa.float32(),
    "double precision": pa.float64(), "boolean": pa.bool_(), "date": pa.date32(), "text": pa.string(),
    "character varying": pa.string(), "character": pa.string(), "uuid": pa.string(), "bytea": pa.binary(),
    "timestamp without time zone": pa.timestamp("us"), "timestamp with time zone": pa.timestamp("us", tz="UTC"),
    "json": pa.string(), "jsonb": pa.string(), "money": DEFAULT_DECIMAL,  # read as numeric: connectors.postgres_types
    "time without time zone": pa.time64("us"),  # as the reads' drivers deliver it (discovery had said text)
}


def decimal_from_typmod(typmod: int) -> pa.DataType:
    """A numeric column's decimal type from its type modifier (unconstrained: DEFAULT_DECIMAL)."""
    if typmod < 4:
        return DEFAULT_DECIMAL
    precision, scale = (typmod - 4) >> 16, (typmod - 4) & 0xFFFF
    return decimal_type(precision, scale)


def table_columns(cursor: Any, schema: str, name: str) -> list[tuple[ColumnInfo, ArrayColumn | None]]:
    """Each column, and for an array column its element type and declared dimensions (connectors.pgarrays);
    empty when the table does not exist or the user cannot see it."""
    # A domain's values are read as its base type's (the driver resolves it too): its type, with its typmod.
    cursor.execute(
        """SELECT a.attname, format_type(a.atttypid, a.atttypmod), b.typname, x.typmod, NOT a.attnotnull,
                  col_description(c.oid, a.attnum), format_type(b.oid, x.typmod), a.attndims
           FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_type t ON t.oid = a.atttypid
           CROSS JOIN LATERAL (SELECT CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END AS typmod) x
           JOIN pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
           WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum""",
        (schema, name))
    columns = []
    for col, formatted, typname, typmod, nullable, comment, base_formatted, dims in cursor.fetchall():
        base = base_formatted.split("(")[0]
        # an array's form depends on its element type and declared dimensions (connectors.pgarrays)
        array = array_column(typname, dims)
        arrow = array.arrow_type if array else decimal_from_typmod(typmod) if typname == "numeric" else \
            PG_TO_ARROW.get(base, pa.string())
        columns.append((ColumnInfo(name=col, source_type=formatted, arrow_type=arrow, nullable=nullable,
                                   comment=comment or ""), array))
    return columns


def schema_tables(cursor: Any, schema: str) -> list[str]:
    """The names of the schema's tables and views, in name order."""
    cursor.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s ORDER BY 1", (schema,))
    return [r[0] for r in cursor.fetchall()]


def primary_key(cursor: Any, schema: str, name: str) -> list[str]:
    """The primary key's columns in the key's own order; none for a table without one, or no such table."""
    cursor.execute(
        """SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid
           AND a.attnum = ANY(i.indkey) JOIN pg_class c ON c.oid = i.indrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = %s AND c.relname = %s AND i.indisprimary
           ORDER BY array_position(i.indkey::int2[], a.attnum)""", (schema, name))
    return [r[0] for r in cursor.fetchall()]


def declared_dims(cursor: Any, schema: str, name: str) -> dict[str, int]:
    """Each column's declared array dimensions (pg_attribute.attndims): they decide an array's form."""
    cursor.execute(
        """SELECT a.attname, a.attndims FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped""",
        (schema, name))
    return dict(cursor.fetchall())


def table_identity(cursor: Any, schema: str, name: str) -> dict[str, Any]:
    """What makes the table the same table with the same physical columns (源表标识): its pg_class oid, and each
    column's name, attnum, type oid and typmod in column order. A table rebuilt under the same name has another
    oid, a column dropped and added again another attnum, a column retyped in place (ALTER COLUMN ... TYPE)
    another type: each sets values in rows without a row change in the WAL. Beside them, the storage (relfilenode)
    and the transaction that last wrote each column's entry (its pg_attribute xmin): a column retyped to the type it
    has with USING rewrites every row and changes both, where VACUUM FULL, CLUSTER and TRUNCATE change only the
    storage and a default or statistics target set only the entry; ``missing`` and ``defaults`` tell a rewrite
    that cleared a column's held default (VACUUM FULL after ADD COLUMN ... DEFAULT) from a retype
    (pipeline.cdc_identity)."""
    cursor.execute(
        """SELECT c.oid, a.attname, a.attnum, a.atttypid, a.atttypmod, c.relfilenode, a.xmin::text,
                  a.atthasmissing, d.oid
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid
           LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
           WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum""",
        (schema, name))
    rows = cursor.fetchall()
    return {"oid": int(rows[0][0]) if rows else None,
            "columns": [[column, int(attnum), int(typid), int(typmod)]
                        for _oid, column, attnum, typid, typmod, *_ in rows],
            "storage": int(rows[0][5]) if rows else None, "altered": {row[1]: row[6] for row in rows},
            # a default still held in the column's entry (added with a default, not yet written into the rows),
            # and the stored default's row: a rewrite clears the one, a retype stores the other again
            "missing": {row[1]: int(row[8]) if row[8] is not None else None for row in rows if row[7]},
            "defaults": {row[1]: int(row[8]) for row in rows if row[8] is not None}}
